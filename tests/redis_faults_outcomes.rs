//! The Redis store under real faults, 2: writes whose outcome was lost end
//! as the caller acted. Lost replies, outages, cancelled futures, replicas
//! that do not acknowledge: holds and fixed costs are cancelled or recorded
//! by id, exactly once.
//! Every test starts its own `redis-server` (and proxy).

use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{dec, Budget, Engine, Ledger};
use testkit::fault_proxy::{Fault, FaultProxy};
use testkit::faults::*;
use testkit::redis_server::RedisServer;

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
