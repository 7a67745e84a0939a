//! The loader of LiteLLM's `model_prices_and_context_window.json`.
//!
//! Read per entry:
//!
//! * base prices: `input_cost_per_token`, `output_cost_per_token`,
//!   `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
//!   `cache_creation_input_token_cost_above_1hr`,
//!   `output_cost_per_reasoning_token`, `input_cost_per_audio_token`,
//!   `cache_read_input_audio_token_cost`,
//!   `output_cost_per_audio_token`, `input_cost_per_request`;
//! * the per-web-search price: `search_context_cost_per_query`, an object of
//!   `search_context_size_low` / `_medium` / `_high` prices per search; the
//!   highest price it gives, since usage does not say the search context
//!   size (LiteLLM's cost function assumes medium; 5 entries of LiteLLM
//!   1.110.2 price the sizes apart);
//! * long-context tiers, either as flat keys — each of those names with
//!   `_above_<N>k_tokens` / `_above_<N>_tokens` (e.g.
//!   `input_cost_per_token_above_200k_tokens`; a price the tier does not name
//!   is the base one) — or as a `tiered_pricing` array of
//!   `{"range": [start, end], "input_cost_per_token": …, …}` (contiguous ranges
//!   from 0; the last end may be `null`; a tier's cache prices default to its
//!   input price, its output price to the entry's). When both are present,
//!   `tiered_pricing` wins, as in LiteLLM. A threshold is the tier's start:
//!   the tier applies above it (for `xai` entries, from it on, as LiteLLM).
//! * service tiers: `_priority`, `_flex` and `_batches` versions of those
//!   keys (`input_cost_per_token_priority`,
//!   `input_cost_per_token_above_200k_tokens_priority`, …), as
//!   [`ServiceTierPrice`]s; a price a tier does not name is the standard one;
//! * multipliers: `provider_specific_entry` (`us`, `eu`, `fast`),
//!   `regional_processing_uplift_multiplier_us` / `_eu`,
//!   `fedramp_uplift_multiplier`, `regional_endpoint_uplift_multiplier`
//!   ([`Region`], [`ModelPrice::fast_multiplier`]);
//! * `alias_of`: an entry without prices of its own that names the entry it
//!   is priced as;
//! * not a price: `max_output_tokens`, the most output tokens a response can
//!   have ([`ModelPrice::max_output_tokens`]; a value that is not a whole
//!   number of tokens is left out, never guessed).
//!
//! Prices are read from the JSON text itself, exactly (`9.499999999999999e-07`
//! is 0.0000009499999999999999), never through `f64`.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde_json::value::RawValue;

use super::{abbreviate, ModelPrice, PriceTable, PricingError, Region, ServiceTier, TokenPrices};
use crate::pricing::{PriceTier, ServiceTierPrice};

/// Why an entry of a LiteLLM file is not in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkipReason {
    /// `sample_spec`: the file's description of its own schema.
    #[error("the schema's description, not a model")]
    SchemaDescription,
    /// The entry is not a JSON object.
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    /// No token prices (images, audio seconds, subscriptions, …).
    #[error("no {missing} (mode {mode:?})")]
    NoTokenPrice {
        /// The first price key it lacks.
        missing: &'static str,
        /// Its `mode`, if any (`image_generation`, `audio_transcription`, …).
        mode: Option<String>,
    },
    /// A price that is not a non-negative number that a decimal holds exactly.
    #[error("{key}: {text} {problem}")]
    BadPrice {
        /// The key.
        key: String,
        /// The JSON text of its value.
        text: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A `tiered_pricing` array that cannot be read.
    #[error("tiered_pricing: {0}")]
    BadTiers(String),
    /// `alias_of` names no priced entry.
    #[error("alias_of {0:?}, which has no price")]
    AliasTargetMissing(String),
}

/// What loading a LiteLLM price file did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// Entries with token prices, now in the table.
    pub loaded: usize,
    /// `alias_of` entries, now aliases: `(alias, model)`.
    pub aliased: Vec<(String, String)>,
    /// Entries not in the table, by name, with why (name order). Their names
    /// are known to the table, which refuses to price them
    /// ([`PricingError::Unpriced`]) rather than through another name.
    pub skipped: Vec<(String, SkipReason)>,
}

const INPUT: &str = "input_cost_per_token";
const OUTPUT: &str = "output_cost_per_token";
const CACHE_READ: &str = "cache_read_input_token_cost";
const CACHE_WRITE: &str = "cache_creation_input_token_cost";
const CACHE_WRITE_1H: &str = "cache_creation_input_token_cost_above_1hr";
const REASONING: &str = "output_cost_per_reasoning_token";
const AUDIO_IN: &str = "input_cost_per_audio_token";
const CACHE_READ_AUDIO: &str = "cache_read_input_audio_token_cost";
const AUDIO_OUT: &str = "output_cost_per_audio_token";
/// The prices a flat `_above_<N>_tokens` key can tier.
const TIERED_KEYS: &[&str] = &[
    INPUT,
    OUTPUT,
    CACHE_READ,
    CACHE_WRITE,
    CACHE_WRITE_1H,
    REASONING,
    AUDIO_IN,
    CACHE_READ_AUDIO,
    AUDIO_OUT,
];

type Entry = BTreeMap<String, Box<RawValue>>;

impl PriceTable {
    /// Reads LiteLLM's `model_prices_and_context_window.json` format (see
    /// the module docs of `pricing::litellm` for the keys): the table, and a
    /// report of what was loaded, aliased and skipped, and why.
    pub fn from_litellm_json(json: &str) -> Result<(Self, LoadReport), PricingError> {
        let entries: BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(json).map_err(|e| PricingError::Table(e.to_string()))?;
        Ok(load(entries))
    }

    /// [`PriceTable::from_litellm_json`] from a reader.
    pub fn from_litellm_reader(
        reader: impl std::io::Read,
    ) -> Result<(Self, LoadReport), PricingError> {
        let entries: BTreeMap<String, Box<RawValue>> =
            serde_json::from_reader(reader).map_err(|e| PricingError::Table(e.to_string()))?;
        Ok(load(entries))
    }

    /// [`PriceTable::from_litellm_json`] from a file.
    pub fn from_litellm_path(
        path: impl AsRef<std::path::Path>,
    ) -> Result<(Self, LoadReport), PricingError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| PricingError::Table(format!("{}: {e}", path.display())))?;
        Self::from_litellm_reader(std::io::BufReader::new(file))
    }
}

fn load(entries: BTreeMap<String, Box<RawValue>>) -> (PriceTable, LoadReport) {
    let mut table = PriceTable::new();
    let mut report = LoadReport::default();
    let mut aliases: Vec<(String, String)> = Vec::new();
    let mut skipped: BTreeMap<String, SkipReason> = BTreeMap::new();
    for (model, raw) in entries {
        match read_entry(&model, &raw) {
            Ok(Read::Price(price)) => {
                table.models.insert(model, *price);
                report.loaded += 1;
            }
            Ok(Read::AliasOf(target)) => aliases.push((model, target)),
            Err(reason) => {
                skipped.insert(model, reason);
            }
        }
    }
    // Aliases of aliases resolve too, as long as one ends at a price.
    loop {
        let before = aliases.len();
        aliases.retain(|(alias, target)| {
            let resolved = if table.models.contains_key(target) {
                target.clone()
            } else if let Some(t) = table.aliases.get(target) {
                t.clone()
            } else {
                return true;
            };
            table.aliases.insert(alias.clone(), resolved.clone());
            report.aliased.push((alias.clone(), resolved));
            false
        });
        if aliases.is_empty() || aliases.len() == before {
            break;
        }
    }
    for (alias, target) in aliases {
        skipped.insert(alias, SkipReason::AliasTargetMissing(target));
    }
    report.aliased.sort();
    for (model, reason) in skipped {
        table.unpriced.insert(model.clone(), reason.to_string());
        report.skipped.push((model, reason));
    }
    (table, report)
}

enum Read {
    Price(Box<ModelPrice>),
    AliasOf(String),
}

fn read_entry(model: &str, raw: &RawValue) -> Result<Read, SkipReason> {
    if model == "sample_spec" {
        return Err(SkipReason::SchemaDescription);
    }
    let entry: Entry = serde_json::from_str(raw.get())
        .map_err(|_| SkipReason::NotAnObject(abbreviate(raw.get())))?;
    let price = |key: &str| price_in(&entry, key);
    let (input, output) = (price(INPUT)?, price(OUTPUT)?);
    let tiered = entry
        .get("tiered_pricing")
        .filter(|r| r.get() != "null")
        .map(|r| tiered_pricing(r, output))
        .transpose()?;
    let (input, output) = match (input, output, &tiered) {
        (Some(i), Some(o), _) => (i, o),
        (_, _, Some(tiers)) if !tiers.is_empty() => (tiers[0].price.input, tiers[0].price.output),
        (i, _, _) => {
            if let Some(target) = entry.get("alias_of") {
                return serde_json::from_str::<String>(target.get())
                    .map(Read::AliasOf)
                    .map_err(|_| SkipReason::BadPrice {
                        key: "alias_of".into(),
                        text: abbreviate(target.get()),
                        problem: "is not a model name",
                    });
            }
            let mode = entry
                .get("mode")
                .and_then(|m| serde_json::from_str::<String>(m.get()).ok());
            let missing = if i.is_none() { INPUT } else { OUTPUT };
            return Err(SkipReason::NoTokenPrice { missing, mode });
        }
    };
    let mut p = ModelPrice {
        base: token_prices(input, output, price)?,
        per_request: price("input_cost_per_request")?,
        per_web_search: search_price(&entry)?,
        batch_multiplier: None,
        tiers: Vec::new(),
        service_tiers: Vec::new(),
        region_multipliers: Vec::new(),
        fast_multiplier: None,
        max_output_tokens: token_count(&entry, "max_output_tokens"),
    };
    p.tiers = match tiered {
        Some(tiers) => tiers,
        None => flat_tiers(&entry, p.base, "")?,
    };
    for (suffix, tier) in SERVICE_TIERS {
        if let Some(s) = service_tier(&entry, suffix, *tier, &p)? {
            p.service_tiers.push(s);
        }
    }
    read_multipliers(&entry, &mut p)?;
    Ok(Read::Price(Box::new(p)))
}

/// LiteLLM's service-tier key suffixes (`input_cost_per_token_priority`, …).
const SERVICE_TIERS: &[(&str, ServiceTier)] = &[
    ("_priority", ServiceTier::Priority),
    ("_flex", ServiceTier::Flex),
    ("_batches", ServiceTier::Batch),
];

/// The prices of a service tier, if the entry has an input or output price
/// of its own for it (`input_cost_per_token_priority`, …). A price the tier
/// does not name is the standard one (as LiteLLM falls back), but for the
/// reasoning price of a tier with its own output price, which is that output
/// price, and the batch cache-write price, which is the batch input price
/// (LiteLLM's batch cost). Its long-context tiers: every threshold of the
/// standard prices or of the tier's own
/// (`input_cost_per_token_above_200k_tokens_priority`), each price the
/// tier's own above it, else the standard one above it (not for batch cache
/// writes), else the tier's base.
fn service_tier(
    entry: &Entry,
    suffix: &str,
    tier: ServiceTier,
    standard: &ModelPrice,
) -> Result<Option<ServiceTierPrice>, SkipReason> {
    let at = |key: &str| price_in(entry, &format!("{key}{suffix}"));
    let (input, output) = (at(INPUT)?, at(OUTPUT)?);
    if input.is_none() && output.is_none() {
        return Ok(None);
    }
    let b = standard.base;
    let price = TokenPrices {
        input: input.unwrap_or(b.input),
        output: output.unwrap_or(b.output),
        cached_input: at(CACHE_READ)?.or(b.cached_input),
        // Batch cache writes without a batch price are billed as batch
        // input, as LiteLLM's batch cost does.
        cache_write: match tier {
            ServiceTier::Batch => at(CACHE_WRITE)?,
            _ => at(CACHE_WRITE)?.or(b.cache_write),
        },
        cache_write_1h: at(CACHE_WRITE_1H)?.or(b.cache_write_1h),
        reasoning_output: at(REASONING)?.or(if output.is_some() {
            None
        } else {
            b.reasoning_output
        }),
        audio_input: at(AUDIO_IN)?.or(b.audio_input),
        cached_audio_input: at(CACHE_READ_AUDIO)?.or(b.cached_audio_input),
        audio_output: at(AUDIO_OUT)?.or(b.audio_output),
    };
    Ok(Some(ServiceTierPrice {
        service_tier: tier,
        price,
        tiers: flat_tiers(entry, price, suffix)?,
    }))
}

/// Region and speed multipliers: `provider_specific_entry` (`us`, `eu`:
/// Anthropic's `inference_geo`; `fast`: its fast mode),
/// `regional_processing_uplift_multiplier_us` / `_eu` (OpenAI's data
/// residency), `fedramp_uplift_multiplier`,
/// `regional_endpoint_uplift_multiplier` (Vertex AI regional endpoints). Two
/// multipliers of one region: the larger.
fn read_multipliers(entry: &Entry, p: &mut ModelPrice) -> Result<(), SkipReason> {
    let mut add = |region: Region, m: Option<Decimal>| {
        let Some(m) = m else { return };
        match p.region_multipliers.iter_mut().find(|(r, _)| *r == region) {
            Some((_, old)) => *old = (*old).max(m),
            None => p.region_multipliers.push((region, m)),
        }
    };
    const PSE: &str = "provider_specific_entry";
    let mut fast = None;
    if let Some(raw) = entry.get(PSE).filter(|r| r.get() != "null") {
        let pse: Entry = serde_json::from_str(raw.get()).map_err(|_| SkipReason::BadPrice {
            key: PSE.to_owned(),
            text: abbreviate(raw.get()),
            problem: "is not an object",
        })?;
        let at = |key: &str| {
            price_in(&pse, key).map_err(|e| match e {
                SkipReason::BadPrice { key, text, problem } => SkipReason::BadPrice {
                    key: format!("{PSE}.{key}"),
                    text,
                    problem,
                },
                other => other,
            })
        };
        add(Region::Us, at("us")?);
        add(Region::Eu, at("eu")?);
        fast = at("fast")?;
    }
    add(
        Region::Us,
        price_in(entry, "regional_processing_uplift_multiplier_us")?,
    );
    add(
        Region::Eu,
        price_in(entry, "regional_processing_uplift_multiplier_eu")?,
    );
    add(
        Region::FedRamp,
        price_in(entry, "fedramp_uplift_multiplier")?,
    );
    add(
        Region::RegionalEndpoint,
        price_in(entry, "regional_endpoint_uplift_multiplier")?,
    );
    p.fast_multiplier = fast;
    Ok(())
}

const SEARCH: &str = "search_context_cost_per_query";

/// The `search_context_cost_per_query` price: the highest one.
fn search_price(entry: &Entry) -> Result<Option<Decimal>, SkipReason> {
    let Some(raw) = entry.get(SEARCH).filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    let sizes: Entry = serde_json::from_str(raw.get()).map_err(|_| SkipReason::BadPrice {
        key: SEARCH.to_owned(),
        text: abbreviate(raw.get()),
        problem: "is not an object of prices per search context size",
    })?;
    let mut prices = Vec::new();
    for key in sizes.keys() {
        if let Some(p) = price_in(&sizes, key).map_err(|e| match e {
            SkipReason::BadPrice { key, text, problem } => SkipReason::BadPrice {
                key: format!("{SEARCH}.{key}"),
                text,
                problem,
            },
            other => other,
        })? {
            prices.push((key.as_str(), p));
        }
    }
    Ok(prices.iter().map(|(_, p)| *p).max())
}

/// The `_above_<N>_tokens` tiers: one per threshold any tiered key names,
/// over `base`. With a service-tier `suffix` (`_priority`, …), the
/// thresholds of the standard keys and of the suffixed ones
/// (`input_cost_per_token_above_200k_tokens_priority`), each price the
/// suffixed one, else the standard one above the threshold, else `base`'s.
///
/// xAI bills the higher tier once the prompt *reaches* the threshold
/// (LiteLLM's `threshold_is_inclusive` for `litellm_provider` `xai`): its
/// tiers apply above N − 1.
fn flat_tiers(
    entry: &Entry,
    base: TokenPrices,
    suffix: &str,
) -> Result<Vec<PriceTier>, SkipReason> {
    let inclusive = entry
        .get("litellm_provider")
        .and_then(|p| serde_json::from_str::<String>(p.get()).ok())
        .is_some_and(|p| p == "xai");
    let mut thresholds = BTreeSet::new();
    for key in entry.keys() {
        let key = match suffix {
            "" => key.as_str(),
            s => key.strip_suffix(s).unwrap_or(key),
        };
        if let Some((base_key, n)) = split_threshold(key) {
            if TIERED_KEYS.contains(&base_key) {
                thresholds.insert((n, key[base_key.len()..].to_owned()));
            }
        }
    }
    let mut tiers = Vec::new();
    for (n, above) in thresholds {
        let at = |key: &str| -> Result<Option<Decimal>, SkipReason> {
            let own = match suffix {
                "" => None,
                s => price_in(entry, &format!("{key}{above}{s}"))?,
            };
            if suffix == "_batches" && key == CACHE_WRITE {
                return Ok(own);
            }
            Ok(own.or(price_in(entry, &format!("{key}{above}"))?))
        };
        let b = base;
        tiers.push(PriceTier {
            above_input_tokens: if inclusive { n.saturating_sub(1) } else { n },
            price: TokenPrices {
                input: at(INPUT)?.unwrap_or(b.input),
                output: at(OUTPUT)?.unwrap_or(b.output),
                cached_input: at(CACHE_READ)?.or(b.cached_input),
                cache_write: at(CACHE_WRITE)?.or(b.cache_write),
                cache_write_1h: at(CACHE_WRITE_1H)?.or(b.cache_write_1h),
                reasoning_output: at(REASONING)?.or(b.reasoning_output),
                audio_input: at(AUDIO_IN)?.or(b.audio_input),
                cached_audio_input: at(CACHE_READ_AUDIO)?.or(b.cached_audio_input),
                audio_output: at(AUDIO_OUT)?.or(b.audio_output),
            },
        });
    }
    Ok(tiers)
}

/// `input_cost_per_token_above_200k_tokens` → (`input_cost_per_token`, 200000).
fn split_threshold(key: &str) -> Option<(&str, u64)> {
    let stem = key.strip_suffix("_tokens")?;
    let at = stem.rfind("_above_")?;
    let n = &stem[at + "_above_".len()..];
    let (digits, scale) = match n.strip_suffix('k') {
        Some(d) => (d, 1_000),
        None => (n, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = digits.parse::<u64>().ok()?.checked_mul(scale)?;
    Some((&key[..at], n))
}

/// A `tiered_pricing` array, as tiers above each range's start.
fn tiered_pricing(
    raw: &RawValue,
    model_output: Option<Decimal>,
) -> Result<Vec<PriceTier>, SkipReason> {
    let bad = |s: String| SkipReason::BadTiers(s);
    let tiers: Vec<Entry> = serde_json::from_str(raw.get()).map_err(|_| {
        bad(format!(
            "not an array of objects: {}",
            abbreviate(raw.get())
        ))
    })?;
    let mut out = Vec::new();
    let mut next_start = Some(0u64);
    for (i, tier) in tiers.iter().enumerate() {
        let range = tier
            .get("range")
            .and_then(|r| token_range(r))
            .ok_or_else(|| bad(format!("tier {i}: no [start, end] range of token counts")))?;
        let (Some(start), end) = (range[0], range[1]) else {
            return Err(bad(format!("tier {i}: no start")));
        };
        if Some(start) != next_start || end.is_some_and(|e| e <= start) {
            return Err(bad(format!(
                "tier {i}: range [{start}, {end:?}] does not continue from {next_start:?}"
            )));
        }
        next_start = end;
        let price = |key: &str| price_in(tier, key);
        let input = price(INPUT)?.ok_or_else(|| bad(format!("tier {i}: no {INPUT}")))?;
        let output = price(OUTPUT)?
            .or(model_output)
            .ok_or_else(|| bad(format!("tier {i}: no {OUTPUT}")))?;
        out.push(PriceTier {
            above_input_tokens: start,
            price: token_prices(input, output, price)?,
        });
    }
    Ok(out)
}

/// `[start, end]` as token counts (integral numbers, `1e6` and `256000.0`
/// included); `end` may be `null`.
fn token_range(raw: &RawValue) -> Option<[Option<u64>; 2]> {
    let items: Vec<Box<RawValue>> = serde_json::from_str(raw.get()).ok()?;
    let [start, end] = items.as_slice() else {
        return None;
    };
    let count = |r: &RawValue| -> Option<Option<u64>> {
        if r.get() == "null" {
            return Some(None);
        }
        let d = exact_decimal(r.get())?;
        (d.fract().is_zero() && !d.is_sign_negative())
            .then(|| u64::try_from(d.trunc()).ok())
            .flatten()
            .map(Some)
    };
    Some([count(start)?, count(end)?])
}

/// Token prices with `input` and `output` known and every other kind read
/// by `price` from its LiteLLM key (an entry's, or a tier's).
fn token_prices(
    input: Decimal,
    output: Decimal,
    price: impl Fn(&str) -> Result<Option<Decimal>, SkipReason>,
) -> Result<TokenPrices, SkipReason> {
    Ok(TokenPrices {
        input,
        output,
        cached_input: price(CACHE_READ)?,
        cache_write: price(CACHE_WRITE)?,
        cache_write_1h: price(CACHE_WRITE_1H)?,
        reasoning_output: price(REASONING)?,
        audio_input: price(AUDIO_IN)?,
        cached_audio_input: price(CACHE_READ_AUDIO)?,
        audio_output: price(AUDIO_OUT)?,
    })
}

/// A whole, non-negative token count (`16384`, `1e5`), else `None`.
fn token_count(entry: &Entry, key: &str) -> Option<u64> {
    let d = exact_decimal(entry.get(key)?.get())?;
    (d.fract().is_zero() && !d.is_sign_negative())
        .then(|| u64::try_from(d.trunc()).ok())
        .flatten()
}

fn price_in(entry: &Entry, key: &str) -> Result<Option<Decimal>, SkipReason> {
    let Some(raw) = entry.get(key) else {
        return Ok(None);
    };
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    let bad = |problem| SkipReason::BadPrice {
        key: key.to_owned(),
        text: abbreviate(text),
        problem,
    };
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(bad("is not a number"));
    }
    let d = exact_decimal(text).ok_or_else(|| bad("is not exactly a decimal of 28 digits"))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(bad("is negative"));
    }
    Ok(Some(d))
}

/// A JSON number's text as the decimal it says, exactly, or `None` if a
/// [`Decimal`] cannot hold it exactly.
pub(crate) fn exact_decimal(text: &str) -> Option<Decimal> {
    match text.split_once(['e', 'E']) {
        None => Decimal::from_str_exact(text).ok(),
        Some((mantissa, exp)) => {
            let m = Decimal::from_str_exact(mantissa).ok()?;
            let exp: i64 = exp.strip_prefix('+').unwrap_or(exp).parse().ok()?;
            let scale = i64::from(m.scale()) - exp;
            if scale >= 0 {
                let mut d = m;
                d.set_scale(u32::try_from(scale).ok()?).ok()?;
                Some(d)
            } else {
                let mut d = m;
                d.set_scale(0).ok()?;
                for _ in 0..(-scale).min(29) {
                    d = d.checked_mul(Decimal::TEN)?;
                }
                (-scale <= 29).then_some(d)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn thresholds_from_key_names() {
        assert_eq!(
            split_threshold("input_cost_per_token_above_200k_tokens"),
            Some(("input_cost_per_token", 200_000))
        );
        assert_eq!(
            split_threshold("output_cost_per_token_above_128000_tokens"),
            Some(("output_cost_per_token", 128_000))
        );
        assert_eq!(
            split_threshold("cache_creation_input_token_cost_above_1hr_above_272k_tokens"),
            Some(("cache_creation_input_token_cost_above_1hr", 272_000))
        );
        for not_a_tier in [
            "cache_creation_input_token_cost_above_1hr",
            "input_cost_per_token_above_200k_tokens_priority",
            "input_cost_per_token_above_k_tokens",
            "input_cost_per_token_above_99999999999999999999k_tokens",
            "max_tokens",
        ] {
            assert_eq!(split_threshold(not_a_tier), None, "{not_a_tier}");
        }
    }

    #[test]
    fn decimals_from_number_text() {
        for (text, want) in [
            (
                "9.499999999999999e-07",
                Some(dec!(0.0000009499999999999999)),
            ),
            ("1e-05", Some(dec!(0.00001))),
            ("1.5E+3", Some(dec!(1500))),
            ("0.3", Some(dec!(0.3))),
            ("12", Some(dec!(12))),
            ("1e-29", None),
            ("1e29", None),
            ("1.2.3", None),
            ("1e", None),
        ] {
            assert_eq!(exact_decimal(text), want, "{text}");
        }
    }
}
