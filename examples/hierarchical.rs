//! Hierarchical daily budgets, stacked caps, soft-limit warnings and the kill
//! switch.
//!
//! Each call is charged to its user (10/day and 200/month, every `user:*`),
//! its project (500/day) and the whole organisation (5,000/day), all or
//! nothing. The run shows warnings at 50 % and 80 % of the user's day (each
//! once), a user blocked while the project still has money, a paused
//! namespace, and when each cap resets. No setup needed:
//!
//! ```sh
//! cargo run --example hierarchical
//! ```

use budgetgate::dec;
use budgetgate::{guard, Budget, BudgetExceeded, Engine, Event, Ledger, PauseScope};

#[derive(Debug)]
enum ToolError {
    Budget(BudgetExceeded),
}

impl From<BudgetExceeded> for ToolError {
    fn from(e: BudgetExceeded) -> Self {
        ToolError::Budget(e)
    }
}

/// One LLM call: 4.00, charged to the user, the project and the organisation.
#[guard(
    ledgers = [
        ("llm", "chat", format!("user:{user}")),
        ("llm", "chat", format!("project:{project}")),
        ("llm", "chat", "org"),
    ],
    cost = "4.00",
)]
fn chat(user: &str, project: &str) -> Result<&'static str, ToolError> {
    Ok("an answer")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::builder()
        .listener(|event: &Event<'_>| {
            if let Event::SoftLimit {
                ledger,
                budget,
                threshold,
                spent_in_window,
                ..
            } = event
            {
                println!(
                    "  WARNING {ledger} reached {threshold} of its {} {} budget ({spent_in_window} spent)",
                    budget.max_spend(),
                    budget.window()
                );
            }
        })
        .install_global()?;
    // Every user (and only users): 10 per day, warned at 50 % and 80 %, and
    // 200 per month, stacked. The project and the organisation have their own.
    engine.set_budgets_matching(
        "llm",
        "chat",
        "user:*",
        [
            Budget::daily(dec!(10))?
                .warn_at(dec!(0.5))?
                .warn_at(dec!(0.8))?,
            Budget::monthly(dec!(200))?,
        ],
    );
    engine.set_budget(
        &Ledger::new("llm", "chat", "project:apollo"),
        Budget::daily(dec!(500))?,
    );
    engine.set_budget(
        &Ledger::new("llm", "chat", "org"),
        Budget::daily(dec!(5000))?,
    );

    println!("alice calls until her day is spent (4.00 a call):");
    for n in 1.. {
        match chat("alice", "apollo") {
            Ok(_) => println!("  call {n}: allowed"),
            Err(ToolError::Budget(e)) => {
                let d = e.decision();
                println!("  call {n}: blocked by {} ({})", d.ledger(), d.message());
                break;
            }
        }
    }
    let project = engine.status(&Ledger::new("llm", "chat", "project:apollo"))?;
    println!(
        "the project still has {} of {} today",
        project.remaining(),
        project.budget().max_spend()
    );
    match chat("bob", "apollo") {
        Ok(_) => println!("bob, same project: allowed"),
        Err(ToolError::Budget(e)) => println!("bob, same project: {e}"),
    }

    println!("pausing the whole llm namespace:");
    engine.pause(&PauseScope::Namespace("llm".into()))?;
    if let Err(ToolError::Budget(e)) = chat("bob", "apollo") {
        println!("  bob: {e}");
    }
    engine.resume(&PauseScope::Namespace("llm".into()))?;
    match chat("bob", "apollo") {
        Ok(_) => println!("resumed: bob allowed"),
        Err(ToolError::Budget(e)) => println!("resumed: {e}"),
    }

    let alice = engine.status(&Ledger::new("llm", "chat", "user:alice"))?;
    for cap in alice.caps() {
        println!(
            "alice, {} cap: {} committed of {}, resets {}",
            cap.budget().window(),
            cap.committed(),
            cap.budget().max_spend(),
            cap.resets_at()
                .map_or_else(|| "never".to_owned(), resets_in)
        );
    }
    println!("active ledgers:");
    for ledger in engine.active_ledgers(100)? {
        let status = engine.status(&ledger)?;
        println!(
            "  {ledger}: {} committed, {} remaining",
            status.committed(),
            status.remaining()
        );
    }
    Ok(())
}

/// "in 3 d 4 h 5 min" until `at`.
fn resets_in(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::SystemTime::now())
        .map_or(0, |d| d.as_secs());
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("in {d} d {h} h {m} min")
    } else {
        format!("in {h} h {m} min")
    }
}
