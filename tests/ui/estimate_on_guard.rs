use budgetgate::{BudgetExceeded, guard};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard(ledger = ("a", "b", "c"), estimate = "1", actual = |_| budgetgate::Decimal::ONE)]
fn f() -> Result<(), E> { Ok(()) }
fn main() {}
