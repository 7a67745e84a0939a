//! Pricing: exact costs worked out by hand, long-context tiers, fees, safe
//! estimates (a property test), and the attributes priced by them. Service
//! tiers, regions and speed are in `pricing_tiers.rs`; usage parsing in
//! `pricing_usage.rs`, `pricing_usage_openai.rs` and `pricing_streams.rs`;
//! the LiteLLM loader in `pricing_litellm.rs`.

use budgetgate::pricing::{
    self, Limits, ModelPrice, PriceTable, PricingError, Region, ServiceTier, SkipReason, Speed,
    TokenPrices, Usage, UsageError,
};
use budgetgate::{guard_bounded, BlockReason, Budget, Decimal, Engine, Ledger};
use proptest::prelude::*;
use rust_decimal_macros::dec;
use serde_json::json;
use testkit::Blocked;

#[test]
fn litellm_numbers_are_read_exactly() {
    let t = testkit::pricing_fixture();
    let p = t.price("gpt-4o").unwrap();
    assert_eq!(
        (p.base.input, p.base.output, p.base.cached_input),
        (dec!(0.0000025), dec!(0.00001), Some(dec!(0.00000125)))
    );
    let p = t.price("gemini/gemini-2.0-flash").unwrap();
    assert_eq!(p.base.cached_input, Some(dec!(0.000000025)));
    assert_eq!(
        t.price("perplexity/sonar").unwrap().per_request,
        Some(dec!(0.005))
    );
}

#[test]
fn exact_costs_by_hand() {
    let t = testkit::pricing_fixture();
    // gpt-4o: 1,000 plain in × 0.0000025 = 0.0025; 3,000 cached × 0.00000125
    // = 0.00375; 500 out × 0.00001 = 0.005. Total 0.01125.
    let usage = Usage {
        input_tokens: 4_000,
        output_tokens: 500,
        cached_input_tokens: 3_000,
        ..Usage::default()
    };
    assert_eq!(t.cost("gpt-4o", &usage).unwrap(), dec!(0.01125));
    // claude sonnet 4: 100 plain × 0.000003 = 0.0003; 2,000 read × 0.0000003
    // = 0.0006; 1,000 write × 0.00000375 = 0.00375; 800 out × 0.000015 =
    // 0.012. Total 0.01665.
    let usage = Usage {
        input_tokens: 3_100,
        output_tokens: 800,
        cached_input_tokens: 2_000,
        cache_creation_input_tokens: 1_000,
        ..Usage::default()
    };
    assert_eq!(
        t.cost("anthropic/claude-sonnet-4-20250514", &usage)
            .unwrap(),
        dec!(0.01665)
    );
    // perplexity sonar: 10 in + 10 out × 0.000001 + 0.005 per request.
    assert_eq!(
        t.cost("perplexity/sonar", &Usage::new(10, 10)).unwrap(),
        dec!(0.00502)
    );
    // gemini 2.0 flash: 7 cached × 0.000000025 = 0.000000175.
    let usage = Usage {
        input_tokens: 7,
        cached_input_tokens: 7,
        ..Usage::default()
    };
    assert_eq!(
        t.cost("gemini/gemini-2.0-flash", &usage).unwrap(),
        dec!(0.000000175)
    );
}

#[test]
fn costs_round_up_to_the_store_scale() {
    let mut t = PriceTable::new();
    t.insert(
        "tiny",
        ModelPrice::from(TokenPrices {
            input: dec!(0.0000000001),
            ..TokenPrices::default()
        }),
    );
    // 3 × 10^-10 = 3×10^-10 → rounded up to 10^-9, never down to zero.
    assert_eq!(
        t.cost("tiny", &Usage::new(3, 0)).unwrap(),
        dec!(0.000000001)
    );
}

#[test]
fn aliases_and_provider_prefixes() {
    let t = PriceTable::builtin();
    let gpt = t.price("gpt-4o").unwrap().clone();
    assert_eq!(*t.price("openai/gpt-4o").unwrap(), gpt);
    assert_eq!(*t.price("gpt-4o-2024-08-06").unwrap(), gpt);
    assert_eq!(*t.price("openai/gpt-4o-2024-08-06").unwrap(), gpt);
    assert_eq!(*t.price("GPT-4o").unwrap(), gpt);
    assert_eq!(*t.price("OpenAI/GPT-4o").unwrap(), gpt);
    // Only a model's own API provider's prefix is dropped.
    assert_eq!(
        t.price("azure/gpt-4o"),
        Err(PricingError::UnknownModel("azure/gpt-4o".into()))
    );
    assert_eq!(
        t.price("anthropic/claude-sonnet-4-5-20250929")
            .unwrap()
            .base
            .input,
        dec!(0.000003)
    );
    let mut t = testkit::pricing_fixture();
    t.alias("sonnet", "anthropic/claude-sonnet-4-20250514");
    assert_eq!(t.price("sonnet").unwrap().base.output, dec!(0.000015));
    assert_eq!(t.as_of(), None);
    assert_eq!(
        PriceTable::builtin().as_of(),
        Some(pricing::BUILTIN_PRICES_AS_OF)
    );
}

#[test]
fn unknown_model_is_an_error_not_zero() {
    let t = PriceTable::builtin();
    assert_eq!(
        t.cost("gpt-9-ultra", &Usage::new(1, 1)),
        Err(PricingError::UnknownModel("gpt-9-ultra".into()))
    );
    assert!(t.estimate("acme/unknown", 1, 1).is_err());
    assert!(t
        .cost(
            "gpt-4o",
            &Usage {
                input_tokens: 1,
                cached_input_tokens: 2,
                ..Usage::default()
            }
        )
        .is_err());
}

#[test]
fn builtin_covers_the_mainstream_providers() {
    let t = PriceTable::builtin();
    for model in [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "mistral-large-latest",
        "deepseek-chat",
        "deepseek-reasoner",
    ] {
        let p = t.price(model).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            p.base.input > Decimal::ZERO && p.base.output > Decimal::ZERO,
            "{model}"
        );
    }
    // Overridable entry by entry.
    let mut t = t;
    t.insert("gpt-4o", ModelPrice::per_million(dec!(1), dec!(2)));
    assert_eq!(
        t.cost("gpt-4o", &Usage::new(1_000_000, 0)).unwrap(),
        dec!(1)
    );
}

// ----- long-context tiers ---------------------------------------------------------

/// gemini-2.5-pro-like: 1.25 / 10 per million, 2.50 / 15 above 200k prompt
/// tokens (cached 0.31 / 0.625), for the whole request.
fn gemini_pro() -> ModelPrice {
    ModelPrice::per_million(dec!(1.25), dec!(10))
        .cached_per_million(dec!(0.31))
        .above_input_tokens(
            200_000,
            TokenPrices::per_million(dec!(2.50), dec!(15)).cached_per_million(dec!(0.625)),
        )
}

#[test]
fn a_tier_applies_one_token_over_its_threshold() {
    let mut built = PriceTable::new();
    built.insert("pro", gemini_pro());
    for t in [built, testkit::pricing_fixture()] {
        let m = if t.price("pro").is_ok() {
            "pro"
        } else {
            "gemini/gemini-2.5-pro"
        };
        // Exactly 200,000: 200,000 × 0.00000125 = 0.25; 1,000 out × 0.00001
        // = 0.01. Total 0.26.
        assert_eq!(t.cost(m, &Usage::new(200_000, 1_000)).unwrap(), dec!(0.26));
        // 200,001: every token at the tier. 200,001 × 0.0000025 = 0.5000025;
        // 1,000 × 0.000015 = 0.015. Total 0.5150025.
        assert_eq!(
            t.cost(m, &Usage::new(200_001, 1_000)).unwrap(),
            dec!(0.5150025)
        );
        // Cached tokens too: 100,001 × 0.0000025 = 0.2500025; 100,000 cached
        // × 0.000000625 = 0.0625; 1,000 × 0.000015 = 0.015. Total 0.3275025.
        let usage = Usage {
            input_tokens: 200_001,
            output_tokens: 1_000,
            cached_input_tokens: 100_000,
            ..Usage::default()
        };
        assert_eq!(t.cost(m, &usage).unwrap(), dec!(0.3275025));
        // The estimate: the tiers the prompt can reach. At 200,000 the base
        // (0.26); at 200,001 the tier (0.5150025 > base 0.26000125).
        assert_eq!(t.estimate(m, 200_000, 1_000).unwrap(), dec!(0.26));
        assert_eq!(t.estimate(m, 200_001, 1_000).unwrap(), dec!(0.5150025));
    }
    // The built-in gemini-2.5-pro has the tier.
    let b = PriceTable::builtin();
    assert_eq!(
        b.cost("gemini-2.5-pro", &Usage::new(200_001, 1_000))
            .unwrap(),
        dec!(0.5150025)
    );
}

#[test]
fn litellm_flat_tier_keys() {
    let t = testkit::pricing_fixture();
    let p = t.price("gemini/gemini-2.5-pro").unwrap();
    // The `_priority` variant is a service tier, not a context tier.
    assert_eq!(p.tiers.len(), 1);
    assert_eq!(p.tiers[0].above_input_tokens, 200_000);
    assert_eq!(p.tiers[0].price.cached_input, Some(dec!(0.000000625)));
    // gpt-4.1-long: 2/8 per million; above 128k input 4 (output stays 8);
    // above 272k 6/12.
    let m = "gpt-4.1-long";
    // 128,000 × 0.000002 = 0.256; 10 × 0.000008 = 0.00008.
    assert_eq!(t.cost(m, &Usage::new(128_000, 10)).unwrap(), dec!(0.25608));
    // 128,001 × 0.000004 = 0.512004; 10 × 0.000008 = 0.00008.
    assert_eq!(t.cost(m, &Usage::new(128_001, 10)).unwrap(), dec!(0.512084));
    // 272,001 × 0.000006 = 1.632006; 10 × 0.000012 = 0.00012.
    assert_eq!(t.cost(m, &Usage::new(272_001, 10)).unwrap(), dec!(1.632126));
    assert_eq!(t.estimate(m, 272_001, 10).unwrap(), dec!(1.632126));
    // xAI bills the tier from the threshold itself (LiteLLM's inclusive
    // threshold for xai): 128,000 × 0.000004 = 0.512.
    let (t, _) = PriceTable::from_litellm_json(
        r#"{"xai/grok-4": {"litellm_provider": "xai", "input_cost_per_token": 2e-06,
            "output_cost_per_token": 8e-06, "input_cost_per_token_above_128k_tokens": 4e-06}}"#,
    )
    .unwrap();
    assert_eq!(
        t.cost("xai/grok-4", &Usage::new(127_999, 0)).unwrap(),
        dec!(0.255998)
    );
    assert_eq!(
        t.cost("xai/grok-4", &Usage::new(128_000, 0)).unwrap(),
        dec!(0.512)
    );
}

#[test]
fn litellm_tiered_pricing_arrays() {
    let t = testkit::pricing_fixture();
    let m = "dashscope/qwen-plus";
    // [0, 256000]: 256,000 × 0.0000004 = 0.1024; 100 × 0.0000012 = 0.00012.
    assert_eq!(t.cost(m, &Usage::new(256_000, 100)).unwrap(), dec!(0.10252));
    // (256000, 1000000]: 256,001 × 0.0000012 = 0.3072012; 100 × 0.0000036
    // = 0.00036.
    assert_eq!(
        t.cost(m, &Usage::new(256_001, 100)).unwrap(),
        dec!(0.3075612)
    );
    // Above the last range: the last tier (as LiteLLM). 1,000,001 × 0.0000012
    // = 1.2000012.
    assert_eq!(
        t.cost(m, &Usage::new(1_000_001, 0)).unwrap(),
        dec!(1.2000012)
    );
    // The tier's own cache price: 1 plain × 0.0000012 + 256,000 cached ×
    // 0.00000024 = 0.0000012 + 0.06144.
    let usage = Usage {
        input_tokens: 256_001,
        cached_input_tokens: 256_000,
        ..Usage::default()
    };
    assert_eq!(t.cost(m, &usage).unwrap(), dec!(0.0614412));
    // No prices outside the array: the first tier is the base. 100 out ×
    // 0.0000012.
    assert_eq!(t.cost(m, &Usage::new(0, 100)).unwrap(), dec!(0.00012));
    // Ranges written as floats or 1e6, an open last end, a tier without an
    // output price (the entry's).
    let (t, report) = PriceTable::from_litellm_json(
        r#"{"q": {"output_cost_per_token": 2e-06, "tiered_pricing": [
            {"range": [0.0, 32000.0], "input_cost_per_token": 1e-06},
            {"range": [32000, 1e6], "input_cost_per_token": 2e-06, "output_cost_per_token": 4e-06},
            {"range": [1e6, null], "input_cost_per_token": 3e-06, "output_cost_per_token": 6e-06}]}}"#,
    )
    .unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    // 32,000 × 0.000001 + 10 × 0.000002 = 0.03202.
    assert_eq!(t.cost("q", &Usage::new(32_000, 10)).unwrap(), dec!(0.03202));
    // 32,001 × 0.000002 + 10 × 0.000004 = 0.064042.
    assert_eq!(
        t.cost("q", &Usage::new(32_001, 10)).unwrap(),
        dec!(0.064042)
    );
    // 1,000,001 × 0.000003 + 10 × 0.000006 = 3.000063.
    assert_eq!(
        t.cost("q", &Usage::new(1_000_001, 10)).unwrap(),
        dec!(3.000063)
    );
    for bad in [
        r#"[0.5, 10]"#,
        r#"[-1, 10]"#,
        r#"[0]"#,
        r#"[10, 5]"#,
        r#""0-10""#,
    ] {
        let json = format!(
            r#"{{"q": {{"tiered_pricing": [{{"range": {bad}, "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}}]}}}}"#
        );
        let (_, report) = PriceTable::from_litellm_json(&json).unwrap();
        assert!(
            matches!(&report.skipped[..], [(_, SkipReason::BadTiers(_))]),
            "{bad}: {report:?}"
        );
    }
}

// ----- web searches and service tiers ----------------------------------------------

#[test]
fn anthropic_web_searches_and_service_tiers() {
    // The anthropic SDK's Usage, model_dump()ed, after three web searches.
    let json = |tier: serde_json::Value| {
        json!({
            "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "input_tokens": 2000, "output_tokens": 500,
            "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
            "service_tier": tier
        })
    };
    let u = Usage::from_anthropic_json(&json(json!("standard"))).unwrap();
    assert_eq!(
        (u.web_search_requests, u.service_tier),
        (3, ServiceTier::Standard)
    );
    let t = testkit::pricing_fixture();
    let sonnet = "anthropic/claude-sonnet-4-20250514";
    assert_eq!(t.price(sonnet).unwrap().per_web_search, Some(dec!(0.01)));
    // 2,000 in × 0.000003 = 0.006; 500 out × 0.000015 = 0.0075; 3 searches ×
    // 0.01 = 0.03. Total 0.0435.
    assert_eq!(t.cost(sonnet, &u).unwrap(), dec!(0.0435));
    // Priority: the same prices.
    let u = Usage::from_anthropic_json(&json(json!("priority"))).unwrap();
    assert_eq!(u.service_tier, ServiceTier::Priority);
    assert_eq!(t.cost(sonnet, &u).unwrap(), dec!(0.0435));
    // Batch: half the token prices, the searches in full: 0.0135 / 2 + 0.03
    // = 0.03675.
    let u = Usage::from_anthropic_json(&json(json!("batch"))).unwrap();
    assert_eq!(u.service_tier, ServiceTier::Batch);
    assert_eq!(t.cost(sonnet, &u).unwrap(), dec!(0.03675));
    // null or absent: standard, no searches.
    let u = Usage::from_anthropic_json(&json!({
        "input_tokens": 1, "output_tokens": 1, "service_tier": null, "server_tool_use": null
    }))
    .unwrap();
    assert_eq!(u, Usage::new(1, 1));
    assert_eq!(
        Usage::from_anthropic_json(&json(json!("flex"))),
        Err(PricingError::Usage(UsageError::UnknownValue {
            parser: "Anthropic",
            field: "service_tier".into(),
            value: "\"flex\"".into()
        }))
    );
    assert!(matches!(
        Usage::from_anthropic_json(&json!({
            "input_tokens": 1, "output_tokens": 1, "server_tool_use": {"web_search_requests": -1}
        })),
        Err(PricingError::Usage(UsageError::NotACount { .. }))
    ));
    // Searches on a model without a search price are refused, not free.
    let searched = Usage {
        web_search_requests: 1,
        ..Usage::new(10, 10)
    };
    assert!(matches!(
        t.cost("gpt-4o", &searched),
        Err(PricingError::Unpriced { .. })
    ));
    // Older serialized usage reads with the new fields at their defaults.
    let old: Usage =
        serde_json::from_value(json!({"input_tokens": 1, "output_tokens": 2})).unwrap();
    assert_eq!(old, Usage::new(1, 2));
}

#[test]
fn estimates_with_web_searches() {
    let t = PriceTable::builtin();
    // claude-sonnet-4-5: the dearest input token is a one-hour cache write,
    // 0.000006: 2,000 × 0.000006 = 0.012; 500 out × 0.000015 = 0.0075.
    assert_eq!(
        t.estimate("claude-sonnet-4-5", 2000, 500).unwrap(),
        dec!(0.0195)
    );
    // Up to five searches at 0.01 each: 0.0195 + 0.05 = 0.0695.
    assert_eq!(
        t.estimate_with("claude-sonnet-4-5", 2000, 500, 5).unwrap(),
        dec!(0.0695)
    );
    assert_eq!(
        t.estimate_with("gpt-4o", 2000, 500, 0).unwrap(),
        t.estimate("gpt-4o", 2000, 500).unwrap()
    );
    assert!(matches!(
        t.estimate_with("gpt-4o", 2000, 500, 1),
        Err(PricingError::Unpriced { .. })
    ));
    // A batch multiplier above one is still bounded: 1,000,000 × 0.000001 × 2.
    let mut t = PriceTable::new();
    t.insert(
        "dear-batch",
        ModelPrice::per_million(dec!(1), dec!(1)).batch_multiplier(dec!(2)),
    );
    let batch = Usage {
        service_tier: ServiceTier::Batch,
        ..Usage::new(1_000_000, 0)
    };
    assert_eq!(t.cost("dear-batch", &batch).unwrap(), dec!(2));
    assert_eq!(t.estimate("dear-batch", 1_000_000, 0).unwrap(), dec!(2));
}

#[test]
fn litellm_search_context_prices() {
    let (t, report) = PriceTable::from_litellm_json(
        r#"{
        "three-sizes": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "search_context_cost_per_query": {"search_context_size_low": 0.005,
                "search_context_size_medium": 0.01, "search_context_size_high": 0.025}},
        "no-medium": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "search_context_cost_per_query": {"search_context_size_low": 0.005,
                "search_context_size_high": 0.025}},
        "no-search": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "search_context_cost_per_query": null},
        "string-search": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "search_context_cost_per_query": {"search_context_size_medium": "0.01"}},
        "flat-search": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "search_context_cost_per_query": 0.01}
    }"#,
    )
    .unwrap();
    assert_eq!(report.loaded, 3);
    let search = |m: &str| t.price(m).unwrap().per_web_search;
    // The highest price: usage does not say the search context size, and
    // the size is never under-charged (LiteLLM's cost function assumes
    // medium).
    assert_eq!(search("three-sizes"), Some(dec!(0.025)));
    assert_eq!(search("no-medium"), Some(dec!(0.025)));
    assert_eq!(search("no-search"), None);
    assert_eq!(
        report.skipped,
        [
            (
                "flat-search".to_owned(),
                SkipReason::BadPrice {
                    key: "search_context_cost_per_query".into(),
                    text: "0.01".into(),
                    problem: "is not an object of prices per search context size"
                }
            ),
            (
                "string-search".to_owned(),
                SkipReason::BadPrice {
                    key: "search_context_cost_per_query.search_context_size_medium".into(),
                    text: "\"0.01\"".into(),
                    problem: "is not a number"
                }
            ),
        ]
    );
}

// ----- reasoning and audio tokens ---------------------------------------------------

#[test]
fn audio_tokens_at_their_own_prices() {
    let u = Usage::from_openai_json(&json!({
        "prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
        "prompt_tokens_details": {"audio_tokens": 600, "cached_tokens": 0},
        "completion_tokens_details": {"audio_tokens": 400, "reasoning_tokens": 0}
    }))
    .unwrap();
    assert_eq!((u.audio_input_tokens, u.audio_output_tokens), (600, 400));
    // 400 text in × 0.0000025 = 0.001; 600 audio in × 0.00004 = 0.024; 100
    // text out × 0.00001 = 0.001; 400 audio out × 0.00008 = 0.032. Total 0.058.
    let t = testkit::pricing_fixture();
    assert_eq!(t.cost("gpt-4o-audio-preview", &u).unwrap(), dec!(0.058));
    // The estimate prices every token at the dearest kind: 1,000 × 0.00004 +
    // 500 × 0.00008 = 0.08.
    assert_eq!(
        t.estimate("gpt-4o-audio-preview", 1000, 500).unwrap(),
        dec!(0.08)
    );
    // Without audio prices, audio is text: gpt-4o 1,000 × 0.0000025 + 500 ×
    // 0.00001 = 0.0075.
    assert_eq!(t.cost("gpt-4o", &u).unwrap(), dec!(0.0075));
    // Gemini's audio modality, less its cached audio.
    let u = Usage::from_gemini_json(&json!({
        "promptTokenCount": 100, "candidatesTokenCount": 10, "cachedContentTokenCount": 30,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40}, {"modality": "AUDIO", "tokenCount": 60}],
        "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 30}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 10}]
    }))
    .unwrap();
    assert_eq!(
        (
            u.cached_input_tokens,
            u.audio_input_tokens,
            u.audio_output_tokens
        ),
        (30, 30, 0)
    );
    assert!(Usage::from_openai_json(&json!({
        "prompt_tokens": 10, "completion_tokens": 1,
        "completion_tokens_details": {"audio_tokens": 1, "reasoning_tokens": 1}
    }))
    .is_err());
}

#[test]
fn reasoning_tokens_at_their_own_price() {
    let u = Usage::from_gemini_json(&json!({
        "promptTokenCount": 1000, "candidatesTokenCount": 200, "thoughtsTokenCount": 800
    }))
    .unwrap();
    assert_eq!((u.output_tokens, u.reasoning_tokens), (1000, 800));
    // 1,000 in × 0.00000015 = 0.00015; 200 out × 0.0000006 = 0.00012; 800
    // reasoning × 0.0000035 = 0.0028. Total 0.00307.
    let t = testkit::pricing_fixture();
    assert_eq!(t.cost("gemini/gemini-thinking", &u).unwrap(), dec!(0.00307));
    // Bound: 1,000 × 0.00000015 + 1,000 × 0.0000035 = 0.00365.
    assert_eq!(
        t.estimate("gemini/gemini-thinking", 1000, 1000).unwrap(),
        dec!(0.00365)
    );
    // The Responses API's reasoning tokens.
    let u = Usage::from_openai_responses_json(&json!({
        "input_tokens": 10, "output_tokens": 9, "total_tokens": 19,
        "output_tokens_details": {"reasoning_tokens": 7}
    }))
    .unwrap();
    assert_eq!(u.reasoning_tokens, 7);
    // Priced as output where there is no reasoning price: o3 10 × 0.000002 +
    // 9 × 0.000008 = 0.000092.
    assert_eq!(
        PriceTable::builtin().cost("o3", &u).unwrap(),
        dec!(0.000092)
    );
}

fn every_priced_model() -> Vec<(PriceTable, String)> {
    let mut all = Vec::new();
    for t in [testkit::pricing_fixture(), PriceTable::builtin()] {
        let mut names: Vec<String> = t.models().map(str::to_owned).collect();
        names.sort();
        all.extend(names.into_iter().map(|n| (t.clone(), n)));
    }
    all
}

proptest! {
    /// For every priced entry of the fixture and of the built-in table, and
    /// any usage within a request's limits (at most `prompt` input tokens,
    /// however split into plain, cached (text and audio), 5-minute and 1-hour
    /// cache writes and audio; at most `max_output` output tokens, however split into plain,
    /// reasoning and audio; at most `max_searches` web searches, at any
    /// service tier), the estimate is at least the cost — across tiers too.
    #[test]
    fn estimate_bounds_cost(
        prompt in prop_oneof![0u64..2_000_000, 127_990u64..128_010, 199_990u64..200_010,
                              255_990u64..256_010, 271_990u64..272_010, 999_990u64..1_000_010],
        input_share in 0u64..=100,
        cached_share in 0u64..=100,
        write_share in 0u64..=100,
        h1_share in 0u64..=100,
        audio_share in 0u64..=100,
        max_output in 0u64..200_000,
        max_searches in 0u64..20,
        search_share in 0u64..=100,
        tier in prop_oneof![Just(ServiceTier::Standard), Just(ServiceTier::Priority),
                            Just(ServiceTier::Flex), Just(ServiceTier::Batch)],
        region in prop_oneof![Just(Region::Global), Just(Region::Us), Just(Region::Eu),
                              Just(Region::FedRamp), Just(Region::RegionalEndpoint)],
        fast in any::<bool>(),
        output_share in 0u64..=100,
        reasoning_share in 0u64..=100,
        audio_out_share in 0u64..=100,
        cached_audio_share in 0u64..=100,
    ) {
        let input = prompt * input_share / 100;
        let cached = input * cached_share / 100;
        let written = (input - cached) * write_share / 100;
        let audio = (input - cached - written) * audio_share / 100;
        let output = max_output * output_share / 100;
        let reasoning = output * reasoning_share / 100;
        let usage = Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cached_audio_input_tokens: cached * cached_audio_share / 100,
            cache_creation_input_tokens: written,
            cache_creation_1h_input_tokens: written * h1_share / 100,
            reasoning_tokens: reasoning,
            audio_input_tokens: audio,
            audio_output_tokens: (output - reasoning) * audio_out_share / 100,
            web_search_requests: 0,
            service_tier: tier,
            region,
            speed: Speed::Standard,
        };
        for (t, model) in every_priced_model() {
            let price = t.price(&model).unwrap();
            // Searches only where the model has a search price, fast mode
            // only where it has a fast multiplier.
            let max_searches = if price.per_web_search.is_some() { max_searches } else { 0 };
            let speed = if fast && price.fast_multiplier.is_some() { Speed::Fast } else { Speed::Standard };
            let usage = Usage {
                web_search_requests: max_searches * search_share / 100,
                speed,
                ..usage
            };
            let cost = t.cost(&model, &usage).unwrap();
            let estimate = t.estimate_with(&model, prompt, max_output, max_searches).unwrap();
            prop_assert!(estimate >= cost, "{model}: estimate {estimate} < cost {cost} for {usage:?}");
            prop_assert!(budgetgate::amount::to_nanos(estimate).is_ok());
            // Narrowed to the usage's own tier, region and speed: still a bound.
            let limits = Limits::new(prompt, max_output)
                .web_searches(max_searches)
                .service_tier(tier)
                .region(region)
                .speed(speed);
            let narrow = t.estimate_for(&model, &limits).unwrap();
            prop_assert!(narrow >= cost && narrow <= estimate, "{model}: {narrow} for {usage:?}");
        }
    }
}

// ----- in attributes ---------------------------------------------------------------

struct Completion {
    usage: serde_json::Value,
}

static ENGINE: std::sync::LazyLock<Engine> = std::sync::LazyLock::new(Engine::in_memory);

#[guard_bounded(
    ledger = ("pricing", model, "user:1"),
    estimate = pricing::estimate(model, 1_200, 500),
    actual = |c: &Completion| Usage::from_openai_json(&c.usage).and_then(|u| pricing::cost(model, &u)),
    max_spend = "1", engine = &*ENGINE,
)]
fn chat(model: &str) -> Result<Completion, Blocked> {
    Ok(Completion {
        usage: json!({"prompt_tokens": 1200, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1000}}),
    })
}

#[test]
fn attribute_reserves_estimate_and_commits_cost() {
    chat("gpt-4o").unwrap();
    let status = ENGINE
        .status_with(
            &Ledger::new("pricing", "gpt-4o", "user:1"),
            &Budget::lifetime(dec!(1)).unwrap(),
        )
        .unwrap();
    assert_eq!(
        (status.committed(), status.reserved()),
        (dec!(0.00475), dec!(0))
    );
}

#[test]
fn unknown_model_blocks_the_call() {
    match chat("no-such-model") {
        Err(Blocked(e)) => {
            assert_eq!(e.decision().reason(), Some(BlockReason::InvalidAmount));
            assert!(
                e.decision().detail().unwrap().contains("no-such-model"),
                "{e}"
            );
        }
        Ok(_) => panic!("an unpriced model must not run"),
    }
}

// ----- explicit service-tier prices, regions, speed ---------------------------------
