//! Anthropic Messages' usage.

use super::*;

impl Usage {
    /// Anthropic's `usage`: `input_tokens` (cache reads and writes *not*
    /// included) and `output_tokens` are required; `cache_read_input_tokens`,
    /// `cache_creation_input_tokens` and `cache_creation` (its
    /// `ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`, which must
    /// add up to `cache_creation_input_tokens` when both are given) are read.
    /// One-hour writes are priced at the one-hour cache-write price.
    /// `server_tool_use.web_search_requests` is the number of web searches
    /// (priced per search; `web_fetch_requests` cost only their tokens), and
    /// `service_tier` (`"standard"`, `"priority"` or `"batch"`; absent or
    /// `null`: standard) the [`ServiceTier`], `inference_geo` (`"global"`,
    /// `"not_available"`, `"us"`, `"eu"`) the [`Region`] and `speed`
    /// (`"standard"`, `"fast"`) the [`Speed`]; another value is
    /// [`UsageError::UnknownValue`]. Strict as [`Usage::from_openai_json`].
    pub fn from_anthropic_json(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let r = Reader::new("Anthropic", usage)?;
        r.refuse(&[
            ("prompt_tokens", "OpenAI chat"),
            ("completion_tokens", "OpenAI chat"),
            ("total_tokens", "OpenAI Responses"),
            ("input_tokens_details", "OpenAI Responses"),
            ("promptTokenCount", "Gemini"),
        ])?;
        let plain = r.required("input_tokens")?;
        let output = r.required("output_tokens")?;
        let read = r.optional("cache_read_input_tokens")?;
        let (m5, h1) = (
            r.optional("cache_creation.ephemeral_5m_input_tokens")?,
            r.optional("cache_creation.ephemeral_1h_input_tokens")?,
        );
        let by_duration = r.sum(&[m5, h1], "cache_creation")?;
        let write = if r.has("cache_creation_input_tokens") {
            let total = r.optional("cache_creation_input_tokens")?;
            if r.has("cache_creation") && by_duration != total {
                return Err(UsageError::Inconsistent {
                    parser: "Anthropic",
                    detail: format!(
                        "cache_creation has {m5} + {h1} tokens but cache_creation_input_tokens is {total}"
                    ),
                }
                .into());
            }
            total
        } else {
            by_duration
        };
        let searches = r.optional("server_tool_use.web_search_requests")?;
        let service_tier = match r.optional_raw("service_tier") {
            None => ServiceTier::Standard,
            Some(v) => match v.as_str() {
                Some("standard") => ServiceTier::Standard,
                Some("priority") => ServiceTier::Priority,
                Some("batch") => ServiceTier::Batch,
                _ => {
                    return Err(UsageError::UnknownValue {
                        parser: "Anthropic",
                        field: "service_tier".into(),
                        value: abbreviate(v),
                    }
                    .into())
                }
            },
        };
        let region = match r.text("inference_geo")? {
            None | Some("global") | Some("not_available") => Region::Global,
            Some("us") => Region::Us,
            Some("eu") => Region::Eu,
            Some(_) => return Err(r.unknown("inference_geo").into()),
        };
        let speed = match r.text("speed")? {
            None | Some("standard") => Speed::Standard,
            Some("fast") => Speed::Fast,
            Some(_) => return Err(r.unknown("speed").into()),
        };
        Ok(Usage {
            input_tokens: r.sum(&[plain, read, write], "input_tokens")?,
            output_tokens: output,
            cached_input_tokens: read,
            cache_creation_input_tokens: write,
            cache_creation_1h_input_tokens: h1,
            web_search_requests: searches,
            service_tier,
            region,
            speed,
            ..Usage::default()
        })
    }
}
