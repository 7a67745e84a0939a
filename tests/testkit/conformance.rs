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

/// §3.3: `spent + A == max` allows; one nano-unit more blocks.
pub fn equality_allows(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(1)));
    let d = s.engine.check(&l, dec!(0.4));
    assert!(d.is_allowed(), "{d}");
    let d = s.engine.check(&l, dec!(0.6));
    assert!(d.is_allowed(), "equality must allow: {d}");
    assert_eq!(d.spent_in_window(), dec!(1));
    assert_eq!(d.remaining(), dec!(0));
    let d = s.engine.check(&l, dec!(0.000000001));
    assert_eq!(d.reason(), Some(BlockReason::BudgetExceeded), "{d}");
    assert_eq!(
        d.spent_in_window(),
        dec!(1),
        "a block does not include the request"
    );
    assert_eq!(d.requested(), dec!(0.000000001));
}

/// §3.1: a spend counts while `timestamp ≥ now − window`, and not after.
pub fn window_expiry(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, rolling(dec!(1), 60));
    assert!(s.engine.check(&l, dec!(1)).is_allowed());
    assert!(s.engine.check(&l, dec!(0.1)).is_blocked());
    s.clock.advance(Duration::from_secs(60));
    assert!(
        s.engine.check(&l, dec!(0.1)).is_blocked(),
        "at exactly now − window the spend still counts"
    );
    s.clock.advance(Duration::from_micros(1));
    let d = s.engine.check(&l, dec!(1));
    assert!(d.is_allowed(), "the spend left the window: {d}");
    assert_eq!(d.spent_in_window(), dec!(1));
}

/// §2: distinct principals share nothing.
pub fn principals_independent(f: &dyn StoreFactory) {
    let s = setup(f);
    let a = fresh_ledger("user:a");
    let b = Ledger::new(a.namespace(), a.resource(), "user:b");
    for l in [&a, &b] {
        s.engine.set_budget(l, lifetime(dec!(1)));
    }
    assert!(s.engine.check(&a, dec!(1)).is_allowed());
    assert!(s.engine.check(&a, dec!(0.5)).is_blocked());
    let d = s.engine.check(&b, dec!(1));
    assert!(d.is_allowed(), "{d}");
    assert_eq!(d.spent_in_window(), dec!(1));
}

/// An unbounded window never forgets.
pub fn unbounded_window(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(2)));
    assert!(s.engine.check(&l, dec!(1.5)).is_allowed());
    s.clock.advance(Duration::from_secs(10 * 365 * 86_400));
    let d = s.engine.check(&l, dec!(0.6));
    assert!(d.is_blocked(), "{d}");
    assert_eq!(d.spent_in_window(), dec!(1.5));
}

/// §3.2: open reservations count toward spent.
pub fn reservations_count(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(1)));
    let r = s.engine.reserve(&l, dec!(0.6)).expect("fits");
    assert_eq!(r.decision().spent_in_window(), dec!(0.6));
    let d = s.engine.check(&l, dec!(0.5));
    assert!(d.is_blocked(), "{d}");
    assert_eq!(d.spent_in_window(), dec!(0.6));
    let status = s.engine.status(&l).expect("status");
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0), dec!(0.6))
    );
    assert!(s.engine.reserve(&l, dec!(0.5)).is_err());
    r.commit(dec!(0.6)).expect("commit");
}

/// §4: commit changes spent by `actual − estimate`.
pub fn commit_adjusts(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(1)));
    let r = s.engine.reserve(&l, dec!(0.6)).expect("fits");
    let c = r.commit(dec!(0.2)).expect("commit");
    assert_eq!(
        (c.estimate(), c.actual(), c.overrun()),
        (dec!(0.6), dec!(0.2), None)
    );
    assert!(!c.is_late());
    let status = s.engine.status(&l).expect("status");
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.2), dec!(0))
    );
    assert!(s.engine.check(&l, dec!(0.8)).is_allowed());
    assert!(s.engine.check(&l, dec!(0.000000001)).is_blocked());
}

/// §4: a commit lands at the reservation's time, so it leaves a rolling
/// window when the reservation would have.
pub fn commit_keeps_reservation_time(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, rolling(dec!(1), 20));
    let r = s.engine.reserve(&l, dec!(0.6)).expect("fits");
    s.clock.advance(Duration::from_secs(15));
    r.commit(dec!(0.5)).expect("commit");
    s.clock.advance(Duration::from_secs(6)); // 21 s after the reservation
    let d = s.engine.check(&l, dec!(1));
    assert!(
        d.is_allowed(),
        "the commit belongs to the reservation's time: {d}"
    );
}

/// Release (explicit or by drop) returns the headroom and charges nothing.
pub fn release_restores(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(1)));
    let r = s.engine.reserve(&l, dec!(0.7)).expect("fits");
    r.release().expect("release");
    {
        let _dropped = s.engine.reserve(&l, dec!(0.7)).expect("fits after release");
    }
    let status = s.engine.status(&l).expect("status");
    assert_eq!((status.committed(), status.reserved()), (dec!(0), dec!(0)));
    assert!(s.engine.check(&l, dec!(1)).is_allowed());
}

/// §4/§6: settling twice, or a reservation the store never held, is a clean
/// `Unknown` and charges nothing; reusing a held id is refused.
pub fn settle_twice_or_unknown(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    let limits = [lifetime(dec!(1)).limit()];
    let id = ReservationId::new();
    let charged = s
        .store
        .charge(&ChargeRequest {
            ledger: &l,
            limits: &limits,
            amount: 600_000_000,
            hold: Some(Hold {
                id,
                ttl: Duration::from_secs(30),
            }),
        })
        .expect("charge");
    assert!(charged.admitted);
    // An id already held is refused, and the refusal records nothing.
    let again = s.store.charge(&ChargeRequest {
        ledger: &l,
        limits: &limits,
        amount: 100_000_000,
        hold: Some(Hold {
            id,
            ttl: Duration::from_secs(30),
        }),
    });
    assert!(again.is_err(), "a held id was reused: {again:?}");
    let usage = s.store.status(&l, &limits).expect("status");
    assert_eq!((usage[0].committed, usage[0].reserved), (0, 600_000_000));
    let settle = |id, actual| SettleRequest {
        ledger: &l,
        limits: &limits,
        id,
        reserved: 600_000_000,
        actual,
        record_if_missing: false,
        cancel: false,
    };
    let store = &s.store;
    assert_eq!(
        store.settle(&settle(id, Some(200_000_000))),
        Ok(SettleOutcome::Committed)
    );
    assert_eq!(
        store.settle(&settle(id, Some(200_000_000))),
        Ok(SettleOutcome::Unknown)
    );
    assert_eq!(store.settle(&settle(id, None)), Ok(SettleOutcome::Unknown));
    let stranger = ReservationId::new();
    assert_eq!(
        store.settle(&settle(stranger, Some(300_000_000))),
        Ok(SettleOutcome::Unknown)
    );
    assert_eq!(
        store.settle(&settle(stranger, None)),
        Ok(SettleOutcome::Unknown)
    );
    let usage = store.status(&l, &limits).expect("status");
    assert_eq!((usage[0].committed, usage[0].reserved), (200_000_000, 0));
}

/// §4: an actual above the estimate is recorded in full and reported.
pub fn overrun_recorded_and_reported(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let overruns = Arc::new(Mutex::new(Vec::new()));
    let seen = overruns.clone();
    let engine = Engine::builder()
        .shared_store(f.store(&clock))
        .listener(move |e: &Event<'_>| {
            if let Event::Overrun {
                estimate, actual, ..
            } = e
            {
                seen.lock().unwrap().push((*estimate, *actual));
            }
        })
        .build();
    let l = fresh_ledger("p");
    engine.set_budget(&l, lifetime(dec!(1)));
    let c = engine
        .reserve(&l, dec!(0.5))
        .expect("fits")
        .commit(dec!(0.8))
        .expect("commit");
    assert_eq!(c.overrun(), Some(dec!(0.3)));
    assert_eq!(*overruns.lock().unwrap(), vec![(dec!(0.5), dec!(0.8))]);
    assert_eq!(engine.status(&l).expect("status").committed(), dec!(0.8));
    assert!(
        engine.check(&l, dec!(0.3)).is_blocked(),
        "later calls see the truth"
    );
}

/// §4/§9: negative, too precise or too large amounts are refused by value.
pub fn invalid_amounts_rejected(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(1)));
    for bad in [dec!(-0.5), dec!(0.0000000001), Decimal::MAX] {
        let d = s.engine.check(&l, bad);
        assert_eq!(d.reason(), Some(BlockReason::InvalidAmount), "{bad}: {d}");
        assert!(d.message().contains(&bad.to_string()), "{}", d.message());
        let err = s.engine.reserve(&l, bad).expect_err("invalid estimate");
        assert_eq!(err.decision().reason(), Some(BlockReason::InvalidAmount));
    }
    assert!(Budget::lifetime(dec!(-1)).is_err());
    let r = s.engine.reserve(&l, dec!(0.4)).expect("fits");
    match r.commit(dec!(-0.1)) {
        Err(CommitError::InvalidActual { estimate, .. }) => assert_eq!(estimate, dec!(0.4)),
        other => panic!("expected InvalidActual, got {other:?}"),
    }
    assert_eq!(s.engine.status(&l).expect("status").committed(), dec!(0.4));
}

/// §6: a failing store blocks (fail-closed, the default) or allows
/// (fail-open), both with reason StoreError; the store is used again when it
/// recovers.
pub fn store_failures(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let faulty = Faulty::new(f.store(&clock));
    let engine = Engine::new(faulty.clone());
    let closed = fresh_ledger("closed");
    let open = fresh_ledger("open");
    engine.set_budget(&closed, lifetime(dec!(1)));
    engine.set_budget(&open, lifetime(dec!(1)).fail_open());
    faulty.set_failing(true);
    let d = engine.check(&closed, dec!(0.1));
    assert_eq!(
        (d.status(), d.reason()),
        (Status::Block, Some(BlockReason::StoreError))
    );
    assert!(d.detail().is_some_and(|m| m.contains("injected")), "{d}");
    let d = engine.check(&open, dec!(0.1));
    assert_eq!(
        (d.status(), d.reason()),
        (Status::Allow, Some(BlockReason::StoreError))
    );
    let err = engine.reserve(&closed, dec!(0.1)).expect_err("fail closed");
    assert_eq!(err.decision().reason(), Some(BlockReason::StoreError));
    // Fail-open reservation: allowed unbacked; its commit is recorded once
    // the store is back.
    let r = engine.reserve(&open, dec!(0.5)).expect("fail open");
    faulty.set_failing(false);
    let c = r.commit(dec!(0.25)).expect("recorded on recovery");
    assert!(c.is_late());
    // The fail-open fixed cost (0.1) ran too: it is recorded in the
    // background once the store answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while engine.status(&open).expect("status").committed() != dec!(0.35) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            engine.status(&open)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        engine.check(&closed, dec!(1)).is_allowed(),
        "recovered store is used again"
    );
}

/// A commit the store cannot take is not dropped: it is reported as
/// unknown (being retried), lands when the store answers again — once — or,
/// past the settle horizon, is reported as unrecorded spend.
pub fn unrecorded_commit_reported(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let faulty = Faulty::new(f.store(&clock));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let engine = Engine::builder()
        .store(faulty.clone())
        .commit_deadline(Duration::from_millis(100))
        .settle_horizon(Duration::from_millis(400))
        .listener(move |e: &Event<'_>| match e {
            Event::UnrecordedSpend { actual, .. } => {
                sink.lock().unwrap().push(format!("unrecorded {actual}"))
            }
            Event::Committed { actual, .. } => {
                sink.lock().unwrap().push(format!("committed {actual}"))
            }
            _ => {}
        })
        .build();
    let events = || events.lock().unwrap().clone();
    let l = fresh_ledger("p");
    engine.set_budget(&l, lifetime(dec!(1)));

    // The store comes back: the commit lands in the background, once.
    let r = engine.reserve(&l, dec!(0.5)).expect("fits");
    faulty.set_failing(true);
    match r.commit(dec!(0.3)) {
        Err(CommitError::Unknown { actual, .. }) => assert_eq!(actual, dec!(0.3)),
        other => panic!("expected Unknown, got {other:?}"),
    }
    faulty.set_failing(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !events().contains(&"committed 0.3".to_owned()) {
        assert!(std::time::Instant::now() < deadline, "{:?}", events());
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = engine.status(&l).expect("status");
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.3), dec!(0))
    );

    // It never comes back: after the horizon, unrecorded spend is reported.
    let r = engine.reserve(&l, dec!(0.5)).expect("fits");
    faulty.set_failing(true);
    assert!(matches!(
        r.commit(dec!(0.2)),
        Err(CommitError::Unknown { .. })
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !events().contains(&"unrecorded 0.2".to_owned()) {
        assert!(std::time::Instant::now() < deadline, "{:?}", events());
        std::thread::sleep(Duration::from_millis(10));
    }
    faulty.set_failing(false);
}

/// §6: a reservation nobody settles expires after its TTL; a late commit is
/// still recorded (at the commit's time) and reported as late.
pub fn reservation_ttl_expiry(f: &dyn StoreFactory) {
    let s = setup(f); // TTL 30 s, lifetime window
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(1)));
    let r = s.engine.reserve(&l, dec!(0.8)).expect("fits");
    s.clock.advance(Duration::from_secs(29));
    assert!(s.engine.check(&l, dec!(0.3)).is_blocked(), "still held");
    s.clock.advance(Duration::from_secs(2));
    let status = s.engine.status(&l).expect("status");
    assert_eq!(status.reserved(), dec!(0), "expired hold no longer counts");
    let c = r.commit(dec!(0.6)).expect("late commit recorded");
    assert!(c.is_late());
    assert_eq!(s.engine.status(&l).expect("status").committed(), dec!(0.6));
    assert!(s.engine.check(&l, dec!(0.4)).is_allowed());
    assert!(s.engine.check(&l, dec!(0.000000001)).is_blocked());
}

/// A call longer than the window: the hold leaves the window, and the commit
/// counts from the commit's time instead of vanishing.
pub fn call_outlives_window(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, rolling(dec!(1), 10));
    let r = s.engine.reserve(&l, dec!(0.5)).expect("fits");
    s.clock.advance(Duration::from_secs(11));
    let c = r.commit(dec!(0.7)).expect("commit");
    assert!(c.is_late());
    let d = s.engine.check(&l, dec!(0.31));
    assert!(d.is_blocked(), "the spend counts from the commit: {d}");
    assert_eq!(d.spent_in_window(), dec!(0.7));
}

/// §11: a panicking listener is counted and never reaches the caller.
pub fn listener_panic_counted(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let calls = Arc::new(AtomicUsize::new(0));
    let after = calls.clone();
    let engine = Engine::builder()
        .shared_store(f.store(&clock))
        .listener(|_: &Event<'_>| panic!("listener bug"))
        .listener(move |_: &Event<'_>| {
            after.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    let l = fresh_ledger("p");
    engine.set_budget(&l, lifetime(dec!(1)));
    assert!(engine.check(&l, dec!(0.5)).is_allowed());
    assert!(engine.check(&l, dec!(0.6)).is_blocked());
    assert_eq!(engine.listener_panics(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "later listeners still run");
}

/// §11: the decision JSON carries every field, amounts as decimal strings.
pub fn decision_json(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("user:1");
    s.engine.set_budget(&l, lifetime(dec!(1.5)));
    let allow = s.engine.check(&l, dec!(1.25)).to_json();
    assert_eq!(allow["schema_version"], 1);
    assert_eq!(allow["status"], "ALLOW");
    assert_eq!(allow["ledger"], format!("{}:res@user:1", l.namespace()));
    assert!(allow["reason"].is_null());
    assert!(allow["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(allow["spent_in_window"], "1.25");
    assert_eq!(allow["requested"], "1.25");
    assert_eq!(allow["remaining"], "0.25");
    let block = s.engine.check(&l, dec!(0.5)).to_json();
    assert_eq!(block["status"], "BLOCK");
    assert_eq!(block["reason"], "BUDGET_EXCEEDED");
    assert_eq!(block["spent_in_window"], "1.25");
    assert_eq!(block["remaining"], "0.25");
}

/// A ledger without a budget is denied under the default policy.
pub fn no_budget_denied(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    let d = s.engine.check(&l, dec!(0.01));
    assert_eq!(d.reason(), Some(BlockReason::NoBudget), "{d}");
}

/// Calendar days reset exactly at midnight UTC; holds from yesterday no
/// longer count, and their commit counts today (late).
pub fn daily_resets_at_midnight(f: &dyn StoreFactory) {
    let s = setup(f); // T0 = 2026-01-01T00:00:00Z
    let l = fresh_ledger("p");
    s.engine.set_budget(
        &l,
        Budget::new(dec!(1), budgetgate::Window::daily()).unwrap(),
    );
    s.clock.advance(Duration::from_secs(86_400 - 10)); // 23:59:50
    assert!(s.engine.check(&l, dec!(0.6)).is_allowed());
    let r = s.engine.reserve(&l, dec!(0.4)).expect("fits");
    assert!(s.engine.check(&l, dec!(0.000000001)).is_blocked());
    s.clock.advance(Duration::from_micros(9_999_999)); // 23:59:59.999999
    assert!(
        s.engine.check(&l, dec!(0.000000001)).is_blocked(),
        "still the same day"
    );
    s.clock.advance(Duration::from_micros(1)); // 00:00:00 on Jan 2
    let status = s.engine.status(&l).expect("status");
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0), dec!(0)),
        "a new day"
    );
    let c = r.commit(dec!(0.3)).expect("commit");
    assert!(c.is_late(), "the hold belonged to yesterday");
    let d = s.engine.check(&l, dec!(0.7));
    assert!(d.is_allowed(), "{d}");
    assert!(s.engine.check(&l, dec!(0.000000001)).is_blocked());
}

/// Calendar months reset at 00:00 on the 1st (UTC), whatever their length.
pub fn monthly_resets_on_the_first(f: &dyn StoreFactory) {
    let s = setup(f); // T0 = 2026-01-01T00:00:00Z
    let l = fresh_ledger("p");
    s.engine.set_budget(
        &l,
        Budget::new(dec!(5), budgetgate::Window::monthly()).unwrap(),
    );
    assert!(s.engine.check(&l, dec!(5)).is_allowed());
    s.clock.advance(Duration::from_secs(31 * 86_400 - 1)); // Jan 31 23:59:59
    assert!(s.engine.check(&l, dec!(1)).is_blocked());
    s.clock.advance(Duration::from_secs(1)); // Feb 1
    assert!(s.engine.check(&l, dec!(5)).is_allowed());
    s.clock.advance(Duration::from_secs(28 * 86_400 - 1)); // Feb 28 23:59:59 (2026 is not leap)
    assert!(s.engine.check(&l, dec!(1)).is_blocked());
    s.clock.advance(Duration::from_secs(1)); // Mar 1
    assert!(s.engine.check(&l, dec!(5)).is_allowed());
    // A fixed offset: UTC+1 months start at 23:00 UTC the day before.
    let plus1 = fresh_ledger("plus1");
    let window = budgetgate::Window::Monthly {
        utc_offset_minutes: 60,
    };
    s.engine
        .set_budget(&plus1, Budget::new(dec!(1), window).unwrap());
    s.clock
        .advance(Duration::from_secs(30 * 86_400 + 22 * 3_600)); // Mar 31 22:00 UTC
    assert!(s.engine.check(&plus1, dec!(1)).is_allowed());
    s.clock.advance(Duration::from_secs(3_600)); // Mar 31 23:00 UTC = Apr 1 00:00 UTC+1
    assert!(
        s.engine.check(&plus1, dec!(1)).is_allowed(),
        "a new month at UTC+1"
    );
}

/// Stacked caps: every cap must pass; the tightest one blocks and is named;
/// status reports each cap (and when calendar caps reset).
pub fn stacked_caps(f: &dyn StoreFactory) {
    use budgetgate::Window;
    let s = setup(f); // T0 = 2026-01-01T00:00:00Z
    let l = fresh_ledger("p");
    s.engine.set_budgets(
        &l,
        [
            Budget::new(dec!(2), Window::daily()).unwrap(),
            Budget::new(dec!(5), Window::monthly()).unwrap(),
            Budget::lifetime(dec!(6.5)).unwrap(),
        ],
    );
    let blocked_by = |amount| {
        let d = s.engine.check(&l, amount);
        assert!(d.is_blocked(), "{d}");
        d.budget().unwrap().window()
    };
    let day = Duration::from_secs(86_400);
    assert!(s.engine.check(&l, dec!(2)).is_allowed());
    assert_eq!(blocked_by(dec!(0.5)), Window::daily());
    s.clock.advance(day);
    let r = s.engine.reserve(&l, dec!(2)).expect("fits all three");
    r.commit(dec!(1.5)).expect("commit lands in every cap");
    s.clock.advance(day);
    assert!(s.engine.check(&l, dec!(1.5)).is_allowed()); // 5 this month
    s.clock.advance(day);
    assert_eq!(
        blocked_by(dec!(0.5)),
        Window::monthly(),
        "the daily cap has room"
    );
    let status = s.engine.status(&l).expect("status");
    let caps = status.caps();
    assert_eq!(caps.len(), 3);
    assert_eq!(
        (
            caps[0].committed(),
            caps[1].committed(),
            caps[2].committed()
        ),
        (dec!(0), dec!(5), dec!(5))
    );
    assert_eq!(
        status.remaining(),
        dec!(0),
        "the tightest cap is the monthly one"
    );
    let jan4 = std::time::UNIX_EPOCH + Duration::from_micros(T0 as u64) + 4 * day;
    assert_eq!(caps[0].resets_at(), Some(jan4));
    assert_eq!(
        caps[1].resets_at(),
        Some(std::time::UNIX_EPOCH + Duration::from_micros(T0 as u64) + 31 * day)
    );
    assert_eq!(caps[2].resets_at(), None);
    s.clock.advance(31 * day); // February
    assert!(s.engine.check(&l, dec!(1)).is_allowed()); // 6 in all
                                                       // 0.75 fits today (1 of 2) and this month, not the lifetime cap (6.5).
    assert_eq!(blocked_by(dec!(0.75)), Window::Unbounded);
    // Over the daily and the lifetime cap: the one with less room is named.
    assert_eq!(blocked_by(dec!(1.5)), Window::Unbounded);
}

/// A cap added to a ledger that already spent: the old caps keep what was
/// spent, the new one counts from then on (its window starts empty), and
/// both hold from the next call; adding another keeps all of them.
pub fn a_cap_added_later(f: &dyn StoreFactory) {
    use budgetgate::{Decimal, Window};
    let s = setup(f);
    let l = fresh_ledger("p");
    let hour = Duration::from_secs(3_600);
    let lifetime = Budget::lifetime(dec!(10)).unwrap();
    let hourly = Budget::rolling(dec!(4), hour).unwrap();
    s.engine.set_budget(&l, lifetime);
    for _ in 0..2 {
        let r = s.engine.reserve(&l, dec!(2)).expect("fits");
        r.commit(dec!(2)).expect("commit");
    }
    s.engine.set_budgets(&l, [lifetime, hourly]);
    let spent = |s: &Setup| -> Vec<Decimal> {
        let status = s.engine.status(&l).expect("status");
        status.caps().iter().map(|c| c.committed()).collect()
    };
    let blocked_by = |s: &Setup, amount| {
        let d = s.engine.check(&l, amount);
        assert!(d.is_blocked(), "{d}");
        d.budget().unwrap().window()
    };
    assert_eq!(spent(&s), [dec!(4), dec!(0)]);
    let r = s.engine.reserve(&l, dec!(2.5)).expect("fits both");
    r.commit(dec!(2.5)).expect("commit");
    assert_eq!(spent(&s), [dec!(6.5), dec!(2.5)]);
    assert_eq!(blocked_by(&s, dec!(2)), Window::Rolling(hour));
    assert!(s.engine.check(&l, dec!(1)).is_allowed()); // recorded
    assert_eq!(spent(&s), [dec!(7.5), dec!(3.5)]);
    // A third cap: everything so far still counts in the first two.
    let two_hours = Budget::rolling(dec!(100), 2 * hour).unwrap();
    s.engine.set_budgets(&l, [lifetime, hourly, two_hours]);
    assert_eq!(blocked_by(&s, dec!(1)), Window::Rolling(hour));
    let r = s.engine.reserve(&l, dec!(0.5)).expect("fits all three");
    r.commit(dec!(0.5)).expect("commit");
    assert_eq!(spent(&s), [dec!(8), dec!(4), dec!(0.5)]);
    // The hour passes: the hourly cap empties, the others do not.
    s.clock.advance(hour + Duration::from_secs(1));
    assert_eq!(spent(&s), [dec!(8), dec!(0), dec!(0.5)]);
    assert_eq!(blocked_by(&s, dec!(2.5)), Window::Unbounded);
}

/// The kill switch: a paused ledger, namespace or everything blocks with
/// reason Paused; recorded spend is kept; running calls still commit;
/// resuming restores.
pub fn kill_switch(f: &dyn StoreFactory) {
    use budgetgate::PauseScope;
    let s = setup(f);
    let a = fresh_ledger("a");
    let b = Ledger::new(a.namespace(), "other", "b");
    let c = fresh_ledger("c"); // another namespace
    for l in [&a, &b, &c] {
        s.engine.set_budget(l, lifetime(dec!(10)));
    }
    assert!(s.engine.check(&a, dec!(1)).is_allowed());
    let running = s.engine.reserve(&a, dec!(2)).expect("fits");

    s.engine
        .pause(&PauseScope::Ledger(a.clone()))
        .expect("pause");
    let d = s.engine.check(&a, dec!(1));
    assert_eq!(
        (d.status(), d.reason()),
        (Status::Block, Some(BlockReason::Paused)),
        "{d}"
    );
    assert_eq!(
        s.engine
            .reserve(&a, dec!(1))
            .unwrap_err()
            .decision()
            .reason(),
        Some(BlockReason::Paused)
    );
    assert!(
        s.engine.check(&b, dec!(1)).is_allowed(),
        "other ledgers run"
    );
    running
        .commit(dec!(1))
        .expect("a running call still commits");
    assert_eq!(
        s.engine.status(&a).expect("status").committed(),
        dec!(2),
        "spend is kept"
    );
    assert_eq!(
        s.engine.paused().expect("list"),
        vec![PauseScope::Ledger(a.clone())]
    );
    s.engine
        .resume(&PauseScope::Ledger(a.clone()))
        .expect("resume");
    assert!(s.engine.check(&a, dec!(1)).is_allowed());

    let ns = PauseScope::Namespace(a.namespace().to_owned());
    s.engine.pause(&ns).expect("pause");
    assert_eq!(
        s.engine.check(&a, dec!(1)).reason(),
        Some(BlockReason::Paused)
    );
    assert_eq!(
        s.engine.check(&b, dec!(1)).reason(),
        Some(BlockReason::Paused)
    );
    assert!(
        s.engine.check(&c, dec!(1)).is_allowed(),
        "other namespaces run"
    );
    s.engine.resume(&ns).expect("resume");

    s.engine.pause(&PauseScope::All).expect("pause");
    assert_eq!(
        s.engine.check(&c, dec!(1)).reason(),
        Some(BlockReason::Paused)
    );
    s.engine.resume(&PauseScope::All).expect("resume");
    assert!(s.engine.paused().expect("list").is_empty());
    assert!(s.engine.check(&c, dec!(1)).is_allowed());
    let json = s.engine.check(&a, dec!(100)).to_json();
    assert_eq!(
        json["reason"], "BUDGET_EXCEEDED",
        "resumed ledgers are budgeted as before"
    );
}

/// Soft-limit warnings: one per crossing (so one per window for calendar
/// windows), never on every call, exactly one under concurrency.
pub fn soft_limit_warnings(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let seen = warnings.clone();
    let engine = Engine::builder()
        .shared_store(f.store(&clock))
        .listener(move |e: &Event<'_>| {
            if let Event::SoftLimit {
                threshold,
                spent_in_window,
                ..
            } = e
            {
                seen.lock().unwrap().push((*threshold, *spent_in_window));
            }
        })
        .build();
    let count = || warnings.lock().unwrap().len();
    let l = fresh_ledger("p");
    let daily = Budget::new(dec!(10), budgetgate::Window::daily())
        .unwrap()
        .warn_at(dec!(0.8))
        .unwrap();
    engine.set_budget(&l, daily);
    assert!(engine.check(&l, dec!(5)).is_allowed());
    assert!(engine.check(&l, dec!(2)).is_allowed());
    assert_eq!(count(), 0, "7 of 10: below 80 %");
    assert!(engine.check(&l, dec!(1.5)).is_allowed());
    assert_eq!(*warnings.lock().unwrap(), vec![(dec!(8), dec!(8.5))]);
    assert!(engine.check(&l, dec!(1)).is_allowed());
    assert!(engine.check(&l, dec!(5)).is_blocked());
    assert_eq!(count(), 1, "once per crossing, not on every call");
    clock.advance(Duration::from_secs(86_400));
    let r = engine.reserve(&l, dec!(9)).expect("a new day");
    assert_eq!(
        count(),
        2,
        "a new window crosses again (a reservation counts)"
    );
    r.commit(dec!(9)).expect("commit");

    // Concurrency: exactly one of many callers sees the crossing.
    let shared = fresh_ledger("shared");
    engine.set_budget(&shared, lifetime(dec!(10)).warn_at(dec!(0.5)).unwrap());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..100 {
                    let _ = engine.check(&shared, dec!(0.01));
                }
            });
        }
    });
    assert_eq!(engine.status(&shared).expect("status").committed(), dec!(8));
    assert_eq!(
        count(),
        3,
        "one warning for the 50 % crossing, whatever the interleaving"
    );
}

/// Each soft-limit threshold is reported once per window, even when spend
/// dips below it and crosses it again; several thresholds are each reported
/// once; a rolling window may report again once a window length passed.
pub fn soft_limit_once_per_window(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let engine = Engine::builder()
        .shared_store(f.store(&clock))
        .listener(move |e: &Event<'_>| {
            if let Event::SoftLimit { threshold, .. } = e {
                sink.lock().unwrap().push(*threshold);
            }
        })
        .build();
    let seen = || seen.lock().unwrap().clone();

    // Daily cap 10, warn at 80 %: reserve 8.5 (crosses), commit 1 (dips to
    // 1), check 7.5 (back to 8.5): still one warning today.
    let l = fresh_ledger("dip");
    let daily = Budget::new(dec!(10), budgetgate::Window::daily())
        .unwrap()
        .warn_at(dec!(0.8))
        .unwrap();
    engine.set_budget(&l, daily);
    let r = engine.reserve(&l, dec!(8.5)).expect("fits");
    assert_eq!(seen(), vec![dec!(8)]);
    r.commit(dec!(1)).expect("commit");
    assert!(engine.check(&l, dec!(7.5)).is_allowed());
    assert_eq!(
        seen(),
        vec![dec!(8)],
        "the 80 % warning fired twice in one day"
    );
    clock.advance(Duration::from_secs(86_400));
    assert!(engine.check(&l, dec!(9)).is_allowed());
    assert_eq!(seen(), vec![dec!(8), dec!(8)], "a new day warns again");

    // 50 / 80 / 100 %: each once, in order, in one lifetime window.
    let multi = fresh_ledger("multi");
    let budget = lifetime(dec!(10))
        .warn_at(dec!(0.5))
        .and_then(|b| b.warn_at(dec!(0.8)))
        .and_then(|b| b.warn_at(dec!(1)))
        .unwrap();
    engine.set_budget(&multi, budget);
    let before = seen().len();
    assert!(engine.check(&multi, dec!(6)).is_allowed()); // 50 %
    assert!(engine.check(&multi, dec!(3)).is_allowed()); // 80 %
    let r = engine.reserve(&multi, dec!(1)).expect("fits"); // 100 %
    drop(r); // released: back to 9
    assert!(engine.check(&multi, dec!(1)).is_allowed()); // 100 % again: not reported
    assert_eq!(seen()[before..], [dec!(5), dec!(8), dec!(10)]);

    // Several thresholds crossed by one charge are all reported.
    let jump = fresh_ledger("jump");
    engine.set_budget(&jump, budget);
    let before = seen().len();
    assert!(engine.check(&jump, dec!(9)).is_allowed());
    assert_eq!(seen()[before..], [dec!(5), dec!(8)]);

    // A rolling hour: after dipping, no second report within the hour;
    // once the hour has passed and spend crosses again, a new report.
    let hourly = fresh_ledger("hourly");
    engine.set_budget(
        &hourly,
        Budget::rolling(dec!(10), Duration::from_secs(3600))
            .unwrap()
            .warn_at(dec!(0.5))
            .unwrap(),
    );
    let before = seen().len();
    let r = engine.reserve(&hourly, dec!(6)).expect("fits");
    r.release().expect("release");
    assert!(engine.check(&hourly, dec!(6)).is_allowed());
    assert_eq!(seen().len(), before + 1, "one report within the hour");
    clock.advance(Duration::from_secs(3601));
    assert!(engine.check(&hourly, dec!(6)).is_allowed());
    assert_eq!(seen().len(), before + 2, "a later window reports again");
}

/// A ledger listed twice in one hierarchy is one spend stream, charged
/// once: by fixed cost and by reservation, fail-open or fail-closed.
pub fn hierarchy_ledger_listed_twice(f: &dyn StoreFactory) {
    let s = setup(f);
    for fail_open in [false, true] {
        let user = fresh_ledger("user");
        let team = fresh_ledger("team");
        let budget = |max| {
            let b = lifetime(max);
            if fail_open {
                b.fail_open()
            } else {
                b
            }
        };
        s.engine.set_budget(&user, budget(dec!(5)));
        s.engine.set_budget(&team, budget(dec!(100)));
        // Over the user's budget: blocked as BUDGET_EXCEEDED (not a store error).
        let d = s.engine.check_all(&[user.clone(), user.clone()], dec!(100));
        assert!(d.is_blocked(), "{d}");
        assert_eq!(d.reason(), Some(BlockReason::BudgetExceeded), "{d}");
        // Within it: admitted and charged once.
        let d = s
            .engine
            .check_all(&[user.clone(), team.clone(), user.clone()], dec!(2));
        assert!(d.is_allowed(), "{d}");
        assert_eq!(d.reason(), None, "{d}");
        assert_eq!(s.engine.status(&user).unwrap().committed(), dec!(2));
        assert_eq!(s.engine.status(&team).unwrap().committed(), dec!(2));
        let r = s
            .engine
            .reserve_all(&[user.clone(), user.clone()], dec!(3))
            .expect("3 fits once (2 + 3 = 5), not twice");
        assert_eq!(s.engine.status(&user).unwrap().reserved(), dec!(3));
        r.commit(dec!(1)).expect("commit");
        assert_eq!(s.engine.status(&user).unwrap().committed(), dec!(3));
        assert_eq!(s.engine.status(&user).unwrap().reserved(), dec!(0));
    }
}

/// A status and a decision count the same money under the same names:
/// `spent_in_window` is committed plus reserved in both.
pub fn status_and_decision_agree(f: &dyn StoreFactory) {
    let s = setup(f);
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(10)));
    assert!(s.engine.check(&l, dec!(2)).is_allowed());
    let r = s.engine.reserve(&l, dec!(3)).expect("fits");
    let status = s.engine.status(&l).unwrap();
    assert_eq!(status.committed(), dec!(2));
    assert_eq!(status.reserved(), dec!(3));
    assert_eq!(status.spent_in_window(), dec!(5));
    assert_eq!(r.decision().spent_in_window(), status.spent_in_window());
    let blocked = s.engine.check(&l, dec!(6));
    assert_eq!(blocked.spent_in_window(), status.spent_in_window());
    assert_eq!(blocked.remaining(), status.remaining());
    drop(r);
}

/// Releasing a reservation that already expired says so, unlike a real
/// release.
pub fn release_after_expiry_is_reported(f: &dyn StoreFactory) {
    let s = setup(f); // TTL 30 s
    let l = fresh_ledger("p");
    s.engine.set_budget(&l, lifetime(dec!(1)));
    let r = s.engine.reserve(&l, dec!(0.5)).expect("fits");
    assert_eq!(r.release().expect("release"), Release::Released);
    let r = s.engine.reserve(&l, dec!(0.5)).expect("fits");
    s.clock.advance(Duration::from_secs(31));
    assert_eq!(r.release().expect("release"), Release::NotHeld);
    assert_eq!(s.engine.status(&l).unwrap().spent_in_window(), dec!(0));
}

/// Rate policies at their extremes behave the same on every store and
/// never panic: `Duration::MAX` windows and cooldowns mean "as good as
/// forever", zero calls is an invalid policy.
pub fn rate_extreme_policies(f: &dyn StoreFactory) {
    let s = setup(f);
    let cooldown = Policy::new().cooldown(Duration::MAX);
    let g = gate("forever-cooldown");
    assert!(s.engine.rate_check(&g, &cooldown).is_allowed());
    s.clock.advance(Duration::from_secs(86_400 * 365));
    let d = s.engine.rate_check(&g, &cooldown);
    assert_eq!(d.reason(), Some(RateReason::Cooldown), "{}", d.message());
    assert!(d.retry_after().unwrap() > Duration::from_secs(86_400 * 365 * 90));

    let once = Policy::new().max_calls(1, Duration::MAX);
    let g = gate("forever-window");
    assert!(s.engine.rate_check(&g, &once).is_allowed());
    let d = s.engine.rate_check(&g, &once);
    assert_eq!(
        d.reason(),
        Some(RateReason::TooManyCalls),
        "{}",
        d.message()
    );
    s.clock.advance(Duration::from_secs(86_400 * 365));
    assert!(s.engine.rate_check(&g, &once).is_blocked());

    let bucket = Policy::new().bucket(1, 1, Duration::MAX);
    let g = gate("forever-bucket");
    let first = s.engine.rate_check(&g, &bucket);
    assert!(first.is_allowed(), "{}", first.message());
    let d = s.engine.rate_check(&g, &bucket);
    assert_eq!(d.reason(), Some(RateReason::BucketEmpty), "{}", d.message());

    for fail_open in [false, true] {
        let zero = Policy::new().max_calls(0, Duration::from_secs(60));
        let zero = if fail_open { zero.fail_open() } else { zero };
        let d = s.engine.rate_check(&gate("zero"), &zero);
        assert!(d.is_blocked(), "{}", d.message());
        assert_eq!(d.reason(), Some(RateReason::InvalidPolicy));
    }
}

/// A gate can be read without consuming a call: `rate_status` says what
/// `rate_check` would, and records nothing.
pub fn rate_status_peeks(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("peek");
    let policy = Policy::new()
        .max_calls(2, Duration::from_secs(60))
        .cooldown(Duration::from_secs(1));
    for _ in 0..5 {
        let peek = s.engine.rate_status(&g, &policy);
        assert!(peek.is_allowed(), "{}", peek.message());
        assert_eq!(peek.calls_in_window(), 0);
    }
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    let peek = s.engine.rate_status(&g, &policy);
    assert_eq!(peek.reason(), Some(RateReason::Cooldown));
    assert_eq!(peek.retry_after(), Some(Duration::from_secs(1)));
    s.clock.advance(Duration::from_secs(1));
    assert!(s.engine.rate_status(&g, &policy).is_allowed());
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    s.clock.advance(Duration::from_secs(1));
    let peek = s.engine.rate_status(&g, &policy);
    assert_eq!(peek.reason(), Some(RateReason::TooManyCalls));
    assert_eq!(peek.calls_in_window(), 2);
    assert_eq!(
        s.engine.rate_check(&g, &policy).reason(),
        Some(RateReason::TooManyCalls)
    );
}

/// Budgets by principal pattern: the most specific match wins, and a
/// ledger no pattern matches follows the default policy (deny).
pub fn principal_patterns(f: &dyn StoreFactory) {
    let s = setup(f);
    let ns = fresh_ledger("x").namespace().to_owned();
    s.engine
        .set_budget_matching(&ns, "chat", "user:*", lifetime(dec!(1)));
    s.engine
        .set_budget_matching(&ns, "chat", "user:vip-*", lifetime(dec!(10)));
    s.engine
        .set_budget_matching(&ns, "chat", "org", lifetime(dec!(100)));
    let user = Ledger::new(ns.clone(), "chat", "user:42");
    let vip = Ledger::new(ns.clone(), "chat", "user:vip-7");
    let org = Ledger::new(ns.clone(), "chat", "org");
    let other = Ledger::new(ns.clone(), "chat", "team:a");
    assert_eq!(s.engine.budget_for(&user).unwrap().max_spend(), dec!(1));
    assert_eq!(s.engine.budget_for(&vip).unwrap().max_spend(), dec!(10));
    assert_eq!(s.engine.budget_for(&org).unwrap().max_spend(), dec!(100));
    assert_eq!(s.engine.budget_for(&other), None);
    assert_eq!(
        s.engine.check(&other, dec!(0.1)).reason(),
        Some(BlockReason::NoBudget)
    );
    // The org ledger of a hierarchy has its own budget, not a user's.
    for _ in 0..3 {
        let d = s.engine.check_all(&[user.clone(), org.clone()], dec!(0.3));
        assert!(d.is_allowed(), "{d}");
    }
    let d = s.engine.check_all(&[user.clone(), org.clone()], dec!(0.3));
    assert_eq!(d.ledger(), &user, "the user's 1.00 blocks, not the org's");
    let d = s.engine.check_all(&[vip.clone(), org.clone()], dec!(5));
    assert!(d.is_allowed(), "{d}");
    assert_eq!(s.engine.status(&org).unwrap().committed(), dec!(5.9));
    // An exact ledger budget wins over every pattern.
    s.engine.set_budget(&user, lifetime(dec!(50)));
    assert_eq!(s.engine.budget_for(&user).unwrap().max_spend(), dec!(50));
}

/// Hierarchies: one call charged to several ledgers, all or nothing; the
/// decision names the ledger that blocked; nothing is left anywhere.
pub fn hierarchy_all_or_nothing(f: &dyn StoreFactory) {
    hierarchy_checks(setup(f));
}

/// The same through a pass-through wrapper, which exercises
/// `Store::charge_many`'s default (holds in a fixed order with rollback)
/// over the store under test.
pub fn hierarchy_default_path(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let wrapped = Faulty::new(f.store(&clock));
    let store: Arc<dyn Store> = Arc::new(wrapped);
    let engine = Engine::builder()
        .shared_store(store.clone())
        .reservation_ttl(Duration::from_secs(30))
        .build();
    hierarchy_checks(Setup {
        clock,
        engine,
        store,
    });
}

fn hierarchy_checks(s: Setup) {
    let user = fresh_ledger("user:1");
    let user2 = Ledger::new(user.namespace(), "gpt", "user:2");
    let project = Ledger::new(user.namespace(), "gpt", "project:a");
    let global = Ledger::new(user.namespace(), "gpt", "global");
    s.engine.set_budget(&user, lifetime(dec!(10)));
    s.engine.set_budget(&user2, lifetime(dec!(10)));
    s.engine.set_budget(&project, lifetime(dec!(15)));
    s.engine.set_budget(&global, lifetime(dec!(100)));
    let spent = |l: &Ledger| {
        let st = s.engine.status(l).expect("status");
        (st.committed(), st.reserved())
    };
    let h1 = [user.clone(), project.clone(), global.clone()];
    let h2 = [user2.clone(), project.clone(), global.clone()];
    let d = s.engine.check_all(&h1, dec!(8));
    assert!(d.is_allowed(), "{d}");
    assert_eq!(d.ledger(), &user, "the tightest ledger is reported");
    let d = s.engine.check_all(&h1, dec!(5));
    assert_eq!(
        (d.ledger(), d.reason()),
        (&user, Some(BlockReason::BudgetExceeded))
    );
    let d = s.engine.check_all(&h2, dec!(5));
    assert!(d.is_allowed(), "{d}");
    let d = s.engine.check_all(&h2, dec!(3));
    assert_eq!(
        d.ledger(),
        &project,
        "the user has room; the project (13 + 3 > 15) does not"
    );
    for (l, expected) in [
        (&user, dec!(8)),
        (&user2, dec!(5)),
        (&project, dec!(13)),
        (&global, dec!(13)),
    ] {
        assert_eq!(
            spent(l),
            (expected, dec!(0)),
            "{l}: no partial charge or hold"
        );
    }
    // Reservations on a hierarchy hold on every ledger and settle on every one.
    let r = s.engine.reserve_all(&h2, dec!(2)).expect("fits");
    assert_eq!(r.ledgers().len(), 3);
    assert_eq!(spent(&project), (dec!(13), dec!(2)));
    let c = r.commit(dec!(1.5)).expect("commit");
    assert!(!c.is_late());
    for (l, expected) in [
        (&user2, dec!(6.5)),
        (&project, dec!(14.5)),
        (&global, dec!(14.5)),
    ] {
        assert_eq!(spent(l), (expected, dec!(0)), "{l}");
    }
    let r = s.engine.reserve_all(&h2, dec!(0.5)).expect("fits");
    r.release().expect("release");
    drop(s.engine.reserve_all(&h2, dec!(0.5)).expect("fits"));
    assert_eq!(
        spent(&project),
        (dec!(14.5), dec!(0)),
        "release and drop free every ledger"
    );
    assert!(s.engine.reserve_all(&h2, dec!(1)).is_err(), "14.5 + 1 > 15");
    assert_eq!(spent(&user2), (dec!(6.5), dec!(0)));
    // The async paths settle every ledger too.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let r = s
            .engine
            .reserve_all_async(&h2, dec!(0.2))
            .await
            .expect("fits");
        r.commit_async(dec!(0.1)).await.expect("commit");
        let r = s
            .engine
            .reserve_all_async(&h2, dec!(0.2))
            .await
            .expect("fits");
        r.release_async().await.expect("release");
        assert!(s.engine.check_all_async(&h2, dec!(0.1)).await.is_allowed());
        assert!(
            s.engine.check_all_async(&h2, dec!(0.5)).await.is_blocked(),
            "14.7 + 0.5 > 15"
        );
    });
    for (l, expected) in [
        (&user2, dec!(6.7)),
        (&project, dec!(14.7)),
        (&global, dec!(14.7)),
    ] {
        assert_eq!(spent(l), (expected, dec!(0)), "{l} after the async calls");
    }
}

/// Threads on overlapping hierarchies (4 users, 2 projects, 1 global):
/// no ledger is ever overspent, and the totals stay consistent — the global
/// total equals the sum of the users' and of the projects'.
pub fn hierarchy_threads_consistent(f: &dyn StoreFactory) {
    hierarchy_threads(setup(f));
}

/// The same through `Store::charge_many`'s default (holds with rollback).
pub fn hierarchy_threads_default_path(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let store: Arc<dyn Store> = Arc::new(Faulty::new(f.store(&clock)));
    let engine = Engine::builder().shared_store(store.clone()).build();
    hierarchy_threads(Setup {
        clock,
        engine,
        store,
    });
}

fn hierarchy_threads(s: Setup) {
    let base = fresh_ledger("x");
    let l = |p: &str| Ledger::new(base.namespace(), "h", p);
    let users: Vec<Ledger> = (0..4).map(|i| l(&format!("user:{i}"))).collect();
    let projects = [l("project:a"), l("project:b")];
    let global = l("global");
    for u in &users {
        s.engine.set_budget(u, lifetime(dec!(3)));
    }
    for p in &projects {
        s.engine.set_budget(p, lifetime(dec!(4)));
    }
    s.engine.set_budget(&global, lifetime(dec!(7)));
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (users, projects, global, engine) = (&users, &projects, &global, &s.engine);
            scope.spawn(move || {
                let u = t % 4;
                let h = [users[u].clone(), projects[u / 2].clone(), global.clone()];
                for i in 0..60 {
                    if i % 3 == 0 {
                        if let Ok(r) = engine.reserve_all(&h, dec!(0.2)) {
                            r.commit(dec!(0.1)).expect("commit");
                        }
                    } else {
                        let _ = engine.check_all(&h, dec!(0.1));
                    }
                }
            });
        }
    });
    let spent = |l: &Ledger| {
        let st = s.engine.status(l).expect("status");
        assert_eq!(st.reserved(), dec!(0), "{l}: no hold left behind");
        st.committed()
    };
    let users_total: Decimal = users.iter().map(spent).sum();
    let projects_total: Decimal = projects.iter().map(spent).sum();
    for u in &users {
        assert!(spent(u) <= dec!(3), "{u} overspent");
    }
    for p in &projects {
        assert!(spent(p) <= dec!(4), "{p} overspent");
    }
    assert!(spent(&global) <= dec!(7), "global overspent");
    assert_eq!(
        spent(&global),
        users_total,
        "all or nothing: global == sum of users"
    );
    assert_eq!(
        projects_total, users_total,
        "all or nothing: projects == users"
    );
    assert!(
        spent(&global) > dec!(6.5),
        "the run reached the global cap: {}",
        spent(&global)
    );
}

/// The store lists the ledgers it holds, bounded by a limit.
pub fn active_ledgers_listed(f: &dyn StoreFactory) {
    let s = setup(f);
    let base = fresh_ledger("x");
    let ledgers: Vec<Ledger> = (0..5)
        .map(|i| Ledger::new(base.namespace(), "list", format!("user:{i} {{*}}")))
        .collect();
    for l in &ledgers {
        s.engine.set_budget(l, lifetime(dec!(1)));
        assert!(s.engine.check(l, dec!(0.1)).is_allowed());
    }
    let listed = s.engine.active_ledgers(10_000).expect("list");
    for l in &ledgers {
        assert!(listed.contains(l), "{l} missing from {listed:?}");
    }
    assert_eq!(
        s.engine.active_ledgers(2).expect("list").len(),
        2,
        "bounded"
    );
}

// ----- rate limits ----------------------------------------------------------------

fn gate(action: &str) -> Gate {
    let l = fresh_ledger("p");
    Gate::new(l.namespace(), action, "p")
}

/// At most max_calls in any rolling window; a call counts while
/// `time >= now - window`.
pub fn rate_max_calls(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("calls");
    let policy = Policy::new().max_calls(3, Duration::from_secs(60));
    for n in 1..=3 {
        let d = s.engine.rate_check(&g, &policy);
        assert!(d.is_allowed(), "{}", d.message());
        assert_eq!(d.calls_in_window(), n);
        s.clock.advance(Duration::from_secs(1));
    }
    let d = s.engine.rate_check(&g, &policy);
    assert_eq!(d.reason(), Some(RateReason::TooManyCalls));
    // The first call (at T0) stops counting 1 µs after T0 + 60 s; now is T0 + 3 s.
    assert_eq!(d.retry_after(), Some(Duration::from_micros(57_000_001)));
    s.clock.advance(Duration::from_secs(57));
    assert!(
        s.engine.rate_check(&g, &policy).is_blocked(),
        "at exactly the window edge it counts"
    );
    s.clock.advance(Duration::from_micros(1));
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
}

/// A cooldown between admitted calls; blocked calls do not restart it.
pub fn rate_cooldown(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("cooldown");
    let policy = Policy::new().cooldown(Duration::from_secs(2));
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    s.clock.advance(Duration::from_millis(1500));
    let d = s.engine.rate_check(&g, &policy);
    assert_eq!(d.reason(), Some(RateReason::Cooldown));
    assert_eq!(d.retry_after(), Some(Duration::from_millis(500)));
    assert_eq!(d.since_last(), Some(Duration::from_millis(1500)));
    s.clock.advance(Duration::from_millis(500));
    let d = s.engine.rate_check(&g, &policy);
    assert!(d.is_allowed(), "{}", d.message());
    assert_eq!(d.since_last(), Some(Duration::from_secs(2)));
}

/// A token bucket admits its capacity at once and refills at the stated rate.
pub fn rate_bucket_refill(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("bucket");
    let policy = Policy::new().bucket(10, 5, Duration::from_secs(1)); // 5/s
    for _ in 0..10 {
        assert!(s.engine.rate_check(&g, &policy).is_allowed());
    }
    let d = s.engine.rate_check(&g, &policy);
    assert_eq!(d.reason(), Some(RateReason::BucketEmpty));
    assert_eq!(d.retry_after(), Some(Duration::from_millis(200)));
    s.clock.advance(Duration::from_micros(199_999));
    assert_eq!(
        s.engine.rate_check(&g, &policy).retry_after(),
        Some(Duration::from_micros(1))
    );
    s.clock.advance(Duration::from_micros(1));
    assert!(
        s.engine.rate_check(&g, &policy).is_allowed(),
        "one token after 200 ms"
    );
    assert!(s.engine.rate_check(&g, &policy).is_blocked());
    s.clock.advance(Duration::from_secs(1));
    let admitted = (0..10)
        .filter(|_| s.engine.rate_check(&g, &policy).is_allowed())
        .count();
    assert_eq!(admitted, 5, "five tokens per second");
    s.clock.advance(Duration::from_secs(60));
    let admitted = (0..20)
        .filter(|_| s.engine.rate_check(&g, &policy).is_allowed())
        .count();
    assert_eq!(admitted, 10, "never more than the capacity at once");
}

/// Limits combine: every one must pass; the decision names a blocking one.
pub fn rate_combined(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("combined");
    let policy = Policy::new()
        .max_calls(2, Duration::from_secs(60))
        .cooldown(Duration::from_secs(1));
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    assert_eq!(
        s.engine.rate_check(&g, &policy).reason(),
        Some(RateReason::Cooldown)
    );
    s.clock.advance(Duration::from_secs(1));
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    s.clock.advance(Duration::from_secs(5));
    assert_eq!(
        s.engine.rate_check(&g, &policy).reason(),
        Some(RateReason::TooManyCalls)
    );
    // An invalid policy blocks instead of admitting everything.
    let d = s
        .engine
        .rate_check(&g, &Policy::new().bucket(0, 1, Duration::from_secs(1)));
    assert_eq!(d.reason(), Some(RateReason::InvalidPolicy));
}

/// Threads on one gate: exactly max_calls are admitted in a window.
pub fn rate_threads_exact(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("threads");
    let policy = Policy::new().max_calls(100, Duration::from_secs(3600));
    let admitted = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..40 {
                    if s.engine.rate_check(&g, &policy).is_allowed() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.load(Ordering::SeqCst), 100);
}

/// A failing store: fail-closed blocks, fail-open allows, both StoreError.
pub fn rate_store_failures(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let faulty = Faulty::new(f.store(&clock));
    let engine = Engine::new(faulty.clone());
    let g = gate("faults");
    faulty.set_failing(true);
    let policy = Policy::new().max_calls(1, Duration::from_secs(1));
    let d = engine.rate_check(&g, &policy);
    assert_eq!(
        (d.status(), d.reason()),
        (Status::Block, Some(RateReason::StoreError))
    );
    // A store failure is not a rate limit: its own kind, a message that
    // says so, and a retry_after a retry loop can sleep on.
    let limited = d.clone().into_result().unwrap_err();
    assert!(limited.is_store_error());
    assert!(limited.retry_after().is_some_and(|w| !w.is_zero()));
    let message = limited.to_string();
    assert!(message.contains("store failed"), "{message}");
    assert!(!message.contains("Some("), "{message}");
    let d = engine.rate_check(&g, &policy.fail_open());
    assert_eq!(
        (d.status(), d.reason()),
        (Status::Allow, Some(RateReason::StoreError))
    );
    faulty.set_failing(false);
    assert!(engine.rate_check(&g, &policy).is_allowed());
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
            soft_limit_warnings, soft_limit_once_per_window,
            hierarchy_ledger_listed_twice, release_after_expiry_is_reported, status_and_decision_agree,
            rate_extreme_policies, rate_status_peeks, principal_patterns,
            hierarchy_all_or_nothing, hierarchy_default_path, hierarchy_threads_consistent,
            hierarchy_threads_default_path,
            active_ledgers_listed,
            rate_max_calls, rate_cooldown,
            rate_bucket_refill, rate_combined, rate_threads_exact, rate_store_failures);
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
