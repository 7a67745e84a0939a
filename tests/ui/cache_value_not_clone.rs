use budgetgate::cache::ResponseCache;
use budgetgate::{guard_bounded, BudgetExceeded};
use std::sync::LazyLock;
use std::time::Duration;
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
struct Completion;

static CACHE: LazyLock<ResponseCache<String, Completion>> =
    LazyLock::new(|| ResponseCache::new(Duration::from_secs(60)));

#[guard_bounded(ledger = ("a", "b", "c"), estimate = "1", actual = |_| budgetgate::Decimal::ONE,
                cache = &*CACHE, cache_key = prompt.to_owned())]
async fn f(prompt: &str) -> Result<Completion, E> { let _ = prompt; Ok(Completion) }
fn main() {}
