//! Pricing: exact costs worked out by hand, safe estimates, LiteLLM files and
//! provider usage JSON.

use budgetgate::pricing::{self, ModelPrice, PriceTable, PricingError, Usage};
use budgetgate::{guard_bounded, BlockReason, Budget, Decimal, Engine, Ledger};
use proptest::prelude::*;
use rust_decimal_macros::dec;
use serde_json::json;
use testkit::Blocked;

fn fixture() -> PriceTable {
    let (table, report) = PriceTable::from_litellm_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/litellm_prices.json"
    ))
    .unwrap();
    // sample_spec (the schema's description), dall-e-3 and whisper-1 (no
    // token prices) are skipped.
    assert_eq!((report.loaded, report.skipped), (5, 3), "{report:?}");
    assert!(table.price("sample_spec").is_err());
    table
}

#[test]
fn litellm_numbers_are_read_exactly() {
    let t = fixture();
    let p = t.price("gpt-4o").unwrap();
    assert_eq!(
        (p.input, p.output, p.cached_input),
        (dec!(0.0000025), dec!(0.00001), Some(dec!(0.00000125)))
    );
    let p = t.price("gemini/gemini-2.0-flash").unwrap();
    assert_eq!(p.cached_input, Some(dec!(0.000000025)));
    assert_eq!(
        t.price("perplexity/sonar").unwrap().per_request,
        Some(dec!(0.005))
    );
}

#[test]
fn exact_costs_by_hand() {
    let t = fixture();
    // gpt-4o: 1,000 plain in × 0.0000025 = 0.0025; 3,000 cached × 0.00000125
    // = 0.00375; 500 out × 0.00001 = 0.005. Total 0.01125.
    let usage = Usage {
        input_tokens: 4_000,
        output_tokens: 500,
        cached_input_tokens: 3_000,
        cache_creation_input_tokens: 0,
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
        ModelPrice {
            input: dec!(0.0000000001),
            ..ModelPrice::default()
        },
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
    let gpt = *t.price("gpt-4o").unwrap();
    assert_eq!(*t.price("openai/gpt-4o").unwrap(), gpt);
    assert_eq!(*t.price("gpt-4o-2024-08-06").unwrap(), gpt);
    assert_eq!(*t.price("openai/gpt-4o-2024-08-06").unwrap(), gpt);
    assert_eq!(*t.price("GPT-4o").unwrap(), gpt);
    assert_eq!(
        t.price("anthropic/claude-sonnet-4-20250514").unwrap().input,
        dec!(0.000003)
    );
    let mut t = fixture();
    t.alias("sonnet", "anthropic/claude-sonnet-4-20250514");
    assert_eq!(t.price("sonnet").unwrap().output, dec!(0.000015));
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
        "claude-sonnet-4",
        "claude-3-5-haiku",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "mistral-large-latest",
        "deepseek-chat",
        "deepseek-reasoner",
    ] {
        let p = t.price(model).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            p.input > Decimal::ZERO && p.output > Decimal::ZERO,
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

#[test]
fn openai_usage_json() {
    let u = Usage::from_openai_json(&json!({
        "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 100}
    }))
    .unwrap();
    assert_eq!(
        u,
        Usage {
            input_tokens: 1200,
            output_tokens: 300,
            cached_input_tokens: 1000,
            cache_creation_input_tokens: 0
        }
    );
    // The Responses API spelling.
    let u = Usage::from_openai_json(&json!({"input_tokens": 5, "output_tokens": 6, "input_tokens_details": {"cached_tokens": 2}})).unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (5, 6, 2)
    );
    assert!(Usage::from_openai_json(&json!({"completion_tokens": 3})).is_err());
    assert!(Usage::from_openai_json(
        &json!({"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": 2}})
    )
    .is_err());
}

#[test]
fn anthropic_usage_json() {
    let u = Usage::from_anthropic_json(&json!({
        "input_tokens": 100, "output_tokens": 800,
        "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 1000
    }))
    .unwrap();
    assert_eq!(
        u,
        Usage {
            input_tokens: 3100,
            output_tokens: 800,
            cached_input_tokens: 2000,
            cache_creation_input_tokens: 1000
        }
    );
    assert_eq!(
        fixture()
            .cost("anthropic/claude-sonnet-4-20250514", &u)
            .unwrap(),
        dec!(0.01665)
    );
    assert!(Usage::from_anthropic_json(&json!({"output_tokens": 1})).is_err());
}

proptest! {
    /// For any model and any usage whose output stays within the maximum, the
    /// estimate is at least the cost, however the input splits into plain,
    /// cached and cache-write tokens.
    #[test]
    fn estimate_bounds_cost(
        model in prop::sample::select(vec!["gpt-4o", "o3", "claude-opus-4", "claude-3-5-haiku",
                                            "gemini-2.5-flash", "deepseek-reasoner", "mistral-small-latest"]),
        input in 0u64..2_000_000,
        cached_share in 0u64..=100,
        write_share in 0u64..=100,
        max_output in 0u64..200_000,
        output_share in 0u64..=100,
    ) {
        let t = PriceTable::builtin();
        let cached = input * cached_share / 100;
        let written = (input - cached) * write_share / 100;
        let usage = Usage {
            input_tokens: input,
            output_tokens: max_output * output_share / 100,
            cached_input_tokens: cached,
            cache_creation_input_tokens: written,
        };
        let cost = t.cost(model, &usage).unwrap();
        let estimate = t.estimate(model, input, max_output).unwrap();
        prop_assert!(estimate >= cost, "{model}: estimate {estimate} < cost {cost} for {usage:?}");
        prop_assert!(budgetgate::amount::to_nanos(cost).is_ok());
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
