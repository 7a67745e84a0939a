use budgetgate::{BudgetExceeded, guard_bounded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard_bounded(ledger = ("a", "b", "c"), estimate = "0.5", stream = |_: &u8| None, actual = |_: &u8| budgetgate::dec!(1))]
fn f() -> Result<std::iter::Empty<u8>, E> { Ok(std::iter::empty()) }
fn main() {}
