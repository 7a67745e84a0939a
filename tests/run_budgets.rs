//! Run budgets (`budgetgate::run`, #17): a task-local scope whose ledger
//! joins every guarded call inside it — engine calls and the attributes' —
//! across `.await`s and into tasks started with `run::spawn`, all or nothing
//! with the call's own ledgers; nested scopes charge inner and outer; eight
//! concurrent runs on a multi-thread runtime (memory and a real
//! `redis-server`) never exceed their caps.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use budgetgate::run::{self, Run};
use budgetgate::store::redis::RedisStore;
use budgetgate::{
    dec, guard, guard_bounded, BlockReason, Budget, BudgetExceeded, Decimal, Engine, Ledger,
    MemoryStore,
};
use testkit::redis_server::RedisServer;
use testkit::Blocked;

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

fn redis_engine() -> Engine {
    static N: AtomicU64 = AtomicU64::new(0);
    let store = RedisStore::builder(&SERVER.url())
        .prefix(format!("runs{}", N.fetch_add(1, Ordering::Relaxed)))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("redis store");
    Engine::new(store)
}

fn tool() -> Ledger {
    Ledger::new("tools", "search", "user:1")
}

fn run_ledger(name: &str) -> Ledger {
    Ledger::new("agent", "run", name)
}

fn engine_with_tool() -> Engine {
    let engine = Engine::new(MemoryStore::new());
    engine.set_budget(&tool(), Budget::lifetime(dec!(1000)).unwrap());
    engine
}

/// What `ledger` has committed: the runs' ledgers carry their budget in
/// the scope, not on the engine, so they are read under a lifetime cap.
fn committed(engine: &Engine, ledger: &Ledger) -> Decimal {
    match engine.status(ledger) {
        Ok(status) => status.committed(),
        Err(_) => engine
            .status_with(ledger, &Budget::lifetime(dec!(1000)).unwrap())
            .unwrap()
            .committed(),
    }
}

#[guard(ledger = ("tools", "fetch", "user:1"), cost = "0.10", max_spend = "1000", engine = engine)]
fn fetch(engine: &Engine, url: &str) -> Result<usize, Blocked> {
    Ok(url.len())
}

/// Counts the runs of its body (used by one test only).
static SCRAPE_BODIES: AtomicUsize = AtomicUsize::new(0);

#[guard(ledger = ("tools", "scrape", "user:1"), cost = "0.10", max_spend = "1000", engine = engine)]
fn scrape(engine: &Engine, url: &str) -> Result<usize, Blocked> {
    SCRAPE_BODIES.fetch_add(1, Ordering::SeqCst);
    Ok(url.len())
}

#[guard_bounded(
    ledger = ("llm", "chat", "user:1"),
    estimate = "0.30",
    actual = |tokens: &u64| Decimal::from(*tokens) * dec!(0.001),
    max_spend = "1000",
    engine = engine,
)]
async fn ask(engine: &Engine, tokens: u64) -> Result<u64, Blocked> {
    tokio::task::yield_now().await;
    Ok(tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_inside_a_scope_charge_the_run_ledger() {
    let engine = engine_with_tool();
    let runl = run_ledger("charged");
    let run = Run::new(runl.clone(), Budget::lifetime(dec!(10)).unwrap());
    run::scope(run, async {
        assert!(engine.check_async(&tool(), dec!(0.5)).await.is_allowed());
        tokio::time::sleep(Duration::from_millis(5)).await; // across an await
        let held = engine.reserve_async(&tool(), dec!(1)).await.unwrap();
        held.commit_async(dec!(0.25)).await.unwrap();
        assert!(engine.check(&tool(), dec!(0.05)).is_allowed()); // sync inside async
        fetch(&engine, "https://a").unwrap(); // #[guard]: 0.10
        ask(&engine, 200).await.unwrap(); // #[guard_bounded]: 0.30 held, 0.2 committed
        assert_eq!(run::current(), vec![runl.clone()]);
    })
    .await;
    assert_eq!(committed(&engine, &runl), dec!(1.1)); // 0.5 + 0.25 + 0.05 + 0.10 + 0.2
    assert_eq!(committed(&engine, &tool()), dec!(0.8));
    let run = Run::new(runl.clone(), Budget::lifetime(dec!(10)).unwrap());
    assert_eq!(run.status(&engine).unwrap().reserved(), dec!(0));
    // Outside the scope: the run is not charged.
    assert!(engine.check_async(&tool(), dec!(0.5)).await.is_allowed());
    assert_eq!(committed(&engine, &runl), dec!(1.1));
    assert!(run::current().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_sub_task_inherits_the_run() {
    let engine = engine_with_tool();
    let runl = run_ledger("spawned");
    let run = Run::new(runl.clone(), Budget::lifetime(dec!(10)).unwrap());
    run::scope(run, async {
        let (e, e2) = (engine.clone(), engine.clone());
        let inherited = run::spawn(async move {
            tokio::task::yield_now().await;
            e.check_async(&tool(), dec!(0.4)).await.is_allowed()
        });
        assert!(inherited.await.unwrap());
        // A plain tokio::spawn is another task: no run there.
        let plain = tokio::spawn(async move {
            assert!(run::current().is_empty());
            e2.check_async(&tool(), dec!(0.7)).await.is_allowed()
        });
        assert!(plain.await.unwrap());
        // A thread started with run::spawn_thread inherits it for sync calls.
        let e3 = engine.clone();
        let thread = run::spawn_thread(move || e3.check(&tool(), dec!(0.2)).is_allowed());
        assert!(thread.join().unwrap());
    })
    .await;
    assert_eq!(committed(&engine, &runl), dec!(0.6));
    assert_eq!(committed(&engine, &tool()), dec!(1.3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_cap_blocks_the_call_that_would_cross_it_before_it_runs() {
    let engine = engine_with_tool();
    let runl = run_ledger("capped");
    let run = Run::new(runl.clone(), Budget::lifetime(dec!(0.25)).unwrap());
    let (first, second, third) = run::scope(run, async {
        (
            scrape(&engine, "a"),
            scrape(&engine, "b"),
            scrape(&engine, "c"), // 0.30 > 0.25
        )
    })
    .await;
    assert!(first.is_ok() && second.is_ok());
    let Err(Blocked(blocked)) = third else {
        panic!("the third call must be blocked")
    };
    assert_eq!(blocked.decision().ledger(), &runl);
    assert_eq!(
        blocked.decision().reason(),
        Some(BlockReason::BudgetExceeded)
    );
    assert_eq!(
        SCRAPE_BODIES.load(Ordering::SeqCst),
        2,
        "the blocked body never ran"
    );
    let scrape_ledger = Ledger::new("tools", "scrape", "user:1");
    assert_eq!(committed(&engine, &scrape_ledger), dec!(0.2)); // all or nothing
    assert_eq!(committed(&engine, &runl), dec!(0.2));

    // A bounded call: its estimate must fit the run, or the body never runs.
    let run = Run::new(run_ledger("bounded"), Budget::lifetime(dec!(0.5)).unwrap());
    let outcome = run::scope(run, async {
        ask(&engine, 100).await.unwrap(); // 0.30 held, 0.1 committed
        let second = ask(&engine, 100).await; // 0.1 + 0.30 ≤ 0.5
        let third = ask(&engine, 100).await; // 0.2 + 0.30 ≤ 0.5
        let fourth = ask(&engine, 100).await; // 0.3 + 0.30 > 0.5: blocked
        (second, third, fourth)
    })
    .await;
    assert!(outcome.0.is_ok() && outcome.1.is_ok());
    assert!(
        matches!(outcome.2, Err(Blocked(ref b)) if b.decision().ledger() == &run_ledger("bounded"))
    );
    assert_eq!(committed(&engine, &run_ledger("bounded")), dec!(0.3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_scopes_charge_inner_and_outer() {
    let engine = engine_with_tool();
    let (outer, inner) = (run_ledger("outer"), run_ledger("sub-agent"));
    let outer_run = Run::new(outer.clone(), Budget::lifetime(dec!(1)).unwrap());
    let inner_run = Run::new(inner.clone(), Budget::lifetime(dec!(0.5)).unwrap());
    run::scope(outer_run, async {
        assert!(engine.check_async(&tool(), dec!(0.2)).await.is_allowed()); // outer only
        let sub = run::scope(inner_run.clone(), async {
            assert_eq!(run::current(), vec![outer.clone(), inner.clone()]);
            let ok = engine.check_async(&tool(), dec!(0.4)).await;
            let over = engine.check_async(&tool(), dec!(0.2)).await; // inner: 0.6 > 0.5
            (ok, over)
        })
        .await;
        assert!(sub.0.is_allowed());
        assert!(sub.1.is_blocked());
        assert_eq!(sub.1.ledger(), &inner);
        assert_eq!(run::current(), vec![outer.clone()]);
        // The outer cap binds the sub-agent too: 0.6 spent, 0.5 more > 1.
        let second_sub = Run::new(run_ledger("sub-2"), Budget::lifetime(dec!(5)).unwrap());
        let blocked = run::scope(second_sub, engine.check_async(&tool(), dec!(0.5))).await;
        assert!(blocked.is_blocked());
        assert_eq!(blocked.ledger(), &outer);
    })
    .await;
    assert_eq!(committed(&engine, &outer), dec!(0.6));
    assert_eq!(committed(&engine, &inner), dec!(0.4));
    assert_eq!(committed(&engine, &run_ledger("sub-2")), dec!(0));
    assert_eq!(committed(&engine, &tool()), dec!(0.6));
}

#[test]
fn a_sync_scope_charges_sync_calls() {
    let engine = engine_with_tool();
    let runl = run_ledger("sync");
    let run = Run::new(runl.clone(), Budget::lifetime(dec!(0.15)).unwrap());
    let blocked = run::sync_scope(run, || {
        assert!(engine.check(&tool(), dec!(0.1)).is_allowed());
        engine
            .reserve(&tool(), dec!(0.1))
            .map(|r| r.commit(dec!(0))) // 0.2 > 0.15
    });
    let blocked: BudgetExceeded = blocked.expect_err("the run blocks the reservation");
    assert_eq!(blocked.decision().ledger(), &runl);
    assert_eq!(committed(&engine, &runl), dec!(0.1));
}

/// Eight runs at once, each with four sub-tasks (run::spawn) hammering two
/// shared tool ledgers with checks and reservations: no run's committed +
/// reserved spend ever passes its cap, every admitted cost is recorded on
/// the run, and the caps are reached (the test would see an overspend).
async fn eight_concurrent_runs(engine: Engine) {
    let tools = [tool(), Ledger::new("llm", "chat", "user:1")];
    for t in &tools {
        engine.set_budget(t, Budget::lifetime(dec!(1000)).unwrap());
    }
    let cap = dec!(1.00);
    let mut runs = Vec::new();
    for r in 0..8 {
        let engine = engine.clone();
        let tools = tools.clone();
        let ledger = run_ledger(&format!("concurrent-{r}"));
        let run = Run::new(ledger.clone(), Budget::lifetime(cap).unwrap());
        runs.push(tokio::spawn(run::scope(run, async move {
            let mut subs = Vec::new();
            for s in 0..4u64 {
                let engine = engine.clone();
                let tools = tools.clone();
                subs.push(run::spawn(async move {
                    let mut admitted = Decimal::ZERO;
                    for i in 0..40u64 {
                        let t = &tools[(i % 2) as usize];
                        if (i + s) % 3 == 0 {
                            if let Ok(held) = engine.reserve_async(t, dec!(0.07)).await {
                                tokio::task::yield_now().await;
                                let actual = Decimal::new(((i * 7 + s) % 8) as i64, 2);
                                held.commit_async(actual).await.unwrap();
                                admitted += actual;
                            }
                        } else if engine.check_async(t, dec!(0.03)).await.is_allowed() {
                            admitted += dec!(0.03);
                        }
                    }
                    admitted
                }));
            }
            let mut admitted = Decimal::ZERO;
            for sub in subs {
                admitted += sub.await.unwrap();
            }
            (ledger, admitted)
        })));
    }
    let mut total = Decimal::ZERO;
    for r in runs {
        let (ledger, admitted) = r.await.unwrap();
        let status = Run::new(ledger.clone(), Budget::lifetime(cap).unwrap())
            .status(&engine)
            .unwrap();
        assert!(
            status.committed() <= cap,
            "{ledger} spent {} > {cap}",
            status.committed()
        );
        assert_eq!(
            status.committed(),
            admitted,
            "{ledger}: the store and the callers agree"
        );
        assert_eq!(status.reserved(), dec!(0));
        // About 100 checks of 0.03 alone would spend ~3: the cap stopped them.
        assert!(
            status.committed() > cap / dec!(2),
            "{ledger} barely spent: {}",
            status.committed()
        );
        total += admitted;
    }
    let on_tools: Decimal = tools.iter().map(|t| committed(&engine, t)).sum();
    assert_eq!(
        on_tools, total,
        "every admitted call is on its tool ledger too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_runs_never_exceed_their_caps_memory() {
    eight_concurrent_runs(Engine::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_runs_never_exceed_their_caps_redis() {
    eight_concurrent_runs(redis_engine()).await;
}
