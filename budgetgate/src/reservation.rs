//! [`Reservation`]: an amount held against a ledger between reserve and
//! commit. Dropping it without committing releases it, so an `Err`, a panic or
//! a cancelled future never leaves money held.

use rust_decimal::Decimal;

use crate::amount::{self, AmountError};
use crate::budget::Budget;
use crate::caps::Caps;
use crate::decision::Decision;
use crate::engine::Engine;
use crate::event::Event;
use crate::ledger::Ledger;
use crate::store::{Nanos, ReservationId, SettleOutcome, SettleRequest, StoreError};

/// A held estimate. Commit it with the actual cost, release it, or drop it
/// (which releases).
///
/// Commit and release take `self`: a reservation is settled at most once, and
/// the compiler enforces it.
///
/// A reservation made by the sync API ([`Engine::reserve`]) is released on
/// the dropping thread, so the next call from that thread sees the headroom
/// back; one made by the async API is released in the background (a
/// destructor never blocks an executor thread).
///
/// A reservation borrows its engine (`'e`): taking a reference count on a
/// shared engine for every call would make threads on unrelated ledgers
/// contend for one cache line. [`Reservation::into_owned`] gives a
/// `Reservation<'static>` to move into a spawned task.
#[derive(Debug)]
#[must_use = "dropping a Reservation releases it; commit the actual cost"]
pub struct Reservation<'e> {
    engine: EngineRef<'e>,
    id: ReservationId,
    /// The estimate in nano-units (the decision holds it as a `Decimal`).
    estimate: Nanos,
    /// The admitting decision: ledger, every cap (settled under all of them)
    /// and the requested estimate.
    decision: Decision,
    /// The store holds it. False when admitted by fail-open without a store.
    backed: bool,
    settled: bool,
    /// Made by the sync API: dropping it releases on the dropping thread
    /// (one blocking store call), so the caller's next call sees the
    /// headroom back. Made by the async API: released in the background,
    /// never blocking an executor thread in a destructor.
    release_on_drop_thread: bool,
    /// The other ledgers of a hierarchy ([`Engine::reserve_all`]), each
    /// holding the same estimate.
    others: Vec<Part>,
}

/// One more ledger of a hierarchical reservation.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) ledger: Ledger,
    pub(crate) caps: Caps,
    pub(crate) id: ReservationId,
}

/// A successful commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    estimate: Decimal,
    actual: Decimal,
    late: bool,
}

impl Commit {
    /// What was reserved.
    pub fn estimate(&self) -> Decimal {
        self.estimate.normalize()
    }
    /// What was recorded.
    pub fn actual(&self) -> Decimal {
        self.actual.normalize()
    }
    /// `actual − estimate` when positive: spend beyond what was reserved.
    pub fn overrun(&self) -> Option<Decimal> {
        (self.actual > self.estimate).then(|| self.actual - self.estimate)
    }
    /// The reservation had expired (TTL, or window passed), or was never held
    /// (fail-open); the actual was recorded at the commit's time.
    pub fn is_late(&self) -> bool {
        self.late
    }
}

/// What [`Reservation::release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Release {
    /// The hold was removed: its headroom is back.
    Released,
    /// The store no longer held it — it expired after the reservation TTL,
    /// its window passed, or it was never held (admitted fail-open while the
    /// store was down) — so nothing changed.
    NotHeld,
}

/// A commit that did not go as asked. Each variant says what *was* recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The actual cost was negative or finer than 10⁻⁹. The estimate was
    /// committed instead (the worst case the caller declared).
    #[error(
        "invalid actual cost for {ledger}: {source}; the estimate {estimate} was committed instead"
    )]
    InvalidActual {
        /// The ledger.
        ledger: Ledger,
        /// What was committed instead.
        estimate: Decimal,
        /// Why the actual was refused.
        source: AmountError,
    },
    /// The store failed on every attempt: the money was spent but is not
    /// recorded. The reservation's hold expires after its TTL.
    #[error("UNRECORDED SPEND of {actual} on {ledger} (reservation {id}): {source}")]
    Unrecorded {
        /// The ledger.
        ledger: Ledger,
        /// The reservation.
        id: ReservationId,
        /// The spend that is missing from the store.
        actual: Decimal,
        /// The last store error.
        source: StoreError,
    },
    /// The store holds no such reservation and did not record the spend.
    #[error("the store holds no reservation {id} on {ledger}")]
    UnknownReservation {
        /// The ledger.
        ledger: Ledger,
        /// The reservation.
        id: ReservationId,
    },
}

/// A borrowed or owned engine.
#[derive(Debug)]
enum EngineRef<'e> {
    Borrowed(&'e Engine),
    Owned(Engine),
}

impl std::ops::Deref for EngineRef<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        match self {
            EngineRef::Borrowed(e) => e,
            EngineRef::Owned(e) => e,
        }
    }
}

impl<'e> Reservation<'e> {
    #[inline]
    pub(crate) fn new(
        engine: &'e Engine,
        estimate: Nanos,
        id: ReservationId,
        decision: Decision,
        backed: bool,
    ) -> Self {
        Reservation {
            engine: EngineRef::Borrowed(engine),
            id,
            estimate,
            decision,
            backed,
            settled: false,
            release_on_drop_thread: false,
            others: Vec::new(),
        }
    }

    /// See `release_on_drop_thread`.
    pub(crate) fn released_on_this_thread(mut self) -> Self {
        self.release_on_drop_thread = true;
        self
    }

    pub(crate) fn with_others(mut self, others: Vec<Part>) -> Self {
        self.others = others;
        self
    }

    /// Every ledger it holds money on (one, or a hierarchy's).
    pub fn ledgers(&self) -> Vec<&Ledger> {
        std::iter::once(self.ledger())
            .chain(self.others.iter().map(|p| &p.ledger))
            .collect()
    }

    /// The same reservation, holding its own handle on the engine, so it can
    /// outlive the borrow (e.g. move into `tokio::spawn`).
    pub fn into_owned(mut self) -> Reservation<'static> {
        // Settled here so the moved-from value's destructor does not release.
        self.settled = true;
        Reservation {
            engine: EngineRef::Owned(Engine::clone(&self.engine)),
            id: self.id,
            estimate: self.estimate,
            decision: self.decision.clone(),
            backed: self.backed,
            settled: false,
            release_on_drop_thread: self.release_on_drop_thread,
            others: std::mem::take(&mut self.others),
        }
    }

    /// The reservation's id.
    pub fn id(&self) -> ReservationId {
        self.id
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        self.decision.ledger()
    }

    /// The budget it was reserved under.
    pub fn budget(&self) -> Budget {
        self.caps().budget(0)
    }

    /// Every budget it was reserved under.
    pub fn caps(&self) -> &Caps {
        // A reservation is only made under a budget; the fallback (a zero
        // lifetime cap) is never seen.
        static NONE: Caps = Caps::One {
            budget: Budget::from_validated(
                0,
                crate::budget::Window::Unbounded,
                crate::budget::StoreErrorMode::FailClosed,
            ),
        };
        self.decision.caps.as_ref().unwrap_or(&NONE)
    }

    /// The reserved estimate.
    pub fn estimate(&self) -> Decimal {
        self.decision.requested()
    }

    /// The decision that admitted it.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Commits the actual cost: the hold is replaced by `actual` in one atomic
    /// step, so `spent` changes by `actual − estimate`. An actual above the
    /// estimate is recorded in full and reported as an overrun.
    pub fn commit(mut self, actual: Decimal) -> Result<Commit, CommitError> {
        self.settled = true;
        let (nanos, actual, invalid) = self.validate(actual);
        let mut last = None;
        for _ in 0..self.engine.commit_attempts() {
            match self
                .engine
                .store()
                .settle(&self.settle_request(Some(nanos)))
            {
                Ok(outcome) => {
                    let outcome = self.settle_others(Some(nanos), outcome)?;
                    return self.committed(actual, outcome, invalid);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(self.unrecorded(actual, last))
    }

    /// The settle requests of a hierarchy's other ledgers.
    fn others_requests(&self, actual: Option<Nanos>) -> Vec<SettleRequest<'_>> {
        self.others
            .iter()
            .map(|part| SettleRequest {
                ledger: &part.ledger,
                limits: part.caps.limits(),
                id: part.id,
                reserved: self.estimate,
                actual,
                record_if_missing: actual.is_some(),
            })
            .collect()
    }

    /// Settles the other ledgers of a hierarchy like the first; the outcome
    /// is late if any was.
    fn settle_others(
        &self,
        actual: Option<Nanos>,
        first: SettleOutcome,
    ) -> Result<SettleOutcome, CommitError> {
        if self.others.is_empty() {
            return Ok(first);
        }
        let requests = self.others_requests(actual);
        let mut result = Err(StoreError::Backend("no attempt was made".into()));
        for _ in 0..self.engine.commit_attempts() {
            result = self.engine.store().settle_many(&requests);
            if result.is_ok() {
                break;
            }
        }
        self.others_settled(actual, first, result)
    }

    /// Async [`Reservation::settle_others`].
    async fn settle_others_async(
        &self,
        actual: Option<Nanos>,
        first: SettleOutcome,
    ) -> Result<SettleOutcome, CommitError> {
        if self.others.is_empty() {
            return Ok(first);
        }
        let mut result = Err(StoreError::Backend("no attempt was made".into()));
        for _ in 0..self.engine.commit_attempts() {
            result = self
                .engine
                .store()
                .settle_many_async(self.others_requests(actual))
                .await;
            if result.is_ok() {
                break;
            }
        }
        self.others_settled(actual, first, result)
    }

    fn others_settled(
        &self,
        actual: Option<Nanos>,
        first: SettleOutcome,
        result: Result<Vec<SettleOutcome>, StoreError>,
    ) -> Result<SettleOutcome, CommitError> {
        match result {
            Ok(outcomes) if outcomes.contains(&SettleOutcome::CommittedLate) => {
                Ok(SettleOutcome::CommittedLate)
            }
            Ok(_) => Ok(first),
            Err(source) if actual.is_some() => {
                let actual = crate::amount::from_nanos(actual.unwrap_or_default());
                for part in &self.others {
                    tracing::error!(ledger = %part.ledger, id = %part.id, %actual, error = %source,
                        "UNRECORDED SPEND: the store could not record a committed cost");
                    self.engine.emit(&Event::UnrecordedSpend {
                        ledger: &part.ledger,
                        id: part.id,
                        actual,
                        error: &source,
                    });
                }
                let part = &self.others[0];
                Err(CommitError::Unrecorded {
                    ledger: part.ledger.clone(),
                    id: part.id,
                    actual,
                    source,
                })
            }
            Err(_) => Ok(first), // releases that fail expire with their TTL
        }
    }

    /// Async [`Reservation::commit`].
    pub async fn commit_async(mut self, actual: Decimal) -> Result<Commit, CommitError> {
        // Marked settled before sending: if this future is dropped mid-flight
        // the commit may still land, and must not be followed by a release.
        self.settled = true;
        let (nanos, actual, invalid) = self.validate(actual);
        let mut last = None;
        for _ in 0..self.engine.commit_attempts() {
            let request = self.settle_request(Some(nanos));
            match self.engine.store().settle_async(request).await {
                Ok(outcome) => {
                    let outcome = self.settle_others_async(Some(nanos), outcome).await?;
                    return self.committed(actual, outcome, invalid);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(self.unrecorded(actual, last))
    }

    /// Releases the hold: nothing is charged. Says whether the store still
    /// held it ([`Release::NotHeld`] after it expired). If the store cannot
    /// be reached the hold expires after the reservation TTL.
    ///
    /// ```
    /// use budgetgate::{dec, Budget, Engine, Ledger, Release};
    /// let engine = Engine::in_memory();
    /// let ledger = Ledger::new("llm", "chat", "user:1");
    /// engine.set_budget(&ledger, Budget::lifetime(dec!(1))?);
    /// let held = engine.reserve(&ledger, dec!(0.5))?;
    /// assert_eq!(held.release()?, Release::Released);
    /// assert_eq!(engine.status(&ledger)?.reserved(), dec!(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(mut self) -> Result<Release, StoreError> {
        self.settled = true;
        if !self.backed {
            self.released(Release::NotHeld);
            return Ok(Release::NotHeld);
        }
        let result = self
            .engine
            .store()
            .settle(&self.settle_request(None))
            .map(release_of);
        let _ = self.settle_others(None, SettleOutcome::Released);
        if let Ok(release) = result {
            self.released(release);
        }
        result
    }

    /// Async [`Reservation::release`].
    pub async fn release_async(mut self) -> Result<Release, StoreError> {
        self.settled = true;
        if !self.backed {
            self.released(Release::NotHeld);
            return Ok(Release::NotHeld);
        }
        let request = self.settle_request(None);
        let result = self
            .engine
            .store()
            .settle_async(request)
            .await
            .map(release_of);
        let _ = self
            .settle_others_async(None, SettleOutcome::Released)
            .await;
        if let Ok(release) = result {
            self.released(release);
        }
        result
    }

    /// Reports a release to the listeners.
    fn released(&self, release: Release) {
        tracing::debug!(ledger = %self.ledger(), id = %self.id, estimate = %self.estimate(),
            held = release == Release::Released, "reservation released");
        for ledger in self.ledgers() {
            self.engine.emit(&Event::Released {
                ledger,
                id: self.id,
                estimate: self.estimate(),
                held: release == Release::Released,
            });
        }
    }

    /// The actual (nano-units and decimal), or the estimate when the actual is invalid.
    fn validate(&self, actual: Decimal) -> (Nanos, Decimal, Option<AmountError>) {
        match amount::to_nanos(actual) {
            Ok(n) => (n, actual, None),
            Err(e) => (self.estimate, self.decision.requested, Some(e)),
        }
    }

    fn settle_request(&self, actual: Option<Nanos>) -> SettleRequest<'_> {
        SettleRequest {
            ledger: self.ledger(),
            limits: self.caps().limits(),
            id: self.id,
            reserved: self.estimate,
            actual,
            // This value is the proof the reservation is unsettled: if the
            // store lost it, the spend must still be recorded.
            record_if_missing: true,
        }
    }

    fn committed(
        &self,
        actual: Decimal,
        outcome: SettleOutcome,
        invalid: Option<AmountError>,
    ) -> Result<Commit, CommitError> {
        let commit = Commit {
            estimate: self.decision.requested,
            actual,
            late: outcome == SettleOutcome::CommittedLate,
        };
        match outcome {
            SettleOutcome::Committed | SettleOutcome::CommittedLate => {}
            SettleOutcome::Released | SettleOutcome::Unknown => {
                return Err(CommitError::UnknownReservation {
                    ledger: self.ledger().clone(),
                    id: self.id,
                })
            }
        }
        if let Some(overrun) = commit.overrun() {
            tracing::warn!(ledger = %self.ledger(), id = %self.id, estimate = %commit.estimate,
                actual = %commit.actual, %overrun, "actual cost exceeded the reserved estimate");
            self.engine.emit(&Event::Overrun {
                ledger: self.ledger(),
                id: self.id,
                estimate: commit.estimate,
                actual: commit.actual,
            });
        }
        tracing::debug!(ledger = %self.ledger(), id = %self.id, estimate = %commit.estimate(),
            actual = %commit.actual(), late = commit.late, "reservation committed");
        for ledger in self.ledgers() {
            self.engine.emit(&Event::Committed {
                ledger,
                id: self.id,
                estimate: commit.estimate(),
                actual: commit.actual(),
                late: commit.late,
            });
        }
        if commit.late {
            tracing::warn!(ledger = %self.ledger(), id = %self.id, actual = %commit.actual,
                "late commit: the reservation had expired; the actual was recorded now");
            self.engine.emit(&Event::LateCommit {
                ledger: self.ledger(),
                id: self.id,
                actual: commit.actual,
            });
        }
        match invalid {
            None => Ok(commit),
            Some(source) => Err(CommitError::InvalidActual {
                ledger: self.ledger().clone(),
                estimate: commit.actual,
                source,
            }),
        }
    }

    fn unrecorded(&self, actual: Decimal, last: Option<StoreError>) -> CommitError {
        let source = last.unwrap_or_else(|| StoreError::Backend("no attempt was made".into()));
        tracing::error!(ledger = %self.ledger(), id = %self.id, %actual, error = %source,
            "UNRECORDED SPEND: the store could not record a committed cost");
        self.engine.emit(&Event::UnrecordedSpend {
            ledger: self.ledger(),
            id: self.id,
            actual,
            error: &source,
        });
        CommitError::Unrecorded {
            ledger: self.ledger().clone(),
            id: self.id,
            actual,
            source,
        }
    }
}

/// A settle's outcome as a release.
fn release_of(outcome: SettleOutcome) -> Release {
    match outcome {
        SettleOutcome::Released => Release::Released,
        _ => Release::NotHeld,
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.settled || !self.backed {
            return;
        }
        let store = self.engine.store();
        if self.release_on_drop_thread {
            // Bounded by the store's timeout; if it fails the hold expires
            // after its TTL.
            if let Err(error) = store.settle(&self.settle_request(None)) {
                tracing::warn!(ledger = %self.ledger(), id = %self.id, %error,
                    "could not release a dropped reservation; its headroom returns when it expires");
            }
            let _ = self.settle_others(None, SettleOutcome::Released);
            return;
        }
        store.release_in_background(&self.settle_request(None));
        for request in self.others_requests(None) {
            store.release_in_background(&request);
        }
    }
}
