//! Pricing: the usage JSON of Anthropic and Google Gemini, in the shape each
//! SDK returns, parsed and priced; each wrong shape refused by name (OpenAI's
//! shapes are in `pricing_usage_openai.rs`, streams in `pricing_streams.rs`).

use budgetgate::pricing::{PriceTable, PricingError, Region, Speed, Usage, UsageError};
use rust_decimal_macros::dec;
use serde_json::json;

/// What each reader says when given another provider's usage.
#[test]
fn usage_of_another_shape_is_refused_by_name() {
    let chat = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    let responses = json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                           "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                           "total_tokens": 15});
    let anthropic = json!({"input_tokens": 10, "output_tokens": 5,
                           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    let anthropic_minimal = json!({"input_tokens": 10, "output_tokens": 5});
    let gemini = json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15});
    let realtime = json!({"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                          "input_token_details": {"cached_tokens": 0, "text_tokens": 10,
                                                  "audio_tokens": 0},
                          "output_token_details": {"text_tokens": 5, "audio_tokens": 0}});
    type Reader = fn(&serde_json::Value) -> Result<Usage, PricingError>;
    let readers: [(&str, Reader); 5] = [
        ("chat", Usage::from_openai_json),
        ("responses", Usage::from_openai_responses_json),
        ("realtime", Usage::from_openai_realtime_json),
        ("anthropic", Usage::from_anthropic_json),
        ("gemini", Usage::from_gemini_json),
    ];
    let shapes = [
        ("chat", &chat),
        ("responses", &responses),
        ("anthropic", &anthropic),
        ("anthropic", &anthropic_minimal),
        ("gemini", &gemini),
        ("realtime", &realtime),
    ];
    for (reader, read) in readers {
        for (shape, usage) in shapes {
            let got = read(usage);
            if reader == shape {
                assert_eq!(got.unwrap(), Usage::new(10, 5), "{reader} on {usage}");
            } else {
                let e = got.expect_err(&format!("{reader} accepted {shape} usage {usage}"));
                // The message names a key it saw or the one it needs.
                let msg = e.to_string();
                assert!(
                    msg.contains("looks like") || msg.contains("has no"),
                    "{reader} on {shape}: {msg}"
                );
            }
        }
    }
    assert_eq!(
        Usage::from_openai_json(&anthropic).unwrap_err(),
        PricingError::Usage(UsageError::WrongShape {
            parser: "OpenAI chat",
            key: "input_tokens",
            looks_like: "Anthropic or OpenAI Responses"
        })
    );
    // null is not 0 where a count is required.
    assert_eq!(
        Usage::from_anthropic_json(&json!({"input_tokens": null, "output_tokens": 1})).unwrap_err(),
        PricingError::Usage(UsageError::NotACount {
            parser: "Anthropic",
            field: "input_tokens".into(),
            value: "null".into()
        })
    );
    assert!(Usage::from_anthropic_json(&json!({"output_tokens": 1})).is_err());
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
            cache_creation_input_tokens: 1000,
            ..Usage::default()
        }
    );
    assert_eq!(
        testkit::pricing_fixture()
            .cost("anthropic/claude-sonnet-4-20250514", &u)
            .unwrap(),
        dec!(0.01665)
    );
    // The anthropic SDK's Usage, model_dump()ed, with one-hour writes.
    let u = Usage::from_anthropic_json(&json!({
        "cache_creation": {"ephemeral_1h_input_tokens": 400, "ephemeral_5m_input_tokens": 600},
        "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000,
        "input_tokens": 100, "output_tokens": 800,
        "server_tool_use": null, "service_tier": "standard"
    }))
    .unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cache_creation_input_tokens,
            u.cache_creation_1h_input_tokens
        ),
        (3100, 1000, 400)
    );
    // 100 × 0.000003 = 0.0003; 2,000 read × 0.0000003 = 0.0006; 600 5-minute
    // writes × 0.00000375 = 0.00225; 400 1-hour writes × 0.000006 = 0.0024;
    // 800 out × 0.000015 = 0.012. Total 0.01755 (0.01665 + 400 × 0.00000225).
    for (t, model) in [
        (
            testkit::pricing_fixture(),
            "anthropic/claude-sonnet-4-20250514",
        ),
        (
            PriceTable::builtin(),
            "anthropic/claude-sonnet-4-5-20250929",
        ),
    ] {
        assert_eq!(t.cost(model, &u).unwrap(), dec!(0.01755), "{model}");
    }
    // cache_creation alone gives the writes.
    let u = Usage::from_anthropic_json(&json!({
        "cache_creation": {"ephemeral_1h_input_tokens": 7, "ephemeral_5m_input_tokens": 0},
        "input_tokens": 1, "output_tokens": 1
    }))
    .unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cache_creation_input_tokens,
            u.cache_creation_1h_input_tokens
        ),
        (8, 7, 7)
    );
    // SDK nulls for what a call did not use.
    let u = Usage::from_anthropic_json(&json!({
        "cache_creation": null, "cache_creation_input_tokens": null, "cache_read_input_tokens": null,
        "input_tokens": 10, "output_tokens": 5, "server_tool_use": null, "service_tier": null
    }))
    .unwrap();
    assert_eq!(u, Usage::new(10, 5));
    // The durations must add up to the writes.
    assert!(matches!(
        Usage::from_anthropic_json(&json!({
            "cache_creation": {"ephemeral_1h_input_tokens": 1, "ephemeral_5m_input_tokens": 1},
            "cache_creation_input_tokens": 3, "input_tokens": 1, "output_tokens": 1
        })),
        Err(PricingError::Usage(UsageError::Inconsistent { .. }))
    ));
}

#[test]
fn gemini_usage_json() {
    // A generateContent response (REST JSON).
    let response = json!({
        "candidates": [{"content": {"parts": [{"text": "…"}], "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {
            "promptTokenCount": 250000, "candidatesTokenCount": 1000, "totalTokenCount": 254000,
            "cachedContentTokenCount": 100000, "thoughtsTokenCount": 2000,
            "toolUsePromptTokenCount": 1000,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 250000}]
        },
        "modelVersion": "gemini-2.5-pro"
    });
    let u = Usage::from_gemini_json(&response).unwrap();
    assert_eq!(
        u,
        Usage::from_gemini_json(&response["usageMetadata"]).unwrap()
    );
    // Input: 250,000 prompt + 1,000 tool-use prompt; output: 1,000 + 2,000
    // thoughts.
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (251_000, 3_000, 100_000)
    );
    // gemini-2.5-pro above 200k: 151,000 plain × 0.0000025 = 0.3775;
    // 100,000 cached × 0.00000025 = 0.025; 3,000 out × 0.000015 = 0.045.
    // Total 0.4475.
    assert_eq!(
        PriceTable::builtin()
            .cost("gemini/gemini-2.5-pro", &u)
            .unwrap(),
        dec!(0.4475)
    );
    // No candidates (a blocked prompt): output 0.
    let u = Usage::from_gemini_json(&json!({"promptTokenCount": 5, "totalTokenCount": 5})).unwrap();
    assert_eq!(u, Usage::new(5, 0));
    assert!(
        Usage::from_gemini_json(&json!({"promptTokenCount": 5, "cachedContentTokenCount": 6}))
            .is_err()
    );
    assert!(Usage::from_gemini_json(&json!({"promptTokenCount": null})).is_err());
    assert!(Usage::from_gemini_json(&json!({"candidatesTokenCount": 5})).is_err());
}

#[test]
fn anthropic_inference_geo_and_speed() {
    // The anthropic SDK's Usage with the fields of data residency and fast mode.
    let u = Usage::from_anthropic_json(&json!({
        "cache_creation": null, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "inference_geo": "us", "input_tokens": 1000, "output_tokens": 100,
        "server_tool_use": null, "service_tier": "standard", "speed": "fast"
    }))
    .unwrap();
    assert_eq!((u.region, u.speed), (Region::Us, Speed::Fast));
    for geo in ["global", "not_available"] {
        let u = Usage::from_anthropic_json(&json!({
            "inference_geo": geo, "input_tokens": 1, "output_tokens": 1, "speed": "standard"
        }))
        .unwrap();
        assert_eq!((u.region, u.speed), (Region::Global, Speed::Standard));
    }
    // claude-opus-4-6 in the US: 1.1 times.
    let u = Usage::from_anthropic_json(&json!({
        "inference_geo": "us", "input_tokens": 1000, "output_tokens": 100
    }))
    .unwrap();
    assert_eq!(
        PriceTable::builtin().cost("claude-opus-4-6", &u).unwrap(),
        dec!(0.00825)
    );
    for bad in [
        json!({"inference_geo": "mars", "input_tokens": 1, "output_tokens": 1}),
        json!({"inference_geo": 1, "input_tokens": 1, "output_tokens": 1}),
        json!({"speed": "ludicrous", "input_tokens": 1, "output_tokens": 1}),
    ] {
        let e = Usage::from_anthropic_json(&bad).unwrap_err();
        assert!(
            matches!(e, PricingError::Usage(UsageError::UnknownValue { .. })),
            "{e}"
        );
    }
}

#[test]
fn gemini_grounding_searches() {
    // A generateContent response grounded with Google Search, shaped as the
    // Gemini API's grounding docs show it (content shortened).
    let response = json!({
        "candidates": [{
            "content": {"parts": [{"text": "Spain won Euro 2024, defeating England 2-1 in the final."}],
                        "role": "model"},
            "groundingMetadata": {
                "webSearchQueries": ["UEFA Euro 2024 winner", "who won euro 2024", "UEFA Euro 2024 winner"],
                "searchEntryPoint": {"renderedContent": "<!-- HTML and CSS for the search widget -->"},
                "groundingChunks": [{"web": {"uri": "https://vertexaisearch.cloud.google.com/…", "title": "aljazeera.com"}}],
                "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": 56,
                    "text": "Spain won Euro 2024, defeating England 2-1 in the final."},
                    "groundingChunkIndices": [0]}]
            }
        }],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 20, "totalTokenCount": 30},
        "modelVersion": "gemini-2.5-flash"
    });
    let u = Usage::from_gemini_json(&response).unwrap();
    // Two distinct queries (the repeated one counts once).
    assert_eq!(u.web_search_requests, 2);
    // gemini-2.5-flash: 10 × 0.0000003 + 20 × 0.0000025 + 2 × 0.035 = 0.070053.
    assert_eq!(
        PriceTable::builtin()
            .cost("gemini/gemini-2.5-flash", &u)
            .unwrap(),
        dec!(0.070053)
    );
    // The usage metadata alone has no searches.
    assert_eq!(
        Usage::from_gemini_json(&response["usageMetadata"])
            .unwrap()
            .web_search_requests,
        0
    );
    let mut bad = response.clone();
    bad["candidates"][0]["groundingMetadata"]["webSearchQueries"] = json!("one query");
    assert!(Usage::from_gemini_json(&bad).is_err());
}

// ----- streams ----------------------------------------------------------------------

#[test]
fn cached_audio_at_its_own_price() {
    // gemini-2.5-flash (built in, LiteLLM's cache_read_input_audio_token_cost):
    // 0.30 in, 1.00 audio in, 0.03 cached, 0.10 cached audio, 2.50 out.
    let u = Usage::from_gemini_json(&json!({
        "promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100,
        "cachedContentTokenCount": 600,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 500}, {"modality": "AUDIO", "tokenCount": 500}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 200}, {"modality": "AUDIO", "tokenCount": 400}]
    }))
    .unwrap();
    assert_eq!(
        (
            u.cached_input_tokens,
            u.cached_audio_input_tokens,
            u.audio_input_tokens
        ),
        (600, 400, 100)
    );
    // 300 text × 0.0000003 = 0.00009; 100 audio × 0.000001 = 0.0001; 200
    // cached text × 0.00000003 = 0.000006; 400 cached audio × 0.0000001 =
    // 0.00004; 100 out × 0.0000025 = 0.00025. Total 0.000486.
    let t = PriceTable::builtin();
    assert_eq!(t.cost("gemini-2.5-flash", &u).unwrap(), dec!(0.000486));
    // Cached audio over the cached tokens is refused.
    assert!(Usage::from_gemini_json(&json!({
        "promptTokenCount": 1000, "cachedContentTokenCount": 100,
        "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 500}],
        "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 200}]
    }))
    .is_err());
    let bad = Usage {
        cached_input_tokens: 1,
        cached_audio_input_tokens: 2,
        ..Usage::new(5, 0)
    };
    assert!(t.cost("gemini-2.5-flash", &bad).is_err());
}
