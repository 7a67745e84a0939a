//! The price table: names, aliases, and how a model name is resolved.

use std::collections::HashMap;

use rust_decimal::Decimal;

use super::{Limits, ModelPrice, PricingError, Usage};

/// Provider prefixes that name a model's own API: `openai/gpt-4o` is
/// `gpt-4o`. A name with one of these prefixes that the table does not know
/// at all is looked up without it; any other prefix (`azure/`, `bedrock/`,
/// `chatgpt/`, `github_copilot/`, …) is another seller with prices of its own
/// and is never priced through the un-prefixed name.
pub const API_PROVIDER_PREFIXES: &[&str] = &[
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "deepseek",
    "xai",
    "cohere",
];

/// Per-model prices, with aliases and provider prefixes (`openai/gpt-4o`).
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    pub(crate) models: HashMap<String, ModelPrice>,
    pub(crate) aliases: HashMap<String, String>,
    /// Names known to have no usable price, with why (from a loaded file).
    pub(crate) unpriced: HashMap<String, String>,
    pub(crate) as_of: Option<String>,
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The date the prices were taken, if known.
    pub fn as_of(&self) -> Option<&str> {
        self.as_of.as_deref()
    }

    /// Adds or replaces a model's price.
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) -> &mut Self {
        let model = model.into();
        self.unpriced.remove(&model);
        self.models.insert(model, price);
        self
    }

    /// Makes `alias` resolve to `model`.
    pub fn alias(&mut self, alias: impl Into<String>, model: impl Into<String>) -> &mut Self {
        let alias = alias.into();
        self.unpriced.remove(&alias);
        self.aliases.insert(alias, model.into());
        self
    }

    /// Number of models with a price.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// The names with a price (no aliases), in no particular order.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// Whether the table has no price at all.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The price of `model`, resolved in this order:
    ///
    /// 1. the exact name, then an alias of that name;
    /// 2. the same, ASCII-lowercased;
    /// 3. only if the table does not know the name at all and its prefix is
    ///    one of [`API_PROVIDER_PREFIXES`]: the name without the prefix
    ///    (`openai/gpt-4o` → `gpt-4o`), by steps 1 and 2.
    ///
    /// A name the table knows without a price (an entry of a loaded file
    /// without token prices, e.g. `chatgpt/gpt-4o`) is
    /// [`PricingError::Unpriced`]; it is never priced through another name.
    pub fn price(&self, model: &str) -> Result<&ModelPrice, PricingError> {
        let known = |name: &str| -> Option<Result<&ModelPrice, PricingError>> {
            let lookup = |name: &str| {
                if let Some(p) = self.models.get(name) {
                    return Some(Ok(p));
                }
                if let Some(target) = self.aliases.get(name) {
                    return Some(self.models.get(target.as_str()).ok_or_else(|| {
                        PricingError::UnknownModel(format!("{model} (alias of {target})"))
                    }));
                }
                self.unpriced.get(name).map(|reason| {
                    Err(PricingError::Unpriced {
                        model: name.to_owned(),
                        reason: reason.clone(),
                    })
                })
            };
            lookup(name).or_else(|| lookup(&name.to_ascii_lowercase()))
        };
        if let Some(found) = known(model) {
            return found;
        }
        if let Some((prefix, rest)) = model.split_once('/') {
            if API_PROVIDER_PREFIXES.contains(&prefix.to_ascii_lowercase().as_str()) {
                if let Some(found) = known(rest) {
                    return found;
                }
            }
        }
        Err(PricingError::UnknownModel(model.to_owned()))
    }

    /// The exact cost of a call, rounded *up* to 10⁻⁹ (never under-charged),
    /// at the prices of the tier its input tokens reached.
    pub fn cost(&self, model: &str, usage: &Usage) -> Result<Decimal, PricingError> {
        self.price(model)?.cost(model, usage)
    }

    /// The most a call with `input_tokens` (or fewer) and at most
    /// `max_output_tokens` can cost, however its input splits into plain,
    /// cached and cache-write tokens and whichever tier it reaches: the amount
    /// to reserve. An upper bound of [`PriceTable::cost`] for every usage
    /// within those limits, whatever its service tier, region and speed,
    /// *without web searches*: it is [`PriceTable::estimate_with`] with zero
    /// searches ([`PriceTable::estimate_for`] narrows the tiers).
    pub fn estimate(
        &self,
        model: &str,
        input_tokens: u64,
        max_output_tokens: u64,
    ) -> Result<Decimal, PricingError> {
        self.estimate_with(model, input_tokens, max_output_tokens, 0)
    }

    /// [`PriceTable::estimate`] for a call that may also run up to
    /// `max_searches` web searches (e.g. the web search tool's `max_uses`),
    /// each at the model's per-search price: an upper bound of
    /// [`PriceTable::cost`] for every usage within those limits. A model
    /// without a per-search price is [`PricingError::Unpriced`] when
    /// `max_searches` is not zero.
    pub fn estimate_with(
        &self,
        model: &str,
        input_tokens: u64,
        max_output_tokens: u64,
        max_searches: u64,
    ) -> Result<Decimal, PricingError> {
        self.estimate_for(
            model,
            &Limits::new(input_tokens, max_output_tokens).web_searches(max_searches),
        )
    }

    /// The most a call within `limits` can cost: an upper bound of
    /// [`PriceTable::cost`] for every usage within them (input split, output
    /// split, long-context tier, and the dearest service tier, region and
    /// speed the limits leave open). [`PriceTable::estimate`] and
    /// [`PriceTable::estimate_with`] leave them all open.
    pub fn estimate_for(&self, model: &str, limits: &Limits) -> Result<Decimal, PricingError> {
        self.price(model)?.estimate(model, limits)
    }

    /// Adds every price and alias of `other`, replacing entries with the same
    /// name. `other`'s names without a price are kept as such only where this
    /// table has no price of that name.
    pub fn extend(&mut self, other: PriceTable) -> &mut Self {
        for name in other.models.keys().chain(other.aliases.keys()) {
            self.unpriced.remove(name);
        }
        for (name, reason) in other.unpriced {
            if !self.models.contains_key(&name) && !self.aliases.contains_key(&name) {
                self.unpriced.insert(name, reason);
            }
        }
        self.models.extend(other.models);
        self.aliases.extend(other.aliases);
        self
    }
}
