//! [`Budget`]: how much a ledger may spend, over which [`Window`], what to do
//! when the store fails ([`StoreErrorMode`]), and when to warn.
//!
//! Whether a block is an error or a value is not part of the budget: the
//! attribute decides (`#[guard]` returns `Err`, `#[guard_result]` a
//! [`Guarded`](crate::Guarded)), and the [`Engine`](crate::Engine) API
//! always returns the [`Decision`](crate::Decision).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::amount::{self, AmountError};

/// The span of time a budget's spend is counted over.
///
/// Windows are part of the identity of what a store counts: a ledger keeps one
/// running total per window it is used with, so several caps over different
/// windows can share a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// Spend with a timestamp older than `now − duration` no longer counts.
    Rolling(Duration),
    /// A lifetime cap: spend never leaves the window.
    Unbounded,
    /// A calendar day: spend resets at midnight UTC, shifted by a fixed
    /// offset (`utc_offset_minutes = 60` resets at midnight UTC+1).
    Daily {
        /// Minutes east of UTC.
        utc_offset_minutes: i16,
    },
    /// A calendar month: spend resets at 00:00 on the 1st, UTC plus a fixed
    /// offset.
    Monthly {
        /// Minutes east of UTC.
        utc_offset_minutes: i16,
    },
}

const DAY_US: i64 = 86_400_000_000;

impl Window {
    /// Calendar days at UTC boundaries.
    pub const fn daily() -> Self {
        Window::Daily {
            utc_offset_minutes: 0,
        }
    }

    /// Calendar months at UTC boundaries.
    pub const fn monthly() -> Self {
        Window::Monthly {
            utc_offset_minutes: 0,
        }
    }

    /// For calendar windows, the start of the period containing `at_us`
    /// (µs since the epoch); `None` for rolling and unbounded windows.
    ///
    /// ```
    /// use budgetgate::Window;
    /// // 2026-03-15T10:00:00Z → 2026-03-01T00:00:00Z
    /// let at = 1_773_568_800_000_000;
    /// assert_eq!(Window::monthly().period_start(at), Some(1_772_323_200_000_000));
    /// assert_eq!(Window::daily().period_start(at), Some(1_773_532_800_000_000));
    /// ```
    pub fn period_start(&self, at_us: i64) -> Option<i64> {
        let (offset, monthly) = match *self {
            Window::Daily { utc_offset_minutes } => (utc_offset_minutes, false),
            Window::Monthly { utc_offset_minutes } => (utc_offset_minutes, true),
            _ => return None,
        };
        let offset_us = i64::from(offset) * 60_000_000;
        let local = at_us.saturating_add(offset_us);
        let days = local.div_euclid(DAY_US);
        let start_days = if monthly {
            let (y, m, _) = civil_from_days(days);
            days_from_civil(y, m, 1)
        } else {
            days
        };
        Some(start_days * DAY_US - offset_us)
    }

    /// For calendar windows, when the period containing `at_us` ends (the
    /// next reset).
    pub fn period_end(&self, at_us: i64) -> Option<i64> {
        let start = self.period_start(at_us)?;
        match *self {
            Window::Daily { .. } => Some(start + DAY_US),
            Window::Monthly { utc_offset_minutes } => {
                let offset_us = i64::from(utc_offset_minutes) * 60_000_000;
                let (y, m, _) = civil_from_days((start + offset_us).div_euclid(DAY_US));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Some(days_from_civil(y, m, 1) * DAY_US - offset_us)
            }
            _ => None,
        }
    }

    /// Whether the window resets on calendar boundaries.
    pub fn is_calendar(&self) -> bool {
        matches!(self, Window::Daily { .. } | Window::Monthly { .. })
    }

    /// The rolling window length in microseconds (the stores' time unit), or
    /// `None` for an unbounded window.
    pub fn rolling_micros(&self) -> Option<i64> {
        match self {
            Window::Rolling(d) => Some(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            _ => None,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm, exact for every `i64` day the stores can hold).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A window string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid window {input:?}: expected \"daily\", \"monthly\" (optionally shifted from UTC, e.g. \"daily+60min\"), \"unbounded\", or a positive duration such as \"30s\", \"15m\", \"1h\", \"7d\"")]
#[non_exhaustive]
pub struct WindowParseError {
    /// The refused text.
    pub input: String,
}

/// The longest duration anything in budgetgate holds — a rolling window, a
/// reservation TTL, a store's retention: 100 years. Longer is refused
/// (windows) or clamped (settings), so no store ever computes an overflowed
/// or negative time; a lifetime cap is [`Window::Unbounded`].
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `d` clamped to `[min, MAX_DURATION]`.
pub(crate) fn clamp_duration(d: Duration, min: Duration) -> Duration {
    d.clamp(min, MAX_DURATION)
}

/// The largest shift of a calendar window from UTC, in minutes (24 hours).
pub const MAX_UTC_OFFSET_MINUTES: i16 = 1440;

/// Units a rolling window is written in, largest first, in nanoseconds.
const UNITS: [(&str, u128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

impl FromStr for Window {
    type Err = WindowParseError;

    /// Parses `"30s"`, `"15m"`, `"1h"`, `"24h"`, `"7d"`, `"500ms"`, `"250us"`,
    /// `"unbounded"`, `"daily"`, `"monthly"`, and calendar windows shifted
    /// from UTC: `"daily+60min"`, `"monthly-300min"` (at most ±24 h). Every
    /// window's [`Display`](fmt::Display) form parses back to it.
    ///
    /// ```
    /// use budgetgate::Window;
    /// use std::time::Duration;
    /// assert_eq!("1h".parse::<Window>(), Ok(Window::Rolling(Duration::from_secs(3600))));
    /// assert_eq!("unbounded".parse::<Window>(), Ok(Window::Unbounded));
    /// assert_eq!("daily+60min".parse::<Window>(), Ok(Window::Daily { utc_offset_minutes: 60 }));
    /// assert!("0s".parse::<Window>().is_err());
    /// let w = Window::Rolling(Duration::from_millis(1500));
    /// assert_eq!(w.to_string(), "1500ms");
    /// assert_eq!(w.to_string().parse::<Window>(), Ok(w));
    /// ```
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || WindowParseError {
            input: input.to_owned(),
        };
        let text = input.trim();
        let lower = text.to_ascii_lowercase();
        if lower == "unbounded" || lower == "lifetime" {
            return Ok(Window::Unbounded);
        }
        for (name, monthly) in [("daily", false), ("monthly", true)] {
            if let Some(rest) = lower.strip_prefix(name) {
                let offset = if rest.is_empty() {
                    0
                } else {
                    let digits = rest.strip_suffix("min").ok_or_else(err)?;
                    let sign = digits.chars().next().ok_or_else(err)?;
                    if sign != '+' && sign != '-' {
                        return Err(err());
                    }
                    let minutes: i16 = digits.parse().map_err(|_| err())?;
                    if minutes.unsigned_abs() > MAX_UTC_OFFSET_MINUTES.unsigned_abs() {
                        return Err(err());
                    }
                    minutes
                };
                return Ok(if monthly {
                    Window::Monthly {
                        utc_offset_minutes: offset,
                    }
                } else {
                    Window::Daily {
                        utc_offset_minutes: offset,
                    }
                });
            }
        }
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (digits, unit) = text.split_at(split);
        let n: u128 = digits.parse().map_err(|_| err())?;
        let unit = if unit == "µs" { "us" } else { unit };
        let per = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, per)| *per)
            .ok_or_else(err)?;
        let nanos = n.checked_mul(per).filter(|n| *n > 0).ok_or_else(err)?;
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| err())?;
        // The remainder is below 10⁹.
        let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| err())?;
        Ok(Window::Rolling(Duration::new(secs, sub)))
    }
}

impl fmt::Display for Window {
    /// `"unbounded"`, `"daily"`, `"monthly+60min"`, or a rolling length in
    /// the largest unit that writes it exactly (`"1h"`, `"90m"`, `"500ms"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Unbounded => f.write_str("unbounded"),
            Window::Rolling(d) => {
                let nanos = d.as_nanos();
                let (name, per) = UNITS
                    .iter()
                    .find(|(_, per)| nanos % per == 0)
                    .copied()
                    .unwrap_or(("ns", 1));
                write!(f, "{}{name}", nanos / per)
            }
            Window::Daily {
                utc_offset_minutes: 0,
            } => f.write_str("daily"),
            Window::Monthly {
                utc_offset_minutes: 0,
            } => f.write_str("monthly"),
            Window::Daily {
                utc_offset_minutes: o,
            } => write!(f, "daily{o:+}min"),
            Window::Monthly {
                utc_offset_minutes: o,
            } => write!(f, "monthly{o:+}min"),
        }
    }
}

/// Written as its [`Display`](fmt::Display) form (`"1h"`, `"daily"`).
impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read from the strings [`Window::from_str`] accepts.
impl<'de> serde::Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
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
    /// store: the decision's reason says so, and a bounded call's commit
    /// records its actual when the store answers again.
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
    fn window_parsing() {
        assert_eq!("30s".parse(), Ok(Window::Rolling(Duration::from_secs(30))));
        assert_eq!("15m".parse(), Ok(Window::Rolling(Duration::from_secs(900))));
        assert_eq!(
            "7d".parse(),
            Ok(Window::Rolling(Duration::from_secs(604_800)))
        );
        assert_eq!(
            "250ms".parse(),
            Ok(Window::Rolling(Duration::from_millis(250)))
        );
        for bad in [
            "",
            "h",
            "1",
            "1y",
            "-1h",
            "0m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000i64, -1, 0, 59, 60, 10_957, 20_454, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn calendar_periods() {
        let at = |y, m, d, h: i64| days_from_civil(y, m, d) * DAY_US + h * 3_600_000_000;
        let monthly = Window::monthly();
        assert_eq!(
            monthly.period_start(at(2024, 2, 29, 23)),
            Some(at(2024, 2, 1, 0))
        );
        assert_eq!(
            monthly.period_end(at(2024, 2, 29, 23)),
            Some(at(2024, 3, 1, 0))
        );
        assert_eq!(
            monthly.period_end(at(2025, 12, 31, 23)),
            Some(at(2026, 1, 1, 0))
        );
        let daily = Window::daily();
        assert_eq!(
            daily.period_start(at(2026, 1, 1, 0)),
            Some(at(2026, 1, 1, 0))
        );
        assert_eq!(
            daily.period_start(at(2026, 1, 1, 0) - 1),
            Some(at(2025, 12, 31, 0))
        );
        // UTC+2: the day starts at 22:00 UTC the day before.
        let plus2 = Window::Daily {
            utc_offset_minutes: 120,
        };
        assert_eq!(
            plus2.period_start(at(2026, 1, 1, 23)),
            Some(at(2026, 1, 1, 22))
        );
        assert_eq!(
            plus2.period_start(at(2026, 1, 1, 21)),
            Some(at(2025, 12, 31, 22))
        );
        assert_eq!(Window::Unbounded.period_start(0), None);
        assert_eq!("daily".parse(), Ok(Window::daily()));
        assert_eq!("monthly".parse(), Ok(Window::monthly()));
    }

    #[test]
    fn zero_budget_is_legal_and_empty_window_is_not() {
        assert!(Budget::lifetime(Decimal::ZERO).is_ok());
        assert_eq!(
            Budget::rolling(Decimal::ONE, Duration::ZERO),
            Err(BudgetError::EmptyWindow)
        );
    }
}
