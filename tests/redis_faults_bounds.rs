//! The Redis store under real faults, 1: every call is bounded. A proxy
//! that delays, trickles and drops replies (TCP and Unix socket), a server
//! frozen with SIGSTOP, settings at their extremes: each call returns
//! within its timeout (plus a small slack), and no hold is left behind.
//! Every test starts its own `redis-server` (and proxy).

use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{dec, Budget, Engine};
use testkit::fault_proxy::{Fault, FaultProxy};
use testkit::faults::*;
use testkit::redis_server::RedisServer;

/// Delayed, trickled and dropped replies: every sync and async call returns
/// within the timeout (plus a small slack), and is a store error.
#[test]
fn every_call_is_bounded_when_replies_are_slow_trickled_or_lost() {
    let server = RedisServer::start();
    bounded_through(FaultProxy::start(server.port()));
    bounded_through(FaultProxy::start_unix(server.port()));
}

/// [`every_call_is_bounded_when_replies_are_slow_trickled_or_lost`] through
/// one proxy (TCP or Unix socket).
fn bounded_through(proxy: FaultProxy) {
    let engine = engine(&proxy.url(), TIMEOUT);
    let via = proxy.url();
    let l = ledger(&format!("bounded-{}", proxy.port()));
    let budget = Budget::lifetime(dec!(1000)).unwrap();
    engine.set_budget(&l, budget);
    assert!(engine.check(&l, dec!(1)).is_allowed(), "through the proxy");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for fault in [
        Fault::Delay(TIMEOUT * 3),
        Fault::Trickle(Duration::from_millis(100)),
        Fault::Drop,
    ] {
        proxy.set(fault);
        for round in 0..3 {
            let (d, took) = timed(|| engine.check(&l, dec!(1)));
            assert!(d.is_blocked(), "{fault:?} via {via}: {d}");
            assert!(
                took <= TIMEOUT + SLACK,
                "{fault:?} via {via} sync check {round}: {took:?}"
            );
            let (r, took) = timed(|| engine.reserve(&l, dec!(1)));
            assert!(r.is_err(), "{fault:?} via {via}");
            assert!(
                took <= TIMEOUT + SLACK,
                "{fault:?} via {via} sync reserve {round}: {took:?}"
            );
            let (d, took) = timed(|| rt.block_on(engine.check_async(&l, dec!(1))));
            assert!(d.is_blocked(), "{fault:?} via {via}: {d}");
            assert!(
                took <= TIMEOUT + SLACK,
                "{fault:?} via {via} async check {round}: {took:?}"
            );
        }
        proxy.set(Fault::None);
        // The store recovers by itself once replies flow again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while engine.check(&l, dec!(0)).is_blocked() {
            assert!(
                Instant::now() < deadline,
                "{fault:?} via {via}: no recovery"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The reservations that timed out (and may have been made) leave
        // no hold behind.
        eventually(Duration::from_secs(5), "no hold left behind", || {
            engine.status(&l).unwrap().reserved() == dec!(0)
        });
        // Nor does a fixed-cost check that timed out after reaching Redis
        // (fail-closed: the call did not run): only the first check counts.
        eventually(
            Duration::from_secs(5),
            "timed-out checks taken back",
            || engine.status(&l).unwrap().committed() == dec!(1),
        );
    }
}

/// A frozen Redis on a Unix socket whose accept queue is full: connecting
/// is bounded too (std's Unix connect has no timeout).
#[test]
fn unix_socket_connects_are_bounded_when_redis_is_frozen() {
    let dir = std::env::temp_dir();
    let server =
        RedisServer::start_with_args(&["--tcp-backlog", "4", "--dir", dir.to_str().unwrap()]);
    let engine = engine(&server.unix_url(), TIMEOUT);
    let l = ledger("unix");
    engine.set_budget(&l, Budget::lifetime(dec!(1000)).unwrap());
    assert!(
        engine.check(&l, dec!(1)).is_allowed(),
        "over the Unix socket"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(
        rt.block_on(engine.check_async(&l, dec!(1))).is_allowed(),
        "async, over the Unix socket"
    );
    server.freeze();
    // Thaw after a while whatever happens, so a regression fails instead
    // of hanging the test.
    let worst = std::sync::Mutex::new(Duration::ZERO);
    std::thread::scope(|s| {
        let thaw = s.spawn(|| {
            std::thread::sleep(Duration::from_secs(8));
            server.thaw();
        });
        // Half the workers sync, half async (each on its own runtime).
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (engine, l, worst) = (&engine, &l, &worst);
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    for _ in 0..6 {
                        let (d, took) = if w % 2 == 0 {
                            timed(|| engine.check(l, dec!(1)))
                        } else {
                            timed(|| rt.block_on(engine.check_async(l, dec!(1))))
                        };
                        assert!(d.is_blocked());
                        let mut worst = worst.lock().unwrap();
                        *worst = (*worst).max(took);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        thaw.join().unwrap();
    });
    let worst = *worst.lock().unwrap();
    assert!(
        worst <= TIMEOUT + SLACK,
        "slowest call while frozen: {worst:?}"
    );
}

/// Every duration setting at zero and at `Duration::MAX`: no panic, no
/// negative or overflowed TTL reaching Redis (which would delete the
/// ledger), no overspend.
#[test]
fn durations_at_their_extremes_neither_panic_nor_overspend() {
    let server = RedisServer::start();
    for (i, d) in [Duration::ZERO, Duration::MAX].into_iter().enumerate() {
        let store = RedisStore::builder(&server.url())
            .timeout(if i == 0 {
                Duration::from_millis(500)
            } else {
                d
            })
            .idle_ttl(d)
            .settled_retention(d)
            .build()
            .expect("store");
        let engine = Engine::builder().store(store).reservation_ttl(d).build();
        let l = ledger(&format!("extreme-{i}"));
        engine.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
        let mut committed = dec!(0);
        for _ in 0..15 {
            if let Ok(r) = engine.reserve(&l, dec!(1)) {
                r.commit(dec!(1)).expect("commit recorded");
                committed += dec!(1);
            }
            if engine.check(&l, dec!(1)).is_allowed() {
                committed += dec!(1);
            }
        }
        assert_eq!(committed, dec!(10), "{d:?}");
        let status = engine.status(&l).expect("status");
        assert_eq!(status.committed(), dec!(10), "{d:?}: the ledger was kept");
        // Holds are held, not expired at once.
        let l = ledger(&format!("extreme-holds-{i}"));
        engine.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
        let held: Vec<_> = (0..12)
            .filter_map(|_| engine.reserve(&l, dec!(1)).ok())
            .collect();
        assert_eq!(held.len(), 10, "{d:?}");
    }
}

/// Redis frozen (SIGSTOP) for three timeouts under 4 threads reserving and
/// committing: every call returns within the timeout (fail-closed), and once
/// Redis runs again the holds of the timed-out reservations — made late or
/// not — are gone within seconds, not after the 10-minute TTL; commits that
/// were not confirmed land once.
#[test]
fn a_frozen_redis_bounds_every_call_and_gives_the_headroom_back() {
    let server = RedisServer::start();
    let engine = engine(&server.url(), TIMEOUT);
    let l = ledger("frozen");
    engine.set_budget(&l, Budget::lifetime(dec!(45)).unwrap());
    let committed = std::sync::Mutex::new(dec!(0));
    let worst = std::sync::Mutex::new(Duration::ZERO);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let (r, took) = timed(|| engine.reserve(&l, dec!(0.5)));
                    let mut w = worst.lock().unwrap();
                    *w = (*w).max(took);
                    drop(w);
                    if let Ok(r) = r {
                        match r.commit(dec!(0.01)) {
                            Ok(_) | Err(budgetgate::CommitError::Unknown { .. }) => {
                                *committed.lock().unwrap() += dec!(0.01)
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        server.freeze();
        std::thread::sleep(TIMEOUT * 3);
        server.thaw();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let worst = *worst.lock().unwrap();
    eprintln!("slowest reserve while frozen: {worst:?}");
    assert!(worst <= TIMEOUT + SLACK, "slowest reserve: {worst:?}");
    let committed = *committed.lock().unwrap();
    eventually(
        Duration::from_secs(5),
        "holds released, commits landed",
        || {
            let status = engine.status(&l).expect("status");
            status.reserved() == dec!(0) && status.committed() == committed
        },
    );
    // A fresh client sees the whole remaining budget.
    let fresh = self::engine(&server.url(), TIMEOUT);
    fresh.set_budget(&l, Budget::lifetime(dec!(45)).unwrap());
    assert_eq!(fresh.status(&l).unwrap().remaining(), dec!(45) - committed);
}
