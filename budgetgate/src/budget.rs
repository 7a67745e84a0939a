//! [`Budget`]: how much a ledger may spend, over which [`Window`] (its own
//! module, re-exported here), what to do when the store fails
//! ([`StoreErrorMode`]), and when to warn.
//!
//! Whether a block is an error or a value is not part of the budget: the
//! attribute decides (`#[guard]` returns `Err`, `#[guard_result]` a
//! [`Guarded`](crate::Guarded)), and the [`Engine`](crate::Engine) API
//! always returns the [`Decision`](crate::Decision).

use std::fmt;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::amount::{self, AmountError};
pub use crate::window::{Window, WindowParseError, MAX_UTC_OFFSET_MINUTES};

/// The longest duration anything in budgetgate holds — a rolling window, a
/// reservation TTL, a store's retention: 100 years. Longer is refused
/// (windows) or clamped (settings), so no store ever computes an overflowed
/// or negative time; a lifetime cap is [`Window::Unbounded`].
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `d` clamped to `[min, MAX_DURATION]`.
pub(crate) fn clamp_duration(d: Duration, min: Duration) -> Duration {
    d.clamp(min, MAX_DURATION)
}

/// What happens when the store cannot be reached or errors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StoreErrorMode {
    /// Block the call (reason `StoreError`). The default: no unapproved spend.
    #[default]
    FailClosed,
    /// Allow the call (reason `StoreError`). What it spends is not in the
    /// store yet: the decision's reason says so. A fixed cost is recorded
    /// by its id in the background when the store answers again (once,
    /// even if the failed request had landed), and a bounded call's commit
    /// records its actual; what cannot be recorded within the engine's
    /// settle horizon is reported as [`Event::UnrecordedSpend`](crate::Event::UnrecordedSpend).
    FailOpen,
}

/// A spend limit for a ledger.
///
/// ```
/// use budgetgate::{dec, Budget, Window};
/// use std::time::Duration;
///
/// let hourly = Budget::new(dec!(10.00), Window::Rolling(Duration::from_secs(3600)))?;
/// let daily = Budget::new(dec!(5), Window::daily())?
///     .warn_at(dec!(0.5))?
///     .warn_at(dec!(0.8))?; // two soft-limit warnings, each once per day
/// assert_eq!(daily.warn_thresholds(), vec![dec!(2.5), dec!(4)]);
/// assert!(Budget::lifetime(dec!(-1)).is_err());
///
/// // Budgets can come from configuration:
/// let from_json: Budget = serde_json::from_str(
///     r#"{"max_spend": "5", "window": "daily", "warn_at": ["0.5", "0.8"]}"#,
/// )?;
/// assert_eq!(from_json, daily);
/// # let _ = hourly;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Budget {
    /// `max_spend` in nano-units, the window and the warning thresholds:
    /// what the store enforces, kept in the form it is lent in so a budget
    /// stays small (decisions and reservations carry one).
    limit: Limit,
    on_store_error: StoreErrorMode,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("max_spend", &self.max_spend())
            .field("window", &self.window())
            .field("on_store_error", &self.on_store_error)
            .field("warn_at", &self.warn_fractions())
            .finish()
    }
}

/// `{"max_spend": "10", "window": "1h", "on_store_error": "FAIL_CLOSED", "warn_at": ["0.8"]}`.
impl serde::Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Budget", 4)?;
        st.serialize_field("max_spend", &self.max_spend().to_string())?;
        st.serialize_field("window", &self.window())?;
        st.serialize_field("on_store_error", &self.on_store_error)?;
        let warn: Vec<String> = self
            .warn_fractions()
            .iter()
            .map(|f| f.to_string())
            .collect();
        st.serialize_field("warn_at", &warn)?;
        st.end()
    }
}

/// An amount in configuration: a string (`"0.05"`) or an integer — never a
/// float, which cannot hold most decimal amounts exactly.
enum ConfigAmount {
    Text(String),
    Integer(i128),
}

impl<'de> serde::Deserialize<'de> for ConfigAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigAmount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount as a string (\"0.05\") or an integer")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConfigAmount, E> {
                Ok(ConfigAmount::Text(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ConfigAmount, E> {
                Ok(ConfigAmount::Integer(v.into()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ConfigAmount, E> {
                Ok(ConfigAmount::Integer(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ConfigAmount, E> {
                Err(E::custom(format!(
                    "the amount {v} is a floating-point number, which cannot hold most decimal amounts exactly: write it as a string, \"{v}\""
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl ConfigAmount {
    fn decimal(&self) -> Result<Decimal, String> {
        match self {
            ConfigAmount::Text(t) => t
                .trim()
                .parse::<Decimal>()
                .map_err(|e| format!("invalid amount {t:?}: {e}")),
            ConfigAmount::Integer(n) => Decimal::try_from_i128_with_scale(*n, 0)
                .map_err(|e| format!("invalid amount {n}: {e}")),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetConfig {
    max_spend: ConfigAmount,
    #[serde(default = "unbounded")]
    window: Window,
    #[serde(default)]
    on_store_error: StoreErrorMode,
    #[serde(default)]
    warn_at: Vec<ConfigAmount>,
}

fn unbounded() -> Window {
    Window::Unbounded
}

/// Read from `{"max_spend": "10", "window": "daily", "on_store_error":
/// "FAIL_OPEN", "warn_at": ["0.5", "0.8"]}`; only `max_spend` is required
/// (the window defaults to `unbounded`). Amounts are strings or integers,
/// and every rule of [`Budget::new`] and [`Budget::warn_at`] applies.
impl<'de> serde::Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let c = BudgetConfig::deserialize(d)?;
        let max = c.max_spend.decimal().map_err(D::Error::custom)?;
        let mut budget = Budget::new(max, c.window)
            .map_err(D::Error::custom)?
            .with_on_store_error(c.on_store_error);
        for w in &c.warn_at {
            let fraction = w.decimal().map_err(D::Error::custom)?;
            budget = budget.warn_at(fraction).map_err(D::Error::custom)?;
        }
        Ok(budget)
    }
}

/// A budget that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// `max_spend` is negative, too precise or too large.
    #[error("invalid max_spend: {0}")]
    MaxSpend(#[from] AmountError),
    /// A rolling window must be longer than zero.
    #[error("a rolling window must be longer than zero")]
    EmptyWindow,
    /// A rolling window longer than [`MAX_DURATION`] (100 years).
    #[error("a rolling window may be at most 100 years ({max:?}); got {window:?} (for a lifetime cap use the unbounded window)")]
    WindowTooLong {
        /// The refused window.
        window: Duration,
        /// The longest allowed.
        max: Duration,
    },
    /// A calendar window's shift from UTC is beyond ±24 hours.
    #[error("a daily or monthly window's UTC offset must be within ±{max} minutes (24 h); got {minutes}")]
    UtcOffset {
        /// The refused offset.
        minutes: i16,
        /// The largest allowed ([`MAX_UTC_OFFSET_MINUTES`]).
        max: i16,
    },
    /// A warning threshold outside `(0, 1]` or finer than 0.0001.
    #[error("a warning threshold is a fraction of max_spend in (0, 1] with at most 4 decimal places, such as 0.8 for 80 %; got {fraction}{hint}")]
    WarnThreshold {
        /// The refused fraction.
        fraction: Decimal,
        /// A suggestion (e.g. for a percentage given as 80).
        hint: &'static str,
    },
    /// More warning thresholds than a budget holds.
    #[error("a budget holds at most {max} warning thresholds")]
    TooManyThresholds {
        /// The most a budget holds ([`MAX_WARN_THRESHOLDS`]).
        max: usize,
    },
}

/// The most soft-limit thresholds one budget holds.
pub const MAX_WARN_THRESHOLDS: usize = 4;

impl Budget {
    /// A hard, fail-closed budget of `max_spend` per `window`.
    pub fn new(max_spend: Decimal, window: Window) -> Result<Self, BudgetError> {
        let max_nanos = amount::to_nanos(max_spend)?;
        match window {
            Window::Rolling(d) if d.is_zero() => return Err(BudgetError::EmptyWindow),
            Window::Rolling(d) if d > MAX_DURATION => {
                return Err(BudgetError::WindowTooLong {
                    window: d,
                    max: MAX_DURATION,
                })
            }
            Window::Daily { utc_offset_minutes } | Window::Monthly { utc_offset_minutes }
                if utc_offset_minutes.unsigned_abs() > MAX_UTC_OFFSET_MINUTES.unsigned_abs() =>
            {
                return Err(BudgetError::UtcOffset {
                    minutes: utc_offset_minutes,
                    max: MAX_UTC_OFFSET_MINUTES,
                })
            }
            _ => {}
        }
        Ok(Budget {
            limit: Limit::new(max_nanos, window),
            on_store_error: StoreErrorMode::FailClosed,
        })
    }

    /// A budget whose parts were validated at compile time by the attributes
    /// (`max_nanos` ≤ [`amount::MAX_AMOUNT_NANOS`], the window not empty).
    pub(crate) const fn from_validated(
        max_nanos: i128,
        window: Window,
        on_store_error: StoreErrorMode,
    ) -> Self {
        Budget {
            limit: Limit::new(max_nanos, window),
            on_store_error,
        }
    }

    /// A lifetime cap ([`Window::Unbounded`]).
    pub fn lifetime(max_spend: Decimal) -> Result<Self, BudgetError> {
        Budget::new(max_spend, Window::Unbounded)
    }

    /// A cap per rolling `window`.
    pub fn rolling(max_spend: Decimal, window: Duration) -> Result<Self, BudgetError> {
        Budget::new(max_spend, Window::Rolling(window))
    }

    /// A cap per calendar day (UTC).
    pub fn daily(max_spend: Decimal) -> Result<Self, BudgetError> {
        Budget::new(max_spend, Window::daily())
    }

    /// A cap per calendar month (UTC).
    pub fn monthly(max_spend: Decimal) -> Result<Self, BudgetError> {
        Budget::new(max_spend, Window::monthly())
    }

    /// The same budget, failing open when the store errors.
    pub fn fail_open(self) -> Self {
        self.with_on_store_error(StoreErrorMode::FailOpen)
    }

    /// The same budget with another store-error policy.
    pub fn with_on_store_error(mut self, on_store_error: StoreErrorMode) -> Self {
        self.on_store_error = on_store_error;
        self
    }

    /// The most that may be spent within the window.
    pub fn max_spend(&self) -> Decimal {
        amount::from_nanos(self.limit.max_nanos)
    }

    /// The window spend is counted over.
    pub fn window(&self) -> Window {
        self.limit.window
    }

    /// Fail closed or open.
    pub fn on_store_error(&self) -> StoreErrorMode {
        self.on_store_error
    }

    /// What a store enforces for this budget.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// [`Budget::limit`], borrowed.
    pub(crate) fn limit_ref(&self) -> &Limit {
        &self.limit
    }

    /// The same budget with one more soft-limit warning, at `fraction` of
    /// `max_spend` (`0.8` for 80 %; at most 4 decimal places, at most
    /// [`MAX_WARN_THRESHOLDS`] thresholds). The charge that takes the
    /// window's spend (committed plus reserved) from below the threshold to
    /// at or above it emits one
    /// [`Event::SoftLimit`](crate::Event::SoftLimit) and a `tracing`
    /// warning. Each threshold is reported **once per window**: once per
    /// calendar day or month, at most once per window length for a rolling
    /// window, once for a lifetime cap — decided atomically by the store,
    /// so across every process sharing it exactly one call reports it.
    ///
    /// ```
    /// use budgetgate::{dec, Budget, BudgetError, Window};
    /// let b = Budget::new(dec!(10), Window::daily())?.warn_at(dec!(0.8))?;
    /// assert_eq!(b.warn_thresholds(), vec![dec!(8)]);
    /// // A percentage is refused, with a hint, rather than ignored.
    /// assert!(matches!(b.warn_at(dec!(80)), Err(BudgetError::WarnThreshold { .. })));
    /// # Ok::<(), budgetgate::BudgetError>(())
    /// ```
    pub fn warn_at(mut self, fraction: Decimal) -> Result<Self, BudgetError> {
        let refuse = |hint| BudgetError::WarnThreshold { fraction, hint };
        if fraction > Decimal::ONE && fraction <= Decimal::ONE_HUNDRED {
            return Err(refuse(" (a percentage? write 80 % as 0.8)"));
        }
        if fraction <= Decimal::ZERO || fraction > Decimal::ONE {
            return Err(refuse(""));
        }
        let points = fraction * Decimal::from(10_000u32);
        if points.fract() != Decimal::ZERO {
            return Err(refuse(" (finer than 0.0001)"));
        }
        // 1 ..= 10 000 after the checks above.
        let points = u16::try_from(points.mantissa() / 10i128.pow(points.scale()))
            .map_err(|_| refuse(""))?;
        self.limit = self.limit.with_warning(points)?;
        Ok(self)
    }

    /// The soft-limit thresholds as amounts, ascending (each rounded up to
    /// 10⁻⁹: a warning never comes before the exact fraction is reached).
    pub fn warn_thresholds(&self) -> Vec<Decimal> {
        self.limit
            .warn_thresholds()
            .map(|(_, nanos)| amount::from_nanos(nanos))
            .collect()
    }

    /// The soft-limit thresholds as fractions of `max_spend`, ascending.
    pub fn warn_fractions(&self) -> Vec<Decimal> {
        self.limit
            .warn_points()
            .map(|p| Decimal::new(i64::from(p), 4).normalize())
            .collect()
    }
}

/// What a store enforces: a maximum in nano-units over a window, and the
/// soft-limit thresholds to report.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    max_nanos: i128,
    /// Warning thresholds in basis points of `max_nanos` (1 ..= 10 000),
    /// ascending; 0 marks an unused slot. Eight bytes where amounts would
    /// take 64: every decision and reservation carries a limit.
    warn_points: [u16; MAX_WARN_THRESHOLDS],
    window: Window,
}

impl Limit {
    /// A limit of `max_nanos` per `window`, without warnings.
    pub const fn new(max_nanos: i128, window: Window) -> Self {
        Limit {
            max_nanos,
            warn_points: [0; MAX_WARN_THRESHOLDS],
            window,
        }
    }

    /// The same limit with one more threshold (in basis points); one it
    /// already has is not added twice.
    fn with_warning(mut self, points: u16) -> Result<Self, BudgetError> {
        if self.warn_points.contains(&points) {
            return Ok(self);
        }
        let free = self.warn_points.iter().position(|p| *p == 0).ok_or(
            BudgetError::TooManyThresholds {
                max: MAX_WARN_THRESHOLDS,
            },
        )?;
        self.warn_points[free] = points;
        self.warn_points[..=free].sort_unstable();
        Ok(self)
    }

    /// The maximum, in nano-units (see [`crate::amount`]).
    pub fn max_nanos(&self) -> i128 {
        self.max_nanos
    }

    /// The window.
    pub fn window(&self) -> Window {
        self.window
    }

    fn warn_points(&self) -> impl Iterator<Item = u16> + '_ {
        self.warn_points.iter().copied().filter(|p| *p != 0)
    }

    /// The soft-limit thresholds, ascending: `(slot, nano-units)`, the slot
    /// (0 .. [`MAX_WARN_THRESHOLDS`]) being the threshold's bit in
    /// [`ChargeOutcome::warnings`](crate::store::ChargeOutcome::warnings). A
    /// charge that takes the window's spend from below a threshold to at or
    /// above it crosses it; the store reports each threshold once per window.
    pub fn warn_thresholds(&self) -> impl Iterator<Item = (usize, i128)> + '_ {
        let max = self.max_nanos;
        self.warn_points()
            .enumerate()
            // ⌈max × points / 10 000⌉: max ≤ 10²⁴, so no overflow.
            .map(move |(slot, p)| (slot, (max * i128::from(p) + 9_999) / 10_000))
    }

    /// Whether the limit has any soft-limit threshold.
    pub fn warns(&self) -> bool {
        self.warn_points[0] != 0
    }
}

impl std::fmt::Debug for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limit")
            .field("max_nanos", &self.max_nanos)
            .field("window", &self.window)
            .field(
                "warn_nanos",
                &self.warn_thresholds().map(|(_, n)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_budget_is_legal_and_empty_window_is_not() {
        assert!(Budget::lifetime(Decimal::ZERO).is_ok());
        assert_eq!(
            Budget::rolling(Decimal::ONE, Duration::ZERO),
            Err(BudgetError::EmptyWindow)
        );
    }
}
