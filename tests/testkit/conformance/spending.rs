//! Spending on one ledger: the decision rule, reservations and their settling, failures, expiry, events and JSON.

use super::*;

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
            id: None,
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
        id: None,
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
