//! Pricing: streamed usage — Anthropic's cumulative `message_delta` events
//! and OpenAI's final usage chunk — accumulated as it arrives.

use budgetgate::pricing::{
    AnthropicStreamUsage, OpenAiStreamUsage, PriceTable, PricingError, Usage, UsageError,
};
use rust_decimal_macros::dec;
use serde_json::json;

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
