//! Budget policies: calendar windows, stacked caps, the kill switch, soft-limit warnings, principal patterns, listing ledgers.

use super::*;

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

/// A paused call leaves nothing behind: fixed costs, reservations and
/// hierarchies, sync and async, in every window (lifetime, rolling,
/// daily) — a store that charges before it sees the pause takes the
/// charge back before it answers. Resuming restores the full headroom.
pub fn paused_calls_leave_nothing_behind(f: &dyn StoreFactory) {
    use budgetgate::PauseScope;
    let s = setup(f);
    let user = fresh_ledger("user");
    let team = Ledger::new(user.namespace(), "res", "team");
    let other = fresh_ledger("other"); // another namespace: never paused
    let caps = || {
        [
            lifetime(dec!(10)),
            rolling(dec!(9), 3_600),
            Budget::daily(dec!(8)).expect("valid budget"),
        ]
    };
    for l in [&user, &team, &other] {
        s.engine.set_budgets(l, caps());
    }
    assert!(s.engine.check(&user, dec!(1)).is_allowed());
    assert!(s.engine.check(&team, dec!(1)).is_allowed());
    let usage = |l: &Ledger| {
        let st = s.engine.status(l).expect("status");
        st.caps()
            .iter()
            .map(|c| (c.spent_in_window(), c.reserved()))
            .collect::<Vec<_>>()
    };
    let baseline = vec![(dec!(1), dec!(0)); 3];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hierarchy = [user.clone(), team.clone()];
    for scope in [
        PauseScope::Ledger(user.clone()),
        PauseScope::Namespace(user.namespace().to_owned()),
        PauseScope::All,
    ] {
        s.engine.pause(&scope).expect("pause");
        let paused = |d: &budgetgate::Decision| {
            assert_eq!(d.reason(), Some(BlockReason::Paused), "{scope}: {d}");
        };
        paused(&s.engine.check(&user, dec!(1)));
        paused(s.engine.reserve(&user, dec!(1)).unwrap_err().decision());
        paused(&s.engine.check_all(&hierarchy, dec!(1)));
        paused(
            s.engine
                .reserve_all(&hierarchy, dec!(1))
                .unwrap_err()
                .decision(),
        );
        rt.block_on(async {
            paused(&s.engine.check_async(&user, dec!(1)).await);
            paused(
                s.engine
                    .reserve_async(&user, dec!(1))
                    .await
                    .unwrap_err()
                    .decision(),
            );
            paused(&s.engine.check_all_async(&hierarchy, dec!(1)).await);
            paused(
                s.engine
                    .reserve_all_async(&hierarchy, dec!(1))
                    .await
                    .unwrap_err()
                    .decision(),
            );
        });
        assert_eq!(
            usage(&user),
            baseline,
            "{scope}: nothing charged or held on {user}"
        );
        assert_eq!(
            usage(&team),
            baseline,
            "{scope}: nothing charged or held on {team}"
        );
        s.engine.resume(&scope).expect("resume");
    }
    assert!(s.engine.check(&other, dec!(1)).is_allowed(), "never paused");
    // Resumed: the whole headroom is there (8 a day, 1 spent).
    assert!(s.engine.check_all(&hierarchy, dec!(7)).is_allowed());
    assert!(
        s.engine.check(&user, dec!(0.5)).is_blocked(),
        "8 of 8 today"
    );
}
