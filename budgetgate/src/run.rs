//! Run budgets: a task-local scope — one agent run, one conversation —
//! whose ledger joins every guarded call made inside it.
//!
//! Inside [`scope`] (or [`sync_scope`]), every [`Engine`] check and
//! reservation — and so every `#[guard]`, `#[guard_bounded]` and
//! `#[guard_result]` call — is charged to its own ledgers **and** to the
//! run's, all or nothing, in one atomic step (a hierarchy charge,
//! [`Engine::check_all`]): the call that would take the run past its cap is
//! blocked *before it runs*, and a blocked call charges none of its
//! ledgers. The scope follows the run across `.await`s, and into tasks
//! started with [`spawn`] (a plain `tokio::spawn` does not inherit it: a
//! task-local belongs to its task). Inside a run a call's decision is the
//! hierarchy's — the blocking ledger's, or when allowed the one with the
//! least room left — so `decision.ledger()` (and a reservation's
//! `ledger()`) may be the run's; [`Reservation::ledgers`](crate::Reservation::ledgers)
//! lists them all. Scopes nest: a sub-agent's
//! [`scope`] inside a run charges the sub-agent's ledger and every
//! enclosing run's.
//!
//! ```
//! use budgetgate::{dec, Budget, Engine, Ledger};
//! use budgetgate::run::{self, Run};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = Engine::in_memory();
//! let search = Ledger::new("tools", "search", "user:1");
//! engine.set_budget(&search, Budget::lifetime(dec!(100))?);
//!
//! let run = Run::new(Ledger::new("agent", "run", "run-42"), Budget::lifetime(dec!(0.25))?);
//! let blocked = run::scope(run, async {
//!     assert!(engine.check_async(&search, dec!(0.10)).await.is_allowed());
//!     let sub = run::spawn({
//!         let engine = engine.clone();
//!         let search = search.clone();
//!         async move { engine.check_async(&search, dec!(0.10)).await.is_allowed() }
//!     });
//!     assert!(sub.await.unwrap()); // the sub-task charged the run too
//!     engine.check_async(&search, dec!(0.10)).await // 0.30 > 0.25
//! }).await;
//! assert!(blocked.is_blocked());
//! assert_eq!(blocked.ledger().principal(), "run-42"); // the run's cap blocked it
//! assert_eq!(engine.status(&search)?.committed(), dec!(0.20)); // not charged either
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::sync::Arc;

use crate::{Budget, Engine, Ledger, LedgerStatus, StatusError};

/// One run's ledger and the budget it is charged under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    ledger: Ledger,
    budget: Option<Budget>,
}

impl Run {
    /// A run charged to `ledger` under `budget` (which wins over a budget
    /// registered on the engine for that ledger).
    pub fn new(ledger: Ledger, budget: Budget) -> Self {
        Run {
            ledger,
            budget: Some(budget),
        }
    }

    /// A run charged to `ledger` under the budget the engine has for it
    /// (registered, pattern, or the default policy; none: the calls are
    /// blocked with [`BlockReason::NoBudget`](crate::BlockReason::NoBudget)).
    pub fn registered(ledger: Ledger) -> Self {
        Run {
            ledger,
            budget: None,
        }
    }

    /// The run's ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The run's own budget, if it carries one.
    pub fn budget(&self) -> Option<&Budget> {
        self.budget.as_ref()
    }

    /// What the run has spent on `engine`, under its own budget (or the
    /// one the engine has for its ledger).
    pub fn status(&self, engine: &Engine) -> Result<LedgerStatus, StatusError> {
        match &self.budget {
            Some(budget) => engine.status_with(&self.ledger, budget),
            None => engine.status(&self.ledger),
        }
    }
}

/// The runs in force: the outermost first.
pub(crate) type Runs = Arc<[Run]>;

tokio::task_local! {
    static RUNS: Runs;
}

/// The runs in force in this task (the outermost first), if any.
pub(crate) fn active() -> Option<Runs> {
    RUNS.try_with(Arc::clone).ok()
}

/// The ledgers of the runs in force here, the outermost first (empty
/// outside any scope).
pub fn current() -> Vec<Ledger> {
    active()
        .map(|runs| runs.iter().map(|r| r.ledger.clone()).collect())
        .unwrap_or_default()
}

/// The runs in force with `run` added innermost (a run already in force is
/// not added twice).
fn nested(run: Run) -> Runs {
    let mut runs: Vec<Run> = active().map(|r| r.to_vec()).unwrap_or_default();
    if !runs.iter().any(|r| r.ledger == run.ledger) {
        runs.push(run);
    }
    runs.into()
}

/// Runs `future` inside `run`: every guarded call it makes (across
/// `.await`s, and in tasks it starts with [`spawn`]) is charged to the
/// run's ledger too — and to the ledgers of the scopes around this one.
pub async fn scope<F: Future>(run: Run, future: F) -> F::Output {
    RUNS.scope(nested(run), future).await
}

/// [`scope`] for synchronous code (a thread, a blocking section): the
/// guarded calls `f` makes on this thread are charged to the run.
pub fn sync_scope<R>(run: Run, f: impl FnOnce() -> R) -> R {
    RUNS.sync_scope(nested(run), f)
}

/// `tokio::spawn`, keeping the runs in force here: the task's guarded calls
/// are charged to them as well. Outside any scope it is `tokio::spawn`.
/// Must be called from a Tokio runtime (as `tokio::spawn`).
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match active() {
        Some(runs) => tokio::spawn(RUNS.scope(runs, future)),
        None => tokio::spawn(future),
    }
}

/// `std::thread::spawn`, keeping the runs in force here for the thread's
/// synchronous guarded calls.
pub fn spawn_thread<F, R>(f: F) -> std::thread::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match active() {
        Some(runs) => std::thread::spawn(move || RUNS.sync_scope(runs, f)),
        None => std::thread::spawn(f),
    }
}
