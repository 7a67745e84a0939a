//! The settler: finishes in the background the writes whose outcome a
//! caller could not learn — a commit the store did not confirm, a release
//! that failed, a reservation that timed out or whose future was dropped
//! while the store worked on it.
//!
//! Every write carries a client-chosen id, and settling by id is
//! idempotent (a store remembers settled ids for its retention), so trying
//! again is always safe: a commit that did land answers "committed" again,
//! never charges twice. A *cancel* releases a hold by id and leaves a
//! marker, so a reservation request still in flight that arrives later is
//! refused instead of holding money for its whole TTL.
//!
//! One thread per engine, started on first use (an engine whose store never
//! fails never starts it), retries each job with exponential backoff (50 ms
//! doubling to 2 s) until it lands or its horizon passes. Outcomes are
//! reported as [`Event`]s: [`Event::Committed`] when a commit lands,
//! [`Event::UnrecordedSpend`] (and a `tracing` error) when one is given up.
//! A caller can wait for a job's first outcome (the foreground part of a
//! commit) without blocking the settler, by blocking or as a future.

use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::amount::from_nanos;
use crate::budget::Limit;
use crate::event::Event;
use crate::ledger::Ledger;
use crate::store::{Nanos, ReservationId, SettleOutcome, SettleRequest, Store, StoreError};

/// How long the settler keeps trying one job. A store must remember
/// settled ids at least this long (the Redis store's retention is longer).
pub const SETTLE_HORIZON: Duration = Duration::from_secs(600);

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Record the actual (the money was spent).
    Commit,
    /// Record a fixed cost admitted fail-open (the money was spent; its
    /// decision was reported already, so landing reports no
    /// [`Event::Committed`], which is for reservations).
    RecordFixed,
    /// Release the hold.
    Release,
    /// Release the hold and refuse a late reservation with this id.
    Cancel,
}

/// A settle request that owns its parts.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) kind: Kind,
    pub(crate) ledger: Ledger,
    pub(crate) limits: Vec<Limit>,
    pub(crate) id: ReservationId,
    pub(crate) reserved: Nanos,
    pub(crate) actual: Option<Nanos>,
    pub(crate) record_if_missing: bool,
}

impl Job {
    fn request(&self) -> SettleRequest<'_> {
        SettleRequest {
            ledger: &self.ledger,
            limits: &self.limits,
            id: self.id,
            reserved: self.reserved,
            actual: self.actual,
            record_if_missing: self.record_if_missing,
            cancel: self.kind == Kind::Cancel,
        }
    }
}

/// A job's outcome as its first waiter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The store answered.
    Settled(SettleOutcome),
    /// Not yet: still being tried in the background (the last error).
    Pending(StoreError),
}

impl From<SettleOutcome> for Outcome {
    fn from(outcome: SettleOutcome) -> Self {
        Outcome::Settled(outcome)
    }
}

#[derive(Default)]
struct Slot {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
}

/// Where a job's first outcome is delivered: the store's answer, or at the
/// waiter's deadline "still pending". Waited on by blocking ([`Waiter::wait`])
/// or as a future (executor-agnostic: the settler's thread wakes it).
#[derive(Clone, Default)]
pub(crate) struct Waiter(Arc<(Mutex<Slot>, Condvar)>);

impl Waiter {
    /// Delivers the first outcome; false if one was delivered before.
    fn deliver(&self, outcome: Outcome) -> bool {
        let (slot, ready) = &*self.0;
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.outcome.is_some() {
            return false;
        }
        slot.outcome = Some(outcome);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
        ready.notify_all();
        true
    }

    fn is_delivered(&self) -> bool {
        let (slot, _) = &*self.0;
        slot.lock()
            .unwrap_or_else(|e| e.into_inner())
            .outcome
            .is_some()
    }

    /// Blocks until the outcome is known, at the latest until `deadline`
    /// (then: pending) — whatever the settler's thread is doing.
    pub(crate) fn wait_until(&self, deadline: Instant) -> Outcome {
        let (slot, ready) = &*self.0;
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(outcome) = slot.outcome.clone() {
                return outcome;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let pending = Outcome::Pending(StoreError::Unavailable(
                    "the store did not confirm it within the deadline".into(),
                ));
                slot.outcome = Some(pending.clone());
                return pending;
            }
            slot = ready
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl std::future::Future for Waiter {
    type Output = Outcome;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let (slot, _) = &*self.0;
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.outcome.clone() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A job in the settler's queue.
struct Queued {
    job: Job,
    due: Instant,
    backoff: Duration,
    horizon: Instant,
    /// The foreground waiter and when it stops waiting.
    waiter: Option<(Waiter, Instant)>,
    /// Breaks ties between jobs due at the same instant (first in, first out).
    seq: u64,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// The earliest due is the greatest: `BinaryHeap` pops it first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// Reports outcomes; implemented by the engine (a weak handle, so the
/// settler never keeps an engine alive).
pub(crate) trait Reporter: Send + Sync + 'static {
    fn report(&self, event: &Event<'_>);
}

/// The settler of one engine.
pub(crate) struct Settler {
    store: Arc<dyn Store>,
    horizon: Duration,
    queue: Mutex<Option<mpsc::Sender<Queued>>>,
    /// Jobs submitted and not yet finished or given up.
    pending: Arc<std::sync::atomic::AtomicUsize>,
    /// Jobs ever submitted (their order).
    submitted: std::sync::atomic::AtomicU64,
}

impl Settler {
    pub(crate) fn new(store: Arc<dyn Store>, horizon: Duration) -> Self {
        Settler {
            store,
            horizon,
            queue: Mutex::new(None),
            pending: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            submitted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Jobs still being tried.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Queues `job` for its first attempt now. With `wait_until`, the
    /// returned waiter gets the first outcome — the store's answer, or
    /// `Pending` at that instant.
    pub(crate) fn submit(
        &self,
        job: Job,
        wait_until: Option<Instant>,
        reporter: &Weak<dyn Reporter>,
    ) -> Waiter {
        let waiter = Waiter::default();
        let now = Instant::now();
        let mut queued = Queued {
            job,
            due: now,
            backoff: FIRST_BACKOFF,
            horizon: now + self.horizon,
            waiter: wait_until.map(|at| (waiter.clone(), at)),
            seq: self
                .submitted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(tx) = queue.as_ref() {
            match tx.send(queued) {
                Ok(()) => return waiter,
                // The thread ended (it panicked): start another.
                Err(mpsc::SendError(q)) => queued = q,
            }
        }
        let (tx, rx) = mpsc::channel();
        let store = self.store.clone();
        let reporter = reporter.clone();
        let pending = self.pending.clone();
        let spawned = std::thread::Builder::new()
            .name("budgetgate-settler".into())
            .spawn(move || run(store, rx, reporter, pending));
        match spawned {
            Ok(_) => {
                // The receiver is alive: it was just moved into the thread.
                let _ = tx.send(queued);
                *queue = Some(tx);
            }
            Err(error) => {
                self.pending
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(%error, ledger = %queued.job.ledger, id = %queued.job.id,
                    "could not start the settler thread; the write's outcome stays unknown");
                if let Some((waiter, _)) = queued.waiter.take() {
                    waiter.deliver(Outcome::Pending(StoreError::Backend(format!(
                        "could not start the settler thread: {error}"
                    ))));
                }
            }
        }
        waiter
    }
}

/// One settler thread: runs due jobs, sleeps until the next is due or a new
/// one arrives; ends when the engine is gone and nothing is left to do.
fn run(
    store: Arc<dyn Store>,
    jobs: mpsc::Receiver<Queued>,
    reporter: Weak<dyn Reporter>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
) {
    let done = || {
        pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    };
    // Jobs by due time (an outage can queue thousands), and the deadlines
    // of the callers waiting for a first outcome (one per waiting thread).
    let mut heap: BinaryHeap<Queued> = BinaryHeap::new();
    let mut deadlines: Vec<(Instant, Waiter)> = Vec::new();
    let mut open = true;
    loop {
        let now = Instant::now();
        // Callers whose deadline passed learn "still pending".
        deadlines.retain(|(at, waiter)| {
            if *at <= now {
                waiter.deliver(Outcome::Pending(StoreError::Unavailable(
                    "the store did not confirm it within the deadline".into(),
                )));
                false
            } else {
                !waiter.is_delivered()
            }
        });
        let next_due = heap.peek().map(|q| q.due);
        let next = match (next_due, deadlines.iter().map(|(at, _)| *at).min()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if open {
            let received = match next {
                Some(at) if at <= now => jobs.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => mpsc::RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => mpsc::RecvTimeoutError::Disconnected,
                }),
                Some(at) => jobs.recv_timeout(at - now),
                None => jobs
                    .recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(q) => {
                    if let Some((waiter, at)) = &q.waiter {
                        deadlines.push((*at, waiter.clone()));
                    }
                    heap.push(q);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        } else if let Some(at) = next {
            std::thread::sleep(at.saturating_duration_since(now));
        } else {
            return; // the engine is gone and nothing is pending
        }
        if heap.peek().is_none_or(|q| q.due > Instant::now()) {
            continue;
        }
        let Some(mut q) = heap.pop() else { continue };
        match store.settle(&q.job.request()) {
            Ok(outcome) => {
                let told = q
                    .waiter
                    .take()
                    .is_some_and(|(waiter, _)| waiter.deliver(Outcome::Settled(outcome)));
                if !told {
                    finished(&q.job, outcome, &reporter);
                }
                done();
            }
            Err(error) if Instant::now() >= q.horizon => {
                if let Some((waiter, _)) = q.waiter.take() {
                    waiter.deliver(Outcome::Pending(error.clone()));
                }
                given_up(&q.job, &error, &reporter);
                done();
            }
            Err(_) => {
                q.due = Instant::now() + q.backoff;
                q.backoff = (q.backoff * 2).min(MAX_BACKOFF);
                heap.push(q);
            }
        }
    }
}

/// A background job landed after its caller stopped waiting.
fn finished(job: &Job, outcome: SettleOutcome, reporter: &Weak<dyn Reporter>) {
    match (job.kind, outcome) {
        (Kind::Commit, SettleOutcome::Committed | SettleOutcome::CommittedLate) => {
            let actual = from_nanos(job.actual.unwrap_or_default());
            tracing::info!(ledger = %job.ledger, id = %job.id, %actual,
                "a commit whose outcome was unknown is recorded");
            if let Some(reporter) = reporter.upgrade() {
                reporter.report(&Event::Committed {
                    ledger: &job.ledger,
                    id: job.id,
                    estimate: from_nanos(job.reserved),
                    actual,
                    late: outcome == SettleOutcome::CommittedLate,
                });
            }
        }
        (Kind::RecordFixed, SettleOutcome::Committed | SettleOutcome::CommittedLate) => {
            tracing::info!(ledger = %job.ledger, id = %job.id,
                amount = %from_nanos(job.actual.unwrap_or_default()),
                "a fixed cost admitted fail-open is recorded");
        }
        (Kind::Commit | Kind::RecordFixed, _) => {
            tracing::error!(ledger = %job.ledger, id = %job.id,
                actual = %from_nanos(job.actual.unwrap_or_default()),
                "UNRECORDED SPEND: the store holds no such reservation and did not record the spend");
        }
        (Kind::Release | Kind::Cancel, outcome) => {
            tracing::debug!(ledger = %job.ledger, id = %job.id, ?outcome,
                "a release whose outcome was unknown is settled");
        }
    }
}

/// A job the settler stopped trying.
fn given_up(job: &Job, error: &StoreError, reporter: &Weak<dyn Reporter>) {
    match job.kind {
        Kind::Commit | Kind::RecordFixed => {
            let actual = from_nanos(job.actual.unwrap_or_default());
            tracing::error!(ledger = %job.ledger, id = %job.id, %actual, %error,
                "UNRECORDED SPEND: the store could not record a committed cost");
            if let Some(reporter) = reporter.upgrade() {
                reporter.report(&Event::UnrecordedSpend {
                    ledger: &job.ledger,
                    id: job.id,
                    actual,
                    error,
                });
            }
        }
        Kind::Release | Kind::Cancel => {
            tracing::warn!(ledger = %job.ledger, id = %job.id, %error,
                "could not release a reservation; its headroom returns when it expires");
        }
    }
}
