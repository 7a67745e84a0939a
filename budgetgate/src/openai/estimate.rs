//! The worst case of a chat completion request, and the true cost of its
//! response.

use async_openai::types::chat::{
    CompletionUsage, CreateChatCompletionRequest, CreateChatCompletionResponse,
    ServiceTier as OpenAiServiceTier,
};
use rust_decimal::Decimal;

use super::count::{self, Encoding};
use super::EstimateError;
use crate::pricing::{Limits, PriceTable, PricingError, Region, ServiceTier, Usage, UsageError};

/// Where the output-token limit of an [`Estimate`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputLimit {
    /// The request's `max_completion_tokens`.
    MaxCompletionTokens,
    /// The request's deprecated `max_tokens`.
    MaxTokens,
    /// Neither was set: the model's most output tokens, from the price
    /// table ([`ModelPrice::max_output_tokens`](crate::pricing::ModelPrice::max_output_tokens)).
    ModelMaximum,
}

/// The worst case of one chat completion request: what it can be billed at
/// most, and the counts it is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Estimate {
    /// The model, as the request names it (what both the estimate and the
    /// actual cost are priced as).
    pub model: String,
    /// The encoding the prompt was counted in.
    pub encoding: Encoding,
    /// The prompt tokens, counted on the high side (see the module docs).
    pub prompt_tokens: u64,
    /// The output-token limit of each choice.
    pub max_output_tokens: u64,
    /// Where that limit came from.
    pub output_limit: OutputLimit,
    /// The number of choices (`n`, 1 when unset).
    pub choices: u64,
    /// The tokens of a Predicted Output (billed as output when rejected).
    pub prediction_tokens: u64,
    /// The service tier the request asks for (`None`: `auto` or unset, so
    /// any tier the model has, the dearest counted).
    pub service_tier: Option<ServiceTier>,
    /// The region assumed (`None`: any, the dearest counted).
    pub region: Option<Region>,
    /// The most the call can cost: the amount to reserve.
    pub cost: Decimal,
    /// When fit to remaining lowered the output limit: the limit before.
    pub fitted_from: Option<u64>,
}

impl Estimate {
    /// The output tokens the whole call can be billed for: every choice's
    /// limit and the prediction.
    pub fn max_billed_output_tokens(&self) -> u64 {
        self.max_output_tokens
            .saturating_mul(self.choices)
            .saturating_add(self.prediction_tokens)
    }

    pub(crate) fn limits(&self, max_output_tokens: u64) -> Limits {
        let mut limits = Limits::new(
            self.prompt_tokens,
            max_output_tokens
                .saturating_mul(self.choices)
                .saturating_add(self.prediction_tokens),
        );
        limits.service_tier = self.service_tier;
        limits.region = self.region;
        limits
    }

    /// The cost of this request with each choice limited to
    /// `max_output_tokens` instead.
    pub(crate) fn cost_with(
        &self,
        table: &PriceTable,
        max_output_tokens: u64,
    ) -> Result<Decimal, PricingError> {
        table.estimate_for(&self.model, &self.limits(max_output_tokens))
    }

    /// The largest output limit per choice, up to this estimate's, whose
    /// worst case is at most `remaining` (`None`: not even zero output
    /// tokens fit). The worst case grows with the limit, so this is the
    /// floor of (remaining − prompt cost) / output price, found exactly by
    /// bisection over the table's own arithmetic (tiers, multipliers and
    /// rounding included).
    pub(crate) fn fit(
        &self,
        table: &PriceTable,
        remaining: Decimal,
    ) -> Result<Option<(u64, Decimal)>, PricingError> {
        let zero = self.cost_with(table, 0)?;
        if zero > remaining {
            return Ok(None);
        }
        let (mut fits, mut over) = (0u64, self.max_output_tokens.saturating_add(1));
        let mut fits_cost = zero;
        while over - fits > 1 {
            let mid = fits + (over - fits) / 2;
            let cost = self.cost_with(table, mid)?;
            if cost <= remaining {
                (fits, fits_cost) = (mid, cost);
            } else {
                over = mid;
            }
        }
        Ok(Some((fits, fits_cost)))
    }
}

/// Options of an estimate beyond the request itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Assume {
    pub(crate) region: Option<Region>,
}

/// The price tier of an OpenAI tier name: `None` for `auto` (not a tier:
/// the project's default, which may be any) and for `fast` (which the
/// price table does not know).
fn known_tier(tier: &OpenAiServiceTier) -> Option<ServiceTier> {
    match tier {
        OpenAiServiceTier::Default | OpenAiServiceTier::Scale => Some(ServiceTier::Standard),
        OpenAiServiceTier::Flex => Some(ServiceTier::Flex),
        OpenAiServiceTier::Priority => Some(ServiceTier::Priority),
        OpenAiServiceTier::Auto | OpenAiServiceTier::Fast => None,
    }
}

/// The billing tier a request asks for: `None` (the dearest is assumed)
/// when unset or not known.
fn requested_tier(tier: Option<&OpenAiServiceTier>) -> Option<ServiceTier> {
    known_tier(tier?)
}

pub(crate) fn estimate_in(
    table: &PriceTable,
    request: &CreateChatCompletionRequest,
    assume: Assume,
) -> Result<Estimate, EstimateError> {
    let model = request.model.as_str();
    if request.web_search_options.is_some() {
        return Err(EstimateError::Uncountable {
            what: "web_search_options (searches are billed per call, and their results as input)",
            message: None,
        });
    }
    let encoding = Encoding::for_model(model)?;
    let prompt_tokens = count::prompt_tokens(encoding, request)?;
    #[allow(deprecated)]
    let (max_output_tokens, output_limit) =
        match (request.max_completion_tokens, request.max_tokens) {
            (Some(n), _) => (u64::from(n), OutputLimit::MaxCompletionTokens),
            (None, Some(n)) => (u64::from(n), OutputLimit::MaxTokens),
            (None, None) => match table.price(model)?.max_output_tokens {
                Some(n) => (n, OutputLimit::ModelMaximum),
                None => {
                    return Err(EstimateError::NoOutputLimit {
                        model: model.to_owned(),
                    })
                }
            },
        };
    let mut estimate = Estimate {
        model: model.to_owned(),
        encoding,
        prompt_tokens,
        max_output_tokens,
        output_limit,
        choices: u64::from(request.n.unwrap_or(1).max(1)),
        prediction_tokens: count::prediction_tokens(encoding, request),
        service_tier: requested_tier(request.service_tier.as_ref()),
        region: assume.region,
        cost: Decimal::ZERO,
        fitted_from: None,
    };
    estimate.cost = estimate.cost_with(table, max_output_tokens)?;
    Ok(estimate)
}

/// `usage` at the service tier a response says it was billed at, in `region`.
pub(crate) fn usage_of(
    usage: Option<&CompletionUsage>,
    tier: Option<&OpenAiServiceTier>,
    region: Option<Region>,
) -> Result<Usage, PricingError> {
    let usage = usage.ok_or(UsageError::Missing {
        parser: "OpenAI chat",
        field: "usage",
        keys: Vec::new(),
    })?;
    let mut u = Usage::try_from(usage)?;
    match tier {
        // `auto` is what a request asks, not what a response was billed at.
        None | Some(OpenAiServiceTier::Auto) => {}
        // A tier the price table does not know is priced at the dearest
        // it knows, never below.
        Some(tier) => u.service_tier = known_tier(tier).unwrap_or(ServiceTier::Priority),
    }
    u.region = region.unwrap_or_default();
    Ok(u)
}

pub(crate) fn cost_in(
    table: &PriceTable,
    model: &str,
    response: &CreateChatCompletionResponse,
    region: Option<Region>,
) -> Result<Decimal, PricingError> {
    let usage = usage_of(
        response.usage.as_ref(),
        response.service_tier.as_ref(),
        region,
    )?;
    table.cost(model, &usage)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_response_is_priced_at_the_tier_it_reports() {
        let usage = CompletionUsage {
            prompt_tokens: 10,
            completion_tokens: 5,
            total_tokens: 15,
            prompt_tokens_details: None,
            completion_tokens_details: None,
        };
        let tier = |t: Option<OpenAiServiceTier>| {
            usage_of(Some(&usage), t.as_ref(), None)
                .unwrap()
                .service_tier
        };
        assert_eq!(tier(None), ServiceTier::Standard);
        assert_eq!(tier(Some(OpenAiServiceTier::Auto)), ServiceTier::Standard);
        assert_eq!(
            tier(Some(OpenAiServiceTier::Default)),
            ServiceTier::Standard
        );
        assert_eq!(tier(Some(OpenAiServiceTier::Flex)), ServiceTier::Flex);
        // Unknown to the price table (it used to fail the whole cost).
        assert_eq!(tier(Some(OpenAiServiceTier::Fast)), ServiceTier::Priority);
    }

    use super::*;
    use crate::pricing::ModelPrice;
    use rust_decimal_macros::dec;
    use serde_json::json;

    fn request(v: serde_json::Value) -> CreateChatCompletionRequest {
        serde_json::from_value(v).unwrap()
    }

    fn hello(extra: serde_json::Value) -> CreateChatCompletionRequest {
        let mut v = json!({"model": "gpt-4o-mini",
                           "messages": [{"role": "user", "content": "hello"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        request(v)
    }

    fn estimate(r: &CreateChatCompletionRequest) -> Result<Estimate, EstimateError> {
        estimate_in(&PriceTable::builtin(), r, Assume::default())
    }

    #[test]
    fn choices_and_predictions_are_billed_output() {
        let one = estimate(&hello(json!({"max_completion_tokens": 100}))).unwrap();
        assert_eq!(
            (one.prompt_tokens, one.max_billed_output_tokens()),
            (8, 100)
        );
        let three = estimate(&hello(json!({"max_completion_tokens": 100, "n": 3}))).unwrap();
        assert_eq!(three.max_billed_output_tokens(), 300);
        let predicted = estimate(&hello(json!({"max_completion_tokens": 100,
            "prediction": {"type": "content", "content": "hello world"}})))
        .unwrap();
        assert_eq!(predicted.prediction_tokens, 2);
        assert_eq!(predicted.max_billed_output_tokens(), 102);
        assert!(three.cost > predicted.cost && predicted.cost > one.cost);
    }

    #[test]
    fn names_tools_and_schemas_are_counted() {
        let plain = estimate(&hello(json!({}))).unwrap().prompt_tokens;
        let named = request(json!({"model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hello", "name": "ann"}]}));
        assert_eq!(estimate(&named).unwrap().prompt_tokens, plain + 1 + 1);
        let tools = hello(json!({"tools": [{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]}));
        let with_tools = estimate(&tools).unwrap().prompt_tokens;
        assert!(with_tools > plain + count::TOOLS_BLOCK_TOKENS + count::TOKENS_PER_TOOL);
        let schema = hello(
            json!({"response_format": {"type": "json_schema", "json_schema": {
            "name": "City", "schema": {"type": "object"}}}}),
        );
        assert!(estimate(&schema).unwrap().prompt_tokens > plain + count::TOOLS_BLOCK_TOKENS);
    }

    #[test]
    fn what_cannot_be_counted_is_refused() {
        let image = request(json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "image_url",
                                          "image_url": {"url": "data:image/png;base64,AA=="}}]}]}));
        assert_eq!(
            estimate(&image),
            Err(EstimateError::Uncountable {
                what: "an image_url content part",
                message: Some(1)
            })
        );
        let search = hello(json!({"web_search_options": {}}));
        assert!(matches!(
            estimate(&search),
            Err(EstimateError::Uncountable { message: None, .. })
        ));
        let claude = request(json!({"model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "hi"}]}));
        assert!(matches!(
            estimate(&claude),
            Err(EstimateError::UnknownTokenizer { .. })
        ));
    }

    #[test]
    fn no_limit_takes_the_models_own_or_is_refused() {
        let e = estimate(&hello(json!({}))).unwrap();
        assert_eq!(
            (e.max_output_tokens, e.output_limit),
            (16_384, OutputLimit::ModelMaximum)
        );
        let mut t = PriceTable::new();
        t.insert(
            "gpt-4o-mini",
            ModelPrice::per_million(dec!(0.15), dec!(0.60)),
        );
        assert_eq!(
            estimate_in(&t, &hello(json!({})), Assume::default()),
            Err(EstimateError::NoOutputLimit {
                model: "gpt-4o-mini".into()
            })
        );
        let legacy = estimate_in(&t, &hello(json!({"max_tokens": 10})), Assume::default());
        assert_eq!(legacy.unwrap().output_limit, OutputLimit::MaxTokens);
    }

    #[test]
    fn a_requested_tier_and_region_narrow_the_estimate() {
        let any = estimate(&hello(json!({"max_completion_tokens": 100}))).unwrap();
        let standard = hello(json!({"max_completion_tokens": 100, "service_tier": "default"}));
        let standard = estimate_in(
            &PriceTable::builtin(),
            &standard,
            Assume {
                region: Some(Region::Global),
            },
        )
        .unwrap();
        // 8 × 0.15/M + 100 × 0.60/M, against priority and FedRAMP's 1.1×.
        assert_eq!(standard.cost, dec!(0.0000612));
        assert_eq!(any.cost, dec!(0.0001122));
    }

    #[test]
    fn fit_finds_the_largest_limit_within_the_remaining() {
        let e = estimate(&hello(json!({"max_completion_tokens": 1000}))).unwrap();
        let t = PriceTable::builtin();
        for remaining in [dec!(0.00008), dec!(0.0005), dec!(0.0000123)] {
            let (k, cost) = e.fit(&t, remaining).unwrap().unwrap();
            assert!(cost <= remaining && cost == e.cost_with(&t, k).unwrap());
            assert!(
                e.cost_with(&t, k + 1).unwrap() > remaining,
                "{remaining}: {k}"
            );
        }
        // Everything fits: the limit as it was.
        assert_eq!(e.fit(&t, dec!(1)).unwrap().unwrap().0, 1000);
        // Not even the prompt.
        assert_eq!(e.fit(&t, dec!(0.000001)).unwrap(), None);
    }

    #[test]
    fn usage_is_priced_at_the_tier_the_response_reports() {
        let u = CompletionUsage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            total_tokens: 1100,
            ..Default::default()
        };
        let priority = usage_of(Some(&u), Some(&OpenAiServiceTier::Priority), None).unwrap();
        assert_eq!(priority.service_tier, ServiceTier::Priority);
        let auto = usage_of(Some(&u), Some(&OpenAiServiceTier::Auto), None).unwrap();
        assert_eq!(auto.service_tier, ServiceTier::Standard);
        assert!(matches!(
            usage_of(None, None, None),
            Err(PricingError::Usage(UsageError::Missing { .. }))
        ));
    }
}
