//! Time for stores that keep their own: [`SystemClock`] in production and
//! [`ManualClock`] in tests, so window tests move time instead of sleeping.
//!
//! Times are microseconds since the Unix epoch (UTC), the unit every store
//! uses. Shared stores take time from the server instead (Redis `TIME`).

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now, in microseconds since the Unix epoch.
    fn now_micros(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            // u64 arithmetic: cheaper than the u128 of `as_micros`, exact
            // until the year 294,000.
            Ok(d) => (d.as_secs() as i64)
                .saturating_mul(1_000_000)
                .saturating_add(i64::from(d.subsec_micros())),
            // A clock set before 1970: treat as the epoch (stores keep time monotonic per ledger).
            Err(_) => 0,
        }
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use budgetgate::clock::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new(1_000_000);
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_micros(), 3_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `micros` since the epoch.
    pub fn new(micros: i64) -> Self {
        ManualClock {
            micros: Arc::new(AtomicI64::new(micros)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock (it may move backwards; stores keep each ledger's
    /// timestamps monotonic regardless).
    pub fn set(&self, micros: i64) {
        self.micros.store(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::SeqCst)
    }
}
