//! Quickstart: a budget, fixed-cost calls, a bounded call reserved and then
//! committed at its true cost, a block, and the ledger's status. No setup
//! needed:
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use budgetgate::{dec, Budget, Engine, Ledger};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An engine on the in-memory store; user 42 may spend 1.00 per hour on gpt-4o.
    let engine = Engine::in_memory();
    let ledger = Ledger::new("openai", "gpt-4o", "user:42");
    engine.set_budget(
        &ledger,
        Budget::rolling(dec!(1.00), Duration::from_secs(3600))?,
    );

    // Fixed-cost calls: 0.30 each, checked and recorded in one atomic step.
    for call in 1..=2 {
        let decision = engine.check(&ledger, dec!(0.30));
        println!("fixed call {call}: {decision}");
    }

    // A bounded call: reserve the worst case (0.35) before calling the model…
    let reservation = engine.reserve(&ledger, dec!(0.35))?;
    println!("reserved:     {}", reservation.decision());
    // …call the model; the response's usage says it cost 0.05: commit that.
    let commit = reservation.commit(dec!(0.05))?;
    println!(
        "committed {} of the {} reserved; the other {} is free again",
        commit.actual(),
        commit.estimate(),
        commit.estimate() - commit.actual()
    );

    // 0.65 spent: a 0.50 call no longer fits, and nothing is charged for it.
    let blocked = engine.check(&ledger, dec!(0.50));
    println!("blocked:      {blocked}");
    println!("as JSON:      {}", serde_json::to_string(&blocked)?);

    let status = engine.status(&ledger)?;
    println!(
        "status: committed {}, reserved {}, remaining {} of {} per {}",
        status.committed(),
        status.reserved(),
        status.remaining(),
        status.budget().max_spend(),
        status.budget().window()
    );
    Ok(())
}
