//! The attributes at run time: what runs, what is charged, what is released.
//! Which ledgers an attribute charges (hierarchies, ledgers from
//! expressions) is in `attribute_ledgers.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use budgetgate::{
    guard, guard_bounded, guard_result, BlockReason, Budget, BudgetExceeded, Decimal, Engine,
    Guarded, Ledger,
};
use rust_decimal_macros::dec;
use testkit::attr::{lifetime, spent_on, ToolError};

static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::in_memory);

fn spent(ns: &str, res: &str, principal: &str, budget: Budget) -> (Decimal, Decimal) {
    spent_on(&ENGINE, ns, res, principal, budget)
}

// ----- #[guard] ------------------------------------------------------------------

static SEARCHES: AtomicUsize = AtomicUsize::new(0);

#[guard(ledger = ("attr", "search", user), cost = "0.4", max_spend = "1", engine = &*ENGINE)]
fn search(user: &str, query: &str) -> Result<usize, ToolError> {
    SEARCHES.fetch_add(1, Ordering::SeqCst);
    Ok(query.len())
}

#[test]
fn blocked_body_never_runs() {
    assert_eq!(search("u1", "rust").unwrap(), 4);
    assert_eq!(search("u1", "budget").unwrap(), 6);
    match search("u1", "again") {
        Err(ToolError::Budget(e)) => {
            assert_eq!(e.decision().reason(), Some(BlockReason::BudgetExceeded));
            assert_eq!(e.decision().spent_in_window(), dec!(0.8));
        }
        other => panic!("expected a budget block, got {other:?}"),
    }
    assert_eq!(
        SEARCHES.load(Ordering::SeqCst),
        2,
        "the blocked body did not run"
    );
    assert_eq!(
        spent("attr", "search", "u1", lifetime(dec!(1))).0,
        dec!(0.8)
    );
    // Another principal has its own budget.
    assert!(search("u2", "x").is_ok());
}

#[guard(ledger = ("attr", "fixed-err", "p"), cost = "0.25", max_spend = "1", engine = &*ENGINE)]
fn fixed_cost_failing() -> Result<(), ToolError> {
    Err(ToolError::Failed("boom"))
}

#[test]
fn fixed_cost_is_charged_whatever_the_body_returns() {
    assert!(matches!(
        fixed_cost_failing(),
        Err(ToolError::Failed("boom"))
    ));
    assert_eq!(
        spent("attr", "fixed-err", "p", lifetime(dec!(1))).0,
        dec!(0.25)
    );
}

/// A computed cost, and the registered budget (no budget in the attribute).
#[guard(ledger = ("attr", "registered", "p"), cost = Decimal::new(units as i64, 2), engine = &*ENGINE)]
fn registered(units: u32) -> Result<u32, ToolError> {
    Ok(units)
}

#[test]
fn expression_cost_and_registered_budget() {
    let ledger = Ledger::new("attr", "registered", "p");
    assert!(
        matches!(registered(1), Err(ToolError::Budget(e)) if e.decision().reason() == Some(BlockReason::NoBudget))
    );
    ENGINE.set_budget(&ledger, lifetime(dec!(0.5)));
    assert_eq!(registered(30).unwrap(), 30);
    assert!(registered(21).is_err());
    assert_eq!(registered(20).unwrap(), 20);
    assert_eq!(ENGINE.status(&ledger).unwrap().committed(), dec!(0.5));
}

#[guard(ledger = ("attr", "window", "p"), cost = "1", max_spend = "2", window = "1h", engine = &*ENGINE)]
fn windowed() -> Result<(), ToolError> {
    Ok(())
}

#[test]
fn call_site_window_budget() {
    windowed().unwrap();
    windowed().unwrap();
    let e = windowed().unwrap_err();
    let ToolError::Budget(e) = e else { panic!() };
    let budget = e.decision().budget().unwrap();
    assert_eq!(
        budget.window(),
        budgetgate::Window::Rolling(Duration::from_secs(3600))
    );
    assert_eq!(budget.max_spend(), dec!(2));
}

// ----- methods, generics, shapes --------------------------------------------------

struct Agent {
    tenant: String,
    calls: usize,
}

impl Agent {
    /// Docs and attributes are kept.
    #[guard(ledger = ("attr", "agent", format!("tenant:{}", self.tenant)), cost = "1", max_spend = "2", engine = &*ENGINE)]
    #[inline]
    pub fn act(&self, n: u32) -> Result<u32, ToolError> {
        Ok(n * 2)
    }

    #[guard(ledger = ("attr", "agent-mut", self.tenant.clone()), cost = "1", max_spend = "5", engine = &*ENGINE)]
    fn act_mut(&mut self) -> Result<usize, ToolError> {
        self.calls += 1;
        Ok(self.calls)
    }

    #[guard_bounded(ledger = ("attr", "agent-owned", self.tenant.clone()), estimate = "1", actual = |n: &usize| Decimal::from(*n), max_spend = "5", engine = &*ENGINE)]
    fn into_calls(self) -> Result<usize, ToolError> {
        Ok(self.calls)
    }

    #[guard(ledger = ("attr", "agent-arc", self.tenant.clone()), cost = "1", max_spend = "5", engine = &*ENGINE)]
    async fn shared(self: Arc<Self>) -> Result<String, ToolError> {
        Ok(self.tenant.clone())
    }
}

#[test]
fn methods_see_self() {
    let mut agent = Agent {
        tenant: "acme".into(),
        calls: 0,
    };
    assert_eq!(agent.act(2).unwrap(), 4);
    assert_eq!(
        spent("attr", "agent", "tenant:acme", lifetime(dec!(2))).0,
        dec!(1)
    );
    assert_eq!(agent.act_mut().unwrap(), 1);
    assert_eq!(agent.act_mut().unwrap(), 2);
    assert_eq!(
        spent("attr", "agent-mut", "acme", lifetime(dec!(5))).0,
        dec!(2)
    );
    assert_eq!(agent.into_calls().unwrap(), 2);
    assert_eq!(
        spent("attr", "agent-owned", "acme", lifetime(dec!(5))).0,
        dec!(2)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let arc = Arc::new(Agent {
        tenant: "arc".into(),
        calls: 0,
    });
    assert_eq!(rt.block_on(arc.shared()).unwrap(), "arc");
    assert_eq!(
        spent("attr", "agent-arc", "arc", lifetime(dec!(5))).0,
        dec!(1)
    );
}

#[guard(ledger = ("attr", "generic", key.as_ref()), cost = "0.5", max_spend = "10", engine = &*ENGINE)]
fn generic<'a, K, T>(
    key: K,
    items: &'a [T],
    extra: impl Into<u64>,
) -> Result<(&'a [T], u64), ToolError>
where
    K: AsRef<str>,
    T: Clone,
{
    Ok((items, extra.into()))
}

#[test]
fn generics_lifetimes_impl_trait_and_where_clauses() {
    let items = [1, 2, 3];
    let (slice, extra) = generic("g", &items, 7u8).unwrap();
    assert_eq!((slice.len(), extra), (3, 7));
    assert_eq!(
        spent("attr", "generic", "g", lifetime(dec!(10))).0,
        dec!(0.5)
    );
}

// ----- #[guard_bounded] -------------------------------------------------------------

struct Completion {
    tokens: u64,
}

impl Completion {
    fn cost(&self) -> Decimal {
        Decimal::from(self.tokens) * dec!(0.001)
    }
}

#[guard_bounded(ledger = ("attr", "llm", user), estimate = "0.5", actual = |c| c.cost(), max_spend = "1", engine = &*ENGINE)]
fn llm(user: &str, tokens: u64, fail: bool) -> Result<Completion, ToolError> {
    if fail {
        return Err(ToolError::Failed("provider error"));
    }
    Ok(Completion { tokens })
}

#[test]
fn bounded_commits_actual_and_releases_on_err() {
    let b = lifetime(dec!(1));
    llm("b1", 120, false).unwrap();
    assert_eq!(spent("attr", "llm", "b1", b), (dec!(0.12), dec!(0)));
    assert!(matches!(llm("b1", 999, true), Err(ToolError::Failed(_))));
    assert_eq!(
        spent("attr", "llm", "b1", b),
        (dec!(0.12), dec!(0)),
        "Err releases"
    );
    llm("b1", 380, false).unwrap();
    // 0.5 spent: the estimate 0.5 still fits exactly (equality allows) …
    llm("b1", 500, false).unwrap();
    // … and now nothing does.
    assert!(matches!(llm("b1", 1, false), Err(ToolError::Budget(_))));
    assert_eq!(spent("attr", "llm", "b1", b), (dec!(1), dec!(0)));
}

#[guard_bounded(ledger = ("attr", "panics", "p"), estimate = "0.7", actual = |_| dec!(0.1), max_spend = "1", engine = &*ENGINE)]
fn panics() -> Result<(), ToolError> {
    panic!("tool crashed")
}

#[test]
fn panic_releases_reservation() {
    assert!(std::panic::catch_unwind(panics).is_err());
    assert_eq!(
        spent("attr", "panics", "p", lifetime(dec!(1))),
        (dec!(0), dec!(0))
    );
}

#[guard_bounded(ledger = ("attr", "on-error", mode), estimate = "0.5", actual = |_| dec!(0.1),
                on_error = estimate, max_spend = "10", engine = &*ENGINE)]
fn billed_on_error(mode: &str) -> Result<(), ToolError> {
    Err(ToolError::Failed("billed anyway"))
}

#[guard_bounded(ledger = ("attr", "on-error", mode), estimate = "0.5", actual = |_| dec!(0.1),
                on_error = |e: &ToolError| match e { ToolError::Failed(_) => dec!(0.03), _ => dec!(0) },
                max_spend = "10", engine = &*ENGINE)]
fn partly_billed(mode: &str) -> Result<(), ToolError> {
    Err(ToolError::Failed("partial"))
}

#[guard_bounded(ledger = ("attr", "on-error", mode), estimate = "0.5", actual = |_| dec!(0.1),
                on_error = release, max_spend = "10", engine = &*ENGINE)]
fn released(mode: &str) -> Result<(), ToolError> {
    Err(ToolError::Failed("free"))
}

#[test]
fn on_error_variants_charge_what_they_say() {
    let b = lifetime(dec!(10));
    billed_on_error("estimate").unwrap_err();
    assert_eq!(
        spent("attr", "on-error", "estimate", b),
        (dec!(0.5), dec!(0))
    );
    partly_billed("closure").unwrap_err();
    assert_eq!(
        spent("attr", "on-error", "closure", b),
        (dec!(0.03), dec!(0))
    );
    released("release").unwrap_err();
    assert_eq!(spent("attr", "on-error", "release", b), (dec!(0), dec!(0)));
}

// ----- async -------------------------------------------------------------------------

#[guard_bounded(ledger = ("attr", "async", user), estimate = "0.5", actual = |c| c.cost(), max_spend = "1", engine = &*ENGINE)]
async fn slow_llm(user: String, tokens: u64, delay: Duration) -> Result<Completion, ToolError> {
    tokio::time::sleep(delay).await;
    Ok(Completion { tokens })
}

#[tokio::test]
async fn async_bounded_and_cancellation() {
    let b = lifetime(dec!(1));
    slow_llm("a1".into(), 200, Duration::ZERO).await.unwrap();
    assert_eq!(spent("attr", "async", "a1", b), (dec!(0.2), dec!(0)));

    // A future dropped before its first poll reserves nothing.
    let unpolled = slow_llm("a1".into(), 1, Duration::ZERO);
    assert_eq!(spent("attr", "async", "a1", b), (dec!(0.2), dec!(0)));
    drop(unpolled);

    // Cancelled mid-call: the reservation is released.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        slow_llm("a1".into(), 1, Duration::from_secs(60)),
    )
    .await;
    assert!(cancelled.is_err(), "timed out");
    assert_eq!(
        spent("attr", "async", "a1", b),
        (dec!(0.2), dec!(0)),
        "cancellation released"
    );
}

// ----- #[guard_result] (soft mode) --------------------------------------------------

static EMBEDS: AtomicUsize = AtomicUsize::new(0);

#[guard_result(ledger = ("attr", "embed", "team"), cost = "0.4", max_spend = "1", engine = &*ENGINE)]
fn embed(text: &str) -> Vec<f32> {
    EMBEDS.fetch_add(1, Ordering::SeqCst);
    if text.is_empty() {
        return Vec::new();
    }
    vec![text.len() as f32]
}

#[test]
fn soft_mode_returns_guarded() {
    let first: Guarded<Vec<f32>> = embed("hello");
    assert!(first.is_allowed());
    assert_eq!(first.decision().spent_in_window(), dec!(0.4));
    assert_eq!(first.into_value(), Some(vec![5.0]));
    assert_eq!(
        embed("").into_value(),
        Some(vec![]),
        "`return` in the body still works"
    );
    let blocked = embed("x");
    assert!(!blocked.is_allowed());
    assert_eq!(
        blocked.decision().reason(),
        Some(BlockReason::BudgetExceeded)
    );
    assert!(blocked.clone().into_result().is_err());
    assert_eq!(blocked.unwrap_or(vec![-1.0]), vec![-1.0]);
    assert_eq!(EMBEDS.load(Ordering::SeqCst), 2, "blocked body did not run");
}

#[guard_result(ledger = ("attr", "soft-bounded", "p"), estimate = "0.6", actual = |n: &u64| Decimal::from(*n) / dec!(100),
               max_spend = "1", engine = &*ENGINE)]
async fn soft_bounded(n: u64) -> u64 {
    n
}

#[tokio::test]
async fn soft_bounded_commits_actual() {
    let g = soft_bounded(25).await;
    assert_eq!(g.value(), Some(&25));
    assert_eq!(g.decision().requested(), dec!(0.6));
    assert_eq!(
        spent("attr", "soft-bounded", "p", lifetime(dec!(1))),
        (dec!(0.25), dec!(0))
    );
    assert!(
        soft_bounded(20).await.is_allowed(),
        "0.25 + 0.6 fits; commits 0.2"
    );
    let blocked = soft_bounded(1).await;
    assert!(!blocked.is_allowed(), "0.45 + 0.6 does not fit");
    assert_eq!(blocked.decision().spent_in_window(), dec!(0.45));
}

#[guard_result(ledger = ("attr", "soft-result", "p"), estimate = "0.5", actual = |v: &u32| Decimal::from(*v) / dec!(10),
               on_error = estimate, max_spend = "1", engine = &*ENGINE)]
fn soft_result(v: u32) -> Result<u32, String> {
    if v == 0 {
        Err("zero".into())
    } else {
        Ok(v)
    }
}

#[test]
fn soft_mode_with_result_follows_hard_rules() {
    assert_eq!(soft_result(2).into_value(), Some(Ok(2)));
    assert_eq!(soft_result(0).into_value(), Some(Err("zero".to_string())));
    assert_eq!(
        spent("attr", "soft-result", "p", lifetime(dec!(1))),
        (dec!(0.7), dec!(0))
    );
    assert!(soft_result(1).into_result().is_err(), "0.7 + 0.5 > 1");
}

// ----- concurrency ----------------------------------------------------------------------

static HITS: AtomicUsize = AtomicUsize::new(0);

#[guard_bounded(ledger = ("attr", "hammer", "shared"), estimate = "0.01", actual = |_| dec!(0.01), max_spend = "25", engine = &*ENGINE)]
fn hammered() -> Result<(), ToolError> {
    HITS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[test]
fn threads_on_one_guarded_function_never_overspend() {
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..1_000 {
                    let _ = hammered();
                }
            });
        }
    });
    assert_eq!(
        HITS.load(Ordering::SeqCst),
        2_500,
        "exactly max_spend / cost calls ran"
    );
    assert_eq!(
        spent("attr", "hammer", "shared", lifetime(dec!(25))),
        (dec!(25), dec!(0))
    );
}

static TASK_HITS: AtomicUsize = AtomicUsize::new(0);

#[guard(ledger = ("attr", "tasks", "shared"), cost = "0.1", max_spend = "10", engine = &*ENGINE)]
async fn tasked() -> Result<(), ToolError> {
    TASK_HITS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokio_tasks_never_overspend() {
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            tokio::spawn(async {
                for _ in 0..10 {
                    let _ = tasked().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(TASK_HITS.load(Ordering::SeqCst), 100);
    assert_eq!(
        spent("attr", "tasks", "shared", lifetime(dec!(10))).0,
        dec!(10)
    );
}

#[guard(ledger = ("attr", "daily", "p"), cost = "1", max_spend = "2", window = "daily", engine = &*ENGINE)]
fn daily() -> Result<(), ToolError> {
    Ok(())
}

#[test]
fn calendar_window_in_the_attribute() {
    daily().unwrap();
    daily().unwrap();
    let Err(ToolError::Budget(e)) = daily() else {
        panic!("third call over the daily cap")
    };
    assert_eq!(
        e.decision().budget().unwrap().window(),
        budgetgate::Window::daily()
    );
}

// ----- fallibility by type: aliases of `Result` ------------------------------------

type ToolResult<T> = Result<T, ToolError>;

mod fixed_error {
    /// An `anyhow`-style alias: `Result<T>` with a fixed error.
    pub type Result<T> = std::result::Result<T, super::ToolError>;
}

#[guard(ledger = ("alias", "tool", "p"), cost = "1", max_spend = "2", engine = &*ENGINE)]
fn aliased(n: u32) -> ToolResult<u32> {
    Ok(n)
}

#[guard_bounded(ledger = ("alias", "bounded", "p"), estimate = "1", actual = |n: &u32| Decimal::from(*n),
                on_error = |e: &ToolError| match e { ToolError::Failed(_) => dec!(0.25), _ => dec!(0) },
                max_spend = "3", engine = &*ENGINE)]
fn aliased_bounded(n: u32) -> fixed_error::Result<u32> {
    if n == 0 {
        return Err(ToolError::Failed("zero"));
    }
    Ok(n)
}

#[guard(ledger = ("alias", "io", "p"), cost = "1", max_spend = "1", engine = &*ENGINE)]
fn io_result() -> std::io::Result<&'static str> {
    Ok("read")
}

#[test]
fn result_aliases_are_results() {
    assert_eq!(aliased(1).unwrap(), 1);
    assert_eq!(aliased(2).unwrap(), 2);
    assert!(matches!(aliased(3), Err(ToolError::Budget(_))));

    assert_eq!(aliased_bounded(1).unwrap(), 1);
    assert!(matches!(aliased_bounded(0), Err(ToolError::Failed(_))));
    assert_eq!(
        spent("alias", "bounded", "p", lifetime(dec!(3))),
        (dec!(1.25), dec!(0)),
        "`actual` got the Ok value, `on_error` the error"
    );

    assert_eq!(io_result().unwrap(), "read");
    let e = io_result().unwrap_err();
    let blocked = e.get_ref().and_then(|e| e.downcast_ref::<BudgetExceeded>());
    assert_eq!(
        blocked.map(|b| b.decision().reason()),
        Some(Some(BlockReason::BudgetExceeded))
    );
}

// ----- a panicking `actual` ---------------------------------------------------------------

#[guard_bounded(ledger = ("panic-actual", "sync", "p"), estimate = "0.7",
                actual = |_: &u32| -> Decimal { panic!("pricing crashed") },
                max_spend = "1", engine = engine)]
fn actual_panics(engine: &Engine) -> Result<u32, ToolError> {
    Ok(1)
}

#[guard_bounded(ledger = ("panic-actual", "async", "p"), estimate = "0.6",
                actual = |_: &u32| -> Decimal { panic!("pricing crashed") },
                max_spend = "1", engine = engine.clone())]
async fn actual_panics_async(engine: Arc<Engine>) -> Result<u32, ToolError> {
    tokio::task::yield_now().await;
    Ok(1)
}

#[guard_bounded(ledger = ("panic-actual", "on-error", "p"), estimate = "0.4", actual = |_| dec!(0.1),
                on_error = |_: &ToolError| -> Decimal { panic!("error pricing crashed") },
                max_spend = "1", engine = engine)]
fn on_error_panics(engine: &Engine) -> Result<u32, ToolError> {
    Err(ToolError::Failed("x"))
}

#[guard_bounded(ledger = ("panic-actual", "err", "p"), estimate = "0.3",
                actual = |_| -> Result<Decimal, String> { Err("no price".into()) },
                max_spend = "1", engine = engine)]
fn actual_errs(engine: &Engine) -> Result<u32, ToolError> {
    Ok(1)
}

#[test]
fn panicking_actual_commits_the_estimate() {
    let engine = Engine::in_memory();
    let budget = lifetime(dec!(1));
    let status = |e: &Engine, res: &str| {
        let s = e
            .status_with(&Ledger::new("panic-actual", res, "p"), &budget)
            .unwrap();
        (s.committed(), s.reserved())
    };
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actual_panics(&engine)));
    let panic = caught.expect_err("the panic is resumed");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"pricing crashed"));
    assert_eq!(status(&engine, "sync"), (dec!(0.7), dec!(0)));

    let caught =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_error_panics(&engine)));
    assert!(caught.is_err());
    assert_eq!(status(&engine, "on-error"), (dec!(0.4), dec!(0)));

    // An `Err` from `actual` commits the estimate too (and the call's value is returned).
    assert_eq!(actual_errs(&engine).unwrap(), 1);
    assert_eq!(status(&engine, "err"), (dec!(0.3), dec!(0)));

    let engine = Arc::new(engine);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let joined = rt.block_on(async { tokio::spawn(actual_panics_async(engine.clone())).await });
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(status(&engine, "async"), (dec!(0.6), dec!(0)));
}

// ----- `&mut self` with an owned engine handle ------------------------------------------

struct Counter {
    engine: Arc<Engine>,
    calls: u32,
}

impl Counter {
    #[guard_bounded(engine = self.engine.clone(), ledger = ("mut-self", "count", "p"), estimate = "1",
                    actual = |n: &u32| Decimal::from(*n), max_spend = "10")]
    fn bump(&mut self) -> Result<u32, ToolError> {
        self.calls += 1;
        Ok(self.calls)
    }
}

#[test]
fn mut_self_with_an_owned_engine_handle() {
    let mut counter = Counter {
        engine: Arc::new(Engine::in_memory()),
        calls: 0,
    };
    assert_eq!(counter.bump().unwrap(), 1);
    assert_eq!(counter.bump().unwrap(), 2);
    let status = counter
        .engine
        .status_with(&Ledger::new("mut-self", "count", "p"), &lifetime(dec!(10)))
        .unwrap();
    assert_eq!(status.committed(), dec!(3));
}
