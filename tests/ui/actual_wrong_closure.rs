use budgetgate::{guard_bounded, BudgetExceeded, Decimal};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
struct Completion;
struct Wrong;

#[guard_bounded(ledger = ("a", "b", "c"), estimate = "1", actual = |c: &Wrong| Decimal::ONE)]
fn f() -> Result<Completion, E> { Ok(Completion) }
fn main() {}
