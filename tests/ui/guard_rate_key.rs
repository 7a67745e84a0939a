#![allow(unused_imports)]
use budgetgate::{rate_limit, guard, RateLimited, BudgetExceeded};
#[derive(Debug)]
struct E;
impl From<RateLimited> for E {
    fn from(_: RateLimited) -> Self { E }
}
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

#[guard(ledger = ("a", "b", "c"), cost = "1", max_calls = 3)]
fn f() -> Result<(), E> { Ok(()) }
fn main() {}
