//! [`Engine`]: decides, records and reports — the API the attributes call.
//!
//! An engine owns one [`Store`], the registered budgets, the default policy
//! for ledgers without a budget, and the listeners. Sync and async methods
//! go to the same store.
//!
//! Files: this one holds the engine and single-ledger checks and
//! reservations; `builder.rs` the [`EngineBuilder`], `status.rs` what a
//! ledger has spent ([`Engine::status`]), `hierarchy.rs` charges to several
//! ledgers at once ([`Engine::check_all`]), `budgets.rs` which budget
//! applies to a ledger ([`Engine::set_budget`], patterns), `rates.rs` call-rate checks
//! ([`Engine::rate_check`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::time::Duration;

use rust_decimal::Decimal;

use crate::amount::{self, from_nanos};
use crate::budget::{Budget, StoreErrorMode};
use crate::caps::Caps;
use crate::decision::{BlockReason, BudgetExceeded, Decision, Status};
use crate::event::{Event, Listener};
use crate::ledger::Ledger;
use crate::pause::PauseScope;
use crate::rate::{Gate, Policy, RateDecision, RateReason};
use crate::registry::{Budgets, Registry};
use crate::reservation::Reservation;
use crate::settler::Settler;
use crate::store::{RateOutcome, RateRequest};

mod budgets;
mod builder;
mod hierarchy;
mod rates;
#[cfg(feature = "run")]
mod run;
mod shared_budgets;
mod status;

use crate::store::{
    ChargeOutcome, ChargeRequest, Hold, ManyOutcome, MemoryStore, Nanos, ReservationId, Store,
    StoreError,
};
pub use builder::EngineBuilder;

pub use status::{CapStatus, LedgerStatus, StatusError};

/// Default time a reservation is held if nobody commits or releases it.
pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(600);

/// How long a commit keeps trying in the foreground by default.
pub const DEFAULT_COMMIT_DEADLINE: Duration = Duration::from_secs(2);

/// The shortest reservation TTL an engine uses (shorter settings are raised
/// to it).
pub const MIN_RESERVATION_TTL: Duration = Duration::from_secs(1);

/// What applies to a ledger that has no registered budget and no budget in
/// the attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultPolicy {
    /// Block with reason `NoBudget`: money nobody budgeted is not spent. The default.
    #[default]
    Deny,
    /// Apply this budget to every such ledger (each ledger counts separately).
    Budget(Budget),
}

/// The decision engine. Cheap to clone (an `Arc`); clones share everything.
///
/// ```
/// use budgetgate::{Budget, Engine, Ledger};
/// use budgetgate::dec;
///
/// let engine = Engine::in_memory();
/// let ledger = Ledger::new("openai", "gpt-4o", "user:42");
/// engine.set_budget(&ledger, Budget::lifetime(dec!(1.00))?);
///
/// // Fixed cost: checked and recorded in one step.
/// assert!(engine.check(&ledger, dec!(0.30)).is_allowed());
///
/// // Bounded cost: reserve the worst case, commit the truth.
/// let reservation = engine.reserve(&ledger, dec!(0.50)).expect("fits");
/// let commit = reservation.commit(dec!(0.20)).expect("recorded");
/// assert!(!commit.is_late());
/// assert_eq!(engine.status(&ledger)?.committed(), dec!(0.50));
///
/// // 0.50 + 0.60 > 1.00: blocked, nothing recorded.
/// assert!(engine.check(&ledger, dec!(0.60)).is_blocked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// Read on every call, written rarely.
    budgets: Registry,
    default_policy: DefaultPolicy,
    listeners: Vec<Box<dyn Listener>>,
    listener_panics: AtomicU64,
    reservation_ttl: Duration,
    commit_deadline: Duration,
    /// Finishes writes whose outcome was unknown (see [`crate::settler`]).
    settler: Settler,
    /// Operator-stored budgets (see [`crate::shared`]).
    shared: crate::shared::SharedState,
}

/// An engine that does not keep it alive (the shared-budgets poller's).
pub(crate) struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    pub(crate) fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

impl crate::settler::Reporter for Inner {
    fn report(&self, event: &Event<'_>) {
        emit_to(&self.listeners, &self.listener_panics, event);
    }
}

/// Delivers an event to every listener, catching and counting panics.
fn emit_to(listeners: &[Box<dyn Listener>], panics: &AtomicU64, event: &Event<'_>) {
    for listener in listeners {
        if catch_unwind(AssertUnwindSafe(|| listener.on_event(event))).is_err() {
            panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.inner.store)
            .field("default_policy", &self.inner.default_policy)
            .field("listeners", &self.inner.listeners.len())
            .field("reservation_ttl", &self.inner.reservation_ttl)
            .finish_non_exhaustive()
    }
}

/// Cancels a reservation request in flight if the future waiting for it is
/// dropped (see [`Engine::reserve_async`]).
struct CancelOnDrop<'a> {
    engine: &'a Engine,
    ledgers: &'a [Ledger],
    preps: &'a [Prepared],
    armed: bool,
}

impl<'a> CancelOnDrop<'a> {
    fn new(engine: &'a Engine, ledgers: &'a [Ledger], preps: &'a [Prepared]) -> Self {
        CancelOnDrop {
            engine,
            ledgers,
            preps,
            armed: true,
        }
    }

    /// The store answered: whoever holds the answer settles.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.engine.cancel_unknown(self.ledgers, self.preps);
        }
    }
}

/// The settler's job for a fixed cost of `nanos` charged under `id`: take
/// it back ([`Kind::Cancel`](crate::settler::Kind::Cancel)) or record it
/// ([`Kind::RecordFixed`](crate::settler::Kind::RecordFixed)).
fn fixed_job(
    kind: crate::settler::Kind,
    ledger: &Ledger,
    caps: &Caps,
    nanos: Nanos,
    id: ReservationId,
) -> crate::settler::Job {
    let record = kind == crate::settler::Kind::RecordFixed;
    crate::settler::Job {
        kind,
        ledger: ledger.clone(),
        limits: caps.limits().to_vec(),
        id,
        reserved: nanos,
        actual: record.then_some(nanos),
        record_if_missing: record,
    }
}

/// A request that passed validation, ready for the store.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) caps: Caps,
    pub(crate) nanos: Nanos,
    pub(crate) requested: Decimal,
    /// The write's id, chosen before anything is sent: a reservation's (the
    /// hold carries it too) or a fixed cost's, so a write whose answer was
    /// lost can be settled by id.
    pub(crate) id: ReservationId,
    pub(crate) hold: Option<Hold>,
}

impl Prepared {
    /// The reservation's id (a check's own for a fixed cost).
    fn hold_id(&self) -> ReservationId {
        self.id
    }
}

impl Engine {
    /// A builder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    pub(crate) fn shared_state(&self) -> &crate::shared::SharedState {
        &self.inner.shared
    }

    pub(crate) fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// An engine on a fresh [`MemoryStore`] with default settings; reads
    /// no environment variable.
    pub fn in_memory() -> Engine {
        Engine::in_memory_with(DefaultPolicy::Deny)
    }

    pub(super) fn in_memory_with(policy: DefaultPolicy) -> Engine {
        EngineBuilder::default()
            .store(MemoryStore::new())
            .default_policy(policy)
            .reservation_ttl(DEFAULT_RESERVATION_TTL)
            .finish()
    }

    /// An engine on `store` with default settings (the default policy and
    /// reservation TTL from the environment, if set).
    pub fn new(store: impl Store) -> Engine {
        Engine::builder().store(store).build()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The reservation TTL.
    pub fn reservation_ttl(&self) -> Duration {
        self.inner.reservation_ttl
    }

    /// Writes whose outcome was unknown — commits not confirmed, failed
    /// releases, cancelled reservations, fail-open spend — still being
    /// retried in the background.
    pub fn pending_settles(&self) -> usize {
        self.inner.settler.pending()
    }

    /// Waits until no write is being retried in the background, at most
    /// `limit`; says whether that happened. Call it before a process exits
    /// (a graceful shutdown), so spend whose recording was still being
    /// retried is not left to the reservation TTL or lost.
    ///
    /// ```
    /// let engine = budgetgate::Engine::in_memory();
    /// assert!(engine.wait_settled(std::time::Duration::from_secs(1)));
    /// ```
    pub fn wait_settled(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit.min(Duration::from_secs(3600));
        loop {
            if self.pending_settles() == 0 {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many listener calls panicked (each was caught).
    pub fn listener_panics(&self) -> u64 {
        self.inner.listener_panics.load(Ordering::Relaxed)
    }

    // ----- fixed cost -------------------------------------------------------

    /// Fixed cost under the ledger's registered budget: check `cost` and, if it
    /// fits, record it — in one atomic step.
    pub fn check(&self, ledger: &Ledger, cost: Decimal) -> Decision {
        self.check_with(ledger, None, cost)
    }

    /// [`Engine::check`] with an explicit budget (`None`: the registered one).
    pub fn check_with(&self, ledger: &Ledger, budget: Option<&Budget>, cost: Decimal) -> Decision {
        #[cfg(feature = "run")]
        if let Some(runs) = crate::run::active() {
            return self.check_in_run(std::slice::from_ref(ledger), budget, cost, &runs);
        }
        match self.prepare(ledger, budget, cost, false) {
            Ok(p) => {
                let result = self.inner.store.charge(&Self::request(ledger, &p));
                self.conclude(ledger, p, result)
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    /// Async [`Engine::check`].
    pub async fn check_async(&self, ledger: &Ledger, cost: Decimal) -> Decision {
        self.check_with_async(ledger, None, cost).await
    }

    /// Async [`Engine::check_with`].
    pub async fn check_with_async(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        cost: Decimal,
    ) -> Decision {
        #[cfg(feature = "run")]
        if let Some(runs) = crate::run::active() {
            return self
                .check_in_run_async(std::slice::from_ref(ledger), budget, cost, &runs)
                .await;
        }
        match self.prepare(ledger, budget, cost, false) {
            Ok(p) => {
                // Dropped while the store works: the charge may still be
                // recorded, and the call will not run; it is cancelled by id.
                let guard =
                    CancelOnDrop::new(self, std::slice::from_ref(ledger), std::slice::from_ref(&p));
                let result = self
                    .inner
                    .store
                    .charge_async(Self::request(ledger, &p))
                    .await;
                guard.disarm();
                self.conclude(ledger, p, result)
            }
            Err(blocked) => blocked.into_decision(),
        }
    }

    // ----- bounded cost -----------------------------------------------------

    /// Bounded cost under the ledger's registered budget: reserve the worst
    /// case `estimate`. Commit the actual with [`Reservation::commit`];
    /// dropping the reservation releases it.
    pub fn reserve(
        &self,
        ledger: &Ledger,
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        self.reserve_with(ledger, None, estimate)
    }

    /// [`Engine::reserve`] with an explicit budget (`None`: the registered one).
    pub fn reserve_with(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        #[cfg(feature = "run")]
        if let Some(runs) = crate::run::active() {
            return self.reserve_in_run(std::slice::from_ref(ledger), budget, estimate, &runs);
        }
        let p = self.prepare(ledger, budget, estimate, true)?;
        let result = self.inner.store.charge(&Self::request(ledger, &p));
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_unknown(std::slice::from_ref(ledger), std::slice::from_ref(&p));
        }
        let (nanos, id) = (p.nanos, p.hold_id());
        let decision = self.conclude(ledger, p, result);
        self.reservation(nanos, id, decision, backed)
            .map(Reservation::released_on_this_thread)
    }

    /// Async [`Engine::reserve`].
    pub async fn reserve_async(
        &self,
        ledger: &Ledger,
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        self.reserve_with_async(ledger, None, estimate).await
    }

    /// Async [`Engine::reserve_with`].
    pub async fn reserve_with_async(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        estimate: Decimal,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        #[cfg(feature = "run")]
        if let Some(runs) = crate::run::active() {
            return self
                .reserve_in_run_async(std::slice::from_ref(ledger), budget, estimate, &runs)
                .await;
        }
        let p = self.prepare(ledger, budget, estimate, true)?;
        // If this future is dropped while the store works, the hold may
        // still be made: the guard cancels it by id (chosen here, before
        // sending) in the background.
        let guard = CancelOnDrop::new(self, std::slice::from_ref(ledger), std::slice::from_ref(&p));
        let result = self
            .inner
            .store
            .charge_async(Self::request(ledger, &p))
            .await;
        guard.disarm();
        let backed = result.is_ok();
        if result.as_ref().is_err_and(StoreError::may_have_applied) {
            self.cancel_unknown(std::slice::from_ref(ledger), std::slice::from_ref(&p));
        }
        let (nanos, id) = (p.nanos, p.hold_id());
        let decision = self.conclude(ledger, p, result);
        self.reservation(nanos, id, decision, backed)
    }

    // ----- internals shared by sync and async paths ---------------------------

    fn request<'a>(ledger: &'a Ledger, p: &'a Prepared) -> ChargeRequest<'a> {
        ChargeRequest {
            ledger,
            limits: p.caps.limits(),
            amount: p.nanos,
            hold: p.hold,
            id: p.hold.is_none().then_some(p.id),
        }
    }

    /// Resolves the budget and validates the amount; a refusal comes back as
    /// the (already reported) blocking decision, boxed in `BudgetExceeded`.
    #[inline]
    fn prepare(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        amount: Decimal,
        reserve: bool,
    ) -> Result<Prepared, BudgetExceeded> {
        // Not normalized here (it costs a 96-bit division): decisions
        // normalize `requested` when it is read.
        let caps = match self
            .inner
            .shared
            .lookup(ledger)
            .or_else(|| budget.map(|b| Caps::one(*b)))
            .or_else(|| self.caps_for(ledger))
        {
            Some(caps) => caps,
            None => {
                return Err(BudgetExceeded::new(self.emit_decision(Decision {
                    status: Status::Block,
                    ledger: ledger.clone(),
                    caps: None,
                    cap: 0,
                    reason: Some(BlockReason::NoBudget),
                    spent_nanos: 0,
                    requested: amount,
                    detail: None,
                })))
            }
        };
        let nanos = match amount::to_nanos(amount) {
            Ok(n) => n,
            Err(error) => {
                return Err(BudgetExceeded::new(self.emit_decision(Decision {
                    status: Status::Block,
                    ledger: ledger.clone(),
                    caps: Some(caps),
                    cap: 0,
                    reason: Some(BlockReason::InvalidAmount),
                    spent_nanos: 0,
                    requested: amount,
                    detail: Some(error.to_string().into()),
                })))
            }
        };
        let id = ReservationId::new();
        Ok(Prepared {
            caps,
            nanos,
            requested: amount,
            id,
            hold: reserve.then(|| Hold {
                id,
                ttl: self.inner.reservation_ttl,
            }),
        })
    }

    /// Up to `limit` ledgers the store holds state for (bounded; `SCAN` on
    /// Redis), e.g. to show each one's [`Engine::status`].
    pub fn active_ledgers(&self, limit: usize) -> Result<Vec<Ledger>, StoreError> {
        self.inner.store.ledgers(limit)
    }

    // ----- kill switch -----------------------------------------------------------

    /// Pauses a ledger, a namespace or everything: covered calls are blocked
    /// with reason `Paused` (in every process sharing the store) until
    /// [`Engine::resume`]. Recorded spend is kept; running calls still commit.
    pub fn pause(&self, scope: &PauseScope) -> Result<(), StoreError> {
        tracing::warn!(%scope, "budget paused");
        self.inner.store.set_paused(scope, true)
    }

    /// Lifts a pause.
    pub fn resume(&self, scope: &PauseScope) -> Result<(), StoreError> {
        tracing::warn!(%scope, "budget resumed");
        self.inner.store.set_paused(scope, false)
    }

    /// Every paused scope.
    pub fn paused(&self) -> Result<Vec<PauseScope>, StoreError> {
        self.inner.store.paused()
    }

    /// A call whose amount could not be computed (e.g. no price for its
    /// model): blocked with reason `InvalidAmount`, the error as detail.
    pub fn refuse_amount(
        &self,
        ledger: &Ledger,
        budget: Option<&Budget>,
        detail: impl Into<String>,
    ) -> BudgetExceeded {
        let caps = self
            .inner
            .shared
            .lookup(ledger)
            .or_else(|| budget.map(|b| Caps::one(*b)))
            .or_else(|| self.caps_for(ledger));
        BudgetExceeded::new(self.emit_decision(Decision {
            status: Status::Block,
            ledger: ledger.clone(),
            caps,
            cap: 0,
            reason: Some(BlockReason::InvalidAmount),
            spent_nanos: 0,
            requested: Decimal::ZERO,
            detail: Some(detail.into().into()),
        }))
    }

    /// Turns the store's answer into a decision and reports it.
    #[inline]
    fn conclude(
        &self,
        ledger: &Ledger,
        p: Prepared,
        result: Result<ChargeOutcome, StoreError>,
    ) -> Decision {
        if let Ok(outcome) = &result {
            if outcome.warnings != 0 {
                self.soft_limits(ledger, &p, outcome);
            }
        }
        // A fixed cost the store failed on: only then are the caps cloned
        // (off the hot path).
        let failed_fixed = match &result {
            Err(e) if p.hold.is_none() => {
                Some((p.caps.clone(), p.nanos, p.id, e.may_have_applied()))
            }
            _ => None,
        };
        let decision = Self::decide(ledger, p, result);
        if let Some((caps, nanos, id, uncertain)) = failed_fixed {
            self.fixed_cost_failed(ledger, &caps, nanos, id, decision.is_allowed(), uncertain);
        }
        self.report(&decision);
        decision
    }

    /// A fixed cost whose charge failed. Admitted fail-open, the call runs
    /// and the money is spent: the cost is recorded by id when the store
    /// answers again — once, whether or not the failed charge had landed.
    /// Refused (fail-closed) after a request that may have landed, the
    /// call does not run: the charge is cancelled by id, so it neither
    /// stays counted nor counts when a late copy arrives.
    pub(super) fn fixed_cost_failed(
        &self,
        ledger: &Ledger,
        caps: &Caps,
        nanos: Nanos,
        id: ReservationId,
        admitted: bool,
        uncertain: bool,
    ) {
        if admitted {
            self.record_later(ledger, caps, nanos, id);
        } else if uncertain {
            let cancel = fixed_job(crate::settler::Kind::Cancel, ledger, caps, nanos, id);
            self.settle_later(cancel, None);
        }
    }

    /// A fixed cost admitted fail-open while the store failed: the call
    /// runs and the money is spent, so it is recorded by its id in the
    /// background when the store answers again (counted once even if the
    /// failed charge had landed; its allowed decision was the report), or
    /// reported as unrecorded spend ([`Event::UnrecordedSpend`]) if the
    /// store never answers within the settler's horizon.
    fn record_later(&self, ledger: &Ledger, caps: &Caps, nanos: Nanos, id: ReservationId) {
        tracing::warn!(%ledger, amount = %from_nanos(nanos), %id,
            "admitted fail-open while the store failed; recording the cost by id when it answers again");
        let record = fixed_job(crate::settler::Kind::RecordFixed, ledger, caps, nanos, id);
        self.settle_later(record, None);
    }

    /// The decision for a store's answer (no side effects).
    #[inline]
    fn decide(ledger: &Ledger, p: Prepared, result: Result<ChargeOutcome, StoreError>) -> Decision {
        match result {
            Ok(outcome) if outcome.paused => Decision {
                status: Status::Block,
                ledger: ledger.clone(),
                caps: Some(p.caps),
                cap: 0,
                reason: Some(BlockReason::Paused),
                spent_nanos: 0,
                requested: p.requested,
                detail: Some("the ledger is paused (kill switch)".into()),
            },
            Ok(outcome) => {
                let spent = if outcome.admitted {
                    outcome.spent_before + p.nanos
                } else {
                    outcome.spent_before
                };
                Decision {
                    status: if outcome.admitted {
                        Status::Allow
                    } else {
                        Status::Block
                    },
                    ledger: ledger.clone(),
                    caps: Some(p.caps),
                    cap: outcome.limit_index.try_into().unwrap_or(0),
                    reason: (!outcome.admitted).then_some(BlockReason::BudgetExceeded),
                    spent_nanos: spent,
                    requested: p.requested,
                    detail: None,
                }
            }
            Err(error) => {
                let status = match p.caps.on_store_error() {
                    StoreErrorMode::FailClosed => Status::Block,
                    StoreErrorMode::FailOpen => Status::Allow,
                };
                // The store's figures are unknown: report nothing spent and
                // nothing remaining rather than invent numbers.
                Decision {
                    status,
                    ledger: ledger.clone(),
                    caps: Some(p.caps),
                    cap: 0,
                    reason: Some(BlockReason::StoreError),
                    spent_nanos: 0,
                    requested: p.requested,
                    detail: Some(error.to_string().into()),
                }
            }
        }
    }

    /// Reports the soft-limit thresholds this charge crossed.
    fn soft_limits(&self, ledger: &Ledger, p: &Prepared, outcome: &ChargeOutcome) {
        for (i, budget) in p.caps.budgets().iter().enumerate() {
            for (slot, nanos) in budget.limit_ref().warn_thresholds() {
                let Some(bit) = crate::store::warning_bit(i, slot) else {
                    continue;
                };
                if outcome.warnings & bit == 0 {
                    continue;
                }
                let threshold = from_nanos(nanos);
                // The store reports spend for the binding cap only; for the
                // others the threshold is a true lower bound.
                let spent = if i == outcome.limit_index {
                    from_nanos(outcome.spent_before + p.nanos)
                } else {
                    threshold
                };
                tracing::warn!(%ledger, max_spend = %budget.max_spend(), window = %budget.window(),
                    %threshold, spent_in_window = %spent, "budget soft limit crossed");
                self.emit(&Event::SoftLimit {
                    ledger,
                    budget,
                    spent_in_window: spent,
                    threshold,
                });
            }
        }
    }

    #[inline]
    fn reservation(
        &self,
        nanos: Nanos,
        id: ReservationId,
        decision: Decision,
        backed: bool,
    ) -> Result<Reservation<'_>, BudgetExceeded> {
        if decision.is_blocked() {
            return Err(BudgetExceeded::new(decision));
        }
        Ok(Reservation::new(self, nanos, id, decision, backed))
    }

    fn emit_decision(&self, decision: Decision) -> Decision {
        self.report(&decision);
        decision
    }

    /// Logs a decision and delivers it to the listeners. By reference: a
    /// decision is large, and moving it in and out costs more than deciding.
    fn report(&self, decision: &Decision) {
        match (decision.status, decision.reason) {
            (Status::Allow, None) => tracing::debug!(
                ledger = %decision.ledger, requested = %decision.requested(),
                spent_in_window = %decision.spent_in_window(), "budget allow"),
            (_, Some(BlockReason::StoreError)) => tracing::error!(
                ledger = %decision.ledger, status = %decision.status,
                error = decision.detail().unwrap_or(""), "budget store error"),
            (_, reason) => tracing::info!(
                ledger = %decision.ledger, reason = reason.map_or("", |r| r.as_str()),
                requested = %decision.requested(), spent_in_window = %decision.spent_in_window(),
                "budget block"),
        }
        self.emit(&Event::Decision(decision));
    }

    /// Delivers an event to every listener, catching and counting panics.
    pub(crate) fn emit(&self, event: &Event<'_>) {
        emit_to(&self.inner.listeners, &self.inner.listener_panics, event);
    }

    pub(crate) fn commit_deadline(&self) -> Duration {
        self.inner.commit_deadline
    }

    /// Writes whose outcome is unknown (the store failed, or the caller
    /// stopped waiting) and whose call does not run: cancelled by id in the
    /// background, so a hold or fixed charge that was made — or a request
    /// that arrives later — does not keep its money.
    fn cancel_unknown(&self, ledgers: &[Ledger], preps: &[Prepared]) {
        for (ledger, p) in ledgers.iter().zip(preps) {
            self.settle_later(
                crate::settler::Job {
                    kind: crate::settler::Kind::Cancel,
                    ledger: ledger.clone(),
                    limits: p.caps.limits().to_vec(),
                    id: p.id,
                    reserved: p.nanos,
                    actual: None,
                    record_if_missing: false,
                },
                None,
            );
        }
    }

    /// Hands a write whose outcome is unknown to the settler; with
    /// `wait_until`, the waiter learns its first outcome by then.
    pub(crate) fn settle_later(
        &self,
        job: crate::settler::Job,
        wait_until: Option<std::time::Instant>,
    ) -> crate::settler::Waiter {
        let reporter: std::sync::Weak<dyn crate::settler::Reporter> =
            Arc::downgrade(&self.inner) as _;
        self.inner.settler.submit(job, wait_until, &reporter)
    }
}
