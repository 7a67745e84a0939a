use budgetgate::cache::ResponseCache;
use budgetgate::{guard_bounded, BudgetExceeded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
struct Agent {
    cache: ResponseCache<String, String>,
    asked: u32,
}

impl Agent {
    #[guard_bounded(ledger = ("a", "b", "c"), estimate = "1", actual = |_| budgetgate::Decimal::ONE,
                    cache = &self.cache, cache_key = prompt.to_owned())]
    async fn ask(&mut self, prompt: &str) -> Result<String, E> {
        self.asked += 1;
        Ok(prompt.to_owned())
    }
}
fn main() {}
