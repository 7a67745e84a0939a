//! [`Budget`]: how much a ledger may spend, over which [`Window`], and what to
//! do when the limit is hit ([`Mode`]) or the store fails ([`StoreErrorMode`]).

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
#[error("invalid window {input:?}: expected a positive duration such as \"30s\", \"15m\", \"1h\", \"7d\", or \"unbounded\"")]
pub struct WindowParseError {
    /// The refused text.
    pub input: String,
}

impl FromStr for Window {
    type Err = WindowParseError;

    /// Parses `"30s"`, `"15m"`, `"1h"`, `"24h"`, `"7d"`, `"500ms"` or `"unbounded"`.
    ///
    /// ```
    /// use budgetgate::Window;
    /// use std::time::Duration;
    /// assert_eq!("1h".parse::<Window>(), Ok(Window::Rolling(Duration::from_secs(3600))));
    /// assert_eq!("unbounded".parse::<Window>(), Ok(Window::Unbounded));
    /// assert!("0s".parse::<Window>().is_err());
    /// ```
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || WindowParseError {
            input: input.to_owned(),
        };
        let text = input.trim();
        if text.eq_ignore_ascii_case("unbounded") || text.eq_ignore_ascii_case("lifetime") {
            return Ok(Window::Unbounded);
        }
        if text.eq_ignore_ascii_case("daily") {
            return Ok(Window::daily());
        }
        if text.eq_ignore_ascii_case("monthly") {
            return Ok(Window::monthly());
        }
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().map_err(|_| err())?;
        let millis_per = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(err()),
        };
        let millis = n
            .checked_mul(millis_per)
            .filter(|m| *m > 0)
            .ok_or_else(err)?;
        Ok(Window::Rolling(Duration::from_millis(millis)))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Unbounded => f.write_str("unbounded"),
            Window::Rolling(d) => write!(f, "{}s", d.as_secs_f64()),
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

/// What a block does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// A block is an error (`Err(BudgetExceeded)` from a guarded function).
    #[default]
    Hard,
    /// A block is reported in the returned decision; the caller decides.
    Soft,
}

/// What happens when the store cannot be reached or errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StoreErrorMode {
    /// Block the call (reason `StoreError`). The default: no unapproved spend.
    #[default]
    FailClosed,
    /// Allow the call (reason `StoreError`) and try to record its cost.
    FailOpen,
}

/// A spend limit for a ledger.
///
/// ```
/// use budgetgate::{Budget, Window, Mode};
/// use budgetgate::dec;
/// use std::time::Duration;
///
/// let hourly = Budget::new(dec!(10.00), Window::Rolling(Duration::from_secs(3600)))?;
/// let lifetime = Budget::lifetime(dec!(250))?.soft();
/// assert_eq!(lifetime.mode(), Mode::Soft);
/// assert!(Budget::lifetime(dec!(-1)).is_err());
/// # Ok::<(), budgetgate::BudgetError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Budget {
    /// `max_spend` in nano-units, the window and the warning threshold: what
    /// the store enforces, kept in the form it is lent in so a budget stays
    /// small (decisions and reservations carry one).
    limit: Limit,
    mode: Mode,
    on_store_error: StoreErrorMode,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("max_spend", &self.max_spend())
            .field("window", &self.window())
            .field("mode", &self.mode)
            .field("on_store_error", &self.on_store_error)
            .field("warn_threshold", &self.warn_threshold())
            .finish()
    }
}

/// §11: `{"max_spend": "10", "window": "1h", "mode": "HARD", "on_store_error": "FAIL_CLOSED"}`.
impl serde::Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Budget", 4)?;
        st.serialize_field("max_spend", &self.max_spend().to_string())?;
        st.serialize_field("window", &self.window().to_string())?;
        st.serialize_field("mode", &self.mode)?;
        st.serialize_field("on_store_error", &self.on_store_error)?;
        st.end()
    }
}

/// A budget that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// `max_spend` is negative, too precise or too large.
    #[error("invalid max_spend: {0}")]
    MaxSpend(#[from] AmountError),
    /// A rolling window must be longer than zero.
    #[error("a rolling window must be longer than zero")]
    EmptyWindow,
}

impl Budget {
    /// A hard, fail-closed budget of `max_spend` per `window`.
    pub fn new(max_spend: Decimal, window: Window) -> Result<Self, BudgetError> {
        let max_nanos = amount::to_nanos(max_spend)?;
        if window == Window::Rolling(Duration::ZERO) {
            return Err(BudgetError::EmptyWindow);
        }
        Ok(Budget {
            limit: Limit::new(max_nanos, window, None),
            mode: Mode::Hard,
            on_store_error: StoreErrorMode::FailClosed,
        })
    }

    /// A budget whose parts were validated at compile time by the attributes
    /// (`max_nanos` ≤ [`amount::MAX_AMOUNT_NANOS`], the window not empty).
    pub(crate) const fn from_validated(
        max_nanos: i128,
        window: Window,
        mode: Mode,
        on_store_error: StoreErrorMode,
    ) -> Self {
        Budget {
            limit: Limit::new(max_nanos, window, None),
            mode,
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

    /// The same budget in soft mode.
    pub fn soft(self) -> Self {
        self.with_mode(Mode::Soft)
    }

    /// The same budget, failing open when the store errors.
    pub fn fail_open(self) -> Self {
        self.with_on_store_error(StoreErrorMode::FailOpen)
    }

    /// The same budget with another mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
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

    /// Hard or soft.
    pub fn mode(&self) -> Mode {
        self.mode
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

    /// The same budget with a soft-limit warning at `fraction` of
    /// `max_spend` (e.g. `0.8`): the charge that crosses it emits one
    /// [`Event::SoftLimit`](crate::Event::SoftLimit) and a `tracing` warning —
    /// once per crossing, decided atomically by the store, so across all
    /// processes exactly one call reports it. A fraction outside `(0, 1]` is
    /// ignored.
    ///
    /// ```
    /// use budgetgate::{Budget, Window};
    /// use budgetgate::dec;
    /// let b = Budget::new(dec!(10), Window::daily())?.warn_at(dec!(0.8));
    /// assert_eq!(b.warn_threshold(), Some(dec!(8)));
    /// # Ok::<(), budgetgate::BudgetError>(())
    /// ```
    pub fn warn_at(mut self, fraction: Decimal) -> Self {
        let warn = (fraction > Decimal::ZERO && fraction <= Decimal::ONE)
            .then(|| amount::to_nanos(amount::round_up(self.max_spend() * fraction)).ok())
            .flatten();
        self.limit = Limit::new(self.limit.max_nanos, self.limit.window, warn);
        self
    }

    /// The soft-limit threshold as an amount, if set.
    pub fn warn_threshold(&self) -> Option<Decimal> {
        self.limit.warn_nanos().map(amount::from_nanos)
    }
}

/// What a store enforces: a maximum in nano-units over a window, and the
/// soft-limit threshold to report.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    max_nanos: i128,
    /// [`Limit::NO_WARNING`] when there is none: an `Option<i128>` would
    /// take 32 bytes, and every decision and reservation carries a limit.
    warn_nanos: i128,
    window: Window,
}

impl Limit {
    /// The `warn_nanos` of a limit without a warning threshold (no spend can
    /// reach it: amounts stop at [`amount::MAX_AMOUNT_NANOS`]).
    const NO_WARNING: i128 = i128::MAX;

    /// A limit of `max_nanos` per `window`, warning at `warn_nanos`.
    pub const fn new(max_nanos: i128, window: Window, warn_nanos: Option<i128>) -> Self {
        Limit {
            max_nanos,
            warn_nanos: match warn_nanos {
                Some(w) => w,
                None => Self::NO_WARNING,
            },
            window,
        }
    }

    /// The maximum, in nano-units (see [`crate::amount`]).
    pub fn max_nanos(&self) -> i128 {
        self.max_nanos
    }

    /// The window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The soft-limit threshold in nano-units: a charge that takes the
    /// window's spend from below it to at or above it is reported.
    pub fn warn_nanos(&self) -> Option<i128> {
        (self.warn_nanos != Self::NO_WARNING).then_some(self.warn_nanos)
    }
}

impl std::fmt::Debug for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limit")
            .field("max_nanos", &self.max_nanos)
            .field("window", &self.window)
            .field("warn_nanos", &self.warn_nanos())
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
