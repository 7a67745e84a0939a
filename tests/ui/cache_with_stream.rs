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

#[guard_bounded(ledger = ("a", "b", "c"), estimate = "1", stream = |_: &u8| None,
                cache = &*CACHE, cache_key = prompt.to_owned())]
async fn f(prompt: &str) -> Result<std::iter::Empty<u8>, E> { let _ = prompt; Ok(std::iter::empty()) }
fn main() {}
