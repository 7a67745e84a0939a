//! `#[rate_limit]` / `#[rate_limit_result]`, alone and composed with the
//! spend guards in both orders.
//!
//! Attributes expand from the outside in, so the one written *nearest the
//! function* wraps all the others and checks first at run time:
//! - `#[rate_limit]` nearest the function: the rate check comes first, so a
//!   rate-limited call never touches the budget;
//! - `#[guard_bounded]` nearest the function: the budget check comes first,
//!   so a budget block never consumes a call, and a rate-limited call returns
//!   `Err`, which releases its reservation. (A fixed-cost `#[guard]` charges
//!   on admission, so with it the rate limit belongs nearest the function.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use budgetgate::clock::ManualClock;
use budgetgate::rate::{Gate, Policy, RateReason};
use budgetgate::{
    guard, guard_bounded, rate_limit, rate_limit_result, Budget, BudgetExceeded, Engine, Guarded,
    Ledger, MemoryStore, RateDecision, RateLimited,
};
use rust_decimal_macros::dec;

static CLOCK: LazyLock<ManualClock> = LazyLock::new(|| ManualClock::new(1_767_225_600_000_000));
static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(MemoryStore::with_clock(CLOCK.clone())));

#[derive(Debug)]
enum ToolError {
    Budget(#[allow(dead_code)] BudgetExceeded),
    Rate(RateLimited),
}
impl From<BudgetExceeded> for ToolError {
    fn from(e: BudgetExceeded) -> Self {
        ToolError::Budget(e)
    }
}
impl From<RateLimited> for ToolError {
    fn from(e: RateLimited) -> Self {
        ToolError::Rate(e)
    }
}

static SEARCHES: AtomicUsize = AtomicUsize::new(0);

#[rate_limit(gate = ("rl", "search", user), max_calls = 2, window = "1m", engine = &*ENGINE)]
fn search(user: &str) -> Result<usize, ToolError> {
    Ok(SEARCHES.fetch_add(1, Ordering::SeqCst))
}

#[test]
fn max_calls_per_window() {
    search("a").unwrap();
    search("a").unwrap();
    match search("a") {
        Err(ToolError::Rate(e)) => {
            assert_eq!(e.decision().reason(), Some(RateReason::TooManyCalls));
            // The clock is frozen: the first call stops counting 1 µs after 60 s.
            assert_eq!(e.retry_after(), Some(Duration::from_micros(60_000_001)));
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert!(search("b").is_ok(), "another principal, another gate");
    assert_eq!(
        SEARCHES.load(Ordering::SeqCst),
        3,
        "the limited body did not run"
    );
}

static BUCKET_GATE: &str = "bucket";

#[rate_limit(gate = ("rl", BUCKET_GATE, "p"), capacity = 3, refill = "2/s", engine = &*ENGINE)]
async fn bucketed() -> Result<(), ToolError> {
    Ok(())
}

#[rate_limit(gate = ("rl", "cooldown", "p"), cooldown = "2s", engine = &*ENGINE)]
fn cooled() -> Result<(), ToolError> {
    Ok(())
}

#[tokio::test]
async fn token_bucket_and_cooldown_forms() {
    // The static clock is shared: these gates only look at it relative to their own calls.
    for _ in 0..3 {
        bucketed().await.unwrap();
    }
    let Err(ToolError::Rate(e)) = bucketed().await else {
        panic!("bucket should be empty")
    };
    assert_eq!(e.decision().reason(), Some(RateReason::BucketEmpty));
    assert_eq!(e.retry_after(), Some(Duration::from_millis(500)));
    cooled().unwrap();
    let Err(ToolError::Rate(e)) = cooled() else {
        panic!("cooling down")
    };
    assert_eq!(e.decision().reason(), Some(RateReason::Cooldown));
}

#[rate_limit_result(gate = ("rl", "soft", "p"), max_calls = 1, window = "1h", engine = &*ENGINE)]
fn soft(n: u32) -> u32 {
    n * 2
}

#[test]
fn soft_form_returns_guarded() {
    let first: Guarded<u32, RateDecision> = soft(2);
    assert_eq!(first.value(), Some(&4));
    assert_eq!(first.decision().calls_in_window(), 1);
    let second = soft(3);
    assert!(!second.is_allowed());
    assert_eq!(second.decision().reason(), Some(RateReason::TooManyCalls));
    assert!(matches!(second.into_result(), Err(RateLimited { .. })));
}

// ----- composition -------------------------------------------------------------------

fn spent(resource: &str) -> budgetgate::Decimal {
    ENGINE
        .status_with(
            &Ledger::new("rl", resource, "p"),
            &Budget::lifetime(dec!(10)).unwrap(),
        )
        .unwrap()
        .committed()
}

#[guard(ledger = ("rl", "rate-first", "p"), cost = "1", max_spend = "10", engine = &*ENGINE)]
#[rate_limit(gate = ("rl", "rate-first", "p"), max_calls = 1, window = "1h", engine = &*ENGINE)]
fn rate_first() -> Result<(), ToolError> {
    Ok(())
}

#[test]
fn rate_first_a_rate_limited_call_never_touches_the_budget() {
    rate_first().unwrap();
    assert_eq!(spent("rate-first"), dec!(1));
    assert!(matches!(rate_first(), Err(ToolError::Rate(_))));
    assert!(matches!(rate_first(), Err(ToolError::Rate(_))));
    assert_eq!(
        spent("rate-first"),
        dec!(1),
        "rate-limited calls were not charged"
    );
}

static INNER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[rate_limit(gate = ("rl", "budget-first", "p"), max_calls = 3, window = "1h", engine = &*ENGINE)]
#[guard_bounded(ledger = ("rl", "budget-first", "p"), estimate = "4", actual = |_| dec!(4),
                max_spend = "10", engine = &*ENGINE)]
fn budget_first() -> Result<(), ToolError> {
    INNER_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[test]
fn budget_first_a_budget_block_never_consumes_a_call() {
    let policy = Policy::new().max_calls(3, Duration::from_secs(3600));
    budget_first().unwrap(); // 4 spent, 1 call
    budget_first().unwrap(); // 8 spent, 2 calls
    assert!(
        matches!(budget_first(), Err(ToolError::Budget(_))),
        "8 + 4 > 10"
    );
    assert!(matches!(budget_first(), Err(ToolError::Budget(_))));
    assert_eq!(spent("budget-first"), dec!(8));
    // The budget blocks consumed no call: one of the three is still free.
    let d = ENGINE.rate_check(&Gate::new("rl", "budget-first", "p"), &policy);
    assert!(d.is_allowed(), "{}", d.message());
    assert_eq!(d.calls_in_window(), 3);
    assert_eq!(INNER_RUNS.load(Ordering::SeqCst), 2);
}

#[rate_limit(gate = ("rl", "released", "p"), max_calls = 1, window = "1h", engine = &*ENGINE)]
#[guard_bounded(ledger = ("rl", "released", "p"), estimate = "1", actual = |_| dec!(1),
                max_spend = "10", engine = &*ENGINE)]
fn released_when_rate_limited() -> Result<(), ToolError> {
    Ok(())
}

#[test]
fn budget_first_a_rate_limited_call_releases_its_reservation() {
    released_when_rate_limited().unwrap();
    assert!(matches!(
        released_when_rate_limited(),
        Err(ToolError::Rate(_))
    ));
    let status = ENGINE
        .status_with(
            &Ledger::new("rl", "released", "p"),
            &Budget::lifetime(dec!(10)).unwrap(),
        )
        .unwrap();
    assert_eq!((status.committed(), status.reserved()), (dec!(1), dec!(0)));
}

// ----- concurrency ---------------------------------------------------------------------

static HAMMERED: AtomicUsize = AtomicUsize::new(0);

#[rate_limit(gate = ("rl", "hammer", "p"), max_calls = 50, window = "1h", engine = &*ENGINE)]
fn hammered() -> Result<(), ToolError> {
    HAMMERED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[test]
fn threads_never_exceed_max_calls() {
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..25 {
                    let _ = hammered();
                }
            });
        }
    });
    assert_eq!(HAMMERED.load(Ordering::SeqCst), 50);
}

// ----- gates from expressions, integer parts -----------------------------------------------

fn agent_gate(id: u64) -> Gate {
    Gate::new("expr", "fetch", format!("agent:{id}"))
}

#[rate_limit(gate = agent_gate(id), max_calls = 1, window = "1h", engine = &*ENGINE)]
fn gated_by_expression(id: u64) -> Result<u64, ToolError> {
    Ok(id)
}

#[rate_limit(gate = ("expr", "int", id), max_calls = 1, window = "1h", engine = &*ENGINE)]
fn gated_by_integer(id: u32) -> Result<u32, ToolError> {
    Ok(id)
}

#[test]
fn gates_from_expressions_and_integer_parts() {
    assert_eq!(gated_by_expression(1).unwrap(), 1);
    assert!(matches!(gated_by_expression(1), Err(ToolError::Rate(_))));
    assert_eq!(gated_by_expression(2).unwrap(), 2, "another gate");
    assert_eq!(gated_by_integer(5).unwrap(), 5);
    match gated_by_integer(5) {
        Err(ToolError::Rate(e)) => assert_eq!(e.decision().gate().principal(), "5"),
        other => panic!("expected a rate limit, got {other:?}"),
    }
}
