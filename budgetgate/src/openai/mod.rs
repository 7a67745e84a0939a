//! async-openai chat completions under a budget (feature `openai`): the
//! worst case estimated from the request and reserved before it is sent,
//! the true cost from the response's usage committed after.
//!
//! [`ChatGuard`] wraps the call you make with your own async-openai
//! `Client` (this crate depends on async-openai's types only):
//!
//! ```
//! use async_openai::types::chat::{
//!     ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs, CreateChatCompletionResponse,
//! };
//! use budgetgate::openai::ChatGuard;
//! use budgetgate::{dec, Budget, Engine, Ledger};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = Engine::in_memory();
//! let user = Ledger::new("openai", "gpt-4o-mini", "user:7");
//! engine.set_budget(&user, Budget::daily(dec!(1))?);
//! let guard = ChatGuard::new(&engine, user.clone());
//!
//! let request = CreateChatCompletionRequestArgs::default()
//!     .model("gpt-4o-mini")
//!     .messages([ChatCompletionRequestUserMessage::from("Say hello").into()])
//!     .max_completion_tokens(100u32)
//!     .build()?;
//! let done = guard
//!     .create(request, |request| async move {
//!         // client.chat().create(request).await, with your client; here a
//!         // recorded answer:
//!         # let _ = request;
//!         Ok::<_, std::convert::Infallible>(serde_json::from_value::<CreateChatCompletionResponse>(
//!             serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
//!                 "model": "gpt-4o-mini-2024-07-18", "choices": [],
//!                 "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}}))
//!             .unwrap())
//!     })
//!     .await?;
//! assert!(done.estimate.cost >= done.charged);
//! assert_eq!(done.charged, dec!(0.00000855)); // 9 × 0.15/M + 12 × 0.60/M
//! assert_eq!(engine.status(&user)?.committed(), dec!(0.00000855));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! With a real client the closure is
//! `|r| async { client.chat().create(r).await }` (and `create_stream` for
//! [`ChatGuard::create_stream`]):
//!
//! ```no_run
//! use async_openai::types::chat::{ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs};
//! use async_openai::{config::OpenAIConfig, Client};
//! use budgetgate::openai::ChatGuard;
//! use budgetgate::{Engine, Ledger};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::with_config(OpenAIConfig::new().with_api_base("http://127.0.0.1:8080/v1"));
//! let guard = ChatGuard::new(&Engine::in_memory(), Ledger::new("openai", "gpt-4o", "user:1"))
//!     .fit_to_remaining(64); // lower max_completion_tokens rather than refuse
//! let request = CreateChatCompletionRequestArgs::default()
//!     .model("gpt-4o")
//!     .messages([ChatCompletionRequestUserMessage::from("Plan my week").into()])
//!     .build()?;
//! let done = guard
//!     .create(request, |r| async { client.chat().create(r).await })
//!     .await?;
//! println!("{:?} cost {}", done.response.choices[0].message.content, done.charged);
//! # Ok(()) }
//! ```
//!
//! ## The estimate: never below the bill
//!
//! [`estimate`] counts the prompt with the model's encoding ([`Encoding`]:
//! o200k for gpt-4o, gpt-4.1, the o-series and gpt-5, cl100k for gpt-4 and
//! gpt-3.5), and adds what OpenAI adds: 3 framing tokens per message, 1 per
//! `name`, 3 to prime the reply. What OpenAI renders in a format it does not
//! publish is counted on the high side: tool and function definitions, a
//! `tool_choice` and a `response_format` schema as their JSON plus a margin
//! per definition ([`count::TOKENS_PER_TOOL`]), tool calls and content parts
//! with a margin each. Refused rather than guessed
//! ([`EstimateError::Uncountable`]): images, input audio and files (their
//! tokens depend on what the URL or bytes hold), a previous audio response,
//! and `web_search_options` (searches are billed per call).
//!
//! The output: `max_completion_tokens`, else the deprecated `max_tokens`,
//! else the model's most output tokens from the price table (LiteLLM's
//! `max_output_tokens`; [`EstimateError::NoOutputLimit`] when it has none),
//! for each of the `n` choices, plus the tokens of a Predicted Output
//! (rejected prediction tokens are billed as output). Reasoning tokens are
//! part of the completion tokens, so the limit bounds them too.
//!
//! Priced by the table ([`PriceTable::estimate_for`]): every output token at
//! the dearest output price (reasoning, audio), every prompt token at the
//! dearest input price, at the service tier the request asks
//! (`service_tier: "default"` is standard prices; unset or `auto`, the
//! dearest the model has), in any region unless one is given
//! ([`ChatGuard::region`]), rounded up. The recorded exchanges of the tests
//! hold it against OpenAI's own usage.
//!
//! ## The actual
//!
//! [`cost`]: the response's `usage` ([`Usage::try_from`] a `CompletionUsage`)
//! at the service tier the response says it was billed at, priced as the
//! request's model (the name the estimate priced; dated names the response
//! carries resolve to the same entry). A response without usage, or usage
//! that cannot be priced, commits the estimate: the call ran, so it was billed.
//!
//! ## Streams
//!
//! [`ChatGuard::create_stream`] sets `stream: true` and
//! `stream_options.include_usage: true` on the request (keeping its other
//! stream options), reserves, starts the call, and returns the stream as a
//! [`GuardedStream`](crate::stream::GuardedStream) metered by [`ChunkMeter`]:
//! read to the end, the final usage chunk's cost is committed; dropped
//! midway, what it consumed is committed — for an OpenAI stream that is the
//! estimate, since its usage comes in the last chunk only — never released.
//!
//! ## Fit to remaining
//!
//! Opt-in ([`ChatGuard::fit_to_remaining`]): when the worst case does not
//! fit what the ledger has left ([`Engine::status`](crate::Engine::status)),
//! the request's output limit is lowered to the most that fits —
//! (remaining − prompt cost) / output price, rounded down — and that worst
//! case is reserved; when not even the minimum output given fits, the call
//! is refused ([`GuardError::NothingFits`]) before anything is sent. The
//! reservation is the same atomic check-and-reserve as any other: if another
//! caller spent in between, it is refused ([`GuardError::Budget`]), never
//! overspent. The remaining is read under the ledger's registered budget
//! (its tightest cap); a cap it cannot see, such as a run budget's, can
//! still refuse the fitted amount.

pub mod count;
mod estimate;
mod guard;

use std::sync::Arc;

use async_openai::types::chat::{
    CreateChatCompletionRequest, CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
};
use rust_decimal::Decimal;

use crate::pricing::{PriceTable, PricingError, Region, Usage};

pub use count::Encoding;
pub use estimate::{Estimate, OutputLimit};
pub use guard::{ChatGuard, ChunkMeter, Completion, GuardError};

/// Why a request could not be estimated (nothing was reserved or sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EstimateError {
    /// The model's encoding is not known, so its prompt cannot be counted.
    #[error(
        "no token encoding known for model {model:?} (OpenAI's cl100k and o200k models are counted)"
    )]
    UnknownTokenizer {
        /// The model, as the request names it.
        model: String,
    },
    /// Part of the request cannot be counted in tokens before it is sent.
    #[error("cannot count the tokens of {what}{}", .message.map(|i| format!(" (message {i})")).unwrap_or_default())]
    Uncountable {
        /// What it is.
        what: &'static str,
        /// The index of the message that has it, if any.
        message: Option<usize>,
    },
    /// Neither `max_completion_tokens` nor `max_tokens` is set, and the
    /// price table does not know the model's most output tokens.
    #[error(
        "model {model:?}: the request sets no max_completion_tokens and the price table knows no maximum output for the model"
    )]
    NoOutputLimit {
        /// The model.
        model: String,
    },
    /// The model has no price, or the cost overflows.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// A part of the request could not be serialized to count it.
    #[error("cannot serialize the request to count it: {0}")]
    Serialize(String),
}

/// The worst case of `request` on the process-wide price table
/// ([`pricing::table`](crate::pricing::table)), in any region: see the
/// [module docs](self).
///
/// ```
/// use async_openai::types::chat::{ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs};
/// use budgetgate::openai::{self, OutputLimit};
/// let request = CreateChatCompletionRequestArgs::default()
///     .model("gpt-4o-mini")
///     .messages([ChatCompletionRequestUserMessage::from("hello").into()])
///     .build()?;
/// let e = openai::estimate(&request)?;
/// // 3 for the message, 1 for "user", 1 for "hello", 3 to prime the reply.
/// assert_eq!(e.prompt_tokens, 8);
/// // No limit in the request: the model's own (16,384 output tokens).
/// assert_eq!((e.max_output_tokens, e.output_limit), (16_384, OutputLimit::ModelMaximum));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn estimate(request: &CreateChatCompletionRequest) -> Result<Estimate, EstimateError> {
    estimate::estimate_in(&crate::pricing::table(), request, Default::default())
}

/// [`estimate`] on `table`, in `region` (`None`: the dearest).
///
/// ```
/// use async_openai::types::chat::CreateChatCompletionRequest;
/// use budgetgate::openai::{self, EstimateError};
/// use budgetgate::pricing::{ModelPrice, PriceTable};
/// use budgetgate::dec;
/// let request: CreateChatCompletionRequest = serde_json::from_value(serde_json::json!({
///     "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}))?;
/// let mut table = PriceTable::new();
/// table.insert("gpt-4o-mini", ModelPrice::per_million(dec!(0.15), dec!(0.60)));
/// // No output limit in the request, none known for the model: refused.
/// assert!(matches!(openai::estimate_with(&table, &request, None),
///                  Err(EstimateError::NoOutputLimit { .. })));
/// table.insert("gpt-4o-mini", ModelPrice::per_million(dec!(0.15), dec!(0.60)).max_output_tokens(1_000));
/// // 8 × 0.15/M + 1,000 × 0.60/M
/// assert_eq!(openai::estimate_with(&table, &request, None)?.cost, dec!(0.0006012));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn estimate_with(
    table: &PriceTable,
    request: &CreateChatCompletionRequest,
    region: Option<Region>,
) -> Result<Estimate, EstimateError> {
    estimate::estimate_in(table, request, estimate::Assume { region })
}

/// What a response cost, priced as `model` on the process-wide table: its
/// usage at the service tier it reports (see the [module docs](self)).
///
/// ```
/// use async_openai::types::chat::CreateChatCompletionResponse;
/// use budgetgate::dec;
/// let response: CreateChatCompletionResponse = serde_json::from_value(serde_json::json!({
///     "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
///     "model": "gpt-4o-2024-08-06", "service_tier": "default", "choices": [],
///     "usage": {"prompt_tokens": 68, "completion_tokens": 11, "total_tokens": 79}}))?;
/// // 68 × 2.50/M + 11 × 10/M
/// assert_eq!(budgetgate::openai::cost("gpt-4o", &response)?, dec!(0.00028));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cost(model: &str, response: &CreateChatCompletionResponse) -> Result<Decimal, PricingError> {
    estimate::cost_in(&crate::pricing::table(), model, response, None)
}

/// The usage of a response, at the service tier it reports; a response
/// without `usage` is [`UsageError::Missing`](crate::pricing::UsageError::Missing).
///
/// ```
/// use async_openai::types::chat::CreateChatCompletionResponse;
/// use budgetgate::pricing::ServiceTier;
/// let response: CreateChatCompletionResponse = serde_json::from_value(serde_json::json!({
///     "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "o3-mini",
///     "service_tier": "flex", "choices": [],
///     "usage": {"prompt_tokens": 7, "completion_tokens": 87, "total_tokens": 94,
///               "completion_tokens_details": {"reasoning_tokens": 64}}}))?;
/// let u = budgetgate::openai::usage(&response)?;
/// assert_eq!((u.reasoning_tokens, u.service_tier), (64, ServiceTier::Flex));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn usage(response: &CreateChatCompletionResponse) -> Result<Usage, PricingError> {
    estimate::usage_of(
        response.usage.as_ref(),
        response.service_tier.as_ref(),
        None,
    )
}

/// The usage a stream chunk carries (the last one, with `include_usage`),
/// if any.
///
/// ```
/// use async_openai::types::chat::CreateChatCompletionStreamResponse;
/// let chunk: CreateChatCompletionStreamResponse = serde_json::from_value(serde_json::json!({
///     "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
///     "choices": [{"index": 0, "delta": {"content": "Hi"}}], "usage": null}))?;
/// assert!(budgetgate::openai::chunk_usage(&chunk).is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn chunk_usage(
    chunk: &CreateChatCompletionStreamResponse,
) -> Option<Result<Usage, PricingError>> {
    chunk
        .usage
        .as_ref()
        .map(|u| estimate::usage_of(Some(u), chunk.service_tier.as_ref(), None))
}

fn table_or_global(table: &Option<Arc<PriceTable>>) -> Arc<PriceTable> {
    table.clone().unwrap_or_else(crate::pricing::table)
}
