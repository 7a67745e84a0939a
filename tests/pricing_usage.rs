//! Pricing: each provider's usage JSON, in the shape its SDK returns, parsed
//! and priced; each wrong shape refused by name.

use budgetgate::pricing::{
    AnthropicStreamUsage, ModelPrice, OpenAiStreamUsage, PriceTable, PricingError, Region,
    ServiceTier, Speed, Usage, UsageError,
};
use rust_decimal_macros::dec;
use serde_json::json;

#[test]
fn openai_usage_json() {
    // The openai SDK's CompletionUsage, model_dump()ed.
    let u = Usage::from_openai_json(&json!({
        "completion_tokens": 300, "prompt_tokens": 1200, "total_tokens": 1500,
        "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0,
                                      "reasoning_tokens": 100, "rejected_prediction_tokens": 0},
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 1000}
    }))
    .unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (1200, 300, 1000)
    );
    // Details the SDK leaves out are null.
    let u = Usage::from_openai_json(&json!({
        "completion_tokens": 3, "prompt_tokens": 4, "total_tokens": 7,
        "completion_tokens_details": null, "prompt_tokens_details": null
    }))
    .unwrap();
    assert_eq!(u, Usage::new(4, 3));
    // Embeddings: no completion tokens, and the total says so.
    let u = Usage::from_openai_json(&json!({"prompt_tokens": 8, "total_tokens": 8})).unwrap();
    assert_eq!(u, Usage::new(8, 0));
    let err = |v: serde_json::Value| match Usage::from_openai_json(&v) {
        Err(PricingError::Usage(e)) => e,
        other => panic!("{v}: {other:?}"),
    };
    assert!(matches!(
        err(json!({"prompt_tokens": 8})),
        UsageError::Missing {
            field: "completion_tokens",
            ..
        }
    ));
    assert!(matches!(
        err(json!({"completion_tokens": 3})),
        UsageError::Missing {
            field: "prompt_tokens",
            ..
        }
    ));
    assert_eq!(
        err(json!({"prompt_tokens": 1, "completion_tokens": 0,
                   "prompt_tokens_details": {"cached_tokens": 2}})),
        UsageError::Exceeds {
            parser: "OpenAI chat",
            part: "prompt_tokens_details.cached_tokens".into(),
            part_tokens: 2,
            whole: "prompt_tokens".into(),
            whole_tokens: 1
        }
    );
    for bad in [json!(null), json!(-1), json!(1.5), json!("12")] {
        assert!(matches!(
            err(json!({"prompt_tokens": bad, "completion_tokens": 0})),
            UsageError::NotACount { .. }
        ));
    }
    assert!(matches!(
        err(json!({"prompt_tokens": 1, "completion_tokens": 0, "prompt_tokens_details": 5})),
        UsageError::NotACount { .. }
    ));
    assert!(matches!(err(json!([1, 2])), UsageError::NotAnObject { .. }));
}

#[test]
fn openai_chat_cache_writes_at_the_cache_write_price() {
    // Chat Completions usage with cache writes (as OpenRouter returns for
    // Anthropic models): 3,100 prompt tokens of which 2,000 read from and
    // 1,000 written to the cache.
    let u = Usage::from_openai_json(&json!({
        "completion_tokens": 800, "prompt_tokens": 3100, "total_tokens": 3900,
        "completion_tokens_details": {"reasoning_tokens": 0},
        "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 1000,
                                  "audio_tokens": 0}
    }))
    .unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cached_input_tokens,
            u.cache_creation_input_tokens
        ),
        (3100, 2000, 1000)
    );
    // claude sonnet 4 (fixture, cache_creation_input_token_cost 3.75e-06):
    // 100 plain × 0.000003 = 0.0003; 2,000 read × 0.0000003 = 0.0006; 1,000
    // written × 0.00000375 = 0.00375; 800 out × 0.000015 = 0.012. Total 0.01665.
    assert_eq!(
        testkit::pricing_fixture()
            .cost("anthropic/claude-sonnet-4-20250514", &u)
            .unwrap(),
        dec!(0.01665)
    );
    assert_eq!(
        Usage::from_openai_json(&json!({
            "prompt_tokens": 10, "completion_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 6, "cache_write_tokens": 5}
        })),
        Err(PricingError::Usage(UsageError::Exceeds {
            parser: "OpenAI chat",
            part: "cached + cache write + audio prompt tokens".into(),
            part_tokens: 11,
            whole: "prompt_tokens".into(),
            whole_tokens: 10
        }))
    );
    assert!(matches!(
        Usage::from_openai_json(&json!({
            "prompt_tokens": 10, "completion_tokens": 0,
            "prompt_tokens_details": {"cache_write_tokens": "5"}
        })),
        Err(PricingError::Usage(UsageError::NotACount { .. }))
    ));
}

#[test]
fn deepseek_cache_hits_are_cached_input() {
    // DeepSeek's usage: its own hit / miss counts beside the OpenAI ones.
    let json = json!({
        "completion_tokens": 100, "prompt_tokens": 1000, "total_tokens": 1100,
        "prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 0}
    });
    let u = Usage::from_openai_json(&json).unwrap();
    assert_eq!((u.input_tokens, u.cached_input_tokens), (1000, 800));
    // deepseek-chat (built in: 0.28 / 0.028 cached / 0.42 per million): 200
    // missed × 0.00000028 = 0.000056; 800 hits × 0.000000028 = 0.0000224;
    // 100 out × 0.00000042 = 0.000042. Total 0.0001204 (not 0.000322, hits
    // as input).
    let t = PriceTable::builtin();
    assert_eq!(
        t.cost("deepseek/deepseek-chat", &u).unwrap(),
        dec!(0.0001204)
    );
    // Without prompt_tokens_details (older DeepSeek responses) the same.
    let u2 = Usage::from_openai_json(&json!({
        "completion_tokens": 100, "prompt_tokens": 1000,
        "prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200
    }))
    .unwrap();
    assert_eq!(u2, u);
    let err = |v: serde_json::Value| match Usage::from_openai_json(&v) {
        Err(PricingError::Usage(e)) => e,
        other => panic!("{v}: {other:?}"),
    };
    assert_eq!(
        err(json!({"prompt_tokens": 1000, "completion_tokens": 1,
                   "prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 300})),
        UsageError::Inconsistent {
            parser: "OpenAI chat",
            detail: "prompt_cache_hit_tokens (800) + prompt_cache_miss_tokens (300) \
                     is not prompt_tokens (1000)"
                .into()
        }
    );
    assert_eq!(
        err(json!({"prompt_tokens": 1000, "completion_tokens": 1,
                   "prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200,
                   "prompt_tokens_details": {"cached_tokens": 700}})),
        UsageError::Inconsistent {
            parser: "OpenAI chat",
            detail: "prompt_tokens_details.cached_tokens (700) is not \
                     prompt_cache_hit_tokens (800)"
                .into()
        }
    );
    assert!(matches!(
        err(json!({"prompt_tokens": 1000, "completion_tokens": 1,
                   "prompt_cache_hit_tokens": 800})),
        UsageError::Missing {
            field: "prompt_cache_miss_tokens",
            ..
        }
    ));
    assert!(matches!(
        err(json!({"prompt_tokens": 1000, "completion_tokens": 1,
                   "prompt_cache_hit_tokens": null, "prompt_cache_miss_tokens": 1000})),
        UsageError::NotACount { .. }
    ));
}

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
fn openai_responses_usage_json() {
    // The openai SDK's ResponseUsage, model_dump()ed.
    let u = Usage::from_openai_responses_json(&json!({
        "input_tokens": 5000, "input_tokens_details": {"cached_tokens": 4000},
        "output_tokens": 900, "output_tokens_details": {"reasoning_tokens": 600},
        "total_tokens": 5900
    }))
    .unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (5000, 900, 4000)
    );
    // o3 (built-in): 1,000 plain × 0.000002 = 0.002; 4,000 cached ×
    // 0.0000005 = 0.002; 900 out × 0.000008 = 0.0072. Total 0.0112.
    assert_eq!(PriceTable::builtin().cost("o3", &u).unwrap(), dec!(0.0112));
    assert!(Usage::from_openai_responses_json(&json!({
        "input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 2}
    }))
    .is_err());
}

fn gpt_realtime() -> ModelPrice {
    // gpt-realtime: text 4 / 0.40 cached / 16, audio 32 in / 64 out per million.
    let mut p = ModelPrice::per_million(dec!(4), dec!(16)).cached_per_million(dec!(0.40));
    p.base.audio_input = Some(dec!(0.000032));
    p.base.audio_output = Some(dec!(0.000064));
    p
}

#[test]
fn openai_realtime_usage_json() {
    // The openai SDK's realtime response usage (response.done), model_dump()ed.
    let u = Usage::from_openai_realtime_json(&json!({
        "total_tokens": 1500, "input_tokens": 1000, "output_tokens": 500,
        "input_token_details": {"cached_tokens": 300, "text_tokens": 400, "audio_tokens": 600,
                                "image_tokens": 0,
                                "cached_tokens_details": {"text_tokens": 100, "audio_tokens": 200,
                                                          "image_tokens": 0}},
        "output_token_details": {"text_tokens": 100, "audio_tokens": 400}
    }))
    .unwrap();
    assert_eq!(
        u,
        Usage {
            input_tokens: 1000,
            output_tokens: 500,
            cached_input_tokens: 300,
            cached_audio_input_tokens: 200,
            audio_input_tokens: 400,
            audio_output_tokens: 400,
            ..Usage::default()
        }
    );
    let mut t = PriceTable::new();
    t.insert("gpt-realtime", gpt_realtime());
    // 300 text in × 0.000004 = 0.0012; 300 cached × 0.0000004 = 0.00012; 400
    // uncached audio in × 0.000032 = 0.0128; 100 text out × 0.000016 =
    // 0.0016; 400 audio out × 0.000064 = 0.0256. Total 0.04132.
    assert_eq!(t.cost("gpt-realtime", &u).unwrap(), dec!(0.04132));
    // Without cached_tokens_details the cached tokens are taken as text: 600
    // audio in × 0.000032 = 0.0192, 100 text in × 0.000004 = 0.0004, the rest
    // as above: 0.0192 + 0.0004 + 0.00012 + 0.0272 = 0.04692.
    let u = Usage::from_openai_realtime_json(&json!({
        "total_tokens": 1500, "input_tokens": 1000, "output_tokens": 500,
        "input_token_details": {"cached_tokens": 300, "text_tokens": 400, "audio_tokens": 600},
        "output_token_details": {"text_tokens": 100, "audio_tokens": 400}
    }))
    .unwrap();
    assert_eq!(u.audio_input_tokens, 600);
    assert_eq!(t.cost("gpt-realtime", &u).unwrap(), dec!(0.04692));
    // ... as far as the counts allow: 90 audio of 100, 50 cached: 50 uncached audio.
    let u = Usage::from_openai_realtime_json(&json!({
        "total_tokens": 101, "input_tokens": 100, "output_tokens": 1,
        "input_token_details": {"cached_tokens": 50, "text_tokens": 10, "audio_tokens": 90},
        "output_token_details": null
    }))
    .unwrap();
    assert_eq!(
        (
            u.cached_input_tokens,
            u.cached_audio_input_tokens,
            u.audio_input_tokens
        ),
        (50, 40, 50)
    );
    let err = |v: serde_json::Value| match Usage::from_openai_realtime_json(&v) {
        Err(PricingError::Usage(e)) => e,
        other => panic!("{v}: {other:?}"),
    };
    // Responses usage is refused by its key, and so is the converse.
    assert_eq!(
        err(
            json!({"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                   "input_tokens_details": {"cached_tokens": 0}})
        ),
        UsageError::WrongShape {
            parser: "OpenAI Realtime",
            key: "input_tokens_details",
            looks_like: "OpenAI Responses"
        }
    );
    assert_eq!(
        Usage::from_openai_responses_json(&json!({
            "input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
            "input_token_details": {"cached_tokens": 0}
        })),
        Err(PricingError::Usage(UsageError::WrongShape {
            parser: "OpenAI Responses",
            key: "input_token_details",
            looks_like: "OpenAI Realtime"
        }))
    );
    assert!(matches!(
        err(json!({"input_tokens": 1, "output_tokens": 1, "total_tokens": 2})),
        UsageError::Missing {
            field: "input_token_details",
            ..
        }
    ));
    assert!(matches!(
        err(
            json!({"input_tokens": null, "output_tokens": 1, "total_tokens": 2,
                   "input_token_details": {}})
        ),
        UsageError::NotACount { .. }
    ));
    assert_eq!(
        err(
            json!({"input_tokens": 10, "output_tokens": 1, "total_tokens": 11,
                   "input_token_details": {"text_tokens": 5, "audio_tokens": 6}})
        ),
        UsageError::Exceeds {
            parser: "OpenAI Realtime",
            part: "input_token_details text + audio + image tokens".into(),
            part_tokens: 11,
            whole: "input_tokens".into(),
            whole_tokens: 10
        }
    );
    assert!(matches!(
        err(
            json!({"input_tokens": 10, "output_tokens": 1, "total_tokens": 11,
                   "input_token_details": {"cached_tokens": 4, "audio_tokens": 6,
                                           "cached_tokens_details": {"audio_tokens": 7}}})
        ),
        UsageError::Exceeds { .. }
    ));
    assert!(matches!(
        err(
            json!({"input_tokens": 10, "output_tokens": 1, "total_tokens": 11,
                   "input_token_details": {},
                   "output_token_details": {"text_tokens": 1, "audio_tokens": 1}})
        ),
        UsageError::Exceeds { .. }
    ));
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
fn openai_responses_web_search_calls() {
    // A Responses API response with the web search tool, shaped as OpenAI's
    // web search guide shows it (ids and text shortened).
    let response = json!({
        "id": "resp_67c9fa0502748190", "object": "response", "created_at": 1741290245,
        "status": "completed", "model": "gpt-4.1-2025-04-14", "service_tier": "default",
        "output": [
            {"type": "web_search_call", "id": "ws_67c9fa0502748190b7dd", "status": "completed",
             "action": {"type": "search", "query": "positive news story today"}},
            {"id": "msg_67c9fa077e288190af08", "type": "message", "status": "completed",
             "role": "assistant", "content": [{"type": "output_text",
                "text": "On March 6, 2025, …", "annotations": [{"type": "url_citation",
                "start_index": 2606, "end_index": 2758, "url": "https://example.com", "title": "…"}]}]}
        ],
        "tools": [{"type": "web_search_preview", "search_context_size": "medium"}],
        "usage": {"input_tokens": 328, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 356, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 684}
    });
    let u = Usage::from_openai_response_json(&response).unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.web_search_requests),
        (328, 356, 1)
    );
    // gpt-4.1: 2 / 8 per million, 0.025 per search: 328 × 0.000002 +
    // 356 × 0.000008 + 0.025 = 0.000656 + 0.002848 + 0.025 = 0.028504.
    let t = PriceTable::builtin();
    assert_eq!(t.cost("gpt-4.1-2025-04-14", &u).unwrap(), dec!(0.028504));
    // The estimate with one search bounds it.
    assert!(t.estimate_with("gpt-4.1", 328, 356, 1).unwrap() >= dec!(0.028504));
    // A model without a search price: refused, never priced as no search.
    assert!(matches!(
        t.cost("gpt-4o", &u),
        Err(PricingError::Unpriced { .. })
    ));
    // tool_usage, where the response reports it, wins over counting calls.
    let mut with_tool_usage = response.clone();
    with_tool_usage["tool_usage"] = json!({"web_search": {"num_requests": 3}, "image_gen": null});
    let u = Usage::from_openai_response_json(&with_tool_usage).unwrap();
    assert_eq!(u.web_search_requests, 3);
    let mut in_usage = response.clone();
    in_usage["usage"]["tool_usage"] = json!({"web_search": {"num_requests": 2}});
    assert_eq!(
        Usage::from_openai_responses_json(&in_usage["usage"])
            .unwrap()
            .web_search_requests,
        2
    );
    assert_eq!(
        Usage::from_openai_response_json(&in_usage)
            .unwrap()
            .web_search_requests,
        2
    );
    // The service tier the response says.
    let mut flex = response.clone();
    flex["service_tier"] = json!("flex");
    assert_eq!(
        Usage::from_openai_response_json(&flex)
            .unwrap()
            .service_tier,
        ServiceTier::Flex
    );
    // Not a response, or one without usage: refused.
    for bad in [
        json!({"object": "chat.completion", "usage": response["usage"]}),
        json!({"object": "response", "output": []}),
        json!({"object": "response", "usage": {"input_tokens": null, "output_tokens": 1, "total_tokens": 1}}),
        json!({"object": "response", "service_tier": "turbo", "usage": response["usage"]}),
    ] {
        assert!(Usage::from_openai_response_json(&bad).is_err(), "{bad}");
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

/// The `data:` lines of an SSE stream, as JSON.
fn sse(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn anthropic_stream_usage_is_cumulative() {
    // Anthropic's streaming docs, the basic request's events.
    let events = sse(r#"event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-6", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}
"#);
    let mut s = AnthropicStreamUsage::new();
    assert!(s.usage().is_err());
    let mut running = Vec::new();
    for e in &events {
        if let Some(u) = s.push(e).unwrap() {
            running.push((u.input_tokens, u.output_tokens));
        }
    }
    // The delta's 15 is the total so far, not 15 more.
    assert_eq!(running, [(25, 1), (25, 15)]);
    assert!(s.is_complete());
    assert_eq!(s.usage().unwrap(), Usage::new(25, 15));
    // claude-opus-4-6: 25 × 0.000005 + 15 × 0.000025 = 0.0005.
    assert_eq!(
        PriceTable::builtin()
            .cost("claude-opus-4-6", &s.usage().unwrap())
            .unwrap(),
        dec!(0.0005)
    );
    // Nothing after message_stop.
    assert!(s.push(&events[6]).is_err());

    // The web search example: the final delta restates every count,
    // searches included.
    let events = sse(
        r#"data: {"type":"message_start","message":{"id":"msg_01G...","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2679,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":3}}}
data: {"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB","name":"web_search","input":{}}}
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":10682,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":510,"server_tool_use":{"web_search_requests":1}}}
data: {"type":"message_stop"}
"#,
    );
    let mut s = AnthropicStreamUsage::new();
    for e in &events {
        s.push(e).unwrap();
    }
    let u = s.usage().unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.web_search_requests),
        (10682, 510, 1)
    );
    // A stream cut off after message_start is billed what it has so far.
    let mut cut = AnthropicStreamUsage::new();
    cut.push(&events[0]).unwrap();
    assert!(!cut.is_complete());
    assert_eq!(cut.usage().unwrap().output_tokens, 3);

    // Refused: deltas before the start, a second start, counts going down,
    // null counts, not events.
    let mut s = AnthropicStreamUsage::new();
    assert!(s.push(&events[2]).is_err());
    s.push(&events[0]).unwrap();
    assert!(s.push(&events[0]).is_err());
    let down = json!({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 2}});
    assert!(matches!(
        s.push(&down),
        Err(PricingError::Usage(UsageError::Inconsistent { .. }))
    ));
    let start_null = json!({"type": "message_start", "message": {"usage": {"input_tokens": null, "output_tokens": 1}}});
    assert!(AnthropicStreamUsage::new().push(&start_null).is_err());
    for bad in [
        json!("message_start"),
        json!({"delta": {}}),
        json!({"type": 3}),
    ] {
        assert!(AnthropicStreamUsage::new().push(&bad).is_err(), "{bad}");
    }
    // OpenAI usage in an Anthropic stream.
    let openai = json!({"type": "message_start", "message": {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}});
    assert!(matches!(
        AnthropicStreamUsage::new().push(&openai),
        Err(PricingError::Usage(UsageError::WrongShape { .. }))
    ));
}

#[test]
fn openai_stream_usage_from_the_last_chunk() {
    // OpenAI's chat streaming with stream_options.include_usage: every
    // chunk has "usage": null but the last, whose choices are empty.
    let chunks = sse(
        r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]
"#,
    );
    let mut s = OpenAiStreamUsage::new();
    let mut seen = Vec::new();
    for c in &chunks {
        if let Some(u) = s.push(c).unwrap() {
            seen.push(u);
        }
    }
    assert_eq!(seen, [Usage::new(9, 12)]);
    // gpt-4o-mini: 9 × 0.00000015 + 12 × 0.0000006 = 0.00000855.
    assert_eq!(
        PriceTable::builtin()
            .cost("gpt-4o-mini", &s.usage().unwrap())
            .unwrap(),
        dec!(0.00000855)
    );
    // Without include_usage there is none: an error, never zero.
    let mut none = OpenAiStreamUsage::new();
    for c in &chunks[..3] {
        none.push(c).unwrap();
    }
    assert!(matches!(
        none.usage(),
        Err(PricingError::Usage(UsageError::Missing { .. }))
    ));
    // A second usage is refused.
    assert!(s.push(&chunks[3]).is_err());

    // The Responses API's stream: response.completed carries the response.
    let events = sse(
        r#"data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[],"usage":null}}
data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}
data: {"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","status":"completed","service_tier":"default","output":[{"type":"message","id":"msg_1","role":"assistant","content":[]}],"usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":0},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48}}}
"#,
    );
    let mut s = OpenAiStreamUsage::new();
    for e in &events {
        s.push(e).unwrap();
    }
    assert_eq!(s.usage().unwrap(), Usage::new(37, 11));
    for bad in [
        json!({"object": "chat.completion", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}),
        json!({"type": "message_start"}),
        json!({"object": "chat.completion.chunk", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    ] {
        assert!(OpenAiStreamUsage::new().push(&bad).is_err(), "{bad}");
    }
}

// ----- async-openai's structs (feature async-openai) ----------------------------------

#[test]
fn async_openai_usage_structs() {
    use async_openai::types::chat::CompletionUsage;
    use async_openai::types::responses::ResponseUsage;

    // The same JSON, read by async-openai and then converted, or read
    // directly: the same usage.
    let chat = json!({
        "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    });
    let typed: CompletionUsage = serde_json::from_value(chat.clone()).unwrap();
    let u = Usage::try_from(&typed).unwrap();
    assert_eq!(u, Usage::from_openai_json(&chat).unwrap());
    assert_eq!((u.cached_input_tokens, u.reasoning_tokens), (1920, 192));
    assert_eq!(Usage::try_from(typed).unwrap(), u);

    let responses = json!({
        "input_tokens": 328, "input_tokens_details": {"cached_tokens": 128, "cache_write_tokens": 100},
        "output_tokens": 52, "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 380
    });
    let typed: ResponseUsage = serde_json::from_value(responses.clone()).unwrap();
    let u = Usage::try_from(&typed).unwrap();
    assert_eq!(u, Usage::from_openai_responses_json(&responses).unwrap());
    assert_eq!(
        (
            u.cached_input_tokens,
            u.cache_creation_input_tokens,
            u.reasoning_tokens
        ),
        (128, 100, 12)
    );

    // What the readers refuse, the conversions refuse: parts over their
    // wholes, negative cache writes.
    let mut bad = CompletionUsage {
        prompt_tokens: 10,
        completion_tokens: 1,
        total_tokens: 11,
        ..CompletionUsage::default()
    };
    bad.prompt_tokens_details = Some(async_openai::types::chat::PromptTokensDetails {
        cached_tokens: Some(11),
        ..Default::default()
    });
    assert!(matches!(
        Usage::try_from(&bad),
        Err(PricingError::Usage(UsageError::Exceeds { .. }))
    ));
    bad.prompt_tokens_details = Some(async_openai::types::chat::PromptTokensDetails {
        cache_write_tokens: Some(-1),
        ..Default::default()
    });
    assert!(matches!(
        Usage::try_from(&bad),
        Err(PricingError::Usage(UsageError::NotACount { .. }))
    ));
    let mut bad = ResponseUsage {
        input_tokens: 1,
        ..ResponseUsage::default()
    };
    bad.input_tokens_details.cached_tokens = 2;
    assert!(Usage::try_from(&bad).is_err());
}

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
