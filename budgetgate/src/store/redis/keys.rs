//! The key layout: a ledger's encoded base (its hash tag), window ids,
//! pause fields, and the numbers scripts receive (µs, limbs, TTL margins).

use std::time::Duration;

use super::resp::push_i64;
use crate::budget::Window;
use crate::ledger::Ledger;
use crate::pause::PauseScope;
use crate::store::Nanos;

/// Nano-units per whole unit.
pub(super) const NANOS: i128 = 1_000_000_000;

/// Percent-encodes every byte outside `[A-Za-z0-9._~-]`, so parts never
/// contain `:` (the separator), `{`/`}` (hash tags), `*`, spaces or newlines.
pub(super) fn encode_part(out: &mut String, part: &str) {
    for &b in part.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

pub(super) fn parse_pause_field(field: &str) -> Option<PauseScope> {
    if field == "*" {
        return Some(PauseScope::All);
    }
    if let Some(ns) = field.strip_prefix("n:") {
        return Some(PauseScope::Namespace(decode_part(ns)?));
    }
    let parts: Vec<&str> = field.strip_prefix("l:")?.split(':').collect();
    match parts.as_slice() {
        [ns, res, p] => Some(PauseScope::Ledger(Ledger::new(
            decode_part(ns)?,
            decode_part(res)?,
            decode_part(p)?,
        ))),
        _ => None,
    }
}

/// Escapes glob characters for `SCAN MATCH`.
pub(super) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The inverse of [`encode_part`].
pub(super) fn decode_part(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A window's id in the scripts; it says the window's length (a rolling
/// window's in µs, as [`window_us`]).
pub(super) fn wid(window: Window) -> String {
    match window {
        Window::Unbounded => "u".to_owned(),
        Window::Rolling(_) => format!("r{}", window_us(window)),
        Window::Daily { utc_offset_minutes } => format!("d{utc_offset_minutes}"),
        Window::Monthly { utc_offset_minutes } => format!("m{utc_offset_minutes}"),
    }
}

/// A window's length for the scripts: µs for rolling (at least 1), 0
/// unbounded, -1 calendar.
pub(super) fn window_us(window: Window) -> i64 {
    match window.rolling_micros() {
        Some(us) => us.clamp(1, micros(crate::budget::MAX_DURATION)),
        None if window.is_calendar() => -1,
        None => 0,
    }
}

/// How long TTLs must cover beyond a window: a day, or the reservation TTL,
/// plus an hour.
pub(super) fn margin_ms(ttl: Duration) -> u128 {
    crate::budget::clamp_duration(ttl, Duration::ZERO)
        .as_millis()
        .max(86_400_000)
        + 3_600_000
}

/// A duration for the scripts, in µs, at most
/// [`MAX_DURATION`](crate::budget::MAX_DURATION): they add it to the time
/// and keep every number an exact integer below 2^53.
pub(super) fn micros(d: Duration) -> i64 {
    i64::try_from(crate::budget::clamp_duration(d, Duration::ZERO).as_micros()).unwrap_or(i64::MAX)
}

pub(super) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `nanos` as (whole units, nano remainder), each exact in a Lua double
/// (amounts are at most [`MAX_AMOUNT_NANOS`](crate::amount::MAX_AMOUNT_NANOS)).
pub(super) fn limbs(nanos: Nanos) -> (i64, i64) {
    let units = i64::try_from(nanos.div_euclid(NANOS)).unwrap_or(i64::MAX);
    let rest = i64::try_from(nanos.rem_euclid(NANOS)).unwrap_or(0);
    (units, rest)
}

/// An amount as the scripts write it into entries: `"units|nanos"`.
pub(super) fn amount_text(nanos: Nanos) -> Vec<u8> {
    let (units, rest) = limbs(nanos);
    let mut out = Vec::with_capacity(24);
    push_i64(&mut out, units);
    out.push(b'|');
    push_i64(&mut out, rest);
    out
}

/// `base` followed by `suffix`, in one allocation.
pub(super) fn key(base: &str, suffix: &str) -> String {
    let mut key = String::with_capacity(base.len() + suffix.len() + 32);
    key.push_str(base);
    key.push_str(suffix);
    key
}

/// `"idle_ms:margin_ms"`: how long a ledger with a lifetime window is
/// kept, and what is added to windows' lengths.
pub(super) fn keep_arg(idle_ttl: Duration, margin_ms: u128) -> Vec<u8> {
    format!("{}:{margin_ms}", idle_ttl.as_millis()).into_bytes()
}
