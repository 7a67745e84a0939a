//! An agent loop with three guarded tools, calling until its budget blocks.
//!
//! - `web_search`: a fixed cost per call (`#[guard]`), and a call-rate limit
//!   of 3 at once refilled at 4 per second (`#[rate_limit]`, checked first, so
//!   a rate-limited search is not charged);
//! - `ask_llm`: a bounded cost — the worst case for the prompt and the output
//!   limit is reserved (`pricing::estimate_for`), the true cost computed from the
//!   token usage in the response is committed (`pricing::cost`)
//!   (`#[guard_bounded]`);
//! - `embed`: soft mode — a block is a value, not an error (`#[guard_result]`).
//!
//! A listener on the global engine prints every decision and every commit
//! (what was reserved, what was really spent). Runs with no setup on the
//! in-memory store — or, with `BUDGETGATE_REDIS_URL` set, on Redis, shared
//! by every copy of the agent:
//!
//! ```sh
//! cargo run --example agent_tools
//! ```

use std::time::Duration;

use budgetgate::pricing::{self, Limits, Region, ServiceTier, Usage};
use budgetgate::{
    guard, guard_bounded, guard_result, rate_limit, BudgetExceeded, Engine, Event, RateLimited,
};

#[derive(Debug)]
enum ToolError {
    Budget(BudgetExceeded),
    Rate(RateLimited),
}

impl From<BudgetExceeded> for ToolError {
    fn from(e: BudgetExceeded) -> Self {
        ToolError::Budget(e)
    }
}

impl From<RateLimited> for ToolError {
    fn from(e: RateLimited) -> Self {
        ToolError::Rate(e)
    }
}

/// A chat completion with the provider's usage report (OpenAI's shape).
struct Completion {
    text: String,
    usage: serde_json::Value,
}

const MODEL: &str = "gpt-4o";
const MAX_OUTPUT_TOKENS: u64 = 1_000;

/// A rough count for the estimate: about 4 characters per token, rounded up.
fn prompt_tokens(prompt: &str) -> u64 {
    (prompt.len() as u64).div_ceil(4) + 1_000 // + the system prompt
}

/// A web search: 0.01 per call, 0.10 per user lifetime; at most 3 at once,
/// refilled at 4 per second. The rate limit is nearest the function, so it
/// is checked first.
#[guard(ledger = ("search", "web", format!("user:{user}")), cost = "0.01", max_spend = "0.10")]
#[rate_limit(gate = ("search", "web", format!("user:{user}")), capacity = 3, refill = "4/s")]
fn web_search(user: u64, query: &str) -> Result<Vec<String>, ToolError> {
    Ok(vec![format!("result for {query:?}")])
}

/// An LLM call: reserve the most the prompt and `MAX_OUTPUT_TOKENS` can cost
/// at gpt-4o's standard prices (the request asks for no priority processing
/// and goes to the global endpoint; `pricing::estimate` would also cover the
/// priority tier and regional uplifts), commit what the returned usage says.
/// 0.10 per user per hour.
#[guard_bounded(
    ledger = ("openai", MODEL, format!("user:{user}")),
    estimate = pricing::estimate_for(
        MODEL,
        &Limits::new(prompt_tokens(&prompt), MAX_OUTPUT_TOKENS)
            .service_tier(ServiceTier::Standard)
            .region(Region::Global),
    ),
    actual = |c: &Completion| Usage::from_openai_json(&c.usage).and_then(|u| pricing::cost(MODEL, &u)),
    max_spend = "0.10",
    window = "1h",
)]
async fn ask_llm(user: u64, prompt: String) -> Result<Completion, ToolError> {
    // A stand-in for the provider: usage grows with the prompt, and the
    // system prompt is served from the cache.
    let prompt_tokens = prompt_tokens(&prompt);
    Ok(Completion {
        text: format!("answer to {prompt:?}"),
        usage: serde_json::json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 600,
            "prompt_tokens_details": { "cached_tokens": 1_000 }
        }),
    })
}

/// An embedding in soft mode: when blocked the caller gets the decision and
/// falls back (here: no vector).
#[guard_result(ledger = ("embed", "small", format!("user:{user}")), cost = "0.004", max_spend = "0.01")]
fn embed(user: u64, text: &str) -> Vec<f32> {
    vec![text.len() as f32; 4]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Print every decision, and every commit of a bounded call.
    Engine::builder()
        .listener(|event: &Event<'_>| match event {
            Event::Decision(d) => println!("  decision: {d}"),
            Event::Committed {
                ledger,
                estimate,
                actual,
                ..
            } => println!("  committed {actual} on {ledger} (reserved {estimate})"),
            _ => {}
        })
        .try_install_global()?; // refuses a BUDGETGATE_REDIS_URL it cannot use

    let user = 42;
    'agent: for step in 1.. {
        println!("step {step}");
        let hits = loop {
            match web_search(user, &format!("topic {step}")) {
                Ok(hits) => break hits,
                Err(ToolError::Rate(e)) if e.is_store_error() => {
                    println!("search unavailable: {e}");
                    return Ok(());
                }
                Err(ToolError::Rate(e)) => {
                    let wait = e.retry_after().unwrap_or(Duration::from_millis(250));
                    println!("  search rate limited (not charged); retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                Err(ToolError::Budget(e)) => {
                    println!("search blocked: {e}");
                    break 'agent;
                }
            }
        };
        let vector = embed(user, &hits[0]);
        match vector.value() {
            Some(v) => println!("  embedded into {} dims", v.len()),
            None => println!("  embedding skipped: {}", vector.decision().message()),
        }
        match ask_llm(user, format!("summarise {}", hits[0])).await {
            Ok(c) => println!("  llm: {}", c.text),
            Err(ToolError::Budget(e)) => {
                println!("llm blocked: {e}");
                break;
            }
            Err(ToolError::Rate(e)) => println!("llm rate limited: {e}"),
        }
    }
    let ledger = budgetgate::Ledger::new("openai", MODEL, format!("user:{user}"));
    let hourly = budgetgate::Budget::rolling(budgetgate::dec!(0.10), Duration::from_secs(3600))?;
    let status = budgetgate::global().status_with(&ledger, &hourly)?;
    println!(
        "{ledger}: {} committed this hour, {} remaining",
        status.committed(),
        status.remaining()
    );
    Ok(())
}
