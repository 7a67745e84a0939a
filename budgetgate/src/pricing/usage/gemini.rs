//! Google Gemini's `usageMetadata` and grounding searches.

use super::*;

impl Usage {
    /// Gemini's `usageMetadata` (or a response holding one):
    /// `promptTokenCount` (cached included) is required;
    /// `candidatesTokenCount`, `thoughtsTokenCount` (billed as output),
    /// `cachedContentTokenCount` and `toolUsePromptTokenCount` (billed as
    /// input) are read. Input is prompt + tool-use prompt tokens; output is
    /// candidates + thoughts (the thoughts also as `reasoning_tokens`). The
    /// `AUDIO` entries of `promptTokensDetails` / `candidatesTokensDetails`
    /// are the audio tokens (less the cached ones of `cacheTokensDetails`,
    /// `cached_audio_input_tokens`, at the cached audio price). Strict as [`Usage::from_openai_json`].
    ///
    /// Given a whole response, its web searches (Grounding with Google
    /// Search) are the distinct non-empty `webSearchQueries` of its
    /// candidates' `groundingMetadata`, as LiteLLM counts them (Gemini 3
    /// bills per query; Gemini 2 per grounded prompt, which this never
    /// under-counts).
    pub fn from_gemini_json(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let searches = gemini_search_queries(usage)?;
        let mut u = Self::from_gemini_usage_metadata(usage.get("usageMetadata").unwrap_or(usage))?;
        u.web_search_requests = searches;
        Ok(u)
    }

    fn from_gemini_usage_metadata(usage: &serde_json::Value) -> Result<Self, PricingError> {
        let r = Reader::new("Gemini", usage)?;
        r.refuse(&[
            ("prompt_tokens", "OpenAI chat"),
            ("input_tokens", "Anthropic or OpenAI Responses"),
            (
                "prompt_token_count",
                "Gemini in snake_case (use the REST camelCase)",
            ),
        ])?;
        let prompt = r.required("promptTokenCount")?;
        let tool = r.optional("toolUsePromptTokenCount")?;
        let cached = r.optional("cachedContentTokenCount")?;
        r.part_of(
            cached,
            "cachedContentTokenCount",
            prompt,
            "promptTokenCount",
        )?;
        let candidates = r.optional("candidatesTokenCount")?;
        let thoughts = r.optional("thoughtsTokenCount")?;
        let (audio, cached_audio) = (
            r.modality("promptTokensDetails", "AUDIO")?,
            r.modality("cacheTokensDetails", "AUDIO")?,
        );
        r.part_of(
            cached_audio,
            "cacheTokensDetails AUDIO",
            audio,
            "promptTokensDetails AUDIO",
        )?;
        r.part_of(
            cached_audio,
            "cacheTokensDetails AUDIO",
            cached,
            "cachedContentTokenCount",
        )?;
        let audio_in = audio - cached_audio;
        let audio_out = r.modality("candidatesTokensDetails", "AUDIO")?;
        r.part_of(
            audio_in,
            "promptTokensDetails AUDIO",
            prompt - cached,
            "uncached promptTokenCount",
        )?;
        r.part_of(
            audio_out,
            "candidatesTokensDetails AUDIO",
            candidates,
            "candidatesTokenCount",
        )?;
        Ok(Usage {
            input_tokens: r.sum(&[prompt, tool], "input tokens")?,
            output_tokens: r.sum(&[candidates, thoughts], "output tokens")?,
            cached_input_tokens: cached,
            cached_audio_input_tokens: cached_audio,
            reasoning_tokens: thoughts,
            audio_input_tokens: audio_in,
            audio_output_tokens: audio_out,
            ..Usage::default()
        })
    }
}

/// The distinct non-empty `webSearchQueries` of a Gemini response's
/// candidates (0 for usage metadata alone).
fn gemini_search_queries(response: &serde_json::Value) -> Result<u64, UsageError> {
    let Some(candidates) = response.get("candidates").filter(|c| !c.is_null()) else {
        return Ok(0);
    };
    let bad = |field: &str, v: &serde_json::Value| UsageError::UnknownValue {
        parser: "Gemini",
        field: field.to_owned(),
        value: abbreviate(v),
    };
    let mut queries = std::collections::BTreeSet::new();
    for c in candidates
        .as_array()
        .ok_or_else(|| bad("candidates", candidates))?
    {
        let Some(list) = c
            .get("groundingMetadata")
            .and_then(|g| g.get("webSearchQueries"))
            .filter(|q| !q.is_null())
        else {
            continue;
        };
        let field = "candidates[].groundingMetadata.webSearchQueries";
        for q in list.as_array().ok_or_else(|| bad(field, list))? {
            let q = q.as_str().ok_or_else(|| bad(field, q))?;
            if !q.is_empty() {
                queries.insert(q);
            }
        }
    }
    Ok(queries.len() as u64)
}
