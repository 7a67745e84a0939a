//! Call-rate gates: how often a tool may run, beside how much it may spend.
//!
//! A [`Gate`] `(namespace, action, principal)` is one call stream; a
//! [`Policy`] limits it with any combination of
//!
//! - **calls per window**: at most `max_calls` in any rolling `window`
//!   (an exact sliding log, not an approximation);
//! - **cooldown**: at least `cooldown` between two admitted calls;
//! - **token bucket**: `capacity` calls at once, refilled at `tokens` per
//!   `period` (GCRA in exact integer arithmetic).
//!
//! Every limit must pass; an admitted call is recorded in the same atomic
//! step ([`Engine::rate_check`](crate::Engine::rate_check)). A blocked call
//! records nothing and says when to retry.
//!
//! ```
//! use budgetgate::{Engine, rate::{Gate, Policy}};
//! use std::time::Duration;
//!
//! let engine = Engine::in_memory();
//! let gate = Gate::new("tools", "web_search", "user:7");
//! let policy = Policy::new().max_calls(2, Duration::from_secs(60)).cooldown(Duration::ZERO);
//! assert!(engine.rate_check(&gate, &policy).is_allowed());
//! assert!(engine.rate_check(&gate, &policy).is_allowed());
//! let third = engine.rate_check(&gate, &policy);
//! assert!(third.is_blocked());
//! assert!(third.retry_after().unwrap() <= Duration::from_secs(60));
//! ```

use std::fmt;
use std::time::Duration;

use crate::budget::StoreErrorMode;
use crate::decision::{Blocking, Status};
use crate::ledger::Ledger;

/// One call stream: `(namespace, action, principal)`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Gate(Ledger);

impl Gate {
    /// A gate from its three parts.
    pub fn new(
        namespace: impl Into<String>,
        action: impl Into<String>,
        principal: impl Into<String>,
    ) -> Self {
        Gate(Ledger::new(namespace, action, principal))
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        self.0.namespace()
    }

    /// The action, e.g. `"web_search"`.
    pub fn action(&self) -> &str {
        self.0.resource()
    }

    /// The principal.
    pub fn principal(&self) -> &str {
        self.0.principal()
    }

    /// The same three parts as a ledger key (stores keep gates apart from
    /// ledgers themselves).
    pub(crate) fn key(&self) -> &Ledger {
        &self.0
    }
}

impl fmt::Display for Gate {
    /// `namespace:action@principal`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Gate")
            .field(&self.namespace())
            .field(&self.action())
            .field(&self.principal())
            .finish()
    }
}

impl serde::Serialize for Gate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A token bucket: `capacity` calls at once, `tokens` more every `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Most calls admitted at once.
    pub capacity: u64,
    /// Tokens added per period.
    pub tokens: u64,
    /// The refill period.
    pub period: Duration,
}

/// Limits on a gate (all must pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Policy {
    max_calls: Option<(u64, Duration)>,
    cooldown: Option<Duration>,
    bucket: Option<Bucket>,
    on_store_error: StoreErrorMode,
}

/// A policy that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A window, period or refill of zero, or a zero-capacity bucket.
    #[error("invalid rate policy: {0}")]
    Invalid(&'static str),
}

/// The longest window, cooldown or refill period a policy holds: 100 years.
/// Longer durations (`Duration::MAX` for "never again") are clamped to it,
/// so every store does the same exact integer arithmetic on them.
pub const MAX_RATE_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `d`, at most [`MAX_RATE_DURATION`].
const fn clamp(d: Duration) -> Duration {
    if d.as_secs() >= MAX_RATE_DURATION.as_secs() {
        MAX_RATE_DURATION
    } else {
        d
    }
}

impl Policy {
    /// No limit yet (hard mode, fail closed).
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `max_calls` (≥ 1) in any rolling `window` (at most
    /// [`MAX_RATE_DURATION`]; longer is clamped). Zero calls is refused by
    /// [`Policy::validate`]: to stop every call, pause the gate's namespace.
    pub fn max_calls(mut self, max_calls: u64, window: Duration) -> Self {
        self.max_calls = Some((max_calls, clamp(window)));
        self
    }

    /// At least `cooldown` between two admitted calls (at most
    /// [`MAX_RATE_DURATION`]; longer is clamped).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = Some(clamp(cooldown));
        self
    }

    /// A token bucket of `capacity`, refilled `tokens` per `period`.
    pub fn bucket(mut self, capacity: u64, tokens: u64, period: Duration) -> Self {
        self.bucket = Some(Bucket {
            capacity,
            tokens,
            period: clamp(period),
        });
        self
    }

    /// Allow (reason `StoreError`) when the store fails.
    pub fn fail_open(mut self) -> Self {
        self.on_store_error = StoreErrorMode::FailOpen;
        self
    }

    /// A policy from literals the attribute validated (0 / `None`: no such limit).
    pub(crate) const fn from_parts(
        max_calls: Option<(u64, Duration)>,
        cooldown: Option<Duration>,
        bucket: Option<Bucket>,
    ) -> Self {
        let max_calls = match max_calls {
            Some((n, window)) => Some((n, clamp(window))),
            None => None,
        };
        let cooldown = match cooldown {
            Some(c) => Some(clamp(c)),
            None => None,
        };
        let bucket = match bucket {
            Some(b) => Some(Bucket {
                period: clamp(b.period),
                ..b
            }),
            None => None,
        };
        Policy {
            max_calls,
            cooldown,
            bucket,
            on_store_error: StoreErrorMode::FailClosed,
        }
    }

    /// Checks the policy can be enforced.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some((calls, window)) = self.max_calls {
            if calls == 0 {
                return Err(PolicyError::Invalid(
                    "max_calls must be at least 1 (to stop every call, pause the namespace)",
                ));
            }
            if window.is_zero() {
                return Err(PolicyError::Invalid(
                    "a call window must be longer than zero",
                ));
            }
        }
        if let Some(b) = self.bucket {
            if b.capacity == 0 || b.tokens == 0 || b.period.is_zero() {
                return Err(PolicyError::Invalid(
                    "a bucket needs a capacity, and a refill of at least one token per non-zero period",
                ));
            }
            // The Redis script's integers are Lua doubles: keep capacity ×
            // period exact.
            let span = u128::from(b.capacity) * b.period.as_micros();
            if span >= 1 << 53 || u128::from(b.tokens) >= 1 << 32 {
                return Err(PolicyError::Invalid(
                    "bucket capacity × period is too large",
                ));
            }
        }
        Ok(())
    }

    /// `(max_calls, window)`, if limited.
    pub fn max_calls_limit(&self) -> Option<(u64, Duration)> {
        self.max_calls
    }

    /// The cooldown, if any.
    pub fn cooldown_limit(&self) -> Option<Duration> {
        self.cooldown
    }

    /// The bucket, if any.
    pub fn bucket_limit(&self) -> Option<Bucket> {
        self.bucket
    }

    /// Fail closed or open.
    pub fn on_store_error(&self) -> StoreErrorMode {
        self.on_store_error
    }
}

/// The `retry_after` of a decision refused because the store failed: how
/// long to wait before asking again.
pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a rate decision is not a plain allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RateReason {
    /// `max_calls` were already made in the window.
    TooManyCalls,
    /// The cooldown since the last call has not passed.
    Cooldown,
    /// The token bucket is empty.
    BucketEmpty,
    /// The store failed (blocked unless the policy fails open).
    StoreError,
    /// The policy cannot be enforced (see [`PolicyError`]).
    InvalidPolicy,
}

impl RateReason {
    /// The reason's name in the JSON form: `"TOO_MANY_CALLS"`, …
    pub fn as_str(&self) -> &'static str {
        match self {
            RateReason::TooManyCalls => "TOO_MANY_CALLS",
            RateReason::Cooldown => "COOLDOWN",
            RateReason::BucketEmpty => "BUCKET_EMPTY",
            RateReason::StoreError => "STORE_ERROR",
            RateReason::InvalidPolicy => "INVALID_POLICY",
        }
    }
}

impl fmt::Display for RateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one rate check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[must_use = "a RateDecision may be a block: check `is_allowed()` before doing the work"]
pub struct RateDecision {
    pub(crate) status: Status,
    pub(crate) gate: Gate,
    pub(crate) reason: Option<RateReason>,
    pub(crate) calls_in_window: u64,
    #[serde(serialize_with = "micros_opt")]
    pub(crate) since_last: Option<Duration>,
    #[serde(serialize_with = "micros_opt")]
    pub(crate) retry_after: Option<Duration>,
    #[serde(skip)]
    pub(crate) detail: Option<String>,
}

fn micros_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_micros() as u64)),
        None => s.serialize_none(),
    }
}

impl RateDecision {
    /// Allow or block.
    pub fn status(&self) -> Status {
        self.status
    }
    /// Whether the call may run.
    pub fn is_allowed(&self) -> bool {
        self.status == Status::Allow
    }
    /// Whether the call must not run.
    pub fn is_blocked(&self) -> bool {
        self.status == Status::Block
    }
    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
    /// Why it is not a plain allow.
    pub fn reason(&self) -> Option<RateReason> {
        self.reason
    }
    /// Calls counted in the window (this one included when allowed).
    pub fn calls_in_window(&self) -> u64 {
        self.calls_in_window
    }
    /// Time since the previous admitted call, if there was one.
    pub fn since_last(&self) -> Option<Duration> {
        self.since_last
    }
    /// When blocked: how long until a call can be admitted.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
    /// The store error behind a `StoreError` decision.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
    /// A one-line explanation.
    pub fn message(&self) -> String {
        let retry = self
            .retry_after
            .map(|d| format!("; retry after {d:?}"))
            .unwrap_or_default();
        let detail = self.detail.as_deref().unwrap_or("no detail");
        match (self.status, self.reason) {
            (Status::Allow, None) => format!("call allowed on {}", self.gate),
            (Status::Allow, Some(RateReason::StoreError)) => format!(
                "call allowed on {}: the store failed and the policy fails open (the call was not counted): {detail}",
                self.gate
            ),
            (_, Some(RateReason::StoreError)) => format!(
                "call blocked on {}: the store failed and the policy fails closed{retry}: {detail}",
                self.gate
            ),
            (_, Some(RateReason::InvalidPolicy)) => {
                format!("call blocked on {}: {detail}", self.gate)
            }
            (_, Some(RateReason::TooManyCalls)) => format!(
                "call rate limited on {}: too many calls in the window{retry}",
                self.gate
            ),
            (_, Some(RateReason::Cooldown)) => format!(
                "call rate limited on {}: the cooldown since the last call has not passed{retry}",
                self.gate
            ),
            (_, Some(RateReason::BucketEmpty)) => format!(
                "call rate limited on {}: the token bucket is empty{retry}",
                self.gate
            ),
            (status, None) => format!("call {status} on {}", self.gate),
        }
    }
    /// `Ok(self)` when allowed, `Err(RateLimited)` when blocked.
    pub fn into_result(self) -> Result<RateDecision, RateLimited> {
        if self.is_allowed() {
            Ok(self)
        } else {
            Err(RateLimited::new(self))
        }
    }
}

/// A rate-limited call, as an error: what hard-mode `#[rate_limit]` returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .decision.message())]
pub struct RateLimited {
    decision: Box<RateDecision>,
}

impl RateLimited {
    /// Wraps a blocking decision.
    pub fn new(decision: RateDecision) -> Self {
        RateLimited {
            decision: Box::new(decision),
        }
    }
    /// The decision.
    pub fn decision(&self) -> &RateDecision {
        &self.decision
    }
    /// When to retry: when a call can next be admitted, or — for a store
    /// failure — [`STORE_RETRY_AFTER`], a pause before asking again (never
    /// zero, so a retry loop does not spin).
    pub fn retry_after(&self) -> Option<Duration> {
        self.decision.retry_after
    }

    /// Why the call was refused.
    pub fn reason(&self) -> Option<RateReason> {
        self.decision.reason
    }

    /// Refused because the store failed (fail-closed), not because the rate
    /// was exceeded.
    pub fn is_store_error(&self) -> bool {
        self.decision.reason == Some(RateReason::StoreError)
    }
    /// Takes the decision out.
    pub fn into_decision(self) -> RateDecision {
        *self.decision
    }
}

/// Lets a function returning `io::Result<T>` carry `#[rate_limit]`: a limited
/// call is an `io::ErrorKind::Other` error holding the `RateLimited`.
impl From<RateLimited> for std::io::Error {
    fn from(blocked: RateLimited) -> Self {
        std::io::Error::other(blocked)
    }
}

/// GCRA in exact integers: times are µs, scaled by the bucket's `tokens`
/// (k) so the emission interval `period / k` needs no fractions.
pub(crate) mod gcra {
    /// The bucket's state after an admitted call, or the µs to wait.
    /// `tat` is the theoretical arrival time × k (None: never used).
    pub fn step(
        tat: Option<i128>,
        now_us: i64,
        capacity: u64,
        tokens: u64,
        period_us: i64,
    ) -> Result<i128, i64> {
        let k = i128::from(tokens);
        let now = i128::from(now_us) * k;
        let interval = i128::from(period_us); // period / k, scaled by k
        let tolerance = interval * (i128::from(capacity) - 1);
        let tat = tat.map_or(now, |t| t.max(now));
        if now < tat - tolerance {
            let wait = tat - tolerance - now; // scaled by k
            return Err(i64::try_from((wait + k - 1) / k).unwrap_or(i64::MAX));
        }
        Ok(tat + interval)
    }
}

impl Blocking for RateDecision {
    type Error = RateLimited;
    fn into_error(self) -> RateLimited {
        RateLimited::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_admits_capacity_then_refills_exactly() {
        // capacity 3, 2 tokens per second: interval 500 ms.
        let (cap, k, p) = (3, 2, 1_000_000);
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra::step(tat, 0, cap, k, p).unwrap());
        }
        assert_eq!(gcra::step(tat, 0, cap, k, p), Err(500_000));
        assert_eq!(gcra::step(tat, 499_999, cap, k, p), Err(1));
        assert!(gcra::step(tat, 500_000, cap, k, p).is_ok());
    }

    #[test]
    fn gcra_with_fractional_interval() {
        // 3 tokens per second: 333,333.33 µs each; capacity 1.
        let mut tat = Some(gcra::step(None, 0, 1, 3, 1_000_000).unwrap());
        assert_eq!(gcra::step(tat, 333_333, 1, 3, 1_000_000), Err(1));
        // Admitted at 333,334: the next slot is 333,334 + 333,333.33.
        tat = Some(gcra::step(tat, 333_334, 1, 3, 1_000_000).unwrap());
        assert_eq!(
            gcra::step(tat, 666_667, 1, 3, 1_000_000),
            Err(1),
            "exact: 666,667.33"
        );
        assert!(gcra::step(tat, 666_668, 1, 3, 1_000_000).is_ok());
    }
}
