//! Commits owned by the engine's settler thread: a destructor or a stream's
//! end can hand its commit over without blocking an executor thread, and a
//! caller that stops waiting (a dropped future) cannot lose it — the settler
//! records it by id (never twice) whatever happens to the waiter.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use rust_decimal::Decimal;

use super::{Commit, CommitError, Reservation};
use crate::settler::{Kind, Outcome, Waiter};
use crate::store::{Nanos, SettleOutcome};

/// A commit handed to the engine's settler ([`Reservation::commit_detached`]).
///
/// As a future it resolves to the commit's outcome, as
/// [`Reservation::commit_async`] would. Dropping it does **not** cancel the
/// commit: the settler records it anyway (reported as [`Event::Committed`],
/// or [`Event::UnrecordedSpend`] if the store stays unreachable past the
/// settle horizon).
///
/// [`Event::Committed`]: crate::Event::Committed
/// [`Event::UnrecordedSpend`]: crate::Event::UnrecordedSpend
#[derive(Debug)]
#[must_use = "the commit happens anyway; await it to learn its outcome"]
pub struct DetachedCommit {
    reservation: Reservation<'static>,
    nanos: Nanos,
    actual: Decimal,
    invalid: Option<crate::amount::AmountError>,
    /// The first ledger's waiter, then the others', in order.
    waiters: Vec<Waiter>,
    outcomes: Vec<Outcome>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiter")
    }
}

impl<'e> Reservation<'e> {
    /// Commits `actual` through the engine's settler thread and returns at
    /// once: the future it returns resolves to what
    /// [`Reservation::commit_async`] would answer (waiting at most the
    /// engine's commit deadline), and dropping that future does not cancel
    /// the commit. For a commit that must happen even if the caller goes
    /// away mid-flight (a stream's end, a destructor).
    ///
    /// ```
    /// use budgetgate::{dec, Budget, Engine, Ledger};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let engine = Engine::in_memory();
    /// let ledger = Ledger::new("llm", "chat", "user:1");
    /// engine.set_budget(&ledger, Budget::lifetime(dec!(1))?);
    /// let held = engine.reserve_async(&ledger, dec!(0.5)).await?;
    /// let commit = held.commit_detached(dec!(0.2)).await?;
    /// assert_eq!(commit.actual(), dec!(0.2));
    /// assert_eq!(engine.status(&ledger)?.committed(), dec!(0.2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn commit_detached(self, actual: Decimal) -> DetachedCommit {
        let mut reservation = self.into_owned();
        reservation.settled = true;
        let (nanos, actual, invalid) = reservation.validate(actual);
        let deadline = std::time::Instant::now() + reservation.engine.commit_deadline();
        let waiters = reservation
            .jobs(Some(nanos))
            .into_iter()
            .map(|job| reservation.engine.settle_later(job, Some(deadline)))
            .collect::<Vec<_>>();
        DetachedCommit {
            outcomes: Vec::with_capacity(waiters.len()),
            reservation,
            nanos,
            actual,
            invalid,
            waiters,
        }
    }

    /// Commits `actual` through the engine's settler thread without waiting
    /// for it: never blocks, and the outcome is reported as
    /// [`Event::Committed`](crate::Event::Committed) for each ledger (or
    /// [`Event::UnrecordedSpend`](crate::Event::UnrecordedSpend) and a
    /// `tracing` error with the amount if the store stays unreachable). An
    /// actual above the estimate is reported as an overrun at once. For
    /// destructors: [`Engine::wait_settled`](crate::Engine::wait_settled)
    /// waits for it.
    pub fn commit_in_background(self, actual: Decimal) {
        let mut reservation = self;
        reservation.settled = true;
        let (nanos, actual, invalid) = reservation.validate(actual);
        if let Some(source) = invalid {
            tracing::error!(ledger = %reservation.ledger(), id = %reservation.id, error = %source,
                estimate = %reservation.estimate(),
                "invalid actual cost in a background commit; committing the estimate");
        }
        let estimate = reservation.decision.requested;
        if actual > estimate {
            reservation.report_overrun(estimate, actual);
        }
        tracing::debug!(ledger = %reservation.ledger(), id = %reservation.id, %actual,
            "commit handed to the settler");
        reservation.commit_later_all(nanos);
    }

    /// Hands the commit of `nanos` on every ledger to the settler, without
    /// waiting: settling by id is idempotent, so a job for a commit that
    /// did land answers "committed" again and charges nothing twice.
    pub(super) fn commit_later_all(&self, nanos: Nanos) {
        for job in self.jobs(Some(nanos)) {
            self.engine.settle_later(job, None);
        }
    }

    /// The settler's jobs for every ledger, the first ledger first.
    fn jobs(&self, actual: Option<Nanos>) -> Vec<crate::settler::Job> {
        let kind = if actual.is_some() {
            Kind::Commit
        } else {
            Kind::Release
        };
        let mut jobs = vec![self.primary_job(kind, actual)];
        jobs.extend(self.others_jobs(kind, actual));
        jobs
    }
}

impl Future for DetachedCommit {
    type Output = Result<Commit, CommitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while this.outcomes.len() < this.waiters.len() {
            let next = this.outcomes.len();
            match Pin::new(&mut this.waiters[next]).poll(cx) {
                Poll::Ready(outcome) => this.outcomes.push(outcome),
                Poll::Pending => return Poll::Pending,
            }
        }
        let r = &this.reservation;
        let mut outcomes = this.outcomes.drain(..);
        let first = match outcomes.next() {
            Some(Outcome::Settled(outcome)) => outcome,
            Some(Outcome::Pending(source)) => {
                return Poll::Ready(Err(r.unknown(this.actual, r.id, r.ledger(), source)))
            }
            None => SettleOutcome::Unknown,
        };
        let rest: Vec<Outcome> = outcomes.collect();
        let outcome = match r.others_settled(Some(this.nanos), first, Ok(rest)) {
            Ok(outcome) => outcome,
            Err(error) => return Poll::Ready(Err(error)),
        };
        Poll::Ready(r.committed(this.actual, outcome, this.invalid.take()))
    }
}
