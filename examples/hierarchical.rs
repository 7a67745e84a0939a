//! Hierarchical daily budgets, stacked caps, soft-limit warnings and the kill
//! switch.
//!
//! Each call is charged to its user (10/day), its project (500/day) and the
//! whole organisation (5,000/day), all or nothing. The run shows a user
//! blocked while the project still has money, a warning at 80 % of the
//! user's day, and a paused namespace. No setup needed:
//!
//! ```sh
//! cargo run --example hierarchical
//! ```

use budgetgate::dec;
use budgetgate::{guard, Budget, BudgetExceeded, Engine, Event, Ledger, PauseScope, Window};

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
    let daily = |max| Budget::new(max, Window::daily());
    let engine = Engine::builder()
        .listener(|event: &Event<'_>| {
            if let Event::SoftLimit {
                ledger,
                threshold,
                spent_in_window,
                ..
            } = event
            {
                println!("  WARNING {ledger}: {spent_in_window} spent today, past {threshold}");
            }
        })
        .install_global()?;
    // Every user: 10 per day (warn at 80 %) and 200 per month, stacked.
    engine.set_budgets_per_principal(
        "llm",
        "chat",
        [
            daily(dec!(10))?.warn_at(dec!(0.8))?,
            Budget::new(dec!(200), Window::monthly())?,
        ],
    );
    engine.set_budget(
        &Ledger::new("llm", "chat", "project:apollo"),
        daily(dec!(500))?,
    );
    engine.set_budget(&Ledger::new("llm", "chat", "org"), daily(dec!(5000))?);

    println!("alice calls until her day is spent:");
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
    println!(
        "bob, same project: {:?}",
        chat("bob", "apollo").map(|_| "allowed")
    );

    println!("pausing the whole llm namespace:");
    engine.pause(&PauseScope::Namespace("llm".into()))?;
    if let Err(ToolError::Budget(e)) = chat("bob", "apollo") {
        println!("  bob: {}", e.decision().message());
    }
    engine.resume(&PauseScope::Namespace("llm".into()))?;
    println!(
        "resumed: bob {:?}",
        chat("bob", "apollo").map(|_| "allowed")
    );

    let alice = engine.status(&Ledger::new("llm", "chat", "user:alice"))?;
    for cap in alice.caps() {
        let resets_in = cap
            .resets_at()
            .and_then(|at| at.duration_since(std::time::SystemTime::now()).ok())
            .map(|d| format!("in {} h", d.as_secs() / 3600))
            .unwrap_or_default();
        println!(
            "alice {}: spent {} of {}, resets {resets_in}",
            cap.budget().window(),
            cap.committed(),
            cap.budget().max_spend(),
        );
    }
    println!("active ledgers: {:?}", engine.active_ledgers(100)?);
    Ok(())
}
