//! Token usage of one call, and its readers from provider JSON.

use super::PricingError;

/// Token counts of one call.
///
/// `input_tokens` is every input token, cached and cache-write ones included;
/// `cached_input_tokens` (of which `cached_audio_input_tokens` audio) and
/// `cache_creation_input_tokens` are the parts of it
/// read from and written to the prompt cache, and
/// `cache_creation_1h_input_tokens` the part of the writes that went to the
/// one-hour cache; `audio_input_tokens` the audio part of the input, apart
/// from the cached and cache-write parts. `reasoning_tokens` and
/// `audio_output_tokens` are parts of `output_tokens`. The constructors from provider JSON normalize the
/// providers' different conventions to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// All input tokens.
    pub input_tokens: u64,
    /// Output tokens (reasoning tokens included).
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Of `cached_input_tokens`, audio tokens (at the cached audio price).
    #[serde(default)]
    pub cached_audio_input_tokens: u64,
    /// Input tokens written to the prompt cache (both durations).
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Of `cache_creation_input_tokens`, those written to the one-hour cache.
    #[serde(default)]
    pub cache_creation_1h_input_tokens: u64,
    /// Of `output_tokens`, reasoning (thinking) tokens.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Of `input_tokens`, audio tokens (counted as not cached).
    #[serde(default)]
    pub audio_input_tokens: u64,
    /// Of `output_tokens`, audio tokens.
    #[serde(default)]
    pub audio_output_tokens: u64,
    /// Web searches the model ran (priced per search, not per token).
    #[serde(default)]
    pub web_search_requests: u64,
    /// The service tier the call was billed at.
    #[serde(default)]
    pub service_tier: ServiceTier,
    /// Where it was processed (Anthropic's `inference_geo`; data residency).
    #[serde(default)]
    pub region: Region,
    /// Its inference speed (Anthropic's `speed`).
    #[serde(default)]
    pub speed: Speed,
}

/// The service tier a call was billed at (Anthropic's usage `service_tier`;
/// OpenAI's and Gemini's response `service_tier`, which the caller sets, e.g.
/// with [`str::parse`]).
///
/// A tier the model has its own prices for
/// ([`ModelPrice::service_tiers`](super::ModelPrice::service_tiers), from
/// LiteLLM's `*_priority`, `*_flex` and `*_batches` keys) is billed at them.
/// Otherwise [`ServiceTier::Batch`] pays the standard token prices times
/// [`ModelPrice::batch_multiplier`](super::ModelPrice::batch_multiplier) (one
/// half unless set), and [`ServiceTier::Priority`] and [`ServiceTier::Flex`]
/// the standard prices (as LiteLLM does; flex never costs more).
///
/// ```
/// use budgetgate::pricing::ServiceTier;
/// assert_eq!("priority".parse::<ServiceTier>(), Ok(ServiceTier::Priority));
/// assert_eq!("default".parse::<ServiceTier>(), Ok(ServiceTier::Standard));
/// assert!("turbo".parse::<ServiceTier>().is_err());
/// ```
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServiceTier {
    /// The default.
    #[default]
    Standard,
    /// Priority capacity (OpenAI's and Gemini's priority prices; Anthropic's
    /// Priority Tier is priced as standard).
    Priority,
    /// Flex processing (OpenAI's and Gemini's flex prices).
    Flex,
    /// Batch processing.
    Batch,
}

impl std::str::FromStr for ServiceTier {
    type Err = UsageError;

    /// The tier names providers answer with: `standard`, `default` and
    /// `scale` (OpenAI's committed Scale Tier, list price) are
    /// [`ServiceTier::Standard`]; `priority`, `flex`, `batch`; anything else
    /// is [`UsageError::UnknownValue`].
    fn from_str(s: &str) -> Result<Self, UsageError> {
        match s {
            "standard" | "default" | "scale" => Ok(ServiceTier::Standard),
            "priority" => Ok(ServiceTier::Priority),
            "flex" => Ok(ServiceTier::Flex),
            "batch" => Ok(ServiceTier::Batch),
            other => Err(UsageError::UnknownValue {
                parser: "ServiceTier",
                field: "service_tier".into(),
                value: format!("{other:?}"),
            }),
        }
    }
}

/// Where a call was processed, when that changes its price (a multiplier of
/// its token prices: [`ModelPrice::region_multipliers`](super::ModelPrice::region_multipliers)).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Region {
    /// Anywhere (no surcharge).
    #[default]
    Global,
    /// US only: Anthropic's `inference_geo: "us"`, OpenAI's US data
    /// residency (LiteLLM's `provider_specific_entry.us`,
    /// `regional_processing_uplift_multiplier_us`).
    Us,
    /// EU only: OpenAI's EU data residency
    /// (`regional_processing_uplift_multiplier_eu`).
    Eu,
    /// OpenAI's FedRAMP endpoint (`fedramp_uplift_multiplier`).
    FedRamp,
    /// A Vertex AI regional (not global) endpoint
    /// (`regional_endpoint_uplift_multiplier`).
    RegionalEndpoint,
}

/// The inference speed a call ran at (Anthropic's usage `speed`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Speed {
    /// The default.
    #[default]
    Standard,
    /// Fast mode: the token prices times
    /// [`ModelPrice::fast_multiplier`](super::ModelPrice::fast_multiplier);
    /// a model without one cannot price it ([`PricingError::Unpriced`]).
    Fast,
}

/// A usage split into parts billed at one rate each.
pub(crate) struct Parts {
    pub plain_input: u64,
    pub cached: u64,
    pub cached_audio: u64,
    pub write_5m: u64,
    pub write_1h: u64,
    pub audio_input: u64,
    pub plain_output: u64,
    pub reasoning: u64,
    pub audio_output: u64,
}

impl Usage {
    /// Plain input and output tokens.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        }
    }

    /// The parts, or an error if a part is more than its whole.
    pub(crate) fn parts(&self) -> Result<Parts, PricingError> {
        let exceeds = |part: &str, tokens: u64, whole: &str, of: u64| {
            PricingError::Usage(UsageError::Exceeds {
                parser: "Usage",
                part: part.to_owned(),
                part_tokens: tokens,
                whole: whole.to_owned(),
                whole_tokens: of,
            })
        };
        let part_sum = |parts: &[u64]| parts.iter().try_fold(0u64, |a, b| a.checked_add(*b));
        let special_parts = [
            self.cached_input_tokens,
            self.cache_creation_input_tokens,
            self.audio_input_tokens,
        ];
        let special = part_sum(&special_parts)
            .filter(|s| *s <= self.input_tokens)
            .ok_or_else(|| {
                exceeds(
                    "cached_input_tokens + cache_creation_input_tokens + audio_input_tokens",
                    special_parts.iter().fold(0u64, |a, b| a.saturating_add(*b)),
                    "input_tokens",
                    self.input_tokens,
                )
            })?;
        let output_parts = [self.reasoning_tokens, self.audio_output_tokens];
        let special_output = part_sum(&output_parts)
            .filter(|s| *s <= self.output_tokens)
            .ok_or_else(|| {
                exceeds(
                    "reasoning_tokens + audio_output_tokens",
                    output_parts.iter().fold(0u64, |a, b| a.saturating_add(*b)),
                    "output_tokens",
                    self.output_tokens,
                )
            })?;
        if self.cached_audio_input_tokens > self.cached_input_tokens {
            return Err(exceeds(
                "cached_audio_input_tokens",
                self.cached_audio_input_tokens,
                "cached_input_tokens",
                self.cached_input_tokens,
            ));
        }
        if self.cache_creation_1h_input_tokens > self.cache_creation_input_tokens {
            return Err(exceeds(
                "cache_creation_1h_input_tokens",
                self.cache_creation_1h_input_tokens,
                "cache_creation_input_tokens",
                self.cache_creation_input_tokens,
            ));
        }
        Ok(Parts {
            plain_input: self.input_tokens - special,
            cached: self.cached_input_tokens - self.cached_audio_input_tokens,
            cached_audio: self.cached_audio_input_tokens,
            write_5m: self.cache_creation_input_tokens - self.cache_creation_1h_input_tokens,
            write_1h: self.cache_creation_1h_input_tokens,
            audio_input: self.audio_input_tokens,
            plain_output: self.output_tokens - special_output,
            reasoning: self.reasoning_tokens,
            audio_output: self.audio_output_tokens,
        })
    }

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

    /// Gemini's `usageMetadata` (or a response holding one):
    /// `promptTokenCount` (cached included) is required;
    /// `candidatesTokenCount`, `thoughtsTokenCount` (billed as output),
    /// `cachedContentTokenCount` and `toolUsePromptTokenCount` (billed as
    /// input) are read. Input is prompt + tool-use prompt tokens; output is
    /// candidates + thoughts (the thoughts also as `reasoning_tokens`). The
    /// `AUDIO` entries of `promptTokensDetails` / `candidatesTokensDetails`
    /// are the audio tokens (less the cached ones of `cacheTokensDetails`,
    /// `cached_audio_input_tokens`, at the cached audio price). Strict as [`Usage::from_openai_json`].
    ///
    /// Given a whole response, its web searches (Grounding with Google
    /// Search) are the distinct non-empty `webSearchQueries` of its
    /// candidates' `groundingMetadata`, as LiteLLM counts them (Gemini 3
    /// bills per query; Gemini 2 per grounded prompt, which this never
    /// under-counts).
    pub fn from_gemini_json(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let searches = gemini_search_queries(usage)?;
        let mut u = Self::from_gemini_usage_metadata(usage.get("usageMetadata").unwrap_or(usage))?;
        u.web_search_requests = searches;
        Ok(u)
    }

    fn from_gemini_usage_metadata(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let r = Reader::new("Gemini", usage)?;
        r.refuse(&[
            ("prompt_tokens", "OpenAI chat"),
            ("input_tokens", "Anthropic or OpenAI Responses"),
            (
                "prompt_token_count",
                "Gemini in snake_case (use the REST camelCase)",
            ),
        ])?;
        let prompt = r.required("promptTokenCount")?;
        let tool = r.optional("toolUsePromptTokenCount")?;
        let cached = r.optional("cachedContentTokenCount")?;
        r.part_of(
            cached,
            "cachedContentTokenCount",
            prompt,
            "promptTokenCount",
        )?;
        let candidates = r.optional("candidatesTokenCount")?;
        let thoughts = r.optional("thoughtsTokenCount")?;
        let (audio, cached_audio) = (
            r.modality("promptTokensDetails", "AUDIO")?,
            r.modality("cacheTokensDetails", "AUDIO")?,
        );
        r.part_of(
            cached_audio,
            "cacheTokensDetails AUDIO",
            audio,
            "promptTokensDetails AUDIO",
        )?;
        r.part_of(
            cached_audio,
            "cacheTokensDetails AUDIO",
            cached,
            "cachedContentTokenCount",
        )?;
        let audio_in = audio - cached_audio;
        let audio_out = r.modality("candidatesTokensDetails", "AUDIO")?;
        r.part_of(
            audio_in,
            "promptTokensDetails AUDIO",
            prompt - cached,
            "uncached promptTokenCount",
        )?;
        r.part_of(
            audio_out,
            "candidatesTokensDetails AUDIO",
            candidates,
            "candidatesTokenCount",
        )?;
        Ok(Usage {
            input_tokens: r.sum(&[prompt, tool], "input tokens")?,
            output_tokens: r.sum(&[candidates, thoughts], "output tokens")?,
            cached_input_tokens: cached,
            cached_audio_input_tokens: cached_audio,
            reasoning_tokens: thoughts,
            audio_input_tokens: audio_in,
            audio_output_tokens: audio_out,
            ..Usage::default()
        })
    }
}

/// The distinct non-empty `webSearchQueries` of a Gemini response's
/// candidates (0 for usage metadata alone).
fn gemini_search_queries(response: &serde_json::Value) -> Result<u64, UsageError> {
    let Some(candidates) = response.get("candidates").filter(|c| !c.is_null()) else {
        return Ok(0);
    };
    let bad = |field: &str, v: &serde_json::Value| UsageError::UnknownValue {
        parser: "Gemini",
        field: field.to_owned(),
        value: abbreviate(v),
    };
    let mut queries = std::collections::BTreeSet::new();
    for c in candidates
        .as_array()
        .ok_or_else(|| bad("candidates", candidates))?
    {
        let Some(list) = c
            .get("groundingMetadata")
            .and_then(|g| g.get("webSearchQueries"))
            .filter(|q| !q.is_null())
        else {
            continue;
        };
        let field = "candidates[].groundingMetadata.webSearchQueries";
        for q in list.as_array().ok_or_else(|| bad(field, list))? {
            let q = q.as_str().ok_or_else(|| bad(field, q))?;
            if !q.is_empty() {
                queries.insert(q);
            }
        }
    }
    Ok(queries.len() as u64)
}

/// Why usage JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// Not a JSON object.
    #[error("{parser} usage must be a JSON object, not {found}")]
    NotAnObject {
        /// The reader.
        parser: &'static str,
        /// What it was given (abbreviated).
        found: String,
    },
    /// A required count is absent.
    #[error("{parser} usage has no {field} (its keys: {keys:?})")]
    Missing {
        /// The reader.
        parser: &'static str,
        /// The count it needs.
        field: &'static str,
        /// The keys the object has.
        keys: Vec<String>,
    },
    /// A key of another provider's usage.
    #[error("{parser} usage has {key}: this looks like {looks_like} usage")]
    WrongShape {
        /// The reader.
        parser: &'static str,
        /// The key that gives it away.
        key: &'static str,
        /// Whose usage has it.
        looks_like: &'static str,
    },
    /// A count that is not a non-negative integer (`null` included, where it
    /// is required).
    #[error("{parser} usage: {field} is not a token count: {value}")]
    NotACount {
        /// The reader.
        parser: &'static str,
        /// The (dotted) field.
        field: String,
        /// Its JSON (abbreviated).
        value: String,
    },
    /// A part larger than its whole.
    #[error("{parser} usage: {part} ({part_tokens}) exceeds {whole} ({whole_tokens})")]
    Exceeds {
        /// The reader (or `Usage`).
        parser: &'static str,
        /// The part.
        part: String,
        /// Its tokens.
        part_tokens: u64,
        /// The whole.
        whole: String,
        /// Its tokens.
        whole_tokens: u64,
    },
    /// A value that is none of those the reader knows.
    #[error("{parser} usage: {field} is not a known value: {value}")]
    UnknownValue {
        /// The reader.
        parser: &'static str,
        /// The (dotted) field.
        field: String,
        /// Its JSON (abbreviated).
        value: String,
    },
    /// Counts that contradict each other.
    #[error("{parser} usage: {detail}")]
    Inconsistent {
        /// The reader.
        parser: &'static str,
        /// How.
        detail: String,
    },
}

struct Reader<'a> {
    parser: &'static str,
    obj: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> Reader<'a> {
    fn new(parser: &'static str, usage: &'a serde_json::Value) -> Result<Self, UsageError> {
        let obj = usage.as_object().ok_or_else(|| UsageError::NotAnObject {
            parser,
            found: abbreviate(usage),
        })?;
        Ok(Reader { parser, obj })
    }

    fn refuse(&self, keys: &[(&'static str, &'static str)]) -> Result<(), UsageError> {
        match keys.iter().find(|(k, _)| self.obj.contains_key(*k)) {
            Some((key, looks_like)) => Err(UsageError::WrongShape {
                parser: self.parser,
                key,
                looks_like,
            }),
            None => Ok(()),
        }
    }

    fn has(&self, field: &str) -> bool {
        self.obj.contains_key(field)
    }

    /// The value at a dotted path; `None` if it or a parent is absent or null.
    fn optional_raw(&self, path: &str) -> Option<&'a serde_json::Value> {
        let mut parts = path.split('.');
        let mut v = self.obj.get(parts.next()?)?;
        for p in parts {
            v = v.as_object()?.get(p)?;
        }
        (!v.is_null()).then_some(v)
    }

    fn count(&self, path: &str, v: &serde_json::Value) -> Result<u64, UsageError> {
        v.as_u64().ok_or_else(|| UsageError::NotACount {
            parser: self.parser,
            field: path.to_owned(),
            value: abbreviate(v),
        })
    }

    /// An optional count: absent or null is 0; a parent that is not an
    /// object, or a value that is not a count, is an error.
    fn optional(&self, path: &str) -> Result<u64, UsageError> {
        if let Some((parent, _)) = path.rsplit_once('.') {
            if let Some(p) = self.optional_raw(parent) {
                if !p.is_object() {
                    return Err(UsageError::NotACount {
                        parser: self.parser,
                        field: parent.to_owned(),
                        value: abbreviate(p),
                    });
                }
            }
        }
        self.optional_raw(path)
            .map_or(Ok(0), |v| self.count(path, v))
    }

    /// A required top-level count: absent is [`UsageError::Missing`], null
    /// [`UsageError::NotACount`].
    fn required(&self, field: &'static str) -> Result<u64, UsageError> {
        match self.obj.get(field) {
            None => Err(self.missing(field)),
            Some(v) => self.count(field, v),
        }
    }

    /// The `tokenCount` of `modality` in a `[{modality, tokenCount}]` list.
    fn modality(&self, list: &str, modality: &str) -> Result<u64, UsageError> {
        let Some(items) = self.optional_raw(list) else {
            return Ok(0);
        };
        let bad = || UsageError::NotACount {
            parser: self.parser,
            field: list.to_owned(),
            value: abbreviate(items),
        };
        let mut total = 0u64;
        for item in items.as_array().ok_or_else(bad)? {
            if item.get("modality").and_then(|m| m.as_str()) == Some(modality) {
                let n = match item.get("tokenCount") {
                    None | Some(serde_json::Value::Null) => 0,
                    Some(v) => v.as_u64().ok_or_else(bad)?,
                };
                total = total.checked_add(n).ok_or_else(bad)?;
            }
        }
        Ok(total)
    }

    /// An optional string field (absent or null: `None`); another JSON type
    /// is [`UsageError::UnknownValue`].
    fn text(&self, field: &str) -> Result<Option<&'a str>, UsageError> {
        match self.optional_raw(field) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.unknown(field)),
        }
    }

    /// [`UsageError::UnknownValue`] for `field`'s value.
    fn unknown(&self, field: &str) -> UsageError {
        UsageError::UnknownValue {
            parser: self.parser,
            field: field.to_owned(),
            value: self.optional_raw(field).map_or("null".into(), abbreviate),
        }
    }

    fn missing(&self, field: &'static str) -> UsageError {
        UsageError::Missing {
            parser: self.parser,
            field,
            keys: self.obj.keys().cloned().collect(),
        }
    }

    fn part_of(&self, part: u64, name: &str, whole: u64, of: &str) -> Result<(), UsageError> {
        if part > whole {
            return Err(UsageError::Exceeds {
                parser: self.parser,
                part: name.to_owned(),
                part_tokens: part,
                whole: of.to_owned(),
                whole_tokens: whole,
            });
        }
        Ok(())
    }

    fn sum(&self, counts: &[u64], what: &str) -> Result<u64, UsageError> {
        counts
            .iter()
            .try_fold(0u64, |a, b| a.checked_add(*b))
            .ok_or_else(|| UsageError::NotACount {
                parser: self.parser,
                field: what.to_owned(),
                value: format!("{counts:?} add up past u64"),
            })
    }
}

fn abbreviate(v: &serde_json::Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}
