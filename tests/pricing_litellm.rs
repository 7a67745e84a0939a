//! Pricing: the LiteLLM loader — exact number text, a report naming what
//! it skipped and why, no entry priced as another.

use budgetgate::pricing::{self, ModelPrice, PriceTable, PricingError, SkipReason, Usage};
use budgetgate::Decimal;
use rust_decimal_macros::dec;

// ----- exact numbers ----------------------------------------------------------------

#[test]
fn litellm_prices_are_the_files_text_exactly() {
    let t = testkit::pricing_fixture();
    let p = t.price("exact/odd-price").unwrap();
    // Not 0.00000095 (the nearest short decimal): the file's digits.
    assert_eq!(p.base.input, dec!(0.0000009499999999999999));
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
        assert_eq!(t.price("m").unwrap().base.input, want, "{text}");
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
        ModelPrice::from(pricing::TokenPrices {
            input: Decimal::MAX,
            ..Default::default()
        }),
    );
    assert_eq!(
        t.cost("huge", &Usage::new(u64::MAX, 0)),
        Err(PricingError::Overflow("huge".into()))
    );
    assert!(t.estimate("huge", u64::MAX, u64::MAX).is_err());
}

/// The LiteLLM entries the built-in table is taken from, verbatim
/// (`fixtures/litellm_excerpt.json`, written by
/// `fixtures/refresh_builtin_prices.py`), loaded.
fn litellm_excerpt() -> (
    PriceTable,
    budgetgate::pricing::LoadReport,
    serde_json::Value,
) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/litellm_excerpt.json");
    let (t, report) = PriceTable::from_litellm_path(path).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    (t, report, json)
}

/// The excerpt's entry a built-in name is taken from: the same name, or the
/// name under its provider's prefix (`gemini/…`, `mistral/…`, `deepseek/…`).
fn excerpt_name(excerpt: &PriceTable, name: &str) -> Option<String> {
    std::iter::once(name.to_owned())
        .chain(["gemini/", "mistral/", "deepseek/"].map(|p| format!("{p}{name}")))
        .find(|n| excerpt.models().any(|m| m == n))
}

#[test]
fn builtin_matches_the_litellm_excerpt() {
    let (excerpt, report, json) = litellm_excerpt();
    assert_eq!(
        json["_excerpt"]["litellm_version"],
        pricing::BUILTIN_PRICES_LITELLM_VERSION
    );
    assert_eq!(
        report
            .skipped
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>(),
        ["_excerpt"]
    );
    let builtin = PriceTable::builtin();
    let mut names: Vec<&str> = builtin.models().collect();
    names.sort_unstable();
    assert_eq!(names.len(), 36);
    for name in &names {
        let source = excerpt_name(&excerpt, name)
            .unwrap_or_else(|| panic!("{name}: not in the LiteLLM excerpt"));
        assert_eq!(
            builtin.price(name).unwrap(),
            excerpt.price(&source).unwrap(),
            "{name}: the built-in price is not LiteLLM's {source}"
        );
    }
    // Every entry of the excerpt (the dated names too) is priced by the
    // built-in table, under its name without the provider prefix, as LiteLLM
    // prices it.
    let mut listed = 0;
    for name in excerpt.models() {
        let own = excerpt.price(name).unwrap();
        let bare = name.split_once('/').map_or(name, |(_, rest)| rest);
        assert_eq!(
            builtin.price(bare).unwrap_or_else(|e| panic!("{e}")),
            own,
            "{name}"
        );
        listed += 1;
    }
    assert_eq!(listed, 60);
    // The dated names responses carry, and the newer families.
    for name in [
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano-2025-04-14",
        "o3-mini-2025-01-31",
        "o1-2024-12-17",
        "gpt-5",
        "gpt-5-mini-2025-08-07",
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-5",
        "claude-haiku-4-5-20251001",
    ] {
        assert!(builtin.price(name).is_ok(), "{name}");
    }
}

#[test]
fn builtin_prices_the_issue_named_stale() {
    // The prices issue #15 found stale, as LiteLLM 1.110.2 has them.
    let t = PriceTable::builtin();
    let per_million = |model: &str| {
        let p = t.price(model).unwrap();
        let m = dec!(1000000);
        (
            p.base.input * m,
            p.base.output * m,
            p.base.cached_input.map(|c| c * m),
        )
    };
    assert_eq!(
        per_million("mistral-medium-latest"),
        (dec!(1.5), dec!(7.5), Some(dec!(0.15)))
    );
    assert_eq!(
        per_million("mistral/mistral-large-latest"),
        (dec!(0.5), dec!(1.5), Some(dec!(0.05)))
    );
    assert_eq!(
        per_million("mistral-small-latest"),
        (dec!(0.15), dec!(0.6), Some(dec!(0.015)))
    );
    for m in ["deepseek-chat", "deepseek-reasoner"] {
        assert_eq!(per_million(m), (dec!(0.28), dec!(0.42), Some(dec!(0.028))));
    }
    assert_eq!(per_million("gemini-2.5-pro").2, Some(dec!(0.125)));
    assert_eq!(per_million("gemini-2.5-flash").2, Some(dec!(0.03)));
    // Retired models LiteLLM no longer lists under their own names are not
    // built in (unknown, never priced at a stale price).
    for gone in ["claude-3-5-sonnet", "claude-sonnet-4", "gemini-2.0-flash"] {
        assert!(matches!(t.price(gone), Err(PricingError::UnknownModel(_))));
    }
}

// ----- cost against LiteLLM's own cost function ---------------------------------------

/// What [`grid`] found.
#[derive(Debug, Default)]
struct GridReport {
    rows: usize,
    /// Rows our cost equals LiteLLM's (to LiteLLM's float error, and our
    /// rounding up to 10⁻⁹).
    equal: usize,
    /// Rows we charge less than LiteLLM: (row, ours).
    under: Vec<(String, Decimal)>,
    /// Rows we charge more than LiteLLM: (row, ours).
    over: Vec<(String, Decimal)>,
    /// Rows whose estimate is below our cost or LiteLLM's.
    estimate_below: Vec<String>,
    /// Models we refuse to price, with why (their rows are not compared).
    unpriced: std::collections::BTreeMap<String, String>,
    /// Rows LiteLLM itself cannot price.
    litellm_errors: usize,
}

/// Compares `cost` and `estimate` on `table` with LiteLLM's costs in `tsv`
/// (written by `fixtures/litellm_grid.py`).
fn grid(table: &PriceTable, tsv: &str) -> GridReport {
    let mut r = GridReport::default();
    let (mut model, mut tier) = ("", "");
    for line in tsv.lines() {
        if let Some(head) = line.strip_prefix("= ") {
            (model, tier) = head.split_once('\t').expect("= model<TAB>tier");
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let [p, c, cached, write, theirs] = f[..] else {
            panic!("bad grid row {line:?}");
        };
        let line = format!("{model}\t{tier}\t{line}");
        r.rows += 1;
        if theirs.starts_with("ERR") {
            r.litellm_errors += 1;
            continue;
        }
        let n = |s: &str| s.parse::<u64>().unwrap();
        let usage = Usage {
            input_tokens: n(p),
            output_tokens: n(c),
            cached_input_tokens: n(cached),
            cache_creation_input_tokens: n(write),
            service_tier: tier.parse().unwrap(),
            ..Usage::default()
        };
        let theirs = if theirs.contains('e') {
            Decimal::from_scientific(theirs).unwrap()
        } else {
            theirs.parse::<Decimal>().unwrap()
        };
        let ours = match table.cost(model, &usage) {
            Ok(c) => c,
            Err(e) => {
                r.unpriced.insert(model.to_owned(), e.to_string());
                continue;
            }
        };
        // LiteLLM adds doubles: allow their relative error; we round up to 1e-9.
        let float_error = theirs.abs() * dec!(0.000000000001) + dec!(0.000000000000000001);
        if ours < theirs - float_error {
            r.under.push((line.clone(), ours));
        } else if ours > theirs + float_error + dec!(0.000000001) {
            r.over.push((line.clone(), ours));
        } else {
            r.equal += 1;
        }
        match table.estimate(model, usage.input_tokens, usage.output_tokens) {
            Ok(e) if e >= ours && e >= theirs - float_error => {}
            _ => r.estimate_below.push(line),
        }
    }
    r
}

#[test]
fn costs_match_litellm_on_a_grid() {
    // Every entry of the excerpt, on a grid of prompts 0…300k (across the
    // 128k, 200k and 272k thresholds), completions 0…100k, and plain, cached
    // and cache-write splits: LiteLLM 1.110.2's cost_per_token, as
    // fixtures/litellm_grid.py wrote it.
    let (excerpt, _, _) = litellm_excerpt();
    let tsv = include_str!("fixtures/litellm_excerpt_grid.tsv");
    let r = grid(&excerpt, tsv);
    assert_eq!(r.rows, 8568);
    assert_eq!(r.litellm_errors, 0);
    assert!(r.unpriced.is_empty(), "{:?}", r.unpriced);
    assert!(
        r.under.is_empty(),
        "under LiteLLM: {:?}",
        &r.under[..r.under.len().min(5)]
    );
    assert!(
        r.over.is_empty(),
        "over LiteLLM: {:?}",
        &r.over[..r.over.len().min(5)]
    );
    assert_eq!(r.equal, r.rows);
    assert!(
        r.estimate_below.is_empty(),
        "{:?}",
        &r.estimate_below[..r.estimate_below.len().min(5)]
    );
    // The built-in table prices the same rows the same.
    let b = grid(&PriceTable::builtin(), tsv);
    assert_eq!((b.equal, b.under.len(), b.over.len()), (8568, 0, 0));

    // A one-off over the whole LiteLLM file, for the figures:
    // BUDGETGATE_LITELLM_FILE=…/model_prices_and_context_window_backup.json
    // BUDGETGATE_LITELLM_GRID=…/grid.tsv cargo test … -- --nocapture
    if let (Ok(file), Ok(tsv)) = (
        std::env::var("BUDGETGATE_LITELLM_FILE"),
        std::env::var("BUDGETGATE_LITELLM_GRID"),
    ) {
        let (table, report) = PriceTable::from_litellm_path(&file).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let chat: Vec<&String> = json
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, e)| e.get("mode").and_then(|m| m.as_str()) == Some("chat"))
            .map(|(name, _)| name)
            .collect();
        let priced = chat.iter().filter(|m| table.price(m).is_ok()).count();
        eprintln!("chat models priced: {priced} of {}", chat.len());
        let r = grid(&table, &std::fs::read_to_string(tsv).unwrap());
        fn models(rows: &[(String, Decimal)]) -> Vec<&str> {
            let mut m: Vec<&str> = rows
                .iter()
                .map(|(l, _)| l.split('\t').next().unwrap_or(""))
                .collect();
            m.dedup();
            m
        }
        eprintln!(
            "full file: {} loaded, {} aliased, {} skipped; grid rows {}, equal {}, \
             under {} (models {:?}), over {} ({} models), estimate below cost {}, \
             unpriced models {}, LiteLLM errors {}",
            report.loaded,
            report.aliased.len(),
            report.skipped.len(),
            r.rows,
            r.equal,
            r.under.len(),
            models(&r.under),
            r.over.len(),
            models(&r.over).len(),
            r.estimate_below.len(),
            r.unpriced.len(),
            r.litellm_errors,
        );
        fn by_tier(rows: &[(String, Decimal)]) -> std::collections::BTreeMap<&str, usize> {
            let mut m = std::collections::BTreeMap::new();
            for (l, _) in rows {
                *m.entry(l.split('\t').nth(1).unwrap_or("")).or_default() += 1;
            }
            m
        }
        eprintln!(
            "under by service tier {:?}, over by service tier {:?}",
            by_tier(&r.under),
            by_tier(&r.over)
        );
        // One row per model and service tier.
        let mut shown = std::collections::BTreeSet::new();
        for (line, ours) in r.under.iter().chain(&r.over) {
            let mut f = line.split('\t');
            if shown.insert((f.next(), f.next())) && shown.len() <= 120 {
                eprintln!("  {line}\tours {ours}");
            }
        }
        for (m, why) in r.unpriced.iter().take(20) {
            eprintln!("  unpriced {m}: {why}");
        }
    }
}
