use budgetgate::{BudgetExceeded, guard};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

struct NotConvertible;

#[guard(ledger = ("a", "b", "c"), cost = "1")]
fn f() -> Result<(), NotConvertible> { Ok(()) }
fn main() {}
