//! Pricing: the LiteLLM loader — exact number text, a report naming what
//! it skipped and why, no entry priced as another.

use budgetgate::pricing::{ModelPrice, PriceTable, PricingError, SkipReason, Usage};
use budgetgate::Decimal;
use rust_decimal_macros::dec;

// ----- exact numbers ----------------------------------------------------------------

#[test]
fn litellm_prices_are_the_files_text_exactly() {
    let t = testkit::pricing_fixture();
    let p = t.price("exact/odd-price").unwrap();
    // Not 0.00000095 (the nearest short decimal): the file's digits.
    assert_eq!(p.input, dec!(0.0000009499999999999999));
    // Costs round up to 10⁻⁹: 3 × 0.0000009499999999999999 =
    // 0.0000028499999999999997 → 0.00000285.
    assert_eq!(
        t.cost("exact/odd-price", &Usage::new(3, 0)).unwrap(),
        dec!(0.00000285)
    );
    // 1,000,000 × … = 0.9499999999999999 → 0.95 (up, not down to 0.949999999).
    assert_eq!(
        t.cost("exact/odd-price", &Usage::new(1_000_000, 0))
            .unwrap(),
        dec!(0.95)
    );
    // Number texts in every JSON spelling.
    for (text, want) in [
        ("2.5e-06", dec!(0.0000025)),
        ("2.5E-6", dec!(0.0000025)),
        ("1.25e+2", dec!(125)),
        ("3e2", dec!(300)),
        ("0.000001", dec!(0.000001)),
        ("0", dec!(0)),
        ("0.0", dec!(0)),
    ] {
        let json =
            format!(r#"{{"m": {{"input_cost_per_token": {text}, "output_cost_per_token": 0}}}}"#);
        let (t, _) = PriceTable::from_litellm_json(&json).unwrap();
        assert_eq!(t.price("m").unwrap().input, want, "{text}");
    }
    // More digits than a decimal holds, or a negative price: skipped, said why.
    for text in [
        "1e-40",
        "0.00000000000000000000000000000001",
        "-1e-06",
        "1e40",
    ] {
        let json =
            format!(r#"{{"m": {{"input_cost_per_token": {text}, "output_cost_per_token": 0}}}}"#);
        let (t, report) = PriceTable::from_litellm_json(&json).unwrap();
        assert!(
            matches!(&report.skipped[..], [(m, SkipReason::BadPrice { key, .. })] if m == "m" && key == "input_cost_per_token"),
            "{text}: {report:?}"
        );
        assert!(matches!(t.price("m"), Err(PricingError::Unpriced { .. })));
    }
}

// ----- the loader's report, aliases, no silent prefix fallback ----------------------

#[test]
fn loader_reports_what_it_skipped_and_why() {
    let (t, report) = PriceTable::from_litellm_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/litellm_prices.json"
    ))
    .unwrap();
    let why = |m: &str| {
        report
            .skipped
            .iter()
            .find(|(name, _)| name == m)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    assert_eq!(why("sample_spec"), SkipReason::SchemaDescription);
    assert_eq!(
        why("dall-e-3"),
        SkipReason::NoTokenPrice {
            missing: "input_cost_per_token",
            mode: Some("image_generation".into())
        }
    );
    assert_eq!(
        why("broken/string-price"),
        SkipReason::BadPrice {
            key: "input_cost_per_token".into(),
            text: "\"3e-07\"".into(),
            problem: "is not a number"
        }
    );
    assert!(matches!(
        why("broken/gapped-tiers"),
        SkipReason::BadTiers(_)
    ));
    assert_eq!(
        why("gpt-3-gone"),
        SkipReason::AliasTargetMissing("gpt-3".into())
    );
    assert!(why("whisper-1").to_string().contains("audio_transcription"));
    // alias_of entries, chains included, resolve to the priced entry.
    assert_eq!(
        report.aliased,
        [
            ("gpt-4o-latest".to_string(), "gpt-4o".to_string()),
            ("gpt-4o-newest".to_string(), "gpt-4o".to_string())
        ]
    );
    assert_eq!(
        t.price("gpt-4o-newest").unwrap(),
        t.price("gpt-4o").unwrap()
    );
    assert_eq!(
        t.price("openai/gpt-4o-latest").unwrap(),
        t.price("gpt-4o").unwrap()
    );
}

#[test]
fn entries_without_a_price_are_not_priced_as_another_model() {
    let t = testkit::pricing_fixture();
    for m in ["chatgpt/gpt-4o", "github_copilot/gpt-4o", "gpt-3-gone"] {
        match t.cost(m, &Usage::new(1, 1)) {
            Err(PricingError::Unpriced { model, reason }) => {
                assert_eq!(model, m);
                assert!(!reason.is_empty());
            }
            other => panic!("{m}: {other:?}"),
        }
        assert!(t.estimate(m, 1, 1).is_err());
    }
    // Merged over the built-in table, the entries still refuse; the prices
    // they would have borrowed are there.
    let mut merged = PriceTable::builtin();
    merged.extend(t);
    assert!(matches!(
        merged.price("chatgpt/gpt-4o"),
        Err(PricingError::Unpriced { .. })
    ));
    assert!(merged.price("openai/gpt-4o").is_ok());
    // Not a known API provider, not in the table: unknown, not gpt-4o.
    assert_eq!(
        merged.price("some_reseller/gpt-4o"),
        Err(PricingError::UnknownModel("some_reseller/gpt-4o".into()))
    );
    // Priced by hand, the name is priced.
    merged.insert("chatgpt/gpt-4o", ModelPrice::default());
    assert!(merged.price("chatgpt/gpt-4o").is_ok());
}

#[test]
fn absurd_prices_are_an_error_not_a_panic() {
    let mut t = PriceTable::new();
    t.insert(
        "huge",
        ModelPrice {
            input: Decimal::MAX,
            ..ModelPrice::default()
        },
    );
    assert_eq!(
        t.cost("huge", &Usage::new(u64::MAX, 0)),
        Err(PricingError::Overflow("huge".into()))
    );
    assert!(t.estimate("huge", u64::MAX, u64::MAX).is_err());
}
