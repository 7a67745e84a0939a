use budgetgate::{guard_bounded, BudgetExceeded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
#[guard_bounded(ledger = ("a", "b", "c"), estimate = "1", actual = |_| budgetgate::Decimal::ONE, cache_key = prompt.to_owned())]
async fn f(prompt: &str) -> Result<String, E> { Ok(prompt.to_owned()) }
fn main() {}
