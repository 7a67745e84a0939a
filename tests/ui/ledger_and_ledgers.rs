use budgetgate::{guard, BudgetExceeded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard(ledger = ("a", "b", "c"), ledgers = [("a", "b", "user")], cost = "1")]
fn f() -> Result<(), E> { Ok(()) }
fn main() {}
