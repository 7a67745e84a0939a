//! The shared response cache (`budgetgate::cache::SharedCache`, #17): kept
//! in the engine's store, so on Redis every process shares it. On the
//! memory store and on a real `redis-server`: a second identical call runs
//! no body, charges nothing and counts the saving; a different prompt
//! misses; entries expire after the TTL; a record under the same key for
//! another request is no answer. And two processes share one Redis cache.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use budgetgate::cache::{Cached, SharedCache};
use budgetgate::store::redis::RedisStore;
use budgetgate::{dec, Budget, Decimal, Engine, Ledger};
use serde::{Deserialize, Serialize};
use testkit::redis_server::RedisServer;
use testkit::Blocked;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Prompt {
    model: String,
    text: String,
}

fn prompt(text: &str) -> Prompt {
    Prompt {
        model: "gpt-4o-mini".into(),
        text: text.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Answer {
    text: String,
    tokens: u64,
}

/// A "model": answers with the prompt reversed, counting its runs; costs
/// 0.001 per character.
#[derive(Default)]
struct Model {
    runs: AtomicUsize,
}

impl Model {
    async fn answer(&self, p: &Prompt) -> Result<Answer, Blocked> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok(Answer {
            text: p.text.chars().rev().collect(),
            tokens: p.text.len() as u64,
        })
    }
}

fn price(a: &Answer) -> Decimal {
    Decimal::from(a.tokens) * dec!(0.001)
}

async fn ask(
    cache: &SharedCache<Prompt, Answer>,
    engine: &Engine,
    ledger: &Ledger,
    model: &Model,
    text: &str,
) -> Result<Cached<Answer>, Blocked> {
    let p = prompt(text);
    cache
        .call(engine, ledger, &p, dec!(0.05), price, || model.answer(&p))
        .await
}

fn user(engine: &Engine, name: &str) -> Ledger {
    let ledger = Ledger::new("cache", "gpt-4o-mini", name);
    engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
    ledger
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}-{}-{nanos}", std::process::id())
}

async fn hit_runs_nothing_and_charges_nothing(engine: Engine) {
    let cache = SharedCache::new(unique("hits"), Duration::from_secs(600)).unwrap();
    let ledger = user(&engine, "u1");
    let model = Model::default();
    let first = ask(&cache, &engine, &ledger, &model, "hello")
        .await
        .unwrap();
    assert!(!first.is_hit());
    assert_eq!(first.cost(), dec!(0.005));
    for _ in 0..3 {
        let again = ask(&cache, &engine, &ledger, &model, "hello")
            .await
            .unwrap();
        assert!(again.is_hit());
        assert_eq!(again.value(), first.value());
        assert_eq!(
            again.cost(),
            dec!(0.005),
            "what the response cost when made"
        );
    }
    assert_eq!(model.runs.load(Ordering::SeqCst), 1, "the body ran once");
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.005), dec!(0))
    );
    let stats = cache.stats();
    assert_eq!(
        (stats.hits(), stats.misses(), stats.saved()),
        (3, 1, dec!(0.015))
    );

    let other = ask(&cache, &engine, &ledger, &model, "bye!").await.unwrap();
    assert!(!other.is_hit(), "a different prompt misses");
    assert_eq!(other.value().text, "!eyb");
    assert_eq!(engine.status(&ledger).unwrap().committed(), dec!(0.009));
    // Another cache name shares nothing.
    let elsewhere = SharedCache::new(unique("other"), Duration::from_secs(600)).unwrap();
    assert!(!ask(&elsewhere, &engine, &ledger, &model, "hello")
        .await
        .unwrap()
        .is_hit());
}

async fn entries_expire_after_the_ttl(engine: Engine) {
    let cache = SharedCache::new(unique("ttl"), Duration::from_millis(300)).unwrap();
    let ledger = user(&engine, "u2");
    let model = Model::default();
    ask(&cache, &engine, &ledger, &model, "soon").await.unwrap();
    assert!(ask(&cache, &engine, &ledger, &model, "soon")
        .await
        .unwrap()
        .is_hit());
    tokio::time::sleep(Duration::from_millis(450)).await;
    let late = ask(&cache, &engine, &ledger, &model, "soon").await.unwrap();
    assert!(!late.is_hit(), "expired");
    assert_eq!(model.runs.load(Ordering::SeqCst), 2);
    assert_eq!(engine.status(&ledger).unwrap().committed(), dec!(0.008));
}

/// FNV-1a 128 of the request's JSON: where the cache looks (a locator only).
fn record_key(cache: &str, p: &Prompt) -> String {
    let text = serde_json::to_value(p).unwrap().to_string();
    let hash = text
        .bytes()
        .fold(0x6c62272e07bb014262b821756295c58d_u128, |h, b| {
            (h ^ u128::from(b)).wrapping_mul(0x0000000001000000000000000000013B)
        });
    format!("cache:{cache}:{hash:032x}")
}

async fn another_request_under_the_same_key_is_no_answer(engine: Engine) {
    let name = unique("collide");
    let cache = SharedCache::new(name.clone(), Duration::from_secs(600)).unwrap();
    let ledger = user(&engine, "u3");
    let model = Model::default();
    // What a hash collision would leave: the key of "mine", holding
    // another request's answer.
    let forged = serde_json::json!({
        "request": prompt("theirs"),
        "response": {"text": "not yours", "tokens": 1},
        "cost": "0.5",
    });
    engine
        .store()
        .put_record(
            &record_key(&name, &prompt("mine")),
            &forged.to_string(),
            Duration::from_secs(60),
        )
        .unwrap();
    let answer = ask(&cache, &engine, &ledger, &model, "mine").await.unwrap();
    assert!(!answer.is_hit());
    assert_eq!(answer.value().text, "enim");
    assert_eq!(cache.stats().saved(), dec!(0));
    // The real answer replaced the forged one.
    assert!(ask(&cache, &engine, &ledger, &model, "mine")
        .await
        .unwrap()
        .is_hit());
}

async fn a_blocked_call_caches_nothing(engine: Engine) {
    let cache = SharedCache::new(unique("blocked"), Duration::from_secs(600)).unwrap();
    let ledger = Ledger::new("cache", "gpt-4o-mini", "poor");
    engine.set_budget(&ledger, Budget::lifetime(dec!(0.01)).unwrap());
    let model = Model::default();
    assert!(
        ask(&cache, &engine, &ledger, &model, "too expensive")
            .await
            .is_err(),
        "0.05 > 0.01"
    );
    assert_eq!(model.runs.load(Ordering::SeqCst), 0, "the body did not run");
    assert!(cache
        .lookup(&engine, &prompt("too expensive"))
        .await
        .unwrap()
        .is_none());
}

/// Identical requests that miss at the same time in one process share one
/// call: one body runs, the others wait and are hits; one charge.
async fn identical_concurrent_misses_run_one_body(engine: Engine) {
    let cache = std::sync::Arc::new(
        SharedCache::<Prompt, Answer>::new(unique("flight"), Duration::from_secs(600)).unwrap(),
    );
    let ledger = user(&engine, "u4");
    let model = std::sync::Arc::new(Model::default());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (cache, engine, ledger, model) =
            (cache.clone(), engine.clone(), ledger.clone(), model.clone());
        tasks.push(tokio::spawn(async move {
            let p = prompt("same question");
            cache
                .call(&engine, &ledger, &p, dec!(0.05), price, || async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    model.answer(&p).await
                })
                .await
                .unwrap()
        }));
    }
    let mut hits = 0;
    for t in tasks {
        hits += usize::from(t.await.unwrap().is_hit());
    }
    assert_eq!(
        (model.runs.load(Ordering::SeqCst), hits),
        (1, 7),
        "one body ran, seven waited"
    );
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.013), dec!(0))
    );
}

testkit::async_on_both_stores!("cache-shared":
    hit_runs_nothing_and_charges_nothing,
    entries_expire_after_the_ttl,
    another_request_under_the_same_key_is_no_answer,
    a_blocked_call_caches_nothing,
    identical_concurrent_misses_run_one_body,
);

// ----- two processes, one Redis cache -----------------------------------------

fn redis_engine(url: &str, prefix: &str) -> Engine {
    Engine::new(
        RedisStore::builder(url)
            .prefix(prefix)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("redis store"),
    )
}

/// The second process: asks what the first asked, through its own engine
/// and cache value on the same Redis; prints what it got.
#[tokio::test]
async fn shared_cache_child() {
    if std::env::var("BUDGETGATE_TEST_ROLE").as_deref() != Ok("cache-child") {
        return; // run by two_processes_share_the_redis_cache
    }
    let url = std::env::var("BUDGETGATE_TEST_URL").expect("url");
    let prefix = std::env::var("BUDGETGATE_TEST_PREFIX").expect("prefix");
    let name = std::env::var("BUDGETGATE_TEST_CACHE").expect("cache name");
    let engine = redis_engine(&url, &prefix);
    let ledger = user(&engine, "shared");
    let cache = SharedCache::new(name, Duration::from_secs(600)).unwrap();
    let model = Model::default();
    let got = ask(&cache, &engine, &ledger, &model, "shared question")
        .await
        .unwrap();
    println!(
        "CHILD hit={} runs={} text={} cost={}",
        got.is_hit(),
        model.runs.load(Ordering::SeqCst),
        got.value().text,
        got.cost()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_redis_cache() {
    if std::env::var("BUDGETGATE_TEST_ROLE").is_ok() {
        return;
    }
    let server = RedisServer::start();
    let prefix = unique("two");
    let name = unique("shared");
    let engine = redis_engine(&server.url(), &prefix);
    let ledger = user(&engine, "shared");
    let cache = SharedCache::new(name.clone(), Duration::from_secs(600)).unwrap();
    let model = Model::default();
    let first = ask(&cache, &engine, &ledger, &model, "shared question")
        .await
        .unwrap();
    assert!(!first.is_hit());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shared_cache_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("BUDGETGATE_TEST_ROLE", "cache-child")
        .env("BUDGETGATE_TEST_URL", server.url())
        .env("BUDGETGATE_TEST_PREFIX", &prefix)
        .env("BUDGETGATE_TEST_CACHE", &name)
        .output()
        .expect("run the child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("CHILD ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("the child printed no result: {stdout}"));
    assert_eq!(
        line,
        format!(
            "CHILD hit=true runs=0 text={} cost={}",
            first.value().text,
            first.cost()
        ),
        "the other process got this one's answer, and ran nothing"
    );
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (first.cost(), dec!(0)),
        "charged once, by the process that ran the body"
    );
}
