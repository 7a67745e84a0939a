//! [`Event`]s and [`Listener`]s: every decision, overrun, late commit and
//! unrecorded spend, delivered to code that wants to see it (metrics, audit
//! logs, alerts).
//!
//! A panicking listener is caught and counted
//! ([`Engine::listener_panics`](crate::Engine::listener_panics)); it never
//! reaches the guarded call.

use rust_decimal::Decimal;

use crate::decision::Decision;
use crate::ledger::Ledger;
use crate::store::{ReservationId, StoreError};

/// Something the engine wants observers to know.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A check or reservation was decided.
    Decision(&'a Decision),
    /// A charge took a budget's window across one of its soft-limit
    /// thresholds ([`Budget::warn_at`](crate::Budget::warn_at)). Each
    /// threshold is reported once per window (calendar period, rolling
    /// window length, or lifetime), by the one call that crossed it first.
    SoftLimit {
        /// The ledger.
        ledger: &'a Ledger,
        /// The budget whose threshold was crossed.
        budget: &'a crate::Budget,
        /// Spend in the window after the charge (at least the threshold).
        spent_in_window: Decimal,
        /// The threshold.
        threshold: Decimal,
    },
    /// A rate check was decided.
    Rate(&'a crate::rate::RateDecision),
    /// A reservation was committed: `actual` is now recorded on `ledger`
    /// (once per ledger of a hierarchy). With [`Event::Decision`] for fixed
    /// costs, this is what a listener sums to count actual spend.
    Committed {
        /// The ledger.
        ledger: &'a Ledger,
        /// The reservation.
        id: ReservationId,
        /// What was reserved.
        estimate: Decimal,
        /// What was recorded.
        actual: Decimal,
        /// Recorded at the commit's time: the hold had expired.
        late: bool,
    },
    /// A reservation was released by [`Reservation::release`](crate::Reservation::release)
    /// (an explicit release; a dropped reservation is released in the
    /// background without an event): nothing is charged.
    Released {
        /// The ledger.
        ledger: &'a Ledger,
        /// The reservation.
        id: ReservationId,
        /// What had been reserved.
        estimate: Decimal,
        /// Whether the store still held it (false: it had expired).
        held: bool,
    },
    /// A commit's actual cost exceeded its estimate. The actual was recorded
    /// in full (never clamped).
    Overrun {
        /// The ledger.
        ledger: &'a Ledger,
        /// The reservation.
        id: ReservationId,
        /// What was reserved.
        estimate: Decimal,
        /// What was spent and recorded.
        actual: Decimal,
    },
    /// A commit arrived after its reservation had expired (or was never made,
    /// under fail-open); the actual was recorded at the commit's time.
    LateCommit {
        /// The ledger.
        ledger: &'a Ledger,
        /// The reservation.
        id: ReservationId,
        /// What was recorded.
        actual: Decimal,
    },
    /// An operator reset a ledger ([`Engine::reset_ledger`](crate::Engine::reset_ledger)):
    /// its spend and holds were forgotten.
    Reset {
        /// The ledger.
        ledger: &'a Ledger,
        /// Who asked (an API key's name, an operator's user name).
        by: &'a str,
        /// Committed spend forgotten (the largest over the ledger's caps).
        committed: Decimal,
        /// Reservations forgotten (the largest over the ledger's caps).
        reserved: Decimal,
    },
    /// Money was spent but the store could not record it, even after retries.
    UnrecordedSpend {
        /// The ledger.
        ledger: &'a Ledger,
        /// The reservation.
        id: ReservationId,
        /// What was spent.
        actual: Decimal,
        /// Why it was not recorded.
        error: &'a StoreError,
    },
}

/// Receives [`Event`]s. Implemented for every `Fn(&Event) + Send + Sync`.
///
/// ```
/// use budgetgate::{Engine, Event};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let blocks = Arc::new(AtomicUsize::new(0));
/// let counter = blocks.clone();
/// let engine = Engine::builder()
///     .listener(move |event: &Event<'_>| {
///         if let Event::Decision(d) = event {
///             if d.is_blocked() { counter.fetch_add(1, Ordering::Relaxed); }
///         }
///     })
///     .build();
/// # let _ = engine;
/// ```
pub trait Listener: Send + Sync + 'static {
    /// Called synchronously on the deciding thread; keep it quick.
    fn on_event(&self, event: &Event<'_>);
}

impl<F> Listener for F
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}
