//! Exact amounts in request bodies: a JSON string (`"0.05"`) or a JSON
//! number (`0.05`), read from its literal text — never through `f64` — and
//! refused when negative, finer than 10⁻⁹ or out of range.

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A validated amount (≥ 0, at most 9 decimal places).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub Decimal);

/// Parses an amount's text.
pub fn parse(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the amount is empty".into());
    }
    let value = if t.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        t.parse::<Decimal>()
    }
    .map_err(|e| format!("the amount {t:?} is not a decimal number: {e}"))?;
    check(value).map_err(|e| format!("the amount {t}: {e}"))
}

/// Refuses negative, over-precise or too large amounts.
pub fn check(value: Decimal) -> Result<Decimal, String> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err("is negative (amounts must be ≥ 0)".into());
    }
    if value.normalize().scale() > 9 {
        return Err("has more than 9 decimal places (the finest unit is 10⁻⁹)".into());
    }
    budgetgate::amount::to_nanos(value).map_err(|e| e.to_string())?;
    Ok(value)
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get();
        let literal = if text.starts_with('"') {
            serde_json::from_str::<String>(text).map_err(D::Error::custom)?
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            text.to_owned()
        } else {
            return Err(D::Error::custom(format!(
                "expected an amount as a string (\"0.05\") or a number, found {text}"
            )));
        };
        parse(&literal).map(Amount).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct A {
        a: Amount,
    }

    fn read(json: &str) -> Result<Decimal, String> {
        serde_json::from_str::<A>(json)
            .map(|a| a.a.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn exact_or_refused() {
        assert_eq!(read(r#"{"a": "0.05"}"#).unwrap().to_string(), "0.05");
        assert_eq!(read(r#"{"a": 0.1}"#).unwrap().to_string(), "0.1");
        assert_eq!(read(r#"{"a": 1e-3}"#).unwrap().to_string(), "0.001");
        assert_eq!(read(r#"{"a": 12}"#).unwrap().to_string(), "12");
        assert!(read(r#"{"a": "-1"}"#).unwrap_err().contains("negative"));
        assert!(read(r#"{"a": 0.0000000001}"#)
            .unwrap_err()
            .contains("9 decimal"));
        assert!(read(r#"{"a": "abc"}"#)
            .unwrap_err()
            .contains("not a decimal"));
        assert!(read(r#"{"a": null}"#).is_err());
        assert!(read(r#"{"a": true}"#).is_err());
    }
}
