use budgetgate::cache::ResponseCache;
use budgetgate::{guard, guard_result, rate_limit, BudgetExceeded, RateLimited};
use std::sync::LazyLock;
use std::time::Duration;
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
impl From<RateLimited> for E {
    fn from(_: RateLimited) -> Self { E }
}
static CACHE: LazyLock<ResponseCache<String, String>> =
    LazyLock::new(|| ResponseCache::new(Duration::from_secs(60)));

#[guard(ledger = ("a", "b", "c"), cost = "1", cache = &*CACHE, cache_key = prompt.to_owned())]
async fn fixed(prompt: &str) -> Result<String, E> { Ok(prompt.to_owned()) }

#[guard_result(ledger = ("a", "b", "c"), estimate = "1", actual = |_| budgetgate::Decimal::ONE,
               cache = &*CACHE, cache_key = prompt.to_owned())]
async fn soft(prompt: &str) -> Result<String, E> { Ok(prompt.to_owned()) }

#[rate_limit(gate = ("a", "b", "c"), max_calls = 1, window = "1m",
             cache = &*CACHE, cache_key = prompt.to_owned())]
async fn limited(prompt: &str) -> Result<String, E> { Ok(prompt.to_owned()) }
fn main() {}
