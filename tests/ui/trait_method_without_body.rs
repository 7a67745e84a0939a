use budgetgate::{BudgetExceeded, guard};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

trait T {
    #[guard(ledger = ("a", "b", "c"), cost = "1")]
    fn f(&self) -> Result<(), E>;
}
fn main() {}
