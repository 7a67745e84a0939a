// A check's decision may be a block: ignoring it is a warning (an error
// here), so `engine.check(..);` cannot silently skip a refusal.
#![deny(unused_must_use)]

use budgetgate::{dec, Engine, Ledger};

fn main() {
    let engine = Engine::in_memory();
    engine.check(&Ledger::new("llm", "chat", "user:1"), dec!(1));
}
