use budgetgate::{BudgetExceeded, guard_bounded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

// The stream is wrapped in a guarded stream: a concrete type cannot hold it.
#[guard_bounded(ledger = ("a", "b", "c"), estimate = "0.5", stream = |_: &u8| None)]
fn f() -> Result<Vec<u8>, E> { Ok(Vec::new()) }
fn main() {}
