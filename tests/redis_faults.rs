//! The Redis store under real faults: a proxy that delays, trickles and
//! drops replies; a server frozen with SIGSTOP; settings at their extremes.
//! Every test starts its own `redis-server` (and proxy).

use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{dec, Budget, Engine, Ledger};
use testkit::fault_proxy::{Fault, FaultProxy};
use testkit::redis_server::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(300);
/// What a bounded call may take beyond its timeout.
const SLACK: Duration = Duration::from_millis(150);

fn engine(url: &str, timeout: Duration) -> Engine {
    let store = RedisStore::builder(url)
        .timeout(timeout)
        .build()
        .expect("store");
    Engine::builder()
        .store(store)
        .reservation_ttl(Duration::from_secs(600))
        .build()
}

fn ledger(name: &str) -> Ledger {
    Ledger::new("faults", name, format!("p{}", std::process::id()))
}

/// Runs `f` and returns how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// Delayed, trickled and dropped replies: every sync and async call returns
/// within the timeout (plus a small slack), and is a store error.
#[test]
fn every_call_is_bounded_when_replies_are_slow_trickled_or_lost() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let engine = engine(&proxy.url(), TIMEOUT);
    let l = ledger("bounded");
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
            assert!(d.is_blocked(), "{fault:?}: {d}");
            assert!(
                took <= TIMEOUT + SLACK,
                "{fault:?} sync check {round}: {took:?}"
            );
            let (r, took) = timed(|| engine.reserve(&l, dec!(1)));
            assert!(r.is_err(), "{fault:?}");
            assert!(
                took <= TIMEOUT + SLACK,
                "{fault:?} sync reserve {round}: {took:?}"
            );
            let (d, took) = timed(|| rt.block_on(engine.check_async(&l, dec!(1))));
            assert!(d.is_blocked(), "{fault:?}: {d}");
            assert!(
                took <= TIMEOUT + SLACK,
                "{fault:?} async check {round}: {took:?}"
            );
        }
        proxy.set(Fault::None);
        // The store recovers by itself once replies flow again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while engine.check(&l, dec!(0)).is_blocked() {
            assert!(Instant::now() < deadline, "{fault:?}: no recovery");
            std::thread::sleep(Duration::from_millis(50));
        }
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
    server.freeze();
    // Thaw after a while whatever happens, so a regression fails instead
    // of hanging the test.
    let worst = std::sync::Mutex::new(Duration::ZERO);
    std::thread::scope(|s| {
        let thaw = s.spawn(|| {
            std::thread::sleep(Duration::from_secs(8));
            server.thaw();
        });
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..6 {
                        let (d, took) = timed(|| engine.check(&l, dec!(1)));
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
