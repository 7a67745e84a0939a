//! The store conformance suite (decision logic, costs, atomicity, failures, observability), written once.
//!
//! Each check takes a [`StoreFactory`] that builds the store under test on a
//! [`ManualClock`]; [`conformance_tests!`](crate::conformance_tests) turns the
//! whole list into `#[test]` functions for one store.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use budgetgate::clock::ManualClock;
use budgetgate::rate::{Gate, Policy, RateReason};
use budgetgate::store::{ChargeRequest, Hold, SettleOutcome, SettleRequest, Store};
use budgetgate::{
    BlockReason, Budget, CommitError, Decimal, Engine, Event, Ledger, Release, ReservationId,
    Status,
};
use rust_decimal_macros::dec;

use crate::faulty::Faulty;

mod hierarchies;
mod operator;
mod policies;
mod rates;
mod spending;

pub use hierarchies::*;
pub use operator::*;
pub use policies::*;
pub use rates::*;
pub use spending::*;

/// Builds the store under test, reading time from `clock`.
pub trait StoreFactory {
    /// A store (it may share state with earlier ones; tests use fresh ledgers).
    fn store(&self, clock: &ManualClock) -> Arc<dyn Store>;
}

impl<F: Fn(&ManualClock) -> Arc<dyn Store>> StoreFactory for F {
    fn store(&self, clock: &ManualClock) -> Arc<dyn Store> {
        self(clock)
    }
}

/// 2026-01-01T00:00:00Z in µs: tests start at a fixed, realistic time.
pub const T0: i64 = 1_767_225_600_000_000;

/// A ledger no other test (or earlier run against a shared server) uses.
pub fn fresh_ledger(principal: &str) -> Ledger {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ledger::new(
        format!("conf-{}-{nonce}-{n}", std::process::id()),
        "res",
        principal,
    )
}

struct Setup {
    clock: ManualClock,
    engine: Engine,
    store: Arc<dyn Store>,
}

fn setup(factory: &dyn StoreFactory) -> Setup {
    let clock = ManualClock::new(T0);
    let store = factory.store(&clock);
    let engine = Engine::builder()
        .shared_store(store.clone())
        .reservation_ttl(Duration::from_secs(30))
        .build();
    Setup {
        clock,
        engine,
        store,
    }
}

fn lifetime(max: Decimal) -> Budget {
    Budget::lifetime(max).expect("valid budget")
}

fn rolling(max: Decimal, secs: u64) -> Budget {
    Budget::rolling(max, Duration::from_secs(secs)).expect("valid budget")
}

/// Generates one `#[test]` per conformance check for a store factory.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@each $factory;
            equality_allows, window_expiry, principals_independent, unbounded_window,
            reservations_count, commit_adjusts, commit_keeps_reservation_time,
            release_restores, settle_twice_or_unknown, overrun_recorded_and_reported,
            invalid_amounts_rejected, store_failures, unrecorded_commit_reported,
            reservation_ttl_expiry, call_outlives_window, listener_panic_counted,
            decision_json, no_budget_denied, daily_resets_at_midnight,
            monthly_resets_on_the_first, stacked_caps, a_cap_added_later, kill_switch,
            paused_calls_leave_nothing_behind,
            soft_limit_warnings, soft_limit_once_per_window,
            hierarchy_ledger_listed_twice, release_after_expiry_is_reported, status_and_decision_agree,
            rate_extreme_policies, rate_status_peeks, principal_patterns,
            hierarchy_all_or_nothing, hierarchy_default_path, hierarchy_threads_consistent,
            hierarchy_threads_default_path,
            active_ledgers_listed,
            rate_max_calls, rate_cooldown,
            rate_bucket_refill, rate_combined, rate_threads_exact, rate_store_failures,
            reset_forgets_spend, shared_budgets_apply_everywhere, records_round_trip);
    };
    (@each $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::$name(&$factory);
            }
        )*
    };
}
