//! Compile-time checks of literal amounts and windows, with the runtime's
//! rules: amounts ≥ 0, at most 9 decimal places, at most 10¹⁵; windows > 0.

use proc_macro2::TokenStream;
use quote::quote;
use rust_decimal::Decimal;
use syn::{Lit, LitStr};

/// Decimal places the stores hold (the runtime's `amount::SCALE`).
const SCALE: u32 = 9;

/// A validated literal amount.
#[derive(Clone)]
pub struct Amount {
    pub value: Decimal,
    pub nanos: i128,
}

impl Amount {
    /// `Decimal` construction from parts, usable in `const` context.
    pub fn decimal_tokens(&self, krate: &TokenStream) -> TokenStream {
        let m = self.value.mantissa();
        let lo = (m & 0xFFFF_FFFF) as u32;
        let mid = ((m >> 32) & 0xFFFF_FFFF) as u32;
        let hi = ((m >> 64) & 0xFFFF_FFFF) as u32;
        let scale = self.value.scale();
        quote!(#krate::__private::decimal(#lo, #mid, #hi, #scale))
    }
}

/// Parses a string or integer literal as an amount.
pub fn amount(lit: &Lit) -> syn::Result<Amount> {
    let span = lit.span();
    let text = match lit {
        Lit::Str(s) => s.value(),
        Lit::Int(i) => i.base10_digits().to_owned(),
        Lit::Float(_) => {
            return Err(syn::Error::new(
                span,
                "floating-point amounts are not exact; write the amount as a string literal, e.g. \"0.05\"",
            ))
        }
        _ => {
            return Err(syn::Error::new(
                span,
                "expected an amount as a string literal, e.g. \"0.05\"",
            ))
        }
    };
    let trimmed = text.trim();
    let value: Decimal = trimmed
        .parse()
        .map_err(|_| syn::Error::new(span, format!("invalid decimal amount {trimmed:?}")))?;
    // `parse` rounds digits beyond 28 places; insist on an exact reading.
    if value.is_sign_negative() && !value.is_zero() {
        return Err(syn::Error::new(
            span,
            format!("amount {trimmed} is negative: costs, estimates and budgets must be >= 0"),
        ));
    }
    let digits_after_point = trimmed
        .split_once('.')
        .map_or(0, |(_, frac)| frac.trim_end_matches('0').len());
    let normalized = value.normalize();
    if digits_after_point as u32 > SCALE || normalized.scale() > SCALE {
        return Err(syn::Error::new(
            span,
            format!(
                "amount {trimmed} has more than 9 decimal places; budgetgate stores amounts exactly to 0.000000001"
            ),
        ));
    }
    let nanos = normalized
        .mantissa()
        .checked_mul(10i128.pow(SCALE - normalized.scale()))
        .filter(|n| *n <= 1_000_000_000_000_000_000_000_000)
        .ok_or_else(|| {
            syn::Error::new(
                span,
                format!(
                    "amount {trimmed} is larger than 10^15, the largest amount budgetgate stores"
                ),
            )
        })?;
    Ok(Amount {
        value: normalized,
        nanos,
    })
}

/// A validated window literal.
pub enum WindowLit {
    Unbounded,
    RollingMillis(u64),
    Daily,
    Monthly,
}

/// Parses `"30s"`, `"15m"`, `"1h"`, `"7d"`, `"500ms"` or `"unbounded"`.
pub fn window(lit: &LitStr) -> syn::Result<WindowLit> {
    let text = lit.value();
    let t = text.trim();
    let err = |why: &str| syn::Error::new(lit.span(), format!("invalid window {t:?}: {why}"));
    if t.eq_ignore_ascii_case("unbounded") || t.eq_ignore_ascii_case("lifetime") {
        return Ok(WindowLit::Unbounded);
    }
    if t.eq_ignore_ascii_case("daily") {
        return Ok(WindowLit::Daily);
    }
    if t.eq_ignore_ascii_case("monthly") {
        return Ok(WindowLit::Monthly);
    }
    let expected =
        "expected \"daily\", \"monthly\", \"unbounded\", or a positive duration such as \"30s\", \"15m\", \"1h\", \"7d\"";
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| err(expected))?;
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| err(expected))?;
    let per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(err(expected)),
    };
    match n.checked_mul(per) {
        Some(0) => Err(err("a window must be longer than zero")),
        Some(ms) if ms > 100 * 365 * 86_400_000 => Err(err(
            "a rolling window may be at most 100 years (for a lifetime cap use \"unbounded\")",
        )),
        Some(ms) => Ok(WindowLit::RollingMillis(ms)),
        None => Err(err("too long")),
    }
}

/// `budgetgate::dec!`'s parser: an optional `-` and a number (`1`, `0.25`,
/// `"0.25"`), read from its source text — never through a float — into the
/// parts of a `Decimal`: `(lo, mid, hi, negative, scale)`.
pub fn decimal_parts(input: TokenStream) -> syn::Result<TokenStream> {
    let mut tokens = input.into_iter().peekable();
    let negative =
        matches!(tokens.peek(), Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == '-');
    if negative {
        tokens.next();
    }
    let lit = match (tokens.next(), tokens.next()) {
        (Some(tt), None) => syn::parse2::<Lit>(tt.into()).map_err(|e| {
            syn::Error::new(e.span(), "dec! takes one decimal number, e.g. dec!(0.25)")
        })?,
        (None, _) => {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "dec! takes one decimal number, e.g. dec!(0.25)",
            ))
        }
        (Some(_), Some(extra)) => {
            return Err(syn::Error::new(
                extra.span(),
                "dec! takes one decimal number, e.g. dec!(0.25)",
            ))
        }
    };
    let (text, span) = match &lit {
        Lit::Int(i) if i.suffix().is_empty() => (i.base10_digits().to_owned(), i.span()),
        Lit::Float(f) if f.suffix().is_empty() => (f.base10_digits().to_owned(), f.span()),
        Lit::Str(s) => (s.value().trim().to_owned(), s.span()),
        other => {
            return Err(syn::Error::new(
                other.span(),
                "dec! takes a decimal number without a type suffix, e.g. dec!(0.25)",
            ))
        }
    };
    let valid = !text.is_empty()
        && !text.starts_with('.')
        && !text.ends_with('.')
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.matches('.').count() <= 1;
    let value: Option<Decimal> = valid.then(|| text.parse().ok()).flatten();
    let exact = value.is_some_and(|v| {
        let places = text.split_once('.').map_or(0, |(_, f)| f.len());
        v.scale() as usize == places
    });
    let Some(value) = value.filter(|_| exact) else {
        let why = if text.contains(['e', 'E']) {
            format!("dec! takes a number written out, without an exponent: {text:?} cannot be read exactly")
        } else {
            format!("{text:?} is not a decimal number that fits a Decimal exactly (digits with an optional point, at most 28 of them)")
        };
        return Err(syn::Error::new(span, why));
    };
    let m = value.mantissa();
    let lo = (m & 0xFFFF_FFFF) as u32;
    let mid = ((m >> 32) & 0xFFFF_FFFF) as u32;
    let hi = ((m >> 64) & 0xFFFF_FFFF) as u32;
    let scale = value.scale();
    let negative = negative && !value.is_zero();
    Ok(quote!((#lo, #mid, #hi, #negative, #scale)))
}
