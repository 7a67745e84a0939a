//! The conformance suite against the in-memory store.

use std::sync::Arc;

use budgetgate::clock::ManualClock;
use budgetgate::store::Store;
use budgetgate::MemoryStore;

fn memory(clock: &ManualClock) -> Arc<dyn Store> {
    Arc::new(MemoryStore::with_clock(clock.clone()))
}

testkit::conformance_tests!(memory);
