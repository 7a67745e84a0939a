//! Usage of streamed responses, accumulated event by event.

use serde_json::{Map, Value};

use super::abbreviate_value as abbreviate;
use super::{PricingError, Usage, UsageError};

/// The usage of an Anthropic Messages stream, from its events as they
/// arrive.
///
/// `message_start` carries the usage so far (`message.usage`: the input
/// counts, an output count of one or so); each `message_delta` carries usage
/// counts that are *cumulative* (the totals so far, not increments) for the
/// fields it names — `output_tokens`, and in newer streams `input_tokens`,
/// the cache counts and `server_tool_use` too. Each field a delta names
/// replaces the one before; a count that goes down is
/// [`UsageError::Inconsistent`]. Other events (`content_block_*`, `ping`,
/// `message_stop`, …) carry no usage and are only checked to be events.
///
/// ```
/// use budgetgate::pricing::{AnthropicStreamUsage, Usage};
/// use serde_json::json;
///
/// let mut stream = AnthropicStreamUsage::new();
/// stream.push(&json!({"type": "message_start", "message": {
///     "id": "msg_1", "type": "message", "role": "assistant", "content": [],
///     "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
///     "usage": {"input_tokens": 25, "output_tokens": 1}}}))?;
/// stream.push(&json!({"type": "content_block_delta", "index": 0,
///     "delta": {"type": "text_delta", "text": "Hello"}}))?;
/// stream.push(&json!({"type": "message_delta",
///     "delta": {"stop_reason": "end_turn", "stop_sequence": null},
///     "usage": {"output_tokens": 15}}))?;
/// stream.push(&json!({"type": "message_stop"}))?;
/// assert!(stream.is_complete());
/// assert_eq!(stream.usage()?, Usage::new(25, 15));
/// # Ok::<(), budgetgate::pricing::PricingError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AnthropicStreamUsage {
    usage: Option<Map<String, Value>>,
    complete: bool,
}

const ANTHROPIC_STREAM: &str = "Anthropic stream";

impl AnthropicStreamUsage {
    /// Before the first event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event (the JSON of an SSE `data:` line). Returns the usage
    /// so far when the event carried usage (`message_start`,
    /// `message_delta`), else `None`.
    ///
    /// Refused: a value that is not an event object, a `message_delta`
    /// before `message_start`, a second `message_start`, an event after
    /// `message_stop`, usage that [`Usage::from_anthropic_json`] refuses, a
    /// cumulative count that goes down.
    pub fn push(&mut self, event: &Value) -> Result<Option<Usage>, PricingError> {
        let kind = event_type(ANTHROPIC_STREAM, event)?;
        let inconsistent = |detail: String| UsageError::Inconsistent {
            parser: ANTHROPIC_STREAM,
            detail,
        };
        if self.complete {
            return Err(inconsistent(format!("a {kind:?} event after message_stop")).into());
        }
        match kind {
            "message_start" => {
                if self.usage.is_some() {
                    return Err(inconsistent("a second message_start".into()).into());
                }
                let usage = event
                    .get("message")
                    .and_then(|m| m.get("usage"))
                    .and_then(Value::as_object)
                    .ok_or_else(|| UsageError::Missing {
                        parser: ANTHROPIC_STREAM,
                        field: "message.usage",
                        keys: keys(event),
                    })?;
                Usage::from_anthropic_json(&Value::Object(usage.clone()))?;
                self.usage = Some(usage.clone());
                self.usage().map(Some)
            }
            "message_delta" => {
                let Some(so_far) = self.usage.as_mut() else {
                    return Err(inconsistent("message_delta before message_start".into()).into());
                };
                let Some(delta) = event.get("usage").filter(|u| !u.is_null()) else {
                    return Ok(None);
                };
                let delta = delta.as_object().ok_or_else(|| UsageError::NotAnObject {
                    parser: ANTHROPIC_STREAM,
                    found: abbreviate(delta),
                })?;
                let mut next = so_far.clone();
                for (field, value) in delta {
                    if value.is_null() {
                        continue;
                    }
                    if let (Some(old), Some(new)) =
                        (so_far.get(field).and_then(Value::as_u64), value.as_u64())
                    {
                        if new < old {
                            return Err(inconsistent(format!(
                                "message_delta usage {field} went down from {old} to {new} \
                                 (the counts are cumulative)"
                            ))
                            .into());
                        }
                    }
                    next.insert(field.clone(), value.clone());
                }
                let usage = Usage::from_anthropic_json(&Value::Object(next.clone()))?;
                *so_far = next;
                Ok(Some(usage))
            }
            "message_stop" => {
                if self.usage.is_none() {
                    return Err(inconsistent("message_stop before message_start".into()).into());
                }
                self.complete = true;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// The usage so far: what the events so far bill (for a stream that was
    /// cut off, what it was billed up to then). Before `message_start`,
    /// [`UsageError::Missing`].
    pub fn usage(&self) -> Result<Usage, PricingError> {
        let usage = self.usage.as_ref().ok_or(UsageError::Missing {
            parser: ANTHROPIC_STREAM,
            field: "message_start",
            keys: Vec::new(),
        })?;
        Usage::from_anthropic_json(&Value::Object(usage.clone()))
    }

    /// Whether `message_stop` arrived: [`AnthropicStreamUsage::usage`] is
    /// the final usage.
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

/// The usage of an OpenAI stream: Chat Completions chunks
/// (`chat.completion.chunk`, requested with `stream_options:
/// {"include_usage": true}`: the last chunk, with empty `choices`, has the
/// whole call's `usage`; the others `"usage": null`), or Responses API
/// events (`response.completed`, `response.incomplete` and `response.failed`
/// carry the whole response, read by [`Usage::from_openai_response_json`]).
///
/// ```
/// use budgetgate::pricing::{OpenAiStreamUsage, Usage};
/// use serde_json::json;
///
/// let mut stream = OpenAiStreamUsage::new();
/// stream.push(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
///     "created": 1, "model": "gpt-4o-mini", "choices": [{"index": 0,
///     "delta": {"content": "Hi"}, "finish_reason": null}], "usage": null}))?;
/// assert!(stream.usage().is_err()); // not yet
/// stream.push(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
///     "created": 1, "model": "gpt-4o-mini", "choices": [],
///     "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}))?;
/// assert_eq!(stream.usage()?, Usage::new(9, 12));
/// # Ok::<(), budgetgate::pricing::PricingError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct OpenAiStreamUsage {
    usage: Option<Usage>,
}

const OPENAI_STREAM: &str = "OpenAI stream";

impl OpenAiStreamUsage {
    /// Before the first chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one chunk or event (the JSON of an SSE `data:` line; not the
    /// `[DONE]` sentinel). Returns the usage when it carried one.
    ///
    /// Refused: a value that is neither a chat completion chunk nor a
    /// Responses event, usage its reader refuses, or a second usage.
    pub fn push(&mut self, chunk: &Value) -> Result<Option<Usage>, PricingError> {
        let usage = match chunk.get("object").and_then(Value::as_str) {
            Some("chat.completion.chunk") => match chunk.get("usage") {
                None | Some(Value::Null) => return Ok(None),
                Some(u) => Usage::from_openai_json(u)?,
            },
            _ => match event_type(OPENAI_STREAM, chunk)? {
                "response.completed" | "response.incomplete" | "response.failed" => {
                    let response = chunk.get("response").ok_or_else(|| UsageError::Missing {
                        parser: OPENAI_STREAM,
                        field: "response",
                        keys: keys(chunk),
                    })?;
                    Usage::from_openai_response_json(response)?
                }
                t if t.starts_with("response.") || t == "error" => return Ok(None),
                _ => {
                    return Err(UsageError::UnknownValue {
                        parser: OPENAI_STREAM,
                        field: "type".into(),
                        value: abbreviate(chunk),
                    }
                    .into())
                }
            },
        };
        if self.usage.is_some() {
            return Err(UsageError::Inconsistent {
                parser: OPENAI_STREAM,
                detail: "a second usage in one stream".into(),
            }
            .into());
        }
        self.usage = Some(usage);
        Ok(Some(usage))
    }

    /// The whole call's usage, once the chunk or event with it arrived;
    /// before, [`UsageError::Missing`] (a chat stream sends it only when
    /// requested with `stream_options.include_usage`).
    pub fn usage(&self) -> Result<Usage, PricingError> {
        self.usage.ok_or_else(|| {
            UsageError::Missing {
                parser: OPENAI_STREAM,
                field: "usage (stream_options.include_usage not set, or the stream not ended)",
                keys: Vec::new(),
            }
            .into()
        })
    }
}

fn event_type<'a>(parser: &'static str, event: &'a Value) -> Result<&'a str, UsageError> {
    let obj = event.as_object().ok_or_else(|| UsageError::NotAnObject {
        parser,
        found: abbreviate(event),
    })?;
    match obj.get("type") {
        Some(Value::String(t)) => Ok(t),
        Some(other) => Err(UsageError::UnknownValue {
            parser,
            field: "type".into(),
            value: abbreviate(other),
        }),
        None => Err(UsageError::Missing {
            parser,
            field: "type",
            keys: keys(event),
        }),
    }
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}
