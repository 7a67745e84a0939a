//! Token usage of one call, and its readers from provider JSON.

use super::PricingError;

/// Token counts of one call.
///
/// `input_tokens` is every input token, cached and cache-write ones included;
/// `cached_input_tokens` and `cache_creation_input_tokens` are the parts of it
/// read from and written to the prompt cache, and
/// `cache_creation_1h_input_tokens` the part of the writes that went to the
/// one-hour cache. The constructors from provider JSON normalize the
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
    /// Input tokens written to the prompt cache (both durations).
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Of `cache_creation_input_tokens`, those written to the one-hour cache.
    #[serde(default)]
    pub cache_creation_1h_input_tokens: u64,
}

/// A usage split into parts billed at one rate each.
pub(crate) struct Parts {
    pub plain_input: u64,
    pub cached: u64,
    pub write_5m: u64,
    pub write_1h: u64,
    pub plain_output: u64,
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
        let exceeds = |part: &'static str, tokens: u64, whole: &'static str, of: u64| {
            PricingError::Usage(format!("{tokens} {part} tokens exceed {of} {whole} tokens"))
        };
        let special = self
            .cached_input_tokens
            .checked_add(self.cache_creation_input_tokens)
            .filter(|s| *s <= self.input_tokens)
            .ok_or_else(|| {
                PricingError::Usage(format!(
                    "{} cached and {} cache-write tokens exceed {} input tokens",
                    self.cached_input_tokens, self.cache_creation_input_tokens, self.input_tokens
                ))
            })?;
        if self.cache_creation_1h_input_tokens > self.cache_creation_input_tokens {
            return Err(exceeds(
                "one-hour cache-write",
                self.cache_creation_1h_input_tokens,
                "cache-write",
                self.cache_creation_input_tokens,
            ));
        }
        Ok(Parts {
            plain_input: self.input_tokens - special,
            cached: self.cached_input_tokens,
            write_5m: self.cache_creation_input_tokens - self.cache_creation_1h_input_tokens,
            write_1h: self.cache_creation_1h_input_tokens,
            plain_output: self.output_tokens,
        })
    }

    /// OpenAI's `usage`: `prompt_tokens` (cached included),
    /// `completion_tokens`, `prompt_tokens_details.cached_tokens`.
    pub fn from_openai_json(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let field = |path: &[&str]| -> Result<Option<u64>, PricingError> {
            let mut v = usage;
            for p in path {
                match v.get(p) {
                    Some(next) => v = next,
                    None => return Ok(None),
                }
            }
            if v.is_null() {
                return Ok(None);
            }
            v.as_u64().map(Some).ok_or_else(|| {
                PricingError::Usage(format!("{} is not a token count: {v}", path.join(".")))
            })
        };
        let input = field(&["prompt_tokens"])?
            .or(field(&["input_tokens"])?)
            .ok_or_else(|| PricingError::Usage("no prompt_tokens in OpenAI usage".into()))?;
        let output = field(&["completion_tokens"])?
            .or(field(&["output_tokens"])?)
            .unwrap_or(0);
        let cached = field(&["prompt_tokens_details", "cached_tokens"])?
            .or(field(&["input_tokens_details", "cached_tokens"])?)
            .unwrap_or(0);
        if cached > input {
            return Err(PricingError::Usage(format!(
                "{cached} cached tokens exceed {input} prompt tokens"
            )));
        }
        Ok(Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            ..Usage::default()
        })
    }

    /// Anthropic's `usage`: `input_tokens` (cache reads and writes *not*
    /// included), `output_tokens`, `cache_read_input_tokens`,
    /// `cache_creation_input_tokens`.
    pub fn from_anthropic_json(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let field = |name: &str| -> Result<u64, PricingError> {
            match usage.get(name) {
                None | Some(serde_json::Value::Null) => Ok(0),
                Some(v) => v.as_u64().ok_or_else(|| {
                    PricingError::Usage(format!("{name} is not a token count: {v}"))
                }),
            }
        };
        if usage.get("input_tokens").is_none() {
            return Err(PricingError::Usage(
                "no input_tokens in Anthropic usage".into(),
            ));
        }
        let (plain, read, write) = (
            field("input_tokens")?,
            field("cache_read_input_tokens")?,
            field("cache_creation_input_tokens")?,
        );
        Ok(Usage {
            input_tokens: plain + read + write,
            output_tokens: field("output_tokens")?,
            cached_input_tokens: read,
            cache_creation_input_tokens: write,
            ..Usage::default()
        })
    }
}
