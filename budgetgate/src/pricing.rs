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
//! // The most 1,200 input and up to 500 output tokens can cost.
//! assert_eq!(pricing::estimate("gpt-4o", 1200, 500)?, dec!(0.008));
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
//! Anthropic, Google, Mistral and DeepSeek models at the prices published on
//! [`BUILTIN_PRICES_AS_OF`]; override entries, or load LiteLLM's
//! `model_prices_and_context_window.json` ([`PriceTable::from_litellm_json`]),
//! and install it with [`set_table`]. Tiered prices (e.g. Gemini above 200k
//! tokens) use the base tier.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rust_decimal::Decimal;
use std::sync::LazyLock;

use crate::amount::round_up;

/// The date the built-in prices were taken from the providers' price pages.
pub const BUILTIN_PRICES_AS_OF: &str = "2025-06-15";

/// Prices of one model, per token (not per million), as exact decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelPrice {
    /// Per input token.
    pub input: Decimal,
    /// Per output token.
    pub output: Decimal,
    /// Per input token read from the prompt cache (`None`: the input price).
    pub cached_input: Option<Decimal>,
    /// Per input token written to the prompt cache (`None`: the input price).
    pub cache_write: Option<Decimal>,
    /// Per request, where a provider charges one.
    pub per_request: Option<Decimal>,
}

impl ModelPrice {
    /// From prices per million tokens, as providers publish them.
    ///
    /// ```
    /// use budgetgate::pricing::ModelPrice;
    /// use budgetgate::dec;
    /// let p = ModelPrice::per_million(dec!(2.50), dec!(10.00));
    /// assert_eq!(p.input, dec!(0.0000025));
    /// ```
    pub fn per_million(input: Decimal, output: Decimal) -> Self {
        ModelPrice {
            input: input / MILLION,
            output: output / MILLION,
            ..ModelPrice::default()
        }
    }

    /// With a price per million cached input tokens.
    pub fn cached_per_million(mut self, cached: Decimal) -> Self {
        self.cached_input = Some(cached / MILLION);
        self
    }

    /// With a price per million cache-write input tokens.
    pub fn cache_write_per_million(mut self, write: Decimal) -> Self {
        self.cache_write = Some(write / MILLION);
        self
    }

    /// With a price per request.
    pub fn per_request(mut self, price: Decimal) -> Self {
        self.per_request = Some(price);
        self
    }

    /// The most one input token can cost (plain, cached or cache write).
    fn max_input(&self) -> Decimal {
        [self.cached_input, self.cache_write]
            .into_iter()
            .flatten()
            .fold(self.input, Decimal::max)
    }
}

const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Token counts of one call.
///
/// `input_tokens` is every input token, cached and cache-write ones included;
/// `cached_input_tokens` and `cache_creation_input_tokens` are the parts of it
/// read from and written to the prompt cache. The constructors from provider
/// JSON normalize the providers' different conventions to this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// All input tokens.
    pub input_tokens: u64,
    /// Output tokens (reasoning tokens included).
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
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
            cache_creation_input_tokens: 0,
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
        })
    }
}

/// Why a price or a cost could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    /// No price for this model (never priced at zero).
    #[error("no price for model {0:?}; add it to the price table")]
    UnknownModel(String),
    /// Usage JSON that cannot be read.
    #[error("invalid usage: {0}")]
    Usage(String),
    /// A price file that cannot be read.
    #[error("invalid price table: {0}")]
    Table(String),
}

/// What loading a LiteLLM price file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// Entries with token prices, now in the table.
    pub loaded: usize,
    /// Entries without token prices (images, audio, `sample_spec`, …).
    pub skipped: usize,
}

/// Per-model prices, with aliases and provider prefixes (`openai/gpt-4o`).
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
    aliases: HashMap<String, String>,
    as_of: Option<String>,
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in table (prices of [`BUILTIN_PRICES_AS_OF`]).
    pub fn builtin() -> Self {
        let d = |s: &str| s.parse::<Decimal>().unwrap_or(Decimal::MAX);
        let mut t = PriceTable {
            as_of: Some(BUILTIN_PRICES_AS_OF.to_owned()),
            ..Self::default()
        };
        // (model, input, cached input, cache write, output) per million tokens.
        type Row = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            &'static str,
        );
        let rows: &[Row] = &[
            ("gpt-4o", "2.50", Some("1.25"), None, "10.00"),
            ("gpt-4o-mini", "0.15", Some("0.075"), None, "0.60"),
            ("gpt-4.1", "2.00", Some("0.50"), None, "8.00"),
            ("gpt-4.1-mini", "0.40", Some("0.10"), None, "1.60"),
            ("gpt-4.1-nano", "0.10", Some("0.025"), None, "0.40"),
            ("o1", "15.00", Some("7.50"), None, "60.00"),
            ("o3", "2.00", Some("0.50"), None, "8.00"),
            ("o3-mini", "1.10", Some("0.55"), None, "4.40"),
            ("o4-mini", "1.10", Some("0.275"), None, "4.40"),
            ("text-embedding-3-small", "0.02", None, None, "0"),
            ("text-embedding-3-large", "0.13", None, None, "0"),
            (
                "claude-opus-4",
                "15.00",
                Some("1.50"),
                Some("18.75"),
                "75.00",
            ),
            (
                "claude-sonnet-4",
                "3.00",
                Some("0.30"),
                Some("3.75"),
                "15.00",
            ),
            (
                "claude-3-7-sonnet",
                "3.00",
                Some("0.30"),
                Some("3.75"),
                "15.00",
            ),
            (
                "claude-3-5-sonnet",
                "3.00",
                Some("0.30"),
                Some("3.75"),
                "15.00",
            ),
            (
                "claude-3-5-haiku",
                "0.80",
                Some("0.08"),
                Some("1.00"),
                "4.00",
            ),
            ("gemini-2.5-pro", "1.25", Some("0.31"), None, "10.00"),
            ("gemini-2.5-flash", "0.30", Some("0.075"), None, "2.50"),
            ("gemini-2.0-flash", "0.10", Some("0.025"), None, "0.40"),
            ("mistral-large-latest", "2.00", None, None, "6.00"),
            ("mistral-medium-latest", "0.40", None, None, "2.00"),
            ("mistral-small-latest", "0.10", None, None, "0.30"),
            ("codestral-latest", "0.30", None, None, "0.90"),
            ("deepseek-chat", "0.27", Some("0.07"), None, "1.10"),
            ("deepseek-reasoner", "0.55", Some("0.14"), None, "2.19"),
        ];
        for (model, input, cached, write, output) in rows {
            let mut p = ModelPrice::per_million(d(input), d(output));
            if let Some(c) = cached {
                p = p.cached_per_million(d(c));
            }
            if let Some(w) = write {
                p = p.cache_write_per_million(d(w));
            }
            t.insert(*model, p);
        }
        for (alias, model) in [
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("gpt-4o-2024-11-20", "gpt-4o"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt-4.1-2025-04-14", "gpt-4.1"),
            ("o3-2025-04-16", "o3"),
            ("o4-mini-2025-04-16", "o4-mini"),
            ("claude-opus-4-20250514", "claude-opus-4"),
            ("claude-opus-4-0", "claude-opus-4"),
            ("claude-sonnet-4-20250514", "claude-sonnet-4"),
            ("claude-sonnet-4-0", "claude-sonnet-4"),
            ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
            ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
            ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
            ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
            ("mistral-large", "mistral-large-latest"),
            ("mistral-small", "mistral-small-latest"),
            ("codestral", "codestral-latest"),
        ] {
            t.alias(alias, model);
        }
        t
    }

    /// The date the prices were taken, if known.
    pub fn as_of(&self) -> Option<&str> {
        self.as_of.as_deref()
    }

    /// Adds or replaces a model's price.
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) -> &mut Self {
        self.models.insert(model.into(), price);
        self
    }

    /// Makes `alias` resolve to `model`.
    pub fn alias(&mut self, alias: impl Into<String>, model: impl Into<String>) -> &mut Self {
        self.aliases.insert(alias.into(), model.into());
        self
    }

    /// Number of models with a price.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the table has no price at all.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The price of `model`: by exact name, by alias, then without a provider
    /// prefix (`openai/gpt-4o` → `gpt-4o`), case-insensitively last.
    pub fn price(&self, model: &str) -> Result<&ModelPrice, PricingError> {
        let lookup = |name: &str| {
            self.models.get(name).or_else(|| {
                self.aliases
                    .get(name)
                    .and_then(|target| self.models.get(target.as_str()))
            })
        };
        let unprefixed = model.split_once('/').map(|(_, rest)| rest);
        lookup(model)
            .or_else(|| unprefixed.and_then(lookup))
            .or_else(|| {
                let lower = model.to_ascii_lowercase();
                let lower_unprefixed = lower.split_once('/').map(|(_, r)| r.to_owned());
                lookup(&lower).or_else(|| lower_unprefixed.as_deref().and_then(lookup))
            })
            .ok_or_else(|| PricingError::UnknownModel(model.to_owned()))
    }

    /// The exact cost of a call, rounded *up* to 10⁻⁹ (never under-charged).
    pub fn cost(&self, model: &str, usage: &Usage) -> Result<Decimal, PricingError> {
        let p = self.price(model)?;
        let special = usage.cached_input_tokens + usage.cache_creation_input_tokens;
        if special > usage.input_tokens {
            return Err(PricingError::Usage(format!(
                "{special} cached and cache-write tokens exceed {} input tokens",
                usage.input_tokens
            )));
        }
        let plain = usage.input_tokens - special;
        let cost = Decimal::from(plain) * p.input
            + Decimal::from(usage.cached_input_tokens) * p.cached_input.unwrap_or(p.input)
            + Decimal::from(usage.cache_creation_input_tokens) * p.cache_write.unwrap_or(p.input)
            + Decimal::from(usage.output_tokens) * p.output
            + p.per_request.unwrap_or_default();
        Ok(round_up(cost))
    }

    /// The most a call with `input_tokens` and at most `max_output_tokens` can
    /// cost, however its input splits into plain, cached and cache-write
    /// tokens: the amount to reserve.
    pub fn estimate(
        &self,
        model: &str,
        input_tokens: u64,
        max_output_tokens: u64,
    ) -> Result<Decimal, PricingError> {
        let p = self.price(model)?;
        let cost = Decimal::from(input_tokens) * p.max_input()
            + Decimal::from(max_output_tokens) * p.output
            + p.per_request.unwrap_or_default();
        Ok(round_up(cost))
    }

    /// Reads LiteLLM's `model_prices_and_context_window.json` format:
    /// `input_cost_per_token`, `output_cost_per_token`,
    /// `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
    /// `input_cost_per_request`. Entries without token prices are skipped and
    /// counted. A JSON number is read as the shortest decimal that denotes it
    /// (`2.5e-06` → `0.0000025`), i.e. exactly what the file says.
    pub fn from_litellm_json(json: &str) -> Result<(Self, LoadReport), PricingError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| PricingError::Table(e.to_string()))?;
        Self::from_litellm_value(&value)
    }

    /// [`PriceTable::from_litellm_json`] from a reader.
    pub fn from_litellm_reader(reader: impl Read) -> Result<(Self, LoadReport), PricingError> {
        let value: serde_json::Value =
            serde_json::from_reader(reader).map_err(|e| PricingError::Table(e.to_string()))?;
        Self::from_litellm_value(&value)
    }

    /// [`PriceTable::from_litellm_json`] from a file.
    pub fn from_litellm_path(path: impl AsRef<Path>) -> Result<(Self, LoadReport), PricingError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| PricingError::Table(format!("{}: {e}", path.display())))?;
        Self::from_litellm_reader(std::io::BufReader::new(file))
    }

    fn from_litellm_value(value: &serde_json::Value) -> Result<(Self, LoadReport), PricingError> {
        let entries = value
            .as_object()
            .ok_or_else(|| PricingError::Table("expected a JSON object of models".into()))?;
        let mut table = PriceTable::new();
        let mut report = LoadReport::default();
        for (model, entry) in entries {
            // LiteLLM's schema description, not a model.
            if model == "sample_spec" {
                report.skipped += 1;
                continue;
            }
            let price = |key: &str| -> Result<Option<Decimal>, PricingError> {
                match entry.get(key) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::Number(n)) => exact(n).map(Some).ok_or_else(|| {
                        PricingError::Table(format!("{model}.{key}: {n} is not a price"))
                    }),
                    Some(other) => Err(PricingError::Table(format!(
                        "{model}.{key}: {other} is not a number"
                    ))),
                }
            };
            let (Some(input), Some(output)) = (
                price("input_cost_per_token")?,
                price("output_cost_per_token")?,
            ) else {
                report.skipped += 1;
                continue;
            };
            table.insert(
                model.clone(),
                ModelPrice {
                    input,
                    output,
                    cached_input: price("cache_read_input_token_cost")?,
                    cache_write: price("cache_creation_input_token_cost")?,
                    per_request: price("input_cost_per_request")?,
                },
            );
            report.loaded += 1;
        }
        Ok((table, report))
    }

    /// Adds every price of `other`, replacing entries with the same name.
    pub fn extend(&mut self, other: PriceTable) -> &mut Self {
        self.models.extend(other.models);
        self.aliases.extend(other.aliases);
        self
    }
}

/// A JSON number as the decimal it denotes. Integers are exact; a float is
/// read as the shortest decimal that round-trips it (Rust's `Display` for
/// `f64`), so `2.5e-06` is `0.0000025`, never `0.00000249999…`.
fn exact(n: &serde_json::Number) -> Option<Decimal> {
    if let Some(i) = n.as_u64() {
        return Some(Decimal::from(i));
    }
    let f = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0)?;
    f.to_string().parse::<Decimal>().ok()
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

/// [`PriceTable::estimate`] on the process-wide table.
pub fn estimate(
    model: &str,
    input_tokens: u64,
    max_output_tokens: u64,
) -> Result<Decimal, PricingError> {
    TABLE
        .load()
        .estimate(model, input_tokens, max_output_tokens)
}
