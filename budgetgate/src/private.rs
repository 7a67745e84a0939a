//! The runtime API behind the attributes. Public so generated code can call
//! it; not part of the stable API (`#[doc(hidden)]`), do not call it directly.
//!
//! Each function is one step of a guarded call, so the expansion is a short
//! sequence of calls and all logic stays here, where it is unit-tested.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::budget::{Budget, StoreErrorMode, Window};
use crate::decision::{BudgetExceeded, Decision, Guarded};
use crate::engine::Engine;
use crate::ledger::Ledger;
use crate::rate::{Bucket, Gate, Policy, RateDecision, RateLimited};
use crate::reservation::Reservation;

pub use crate::global::global;

/// Anything an `engine = …` expression may name.
pub trait AsEngine {
    /// The engine.
    fn as_engine(&self) -> &Engine;
}

impl AsEngine for Engine {
    fn as_engine(&self) -> &Engine {
        self
    }
}

impl AsEngine for Arc<Engine> {
    fn as_engine(&self) -> &Engine {
        self
    }
}

impl<T: AsEngine + ?Sized> AsEngine for &T {
    fn as_engine(&self) -> &Engine {
        (**self).as_engine()
    }
}

impl<T: AsEngine> AsEngine for std::sync::LazyLock<T> {
    fn as_engine(&self) -> &Engine {
        (**self).as_engine()
    }
}

/// The engine an attribute uses.
#[inline]
pub fn engine<E: AsEngine + ?Sized>(engine: &E) -> &Engine {
    engine.as_engine()
}

/// Builds the ledger from the attribute's three expressions.
#[inline]
pub fn ledger(
    namespace: impl Into<String>,
    resource: impl Into<String>,
    principal: impl Into<String>,
) -> Ledger {
    Ledger::new(namespace, resource, principal)
}

/// A decimal from a literal the macro validated (≤ 9 places, ≥ 0, in range).
pub const fn decimal_from_parts(parts: (u32, u32, u32, bool, u32)) -> Decimal {
    Decimal::from_parts(parts.0, parts.1, parts.2, parts.3, parts.4)
}

pub use budgetgate_macros::__dec_parts as dec_parts;

/// A decimal from its parts (`const`).
pub const fn decimal(lo: u32, mid: u32, hi: u32, scale: u32) -> Decimal {
    Decimal::from_parts(lo, mid, hi, false, scale)
}

/// A call-site budget from literals the macro validated; `max_nanos` is the
/// same amount in nano-units, computed at compile time.
pub const fn budget(max_spend: Decimal, max_nanos: i128, window: Window) -> Budget {
    // The decimal is what the user wrote; the budget keeps the nano-units.
    let _ = max_spend;
    Budget::from_validated(max_nanos, window, StoreErrorMode::FailClosed)
}

/// A rolling window of `millis` (validated > 0 by the macro).
pub const fn rolling_millis(millis: u64) -> Window {
    Window::Rolling(Duration::from_millis(millis))
}

// ----- amounts -------------------------------------------------------------------

/// What an amount expression may produce: a `Decimal`, or a `Result` whose
/// error explains why there is none (an unknown model's price). An error
/// blocks the call (reason `InvalidAmount`) — it is never read as zero.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an amount",
    label = "expected a `Decimal` or a `Result<Decimal, E>`",
    note = "write a literal amount as a string (\"0.05\"), or convert with `Decimal::from(..)` / `Decimal::new(..)`"
)]
pub trait IntoAmount {
    /// The amount, or why there is none.
    fn into_amount(self) -> Result<Decimal, String>;
}

impl IntoAmount for Decimal {
    fn into_amount(self) -> Result<Decimal, String> {
        Ok(self)
    }
}

impl<E: std::fmt::Display> IntoAmount for Result<Decimal, E> {
    fn into_amount(self) -> Result<Decimal, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Evaluates an amount expression.
#[inline]
pub fn amount(amount: impl IntoAmount) -> Result<Decimal, String> {
    amount.into_amount()
}

// ----- hard mode -------------------------------------------------------------

/// The return type of a hard-mode guarded function: a `Result` whose error
/// can carry the blocking error `B` ([`BudgetExceeded`] or [`RateLimited`]).
pub trait HardReturn<B> {
    /// What the function returns when the call is blocked.
    fn blocked(blocked: B) -> Self;
}

impl<T, E: From<B>, B> HardReturn<B> for Result<T, E> {
    fn blocked(blocked: B) -> Self {
        Err(blocked.into())
    }
}

/// `#[guard]`: check-and-record the cost.
#[inline]
pub fn check(
    engine: &Engine,
    ledger: &Ledger,
    budget: Option<&Budget>,
    cost: Result<Decimal, String>,
) -> Result<Decision, BudgetExceeded> {
    let cost = cost.map_err(|detail| engine.refuse_amount(ledger, budget, detail))?;
    engine.check_with(ledger, budget, cost).into_result()
}

/// Async [`check`].
pub async fn check_async(
    engine: &Engine,
    ledger: &Ledger,
    budget: Option<&Budget>,
    cost: Result<Decimal, String>,
) -> Result<Decision, BudgetExceeded> {
    let cost = cost.map_err(|detail| engine.refuse_amount(ledger, budget, detail))?;
    engine
        .check_with_async(ledger, budget, cost)
        .await
        .into_result()
}

/// `#[guard_bounded]`: reserve the estimate.
#[inline]
pub fn reserve<'e>(
    engine: &'e Engine,
    ledger: &Ledger,
    budget: Option<&Budget>,
    estimate: Result<Decimal, String>,
) -> Result<Reservation<'e>, BudgetExceeded> {
    let estimate = estimate.map_err(|detail| engine.refuse_amount(ledger, budget, detail))?;
    engine.reserve_with(ledger, budget, estimate)
}

/// Async [`reserve`].
pub async fn reserve_async<'e>(
    engine: &'e Engine,
    ledger: &Ledger,
    budget: Option<&Budget>,
    estimate: Result<Decimal, String>,
) -> Result<Reservation<'e>, BudgetExceeded> {
    let estimate = estimate.map_err(|detail| engine.refuse_amount(ledger, budget, detail))?;
    engine.reserve_with_async(ledger, budget, estimate).await
}

/// The ledger a hierarchy's refusal is reported on.
fn first(ledgers: &[Ledger]) -> &Ledger {
    static NONE: std::sync::LazyLock<Ledger> = std::sync::LazyLock::new(|| Ledger::new("", "", ""));
    ledgers.first().unwrap_or(&NONE)
}

/// `#[guard(ledgers = [..])]`: check-and-record on every ledger, all or nothing.
pub fn check_all(
    engine: &Engine,
    ledgers: &[Ledger],
    cost: Result<Decimal, String>,
) -> Result<Decision, BudgetExceeded> {
    let cost = cost.map_err(|detail| engine.refuse_amount(first(ledgers), None, detail))?;
    engine.check_all(ledgers, cost).into_result()
}

/// Async [`check_all`].
pub async fn check_all_async(
    engine: &Engine,
    ledgers: &[Ledger],
    cost: Result<Decimal, String>,
) -> Result<Decision, BudgetExceeded> {
    let cost = cost.map_err(|detail| engine.refuse_amount(first(ledgers), None, detail))?;
    engine.check_all_async(ledgers, cost).await.into_result()
}

/// `#[guard_bounded(ledgers = [..])]`: reserve on every ledger.
pub fn reserve_all<'e>(
    engine: &'e Engine,
    ledgers: &[Ledger],
    estimate: Result<Decimal, String>,
) -> Result<Reservation<'e>, BudgetExceeded> {
    let estimate = estimate.map_err(|detail| engine.refuse_amount(first(ledgers), None, detail))?;
    engine.reserve_all(ledgers, estimate)
}

/// Async [`reserve_all`].
pub async fn reserve_all_async<'e>(
    engine: &'e Engine,
    ledgers: &[Ledger],
    estimate: Result<Decimal, String>,
) -> Result<Reservation<'e>, BudgetExceeded> {
    let estimate = estimate.map_err(|detail| engine.refuse_amount(first(ledgers), None, detail))?;
    engine.reserve_all_async(ledgers, estimate).await
}

/// Calls the `actual` closure with its parameter type fixed by this
/// signature (so `|r| r.cost()` needs no annotation).
#[inline]
pub fn actual<T: ?Sized, A: IntoAmount>(
    value: &T,
    f: impl FnOnce(&T) -> A,
) -> Result<Decimal, String> {
    f(value).into_amount()
}

/// What a bounded call's error costs (`on_error = …`).
pub enum ErrorCost {
    /// Release the reservation: nothing is charged (the default).
    Release,
    /// Commit the estimate.
    Estimate,
    /// Commit this amount (or, if it could not be computed, the estimate).
    Amount(Result<Decimal, String>),
}

/// Calls an `on_error` closure with its parameter type fixed.
pub fn error_cost<E: ?Sized, A: IntoAmount>(error: &E, f: impl FnOnce(&E) -> A) -> ErrorCost {
    ErrorCost::Amount(f(error).into_amount())
}

/// The amount to commit: the actual, or — when it could not be computed —
/// the estimate, the worst case the caller declared (logged as an error).
fn committable(reservation: &Reservation<'_>, actual: Result<Decimal, String>) -> Decimal {
    actual.unwrap_or_else(|error| {
        tracing::error!(ledger = %reservation.ledger(), id = %reservation.id(), %error,
            estimate = %reservation.estimate(),
            "the actual cost could not be computed; committing the estimate");
        reservation.estimate()
    })
}

/// Commits the actual cost. Failures were already reported (tracing +
/// listeners) by the reservation; the call happened, so its value is returned
/// either way.
#[inline]
pub fn commit(reservation: Reservation<'_>, actual: Result<Decimal, String>) {
    let actual = committable(&reservation, actual);
    let _reported = reservation.commit(actual);
}

/// Async [`commit`].
pub async fn commit_async(reservation: Reservation<'_>, actual: Result<Decimal, String>) {
    let actual = committable(&reservation, actual);
    let _reported = reservation.commit_async(actual).await;
}

/// Settles a reservation whose call returned an error.
pub fn settle_error(reservation: Reservation<'_>, cost: ErrorCost) {
    match cost {
        ErrorCost::Release => {
            let _reported = reservation.release();
        }
        ErrorCost::Estimate => {
            let estimate = reservation.estimate();
            commit(reservation, Ok(estimate));
        }
        ErrorCost::Amount(amount) => commit(reservation, amount),
    }
}

/// Async [`settle_error`].
pub async fn settle_error_async(reservation: Reservation<'_>, cost: ErrorCost) {
    match cost {
        ErrorCost::Release => {
            let _reported = reservation.release_async().await;
        }
        ErrorCost::Estimate => {
            let estimate = reservation.estimate();
            commit_async(reservation, Ok(estimate)).await;
        }
        ErrorCost::Amount(amount) => commit_async(reservation, amount).await,
    }
}

// ----- rate limits ---------------------------------------------------------------

/// Builds the gate from the attribute's three expressions.
pub fn gate(
    namespace: impl Into<String>,
    action: impl Into<String>,
    principal: impl Into<String>,
) -> Gate {
    Gate::new(namespace, action, principal)
}

/// A policy from literals the macro validated (0: no such limit).
pub const fn policy(
    max_calls: u64,
    window_ms: u64,
    cooldown_ms: u64,
    capacity: u64,
    tokens: u64,
    period_ms: u64,
    soft: bool,
) -> Policy {
    // Soft or hard is the attribute's return type, not the policy's.
    let _ = soft;
    Policy::from_parts(
        if max_calls > 0 {
            Some((max_calls, Duration::from_millis(window_ms)))
        } else {
            None
        },
        if cooldown_ms > 0 {
            Some(Duration::from_millis(cooldown_ms))
        } else {
            None
        },
        if capacity > 0 {
            Some(Bucket {
                capacity,
                tokens,
                period: Duration::from_millis(period_ms),
            })
        } else {
            None
        },
    )
}

/// `#[rate_limit]`: check and record the call.
pub fn rate(engine: &Engine, gate: &Gate, policy: &Policy) -> Result<RateDecision, RateLimited> {
    engine.rate_check(gate, policy).into_result()
}

/// Async [`rate`].
pub async fn rate_async(
    engine: &Engine,
    gate: &Gate,
    policy: &Policy,
) -> Result<RateDecision, RateLimited> {
    engine.rate_check_async(gate, policy).await.into_result()
}

/// `#[rate_limit_result]` blocked: the decision, no value.
pub fn rate_blocked<T>(blocked: RateLimited) -> Guarded<T, RateDecision> {
    Guarded::blocked(blocked.into_decision())
}

/// `#[rate_limit_result]` allowed: the decision and the value.
pub fn rate_allowed<T>(decision: RateDecision, value: T) -> Guarded<T, RateDecision> {
    Guarded::new(decision, Some(value))
}

// ----- soft mode ---------------------------------------------------------------

/// `#[guard_result]` blocked: the decision, no value.
pub fn blocked<T>(blocked: BudgetExceeded) -> Guarded<T> {
    Guarded::blocked(blocked.into_decision())
}

/// `#[guard_result]` allowed: the decision and the value.
pub fn allowed<T>(decision: Decision, value: T) -> Guarded<T> {
    Guarded::new(decision, Some(value))
}

/// The admitting decision of a reservation, kept for the `Guarded` result.
pub fn decision_of(reservation: &Reservation<'_>) -> Decision {
    reservation.decision().clone()
}
