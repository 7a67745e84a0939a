//! Quickstart: a small budget, a few calls, allow → block. No setup needed.
//!
//! Run with `cargo run --example quickstart`.

use budgetgate::dec;
use budgetgate::{Budget, Engine, Ledger};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An engine on the in-memory store; user 42 may spend 1.00 per hour on gpt-4o.
    let engine = Engine::in_memory();
    let ledger = Ledger::new("openai", "gpt-4o", "user:42");
    engine.set_budget(
        &ledger,
        Budget::rolling(dec!(1.00), Duration::from_secs(3600))?,
    );

    // Fixed-cost calls: 0.30 each, checked and recorded atomically.
    for call in 1..=4 {
        let decision = engine.check(&ledger, dec!(0.30));
        println!("fixed call {call}: {}", serde_json::to_string(&decision)?);
    }

    // A bounded call: reserve the worst case, commit what it really cost.
    match engine.reserve(&ledger, dec!(0.50)) {
        Ok(reservation) => {
            println!(
                "reserve: {}",
                serde_json::to_string(reservation.decision())?
            );
            reservation.commit(dec!(0.05))?;
        }
        Err(blocked) => println!(
            "reserve blocked: {}",
            serde_json::to_string(blocked.decision())?
        ),
    }
    let small = engine.reserve(&ledger, dec!(0.10))?;
    println!("reserve: {}", serde_json::to_string(small.decision())?);
    let commit = small.commit(dec!(0.04))?;
    println!(
        "committed {} of {} reserved",
        commit.actual(),
        commit.estimate()
    );

    let status = engine.status(&ledger)?;
    println!(
        "status: spent {} reserved {} remaining {}",
        status.committed(),
        status.reserved(),
        status.remaining()
    );
    Ok(())
}
