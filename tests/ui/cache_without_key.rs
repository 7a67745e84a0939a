use budgetgate::cache::ResponseCache;
use budgetgate::{guard_bounded, BudgetExceeded};
use std::sync::LazyLock;
use std::time::Duration;
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
static CACHE: LazyLock<ResponseCache<String, String>> =
    LazyLock::new(|| ResponseCache::new(Duration::from_secs(60)));

#[guard_bounded(ledger = ("a", "b", "c"), estimate = "1", actual = |_| budgetgate::Decimal::ONE, cache = &*CACHE)]
async fn f(prompt: &str) -> Result<String, E> { Ok(prompt.to_owned()) }
fn main() {}
