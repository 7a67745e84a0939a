use budgetgate::{BudgetExceeded, guard};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard(ledger = ("a", "b", "c"))]
fn f() -> Result<(), E> { Ok(()) }
fn main() {}
