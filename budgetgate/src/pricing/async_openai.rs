//! Conversions from [`async_openai`]'s usage structs (feature `async-openai`).
//!
//! Each goes through the JSON reader of its shape, so a conversion checks
//! what that reader checks (parts no larger than their wholes, no negative
//! cache-write counts) and refuses what it refuses.

use async_openai::types::chat::CompletionUsage;
use async_openai::types::responses::ResponseUsage;

use super::{PricingError, Usage, UsageError};

fn to_json(
    parser: &'static str,
    value: impl serde::Serialize,
) -> Result<serde_json::Value, UsageError> {
    serde_json::to_value(value).map_err(|e| UsageError::NotAnObject {
        parser,
        found: e.to_string(),
    })
}

/// Chat Completions usage, as [`Usage::from_openai_json`] reads it.
///
/// ```
/// use async_openai::types::chat::{CompletionUsage, PromptTokensDetails};
/// use budgetgate::pricing::Usage;
/// let u = CompletionUsage {
///     prompt_tokens: 1_200,
///     completion_tokens: 300,
///     total_tokens: 1_500,
///     prompt_tokens_details: Some(PromptTokensDetails {
///         cached_tokens: Some(1_000),
///         ..Default::default()
///     }),
///     completion_tokens_details: None,
/// };
/// let usage = Usage::try_from(&u)?;
/// assert_eq!((usage.input_tokens, usage.cached_input_tokens), (1_200, 1_000));
/// # Ok::<(), budgetgate::pricing::PricingError>(())
/// ```
impl TryFrom<&CompletionUsage> for Usage {
    type Error = PricingError;

    fn try_from(u: &CompletionUsage) -> Result<Self, PricingError> {
        Usage::from_openai_json(&to_json("OpenAI chat", u)?)
    }
}

impl TryFrom<CompletionUsage> for Usage {
    type Error = PricingError;

    fn try_from(u: CompletionUsage) -> Result<Self, PricingError> {
        Usage::try_from(&u)
    }
}

/// Responses API usage, as [`Usage::from_openai_responses_json`] reads it.
///
/// ```
/// use async_openai::types::responses::ResponseUsage;
/// use budgetgate::pricing::Usage;
/// let mut u = ResponseUsage::default();
/// (u.input_tokens, u.output_tokens, u.total_tokens) = (300, 50, 350);
/// u.output_tokens_details.reasoning_tokens = 20;
/// let usage = Usage::try_from(&u)?;
/// assert_eq!((usage.output_tokens, usage.reasoning_tokens), (50, 20));
/// # Ok::<(), budgetgate::pricing::PricingError>(())
/// ```
impl TryFrom<&ResponseUsage> for Usage {
    type Error = PricingError;

    fn try_from(u: &ResponseUsage) -> Result<Self, PricingError> {
        Usage::from_openai_responses_json(&to_json("OpenAI Responses", u)?)
    }
}

impl TryFrom<ResponseUsage> for Usage {
    type Error = PricingError;

    fn try_from(u: ResponseUsage) -> Result<Self, PricingError> {
        Usage::try_from(&u)
    }
}
