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
use crate::settler::{Job, Kind, Outcome};
use crate::store::{Nanos, ReservationId, SettleOutcome, SettleRequest, StoreError};

pub(crate) mod detached;
pub use detached::DetachedCommit;

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
    /// The store did not confirm the commit within the engine's commit
    /// deadline: it may or may not have landed. It is being retried in the
    /// background by id (a commit that did land is never recorded twice);
    /// the final outcome is an [`Event::Committed`] — or, if the store stays
    /// unreachable past the settle horizon, an [`Event::UnrecordedSpend`]
    /// and a `tracing` error. Do not record it again yourself.
    #[error("the commit of {actual} on {ledger} (reservation {id}) is not confirmed yet and is retried in the background: {source}")]
    Unknown {
        /// The ledger.
        ledger: Ledger,
        /// The reservation.
        id: ReservationId,
        /// The spend being recorded.
        actual: Decimal,
        /// The last store error.
        source: StoreError,
    },
    /// Definitely not recorded: the store answered that it holds no such
    /// reservation (settled before by someone else, or an id that was never
    /// this caller's) and recorded nothing.
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
        let deadline = std::time::Instant::now() + self.engine.commit_deadline();
        let (nanos, actual, invalid) = self.validate(actual);
        let first = match self
            .engine
            .store()
            .settle(&self.settle_request(Some(nanos)))
        {
            Ok(outcome) => outcome,
            // Retried with backoff until the commit deadline (and after it,
            // in the background).
            Err(_) => match self
                .commit_later(self.primary_job(Kind::Commit, Some(nanos)), deadline)
                .wait_until(deadline)
            {
                Outcome::Settled(outcome) => outcome,
                Outcome::Pending(source) => {
                    self.others_in_background(nanos);
                    return Err(self.unknown(actual, self.id, self.ledger(), source));
                }
            },
        };
        let outcome = self.settle_others(Some(nanos), first)?;
        self.committed(actual, outcome, invalid)
    }

    /// Hands a commit to the settler, which answers its waiter by `deadline`.
    fn commit_later(&self, job: Job, deadline: std::time::Instant) -> crate::settler::Waiter {
        self.engine.settle_later(job, Some(deadline))
    }

    /// The settler's job for the first ledger.
    fn primary_job(&self, kind: Kind, actual: Option<Nanos>) -> Job {
        Job {
            kind,
            ledger: self.ledger().clone(),
            limits: self.caps().limits().to_vec(),
            id: self.id,
            reserved: self.estimate,
            actual,
            record_if_missing: kind == Kind::Commit,
        }
    }

    /// The settler's jobs for the other ledgers of a hierarchy.
    fn others_jobs(&self, kind: Kind, actual: Option<Nanos>) -> Vec<Job> {
        self.others
            .iter()
            .map(|part| Job {
                kind,
                ledger: part.ledger.clone(),
                limits: part.caps.limits().to_vec(),
                id: part.id,
                reserved: self.estimate,
                actual,
                record_if_missing: kind == Kind::Commit,
            })
            .collect()
    }

    /// Reports an actual above the estimate: a warning and
    /// [`Event::Overrun`].
    fn report_overrun(&self, estimate: Decimal, actual: Decimal) {
        tracing::warn!(ledger = %self.ledger(), id = %self.id, %estimate, %actual,
            overrun = %(actual - estimate), "actual cost exceeded the reserved estimate");
        self.engine.emit(&Event::Overrun {
            ledger: self.ledger(),
            id: self.id,
            estimate,
            actual,
        });
    }

    /// A hierarchy's other ledgers, committed by the settler without
    /// waiting: the first ledger's commit is still pending, and the others
    /// must not be left held until their holds expire.
    fn others_in_background(&self, nanos: Nanos) {
        for job in self.others_jobs(Kind::Commit, Some(nanos)) {
            self.engine.settle_later(job, None);
        }
    }

    /// A commit whose outcome is not known yet (see [`CommitError::Unknown`]).
    fn unknown(
        &self,
        actual: Decimal,
        id: ReservationId,
        ledger: &Ledger,
        source: StoreError,
    ) -> CommitError {
        tracing::warn!(%ledger, %id, %actual, error = %source,
            "commit not confirmed within the deadline; retrying it in the background");
        CommitError::Unknown {
            ledger: ledger.clone(),
            id,
            actual,
            source,
        }
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
                cancel: false,
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
        let result = match self
            .engine
            .store()
            .settle_many(&self.others_requests(actual))
        {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Outcome::from).collect()),
            Err(_) => {
                let deadline = std::time::Instant::now() + self.engine.commit_deadline();
                self.others_later(actual, deadline)
                    .map(|w| w.into_iter().map(|w| w.wait_until(deadline)).collect())
            }
        };
        self.others_settled(actual, first, result)
    }

    /// Hands the other ledgers' settles to the settler: commits waited for
    /// until the deadline, releases not at all.
    fn others_later(
        &self,
        actual: Option<Nanos>,
        deadline: std::time::Instant,
    ) -> Result<Vec<crate::settler::Waiter>, SettleOutcome> {
        let kind = if actual.is_some() {
            Kind::Commit
        } else {
            Kind::Release
        };
        let jobs = self.others_jobs(kind, actual);
        if kind == Kind::Release {
            for job in jobs {
                self.engine.settle_later(job, None);
            }
            return Err(SettleOutcome::Released);
        }
        Ok(jobs
            .into_iter()
            .map(|job| self.commit_later(job, deadline))
            .collect())
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
        let result = match self
            .engine
            .store()
            .settle_many_async(self.others_requests(actual))
            .await
        {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Outcome::from).collect()),
            Err(_) => match self.others_later(
                actual,
                std::time::Instant::now() + self.engine.commit_deadline(),
            ) {
                Ok(waiters) => {
                    let mut outcomes = Vec::with_capacity(waiters.len());
                    for waiter in waiters {
                        outcomes.push(waiter.await);
                    }
                    Ok(outcomes)
                }
                Err(released) => Err(released),
            },
        };
        self.others_settled(actual, first, result)
    }

    /// The first ledger's outcome, combined with the others' (each settled
    /// by the store, or still pending in the settler).
    fn others_settled(
        &self,
        actual: Option<Nanos>,
        first: SettleOutcome,
        result: Result<Vec<Outcome>, SettleOutcome>,
    ) -> Result<SettleOutcome, CommitError> {
        let Ok(outcomes) = result else {
            return Ok(first); // releases continue in the background
        };
        let mut late = first == SettleOutcome::CommittedLate;
        for (part, outcome) in self.others.iter().zip(outcomes) {
            match outcome {
                Outcome::Settled(SettleOutcome::CommittedLate) => late = true,
                Outcome::Settled(_) => {}
                Outcome::Pending(source) if actual.is_some() => {
                    let actual = crate::amount::from_nanos(actual.unwrap_or_default());
                    return Err(self.unknown(actual, part.id, &part.ledger, source));
                }
                Outcome::Pending(_) => {}
            }
        }
        Ok(if late {
            SettleOutcome::CommittedLate
        } else {
            first
        })
    }

    /// Async [`Reservation::commit`]. Waiting for retries does not block
    /// the executor (the settler's thread wakes this future).
    ///
    /// Dropping this future before it is done does not lose the commit:
    /// the same commit is handed to the engine's settler, by id (a commit
    /// that had landed is not recorded twice; one that had not is
    /// recorded), and reported as [`Event::Committed`].
    pub async fn commit_async(mut self, actual: Decimal) -> Result<Commit, CommitError> {
        // Marked settled before sending: if this future is dropped mid-flight
        // the commit may still land, and must not be followed by a release.
        self.settled = true;
        let deadline = std::time::Instant::now() + self.engine.commit_deadline();
        let (nanos, actual, invalid) = self.validate(actual);
        let sure = MakeSure {
            reservation: &self,
            nanos,
            armed: true,
        };
        let request = self.settle_request(Some(nanos));
        let first = match self.engine.store().settle_async(request).await {
            Ok(outcome) => outcome,
            Err(_) => match self
                .commit_later(self.primary_job(Kind::Commit, Some(nanos)), deadline)
                .await
            {
                Outcome::Settled(outcome) => outcome,
                Outcome::Pending(source) => {
                    // In the settler's hands: it goes on without this future.
                    sure.disarm();
                    self.others_in_background(nanos);
                    return Err(self.unknown(actual, self.id, self.ledger(), source));
                }
            },
        };
        let outcome = self.settle_others_async(Some(nanos), first).await;
        sure.disarm();
        self.committed(actual, outcome?, invalid)
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
        match result {
            Ok(release) => self.released(release),
            // Retried in the background; if the store stays down, the hold
            // expires after its TTL.
            Err(_) => {
                self.engine
                    .settle_later(self.primary_job(Kind::Release, None), None);
            }
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
        match result {
            Ok(release) => self.released(release),
            Err(_) => {
                self.engine
                    .settle_later(self.primary_job(Kind::Release, None), None);
            }
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
            cancel: false,
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
        if commit.overrun().is_some() {
            self.report_overrun(commit.estimate, commit.actual);
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
            if store.settle(&self.settle_request(None)).is_err() {
                // Retried in the background; the hold expires after its TTL
                // if the store stays down.
                self.engine
                    .settle_later(self.primary_job(Kind::Release, None), None);
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

/// [`Reservation::commit_async`]'s guard: dropped while armed — the
/// future was dropped before the store answered — it hands the same
/// commit to the engine's settler, by id. Nothing is computed unless that
/// happens.
struct MakeSure<'r, 'e> {
    reservation: &'r Reservation<'e>,
    nanos: Nanos,
    armed: bool,
}

impl MakeSure<'_, '_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for MakeSure<'_, '_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let r = self.reservation;
        tracing::debug!(ledger = %r.ledger(), id = %r.id,
            "a commit dropped before the store answered; the settler makes sure of it");
        r.commit_later_all(self.nanos);
    }
}
