//! Test support shared by the integration tests: the store conformance suite
//! (written once, run against every store) and a fault-injecting wrapper.

pub mod conformance;
pub mod fault_proxy;
pub mod faulty;
pub mod redis_server;

/// The error type of guarded functions in tests and benches: a blocked call.
#[derive(Debug)]
pub struct Blocked(pub budgetgate::BudgetExceeded);

impl From<budgetgate::BudgetExceeded> for Blocked {
    fn from(e: budgetgate::BudgetExceeded) -> Self {
        Blocked(e)
    }
}
