use budgetgate::{guard, guard_bounded, rate_limit, BudgetExceeded, RateLimited};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
impl From<RateLimited> for E {
    fn from(_: RateLimited) -> Self { E }
}

#[guard(ledger = ("a", "b", "c"), cost = "1", max_spnd = "5")]
fn f() -> Result<(), E> { Ok(()) }

#[guard_bounded(ledger = ("a", "b", "c"), estimte = "1", actual = |_| budgetgate::Decimal::ONE)]
fn g() -> Result<(), E> { Ok(()) }

#[rate_limit(gate = ("a", "b", "c"), max_call = 3, window = "1m")]
fn h() -> Result<(), E> { Ok(()) }
fn main() {}
