use budgetgate::{guard_bounded, BudgetExceeded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
struct Completion { tokens: u64 }

#[guard_bounded(ledger = ("a", "b", "c"), estimate = "1", actual = |c| c.tokens as f64 * 0.001)]
fn f() -> Result<Completion, E> { Ok(Completion { tokens: 1 }) }
fn main() {}
