//! OpenAI's usage shapes (Chat Completions, Responses, Realtime), with
//! DeepSeek's native cache fields.

use super::*;

impl Usage {
    /// OpenAI Chat Completions' `usage`: `prompt_tokens` (cached included)
    /// and `completion_tokens` (reasoning included) are required,
    /// `prompt_tokens_details.cached_tokens` / `cache_write_tokens` (priced at
    /// the cache-write price) / `audio_tokens` and
    /// `completion_tokens_details.reasoning_tokens` / `audio_tokens` are read.
    ///
    /// DeepSeek's native `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`
    /// are read too: the hits are the cached input. When either is present
    /// both must be, and they must add up to `prompt_tokens`; a
    /// `prompt_tokens_details.cached_tokens` given beside them must equal the
    /// hits ([`UsageError::Inconsistent`] otherwise).
    ///
    /// Embeddings' usage (no
    /// `completion_tokens`, `total_tokens` = `prompt_tokens`) is accepted.
    ///
    /// Strict: usage of another shape (`input_tokens`: Anthropic or the
    /// Responses API; `promptTokenCount`: Gemini), a required count that is
    /// missing or `null`, or a part larger than its whole, is an error naming
    /// what it saw. Optional counts may be absent or `null` (0), as SDKs
    /// serialize them.
    pub fn from_openai_json(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let r = Reader::new("OpenAI chat", usage)?;
        r.refuse(&[
            ("input_tokens", "Anthropic or OpenAI Responses"),
            ("output_tokens", "Anthropic or OpenAI Responses"),
            ("cache_read_input_tokens", "Anthropic"),
            ("promptTokenCount", "Gemini"),
        ])?;
        let input = r.required("prompt_tokens")?;
        let output = match r.optional_raw("completion_tokens") {
            Some(_) => r.required("completion_tokens")?,
            // Embeddings: no completion, and the total says so.
            None if r.optional("total_tokens")? == input && r.has("total_tokens") => 0,
            None => return Err(r.missing("completion_tokens").into()),
        };
        let mut cached = r.optional("prompt_tokens_details.cached_tokens")?;
        r.part_of(
            cached,
            "prompt_tokens_details.cached_tokens",
            input,
            "prompt_tokens",
        )?;
        if r.has("prompt_cache_hit_tokens") || r.has("prompt_cache_miss_tokens") {
            // DeepSeek: the hits are billed as cached input.
            let hit = r.required("prompt_cache_hit_tokens")?;
            let miss = r.required("prompt_cache_miss_tokens")?;
            let inconsistent = |detail: String| UsageError::Inconsistent {
                parser: "OpenAI chat",
                detail,
            };
            if hit.checked_add(miss) != Some(input) {
                return Err(inconsistent(format!(
                    "prompt_cache_hit_tokens ({hit}) + prompt_cache_miss_tokens ({miss}) \
                     is not prompt_tokens ({input})"
                ))
                .into());
            }
            if r.optional_raw("prompt_tokens_details.cached_tokens")
                .is_some()
                && cached != hit
            {
                return Err(inconsistent(format!(
                    "prompt_tokens_details.cached_tokens ({cached}) is not \
                     prompt_cache_hit_tokens ({hit})"
                ))
                .into());
            }
            cached = hit;
        }
        let write = r.optional("prompt_tokens_details.cache_write_tokens")?;
        let audio_in = r.optional("prompt_tokens_details.audio_tokens")?;
        r.part_of(
            r.sum(
                &[cached, write, audio_in],
                "cached + cache write + audio tokens",
            )?,
            "cached + cache write + audio prompt tokens",
            input,
            "prompt_tokens",
        )?;
        let reasoning = r.optional("completion_tokens_details.reasoning_tokens")?;
        let audio_out = r.optional("completion_tokens_details.audio_tokens")?;
        r.part_of(
            r.sum(&[reasoning, audio_out], "reasoning + audio tokens")?,
            "reasoning + audio completion tokens",
            output,
            "completion_tokens",
        )?;
        Ok(Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_creation_input_tokens: write,
            reasoning_tokens: reasoning,
            audio_input_tokens: audio_in,
            audio_output_tokens: audio_out,
            ..Usage::default()
        })
    }

    /// OpenAI Responses API's `usage`: `input_tokens` (cached included),
    /// `output_tokens` (reasoning included) and `total_tokens` are required
    /// (`total_tokens` is what tells it from Anthropic's usage);
    /// `input_tokens_details.cached_tokens` / `cache_write_tokens` (priced
    /// at the cache-write price), `output_tokens_details.reasoning_tokens` and
    /// `tool_usage.web_search.num_requests` (web searches) are read. Strict
    /// as [`Usage::from_openai_json`]. [`Usage::from_openai_response_json`]
    /// reads a whole response (its web search calls and service tier too).
    pub fn from_openai_responses_json(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let r = Reader::new("OpenAI Responses", usage)?;
        r.refuse(&[
            ("prompt_tokens", "OpenAI chat"),
            ("completion_tokens", "OpenAI chat"),
            ("cache_read_input_tokens", "Anthropic"),
            ("cache_creation_input_tokens", "Anthropic"),
            ("cache_creation", "Anthropic"),
            ("input_token_details", "OpenAI Realtime"),
            ("output_token_details", "OpenAI Realtime"),
            ("promptTokenCount", "Gemini"),
        ])?;
        let input = r.required("input_tokens")?;
        let output = r.required("output_tokens")?;
        r.required("total_tokens")?;
        let cached = r.optional("input_tokens_details.cached_tokens")?;
        let write = r.optional("input_tokens_details.cache_write_tokens")?;
        r.part_of(
            r.sum(&[cached, write], "cached + cache write tokens")?,
            "input_tokens_details cached + cache write tokens",
            input,
            "input_tokens",
        )?;
        let reasoning = r.optional("output_tokens_details.reasoning_tokens")?;
        r.part_of(
            reasoning,
            "output_tokens_details.reasoning_tokens",
            output,
            "output_tokens",
        )?;
        Ok(Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_creation_input_tokens: write,
            reasoning_tokens: reasoning,
            web_search_requests: r.optional("tool_usage.web_search.num_requests")?,
            ..Usage::default()
        })
    }

    /// A whole OpenAI Responses API response (`"object": "response"`): its
    /// `usage` as [`Usage::from_openai_responses_json`] reads it; its web
    /// searches from `tool_usage.web_search.num_requests` (at the top level
    /// or in `usage`), else the number of `web_search_call` items of
    /// `output` (each billed as a call); its `service_tier` (`default`,
    /// `flex`, `priority`, `scale`; absent or `null`: standard) as
    /// [`str::parse`] reads it.
    ///
    /// ```
    /// use budgetgate::pricing::{ServiceTier, Usage};
    /// let u = Usage::from_openai_response_json(&serde_json::json!({
    ///     "object": "response", "service_tier": "priority",
    ///     "output": [
    ///         {"type": "web_search_call", "id": "ws_1", "status": "completed",
    ///          "action": {"type": "search", "query": "rust decimal"}},
    ///         {"type": "message", "id": "msg_1", "role": "assistant", "content": []}
    ///     ],
    ///     "usage": {"input_tokens": 300, "output_tokens": 50, "total_tokens": 350}
    /// }))?;
    /// assert_eq!((u.web_search_requests, u.service_tier), (1, ServiceTier::Priority));
    /// # Ok::<(), budgetgate::pricing::PricingError>(())
    /// ```
    pub fn from_openai_response_json(response: &serde_json::Value) -> Result<Self, PricingError> {
        let r = Reader::new("OpenAI Responses response", response)?;
        match r.text("object")? {
            Some("response") => {}
            _ => return Err(r.unknown("object").into()),
        }
        let usage = r.optional_raw("usage").ok_or_else(|| r.missing("usage"))?;
        let mut u = Usage::from_openai_responses_json(usage)?;
        let output = match r.optional_raw("output") {
            None => &[][..],
            Some(v) => v
                .as_array()
                .map(Vec::as_slice)
                .ok_or_else(|| r.unknown("output"))?,
        };
        let calls = output
            .iter()
            .filter(|item| item.get("type").and_then(|t| t.as_str()) == Some("web_search_call"))
            .count() as u64;
        if r.has("tool_usage") {
            u.web_search_requests = r.optional("tool_usage.web_search.num_requests")?;
        } else if u.web_search_requests == 0 {
            u.web_search_requests = calls;
        }
        if let Some(tier) = r.text("service_tier")? {
            u.service_tier = tier.parse()?;
        }
        Ok(u)
    }

    /// OpenAI Realtime's `usage` (of `response.done`): `input_tokens`,
    /// `output_tokens`, `total_tokens` and `input_token_details` are required
    /// — `input_token_details` (not the Responses API's
    /// `input_tokens_details`) is what tells it from Responses usage.
    /// `input_token_details.cached_tokens` / `text_tokens` / `audio_tokens`
    /// (with `cached_tokens_details.audio_tokens`, the cached audio) and
    /// `output_token_details.text_tokens` / `audio_tokens` are read.
    ///
    /// Cached text is priced as cached input, cached audio at the cached
    /// audio price (`cached_audio_input_tokens`), the uncached audio at the
    /// audio input price. Without `cached_tokens_details`, the split of the
    /// cached tokens is unknown and the cached ones are taken to be text as
    /// far as the counts allow (never under-charged: uncached audio input is
    /// the dearest kind). Text, audio and image
    /// details may not add up to more than their totals. Strict as
    /// [`Usage::from_openai_json`].
    pub fn from_openai_realtime_json(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let r = Reader::new("OpenAI Realtime", usage)?;
        r.refuse(&[
            ("prompt_tokens", "OpenAI chat"),
            ("completion_tokens", "OpenAI chat"),
            ("input_tokens_details", "OpenAI Responses"),
            ("output_tokens_details", "OpenAI Responses"),
            ("cache_read_input_tokens", "Anthropic"),
            ("cache_creation_input_tokens", "Anthropic"),
            ("promptTokenCount", "Gemini"),
        ])?;
        let input = r.required("input_tokens")?;
        let output = r.required("output_tokens")?;
        r.required("total_tokens")?;
        if !r.has("input_token_details") {
            return Err(r.missing("input_token_details").into());
        }
        let cached = r.optional("input_token_details.cached_tokens")?;
        r.part_of(
            cached,
            "input_token_details.cached_tokens",
            input,
            "input_tokens",
        )?;
        let text_in = r.optional("input_token_details.text_tokens")?;
        let audio = r.optional("input_token_details.audio_tokens")?;
        let image = r.optional("input_token_details.image_tokens")?;
        r.part_of(
            r.sum(&[text_in, audio, image], "input token details")?,
            "input_token_details text + audio + image tokens",
            input,
            "input_tokens",
        )?;
        let (audio_in, cached_audio) = if r
            .optional_raw("input_token_details.cached_tokens_details")
            .is_some()
        {
            let cached_audio =
                r.optional("input_token_details.cached_tokens_details.audio_tokens")?;
            let cached_text =
                r.optional("input_token_details.cached_tokens_details.text_tokens")?;
            r.part_of(
                cached_audio,
                "input_token_details.cached_tokens_details.audio_tokens",
                audio,
                "input_token_details.audio_tokens",
            )?;
            r.part_of(
                r.sum(&[cached_audio, cached_text], "cached token details")?,
                "input_token_details.cached_tokens_details",
                cached,
                "input_token_details.cached_tokens",
            )?;
            (audio - cached_audio, cached_audio)
        } else {
            let uncached = audio.min(input - cached);
            (uncached, audio - uncached)
        };
        r.part_of(
            audio_in,
            "uncached input_token_details.audio_tokens",
            input - cached,
            "uncached input_tokens",
        )?;
        let text_out = r.optional("output_token_details.text_tokens")?;
        let audio_out = r.optional("output_token_details.audio_tokens")?;
        r.part_of(
            r.sum(&[text_out, audio_out], "output token details")?,
            "output_token_details text + audio tokens",
            output,
            "output_tokens",
        )?;
        Ok(Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cached_audio_input_tokens: cached_audio,
            audio_input_tokens: audio_in,
            audio_output_tokens: audio_out,
            ..Usage::default()
        })
    }
}
