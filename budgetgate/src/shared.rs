//! Budgets as shared data: budgets an operator stores *in the store*, so
//! every engine and every service replica on that store enforces the same
//! ones, and a change applies everywhere within a second — no redeploy.
//!
//! - [`Engine::put_shared_budget`](crate::Engine::put_shared_budget) / [`Engine::remove_shared_budget`](crate::Engine::remove_shared_budget) write
//!   one [`SharedBudget`] (a ledger, or a principal pattern such as
//!   `user:*`, with one or more stacked caps) and bump a version counter,
//!   atomically.
//! - An engine built with [`EngineBuilder::shared_budgets`](crate::EngineBuilder::shared_budgets)
//!   polls that version from a background thread (every
//!   [`SHARED_BUDGETS_POLL`] by default: one `GET` on Redis) and reloads the
//!   budgets only when it changed. The hot path reads one atomic flag and,
//!   when operator budgets exist, makes one more registry lookup (a
//!   thread-local snapshot, no shared write).
//!
//! ## Precedence
//!
//! For a ledger, the first that applies wins:
//!
//! 1. an **operator-stored budget** for the exact ledger;
//! 2. the most specific **operator-stored pattern** that matches
//!    (most characters other than `*`);
//! 3. a **call-site budget** (an attribute's `budget = …`, the `budget`
//!    argument of [`Engine::check_with`](crate::Engine::check_with) and friends);
//! 4. a **budget registered in code** ([`Engine::set_budget`](crate::Engine::set_budget), then patterns);
//! 5. the engine's [`DefaultPolicy`](crate::DefaultPolicy).
//!
//! The operator's budget wins over code because it is the only one that can
//! be changed while the fleet runs: lowering a cap in an incident must take
//! effect without a redeploy. Removing the operator's budget hands the
//! ledger back to what the code says.
//!
//! ```
//! use budgetgate::shared::SharedBudget;
//! use budgetgate::{dec, Budget, Engine, Ledger};
//!
//! let engine = Engine::builder().shared_budgets(true).build();
//! let ledger = Ledger::new("llm", "chat", "user:1");
//! engine.set_budget(&ledger, Budget::lifetime(dec!(100))?); // in code
//! engine.put_shared_budget(&SharedBudget::new("llm", "chat", "user:*", vec![Budget::lifetime(dec!(1))?]))?;
//! engine.refresh_shared_budgets()?; // the poller does this within a second
//! assert_eq!(engine.budget_for(&ledger).map(|b| b.max_spend()), Some(dec!(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::budget::Budget;
use crate::caps::Caps;
use crate::ledger::Ledger;
use crate::store::StoreError;

/// How often an engine with shared budgets polls their version by default.
pub const SHARED_BUDGETS_POLL: Duration = Duration::from_millis(250);

/// One operator-stored budget: `namespace:resource`, a principal (exact,
/// or a pattern when it contains `*`) and its caps (at least one).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedBudget {
    /// The ledgers' namespace.
    pub namespace: String,
    /// The ledgers' resource.
    pub resource: String,
    /// An exact principal, or a pattern (`*` matches any run of characters).
    pub principal: String,
    /// The caps: a call must fit every one.
    pub budgets: Vec<Budget>,
}

/// A shared budget that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedBudgetError {
    /// No cap was given.
    #[error("a shared budget needs at least one cap")]
    NoCaps,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SharedBudget {
    /// A shared budget.
    pub fn new(
        namespace: impl Into<String>,
        resource: impl Into<String>,
        principal: impl Into<String>,
        budgets: Vec<Budget>,
    ) -> Self {
        SharedBudget {
            namespace: namespace.into(),
            resource: resource.into(),
            principal: principal.into(),
            budgets,
        }
    }

    /// Whether the principal is a pattern (contains `*`).
    pub fn is_pattern(&self) -> bool {
        self.principal.contains('*')
    }

    /// The key it is stored under (one per namespace, resource, principal).
    pub fn key(&self) -> String {
        key(&self.namespace, &self.resource, &self.principal)
    }
}

/// The store key of a shared budget: JSON of the three parts, so no two
/// (namespace, resource, principal) share one.
pub fn key(namespace: &str, resource: &str, principal: &str) -> String {
    serde_json::to_string(&[namespace, resource, principal]).unwrap_or_default()
}

/// The operator budgets in `texts` (entries that do not parse are skipped
/// and logged), sorted by namespace, resource, principal.
pub(crate) fn parse_all(texts: Vec<String>) -> Vec<SharedBudget> {
    let mut all: Vec<SharedBudget> = texts
        .iter()
        .filter_map(|t| match serde_json::from_str::<SharedBudget>(t) {
            Ok(sb) => Some(sb),
            Err(error) => {
                tracing::error!(%error, "a shared budget in the store does not parse; ignored");
                None
            }
        })
        .collect();
    all.sort_by(|a, b| {
        (&a.namespace, &a.resource, &a.principal).cmp(&(&b.namespace, &b.resource, &b.principal))
    });
    all
}

/// An engine's operator budgets.
pub(crate) struct SharedState {
    pub(crate) registry: crate::registry::Registry,
    /// Whether any operator budget is loaded (the hot path skips the lookup otherwise).
    pub(crate) active: std::sync::atomic::AtomicBool,
    /// The store version loaded (0: none).
    pub(crate) version: std::sync::atomic::AtomicU64,
}

impl SharedState {
    pub(crate) fn new() -> Self {
        SharedState {
            registry: crate::registry::Registry::new(Default::default()),
            active: std::sync::atomic::AtomicBool::new(false),
            version: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The operator caps of `ledger`, if any.
    #[inline]
    pub(crate) fn lookup(&self, ledger: &Ledger) -> Option<Caps> {
        if self.active.load(Ordering::Acquire) {
            self.registry.lookup(ledger)
        } else {
            None
        }
    }
}
