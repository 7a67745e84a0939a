//! Token usage of one call, and its readers from provider JSON: this
//! file holds [`Usage`] and what it is made of; each provider's readers
//! are in a file of their own (`openai.rs`: Chat Completions, Responses,
//! Realtime and DeepSeek's fields; `anthropic.rs`; `gemini.rs`), all on
//! the strict field reader of `reader.rs`.

use super::PricingError;

mod anthropic;
mod gemini;
mod openai;
mod reader;

use super::abbreviate_value as abbreviate;
use reader::Reader;

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
