//! [`Decision`]: the outcome of one check or reservation, and the two ways it
//! reaches callers — [`BudgetExceeded`] (hard mode) and [`Guarded`] (soft mode).

use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::ser::SerializeStruct;

use crate::amount::from_nanos;
use crate::budget::Budget;
use crate::caps::Caps;
use crate::ledger::Ledger;

/// Version of the JSON form of [`Decision`] (bumped on incompatible changes).
pub const DECISION_SCHEMA_VERSION: u32 = 1;

/// Allow or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The call may run; its cost is recorded or reserved.
    Allow,
    /// The call must not run; nothing was recorded.
    Block,
}

/// Why a decision is not a plain allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum BlockReason {
    /// `spent + requested > max_spend`.
    BudgetExceeded,
    /// The store failed; the budget's [`StoreErrorMode`](crate::StoreErrorMode)
    /// chose block (fail-closed) or allow (fail-open).
    StoreError,
    /// No budget applies to the ledger and the engine's default policy denies.
    NoBudget,
    /// The requested amount is negative, finer than 10⁻⁹ or too large.
    InvalidAmount,
    /// The ledger, its namespace or everything is paused (kill switch).
    Paused,
}

impl Status {
    /// `"ALLOW"` or `"BLOCK"`, as in the JSON form.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Allow => "ALLOW",
            Status::Block => "BLOCK",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl BlockReason {
    /// The reason's name in the JSON form: `"BUDGET_EXCEEDED"`, `"STORE_ERROR"`, …
    pub fn as_str(&self) -> &'static str {
        match self {
            BlockReason::BudgetExceeded => "BUDGET_EXCEEDED",
            BlockReason::StoreError => "STORE_ERROR",
            BlockReason::NoBudget => "NO_BUDGET",
            BlockReason::InvalidAmount => "INVALID_AMOUNT",
            BlockReason::Paused => "PAUSED",
        }
    }
}

/// The JSON name (`BUDGET_EXCEEDED`), so `tracing` fields and logs read
/// the same as decisions serialized to JSON.
impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one evaluation, with everything needed to explain it.
///
/// Serializes to JSON, amounts as decimal strings:
///
/// ```
/// use budgetgate::{Budget, Engine, Ledger};
/// use budgetgate::dec;
///
/// let engine = Engine::in_memory();
/// let ledger = Ledger::new("openai", "gpt-4o", "user:1");
/// engine.set_budget(&ledger, Budget::lifetime(dec!(1))?);
/// let decision = engine.check(&ledger, dec!(0.4));
/// let json = decision.to_json();
/// assert_eq!(json["status"], "ALLOW");
/// assert_eq!(json["spent_in_window"], "0.4");
/// assert_eq!(json["remaining"], "0.6");
/// # Ok::<(), budgetgate::BudgetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a Decision may be a block: check `is_allowed()` before doing the work"]
pub struct Decision {
    pub(crate) status: Status,
    pub(crate) ledger: Ledger,
    /// Every cap of the ledger (a reservation settles under all of them)
    /// and, in `cap`, the index of the one this decision is about.
    pub(crate) caps: Option<Caps>,
    pub(crate) cap: u32,
    pub(crate) reason: Option<BlockReason>,
    /// Nano-units; converted on read so deciding does no decimal work.
    pub(crate) spent_nanos: i128,
    pub(crate) requested: Decimal,
    pub(crate) detail: Option<Arc<str>>,
}

impl Decision {
    /// Allow or block.
    pub fn status(&self) -> Status {
        self.status
    }

    /// `status() == Status::Allow`.
    pub fn is_allowed(&self) -> bool {
        self.status == Status::Allow
    }

    /// `status() == Status::Block`.
    pub fn is_blocked(&self) -> bool {
        self.status == Status::Block
    }

    /// The evaluated ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The budget applied; `None` when no budget applied (reason `NoBudget`).
    pub fn budget(&self) -> Option<&Budget> {
        let budgets = self.caps.as_ref()?.budgets();
        budgets.get(self.cap as usize).or(budgets.first())
    }

    /// Why the decision is not a plain allow (`None` for a plain allow).
    pub fn reason(&self) -> Option<BlockReason> {
        self.reason
    }

    /// Spend counted in the window: committed spend plus active reservations.
    /// Includes `requested` when allowed, excludes it when blocked.
    pub fn spent_in_window(&self) -> Decimal {
        from_nanos(self.spent_nanos)
    }

    /// The amount asked for (the cost, or the estimate for a reservation).
    pub fn requested(&self) -> Decimal {
        self.requested.normalize()
    }

    /// What is left in the window after this decision, never below zero.
    pub fn remaining(&self) -> Decimal {
        from_nanos(self.remaining_nanos())
    }

    /// [`Decision::remaining`] in nano-units: derived, not stored, which keeps
    /// a decision within 128 bytes (moved as registers, not by `memcpy`).
    /// Only a store's answer has figures; other decisions report zero.
    pub(crate) fn remaining_nanos(&self) -> i128 {
        match (self.reason, self.budget()) {
            (None | Some(BlockReason::BudgetExceeded), Some(budget)) => {
                (budget.limit_ref().max_nanos() - self.spent_nanos).max(0)
            }
            _ => 0,
        }
    }

    /// The store error or invalid amount behind this decision, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// A one-line human explanation (built on demand; decisions on the hot
    /// path do not format strings).
    pub fn message(&self) -> String {
        let max = self.budget().map(|b| b.max_spend());
        let verb = if self.is_allowed() {
            "allowed"
        } else {
            "blocked"
        };
        match (self.status, self.reason) {
            (Status::Allow, None) => format!(
                "allowed {} on {}: {} of {} spent in window",
                self.requested(),
                self.ledger,
                self.spent_in_window(),
                max.unwrap_or_default()
            ),
            (Status::Block, Some(BlockReason::BudgetExceeded)) => format!(
                "budget exceeded on {}: {} spent + {} requested > {} max",
                self.ledger,
                self.spent_in_window(),
                self.requested(),
                max.unwrap_or_default()
            ),
            (Status::Block, Some(BlockReason::NoBudget)) => format!(
                "no budget is registered for {} and the engine's default policy denies",
                self.ledger
            ),
            (Status::Block, Some(BlockReason::Paused)) => format!(
                "{} is paused (kill switch): nothing was charged",
                self.ledger
            ),
            (status, Some(BlockReason::StoreError)) => format!(
                "{verb} {} on {}: the store failed, so the budget {}: {}",
                self.requested(),
                self.ledger,
                if status == Status::Allow {
                    "fails open (nothing was recorded)"
                } else {
                    "fails closed"
                },
                self.detail.as_deref().unwrap_or("no detail")
            ),
            (_, Some(BlockReason::InvalidAmount)) => format!(
                "blocked on {}: invalid amount: {}",
                self.ledger,
                self.detail.as_deref().unwrap_or("no detail")
            ),
            (_, reason) => format!(
                "{verb} {} on {}{}{}{}",
                self.requested(),
                self.ledger,
                reason.map_or_else(String::new, |r| format!(" ({r})")),
                if self.detail.is_some() { ": " } else { "" },
                self.detail.as_deref().unwrap_or("")
            ),
        }
    }

    /// The JSON form (see the type docs).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// `Ok(self)` when allowed, `Err(BudgetExceeded)` when blocked.
    pub fn into_result(self) -> Result<Decision, BudgetExceeded> {
        if self.is_allowed() {
            Ok(self)
        } else {
            Err(BudgetExceeded::new(self))
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl serde::Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Decision", 9)?;
        s.serialize_field("schema_version", &DECISION_SCHEMA_VERSION)?;
        s.serialize_field("status", &self.status)?;
        s.serialize_field("ledger", &self.ledger)?;
        s.serialize_field("reason", &self.reason)?;
        s.serialize_field("message", &self.message())?;
        s.serialize_field("spent_in_window", &self.spent_in_window().to_string())?;
        s.serialize_field("requested", &self.requested().to_string())?;
        s.serialize_field("remaining", &self.remaining().to_string())?;
        s.serialize_field("budget", &self.budget())?;
        s.end()
    }
}

/// A blocked call, as an error: what hard-mode guards return.
///
/// Error types of guarded functions implement `From<BudgetExceeded>`:
///
/// ```
/// #[derive(Debug)]
/// enum ToolError { Budget(budgetgate::BudgetExceeded), Http(String) }
/// impl From<budgetgate::BudgetExceeded> for ToolError {
///     fn from(e: budgetgate::BudgetExceeded) -> Self { ToolError::Budget(e) }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .decision.message())]
pub struct BudgetExceeded {
    // Boxed: keeps `Result<T, YourError>` small.
    decision: Box<Decision>,
}

impl BudgetExceeded {
    /// Wraps a (blocking) decision.
    pub fn new(decision: Decision) -> Self {
        BudgetExceeded {
            decision: Box::new(decision),
        }
    }

    /// The decision that blocked.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Takes the decision out.
    pub fn into_decision(self) -> Decision {
        *self.decision
    }

    /// The reason the call was blocked (`BudgetExceeded`, `StoreError`, …).
    pub fn reason(&self) -> Option<BlockReason> {
        self.decision.reason
    }

    /// Blocked because the store failed (fail-closed), not because the
    /// budget was spent: retrying later may succeed.
    pub fn is_store_error(&self) -> bool {
        self.decision.reason == Some(BlockReason::StoreError)
    }
}

/// The result of a soft-mode guarded call: the decision, and the value unless
/// the call was blocked.
///
/// ```
/// use budgetgate::{Budget, Engine, Guarded, Ledger};
/// use budgetgate::dec;
///
/// let engine = Engine::in_memory();
/// let ledger = Ledger::new("embed", "small", "team:a");
/// engine.set_budget(&ledger, Budget::lifetime(dec!(1))?);
/// let run = |cost| {
///     let decision = engine.check(&ledger, cost);
///     let value = decision.is_allowed().then(|| "embedding");
///     Guarded::new(decision, value)
/// };
/// assert_eq!(run(dec!(1)).value(), Some(&"embedding"));
/// let blocked = run(dec!(1));
/// assert!(!blocked.is_allowed());
/// assert_eq!(blocked.unwrap_or("fallback"), "fallback");
/// # Ok::<(), budgetgate::BudgetError>(())
/// ```
///
/// `D` is the kind of decision: a budget [`Decision`] (the default), or a
/// `RateDecision` (in `budgetgate::rate`) for `#[rate_limit_result]`.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a Guarded value may hold a blocked call"]
pub struct Guarded<T, D = Decision> {
    decision: D,
    value: Option<T>,
}

/// A decision that can block a call, and the error a blocked call becomes.
pub trait Blocking {
    /// The error of a blocked call.
    type Error;
    /// The error for this (blocking) decision.
    fn into_error(self) -> Self::Error;
}

impl Blocking for Decision {
    type Error = BudgetExceeded;
    fn into_error(self) -> BudgetExceeded {
        BudgetExceeded::new(self)
    }
}

impl<T, D: Blocking> Guarded<T, D> {
    /// Pairs a decision with the value (present iff the call ran).
    pub fn new(decision: D, value: Option<T>) -> Self {
        Guarded { decision, value }
    }

    /// A blocked call: the decision and no value.
    pub fn blocked(decision: D) -> Self {
        Guarded {
            decision,
            value: None,
        }
    }

    /// Whether the call ran.
    pub fn is_allowed(&self) -> bool {
        self.value.is_some()
    }

    /// The decision.
    pub fn decision(&self) -> &D {
        &self.decision
    }

    /// The value, if the call ran.
    pub fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// The value, if the call ran.
    pub fn into_value(self) -> Option<T> {
        self.value
    }

    /// Both parts.
    pub fn into_parts(self) -> (D, Option<T>) {
        (self.decision, self.value)
    }

    /// `Ok(value)`, or the blocking error (`BudgetExceeded`, `RateLimited`).
    pub fn into_result(self) -> Result<T, D::Error> {
        match self.value {
            Some(v) => Ok(v),
            None => Err(self.decision.into_error()),
        }
    }

    /// The value, or `default` when blocked.
    pub fn unwrap_or(self, default: T) -> T {
        self.value.unwrap_or(default)
    }

    /// The value, or one computed from the blocking decision.
    pub fn unwrap_or_else(self, f: impl FnOnce(&D) -> T) -> T {
        match self.value {
            Some(v) => v,
            None => f(&self.decision),
        }
    }

    /// Maps the value, keeping the decision.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Guarded<U, D> {
        Guarded {
            decision: self.decision,
            value: self.value.map(f),
        }
    }
}

/// Lets a function returning `io::Result<T>` carry a guard: a block is an
/// `io::ErrorKind::Other` error holding the `BudgetExceeded` (get it back
/// with `get_ref()` and `downcast_ref`).
impl From<BudgetExceeded> for std::io::Error {
    fn from(blocked: BudgetExceeded) -> Self {
        std::io::Error::other(blocked)
    }
}
