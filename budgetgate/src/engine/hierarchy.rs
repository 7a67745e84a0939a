//! Hierarchies: one call charged to several ledgers (user, project, org),
//! all or nothing; a ledger listed twice is charged once.

use super::*;

/// The ledgers of a hierarchy, each once, in the order first listed: a
/// ledger listed twice (`[user, user]`, or a user who is also the team) is
/// one spend stream and is charged once.
pub(super) fn distinct(ledgers: &[Ledger]) -> std::borrow::Cow<'_, [Ledger]> {
    let repeated = if ledgers.len() <= 16 {
        (1..ledgers.len()).any(|i| ledgers[..i].contains(&ledgers[i]))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(ledgers.len());
        !ledgers.iter().all(|l| seen.insert(l))
    };
    if !repeated {
        return std::borrow::Cow::Borrowed(ledgers);
    }
    let mut once: Vec<Ledger> = Vec::with_capacity(ledgers.len());
    for ledger in ledgers {
        if !once.contains(ledger) {
            once.push(ledger.clone());
        }
    }
    std::borrow::Cow::Owned(once)
}

impl Engine {
    /// A fixed cost charged to several ledgers at once — a hierarchy such as
    /// user, project and global — all or nothing, each under its own
    /// registered budgets. The decision is the blocking ledger's, or (when
    /// allowed) the one with the least room left. A ledger listed more than
    /// once (a user who is also the team) is charged once.
    ///
    /// ```
    /// use budgetgate::{Budget, Engine, Ledger};
    /// use budgetgate::dec;
    ///
    /// let engine = Engine::in_memory();
    /// let user = Ledger::new("llm", "gpt-4o", "user:1");
    /// let project = Ledger::new("llm", "gpt-4o", "project:a");
    /// engine.set_budget(&user, Budget::lifetime(dec!(10))?);
    /// engine.set_budget(&project, Budget::lifetime(dec!(9))?);
    /// let both = [user.clone(), project.clone()];
    /// assert!(engine.check_all(&both, dec!(8)).is_allowed());
    /// let blocked = engine.check_all(&both, dec!(1.5));
    /// assert_eq!(blocked.ledger(), &project); // the user has room; 8 + 1.5 > 9
    /// assert_eq!(engine.status(&user)?.committed(), dec!(8)); // nothing recorded for the user
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_all(&self, ledgers: &[Ledger], cost: Decimal) -> Decision {
        #[cfg(feature = "run")]
        if let Some(runs) = crate::run::active() {
            return self.check_in_run(ledgers, None, cost, &runs);
        }
        let ledgers = &*distinct(ledgers);
        match self.prepare_all(ledgers, cost, false) {
            Ok(preps) => {
                let result = self
                    .inner
                    .store
                    .charge_many(&Self::requests(ledgers, &preps));
                self.conclude_all(ledgers, &preps, result).0
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    /// A reservation on several ledgers at once, all or nothing; commit and
    /// release settle every one.
    pub fn reserve_all(
        &self,
        ledgers: &[Ledger],
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        #[cfg(feature = "run")]
        if let Some(runs) = crate::run::active() {
            return self.reserve_in_run(ledgers, None, estimate, &runs);
        }
        let ledgers = &*distinct(ledgers);
        let preps = self.prepare_all(ledgers, estimate, true)?;
        let result = self
            .inner
            .store
            .charge_many(&Self::requests(ledgers, &preps));
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_unknown(ledgers, &preps);
        }
        let (decision, primary) = self.conclude_all(ledgers, &preps, result);
        self.reservation_all(ledgers, preps, primary, decision, backed)
            .map(Reservation::released_on_this_thread)
    }

    /// Async [`Engine::check_all`].
    pub async fn check_all_async(&self, ledgers: &[Ledger], cost: Decimal) -> Decision {
        #[cfg(feature = "run")]
        if let Some(runs) = crate::run::active() {
            return self.check_in_run_async(ledgers, None, cost, &runs).await;
        }
        let ledgers = &*distinct(ledgers);
        match self.prepare_all(ledgers, cost, false) {
            Ok(preps) => {
                // Dropped while the store works: cancelled by id (see
                // `check_with_async`).
                let guard = CancelOnDrop::new(self, ledgers, &preps);
                let result = self.charge_many_async(ledgers, &preps).await;
                guard.disarm();
                self.conclude_all(ledgers, &preps, result).0
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    /// Async [`Engine::reserve_all`].
    pub async fn reserve_all_async(
        &self,
        ledgers: &[Ledger],
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        #[cfg(feature = "run")]
        if let Some(runs) = crate::run::active() {
            return self
                .reserve_in_run_async(ledgers, None, estimate, &runs)
                .await;
        }
        let ledgers = &*distinct(ledgers);
        let preps = self.prepare_all(ledgers, estimate, true)?;
        let guard = CancelOnDrop::new(self, ledgers, &preps);
        let result = self.charge_many_async(ledgers, &preps).await;
        guard.disarm();
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_unknown(ledgers, &preps);
        }
        let (decision, primary) = self.conclude_all(ledgers, &preps, result);
        self.reservation_all(ledgers, preps, primary, decision, backed)
    }

    pub(super) async fn charge_many_async(
        &self,
        ledgers: &[Ledger],
        preps: &[Prepared],
    ) -> Result<ManyOutcome, StoreError> {
        self.inner
            .store
            .charge_many_async(Self::requests(ledgers, preps))
            .await
    }

    pub(super) fn requests<'a>(
        ledgers: &'a [Ledger],
        preps: &'a [Prepared],
    ) -> Vec<ChargeRequest<'a>> {
        ledgers
            .iter()
            .zip(preps)
            .map(|(ledger, p)| Self::request(ledger, p))
            .collect()
    }

    fn prepare_all(
        &self,
        ledgers: &[Ledger],
        amount: Decimal,
        reserve: bool,
    ) -> Result<Vec<Prepared>, BudgetExceeded> {
        if ledgers.is_empty() {
            return Err(self.refuse_amount(
                &Ledger::new("", "", ""),
                None,
                "a hierarchy needs at least one ledger",
            ));
        }
        ledgers
            .iter()
            .map(|ledger| self.prepare(ledger, None, amount, reserve))
            .collect()
    }

    /// The decision of a hierarchy and the index of the ledger it is about.
    pub(super) fn conclude_all(
        &self,
        ledgers: &[Ledger],
        preps: &[Prepared],
        result: Result<ManyOutcome, StoreError>,
    ) -> (Decision, usize) {
        match result {
            Ok(ManyOutcome::Refused { index, outcome }) => {
                let index = index.min(ledgers.len() - 1);
                (
                    self.conclude(&ledgers[index], preps[index].clone(), Ok(outcome)),
                    index,
                )
            }
            Ok(ManyOutcome::Admitted(outcomes)) => {
                for (i, outcome) in outcomes.iter().enumerate().take(ledgers.len()) {
                    if outcome.warnings != 0 {
                        self.soft_limits(&ledgers[i], &preps[i], outcome);
                    }
                }
                let decisions: Vec<Decision> = outcomes
                    .into_iter()
                    .zip(ledgers.iter().zip(preps))
                    .map(|(o, (l, p))| Self::decide(l, p.clone(), Ok(o)))
                    .collect();
                let tightest = (0..decisions.len())
                    .min_by_key(|&i| decisions[i].remaining_nanos())
                    .unwrap_or(0);
                let decision = decisions.into_iter().nth(tightest);
                match decision {
                    Some(d) => (self.emit_decision(d), tightest),
                    None => (
                        self.conclude(
                            &ledgers[0],
                            preps[0].clone(),
                            Err(StoreError::Backend(
                                "the store answered a hierarchy with no outcomes".into(),
                            )),
                        ),
                        0,
                    ),
                }
            }
            Err(error) => {
                // Fail closed if any ledger's budgets do.
                let index = preps
                    .iter()
                    .position(|p| p.caps.on_store_error() == StoreErrorMode::FailClosed)
                    .unwrap_or(0);
                let uncertain = error.may_have_applied();
                let decision = Self::decide(&ledgers[index], preps[index].clone(), Err(error));
                // Fixed costs: recorded by id (fail-open) or cancelled by id
                // (the call does not run); reservations cancel their holds.
                for (ledger, p) in ledgers.iter().zip(preps) {
                    if p.hold.is_none() {
                        let (caps, admitted) = (&p.caps, decision.is_allowed());
                        self.fixed_cost_failed(ledger, caps, p.nanos, p.id, admitted, uncertain);
                    }
                }
                self.report(&decision);
                (decision, index)
            }
        }
    }

    pub(super) fn reservation_all(
        &self,
        ledgers: &[Ledger],
        preps: Vec<Prepared>,
        primary: usize,
        decision: Decision,
        backed: bool,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        if decision.is_blocked() {
            return Err(BudgetExceeded::new(decision));
        }
        let mut others = Vec::with_capacity(preps.len().saturating_sub(1));
        let mut main = None;
        for (i, p) in preps.into_iter().enumerate() {
            if i == primary {
                main = Some(p);
            } else {
                others.push(crate::reservation::Part {
                    ledger: ledgers[i].clone(),
                    id: p.id,
                    caps: p.caps,
                });
            }
        }
        let main = main.ok_or_else(|| {
            self.refuse_amount(&ledgers[0], None, "internal error: no primary ledger")
        })?;
        Ok(
            Reservation::new(self, main.nanos, main.hold_id(), decision, backed)
                .with_others(others),
        )
    }
}
