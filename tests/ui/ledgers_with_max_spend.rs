use budgetgate::{guard, BudgetExceeded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard(ledgers = [("a", "b", "user"), ("a", "b", "project")], cost = "1", max_spend = "10")]
fn f() -> Result<(), E> { Ok(()) }
fn main() {}
