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

#[rate_limit(max_calls = 1, window = "1m")]
fn f() -> Result<(), E> { Ok(()) }
fn main() {}
