//! Pricing: service tiers (priority, flex, batch) from LiteLLM's keys, and
//! the region and speed multipliers — worked out by hand.

use budgetgate::pricing::{
    Limits, ModelPrice, PriceTable, PricingError, Region, ServiceTier, ServiceTierPrice, Speed,
    TokenPrices, Usage, UsageError,
};
use rust_decimal_macros::dec;

#[test]
fn service_tier_prices_from_litellm_keys() {
    let t = PriceTable::builtin();
    let u = |tier| Usage {
        service_tier: tier,
        cached_input_tokens: 400,
        ..Usage::new(1_000, 100)
    };
    // gpt-4o: standard 2.50 / 1.25 cached / 10; priority 4.25 / 2.125 / 17;
    // batch 1.25 / (no batch cache price: the standard 1.25) / 5.
    // Standard: 600 × 0.0000025 + 400 × 0.00000125 + 100 × 0.00001 = 0.003.
    assert_eq!(
        t.cost("gpt-4o", &u(ServiceTier::Standard)).unwrap(),
        dec!(0.003)
    );
    // Priority: 600 × 0.00000425 + 400 × 0.000002125 + 100 × 0.000017 = 0.0051.
    assert_eq!(
        t.cost("gpt-4o", &u(ServiceTier::Priority)).unwrap(),
        dec!(0.0051)
    );
    // Batch: 600 × 0.00000125 + 400 × 0.00000125 + 100 × 0.000005 = 0.00175.
    assert_eq!(
        t.cost("gpt-4o", &u(ServiceTier::Batch)).unwrap(),
        dec!(0.00175)
    );
    // Flex: gpt-4o has no flex prices; standard (flex never costs more).
    assert_eq!(
        t.cost("gpt-4o", &u(ServiceTier::Flex)).unwrap(),
        dec!(0.003)
    );
    // o3 flex: 1 / 0.25 cached / 4: 600 × 0.000001 + 400 × 0.00000025 + 100
    // × 0.000004 = 0.0011.
    assert_eq!(t.cost("o3", &u(ServiceTier::Flex)).unwrap(), dec!(0.0011));

    // gemini-2.5-pro priority above 200k: 4.5 / 0.45 cached / 27 per million
    // (its own _above_200k_tokens_priority keys). 250,000 in (100,000
    // cached), 1,000 out: 150,000 × 0.0000045 = 0.675; 100,000 × 0.00000045 =
    // 0.045; 1,000 × 0.000027 = 0.027. Total 0.747.
    let long = Usage {
        service_tier: ServiceTier::Priority,
        cached_input_tokens: 100_000,
        ..Usage::new(250_000, 1_000)
    };
    assert_eq!(t.cost("gemini-2.5-pro", &long).unwrap(), dec!(0.747));
    // At exactly 200,000 the priority base: 2.25 / 0.225 / 18.
    let at = Usage {
        service_tier: ServiceTier::Priority,
        ..Usage::new(200_000, 0)
    };
    assert_eq!(t.cost("gemini-2.5-pro", &at).unwrap(), dec!(0.45));
    let over = Usage {
        input_tokens: 200_001,
        ..at
    };
    assert_eq!(t.cost("gemini-2.5-pro", &over).unwrap(), dec!(0.9000045));

    // The estimate takes the dearest tier the request can reach; narrowed
    // to standard it is the standard bound.
    assert_eq!(
        t.estimate_for(
            "gpt-4o",
            &Limits::new(1_000, 100)
                .service_tier(ServiceTier::Standard)
                .region(Region::Global)
        )
        .unwrap(),
        dec!(0.0035)
    );
    // Any tier and region: priority (4.25 in, 17 out) at FedRAMP's 1.1:
    // (1,000 × 0.00000425 + 100 × 0.000017) × 1.1 = 0.006545.
    assert_eq!(t.estimate("gpt-4o", 1_000, 100).unwrap(), dec!(0.006545));
}

#[test]
fn region_and_speed_multipliers() {
    let t = PriceTable::builtin();
    // claude-opus-4-6: 5 / 25 per million, 1.1 times with inference_geo us.
    let u = Usage::new(1_000, 100);
    assert_eq!(t.cost("claude-opus-4-6", &u).unwrap(), dec!(0.0075));
    let us = Usage {
        region: Region::Us,
        ..u
    };
    assert_eq!(t.cost("claude-opus-4-6", &us).unwrap(), dec!(0.00825));
    // A region the model has no multiplier for: one (as LiteLLM).
    let eu = Usage {
        region: Region::Eu,
        ..u
    };
    assert_eq!(t.cost("claude-opus-4-6", &eu).unwrap(), dec!(0.0075));
    // Fast mode without a fast multiplier: refused, never priced as standard.
    let fast = Usage {
        speed: Speed::Fast,
        ..u
    };
    assert!(matches!(
        t.cost("claude-opus-4-6", &fast),
        Err(PricingError::Unpriced { .. })
    ));
    // With one (LiteLLM's provider_specific_entry.fast), times it, and
    // times the region's: 0.0075 × 2 × 1.1 = 0.0165.
    let (mut t, _) = PriceTable::from_litellm_json(
        r#"{"opus": {"input_cost_per_token": 5e-06, "output_cost_per_token": 2.5e-05,
            "input_cost_per_token_batches": 2.5e-06, "output_cost_per_token_batches": 1.25e-05,
            "provider_specific_entry": {"us": 1.1, "fast": 2.0}}}"#,
    )
    .unwrap();
    assert_eq!(t.cost("opus", &fast).unwrap(), dec!(0.015));
    let fast_us = Usage {
        region: Region::Us,
        ..fast
    };
    assert_eq!(t.cost("opus", &fast_us).unwrap(), dec!(0.0165));
    // Batch and geo together: (1,000 × 0.0000025 + 100 × 0.0000125) × 1.1.
    let batch_us = Usage {
        service_tier: ServiceTier::Batch,
        ..us
    };
    assert_eq!(t.cost("opus", &batch_us).unwrap(), dec!(0.004125));
    // The estimate: fast and US together; narrowed to standard speed, not.
    assert_eq!(t.estimate("opus", 1_000, 100).unwrap(), dec!(0.0165));
    assert_eq!(
        t.estimate_for("opus", &Limits::new(1_000, 100).speed(Speed::Standard))
            .unwrap(),
        dec!(0.00825)
    );
    // Set by hand.
    let mut p = ModelPrice::per_million(dec!(1), dec!(1));
    p.service_tiers.push(ServiceTierPrice::new(
        ServiceTier::Flex,
        TokenPrices::per_million(dec!(0.5), dec!(0.5)),
    ));
    p.region_multipliers.push((Region::Eu, dec!(1.1)));
    t.insert("m", p);
    let flex_eu = Usage {
        service_tier: ServiceTier::Flex,
        region: Region::Eu,
        ..Usage::new(1_000_000, 0)
    };
    assert_eq!(t.cost("m", &flex_eu).unwrap(), dec!(0.55));
}

#[test]
fn service_tier_names() {
    for (name, tier) in [
        ("standard", ServiceTier::Standard),
        ("default", ServiceTier::Standard),
        ("scale", ServiceTier::Standard),
        ("priority", ServiceTier::Priority),
        ("flex", ServiceTier::Flex),
        ("batch", ServiceTier::Batch),
    ] {
        assert_eq!(name.parse::<ServiceTier>(), Ok(tier));
    }
    assert!(matches!(
        "auto".parse::<ServiceTier>(),
        Err(UsageError::UnknownValue { .. })
    ));
}

#[test]
fn batch_cache_writes_without_a_batch_price() {
    // A batch price for input but none for cache writes: the writes are
    // billed as batch input (LiteLLM's batch cost), not at the standard
    // write price, above the threshold too.
    let (t, _) = PriceTable::from_litellm_json(
        r#"{"m": {"input_cost_per_token": 2e-06, "output_cost_per_token": 1e-05,
            "cache_creation_input_token_cost": 1e-07,
            "input_cost_per_token_batches": 1e-06, "output_cost_per_token_batches": 5e-06,
            "input_cost_per_token_above_200k_tokens": 4e-06,
            "cache_creation_input_token_cost_above_200k_tokens": 2e-07,
            "input_cost_per_token_above_200k_tokens_batches": 2e-06}}"#,
    )
    .unwrap();
    let u = |input| Usage {
        service_tier: ServiceTier::Batch,
        cache_creation_input_tokens: 1_000,
        ..Usage::new(input, 0)
    };
    // 2,000 × 0.000001 (1,000 of them writes, at the batch input price).
    assert_eq!(t.cost("m", &u(2_000)).unwrap(), dec!(0.002));
    // Above 200k: 200,001 × 0.000002.
    assert_eq!(t.cost("m", &u(200_001)).unwrap(), dec!(0.400002));
    // Standard: 1,000 × 0.000002 + 1,000 × 0.0000001.
    let standard = Usage {
        service_tier: ServiceTier::Standard,
        ..u(2_000)
    };
    assert_eq!(t.cost("m", &standard).unwrap(), dec!(0.0021));
}
