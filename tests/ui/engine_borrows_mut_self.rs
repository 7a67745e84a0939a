use budgetgate::{guard_bounded, BudgetExceeded, Engine};
use std::sync::Arc;
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
struct Agent { engine: Arc<Engine>, calls: u32 }

impl Agent {
    #[guard_bounded(engine = &self.engine, ledger = ("a", "b", "c"), estimate = "1", actual = |_| budgetgate::Decimal::ONE)]
    fn act(&mut self) -> Result<u32, E> {
        self.calls += 1;
        Ok(self.calls)
    }
}
fn main() {}
