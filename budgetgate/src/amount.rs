//! Exact money: conversion between [`Decimal`] amounts and the integer
//! nano-units (10⁻⁹) every store keeps.
//!
//! Stores never see a `Decimal` or a float. An amount enters the library as a
//! `Decimal`, is checked here once, and travels as an `i128` count of
//! nano-units. 10⁻⁹ is fine enough for per-token LLM prices and an `i128`
//! covers far more than the 10¹² currency units per ledger the contract asks
//! for; the stores document their own largest value ([`MAX_AMOUNT_NANOS`]).

use rust_decimal::Decimal;

/// Decimal places every store holds exactly: amounts are integers of 10⁻⁹.
pub const SCALE: u32 = 9;

/// Nano-units in one currency unit.
pub const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest amount any store accepts: 10¹⁵ currency units (in nano-units).
///
/// Far above any real budget (the contract asks for 10¹²), and small enough
/// that the Redis scripts' two-limb integers (whole units + nano remainder,
/// each a Lua double) stay exact: running totals are exact up to 2⁵³ ≈ 9×10¹⁵
/// units, 9,000 maximal amounts.
pub const MAX_AMOUNT_NANOS: i128 = 1_000_000_000_000_000 * NANOS_PER_UNIT;

/// 10⁰ … 10⁹.
const POWERS_OF_TEN: [i128; SCALE as usize + 1] = {
    let mut p = [1i128; SCALE as usize + 1];
    let mut i = 1;
    while i < p.len() {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// Why an amount was refused. Carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// Costs, estimates, actuals and budgets are never negative.
    #[error("amount {value} is negative; costs and budgets must be >= 0")]
    Negative {
        /// The refused value.
        value: Decimal,
    },
    /// More than [`SCALE`] decimal places: storing it would round it.
    #[error("amount {value} has more than 9 decimal places; budgetgate stores amounts exactly to 0.000000001 and never rounds them silently")]
    TooPrecise {
        /// The refused value.
        value: Decimal,
    },
    /// Larger than [`MAX_AMOUNT_NANOS`].
    #[error("amount {value} is larger than the largest supported amount (10^15)")]
    TooLarge {
        /// The refused value.
        value: Decimal,
    },
}

/// Converts a non-negative `Decimal` with at most 9 decimal places to nano-units.
///
/// ```
/// use budgetgate::amount::to_nanos;
/// use budgetgate::dec;
/// assert_eq!(to_nanos(dec!(0.25)), Ok(250_000_000));
/// assert!(to_nanos(dec!(-1)).is_err());
/// assert!(to_nanos(dec!(0.0000000001)).is_err());
/// ```
pub fn to_nanos(value: Decimal) -> Result<i128, AmountError> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(AmountError::Negative { value });
    }
    // Fast path: most amounts already have at most SCALE decimal places.
    let normalized = if value.scale() <= SCALE {
        value
    } else {
        value.normalize()
    };
    if normalized.scale() > SCALE {
        return Err(AmountError::TooPrecise { value });
    }
    // mantissa * 10^(SCALE - scale) is exact: the scale is at most SCALE.
    let factor = POWERS_OF_TEN[(SCALE - normalized.scale()) as usize];
    let mantissa = normalized.mantissa();
    // A mantissa above the maximum is too large whatever the factor; below
    // it (< 2⁸⁰) times a factor ≤ 10⁹ (< 2³⁰) cannot overflow, so the
    // multiplication needs no (slow) overflow check.
    if mantissa > MAX_AMOUNT_NANOS {
        return Err(AmountError::TooLarge { value });
    }
    let nanos = mantissa * factor;
    if nanos > MAX_AMOUNT_NANOS {
        return Err(AmountError::TooLarge { value });
    }
    Ok(nanos.max(0))
}

/// Converts nano-units back to a `Decimal` (normalized: `1.5`, not `1.500000000`).
///
/// Values outside what a `Decimal` can hold saturate; the stores never produce
/// them because every input passed [`to_nanos`].
pub fn from_nanos(nanos: i128) -> Decimal {
    Decimal::try_from_i128_with_scale(nanos, SCALE)
        .map(|d| d.normalize())
        .unwrap_or(if nanos < 0 {
            Decimal::MIN
        } else {
            Decimal::MAX
        })
}

/// Rounds a computed cost *up* to the next nano-unit, so a helper that derives
/// a cost (pricing, per-token arithmetic) never under-charges and always
/// produces an amount the stores accept.
///
/// ```
/// use budgetgate::amount::round_up;
/// use budgetgate::dec;
/// assert_eq!(round_up(dec!(0.0000000001)), dec!(0.000000001));
/// assert_eq!(round_up(dec!(1.5)), dec!(1.5));
/// ```
pub fn round_up(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(SCALE, rust_decimal::RoundingStrategy::AwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use budgetgate::dec;

    #[test]
    fn round_trips_exactly() {
        for d in [
            dec!(0),
            dec!(0.1),
            dec!(0.000000001),
            dec!(123456789012.123456789),
        ] {
            assert_eq!(from_nanos(to_nanos(d).unwrap()), d);
        }
    }

    #[test]
    fn trailing_zeros_beyond_scale_are_fine() {
        assert_eq!(to_nanos(dec!(1.0000000000000)), Ok(NANOS_PER_UNIT));
    }

    #[test]
    fn rejects_with_value() {
        let err = to_nanos(dec!(-0.5)).unwrap_err();
        assert!(err.to_string().contains("-0.5"), "{err}");
        let err = to_nanos(dec!(0.0000000015)).unwrap_err();
        assert!(err.to_string().contains("0.0000000015"), "{err}");
        assert!(matches!(
            to_nanos(Decimal::MAX),
            Err(AmountError::TooLarge { .. })
        ));
    }

    /// The largest amount is accepted and one unit of the last place more is
    /// refused, at every scale (the multiplication skips its overflow check).
    #[test]
    fn the_maximum_is_exact_at_every_scale() {
        for scale in 0..=SCALE {
            let mantissa = MAX_AMOUNT_NANOS / POWERS_OF_TEN[(SCALE - scale) as usize];
            let max = Decimal::from_i128_with_scale(mantissa, scale);
            assert_eq!(to_nanos(max), Ok(MAX_AMOUNT_NANOS), "scale {scale}");
            let above = Decimal::from_i128_with_scale(mantissa + 1, scale);
            assert!(
                matches!(to_nanos(above), Err(AmountError::TooLarge { .. })),
                "scale {scale}"
            );
        }
        // Mantissas far above the maximum, at the scale that multiplies most.
        for mantissa in [MAX_AMOUNT_NANOS + 1, 1 << 95, (1 << 96) - 1] {
            let d = Decimal::from_i128_with_scale(mantissa, 0);
            assert!(matches!(to_nanos(d), Err(AmountError::TooLarge { .. })));
        }
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(to_nanos(-dec!(0)), Ok(0));
    }
}
