#![allow(dead_code)]
use budgetgate::BudgetExceeded;
#[derive(Debug)]
struct E;
impl From<BudgetExceeded> for E {
    fn from(_: BudgetExceeded) -> Self { E }
}

fn f(engine: &budgetgate::Engine, ledger: &budgetgate::Ledger) {
    let r = engine.reserve(ledger, budgetgate::Decimal::ONE).unwrap();
    let _ = r.commit(budgetgate::Decimal::ONE);
    let _ = r.commit(budgetgate::Decimal::ONE);
}
fn main() {}
