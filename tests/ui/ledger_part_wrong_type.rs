use budgetgate::{guard, BudgetExceeded};
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}
struct UserId(u64);

#[guard(ledger = ("a", "b", user), cost = "1")]
fn f(user: UserId) -> Result<(), E> { Ok(()) }

#[guard(ledger = user.0 + 1, cost = "1")]
fn g(user: UserId) -> Result<(), E> { Ok(()) }
fn main() {}
