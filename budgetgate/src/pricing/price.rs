//! The price model and the cost / estimate arithmetic.

use rust_decimal::Decimal;

use super::{PricingError, Region, ServiceTier, Speed, Usage};
use crate::amount::round_up;

pub(crate) const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const HALF: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

/// Prices of one model, per token (not per million), as exact decimals.
///
/// [`ModelPrice::base`] holds the token prices ([`TokenPrices`], the one
/// struct of per-token prices, used by tiers and service tiers too);
/// [`ModelPrice::tiers`] holds long-context tiers. A tier applies to the *whole* request (every input, cached, cache
/// write and output token) once its input tokens — cached and cache-write ones
/// included — are strictly more than the tier's threshold, as LiteLLM's cost
/// function does: with a 200k tier, 200,000 input tokens are billed at the
/// base prices and 200,001 at the tier's.
///
/// `None` prices fall back as [`TokenPrices`] says.
///
/// Besides tokens: [`ModelPrice::per_request`] and
/// [`ModelPrice::per_web_search`] are per-call fees, never tiered nor
/// discounted. Service tiers: usage of a tier listed in
/// [`ModelPrice::service_tiers`] pays that tier's prices (and its own
/// long-context tiers); otherwise [`ServiceTier::Batch`] usage pays the token
/// prices times [`ModelPrice::batch_multiplier`] (one half unless set), and
/// [`ServiceTier::Priority`], [`ServiceTier::Flex`] and
/// [`ServiceTier::Standard`] usage the prices as they are. Then the token
/// cost is multiplied by the usage's region's
/// [`ModelPrice::region_multipliers`] entry (none: one) and, for
/// [`Speed::Fast`] usage, by [`ModelPrice::fast_multiplier`] (none: the
/// usage cannot be priced).
///
/// ```
/// use budgetgate::pricing::{ModelPrice, PriceTable, Region, ServiceTier, ServiceTierPrice, TokenPrices, Usage};
/// use budgetgate::dec;
/// // gpt-4o: 2.50 / 10 per million; priority 4.25 / 17; 1.1 times in the US.
/// let mut p = ModelPrice::per_million(dec!(2.50), dec!(10));
/// p.service_tiers.push(ServiceTierPrice::new(
///     ServiceTier::Priority,
///     TokenPrices::per_million(dec!(4.25), dec!(17)),
/// ));
/// p.region_multipliers.push((Region::Us, dec!(1.1)));
/// let mut t = PriceTable::new();
/// t.insert("gpt-4o", p);
/// let u = Usage { service_tier: ServiceTier::Priority, ..Usage::new(1_000, 100) };
/// assert_eq!(t.cost("gpt-4o", &u)?, dec!(0.00595)); // 0.00425 + 0.0017
/// let u = Usage { region: Region::Us, ..u };
/// assert_eq!(t.cost("gpt-4o", &u)?, dec!(0.006545));
/// // The estimate: the dearest tier and region the request can reach.
/// assert_eq!(t.estimate("gpt-4o", 1_000, 100)?, dec!(0.006545));
/// # Ok::<(), budgetgate::pricing::PricingError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelPrice {
    /// The token prices below every long-context tier, at the standard
    /// service tier.
    pub base: TokenPrices,
    /// Per request, where a provider charges one (never tiered).
    pub per_request: Option<Decimal>,
    /// Per web search the model ran (Anthropic's `server_tool_use`
    /// `web_search_requests`); never tiered nor discounted. `None`: the model
    /// has no search price, and usage with searches is
    /// [`PricingError::Unpriced`] rather than priced at zero.
    pub per_web_search: Option<Decimal>,
    /// The factor of every token price for [`ServiceTier::Batch`] usage
    /// (`None`: one half, Anthropic's and OpenAI's batch discount).
    pub batch_multiplier: Option<Decimal>,
    /// Long-context tiers, in any order; the one with the highest threshold
    /// below the request's input tokens applies.
    pub tiers: Vec<PriceTier>,
    /// Service tiers with prices of their own (priority, flex, batch); a
    /// tier not listed is priced as [`ModelPrice::tier_multiplier`] says.
    pub service_tiers: Vec<ServiceTierPrice>,
    /// The factor of every token price by the region a call was processed
    /// in; a region not listed (and [`Region::Global`]) is one.
    pub region_multipliers: Vec<(Region, Decimal)>,
    /// The factor of every token price for [`Speed::Fast`] usage (`None`: fast
    /// usage cannot be priced, never priced as standard).
    pub fast_multiplier: Option<Decimal>,
    /// Not a price: the most output tokens one response of the model can
    /// have (LiteLLM's `max_output_tokens`), the worst case of a request
    /// that sets no output limit of its own. `None`: unknown.
    pub max_output_tokens: Option<u64>,
}

impl From<TokenPrices> for ModelPrice {
    /// A model with these token prices and nothing else (no tiers, fees or
    /// multipliers).
    fn from(base: TokenPrices) -> Self {
        ModelPrice {
            base,
            ..ModelPrice::default()
        }
    }
}

/// The prices of one service tier of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTierPrice {
    /// The service tier.
    pub service_tier: ServiceTier,
    /// Its token prices.
    pub price: TokenPrices,
    /// Its long-context tiers (as [`ModelPrice::tiers`]).
    pub tiers: Vec<PriceTier>,
}

impl ServiceTierPrice {
    /// `price` for `service_tier`, without long-context tiers.
    pub fn new(service_tier: ServiceTier, price: TokenPrices) -> Self {
        ServiceTierPrice {
            service_tier,
            price,
            tiers: Vec::new(),
        }
    }
}

/// What a request can be billed for, to estimate its most: its input tokens,
/// its output limit, the web searches it may run, and the service tier,
/// region and speed it may be billed at (`None`: any).
///
/// ```
/// use budgetgate::pricing::{Limits, PriceTable, ServiceTier};
/// let t = PriceTable::builtin();
/// // gpt-4o at standard prices only, against any tier (priority is dearer).
/// let standard = t.estimate_for("gpt-4o", &Limits::new(1_000, 500).service_tier(ServiceTier::Standard))?;
/// let any = t.estimate_for("gpt-4o", &Limits::new(1_000, 500))?;
/// assert!(standard < any);
/// assert_eq!(any, t.estimate("gpt-4o", 1_000, 500)?);
/// # Ok::<(), budgetgate::pricing::PricingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Limits {
    /// Input tokens (at most).
    pub input_tokens: u64,
    /// Output tokens (at most).
    pub max_output_tokens: u64,
    /// Web searches (at most), e.g. the search tool's `max_uses`.
    pub max_web_searches: u64,
    /// The service tier it is billed at (`None`: any the model has).
    pub service_tier: Option<ServiceTier>,
    /// The region it is processed in (`None`: any).
    pub region: Option<Region>,
    /// Its speed (`None`: fast too, where the model prices it).
    pub speed: Option<Speed>,
}

impl Limits {
    /// A request of `input_tokens` and at most `max_output_tokens`, billed
    /// at any tier, region and speed, without web searches.
    pub fn new(input_tokens: u64, max_output_tokens: u64) -> Self {
        Limits {
            input_tokens,
            max_output_tokens,
            ..Limits::default()
        }
    }

    /// With up to `n` web searches.
    pub fn web_searches(mut self, n: u64) -> Self {
        self.max_web_searches = n;
        self
    }

    /// Billed at `tier` only.
    pub fn service_tier(mut self, tier: ServiceTier) -> Self {
        self.service_tier = Some(tier);
        self
    }

    /// Processed in `region` only.
    pub fn region(mut self, region: Region) -> Self {
        self.region = Some(region);
        self
    }

    /// At `speed` only.
    pub fn speed(mut self, speed: Speed) -> Self {
        self.speed = Some(speed);
        self
    }
}

/// The prices that apply to a whole request above a number of input tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceTier {
    /// The tier applies when a request has strictly more input tokens.
    pub above_input_tokens: u64,
    /// Its prices (`None`s fall back within the tier, as [`TokenPrices`] says).
    pub price: TokenPrices,
}

/// Per-token prices by token kind: of a model ([`ModelPrice::base`]), of a
/// long-context tier ([`PriceTier::price`]) or of a service tier
/// ([`ServiceTierPrice::price`]).
///
/// `None` prices fall back within the same prices: cached input, cache
/// writes and audio input to the input price, one-hour cache writes to the
/// (five-minute) cache-write price, reasoning and audio output to the output
/// price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenPrices {
    /// Per input token.
    pub input: Decimal,
    /// Per output token.
    pub output: Decimal,
    /// Per cached input token (`None`: the input price).
    pub cached_input: Option<Decimal>,
    /// Per input token written to the prompt cache, the default five-minute
    /// cache (`None`: the input price).
    pub cache_write: Option<Decimal>,
    /// Per input token written to the one-hour cache (`None`: `cache_write`).
    pub cache_write_1h: Option<Decimal>,
    /// Per reasoning (thinking) output token (`None`: the output price).
    pub reasoning_output: Option<Decimal>,
    /// Per audio input token (`None`: the input price).
    pub audio_input: Option<Decimal>,
    /// Per cached audio input token (`None`: the cached input price, as
    /// LiteLLM falls back).
    pub cached_audio_input: Option<Decimal>,
    /// Per audio output token (`None`: the output price).
    pub audio_output: Option<Decimal>,
}

impl TokenPrices {
    /// From prices per million tokens, as providers publish them.
    pub fn per_million(input: Decimal, output: Decimal) -> Self {
        TokenPrices {
            input: input / MILLION,
            output: output / MILLION,
            ..TokenPrices::default()
        }
    }

    /// With a price per million cached input tokens.
    pub fn cached_per_million(mut self, cached: Decimal) -> Self {
        self.cached_input = Some(cached / MILLION);
        self
    }

    /// With a price per million cache-write tokens.
    pub fn cache_write_per_million(mut self, write: Decimal) -> Self {
        self.cache_write = Some(write / MILLION);
        self
    }

    /// With a price per million one-hour cache-write tokens.
    pub fn cache_write_1h_per_million(mut self, write: Decimal) -> Self {
        self.cache_write_1h = Some(write / MILLION);
        self
    }

    fn rates(&self) -> Rates {
        let write = self.cache_write.unwrap_or(self.input);
        let cached = self.cached_input.unwrap_or(self.input);
        Rates {
            input: self.input,
            output: self.output,
            cached,
            cached_audio: self.cached_audio_input.unwrap_or(cached),
            write_5m: write,
            write_1h: self.cache_write_1h.unwrap_or(write),
            reasoning: self.reasoning_output.unwrap_or(self.output),
            audio_in: self.audio_input.unwrap_or(self.input),
            audio_out: self.audio_output.unwrap_or(self.output),
        }
    }
}

/// The prices a request with `input_tokens` pays within one schedule: the
/// tier with the highest threshold strictly below `input_tokens`, else `base`.
fn pick_tier(base: TokenPrices, tiers: &[PriceTier], input_tokens: u64) -> TokenPrices {
    tiers
        .iter()
        .filter(|t| input_tokens > t.above_input_tokens)
        .max_by_key(|t| t.above_input_tokens)
        .map_or(base, |t| t.price)
}

/// Resolved per-token rates of one tier (no fallbacks left).
#[derive(Debug, Clone, Copy)]
struct Rates {
    input: Decimal,
    output: Decimal,
    cached: Decimal,
    cached_audio: Decimal,
    write_5m: Decimal,
    write_1h: Decimal,
    reasoning: Decimal,
    audio_in: Decimal,
    audio_out: Decimal,
}

impl Rates {
    /// The most one input token can cost (plain, cached, cache write, audio).
    fn max_input(&self) -> Decimal {
        [
            self.cached,
            self.cached_audio,
            self.write_5m,
            self.write_1h,
            self.audio_in,
        ]
        .into_iter()
        .fold(self.input, Decimal::max)
    }

    /// The most one output token can cost (plain, reasoning, audio).
    fn max_output(&self) -> Decimal {
        [self.reasoning, self.audio_out]
            .into_iter()
            .fold(self.output, Decimal::max)
    }
}

impl ModelPrice {
    /// From prices per million tokens, as providers publish them.
    ///
    /// ```
    /// use budgetgate::pricing::ModelPrice;
    /// use budgetgate::dec;
    /// let p = ModelPrice::per_million(dec!(2.50), dec!(10.00));
    /// assert_eq!(p.base.input, dec!(0.0000025));
    /// ```
    pub fn per_million(input: Decimal, output: Decimal) -> Self {
        ModelPrice::from(TokenPrices::per_million(input, output))
    }

    /// With a price per million cached input tokens.
    pub fn cached_per_million(mut self, cached: Decimal) -> Self {
        self.base = self.base.cached_per_million(cached);
        self
    }

    /// With a price per million cache-write input tokens.
    pub fn cache_write_per_million(mut self, write: Decimal) -> Self {
        self.base = self.base.cache_write_per_million(write);
        self
    }

    /// With a price per million one-hour cache-write input tokens.
    pub fn cache_write_1h_per_million(mut self, write: Decimal) -> Self {
        self.base = self.base.cache_write_1h_per_million(write);
        self
    }

    /// With a price per request.
    pub fn per_request(mut self, price: Decimal) -> Self {
        self.per_request = Some(price);
        self
    }

    /// With a price per web search.
    ///
    /// ```
    /// use budgetgate::pricing::{ModelPrice, PriceTable, Usage};
    /// use budgetgate::dec;
    /// // $10 per 1,000 searches.
    /// let p = ModelPrice::per_million(dec!(3), dec!(15)).per_web_search(dec!(0.01));
    /// let mut t = PriceTable::new();
    /// t.insert("claude", p);
    /// let usage = Usage { web_search_requests: 2, ..Usage::new(1_000, 100) };
    /// // 0.003 + 0.0015 for the tokens, 0.02 for the searches.
    /// assert_eq!(t.cost("claude", &usage)?, dec!(0.0245));
    /// # Ok::<(), budgetgate::pricing::PricingError>(())
    /// ```
    pub fn per_web_search(mut self, price: Decimal) -> Self {
        self.per_web_search = Some(price);
        self
    }

    /// With the most output tokens one response can have.
    pub fn max_output_tokens(mut self, tokens: u64) -> Self {
        self.max_output_tokens = Some(tokens);
        self
    }

    /// With the factor of the token prices for batch usage.
    pub fn batch_multiplier(mut self, factor: Decimal) -> Self {
        self.batch_multiplier = Some(factor);
        self
    }

    /// The factor of the standard token prices for usage of `tier`, when
    /// the model has no prices of that tier's own
    /// ([`ModelPrice::service_tiers`]).
    pub fn tier_multiplier(&self, tier: ServiceTier) -> Decimal {
        match tier {
            ServiceTier::Batch => self.batch_multiplier.unwrap_or(HALF),
            ServiceTier::Standard | ServiceTier::Priority | ServiceTier::Flex => Decimal::ONE,
        }
    }

    /// The prices `tier` is billed at: its long-context base and tiers, and
    /// the factor they are multiplied by.
    fn schedule(&self, tier: ServiceTier) -> (TokenPrices, &[PriceTier], Decimal) {
        match self.service_tiers.iter().find(|s| s.service_tier == tier) {
            Some(s) => (s.price, &s.tiers, Decimal::ONE),
            None => (self.base, &self.tiers, self.tier_multiplier(tier)),
        }
    }

    /// The factor of the token prices in `region`.
    pub fn region_multiplier(&self, region: Region) -> Decimal {
        self.region_multipliers
            .iter()
            .find(|(r, _)| *r == region)
            .map_or(Decimal::ONE, |(_, m)| *m)
    }

    /// The factor of the token prices at `speed`.
    fn speed_multiplier(&self, model: &str, speed: Speed) -> Result<Decimal, PricingError> {
        match speed {
            Speed::Standard => Ok(Decimal::ONE),
            Speed::Fast => self.fast_multiplier.ok_or_else(|| PricingError::Unpriced {
                model: model.to_owned(),
                reason: "fast-mode usage, and no fast multiplier".into(),
            }),
        }
    }

    /// The per-call fees: per request, and per search for `searches` searches.
    fn fees(&self, model: &str, searches: u64) -> Result<Decimal, PricingError> {
        let per_request = self.per_request.unwrap_or_default();
        if searches == 0 {
            return Ok(per_request);
        }
        let per_search = self.per_web_search.ok_or_else(|| PricingError::Unpriced {
            model: model.to_owned(),
            reason: format!("{searches} web searches, and no per-web-search price"),
        })?;
        Decimal::from(searches)
            .checked_mul(per_search)
            .and_then(|s| s.checked_add(per_request))
            .ok_or_else(|| PricingError::Overflow(model.to_owned()))
    }

    /// With a long-context tier: `price` for requests of more than
    /// `input_tokens` input tokens.
    ///
    /// ```
    /// use budgetgate::pricing::{ModelPrice, TokenPrices};
    /// use budgetgate::dec;
    /// // gemini-2.5-pro: 1.25 / 10 per million, 2.50 / 15 above 200k.
    /// let p = ModelPrice::per_million(dec!(1.25), dec!(10))
    ///     .above_input_tokens(200_000, TokenPrices::per_million(dec!(2.50), dec!(15)));
    /// assert_eq!(p.tier_for(200_000).input, dec!(0.00000125));
    /// assert_eq!(p.tier_for(200_001).input, dec!(0.0000025));
    /// ```
    pub fn above_input_tokens(mut self, input_tokens: u64, price: TokenPrices) -> Self {
        self.tiers.push(PriceTier {
            above_input_tokens: input_tokens,
            price,
        });
        self
    }

    /// The prices a request with `input_tokens` input tokens pays: the tier
    /// with the highest threshold strictly below `input_tokens`, else the base.
    pub fn tier_for(&self, input_tokens: u64) -> TokenPrices {
        pick_tier(self.base, &self.tiers, input_tokens)
    }

    /// The exact cost of `usage`, rounded up to 10⁻⁹: its tokens at the
    /// prices of its tier, times its service tier's multiplier, plus the
    /// per-call fees.
    pub(crate) fn cost(&self, model: &str, usage: &Usage) -> Result<Decimal, PricingError> {
        let parts = usage.parts()?;
        let (base, tiers, factor) = self.schedule(usage.service_tier);
        let r = pick_tier(base, tiers, usage.input_tokens).rates();
        let factor = [
            self.region_multiplier(usage.region),
            self.speed_multiplier(model, usage.speed)?,
        ]
        .into_iter()
        .try_fold(factor, |f, m| f.checked_mul(m))
        .ok_or_else(|| PricingError::Overflow(model.to_owned()))?;
        let overflow = || PricingError::Overflow(model.to_owned());
        let terms = [
            (parts.plain_input, r.input),
            (parts.cached, r.cached),
            (parts.cached_audio, r.cached_audio),
            (parts.write_5m, r.write_5m),
            (parts.write_1h, r.write_1h),
            (parts.audio_input, r.audio_in),
            (parts.plain_output, r.output),
            (parts.reasoning, r.reasoning),
            (parts.audio_output, r.audio_out),
        ];
        let mut tokens_cost = Decimal::ZERO;
        for (tokens, rate) in terms {
            tokens_cost = Decimal::from(tokens)
                .checked_mul(rate)
                .and_then(|c| tokens_cost.checked_add(c))
                .ok_or_else(overflow)?;
        }
        let fees = self.fees(model, usage.web_search_requests)?;
        let total = tokens_cost
            .checked_mul(factor)
            .and_then(|t| t.checked_add(fees))
            .ok_or_else(overflow)?;
        Ok(round_up(total))
    }

    /// The most a request within `limits` can cost, however its input
    /// splits into plain, cached and cache-write tokens and its output into
    /// plain, reasoning and audio tokens, whichever long-context tier it
    /// reaches, and at the dearest service tier, region and speed the limits
    /// allow: the amount to reserve.
    pub(crate) fn estimate(&self, model: &str, limits: &Limits) -> Result<Decimal, PricingError> {
        let overflow = || PricingError::Overflow(model.to_owned());
        let service_tiers: &[ServiceTier] = match &limits.service_tier {
            Some(t) => std::slice::from_ref(t),
            None => &[
                ServiceTier::Standard,
                ServiceTier::Priority,
                ServiceTier::Flex,
                ServiceTier::Batch,
            ],
        };
        let mut most = Decimal::ZERO;
        for tier in service_tiers {
            let (base, tiers, factor) = self.schedule(*tier);
            // Every long-context tier a request of up to `input_tokens` can
            // be billed at.
            let reachable = std::iter::once(base).chain(
                tiers
                    .iter()
                    .filter(|t| limits.input_tokens > t.above_input_tokens)
                    .map(|t| t.price),
            );
            for price in reachable {
                let r = price.rates();
                let cost = Decimal::from(limits.input_tokens)
                    .checked_mul(r.max_input())
                    .zip(Decimal::from(limits.max_output_tokens).checked_mul(r.max_output()))
                    .and_then(|(i, o)| i.checked_add(o))
                    .and_then(|c| c.checked_mul(factor))
                    .ok_or_else(overflow)?;
                most = most.max(cost);
            }
        }
        let region = match limits.region {
            Some(r) => self.region_multiplier(r),
            None => self
                .region_multipliers
                .iter()
                .map(|(_, m)| *m)
                .fold(Decimal::ONE, Decimal::max),
        };
        let speed = match limits.speed {
            Some(s) => self.speed_multiplier(model, s)?,
            None => self
                .fast_multiplier
                .unwrap_or(Decimal::ONE)
                .max(Decimal::ONE),
        };
        let fees = self.fees(model, limits.max_web_searches)?;
        let total = most
            .checked_mul(region)
            .and_then(|m| m.checked_mul(speed))
            .and_then(|m| m.checked_add(fees))
            .ok_or_else(overflow)?;
        Ok(round_up(total))
    }
}
