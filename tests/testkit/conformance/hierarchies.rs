//! Hierarchies: one call charged to several ledgers, all or nothing, under threads too; a ledger listed twice is charged once.

use super::*;

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
