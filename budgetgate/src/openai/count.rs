//! Prompt tokens of a chat completion request, counted with the model's own
//! encoding (tiktoken's cl100k / o200k tables, embedded in `tiktoken-rs`),
//! plus the framing tokens OpenAI adds, rounded towards more, never fewer.

use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestAssistantMessageContentPart as AssistantPart,
    ChatCompletionRequestDeveloperMessageContent,
    ChatCompletionRequestDeveloperMessageContentPart as DeveloperPart,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessageContent,
    ChatCompletionRequestSystemMessageContentPart as SystemPart,
    ChatCompletionRequestToolMessageContent,
    ChatCompletionRequestToolMessageContentPart as ToolPart,
    ChatCompletionRequestUserMessageContent,
    ChatCompletionRequestUserMessageContentPart as UserPart, CreateChatCompletionRequest,
    PredictionContent, PredictionContentContent,
};
use tiktoken_rs::tokenizer::Tokenizer;
use tiktoken_rs::CoreBPE;

use super::EstimateError;

/// OpenAI's cookbook: every message is framed by 3 tokens
/// (`<|start|>{role}<|message|>…<|end|>`), a `name` costs 1 more, and every
/// reply is primed with 3 (`<|start|>assistant<|message|>`).
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// See [`TOKENS_PER_MESSAGE`].
pub const TOKENS_PER_NAME: u64 = 1;
/// See [`TOKENS_PER_MESSAGE`].
pub const REPLY_PRIMING_TOKENS: u64 = 3;
/// Tool and function definitions are rendered by OpenAI into a hidden
/// system text whose format is not published; they are counted as their
/// JSON (longer than that rendering: every key quoted) plus this much per
/// definition, and [`TOOLS_BLOCK_TOKENS`] once.
pub const TOKENS_PER_TOOL: u64 = 12;
/// See [`TOKENS_PER_TOOL`].
pub const TOOLS_BLOCK_TOKENS: u64 = 24;
/// Per tool call of an assistant message (its id, name and arguments are
/// counted besides), and per content part (a part boundary can only split
/// what one string would merge).
pub const TOKENS_PER_PART: u64 = 8;

/// The encoding of an OpenAI model's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// `cl100k_base`: gpt-4, gpt-3.5-turbo, the `text-embedding-3` models.
    Cl100kBase,
    /// `o200k_base`: gpt-4o, gpt-4.1, the o-series, gpt-5.
    O200kBase,
    /// `o200k_harmony`: gpt-oss.
    O200kHarmony,
}

impl Encoding {
    /// The encoding of `model` (`openai/gpt-4o` is `gpt-4o`, a fine-tune
    /// `ft:gpt-4o-mini:…` its base model's), as tiktoken maps names:
    /// o200k for gpt-4o, gpt-4.1, the o-series and gpt-5, cl100k for gpt-4
    /// and gpt-3.5. Other models (and the older encodings, which chat models
    /// do not use) are [`EstimateError::UnknownTokenizer`].
    ///
    /// ```
    /// use budgetgate::openai::Encoding;
    /// assert_eq!(Encoding::for_model("gpt-4o-mini")?, Encoding::O200kBase);
    /// assert_eq!(Encoding::for_model("openai/o3-mini")?, Encoding::O200kBase);
    /// assert_eq!(Encoding::for_model("gpt-4-0613")?, Encoding::Cl100kBase);
    /// assert!(Encoding::for_model("claude-sonnet-4-5").is_err());
    /// # Ok::<(), budgetgate::openai::EstimateError>(())
    /// ```
    pub fn for_model(model: &str) -> Result<Encoding, EstimateError> {
        let name = model.strip_prefix("openai/").unwrap_or(model);
        match tiktoken_rs::tokenizer::get_tokenizer(name) {
            Some(Tokenizer::O200kBase) => Ok(Encoding::O200kBase),
            Some(Tokenizer::O200kHarmony) => Ok(Encoding::O200kHarmony),
            Some(Tokenizer::Cl100kBase) => Ok(Encoding::Cl100kBase),
            _ => Err(EstimateError::UnknownTokenizer {
                model: model.to_owned(),
            }),
        }
    }

    fn bpe(self) -> &'static CoreBPE {
        match self {
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::O200kHarmony => tiktoken_rs::o200k_harmony_singleton(),
        }
    }

    /// The tokens of `text`, read as plain text (a `<|endoftext|>` in it
    /// is several tokens, as the API reads user text).
    ///
    /// ```
    /// use budgetgate::openai::Encoding;
    /// assert_eq!(Encoding::O200kBase.count("hello world"), 2);
    /// ```
    pub fn count(self, text: &str) -> u64 {
        self.bpe().count_ordinary(text) as u64
    }
}

/// What could not be counted, and where.
fn uncountable(what: &'static str, message: usize) -> EstimateError {
    EstimateError::Uncountable {
        what,
        message: Some(message),
    }
}

/// The prompt tokens of `request` in `encoding`: every message's text, name,
/// tool calls and framing, the tool and function definitions, and a
/// `response_format` schema (sent to the model too). Images, audio and files
/// are refused ([`EstimateError::Uncountable`]): their token counts depend on
/// what the URL or bytes hold.
pub(crate) fn prompt_tokens(
    encoding: Encoding,
    request: &CreateChatCompletionRequest,
) -> Result<u64, EstimateError> {
    let count = |text: &str| encoding.count(text);
    let json = |value: &dyn erased_serde_json::Json| value.tokens(encoding);
    let mut tokens = REPLY_PRIMING_TOKENS;
    for (i, message) in request.messages.iter().enumerate() {
        tokens += TOKENS_PER_MESSAGE;
        let (role, name) = match message {
            ChatCompletionRequestMessage::Developer(m) => {
                tokens += match &m.content {
                    ChatCompletionRequestDeveloperMessageContent::Text(t) => count(t),
                    ChatCompletionRequestDeveloperMessageContent::Array(parts) => parts
                        .iter()
                        .map(|p| {
                            let DeveloperPart::Text(t) = p;
                            count(&t.text) + TOKENS_PER_PART
                        })
                        .sum(),
                };
                ("developer", m.name.as_deref())
            }
            ChatCompletionRequestMessage::System(m) => {
                tokens += match &m.content {
                    ChatCompletionRequestSystemMessageContent::Text(t) => count(t),
                    ChatCompletionRequestSystemMessageContent::Array(parts) => parts
                        .iter()
                        .map(|p| {
                            let SystemPart::Text(t) = p;
                            count(&t.text) + TOKENS_PER_PART
                        })
                        .sum(),
                };
                ("system", m.name.as_deref())
            }
            ChatCompletionRequestMessage::User(m) => {
                tokens += match &m.content {
                    ChatCompletionRequestUserMessageContent::Text(t) => count(t),
                    ChatCompletionRequestUserMessageContent::Array(parts) => {
                        let mut sum = 0;
                        for part in parts {
                            sum += TOKENS_PER_PART
                                + match part {
                                    UserPart::Text(t) => count(&t.text),
                                    UserPart::ImageUrl(_) => {
                                        return Err(uncountable("an image_url content part", i))
                                    }
                                    UserPart::InputAudio(_) => {
                                        return Err(uncountable("an input_audio content part", i))
                                    }
                                    UserPart::File(_) => {
                                        return Err(uncountable("a file content part", i))
                                    }
                                };
                        }
                        sum
                    }
                };
                ("user", m.name.as_deref())
            }
            ChatCompletionRequestMessage::Assistant(m) => {
                if m.audio.is_some() {
                    return Err(uncountable("a previous audio response", i));
                }
                tokens += match &m.content {
                    None => 0,
                    Some(ChatCompletionRequestAssistantMessageContent::Text(t)) => count(t),
                    Some(ChatCompletionRequestAssistantMessageContent::Array(parts)) => parts
                        .iter()
                        .map(|p| {
                            TOKENS_PER_PART
                                + match p {
                                    AssistantPart::Text(t) => count(&t.text),
                                    AssistantPart::Refusal(r) => count(&r.refusal),
                                }
                        })
                        .sum(),
                };
                tokens += m.refusal.as_deref().map_or(0, count);
                for call in m.tool_calls.iter().flatten() {
                    tokens += TOKENS_PER_PART
                        + match call {
                            ChatCompletionMessageToolCalls::Function(c) => {
                                count(&c.id)
                                    + count(&c.function.name)
                                    + count(&c.function.arguments)
                            }
                            ChatCompletionMessageToolCalls::Custom(c) => {
                                count(&c.id)
                                    + count(&c.custom_tool.name)
                                    + count(&c.custom_tool.input)
                            }
                        };
                }
                #[allow(deprecated)]
                if let Some(call) = &m.function_call {
                    tokens += TOKENS_PER_PART + count(&call.name) + count(&call.arguments);
                }
                ("assistant", m.name.as_deref())
            }
            ChatCompletionRequestMessage::Tool(m) => {
                tokens += count(&m.tool_call_id)
                    + match &m.content {
                        ChatCompletionRequestToolMessageContent::Text(t) => count(t),
                        ChatCompletionRequestToolMessageContent::Array(parts) => parts
                            .iter()
                            .map(|p| {
                                let ToolPart::Text(t) = p;
                                count(&t.text) + TOKENS_PER_PART
                            })
                            .sum(),
                    };
                ("tool", None)
            }
            ChatCompletionRequestMessage::Function(m) => {
                tokens += m.content.as_deref().map_or(0, count);
                ("function", Some(m.name.as_str()))
            }
        };
        tokens += count(role);
        if let Some(name) = name {
            tokens += count(name) + TOKENS_PER_NAME;
        }
    }
    if let Some(tools) = &request.tools {
        tokens += TOOLS_BLOCK_TOKENS;
        for tool in tools {
            tokens += TOKENS_PER_TOOL + json(tool)?;
        }
    }
    #[allow(deprecated)]
    if let Some(functions) = &request.functions {
        tokens += TOOLS_BLOCK_TOKENS;
        for function in functions {
            tokens += TOKENS_PER_TOOL + json(function)?;
        }
    }
    if let Some(choice) = &request.tool_choice {
        tokens += json(choice)?;
    }
    if let Some(format) = &request.response_format {
        tokens += TOOLS_BLOCK_TOKENS + json(format)?;
    }
    Ok(tokens)
}

/// The tokens of a Predicted Output's content: rejected prediction tokens
/// are billed as output, on top of what the model generates.
pub(crate) fn prediction_tokens(encoding: Encoding, request: &CreateChatCompletionRequest) -> u64 {
    match &request.prediction {
        None => 0,
        Some(PredictionContent::Content(PredictionContentContent::Text(t))) => encoding.count(t),
        Some(PredictionContent::Content(PredictionContentContent::Array(parts))) => parts
            .iter()
            .map(|p| encoding.count(&p.text) + TOKENS_PER_PART)
            .sum(),
    }
}

/// The tokens of a value's JSON, for values of different types through one
/// closure.
mod erased_serde_json {
    use super::{Encoding, EstimateError};

    pub(super) trait Json {
        fn tokens(&self, encoding: Encoding) -> Result<u64, EstimateError>;
    }

    impl<T: serde::Serialize> Json for T {
        fn tokens(&self, encoding: Encoding) -> Result<u64, EstimateError> {
            let json =
                serde_json::to_string(self).map_err(|e| EstimateError::Serialize(e.to_string()))?;
            Ok(encoding.count(&json))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_has_its_encoding() {
        for model in [
            "gpt-4o",
            "gpt-4o-2024-08-06",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-nano-2025-04-14",
            "o1",
            "o3",
            "o3-mini",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5.2",
            "openai/gpt-4o",
            "ft:gpt-4o-mini-2024-07-18:acme::abc123",
        ] {
            assert_eq!(
                Encoding::for_model(model),
                Ok(Encoding::O200kBase),
                "{model}"
            );
        }
        for model in [
            "gpt-4",
            "gpt-4-turbo",
            "gpt-3.5-turbo",
            "text-embedding-3-small",
        ] {
            assert_eq!(
                Encoding::for_model(model),
                Ok(Encoding::Cl100kBase),
                "{model}"
            );
        }
        assert_eq!(
            Encoding::for_model("gpt-oss-120b"),
            Ok(Encoding::O200kHarmony)
        );
        for model in [
            "text-davinci-003",
            "claude-sonnet-4-5",
            "gemini-2.5-pro",
            "",
        ] {
            assert!(Encoding::for_model(model).is_err(), "{model}");
        }
    }

    #[test]
    fn special_token_text_is_plain_text() {
        // The API reads `<|endoftext|>` in user text as text, not as one token.
        assert!(Encoding::O200kBase.count("<|endoftext|>") > 1);
        assert!(Encoding::Cl100kBase.count("<|endoftext|>") > 1);
    }
}
