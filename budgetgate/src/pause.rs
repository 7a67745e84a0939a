//! The kill switch: pause and resume a ledger, a namespace, or everything.
//!
//! Pauses live in the store, so with a shared store every process sees them
//! on its next operation. A paused call is blocked with reason `Paused`;
//! spend already recorded is kept, and commits of calls already running
//! still land (the money was spent).
//!
//! ```
//! use budgetgate::{BlockReason, Budget, Engine, Ledger, PauseScope};
//! use budgetgate::dec;
//!
//! let engine = Engine::in_memory();
//! let ledger = Ledger::new("openai", "gpt-4o", "user:1");
//! engine.set_budget(&ledger, Budget::lifetime(dec!(10))?);
//! engine.pause(&PauseScope::Namespace("openai".into()))?;
//! assert_eq!(engine.check(&ledger, dec!(1)).reason(), Some(BlockReason::Paused));
//! engine.resume(&PauseScope::Namespace("openai".into()))?;
//! assert!(engine.check(&ledger, dec!(1)).is_allowed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use crate::ledger::Ledger;

/// What a pause covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PauseScope {
    /// Every ledger.
    All,
    /// Every ledger of a namespace.
    Namespace(String),
    /// One ledger.
    Ledger(Ledger),
}

impl PauseScope {
    /// Whether this pause covers `ledger`.
    pub fn covers(&self, ledger: &Ledger) -> bool {
        match self {
            PauseScope::All => true,
            PauseScope::Namespace(ns) => ledger.namespace() == ns,
            PauseScope::Ledger(l) => l == ledger,
        }
    }
}

impl fmt::Display for PauseScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PauseScope::All => f.write_str("everything"),
            PauseScope::Namespace(ns) => write!(f, "namespace {ns}"),
            PauseScope::Ledger(l) => write!(f, "ledger {l}"),
        }
    }
}
