//! The Redis store under real faults: a proxy that delays, trickles and
//! drops replies; a server frozen with SIGSTOP; settings at their extremes.
//! Every test starts its own `redis-server` (and proxy).

use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{dec, Budget, Engine, Ledger};
use testkit::clock_engine;
use testkit::fault_proxy::{Fault, FaultProxy};
use testkit::redis_server::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(300);
/// What a bounded call may take beyond its timeout.
const SLACK: Duration = Duration::from_millis(100);

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

/// A counter of [`budgetgate::Event::Committed`] events, and the listener
/// that counts them.
fn committed_events() -> (
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    impl Fn(&budgetgate::Event<'_>) + Send + Sync + 'static,
) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    let listener = move |e: &budgetgate::Event<'_>| {
        if matches!(e, budgetgate::Event::Committed { .. }) {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    };
    (count, listener)
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

/// A fixed cost whose reply is lost after Redis recorded it, on a ledger
/// counting in a lifetime, a rolling and a calendar window: fail-closed,
/// the call does not run and the charge is taken back by id from every
/// window; fail-open, the call runs and its cost is counted exactly once —
/// the store ends up agreeing with what the caller did, sync and async.
#[test]
fn a_fixed_cost_whose_reply_is_lost_ends_as_the_caller_acted() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    // Committed events are for reservations: a listener summing allowed
    // fixed-cost decisions and commits must not count a fail-open cost twice.
    let (commits, on_commit) = committed_events();
    let engine = Engine::builder()
        .store(
            RedisStore::builder(&proxy.url())
                .timeout(TIMEOUT)
                .build()
                .unwrap(),
        )
        .listener(on_commit)
        .build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let budgets = |fail_open: bool| {
        [
            Budget::lifetime(dec!(100)).unwrap(),
            Budget::rolling(dec!(100), Duration::from_secs(3600)).unwrap(),
            Budget::daily(dec!(100)).unwrap(),
        ]
        .map(|b| if fail_open { b.fail_open() } else { b })
    };
    let closed = ledger("lost-fixed-closed");
    let open = ledger("lost-fixed-open");
    let (team_closed, team_open) = (ledger("lost-fixed-team-c"), ledger("lost-fixed-team-o"));
    let probe = ledger("lost-fixed-probe");
    engine.set_budgets(&closed, budgets(false));
    engine.set_budgets(&open, budgets(true));
    engine.set_budgets(&team_closed, budgets(false));
    engine.set_budgets(&team_open, budgets(true));
    engine.set_budget(&probe, Budget::lifetime(dec!(1)).unwrap());
    for l in [&closed, &open, &team_closed, &team_open] {
        assert!(engine.check(l, dec!(1)).is_allowed());
    }
    let (hier_closed, hier_open) = (
        [closed.clone(), team_closed.clone()],
        [open.clone(), team_open.clone()],
    );
    // Each call alone against lost replies (it reaches Redis on a live
    // connection, is recorded, and its answer never comes back).
    type Call<'a> = Box<dyn Fn() -> budgetgate::Decision + 'a>;
    let calls: Vec<(&str, bool, Call<'_>)> = vec![
        ("sync", false, Box::new(|| engine.check(&closed, dec!(2)))),
        (
            "async",
            false,
            Box::new(|| rt.block_on(engine.check_async(&closed, dec!(2)))),
        ),
        ("sync", true, Box::new(|| engine.check(&open, dec!(2)))),
        (
            "async",
            true,
            Box::new(|| rt.block_on(engine.check_async(&open, dec!(2)))),
        ),
        (
            "hierarchy",
            false,
            Box::new(|| engine.check_all(&hier_closed, dec!(2))),
        ),
        (
            "hierarchy async",
            true,
            Box::new(|| rt.block_on(engine.check_all_async(&hier_open, dec!(2)))),
        ),
    ];
    for (what, fail_open, call) in &calls {
        proxy.set(Fault::Drop);
        let d = call();
        assert_eq!(
            d.is_allowed(),
            *fail_open,
            "{what} fail-open={fail_open}: {d}"
        );
        assert_eq!(
            d.reason(),
            Some(budgetgate::BlockReason::StoreError),
            "{what}: {d}"
        );
        proxy.set(Fault::None);
        eventually(Duration::from_secs(5), "recovery", || {
            engine.check(&probe, dec!(0)).is_allowed()
        });
    }
    assert!(engine.wait_settled(Duration::from_secs(10)), "settled");
    let windows = |l: &Ledger| {
        let status = engine.status(l).unwrap();
        status
            .caps()
            .iter()
            .map(|c| c.committed())
            .collect::<Vec<_>>()
    };
    assert_eq!(windows(&closed), [dec!(1); 3], "fail-closed: taken back");
    assert_eq!(
        windows(&team_closed),
        [dec!(1); 3],
        "fail-closed hierarchy: taken back"
    );
    assert_eq!(windows(&open), [dec!(7); 3], "fail-open: counted once each");
    assert_eq!(
        windows(&team_open),
        [dec!(3); 3],
        "fail-open hierarchy: counted once"
    );
    assert_eq!(
        commits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no Committed event for a fixed cost"
    );
}

/// A fixed cost cancelled by id before its request arrives is refused when
/// it does arrive (a late copy cannot spend what the caller took back), and
/// a commit by id of a fixed cost that was recorded counts it once.
#[test]
fn a_fixed_cost_settled_by_id_before_it_arrives_is_refused() {
    use budgetgate::store::{ChargeRequest, ReservationId, SettleOutcome, SettleRequest, Store};
    let server = RedisServer::start();
    let store = RedisStore::builder(&server.url()).build().unwrap();
    let l = ledger("fixed-by-id");
    let limits = [budgetgate::Limit::new(
        10_000_000_000,
        budgetgate::Window::Unbounded,
    )];
    let charge = |id| ChargeRequest {
        ledger: &l,
        limits: &limits,
        amount: 2_000_000_000,
        hold: None,
        id: Some(id),
    };
    let settle = |id, actual: Option<i128>, cancel| SettleRequest {
        ledger: &l,
        limits: &limits,
        id,
        reserved: 2_000_000_000,
        actual,
        record_if_missing: actual.is_some(),
        cancel,
    };
    let committed = || store.status(&l, &limits).unwrap()[0].committed;
    // Cancelled first: the charge is refused when it comes.
    let early = ReservationId::new();
    assert_eq!(
        store.settle(&settle(early, None, true)).unwrap(),
        SettleOutcome::Unknown
    );
    assert!(
        store.charge(&charge(early)).is_err(),
        "a cancelled id is refused"
    );
    assert_eq!(committed(), 0);
    // Recorded, then confirmed by a commit with the same id: counted once;
    // then a cancel takes it back, once.
    let id = ReservationId::new();
    assert!(store.charge(&charge(id)).unwrap().admitted);
    let confirm = store
        .settle(&settle(id, Some(2_000_000_000), false))
        .unwrap();
    assert_eq!(confirm, SettleOutcome::Committed);
    assert_eq!(committed(), 2_000_000_000);
    assert!(store.charge(&charge(id)).is_err(), "an id is charged once");
    assert_eq!(
        store.settle(&settle(id, None, true)).unwrap(),
        SettleOutcome::Released
    );
    assert_eq!(committed(), 0);
    assert_eq!(
        store.settle(&settle(id, None, true)).unwrap(),
        SettleOutcome::Unknown
    );
    assert_eq!(committed(), 0, "a repeated cancel changes nothing");
    // Recorded while nobody heard the answer, then committed by id (the
    // fail-open case): once.
    let id = ReservationId::new();
    assert!(store.charge(&charge(id)).unwrap().admitted);
    store
        .settle(&settle(id, Some(2_000_000_000), false))
        .unwrap();
    store
        .settle(&settle(id, Some(2_000_000_000), false))
        .unwrap();
    assert_eq!(committed(), 2_000_000_000);
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

/// Waits up to `limit` for `done`.
fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
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

/// Connections refused for 100 ms while a commit is made: the commit is
/// recorded (its retries are spread over the commit deadline).
#[test]
fn a_commit_during_a_short_outage_is_recorded() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let engine = engine(&proxy.url(), TIMEOUT);
    let l = ledger("outage");
    engine.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
    for round in 0..3 {
        let r = engine.reserve(&l, dec!(1)).expect("fits");
        std::thread::scope(|s| {
            s.spawn(|| proxy.outage(Duration::from_millis(100)));
            std::thread::sleep(Duration::from_millis(10));
            let commit = r.commit(dec!(0.25));
            assert!(commit.is_ok(), "round {round}: {commit:?}");
        });
    }
    let status = engine.status(&l).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.75), dec!(0))
    );
}

/// Against a Redis whose replies are lost, a commit that did land is never
/// reported as unrecorded: it is `Unknown`, retried by id in the
/// background, and counted once.
#[test]
fn a_commit_whose_reply_is_lost_is_unknown_and_counted_once() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let (landed, on_commit) = committed_events();
    let store = RedisStore::builder(&proxy.url())
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let engine = Engine::builder()
        .store(store)
        .commit_deadline(Duration::from_millis(600))
        .listener(on_commit)
        .build();
    let l = ledger("lost-reply");
    engine.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
    let r = engine.reserve(&l, dec!(2)).expect("fits");
    proxy.set(Fault::Drop);
    let (commit, took) = timed(|| r.commit(dec!(1.5)));
    assert!(
        matches!(commit, Err(budgetgate::CommitError::Unknown { .. })),
        "{commit:?}"
    );
    assert!(took <= Duration::from_millis(600) + SLACK, "{took:?}");
    proxy.set(Fault::None);
    eventually(
        Duration::from_secs(10),
        "the background commit's event",
        || landed.load(std::sync::atomic::Ordering::SeqCst) == 1,
    );
    let status = engine.status(&l).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(1.5), dec!(0))
    );
}

/// 10,000 async reservations cancelled at random points (before, during
/// and after the store's answer): no hold is left behind within 5 s, and
/// what is spent is exactly what the finished calls committed.
#[test]
fn ten_thousand_cancelled_async_calls_leave_no_hold() {
    let server = RedisServer::start();
    let engine = engine(&server.url(), Duration::from_secs(2));
    let l = ledger("cancelled");
    engine.set_budget(&l, Budget::lifetime(dec!(1000000)).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let committed = rt.block_on(async {
        // How long one uncut wave takes on this machine now: the cuts span
        // twice that, so some land before, during and after the store's
        // answer however loaded the machine is.
        let started = Instant::now();
        let uncut: Vec<_> = (0..100)
            .map(|_| {
                let (engine, l) = (engine.clone(), l.clone());
                tokio::spawn(async move {
                    let r = engine.reserve_async(&l, dec!(1)).await.expect("fits");
                    r.into_owned()
                        .commit_async(dec!(0.001))
                        .await
                        .expect("recorded");
                })
            })
            .collect();
        for t in uncut {
            t.await.unwrap();
        }
        let span_us = (started.elapsed().as_micros() as u64 * 2).max(3_000);
        eprintln!("cuts span {span_us} us");
        let mut sum = dec!(0.1); // the uncut wave's
                                 // In waves of 100 concurrent calls, so the store answers within
                                 // the cuts' range.
        for wave in 0..100u64 {
            let mut tasks = Vec::new();
            for i in 0..100u64 {
                let engine = engine.clone();
                let l = l.clone();
                tasks.push(tokio::spawn(async move {
                    // Some calls are cut before the reservation is sent,
                    // some while Redis works on it, some after.
                    let cut = Duration::from_micros(((wave * 100 + i) * 7919) % span_us);
                    let held = tokio::time::timeout(cut, async {
                        let r = engine.reserve_async(&l, dec!(1)).await.expect("fits");
                        tokio::task::yield_now().await; // the body
                        r.into_owned()
                    })
                    .await;
                    match held {
                        Ok(r) => {
                            r.commit_async(dec!(0.001)).await.expect("recorded");
                            dec!(0.001)
                        }
                        Err(_) => dec!(0),
                    }
                }));
            }
            for t in tasks {
                sum += t.await.unwrap();
            }
        }
        sum
    });
    assert!(
        committed > dec!(0.1),
        "no call finished: the cuts are too short"
    );
    assert!(
        committed < dec!(10.1),
        "no call was cut: the cuts are too long"
    );
    eprintln!(
        "{} of 10000 cut calls finished",
        (committed - dec!(0.1)) * dec!(1000)
    );
    eventually(Duration::from_secs(5), "no hold left", || {
        engine.status(&l).unwrap().reserved() == dec!(0)
    });
    assert_eq!(engine.status(&l).unwrap().committed(), committed);
}

/// A fresh directory for a server's files (AOF), removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("budgetgate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

/// A fail-open budget during an outage: the calls it admitted spent money,
/// and that money is recorded by id when Redis answers again — the store
/// ends up agreeing with what the callers did.
#[test]
fn fail_open_spend_during_an_outage_is_recorded_when_redis_returns() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let engine = engine(&proxy.url(), Duration::from_millis(100));
    let l = ledger("fail-open");
    engine.set_budget(&l, Budget::lifetime(dec!(1000)).unwrap().fail_open());
    let admitted = std::sync::Mutex::new((dec!(0), 0usize));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let d = engine.check(&l, dec!(0.1));
                    if d.is_allowed() {
                        let mut a = admitted.lock().unwrap();
                        a.0 += dec!(0.1);
                        if d.reason() == Some(budgetgate::BlockReason::StoreError) {
                            a.1 += 1;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(100));
        proxy.outage(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let (admitted, during_outage) = *admitted.lock().unwrap();
    assert!(during_outage > 0, "no call was admitted fail-open");
    // Calls refused a connection sent nothing; a call cut mid-flight by the
    // outage may or may not have landed. Each is recorded by its id when
    // Redis answers again — exactly once either way.
    assert!(engine.wait_settled(Duration::from_secs(10)));
    let committed = engine.status(&l).unwrap().committed();
    assert_eq!(committed, admitted, "stored == admitted");
}

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    server.cli(args)
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

/// With `wait_for_replicas`, spend counts as recorded only once a replica
/// has it: while the replica is frozen a commit is `Unknown` (retried by id
/// until the replica acknowledges it, then reported once) and a fail-closed
/// fixed cost is refused and taken back; reservations do not wait.
#[test]
fn commits_wait_for_replicas_when_asked() {
    let primary = RedisServer::start();
    let replica =
        RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    eventually(Duration::from_secs(10), "the replica linked", || {
        redis_cli(&replica, &["INFO", "replication"]).contains("master_link_status:up")
    });
    let too_long = RedisStore::builder(&primary.url())
        .timeout(Duration::from_millis(300))
        .wait_for_replicas(1, Duration::from_millis(300))
        .build();
    assert!(
        matches!(
            too_long,
            Err(budgetgate::store::redis::RedisConfigError::ReplicaWait { .. })
        ),
        "a wait as long as the timeout is refused"
    );
    let (landed, on_commit) = committed_events();
    let store = RedisStore::builder(&primary.url())
        .timeout(Duration::from_millis(500))
        .wait_for_replicas(1, Duration::from_millis(150))
        .build()
        .unwrap();
    let engine = Engine::builder()
        .store(store)
        .commit_deadline(Duration::from_millis(600))
        .listener(on_commit)
        .build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = ledger("replicated");
    engine.set_budget(&l, Budget::lifetime(dec!(100)).unwrap());
    // The replica answers: everything lands, sync and async.
    let r = engine.reserve(&l, dec!(2)).unwrap();
    r.commit(dec!(1)).unwrap();
    assert!(engine.check(&l, dec!(1)).is_allowed());
    assert!(rt.block_on(engine.check_async(&l, dec!(0.5))).is_allowed());
    landed.store(0, std::sync::atomic::Ordering::SeqCst);
    replica.freeze();
    let r = engine
        .reserve(&l, dec!(2))
        .expect("reservations do not wait");
    let commit = r.commit(dec!(1.5));
    assert!(
        matches!(commit, Err(budgetgate::CommitError::Unknown { .. })),
        "{commit:?}"
    );
    let d = engine.check(&l, dec!(1));
    assert!(d.is_blocked(), "{d}");
    assert!(d.detail().unwrap_or_default().contains("replicas"), "{d}");
    let d = rt.block_on(engine.check_async(&l, dec!(1)));
    assert!(d.is_blocked(), "{d}");
    replica.thaw();
    assert!(engine.wait_settled(Duration::from_secs(10)), "settled");
    assert_eq!(
        landed.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the commit is reported once it is replicated"
    );
    let status = engine.status(&l).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(4), dec!(0)),
        "1 + 1 + 0.5 + 1.5; the refused checks taken back"
    );
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
