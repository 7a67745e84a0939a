//! A mass expiry on Redis: 1,000,000 spends leave a rolling window at
//! once. Its own test binary, so its minute of load does not run beside
//! the timing bounds of `redis_faults_bounds.rs`.

use std::time::Duration;

use budgetgate::{dec, Budget};
use testkit::clock_engine;
use testkit::faults::{ledger, redis_cli};
use testkit::redis_server::RedisServer;

/// 1,000,000 spends leaving a rolling window at once: no single script runs
/// 10 ms or more (read from Redis's SLOWLOG), another ledger's calls go on
/// meanwhile, and the window empties over the next calls.
#[test]
fn a_mass_expiry_is_pruned_in_bounded_steps() {
    let server = RedisServer::start();
    let clock = budgetgate::clock::ManualClock::new(1_700_000_000_000_000);
    let engine = clock_engine(&server, &clock);
    let l = ledger("mass-expiry");
    let other = ledger("bystander");
    engine.set_budget(
        &l,
        Budget::rolling(dec!(1000000), Duration::from_secs(1)).unwrap(),
    );
    engine.set_budget(&other, Budget::lifetime(dec!(1000000)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..1000 {
            let calls: Vec<_> = (0..1000).map(|_| engine.check_async(&l, dec!(1))).collect();
            for d in futures_join(calls).await {
                assert!(d.is_allowed(), "{d}");
            }
        }
    });
    assert_eq!(engine.status(&l).unwrap().committed(), dec!(1000000));
    redis_cli(
        &server,
        &["CONFIG", "SET", "slowlog-log-slower-than", "10000"],
    );
    redis_cli(&server, &["SLOWLOG", "RESET"]);
    clock.advance(Duration::from_secs(2)); // all 1,000,000 leave the window
    let mut calls = 0;
    while engine.status(&l).unwrap().committed() > dec!(0) {
        assert!(engine.check(&l, dec!(0)).is_allowed());
        assert!(
            engine.check(&other, dec!(1)).is_allowed(),
            "a bystander is served"
        );
        calls += 1;
        assert!(calls <= 1100, "the window does not empty");
    }
    assert_eq!(
        redis_cli(&server, &["SLOWLOG", "LEN"]),
        "0",
        "scripts of 10 ms or more: {}",
        redis_cli(&server, &["SLOWLOG", "GET", "5"])
    );
    assert!(calls >= 300, "pruned in steps, not at once ({calls} calls)");
}

/// Awaits every future, in order (no extra dependency for a join).
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}
