//! The runtime API behind the attributes. Public so generated code can call
//! it; not part of the stable API (`#[doc(hidden)]`), do not call it directly.
//!
//! Each function is one step of a guarded call, so the expansion is a short
//! sequence of calls and all logic stays here, where it is unit-tested.

use std::time::Duration;

use rust_decimal::Decimal;

use crate::budget::{Budget, StoreErrorMode, Window};
use crate::decision::{BudgetExceeded, Decision, Guarded};
use crate::engine::Engine;
use crate::ledger::Ledger;
use crate::rate::{Bucket, Gate, Policy, RateDecision, RateLimited};
use crate::reservation::Reservation;

pub use crate::global::global;

/// Builds the ledger from the attribute's three parts (see [`LedgerPart`]).
#[inline]
pub fn ledger(namespace: String, resource: String, principal: String) -> Ledger {
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

// ----- hard mode -------------------------------------------------------------

pub use crate::attribute::{
    AsEngine, GuardBoundedReturn, GuardReturn, HoldsBlock, IntoAmount, IntoGate, IntoLedger,
    IntoLedgers, LedgerPart, RateLimitReturn,
};

/// A panic payload, caught around an `actual` / `on_error` closure.
pub type Panic = Box<dyn std::any::Any + Send + 'static>;

/// Runs an `actual` / `on_error` closure's result through [`IntoAmount`]
/// (the closure itself was called by the expansion, which fixes its
/// parameter type).
#[inline]
pub fn caught<A: IntoAmount>(result: Result<A, Panic>) -> Result<Result<Decimal, String>, Panic> {
    result.map(IntoAmount::into_amount)
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

/// What a bounded call's error costs (`on_error = …`).
pub enum ErrorCost {
    /// Release the reservation: nothing is charged (the default).
    Release,
    /// Commit the estimate.
    Estimate,
    /// Commit this amount (or, if it could not be computed, the estimate).
    Amount(Result<Decimal, String>),
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

/// Async [`commit`]. The body ran, so its money was spent: if this future
/// is dropped while the store works (the caller's future cancelled after
/// the body returned), `commit_async` hands the same commit to the
/// engine's settler by id, so it is recorded once whatever the store had
/// seen.
pub async fn commit_async(reservation: Reservation<'_>, actual: Result<Decimal, String>) {
    let actual = committable(&reservation, actual);
    let _reported = reservation.commit_async(actual).await;
}

/// Commits what an `actual` closure returned; if it panicked, commits the
/// estimate (the call ran: its money was spent) and resumes the panic.
pub fn commit_caught(reservation: Reservation<'_>, actual: Result<Result<Decimal, String>, Panic>) {
    match actual {
        Ok(actual) => commit(reservation, actual),
        Err(panic) => {
            let estimate = reservation.estimate();
            commit(reservation, Ok(estimate));
            std::panic::resume_unwind(panic)
        }
    }
}

/// Async [`commit_caught`].
pub async fn commit_caught_async(
    reservation: Reservation<'_>,
    actual: Result<Result<Decimal, String>, Panic>,
) {
    match actual {
        Ok(actual) => commit_async(reservation, actual).await,
        Err(panic) => {
            let estimate = reservation.estimate();
            commit_async(reservation, Ok(estimate)).await;
            std::panic::resume_unwind(panic)
        }
    }
}

/// The cost of an error from an `on_error` closure; a panicking closure
/// costs the estimate (and the panic is resumed after the commit, see
/// [`settle_error_caught`]).
pub fn error_cost_caught(
    amount: Result<Result<Decimal, String>, Panic>,
) -> (ErrorCost, Option<Panic>) {
    match amount {
        Ok(amount) => (ErrorCost::Amount(amount), None),
        Err(panic) => (ErrorCost::Estimate, Some(panic)),
    }
}

/// Settles an error, then resumes a panic of its `on_error` closure.
pub fn settle_error_caught(reservation: Reservation<'_>, cost: (ErrorCost, Option<Panic>)) {
    settle_error(reservation, cost.0);
    if let Some(panic) = cost.1 {
        std::panic::resume_unwind(panic)
    }
}

/// Async [`settle_error_caught`].
pub async fn settle_error_caught_async(
    reservation: Reservation<'_>,
    cost: (ErrorCost, Option<Panic>),
) {
    settle_error_async(reservation, cost.0).await;
    if let Some(panic) = cost.1 {
        std::panic::resume_unwind(panic)
    }
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

// ----- response caches ---------------------------------------------------------

#[cfg(feature = "cache")]
pub use crate::cache::AttributeCache;

/// `#[guard_bounded(cache = …, cache_key = …)]`: a hit's `Ok` value, or the
/// `miss` (the guarded call: reserve, run, commit) run through the cache's
/// single-flight, its `Ok` value cached with what was recorded for it.
#[cfg(feature = "cache")]
pub async fn cached<C, K, R, Fut>(cache: &C, engine: &Engine, key: K, miss: Fut) -> R
where
    C: AttributeCache<K, R::Ok> + ?Sized,
    R: GuardBoundedReturn,
    Fut: std::future::Future<Output = Result<(R::Ok, Decimal), R::Err>>,
{
    match cache.call_cached(engine, key, miss).await {
        Ok(value) => R::from_ok(value),
        Err(error) => R::from_err(error),
    }
}

/// [`commit_caught_async`] for a cached call: returns what was recorded
/// (the cost the response is cached with).
#[cfg(feature = "cache")]
pub async fn commit_caught_recorded_async(
    reservation: Reservation<'_>,
    actual: Result<Result<Decimal, String>, Panic>,
) -> Decimal {
    match actual {
        Ok(actual) => {
            let actual = committable(&reservation, actual);
            crate::cache::commit_recorded(reservation, actual).await
        }
        Err(panic) => {
            let estimate = reservation.estimate();
            commit_async(reservation, Ok(estimate)).await;
            std::panic::resume_unwind(panic)
        }
    }
}

// Without feature `cache` there is no cache: `cache = …` is refused by the
// bound of `cached` (no type implements this `AttributeCache`), in words
// that name the feature.

/// Without feature `cache`: implemented by nothing.
#[cfg(not(feature = "cache"))]
#[diagnostic::on_unimplemented(
    message = "`cache = …` needs budgetgate's feature `cache`",
    label = "the response caches are behind feature `cache`",
    note = "in Cargo.toml: `budgetgate = {{ version = \"…\", features = [\"cache\"] }}`"
)]
pub trait AttributeCache<K, V> {}

/// Without feature `cache`: its bound cannot be met (see [`AttributeCache`]).
#[cfg(not(feature = "cache"))]
pub async fn cached<C, K, R, Fut>(cache: &C, engine: &Engine, key: K, miss: Fut) -> R
where
    C: AttributeCache<K, R::Ok> + ?Sized,
    R: GuardBoundedReturn,
    Fut: std::future::Future<Output = Result<(R::Ok, Decimal), R::Err>>,
{
    let _ = (cache, engine, key);
    match miss.await {
        Ok((value, _)) => R::from_ok(value),
        Err(error) => R::from_err(error),
    }
}

/// Without feature `cache`: [`commit_caught_async`], returning the amount
/// asked (never reached: [`cached`] cannot be called).
#[cfg(not(feature = "cache"))]
pub async fn commit_caught_recorded_async(
    reservation: Reservation<'_>,
    actual: Result<Result<Decimal, String>, Panic>,
) -> Decimal {
    let asked = match &actual {
        Ok(Ok(amount)) => *amount,
        _ => reservation.estimate(),
    };
    commit_caught_async(reservation, actual).await;
    asked
}

// ----- rate limits ---------------------------------------------------------------

/// Builds the gate from the attribute's three parts (see [`LedgerPart`]).
#[inline]
pub fn gate(namespace: String, action: String, principal: String) -> Gate {
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

/// `#[guard_bounded(stream = METER)]`: the body's stream, holding the
/// reservation for its life.
#[cfg(feature = "stream")]
pub fn guard_stream<S, M>(
    reservation: Reservation<'_>,
    stream: S,
    meter: M,
) -> crate::stream::GuardedStream<S, M>
where
    S: crate::stream::Stream,
    M: crate::stream::Meter<S::Item>,
{
    reservation.guard_stream(stream, meter)
}
