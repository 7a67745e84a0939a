//! Commits cut short still land. A guarded async call whose future is
//! dropped after its body ran — while the commit of its actual cost is in
//! flight — still records that cost: the body's money was spent. The
//! commit is handed to the engine's settler by id (recorded once, whatever
//! the store had seen). And a hierarchy's commit still unconfirmed at its
//! deadline lands on every ledger once the store answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use budgetgate::{guard_bounded, Budget, BudgetExceeded, Decimal, Engine, Ledger};
use rust_decimal_macros::dec;
use testkit::stalling::StallingSettles;

#[guard_bounded(ledger = ("cancel", "llm", user), estimate = "0.5", actual = |tokens: &u64| Decimal::new(*tokens as i64, 3), max_spend = "1", engine = engine)]
async fn call(engine: &Engine, user: &str, tokens: u64) -> Result<u64, BudgetExceeded> {
    Ok(tokens)
}

#[guard_bounded(ledger = ("cancel", "llm", user), estimate = "0.5", actual = |tokens: &u64| Decimal::new(*tokens as i64, 3),
                on_error = estimate, max_spend = "1", engine = engine)]
async fn failing(engine: &Engine, user: &str, tokens: u64) -> Result<u64, Failed> {
    let _ = tokens;
    Err(Failed::Http)
}

#[derive(Debug)]
enum Failed {
    Http,
    #[allow(dead_code)] // for Debug
    Budget(BudgetExceeded),
}

impl From<BudgetExceeded> for Failed {
    fn from(e: BudgetExceeded) -> Self {
        Failed::Budget(e)
    }
}

fn engine() -> (Engine, Arc<StallingSettles>) {
    let store = Arc::new(StallingSettles::default());
    let engine = Engine::builder().shared_store(store.clone()).build();
    (engine, store)
}

/// Polls `fut` once: the body runs and the commit is sent to a store that
/// does not answer, so the call is pending in its commit.
fn poll_once<F: Future>(fut: &mut Pin<Box<F>>) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(
        fut.as_mut().poll(&mut cx).is_pending(),
        "the commit is in flight"
    );
}

#[test]
fn a_call_dropped_while_its_commit_is_in_flight_still_commits() {
    let (engine, store) = engine();
    store.stall.store(true, Ordering::SeqCst);
    let ledger = Ledger::new("cancel", "llm", "u1");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
    let mut fut = Box::pin(call(&engine, "u1", 200));
    poll_once(&mut fut);
    assert_eq!(
        engine.status(&ledger).unwrap().reserved(),
        dec!(0.5),
        "held, not settled"
    );
    drop(fut);
    assert!(
        engine.wait_settled(Duration::from_secs(10)),
        "the settler committed"
    );
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.2), dec!(0))
    );
}

/// The same when the commit had landed and only its answer was lost: the
/// settler's commit by the same id records nothing twice. On Redis, which
/// keeps settled ids (the memory store answers at once, so its replies are
/// never lost, and it keeps none).
#[test]
fn a_call_dropped_after_its_commit_landed_is_counted_once() {
    let server = testkit::redis_server::RedisServer::start();
    let redis = budgetgate::store::redis::RedisStore::connect(&server.url()).unwrap();
    let store = Arc::new(StallingSettles::over(Arc::new(redis)));
    let engine = Engine::builder().shared_store(store.clone()).build();
    store.stall.store(true, Ordering::SeqCst);
    store.land_first.store(true, Ordering::SeqCst);
    let ledger = Ledger::new("cancel", "llm", "u3");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
    let mut fut = Box::pin(call(&engine, "u3", 200));
    poll_once(&mut fut);
    assert_eq!(
        engine.status(&ledger).unwrap().committed(),
        dec!(0.2),
        "landed, unanswered"
    );
    drop(fut);
    assert!(
        engine.wait_settled(Duration::from_secs(10)),
        "the settler settled"
    );
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.2), dec!(0)),
        "counted once"
    );
}

/// The same for a failed body charged its estimate (`on_error = estimate`).
#[test]
fn a_failed_call_dropped_while_its_commit_is_in_flight_still_commits() {
    let (engine, store) = engine();
    let ledger = Ledger::new("cancel", "llm", "u2");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
    store.stall.store(true, Ordering::SeqCst);
    let mut fut = Box::pin(failing(&engine, "u2", 1));
    poll_once(&mut fut);
    drop(fut);
    assert!(
        engine.wait_settled(Duration::from_secs(10)),
        "the settler committed"
    );
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.5), dec!(0))
    );
}

/// A hierarchy's commit whose first ledger is still unconfirmed at the
/// commit deadline (`CommitError::Unknown`) goes on in the background on
/// *every* ledger, sync and async: once the store answers again, each
/// ledger holds the actual and nothing stays reserved.
#[test]
fn an_unknown_hierarchy_commit_lands_on_every_ledger() {
    use budgetgate::store::{MemoryStore, Store};
    use budgetgate::CommitError;
    use testkit::faulty::Faulty;
    let faulty = Faulty::new(Arc::new(MemoryStore::new()));
    let store: Arc<dyn Store> = Arc::new(faulty.clone());
    let engine = Engine::builder()
        .shared_store(store)
        .commit_deadline(Duration::from_millis(100))
        .build();
    let user = Ledger::new("cancel", "llm", "user");
    let team = Ledger::new("cancel", "llm", "team");
    for l in [&user, &team] {
        engine.set_budget(l, Budget::lifetime(dec!(10)).unwrap());
    }
    let both = [user.clone(), team.clone()];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sync = engine.reserve_all(&both, dec!(2)).unwrap();
    let asynchronous = engine.reserve_all(&both, dec!(2)).unwrap();
    faulty.set_failing(true);
    let unknown = |e: CommitError| assert!(matches!(e, CommitError::Unknown { .. }), "{e}");
    unknown(sync.commit(dec!(1)).unwrap_err());
    unknown(
        rt.block_on(asynchronous.commit_async(dec!(0.5)))
            .unwrap_err(),
    );
    faulty.set_failing(false);
    assert!(
        engine.wait_settled(Duration::from_secs(10)),
        "the settler committed"
    );
    for l in &both {
        let status = engine.status(l).unwrap();
        assert_eq!(
            (status.committed(), status.reserved()),
            (dec!(1.5), dec!(0)),
            "{l}"
        );
    }
}
