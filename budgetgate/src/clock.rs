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

/// The system's wall clock, read fast.
///
/// A wall-clock read (`SystemTime::now`) costs about 35 ns on a typical
/// virtual machine, and a reserve+commit needs two. This clock reads the CPU's
/// time-stamp counter instead (through [`quanta`], about 10 ns) and converts it
/// to wall time from an anchor that each thread takes from the system clock
/// and renews every [`SystemClock::REANCHOR`]: it never drifts from the system
/// clock by more than the counter's calibration error over that interval
/// (microseconds). Where the counter is not reliable (not invariant, or not
/// x86), `quanta` falls back to the OS monotonic clock and this stays correct,
/// only slower.
///
/// Renewing the anchor can move a thread's time back by that error; stores
/// keep each ledger's timestamps monotonic regardless.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// How long a thread's anchor on the system clock is trusted.
    pub const REANCHOR: Duration = Duration::from_secs(1);
}

/// The counter, calibrated once per process.
static COUNTER: std::sync::LazyLock<quanta::Clock> = std::sync::LazyLock::new(quanta::Clock::new);

/// A thread's anchor: the counter's raw value and the wall time (µs) read
/// together. `raw == 0` means not anchored yet.
#[derive(Clone, Copy)]
struct Anchor {
    raw: u64,
    wall_micros: i64,
}

thread_local! {
    static ANCHOR: std::cell::Cell<Anchor> =
        const { std::cell::Cell::new(Anchor { raw: 0, wall_micros: 0 }) };
}

/// The system clock itself (`SystemTime::now`), in µs since the epoch.
pub fn system_time_micros() -> i64 {
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

impl Clock for SystemClock {
    #[inline]
    fn now_micros(&self) -> i64 {
        let counter = &*COUNTER;
        let raw = counter.raw();
        let reanchor = Self::REANCHOR.as_nanos() as u64;
        // `try_with` fails only while the thread is being torn down.
        ANCHOR
            .try_with(|cell| {
                let anchor = cell.get();
                if anchor.raw != 0 && raw >= anchor.raw {
                    let elapsed = counter.delta_as_nanos(anchor.raw, raw);
                    if elapsed < reanchor {
                        return anchor.wall_micros + (elapsed / 1_000) as i64;
                    }
                }
                let wall_micros = system_time_micros();
                cell.set(Anchor {
                    raw: counter.raw().max(1),
                    wall_micros,
                });
                wall_micros
            })
            .unwrap_or_else(|_| system_time_micros())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast clock agrees with the system clock on every thread, before
    /// and after its anchor is renewed.
    #[test]
    fn system_clock_tracks_the_system_time() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut worst = 0i64;
                    // Fresh anchor; the same anchor 0.9 s old (where a wrong
                    // scale shows most); a renewed anchor.
                    let pauses = [
                        Duration::ZERO,
                        SystemClock::REANCHOR * 9 / 10,
                        SystemClock::REANCHOR,
                    ];
                    for pause in pauses {
                        std::thread::sleep(pause);
                        for _ in 0..1_000 {
                            let before = system_time_micros();
                            let ours = SystemClock.now_micros();
                            let after = system_time_micros();
                            // Outside [before, after] only by the counter's error.
                            let off = (before - ours).max(ours - after).max(0);
                            worst = worst.max(off);
                        }
                    }
                    worst
                })
            })
            .collect();
        for t in threads {
            let worst = t.join().unwrap();
            // Calibration error over one anchor interval is microseconds; 5 ms
            // leaves room for a loaded CI machine and still catches a wrong
            // scale or a lost anchor (which would be off by seconds or more).
            assert!(
                worst < 5_000,
                "SystemClock strayed {worst} µs from SystemTime"
            );
        }
    }
}
