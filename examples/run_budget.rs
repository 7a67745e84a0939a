//! Run budgets (`budgetgate::run`): an agent run with its own cap, whose
//! tools and sub-agents are charged to it — and to their own ledgers —
//! all or nothing.
//!
//! The run may spend 0.50. Its tools (`#[guard]`, `#[guard_bounded]`) know
//! nothing about runs; inside `run::scope` every call they make is charged
//! to the run too, including the calls of a sub-agent started with
//! `run::spawn` under its own, smaller cap. The call that would take the
//! run past 0.50 is refused before it runs.
//!
//! ```sh
//! cargo run --example run_budget
//! ```

use budgetgate::run::{self, Run};
use budgetgate::{dec, guard, guard_bounded, Budget, BudgetExceeded, Decimal, Ledger};

#[derive(Debug)]
struct Refused(BudgetExceeded);

impl From<BudgetExceeded> for Refused {
    fn from(e: BudgetExceeded) -> Self {
        Refused(e)
    }
}

#[guard(ledger = ("tools", "search", "team:a"), cost = "0.05", max_spend = "100")]
async fn search(query: &str) -> Result<String, Refused> {
    Ok(format!("results for {query}"))
}

#[guard_bounded(
    ledger = ("llm", "chat", "team:a"),
    estimate = "0.12",
    actual = |tokens: &u64| Decimal::from(*tokens) * dec!(0.00002),
    max_spend = "100",
)]
async fn think(tokens: u64) -> Result<u64, Refused> {
    tokio::task::yield_now().await;
    Ok(tokens)
}

async fn agent_step(step: u32) -> Result<(), Refused> {
    search(&format!("step {step}")).await?;
    think(2_500).await?; // 0.12 reserved, 0.05 committed
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run_ledger = Ledger::new("agent", "run", "run-2026-001");
    let run = Run::new(run_ledger.clone(), Budget::lifetime(dec!(0.50))?);
    let status_run = run.clone();

    run::scope(run, async {
        for step in 1.. {
            match agent_step(step).await {
                Ok(()) => println!("step {step}: done"),
                Err(Refused(blocked)) => {
                    println!(
                        "step {step}: a call refused before it ran — {}",
                        blocked.decision().message()
                    );
                    break;
                }
            }
            if step == 2 {
                // A sub-agent with its own cap, inside the run.
                let sub = Run::new(
                    Ledger::new("agent", "run", "sub-agent"),
                    Budget::lifetime(dec!(0.10))?,
                );
                let handle = run::spawn(run::scope(sub, async {
                    let mut calls = 0;
                    while search("sub-agent lookup").await.is_ok() {
                        calls += 1;
                    }
                    calls
                }));
                println!("sub-agent: {} searches before its 0.10 cap", handle.await?);
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
    .await?;

    let engine = budgetgate::global();
    let status = status_run.status(engine)?;
    println!(
        "{run_ledger}: committed {} of 0.50 (reserved {})",
        status.committed(),
        status.reserved()
    );
    Ok(())
}
