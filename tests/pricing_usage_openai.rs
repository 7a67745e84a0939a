//! Pricing: OpenAI's usage JSON (Chat Completions, Responses, Realtime, and
//! DeepSeek's native cache fields), in the shape its SDK returns, parsed and
//! priced; the async-openai conversions.

use budgetgate::pricing::{ModelPrice, PriceTable, PricingError, ServiceTier, Usage, UsageError};
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
