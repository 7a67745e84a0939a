use budgetgate::{BudgetExceeded, guard_bounded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard_bounded(ledger = ("a", "b", "c"), estimate = "0.5")]
fn f() -> Result<(), E> { Ok(()) }
fn main() {}
