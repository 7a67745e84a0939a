//! [`Caps`]: every budget that applies to one ledger at once ("stacked
//! caps", e.g. 10 per day, 200 per month and 1,000 lifetime). A call must
//! fit all of them; the decision names the cap that blocked.

use std::sync::Arc;

use crate::budget::{Budget, Limit, StoreErrorMode};

/// One budget (no allocation), or several shared ones.
#[derive(Debug, Clone, PartialEq)]
pub enum Caps {
    /// A single budget.
    #[non_exhaustive]
    One {
        /// The budget (its limit is lent from inside it).
        budget: Budget,
    },
    /// Several budgets, all of which must hold (never empty: built only by
    /// [`Caps::new`]).
    #[non_exhaustive]
    Many {
        /// The budgets, in registration order.
        budgets: Arc<[Budget]>,
        /// Their limits, in the same order.
        limits: Arc<[Limit]>,
    },
}

impl Caps {
    /// One budget.
    pub fn one(budget: Budget) -> Self {
        Caps::One { budget }
    }

    /// Several budgets (a single one is stored as [`Caps::One`]); `None` if
    /// there are none.
    pub fn new(budgets: impl IntoIterator<Item = Budget>) -> Option<Self> {
        let budgets: Vec<Budget> = budgets.into_iter().collect();
        match budgets.as_slice() {
            [] => None,
            [one] => Some(Caps::one(*one)),
            _ => Some(Caps::Many {
                limits: budgets.iter().map(Budget::limit).collect(),
                budgets: budgets.into(),
            }),
        }
    }

    /// The budgets, in registration order.
    pub fn budgets(&self) -> &[Budget] {
        match self {
            Caps::One { budget, .. } => std::slice::from_ref(budget),
            Caps::Many { budgets, .. } => budgets,
        }
    }

    /// What the store enforces, one limit per budget.
    pub fn limits(&self) -> &[Limit] {
        match self {
            Caps::One { budget } => std::slice::from_ref(budget.limit_ref()),
            Caps::Many { limits, .. } => limits,
        }
    }

    /// The `i`-th budget (the first if out of range).
    pub fn budget(&self, i: usize) -> Budget {
        match self {
            Caps::One { budget, .. } => *budget,
            Caps::Many { budgets, .. } => budgets
                .get(i)
                .or_else(|| budgets.first())
                .copied()
                // Unreachable: `Caps::new` never builds an empty set.
                .unwrap_or_else(|| {
                    Budget::from_validated(
                        0,
                        crate::budget::Window::Unbounded,
                        StoreErrorMode::FailClosed,
                    )
                }),
        }
    }

    /// Fail-closed if any cap is (the safe reading of mixed policies).
    pub fn on_store_error(&self) -> StoreErrorMode {
        if self
            .budgets()
            .iter()
            .any(|b| b.on_store_error() == StoreErrorMode::FailClosed)
        {
            StoreErrorMode::FailClosed
        } else {
            StoreErrorMode::FailOpen
        }
    }
}
