use budgetgate::{BudgetExceeded, guard};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard(cost = "1")]
fn f() -> Result<(), E> { Ok(()) }
fn main() {}
