//! An agent loop with three guarded tools, calling until its budget blocks.
//!
//! - `web_search`: a fixed cost per call (`#[guard]`);
//! - `ask_llm`: a bounded cost — the worst case is reserved, the true cost
//!   computed from the token usage in the response is committed
//!   (`#[guard_bounded]`);
//! - `embed`: soft mode — a block is a value, not an error (`#[guard_result]`).
//!
//! Every decision is printed as JSON by a listener on the global engine.
//! Runs with no setup on the in-memory store:
//!
//! ```sh
//! cargo run --example agent_tools
//! ```

use budgetgate::{guard, guard_bounded, guard_result, BudgetExceeded, Decimal, Engine, Event};
use rust_decimal_macros::dec;

#[derive(Debug)]
enum ToolError {
    Budget(BudgetExceeded),
}

impl From<BudgetExceeded> for ToolError {
    fn from(e: BudgetExceeded) -> Self {
        ToolError::Budget(e)
    }
}

/// What a chat completion reports about its usage.
struct Completion {
    text: String,
    input_tokens: u64,
    output_tokens: u64,
}

impl Completion {
    /// $2.50 per million input tokens, $10 per million output tokens.
    fn cost(&self) -> Decimal {
        Decimal::from(self.input_tokens) * dec!(0.0000025)
            + Decimal::from(self.output_tokens) * dec!(0.00001)
    }
}

/// A web search: 0.01 per call, 0.10 per user lifetime.
#[guard(ledger = ("search", "web", format!("user:{user}")), cost = "0.01", max_spend = "0.10")]
fn web_search(user: u64, query: &str) -> Result<Vec<String>, ToolError> {
    Ok(vec![format!("result for {query:?}")])
}

/// An LLM call: reserve the worst case (4,000 in + 1,000 out = 0.02),
/// commit what the usage says. 0.10 per user per hour.
#[guard_bounded(
    ledger = ("openai", "gpt-4o", format!("user:{user}")),
    estimate = "0.02",
    actual = |c: &Completion| c.cost(),
    max_spend = "0.10",
    window = "1h",
)]
async fn ask_llm(user: u64, prompt: String) -> Result<Completion, ToolError> {
    // A stand-in for the provider: usage grows with the prompt.
    let input_tokens = 1_000 + 40 * prompt.len() as u64;
    Ok(Completion {
        text: format!("answer to {prompt:?}"),
        input_tokens,
        output_tokens: 600,
    })
}

/// An embedding in soft mode: when blocked the caller gets the decision and
/// falls back (here: no vector).
#[guard_result(ledger = ("embed", "small", format!("user:{user}")), cost = "0.004", max_spend = "0.01")]
fn embed(user: u64, text: &str) -> Vec<f32> {
    vec![text.len() as f32; 4]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Print every decision (allow and block) as JSON.
    Engine::builder()
        .listener(|event: &Event<'_>| {
            if let Event::Decision(d) = event {
                println!(
                    "  decision {}",
                    serde_json::to_string(d).unwrap_or_default()
                );
            }
        })
        .install_global()
        .expect("first install");

    let user = 42;
    for step in 1.. {
        println!("step {step}");
        let hits = match web_search(user, &format!("topic {step}")) {
            Ok(hits) => hits,
            Err(ToolError::Budget(e)) => {
                println!("search blocked: {e}");
                break;
            }
        };
        let vector = embed(user, &hits[0]);
        match vector.value() {
            Some(v) => println!("  embedded into {} dims", v.len()),
            None => println!("  embedding skipped: {}", vector.decision().message()),
        }
        match ask_llm(user, format!("summarise {}", hits[0])).await {
            Ok(c) => println!("  llm: {} (cost {})", c.text, c.cost().normalize()),
            Err(ToolError::Budget(e)) => {
                println!("llm blocked: {e}");
                break;
            }
        }
    }
}
