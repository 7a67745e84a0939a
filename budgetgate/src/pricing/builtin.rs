//! The built-in price table.

use rust_decimal::Decimal;

use super::{ModelPrice, PriceTable, TierPrice};

/// The date the built-in prices were taken from the providers' price pages.
pub const BUILTIN_PRICES_AS_OF: &str = "2025-06-15";

impl PriceTable {
    /// The built-in table (prices of [`BUILTIN_PRICES_AS_OF`]).
    pub fn builtin() -> Self {
        let d = |s: &str| s.parse::<Decimal>().unwrap_or(Decimal::MAX);
        let mut t = PriceTable {
            as_of: Some(BUILTIN_PRICES_AS_OF.to_owned()),
            ..Self::default()
        };
        // (model, input, cached input, cache write, output) per million tokens.
        type Row = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            &'static str,
        );
        let rows: &[Row] = &[
            ("gpt-4o", "2.50", Some("1.25"), None, "10.00"),
            ("gpt-4o-mini", "0.15", Some("0.075"), None, "0.60"),
            ("gpt-4.1", "2.00", Some("0.50"), None, "8.00"),
            ("gpt-4.1-mini", "0.40", Some("0.10"), None, "1.60"),
            ("gpt-4.1-nano", "0.10", Some("0.025"), None, "0.40"),
            ("o1", "15.00", Some("7.50"), None, "60.00"),
            ("o3", "2.00", Some("0.50"), None, "8.00"),
            ("o3-mini", "1.10", Some("0.55"), None, "4.40"),
            ("o4-mini", "1.10", Some("0.275"), None, "4.40"),
            ("text-embedding-3-small", "0.02", None, None, "0"),
            ("text-embedding-3-large", "0.13", None, None, "0"),
            (
                "claude-opus-4",
                "15.00",
                Some("1.50"),
                Some("18.75"),
                "75.00",
            ),
            (
                "claude-sonnet-4",
                "3.00",
                Some("0.30"),
                Some("3.75"),
                "15.00",
            ),
            (
                "claude-3-7-sonnet",
                "3.00",
                Some("0.30"),
                Some("3.75"),
                "15.00",
            ),
            (
                "claude-3-5-sonnet",
                "3.00",
                Some("0.30"),
                Some("3.75"),
                "15.00",
            ),
            (
                "claude-3-5-haiku",
                "0.80",
                Some("0.08"),
                Some("1.00"),
                "4.00",
            ),
            ("gemini-2.5-pro", "1.25", Some("0.31"), None, "10.00"),
            ("gemini-2.5-flash", "0.30", Some("0.075"), None, "2.50"),
            ("gemini-2.0-flash", "0.10", Some("0.025"), None, "0.40"),
            ("mistral-large-latest", "2.00", None, None, "6.00"),
            ("mistral-medium-latest", "0.40", None, None, "2.00"),
            ("mistral-small-latest", "0.10", None, None, "0.30"),
            ("codestral-latest", "0.30", None, None, "0.90"),
            ("deepseek-chat", "0.27", Some("0.07"), None, "1.10"),
            ("deepseek-reasoner", "0.55", Some("0.14"), None, "2.19"),
        ];
        for (model, input, cached, write, output) in rows {
            let mut p = ModelPrice::per_million(d(input), d(output));
            if let Some(c) = cached {
                p = p.cached_per_million(d(c));
            }
            if let Some(w) = write {
                p = p.cache_write_per_million(d(w));
            }
            t.insert(*model, p);
        }
        // Anthropic's one-hour cache writes: twice the input price.
        for (model, write_1h) in [
            ("claude-opus-4", "30.00"),
            ("claude-sonnet-4", "6.00"),
            ("claude-3-7-sonnet", "6.00"),
            ("claude-3-5-sonnet", "6.00"),
            ("claude-3-5-haiku", "1.60"),
        ] {
            if let Some(p) = t.models.get_mut(model) {
                p.cache_write_1h = Some(d(write_1h) / super::price::MILLION);
                // Anthropic's web search: $10 per 1,000 searches.
                p.per_web_search = Some(d("0.01"));
            }
        }
        // Gemini 2.5 Pro: prompts of more than 200k tokens pay more for all.
        if let Some(p) = t.models.get_mut("gemini-2.5-pro") {
            p.tiers.push(super::PriceTier {
                above_input_tokens: 200_000,
                price: TierPrice::per_million(d("2.50"), d("15.00")).cached_per_million(d("0.625")),
            });
        }
        for (alias, model) in [
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("gpt-4o-2024-11-20", "gpt-4o"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt-4.1-2025-04-14", "gpt-4.1"),
            ("o3-2025-04-16", "o3"),
            ("o4-mini-2025-04-16", "o4-mini"),
            ("claude-opus-4-20250514", "claude-opus-4"),
            ("claude-opus-4-0", "claude-opus-4"),
            ("claude-sonnet-4-20250514", "claude-sonnet-4"),
            ("claude-sonnet-4-0", "claude-sonnet-4"),
            ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
            ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
            ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
            ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
            ("mistral-large", "mistral-large-latest"),
            ("mistral-small", "mistral-small-latest"),
            ("codestral", "codestral-latest"),
        ] {
            t.alias(alias, model);
        }
        t
    }
}
