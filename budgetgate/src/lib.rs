//! # budgetgate
//!
//! Stop AI agents and services from spending money they were not given.
//!
//! Every call that costs money — an agent's tool, an LLM request — is
//! admitted against a [`Budget`] *before* it runs:
//!
//! - **fixed cost** ([`Engine::check`]): the cost is checked and recorded in
//!   one atomic step;
//! - **bounded cost** ([`Engine::reserve`]): the worst case is reserved, the
//!   call runs, and [`Reservation::commit`] replaces the hold by the true cost.
//!   Dropping the reservation (an error, a panic, a cancelled future) releases it.
//!
//! ```
//! use budgetgate::{Budget, Engine, Ledger};
//! use budgetgate::dec;
//! use std::time::Duration;
//!
//! let engine = Engine::in_memory();
//! let ledger = Ledger::new("openai", "gpt-4o", "user:42");
//! engine.set_budget(&ledger, Budget::rolling(dec!(1.00), Duration::from_secs(3600))?);
//!
//! let reservation = engine.reserve(&ledger, dec!(0.50))?;   // worst case
//! // ... call the model ...
//! reservation.commit(dec!(0.12))?;                         // what it really cost
//!
//! let status = engine.status(&ledger)?;
//! assert_eq!(status.remaining(), dec!(0.88));
//! assert!(engine.check(&ledger, dec!(0.89)).is_blocked()); // 0.12 + 0.89 > 1.00
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The attributes
//!
//! Put the budget on the function. Ledger parts and amounts are expressions
//! evaluated before the body, with the arguments (and `self`) in scope; string
//! literal amounts and windows are checked at compile time.
//!
//! **`#[guard]`** — fixed cost, hard mode. The function returns
//! `Result<T, E>` with `E: From<BudgetExceeded>`; a block returns `Err` and the
//! body does not run. The cost is charged when the call is admitted.
//!
//! ```
//! use budgetgate::{guard, BudgetExceeded};
//!
//! #[derive(Debug)]
//! enum ToolError { Budget(BudgetExceeded) }
//! impl From<BudgetExceeded> for ToolError {
//!     fn from(e: BudgetExceeded) -> Self { ToolError::Budget(e) }
//! }
//!
//! #[guard(ledger = ("search", "web", format!("user:{user}")), cost = "0.01", max_spend = "0.02", window = "1h")]
//! fn web_search(user: u64, query: &str) -> Result<String, ToolError> {
//!     Ok(format!("results for {query}"))
//! }
//!
//! assert!(web_search(7, "a").is_ok());
//! assert!(web_search(7, "b").is_ok());
//! assert!(matches!(web_search(7, "c"), Err(ToolError::Budget(_)))); // the body did not run
//! assert!(web_search(8, "c").is_ok()); // another principal, another ledger
//! ```
//!
//! **`#[guard_bounded]`** — bounded cost, hard mode: `estimate` is reserved
//! before the body; `actual` receives `&T` (the `Ok` value) and its result is
//! committed. On `Err`, panic or cancellation the reservation is released,
//! unless `on_error = estimate` or `on_error = |e: &E| cost` says what a
//! failure costs.
//!
//! ```
//! use budgetgate::{guard_bounded, BudgetExceeded, Decimal};
//! use budgetgate::dec;
//!
//! struct Completion { tokens: u64 }
//! #[derive(Debug)]
//! struct Blocked(BudgetExceeded);
//! impl From<BudgetExceeded> for Blocked {
//!     fn from(e: BudgetExceeded) -> Self { Blocked(e) }
//! }
//!
//! #[guard_bounded(
//!     ledger = ("openai", "gpt-4o", format!("user:{user}")),
//!     estimate = "0.50",
//!     actual = |c: &Completion| Decimal::from(c.tokens) * dec!(0.00001),
//!     max_spend = "1.00",
//! )]
//! async fn ask(user: u64, prompt: &str) -> Result<Completion, Blocked> {
//!     Ok(Completion { tokens: 2_000 }) // 0.02 for real
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! for _ in 0..10 {
//!     ask(1, "hi").await.unwrap(); // each reserves 0.50, commits 0.02
//! }
//! let ledger = budgetgate::Ledger::new("openai", "gpt-4o", "user:1");
//! let budget = budgetgate::Budget::lifetime(dec!(1.00)).unwrap();
//! assert_eq!(budgetgate::global().status_with(&ledger, &budget).unwrap().committed(), dec!(0.2));
//! # });
//! ```
//!
//! **`#[guard_result]`** — soft mode, fixed (`cost`) or bounded (`estimate` +
//! `actual`): the return type `R` becomes [`Guarded<R>`], which carries the
//! decision and the value unless blocked.
//!
//! ```
//! use budgetgate::guard_result;
//!
//! #[guard_result(ledger = ("embed", "small", "team:a"), cost = "0.5", max_spend = "1")]
//! fn embed(text: &str) -> Vec<f32> {
//!     vec![text.len() as f32]
//! }
//!
//! assert_eq!(embed("ab").into_value(), Some(vec![2.0]));
//! assert!(embed("cd").is_allowed());
//! let blocked = embed("ef");
//! assert!(!blocked.is_allowed());
//! println!("{}", blocked.decision().message());
//! ```
//!
//! **Keys** (each attribute's own documentation lists the keys it takes):
//! `ledger = (namespace, resource, principal)` — each part a string or an
//! integer (`ledger = ("llm", "gpt-4o", user_id)`; for other types
//! `format!(..)`) — or `ledger = EXPR` of type `Ledger` / `&Ledger`;
//! `ledgers = [..]` (tuples or `Ledger` expressions) or `ledgers = EXPR`, any
//! `IntoIterator<Item = Ledger>` such as a `Vec<Ledger>` (each distinct ledger
//! charged once); `cost` / `estimate`
//! (a string or integer literal, or any expression of type `Decimal` or
//! `Result<Decimal, E>` — an `Err` blocks the call with reason
//! `InvalidAmount`); `actual` (a closure over `&T` returning either; an `Err`
//! commits the estimate and logs the error, a panic commits the estimate and
//! is resumed);
//! `on_error` (`release` — the default —, `estimate`, or a closure over `&E`);
//! `stream = METER` in place of `actual` on `#[guard_bounded]`, for a
//! function returning `Result<impl Stream<Item = …>, E>`: the stream holds
//! the reservation for its life (see [`stream`](mod@stream));
//! `cache = EXPR, cache_key = EXPR` on an async `#[guard_bounded]` (feature
//! `cache`): a hit in the response cache returns `Ok(cached value)` without
//! running the body or charging anything, a miss is the guarded call and
//! its `Ok` value is cached (see `budgetgate::cache`);
//! `max_spend` and `window` (`"30s"`, `"15m"`, `"1h"`, `"7d"`, `"unbounded"`)
//! for a call-site budget, which wins over a budget registered on the engine
//! (`max_spend` alone is a lifetime cap); `engine = EXPR` (an `Engine`,
//! `&Engine` or `Arc<Engine>`; default [`global()`]); `crate = PATH` for a
//! renamed dependency.
//!
//! **Shapes**: sync and `async fn`, free functions and methods (`&self`,
//! `&mut self`, `self`, `self: Arc<Self>`), generics, lifetimes, `impl Trait`
//! arguments and `where` clauses; docs, attributes and visibility are kept.
//! For an `async fn` the ledger and amount are evaluated and the reservation
//! made when the future is first polled; a future dropped before that reserves
//! nothing. In hard mode the return type must be a `Result` *by type*: an
//! alias (`io::Result<T>`, `type ToolResult<T> = Result<T, ToolError>`, an
//! `anyhow`-style `Result<T>`) works, and anything else is a compile error at
//! the return type that suggests the soft form. In soft mode
//! (`#[guard_result]`), where any type is allowed, a return type is treated as
//! a `Result` (for `actual` and `on_error`) when it is spelled `…Result<..>`.
//!
//! **Composition**: attributes expand from the outside in, so the one
//! written *nearest the function* wraps the others and runs first at run
//! time. `#[guard]` above `#[tracing::instrument]` puts the budget decision
//! inside the span; `#[tracing::instrument]` above `#[guard]` decides before
//! the span is entered, so a blocked call opens no span. With `#[rate_limit]`
//! nearest the function a rate-limited call never touches the budget; with
//! `#[guard_bounded]` nearest, a budget block never consumes a call (and a
//! rate-limited call releases its reservation). Inside an `#[async_trait]`
//! impl, put the guard on the method as usual (soft mode cannot change a
//! trait method's return type). With `engine = &self.engine`, a bounded
//! guard holds that borrow for the call: on `&mut self` methods use an owned
//! handle (`engine = self.engine.clone()`).
//!
//! **`#[rate_limit]`** — call-rate gates beside the spend guards (see
//! [`rate`]): `max_calls` per `window`, a `cooldown`, and/or a token bucket
//! (`capacity`, `refill = "5/s"`). Hard mode returns `Err(RateLimited.into())`;
//! `#[rate_limit_result]` returns [`Guarded<T, RateDecision>`](Guarded).
//!
//! ```
//! use budgetgate::{guard, rate_limit, BudgetExceeded, RateLimited};
//!
//! #[derive(Debug)]
//! enum ToolError { Budget(BudgetExceeded), Rate(RateLimited) }
//! impl From<BudgetExceeded> for ToolError { fn from(e: BudgetExceeded) -> Self { ToolError::Budget(e) } }
//! impl From<RateLimited> for ToolError { fn from(e: RateLimited) -> Self { ToolError::Rate(e) } }
//!
//! #[guard(ledger = ("tools", "fetch", "agent:1"), cost = "0.001", max_spend = "1")]
//! #[rate_limit(gate = ("tools", "fetch", "agent:1"), capacity = 2, refill = "1/s")] // checked first
//! fn fetch(url: &str) -> Result<usize, ToolError> {
//!     Ok(url.len())
//! }
//!
//! assert!(fetch("a").is_ok());
//! assert!(fetch("b").is_ok());
//! assert!(matches!(fetch("c"), Err(ToolError::Rate(_)))); // not charged
//! ```
//!
//! ## Guarantees
//!
//! - **Exact**: amounts are [`rust_decimal::Decimal`] in the API and integer
//!   nano-units (10⁻⁹) in every store ([`amount`]). An amount finer than 10⁻⁹
//!   or negative is refused with its value, never rounded.
//! - **Atomic**: check-and-record and check-and-reserve are one atomic step
//!   per ledger, so concurrent callers can never push committed + reserved
//!   spend past `max_spend` (only an actual cost above its estimate can, and
//!   that overrun is recorded in full and reported).
//! - **Deterministic**: `spent` is committed spend plus open
//!   reservations within the window; `spent + requested > max_spend` blocks,
//!   equality allows.
//! - **Fail-closed** by default: a store that errors blocks with reason
//!   [`BlockReason::StoreError`]; [`StoreErrorMode::FailOpen`] allows instead.
//! - **Never drops spent money**: a commit after the reservation expired is
//!   recorded at the commit's time and reported as late; a commit the store
//!   does not confirm within the commit deadline is returned as
//!   [`CommitError::Unknown`] and retried in the background by id (never
//!   recorded twice) until it lands ([`Event::Committed`]) or is given up
//!   ([`Event::UnrecordedSpend`], logged at error level). A reservation
//!   whose outcome is unknown (a timeout, a dropped future) is cancelled by
//!   id in the background, so its headroom comes back when the store
//!   answers, not after its TTL.
//! - **Observable**: every decision, commit and release goes to
//!   [`Listener`]s ([`Event`]) and to `tracing`.
//! - **Distinct ledgers**: a ledger listed twice in one hierarchy is charged
//!   once.
//!
//! ## Choices made where it matters
//!
//! - A ledger with no budget is **denied** ([`BlockReason::NoBudget`]) unless
//!   the engine has a [`DefaultPolicy::Budget`]. Which budget applies: the
//!   ledger's own, else the most specific principal pattern
//!   ([`Engine::set_budget_matching`]), else the default policy.
//! - Every [`Engine::builder()`] takes what it was not told — store, default
//!   policy, reservation TTL — from the environment (`BUDGETGATE_REDIS_URL`,
//!   see [`global`](mod@global)); [`Engine::in_memory`] reads nothing.
//! - Soft-limit thresholds ([`Budget::warn_at`]) are reported once per
//!   window each.
//! - A panicking or failing `actual` closure commits the estimate: the body
//!   ran, so the money was spent.
//! - Reservations are held for [`DEFAULT_RESERVATION_TTL`] (10 minutes) unless
//!   configured otherwise; the TTL applies to unbounded windows too.
//! - An invalid *actual* cost commits the estimate and returns
//!   [`CommitError::InvalidActual`].
//! - A ledger keeps one running total per window it is used with; a window
//!   first used on a ledger counts spend from that moment on.
//!
//! ## Modules
//!
//! [`ledger`], [`budget`], [`caps`], [`decision`], [`engine`],
//! [`reservation`], [`rate`] (call-rate gates), [`pause`] (the kill switch),
//! [`pricing`] (token usage → exact costs and safe estimates), [`event`],
//! [`store`] (with [`store::memory`] and, with the default `redis` feature,
//! `store::redis`), [`settler`] (writes whose outcome was unknown, settled
//! by id in the background), [`attribute`] (what the attributes require of
//! a guarded function), [`clock`], [`amount`], [`global`](mod@global) (the
//! default engine and the environment).
//!
//! ## Feature flags
//!
//! - `redis` (default): the Redis store, and `BUDGETGATE_REDIS_URL` support.
//! - `redis-tls`: `rediss://` URLs (rustls).
//! - `stream` (default): guarded streams ([`stream`](mod@stream)): a
//!   reservation held for a `Stream`'s life, committed from what it consumed.
//! - `run` (default): run budgets ([`run`](mod@run)): a task-local scope
//!   whose ledger joins every guarded call inside it.
//! - `cache`: an opt-in response cache for guarded calls
//!   (`budgetgate::cache`), in process or shared through the store (Redis):
//!   a hit runs nothing and charges nothing.
//! - `tower`: a budget layer for tower HTTP services (`budgetgate::tower`).
//! - `metrics`: `budgetgate::metrics::MetricsListener`, counters through the `metrics` facade.
//! - `async-openai`: `Usage::try_from` async-openai's usage structs (its types only).
//! - `openai`: async-openai chat completions under a budget
//!   (`budgetgate::openai`): the estimate from the request (prompt tokens
//!   counted with `tiktoken-rs`), the actual from the usage, streams, and an
//!   opt-in fit-to-remaining policy. Types only: bring your own client.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Lets the crate's own tests use `budgetgate::…` paths, as users do.
extern crate self as budgetgate;

pub mod amount;
pub mod attribute;
pub mod budget;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache;
pub mod caps;
pub mod clock;
pub mod decision;
pub mod engine;
mod env;
pub mod event;
pub mod global;
pub mod ledger;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
pub mod openai;
pub mod pause;
pub mod pricing;
pub mod rate;
mod registry;
pub mod reservation;
#[cfg(feature = "run")]
#[cfg_attr(docsrs, doc(cfg(feature = "run")))]
pub mod run;
pub mod settler;
pub mod shared;
pub mod store;
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub mod stream;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
pub mod window;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use budgetgate_macros::{guard, guard_bounded, guard_result, rate_limit, rate_limit_result};

pub use budget::{Budget, BudgetError, Limit, StoreErrorMode, Window, WindowParseError};
pub use caps::Caps;
pub use decision::{BlockReason, Blocking, BudgetExceeded, Decision, Guarded, Status};
pub use engine::{
    CapStatus, DefaultPolicy, Engine, EngineBuilder, LedgerStatus, StatusError,
    DEFAULT_RESERVATION_TTL,
};
pub use event::{Event, Listener};
pub use global::{global, install, ConfigError};
pub use ledger::Ledger;
pub use pause::PauseScope;
pub use rate::{Gate, Policy, RateDecision, RateLimited};
pub use reservation::{Commit, CommitError, DetachedCommit, Release, Reservation};
pub use rust_decimal::Decimal;

/// A [`Decimal`] literal, read exactly from its source text at compile time
/// (never through a float): `dec!(0.25)`, `dec!(-3)`, `dec!("1.50")`. Needs
/// no other dependency than `budgetgate`, and works in `const` items.
///
/// ```
/// use budgetgate::{dec, Decimal};
/// const CAP: Decimal = dec!(10.50);
/// assert_eq!(CAP + dec!(0.25), Decimal::new(1075, 2));
/// assert_eq!(dec!(-1.5).to_string(), "-1.5");
/// ```
#[macro_export]
macro_rules! dec {
    ($($number:tt)+) => {
        $crate::__private::decimal_from_parts($crate::__private::dec_parts!($($number)+))
    };
}
pub use store::{MemoryStore, ReservationId, Store, StoreError};
