use budgetgate::{BudgetExceeded, guard_bounded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard_bounded(ledger = ("a", "b", "c"), estimate = "1", actual = |_| budgetgate::Decimal::ONE)]
fn f() {}
fn main() {}
