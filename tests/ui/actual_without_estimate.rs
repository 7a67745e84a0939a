use budgetgate::{BudgetExceeded, guard_result};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard_result(ledger = ("a", "b", "c"), cost = "1", actual = |_: &u32| budgetgate::Decimal::ONE)]
fn f() -> u32 { 1 }
fn main() {}
