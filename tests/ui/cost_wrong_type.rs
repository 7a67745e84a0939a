use budgetgate::{BudgetExceeded, guard};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard(ledger = ("a", "b", "c"), cost = 1.5f64 as u32 + n)]
fn f(n: u32) -> Result<(), E> { Ok(()) }
fn main() {}
