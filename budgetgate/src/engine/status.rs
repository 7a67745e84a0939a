//! What a ledger has spent, holds and has left, per cap: [`Engine::status`].

use super::*;

/// Spend of one ledger under one of its budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct CapStatus {
    budget: Budget,
    committed: Decimal,
    reserved: Decimal,
    resets_at: Option<std::time::SystemTime>,
}

impl CapStatus {
    /// The budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
    /// Committed spend in the window (what was charged or committed).
    pub fn committed(&self) -> Decimal {
        self.committed
    }
    /// Open reservations in the window (held, not yet committed).
    pub fn reserved(&self) -> Decimal {
        self.reserved
    }
    /// What the budget counts: committed plus reserved — the same figure
    /// as [`Decision::spent_in_window`](crate::Decision::spent_in_window).
    pub fn spent_in_window(&self) -> Decimal {
        self.committed + self.reserved
    }
    /// `max_spend − spent − reserved`, never below zero.
    pub fn remaining(&self) -> Decimal {
        (self.budget.max_spend() - self.committed - self.reserved).max(Decimal::ZERO)
    }
    /// When a calendar window next resets (rolling windows release spend
    /// continuously and unbounded ones never: `None`).
    pub fn resets_at(&self) -> Option<std::time::SystemTime> {
        self.resets_at
    }
}

/// Spend state of one ledger under each of its budgets, from
/// [`Engine::status`]. The shortcut accessors describe the tightest cap (the
/// one with the least remaining).
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerStatus {
    ledger: Ledger,
    caps: Vec<CapStatus>,
    tightest: usize,
}

impl LedgerStatus {
    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    /// Every cap, in registration order.
    pub fn caps(&self) -> &[CapStatus] {
        &self.caps
    }
    /// The tightest cap.
    pub fn tightest(&self) -> &CapStatus {
        &self.caps[self.tightest]
    }
    /// The tightest cap's budget.
    pub fn budget(&self) -> &Budget {
        self.tightest().budget()
    }
    /// Committed spend in the tightest cap's window.
    pub fn committed(&self) -> Decimal {
        self.tightest().committed()
    }
    /// Committed plus reserved in the tightest cap's window (what the
    /// budget counts).
    pub fn spent_in_window(&self) -> Decimal {
        self.tightest().spent_in_window()
    }
    /// Open reservations in the tightest cap's window.
    pub fn reserved(&self) -> Decimal {
        self.tightest().reserved()
    }
    /// What the tightest cap leaves, never below zero.
    pub fn remaining(&self) -> Decimal {
        self.tightest().remaining()
    }
}

/// Why [`Engine::status`] has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// No budget is registered for the ledger and the default policy
    /// denies. A budget written in an attribute (`max_spend = …`) belongs
    /// to that call site, not to the engine: read it with
    /// [`Engine::status_with`].
    #[error("no budget is registered for {0} and the default policy denies (for a budget given in an attribute, use Engine::status_with(&ledger, &budget))")]
    NoBudget(Ledger),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Spend, reservations and remaining headroom of `ledger` under the budget
    /// that applies to it.
    pub fn status(&self, ledger: &Ledger) -> Result<LedgerStatus, StatusError> {
        let caps = self
            .caps_for(ledger)
            .ok_or_else(|| StatusError::NoBudget(ledger.clone()))?;
        let usage = self.inner.store.status(ledger, caps.limits())?;
        Ok(Self::ledger_status(ledger, &caps, &usage))
    }

    /// [`Engine::status`] under an explicit budget.
    pub fn status_with(
        &self,
        ledger: &Ledger,
        budget: &Budget,
    ) -> Result<LedgerStatus, StatusError> {
        let caps = Caps::one(*budget);
        let usage = self.inner.store.status(ledger, caps.limits())?;
        Ok(Self::ledger_status(ledger, &caps, &usage))
    }

    /// Async [`Engine::status`].
    pub async fn status_async(&self, ledger: &Ledger) -> Result<LedgerStatus, StatusError> {
        let caps = self
            .caps_for(ledger)
            .ok_or_else(|| StatusError::NoBudget(ledger.clone()))?;
        let usage = self.inner.store.status_async(ledger, caps.limits()).await?;
        Ok(Self::ledger_status(ledger, &caps, &usage))
    }

    /// Forgets what `ledger` has spent and holds (an operator's reset;
    /// BudgetLLM's `reset`, the Python budgetgate's `clear`): every window
    /// of it starts from zero. Reported as [`Event::Reset`] (and a `warn`
    /// log) naming `by` — who asked — and what was forgotten, which is
    /// returned (`None` when no budget applies, so nothing could be read).
    /// Open reservations are forgotten too: their commits record the
    /// actual at the commit's time.
    pub fn reset_ledger(
        &self,
        ledger: &Ledger,
        by: &str,
    ) -> Result<Option<LedgerStatus>, StoreError> {
        let before = match self.status(ledger) {
            Ok(status) => Some(status),
            Err(StatusError::NoBudget(_)) => None,
            Err(StatusError::Store(e)) => return Err(e),
        };
        self.inner.store.reset(ledger)?;
        let (committed, reserved) = before.as_ref().map_or((Decimal::ZERO, Decimal::ZERO), |s| {
            let committed = s.caps().iter().map(CapStatus::committed).max();
            let reserved = s.caps().iter().map(CapStatus::reserved).max();
            (committed.unwrap_or_default(), reserved.unwrap_or_default())
        });
        tracing::warn!(%ledger, %by, %committed, %reserved, "ledger reset");
        self.emit(&Event::Reset {
            ledger,
            by,
            committed,
            reserved,
        });
        Ok(before)
    }

    fn ledger_status(
        ledger: &Ledger,
        caps: &Caps,
        usage: &[crate::store::WindowUsage],
    ) -> LedgerStatus {
        let caps: Vec<CapStatus> = caps
            .budgets()
            .iter()
            .enumerate()
            .map(|(i, budget)| {
                let (committed, reserved, at) = usage
                    .get(i)
                    .map_or((0, 0, 0), |u| (u.committed, u.reserved, u.at));
                CapStatus {
                    budget: *budget,
                    committed: from_nanos(committed),
                    reserved: from_nanos(reserved),
                    resets_at: budget.window().period_end(at).and_then(|end| {
                        std::time::UNIX_EPOCH
                            .checked_add(Duration::from_micros(u64::try_from(end).ok()?))
                    }),
                }
            })
            .collect();
        let tightest = (0..caps.len())
            .min_by_key(|&i| caps[i].remaining())
            .unwrap_or(0);
        LedgerStatus {
            ledger: ledger.clone(),
            caps,
            tightest,
        }
    }
}
