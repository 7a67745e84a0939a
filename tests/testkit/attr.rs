//! What the attribute tests share: their error type and budget helpers.

use budgetgate::{Budget, BudgetExceeded, Decimal, Engine, Ledger};

/// A guarded tool's error: blocked, or failed on its own.
#[derive(Debug)]
pub enum ToolError {
    /// The budget refused the call.
    Budget(BudgetExceeded),
    /// The tool failed.
    Failed(&'static str),
}

impl From<BudgetExceeded> for ToolError {
    fn from(e: BudgetExceeded) -> Self {
        ToolError::Budget(e)
    }
}

/// (committed, reserved) of a ledger under `budget`.
pub fn spent_on(
    engine: &Engine,
    ns: &str,
    res: &str,
    principal: &str,
    budget: Budget,
) -> (Decimal, Decimal) {
    let s = engine
        .status_with(&Ledger::new(ns, res, principal), &budget)
        .unwrap();
    (s.committed(), s.reserved())
}

/// A lifetime budget of `max`.
pub fn lifetime(max: Decimal) -> Budget {
    Budget::lifetime(max).unwrap()
}
