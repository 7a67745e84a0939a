//! The Redis store under real faults, 3: a Redis that forgets. Eviction,
//! restarts with and without persistence, FLUSHALL, keys lost one by one,
//! a full server, another key layout: never a second budget, never
//! negative totals.
//! Every test starts its own `redis-server` (and proxy).

use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{dec, Budget, Engine, Ledger};
use testkit::clock_engine;
use testkit::faults::*;
use testkit::redis_server::RedisServer;

/// A server that may evict keys is refused by default — sync and async,
/// with a message naming the policy and the fix — and used when accepted.
#[test]
fn eviction_policies_are_refused_unless_accepted() {
    for policy in ["allkeys-lru", "volatile-lru", "volatile-ttl"] {
        let server =
            RedisServer::start_with_args(&["--maxmemory", "64mb", "--maxmemory-policy", policy]);
        let engine = engine(&server.url(), TIMEOUT);
        let l = ledger(policy);
        engine.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
        let d = engine.check(&l, dec!(1));
        assert!(d.is_blocked(), "{policy}: {d}");
        assert_eq!(d.reason(), Some(budgetgate::BlockReason::StoreError));
        let message = d.detail().unwrap_or_default().to_owned();
        assert!(
            message.contains(policy) && message.contains("noeviction"),
            "{policy}: {message}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let d = rt.block_on(engine.check_async(&l, dec!(1)));
        assert!(
            d.is_blocked() && d.detail().unwrap_or_default().contains(policy),
            "{d}"
        );

        let store = RedisStore::builder(&server.url())
            .timeout(TIMEOUT)
            .accept_eviction()
            .build()
            .unwrap();
        let accepted = Engine::builder().store(store).build();
        accepted.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
        assert!(
            accepted.check(&l, dec!(1)).is_allowed(),
            "{policy} accepted"
        );
    }
}

/// Redis restarted empty (no persistence) while engines run: they detect
/// it and fail closed instead of granting the budget a second time — 4
/// threads spending against a budget of 10 admit at most 10 plus one call
/// in flight each. With AOF the data survives and nothing is refused; the
/// first call after the restart succeeds (the dead pooled connection is
/// replaced before the request is sent).
#[test]
fn a_reset_while_running_is_detected_and_fails_closed() {
    let server = std::sync::Mutex::new(RedisServer::start());
    let url = server.lock().unwrap().url();
    let store = std::sync::Arc::new(RedisStore::builder(&url).timeout(TIMEOUT).build().unwrap());
    let engine = Engine::builder().shared_store(store.clone()).build();
    let l = ledger("reset");
    engine.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
    let admitted = std::sync::Mutex::new(dec!(0));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if engine.check(&l, dec!(0.5)).is_allowed() {
                        *admitted.lock().unwrap() += dec!(0.5);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        server.lock().unwrap().restart(); // SIGKILL, then a new, empty server
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let admitted = *admitted.lock().unwrap();
    assert!(
        admitted <= dec!(10) + dec!(2),
        "admitted {admitted} of a budget of 10"
    );
    let d = engine.check(&l, dec!(0.5));
    assert!(d.is_blocked(), "after the reset: {d}");
    assert!(
        d.detail()
            .unwrap_or_default()
            .contains("lost budgetgate's data"),
        "{d}"
    );
    // An operator who decided to count from zero again says so.
    store.accept_reset();
    eventually(
        Duration::from_secs(5),
        "used again after accept_reset",
        || engine.check(&l, dec!(0.5)).is_allowed(),
    );
}

#[test]
fn a_restart_with_aof_keeps_budgets_and_the_first_call_succeeds() {
    let dir = TempDir::new("aof");
    let mut server = RedisServer::start_with_args(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir.path(),
    ]);
    let engine = engine(&server.url(), TIMEOUT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = ledger("aof");
    engine.set_budget(&l, Budget::lifetime(dec!(12)).unwrap());
    for _ in 0..4 {
        assert!(engine.check(&l, dec!(1)).is_allowed());
        assert!(rt.block_on(engine.check_async(&l, dec!(1))).is_allowed());
    }
    server.restart();
    // Both the pooled sync connection and the shared async one are stale:
    // each is found dead before anything is sent on it and replaced within
    // the call.
    let d = engine.check(&l, dec!(1));
    assert!(d.is_allowed(), "the first sync call after the restart: {d}");
    let d = rt.block_on(engine.check_async(&l, dec!(1)));
    assert!(
        d.is_allowed(),
        "the first async call after the restart: {d}"
    );
    assert!(engine.check(&l, dec!(1)).is_allowed());
    assert!(rt.block_on(engine.check_async(&l, dec!(1))).is_allowed());
    assert!(
        engine.check(&l, dec!(1)).is_blocked(),
        "12 of 12 spent, across the restart"
    );
    assert_eq!(engine.status(&l).unwrap().committed(), dec!(12));
}

/// Each key of a rolling-window ledger deleted alone: the totals never go
/// negative, the budget is never exceeded, and the ledger is not blocked
/// for longer than its window.
#[test]
fn partial_key_loss_never_turns_into_money() {
    let server = RedisServer::start();
    let clock = budgetgate::clock::ManualClock::new(1_700_000_000_000_000);
    let engine = clock_engine(&server, &clock);
    let hour = Duration::from_secs(3600);
    let budget = Budget::rolling(dec!(10), hour).unwrap();

    // The totals (the meta hash) lost, the log kept: rebuilt from the log.
    let l = Ledger::new("loss", "meta", "p");
    engine.set_budget(&l, budget);
    for _ in 0..8 {
        assert!(engine.check(&l, dec!(1)).is_allowed());
    }
    let key = "budgetgate:{loss:meta:p}:meta";
    assert_eq!(redis_cli(&server, &["DEL", key]), "1");
    let status = engine.status(&l).unwrap();
    assert_eq!(
        status.committed(),
        dec!(8),
        "rebuilt from the log, not 0 or −8"
    );
    assert!(engine.check(&l, dec!(3)).is_blocked(), "8 + 3 > 10");
    assert!(engine.check(&l, dec!(2)).is_allowed());
    clock.advance(hour + Duration::from_secs(1));
    assert_eq!(
        engine.status(&l).unwrap().committed(),
        dec!(0),
        "never negative"
    );

    // The log lost, the totals kept: blocked at most until the window
    // would have let the spend go, then empty — never negative.
    let l = Ledger::new("loss", "log", "p");
    engine.set_budget(&l, budget);
    for _ in 0..8 {
        assert!(engine.check(&l, dec!(1)).is_allowed());
    }
    let log = format!("budgetgate:{{loss:log:p}}:e:r{}", hour.as_micros());
    assert_eq!(redis_cli(&server, &["DEL", &log]), "1");
    assert!(
        engine.check(&l, dec!(3)).is_blocked(),
        "the totals still count"
    );
    clock.advance(hour + Duration::from_secs(1));
    let d = engine.check(&l, dec!(10));
    assert!(d.is_allowed(), "not blocked past the window: {d}");
    assert_eq!(engine.status(&l).unwrap().committed(), dec!(10));
}

/// `noeviction` and a full memory: commits and releases still land (the
/// spend is recorded, holds are released), new reservations are refused
/// cleanly with Redis's OOM error.
#[test]
fn a_full_redis_still_takes_commits_and_releases() {
    let server =
        RedisServer::start_with_args(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let engine = engine(&server.url(), Duration::from_secs(2));
    let l = ledger("full");
    engine.set_budget(&l, Budget::lifetime(dec!(100)).unwrap());
    let held: Vec<_> = (0..4)
        .map(|_| engine.reserve(&l, dec!(5)).unwrap())
        .collect();
    // Fill the memory past maxmemory with data of someone else's.
    for i in 0..8 {
        redis_cli(
            &server,
            &[
                "EVAL",
                "return redis.call('SET', KEYS[1], string.rep('x', 700000))",
                "1",
                &format!("ballast{i}"),
            ],
        );
    }
    let refused = engine.reserve(&l, dec!(1)).unwrap_err();
    assert_eq!(
        refused.decision().reason(),
        Some(budgetgate::BlockReason::StoreError)
    );
    assert!(
        refused
            .decision()
            .detail()
            .unwrap_or_default()
            .contains("OOM"),
        "{refused}"
    );
    let mut held = held.into_iter();
    for r in held.by_ref().take(2) {
        r.commit(dec!(2)).expect("a commit lands on a full Redis");
    }
    for r in held {
        assert_eq!(
            r.release().expect("a release lands"),
            budgetgate::Release::Released
        );
    }
    let status = engine.status(&l).unwrap();
    assert_eq!((status.committed(), status.reserved()), (dec!(4), dec!(0)));
}

/// `FLUSHALL` while the store's connections stay open: the sync path's
/// periodic epoch check catches it within about a second, and the store
/// fails closed instead of counting from zero.
#[test]
fn a_flushall_on_live_connections_is_detected() {
    for asynchronous in [false, true] {
        flushall_is_detected(asynchronous);
    }
}

fn flushall_is_detected(asynchronous: bool) {
    let server = RedisServer::start();
    let engine = engine(&server.url(), TIMEOUT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let check = |l: &Ledger, cost| {
        if asynchronous {
            rt.block_on(engine.check_async(l, cost))
        } else {
            engine.check(l, cost)
        }
    };
    let l = ledger("flushall");
    engine.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
    for _ in 0..8 {
        assert!(check(&l, dec!(1)).is_allowed());
    }
    assert_eq!(redis_cli(&server, &["FLUSHALL"]), "OK");
    // At most one second of calls against the empty store, then refusal.
    let mut admitted_after = dec!(0);
    let deadline = Instant::now() + Duration::from_secs(3);
    let reason = loop {
        let d = check(&l, dec!(0.01));
        if d.is_allowed() {
            admitted_after += dec!(0.01);
        } else if d
            .detail()
            .unwrap_or_default()
            .contains("lost budgetgate's data")
        {
            break d.detail().unwrap_or_default().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the flush was not detected (async: {asynchronous}): {d}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        admitted_after <= dec!(2),
        "admitted {admitted_after} after the flush"
    );
    assert!(reason.contains("FLUSHALL"), "{reason}");
}

/// The key layout carries a version: a fresh server gets this library's,
/// and a prefix holding another is refused (sync and async), naming both,
/// instead of being misread.
#[test]
fn another_key_layout_version_is_refused() {
    let server = RedisServer::start();
    let first = engine(&server.url(), TIMEOUT);
    let l = ledger("layout");
    first.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
    assert!(first.check(&l, dec!(1)).is_allowed());
    let version = redis_cli(&server, &["GET", "budgetgate:layout"]);
    assert!(!version.is_empty(), "the layout's version is written");
    assert_eq!(
        redis_cli(&server, &["TTL", "budgetgate:layout"]),
        "-1",
        "and never expires"
    );
    redis_cli(&server, &["SET", "budgetgate:layout", "999"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let other = engine(&server.url(), TIMEOUT);
    other.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
    for d in [
        other.check(&l, dec!(1)),
        rt.block_on(other.check_async(&l, dec!(1))),
    ] {
        assert!(d.is_blocked(), "{d}");
        let detail = d.detail().unwrap_or_default();
        assert!(
            detail.contains("layout version 999") && detail.contains(&format!("version {version}")),
            "{detail}"
        );
    }
}
