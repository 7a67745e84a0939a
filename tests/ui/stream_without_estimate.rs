use budgetgate::{BudgetExceeded, guard_bounded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard_bounded(ledger = ("a", "b", "c"), stream = |_: &u8| None)]
fn f() -> Result<std::iter::Empty<u8>, E> { Ok(std::iter::empty()) }
fn main() {}
