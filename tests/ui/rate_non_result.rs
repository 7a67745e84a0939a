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

#[rate_limit(gate = ("a", "b", "c"), cooldown = "1s")]
fn f() -> u32 { 1 }
fn main() {}
