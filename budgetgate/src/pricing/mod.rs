//! Pricing: from token usage to exact costs, and from a request to a safe
//! estimate — so `estimate = …` and `actual = …` are one-liners.
//!
//! ```
//! use budgetgate::pricing::{self, Usage};
//! use budgetgate::dec;
//!
//! // gpt-4o: $2.50 per million input tokens, $1.25 cached, $10.00 output.
//! let usage = Usage::from_openai_json(&serde_json::json!({
//!     "prompt_tokens": 1200,
//!     "completion_tokens": 300,
//!     "prompt_tokens_details": { "cached_tokens": 1000 }
//! }))?;
//! assert_eq!(pricing::cost("openai/gpt-4o", &usage)?, dec!(0.00475));
//!
//! // The most 1,200 input and up to 500 output tokens can cost at standard
//! // prices, and at any tier and region (priority, at FedRAMP's 1.1 times).
//! let standard = pricing::Limits::new(1200, 500)
//!     .service_tier(pricing::ServiceTier::Standard)
//!     .region(pricing::Region::Global);
//! assert_eq!(pricing::estimate_for("gpt-4o", &standard)?, dec!(0.008));
//! assert_eq!(pricing::estimate("gpt-4o", 1200, 500)?, dec!(0.01496));
//! # Ok::<(), pricing::PricingError>(())
//! ```
//!
//! In an attribute, the `Result`s are accepted as they are: an unknown model
//! blocks the call (reason `INVALID_AMOUNT`, with the error) — it is never
//! priced at zero.
//!
//! ```
//! use budgetgate::{guard_bounded, pricing::{self, Usage}, BudgetExceeded};
//!
//! struct Completion { usage: Usage }
//! #[derive(Debug)]
//! struct Blocked(BudgetExceeded);
//! impl From<BudgetExceeded> for Blocked {
//!     fn from(e: BudgetExceeded) -> Self { Blocked(e) }
//! }
//!
//! #[guard_bounded(
//!     ledger = ("openai", "gpt-4o", "user:1"),
//!     estimate = pricing::estimate("gpt-4o", prompt.len() as u64 / 3, 1_000),
//!     actual = |c: &Completion| pricing::cost("gpt-4o", &c.usage),
//!     max_spend = "5",
//! )]
//! fn ask(prompt: &str) -> Result<Completion, Blocked> {
//!     Ok(Completion { usage: Usage::new(prompt.len() as u64 / 3, 200) })
//! }
//!
//! assert!(ask("hello there, model").is_ok());
//! ```
//!
//! The built-in table ([`PriceTable::builtin`]) covers mainstream OpenAI,
//! Anthropic, Google, Mistral and DeepSeek models, with the dated names
//! responses carry, at the prices of LiteLLM's price file of
//! [`BUILTIN_PRICES_AS_OF`] (a test compares every entry with an excerpt of
//! that file); override entries, or load LiteLLM's
//! `model_prices_and_context_window.json` ([`PriceTable::from_litellm_json`]),
//! and install it with [`set_table`].
//!
//! Covered: input, output, cached-input, cache-write (five-minute and
//! one-hour), reasoning, audio input, cached audio input and audio output
//! prices, and per-request
//! prices; long-context tiers (a request with more
//! input tokens than a tier's threshold pays that tier's prices for all its
//! tokens, e.g. Gemini 2.5 Pro above 200k), which [`cost`] applies by the
//! usage's input tokens and [`estimate`] bounds by every tier the request can
//! reach. Model names resolve as [`PriceTable::price`] says; a name a loaded
//! file lists without a price is refused, never priced as another name.
//! Usage comes from [`Usage::from_openai_json`] (Chat Completions, DeepSeek's
//! cache hit / miss counts included), [`Usage::from_openai_responses_json`]
//! (and [`Usage::from_openai_response_json`] for a whole response, with its
//! `web_search_call`s and service tier),
//! [`Usage::from_openai_realtime_json`], [`Usage::from_anthropic_json`] and
//! [`Usage::from_gemini_json`] (streams: [`AnthropicStreamUsage`] for
//! `message_start` / cumulative `message_delta` usage, [`OpenAiStreamUsage`]
//! for `include_usage` chunks and Responses events; with the `async-openai`
//! feature, `Usage::try_from` async-openai's `CompletionUsage` and
//! `ResponseUsage`), each refusing any other shape
//! ([`UsageError`]). Per-call fees: per request and per web search
//! (Anthropic's `web_search_requests`, OpenAI Responses' `web_search_call`s
//! and `tool_usage`, Gemini's grounding `webSearchQueries`; at the highest
//! search-context-size price; [`estimate`] assumes no searches,
//! [`estimate_with`] bounds up to a number of them). Service tiers
//! ([`ServiceTier`]): priority, flex and batch prices of their own
//! ([`ServiceTierPrice`], LiteLLM's `*_priority` / `*_flex` / `*_batches`
//! keys, long-context tiers included); without them batch usage pays the
//! token prices times [`ModelPrice::batch_multiplier`] (one half unless set),
//! priority and flex usage the standard prices. Region multipliers
//! ([`Region`]: Anthropic's `inference_geo`, OpenAI's data residency and
//! FedRAMP, Vertex regional endpoints) and fast mode ([`Speed`]) multiply the
//! token prices. [`estimate`] bounds the dearest tier, region and speed;
//! [`estimate_for`] narrows them ([`Limits`]). Not covered: per-image,
//! per-second and per-character prices, off-peak prices, LiteLLM's
//! `ultrafast` / `balanced` / `decisions` tiers. Besides prices, the table
//! knows each model's most output tokens
//! ([`ModelPrice::max_output_tokens`]): the worst case of a request that
//! sets no output limit of its own.
//!
//! The parts: `price` (the price model and the arithmetic), `usage` (token
//! counts and the provider JSON readers), `table` (names and resolution),
//! `litellm` (the LiteLLM loader), `builtin` (the built-in table), `stream`
//! (streamed usage).

#[cfg(feature = "async-openai")]
mod async_openai;
mod builtin;
mod litellm;
mod price;
mod stream;
mod table;
mod usage;

use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use rust_decimal::Decimal;

pub use builtin::{BUILTIN_PRICES_AS_OF, BUILTIN_PRICES_LITELLM_VERSION};
pub use litellm::{LoadReport, SkipReason};
pub use price::{Limits, ModelPrice, PriceTier, ServiceTierPrice, TokenPrices};
pub use stream::{AnthropicStreamUsage, OpenAiStreamUsage};
pub use table::{PriceTable, API_PROVIDER_PREFIXES};
pub use usage::{Region, ServiceTier, Speed, Usage, UsageError};

/// Why a price or a cost could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    /// No price for this model (never priced at zero).
    #[error("no price for model {0:?}; add it to the price table")]
    UnknownModel(String),
    /// The table knows this name but has no price for it (e.g. an entry of a
    /// LiteLLM file without token prices); it is not priced as another name.
    #[error("model {model:?} has no usable price ({reason}); add one to the price table")]
    Unpriced {
        /// The name as the table knows it.
        model: String,
        /// Why it has no price.
        reason: String,
    },
    /// Usage that cannot be read or priced.
    #[error("invalid usage: {0}")]
    Usage(#[from] UsageError),
    /// A price file that cannot be read.
    #[error("invalid price table: {0}")]
    Table(String),
    /// A cost too large for a decimal (absurd prices or token counts).
    #[error("the cost for model {0:?} overflows")]
    Overflow(String),
}

static TABLE: LazyLock<ArcSwap<PriceTable>> =
    LazyLock::new(|| ArcSwap::from_pointee(PriceTable::builtin()));

/// The table [`cost`] and [`estimate`] use (the built-in one until [`set_table`]).
pub fn table() -> Arc<PriceTable> {
    TABLE.load_full()
}

/// Replaces the process-wide table.
pub fn set_table(table: PriceTable) {
    TABLE.store(Arc::new(table));
}

/// [`PriceTable::cost`] on the process-wide table.
pub fn cost(model: &str, usage: &Usage) -> Result<Decimal, PricingError> {
    TABLE.load().cost(model, usage)
}

/// [`PriceTable::estimate_with`] on the process-wide table.
pub fn estimate_with(
    model: &str,
    input_tokens: u64,
    max_output_tokens: u64,
    max_searches: u64,
) -> Result<Decimal, PricingError> {
    TABLE
        .load()
        .estimate_with(model, input_tokens, max_output_tokens, max_searches)
}

/// [`PriceTable::estimate_for`] on the process-wide table.
pub fn estimate_for(model: &str, limits: &Limits) -> Result<Decimal, PricingError> {
    TABLE.load().estimate_for(model, limits)
}

/// [`PriceTable::estimate`] on the process-wide table (no web searches: see
/// [`estimate_with`]).
pub fn estimate(
    model: &str,
    input_tokens: u64,
    max_output_tokens: u64,
) -> Result<Decimal, PricingError> {
    TABLE
        .load()
        .estimate(model, input_tokens, max_output_tokens)
}

/// `text` cut to 60 characters (with `…`), for error messages that quote
/// what they refused.
fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// A JSON value as text, cut as [`abbreviate`] does.
fn abbreviate_value(v: &serde_json::Value) -> String {
    abbreviate(&v.to_string())
}
