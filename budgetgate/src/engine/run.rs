//! Checks and reservations made inside a run scope ([`crate::run`]): the
//! call's ledgers and the runs' are charged as one hierarchy, all or
//! nothing, each ledger under its own budget (a run's, a call site's, or
//! the registered one).

use super::*;
use crate::run::Runs;

/// The call's ledgers, then the runs', each once (a ledger listed twice is
/// charged once, under the first budget it came with).
fn with_runs(
    ledgers: &[Ledger],
    budget: Option<&Budget>,
    runs: &Runs,
) -> (Vec<Ledger>, Vec<Option<Budget>>) {
    let mut all: Vec<Ledger> = Vec::with_capacity(ledgers.len() + runs.len());
    let mut budgets = Vec::with_capacity(ledgers.len() + runs.len());
    let call = ledgers.iter().map(|l| (l, budget.copied()));
    let run = runs.iter().map(|r| (r.ledger(), r.budget().copied()));
    for (ledger, budget) in call.chain(run) {
        if !all.contains(ledger) {
            all.push(ledger.clone());
            budgets.push(budget);
        }
    }
    (all, budgets)
}

impl Engine {
    fn prepare_in_run(
        &self,
        ledgers: &[Ledger],
        budgets: &[Option<Budget>],
        amount: Decimal,
        reserve: bool,
    ) -> Result<Vec<Prepared>, BudgetExceeded> {
        ledgers
            .iter()
            .zip(budgets)
            .map(|(ledger, budget)| self.prepare(ledger, budget.as_ref(), amount, reserve))
            .collect()
    }

    /// [`Engine::check_with`] / [`Engine::check_all`] inside runs.
    pub(super) fn check_in_run(
        &self,
        ledgers: &[Ledger],
        budget: Option<&Budget>,
        cost: Decimal,
        runs: &Runs,
    ) -> Decision {
        let (ledgers, budgets) = with_runs(ledgers, budget, runs);
        match self.prepare_in_run(&ledgers, &budgets, cost, false) {
            Ok(preps) => {
                let result = self
                    .inner
                    .store
                    .charge_many(&Self::requests(&ledgers, &preps));
                self.conclude_all(&ledgers, &preps, result).0
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    /// Async [`Engine::check_in_run`].
    pub(super) async fn check_in_run_async(
        &self,
        ledgers: &[Ledger],
        budget: Option<&Budget>,
        cost: Decimal,
        runs: &Runs,
    ) -> Decision {
        let (ledgers, budgets) = with_runs(ledgers, budget, runs);
        match self.prepare_in_run(&ledgers, &budgets, cost, false) {
            Ok(preps) => {
                let guard = CancelOnDrop::new(self, &ledgers, &preps);
                let result = self.charge_many_async(&ledgers, &preps).await;
                guard.disarm();
                self.conclude_all(&ledgers, &preps, result).0
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    /// [`Engine::reserve_with`] / [`Engine::reserve_all`] inside runs.
    pub(super) fn reserve_in_run(
        &self,
        ledgers: &[Ledger],
        budget: Option<&Budget>,
        estimate: Decimal,
        runs: &Runs,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        let (ledgers, budgets) = with_runs(ledgers, budget, runs);
        let preps = self.prepare_in_run(&ledgers, &budgets, estimate, true)?;
        let result = self
            .inner
            .store
            .charge_many(&Self::requests(&ledgers, &preps));
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_unknown(&ledgers, &preps);
        }
        let (decision, primary) = self.conclude_all(&ledgers, &preps, result);
        self.reservation_all(&ledgers, preps, primary, decision, backed)
            .map(Reservation::released_on_this_thread)
    }

    /// Async [`Engine::reserve_in_run`].
    pub(super) async fn reserve_in_run_async(
        &self,
        ledgers: &[Ledger],
        budget: Option<&Budget>,
        estimate: Decimal,
        runs: &Runs,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        let (ledgers, budgets) = with_runs(ledgers, budget, runs);
        let preps = self.prepare_in_run(&ledgers, &budgets, estimate, true)?;
        let guard = CancelOnDrop::new(self, &ledgers, &preps);
        let result = self.charge_many_async(&ledgers, &preps).await;
        guard.disarm();
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_unknown(&ledgers, &preps);
        }
        let (decision, primary) = self.conclude_all(&ledgers, &preps, result);
        self.reservation_all(&ledgers, preps, primary, decision, backed)
    }
}
