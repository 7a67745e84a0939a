//! [`Window`]: the span of time a budget's spend is counted over — rolling,
//! unbounded, or calendar days and months at UTC boundaries shifted by a
//! fixed offset — with its text form (parsed, printed, serialized) and the
//! calendar arithmetic the stores share.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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
}
