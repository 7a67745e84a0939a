//! The response cache (`budgetgate::cache`, #17), in-process backend, with
//! the calls charged on the memory store and on a real `redis-server`: a
//! second identical call runs no body, charges nothing and counts the
//! saving; a different prompt misses; entries expire after the TTL; a
//! blocked or failing call caches nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use budgetgate::cache::ResponseCache;
use budgetgate::{dec, Budget, Decimal, Engine, Ledger};
use testkit::Blocked;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Prompt {
    model: &'static str,
    text: String,
}

fn prompt(text: &str) -> Prompt {
    Prompt {
        model: "gpt-4o-mini",
        text: text.into(),
    }
}

/// A "model": answers with the prompt's length, counting its runs; costs
/// 0.001 per character.
struct Model {
    runs: AtomicUsize,
}

impl Model {
    async fn answer(&self, p: &Prompt) -> Result<usize, Blocked> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok(p.text.len())
    }
}

fn price(len: &usize) -> Decimal {
    Decimal::from(*len as u64) * dec!(0.001)
}

async fn ask(
    cache: &ResponseCache<Prompt, usize>,
    engine: &Engine,
    ledger: &Ledger,
    model: &Model,
    text: &str,
) -> Result<budgetgate::cache::Cached<usize>, Blocked> {
    let p = prompt(text);
    cache
        .call(engine, ledger, p.clone(), dec!(0.05), price, || {
            model.answer(&p)
        })
        .await
}

fn user(engine: &Engine, cap: Decimal) -> Ledger {
    let ledger = Ledger::new("llm", "gpt-4o-mini", "user:1");
    engine.set_budget(&ledger, Budget::lifetime(cap).unwrap());
    ledger
}

async fn a_second_identical_call_runs_nothing_and_charges_nothing(engine: Engine) {
    let ledger = user(&engine, dec!(1));
    let cache = ResponseCache::new(Duration::from_secs(600));
    let model = Model {
        runs: AtomicUsize::new(0),
    };
    let first = ask(&cache, &engine, &ledger, &model, "hello world")
        .await
        .unwrap();
    assert!(!first.is_hit());
    assert_eq!(first.cost(), dec!(0.011));
    let second = ask(&cache, &engine, &ledger, &model, "hello world")
        .await
        .unwrap();
    assert!(second.is_hit());
    assert_eq!(*second.value(), 11);
    assert_eq!(model.runs.load(Ordering::SeqCst), 1, "the body ran once");
    assert_eq!(
        engine.status(&ledger).unwrap().committed(),
        dec!(0.011),
        "charged once"
    );
    let stats = cache.stats();
    assert_eq!((stats.hits(), stats.misses()), (1, 1));
    assert_eq!(stats.saved(), dec!(0.011));

    // A different prompt (or model) misses, runs and is charged.
    let other = ask(&cache, &engine, &ledger, &model, "hello there")
        .await
        .unwrap();
    assert!(!other.is_hit());
    assert_eq!(model.runs.load(Ordering::SeqCst), 2);
    assert_eq!(engine.status(&ledger).unwrap().committed(), dec!(0.022));
    let mut changed = prompt("hello world");
    changed.model = "gpt-4o";
    let miss = cache
        .call(&engine, &ledger, changed.clone(), dec!(0.05), price, || {
            model.answer(&changed)
        })
        .await
        .unwrap();
    assert!(!miss.is_hit());
    assert_eq!(cache.stats().misses(), 3);
    assert_eq!(cache.stats().entries(), 3);
}

async fn entries_expire_after_the_ttl(engine: Engine) {
    let ledger = user(&engine, dec!(1));
    let cache = ResponseCache::new(Duration::from_millis(200));
    let model = Model {
        runs: AtomicUsize::new(0),
    };
    ask(&cache, &engine, &ledger, &model, "abc").await.unwrap();
    assert!(ask(&cache, &engine, &ledger, &model, "abc")
        .await
        .unwrap()
        .is_hit());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = ask(&cache, &engine, &ledger, &model, "abc").await.unwrap();
    assert!(!after.is_hit(), "expired");
    assert_eq!(model.runs.load(Ordering::SeqCst), 2);
    assert_eq!(engine.status(&ledger).unwrap().committed(), dec!(0.006));
    assert_eq!(cache.stats().saved(), dec!(0.003));
}

async fn blocked_and_failed_calls_cache_nothing(engine: Engine) {
    let ledger = user(&engine, dec!(0.06));
    let cache = ResponseCache::new(Duration::from_secs(600));
    let model = Model {
        runs: AtomicUsize::new(0),
    };
    // A failing body (its error: any value of the call's error type): the
    // reservation is released, nothing is cached.
    let p = prompt("flaky");
    let failed: Result<_, Blocked> = cache
        .call(&engine, &ledger, p.clone(), dec!(0.05), price, || async {
            Err(Blocked(
                engine
                    .check(&Ledger::new("no", "budget", "x"), dec!(1))
                    .into_result()
                    .unwrap_err(),
            ))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(engine.status(&ledger).unwrap().spent_in_window(), dec!(0));
    assert_eq!(cache.stats().entries(), 0);
    // Fill the budget: 0.01 committed, 0.05 more is the cap exactly.
    ask(&cache, &engine, &ledger, &model, "0123456789")
        .await
        .unwrap();
    ask(&cache, &engine, &ledger, &model, "abcdefghij")
        .await
        .unwrap(); // 0.02
                   // 0.02 + 0.05 > 0.06: blocked before the body; nothing cached.
    assert!(ask(&cache, &engine, &ledger, &model, "new prompt")
        .await
        .is_err());
    assert_eq!(model.runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().entries(), 2);
    // A cached answer still comes back: it costs nothing.
    assert!(ask(&cache, &engine, &ledger, &model, "0123456789")
        .await
        .unwrap()
        .is_hit());
    assert_eq!(engine.status(&ledger).unwrap().committed(), dec!(0.02));
}

async fn concurrent_hits_are_counted_exactly(engine: Engine) {
    let ledger = user(&engine, dec!(10));
    let cache = std::sync::Arc::new(ResponseCache::new(Duration::from_secs(600)));
    let model = std::sync::Arc::new(Model {
        runs: AtomicUsize::new(0),
    });
    ask(&cache, &engine, &ledger, &model, "shared")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (cache, engine, ledger, model) =
            (cache.clone(), engine.clone(), ledger.clone(), model.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                assert!(ask(&cache, &engine, &ledger, &model, "shared")
                    .await
                    .unwrap()
                    .is_hit());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = cache.stats();
    assert_eq!((stats.hits(), stats.misses()), (400, 1));
    assert_eq!(stats.saved(), dec!(0.006) * Decimal::from(400));
    assert_eq!(model.runs.load(Ordering::SeqCst), 1);
    assert_eq!(engine.status(&ledger).unwrap().committed(), dec!(0.006));
}

/// Identical requests that miss at the same time share one call: the
/// first runs its body, the seven others wait and are hits; one charge.
async fn identical_concurrent_misses_run_one_body(engine: Engine) {
    let ledger = user(&engine, dec!(10));
    let cache = std::sync::Arc::new(ResponseCache::new(Duration::from_secs(600)));
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (cache, engine, ledger, runs) =
            (cache.clone(), engine.clone(), ledger.clone(), runs.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .call(
                    &engine,
                    &ledger,
                    prompt("same"),
                    dec!(0.05),
                    price,
                    || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, Blocked>(4)
                    },
                )
                .await
                .unwrap()
        }));
    }
    let mut hits = 0;
    for t in tasks {
        let answer = t.await.unwrap();
        assert_eq!(*answer.value(), 4);
        hits += usize::from(answer.is_hit());
    }
    assert_eq!(
        (runs.load(Ordering::SeqCst), hits),
        (1, 7),
        "one body ran, seven waited"
    );
    let stats = cache.stats();
    assert_eq!((stats.hits(), stats.misses()), (7, 1));
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.004), dec!(0))
    );
}

/// A leader whose future is dropped (its caller timed out) hands over: a
/// waiting call runs its own body, and only its cost is charged.
async fn a_cancelled_leader_hands_over(engine: Engine) {
    let ledger = user(&engine, dec!(10));
    let cache = std::sync::Arc::new(ResponseCache::new(Duration::from_secs(600)));
    let leader = {
        let (cache, engine, ledger) = (cache.clone(), engine.clone(), ledger.clone());
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_millis(150),
                cache.call(
                    &engine,
                    &ledger,
                    prompt("slow"),
                    dec!(0.05),
                    price,
                    || async {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok::<_, Blocked>(1_000)
                    },
                ),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await; // the leader leads
    let follower = cache
        .call(
            &engine,
            &ledger,
            prompt("slow"),
            dec!(0.05),
            price,
            || async { Ok::<_, Blocked>(7) },
        )
        .await
        .unwrap();
    assert!(leader.await.unwrap().is_err(), "the leader timed out");
    assert!(!follower.is_hit(), "it ran its own body");
    assert_eq!(*follower.value(), 7);
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.007), dec!(0))
    );
}

testkit::async_on_both_stores!(
    "cache":
    a_second_identical_call_runs_nothing_and_charges_nothing,
    entries_expire_after_the_ttl,
    blocked_and_failed_calls_cache_nothing,
    concurrent_hits_are_counted_exactly,
    identical_concurrent_misses_run_one_body,
    a_cancelled_leader_hands_over,
);
