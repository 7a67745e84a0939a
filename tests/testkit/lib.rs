//! Test support shared by the integration tests: the store conformance suite
//! (written once, run against every store) and a fault-injecting wrapper.

pub mod attr;
pub mod conformance;
pub mod engines;
pub mod fault_proxy;
pub mod faults;
pub mod faulty;
pub mod redis_server;
pub mod stalling;

/// The error type of guarded functions in tests and benches: a blocked call.
#[derive(Debug)]
pub struct Blocked(pub budgetgate::BudgetExceeded);

impl From<budgetgate::BudgetExceeded> for Blocked {
    fn from(e: budgetgate::BudgetExceeded) -> Self {
        Blocked(e)
    }
}

/// The LiteLLM-format price fixture (`fixtures/litellm_prices.json`),
/// loaded, with its report checked: what every pricing test prices with.
pub fn pricing_fixture() -> budgetgate::pricing::PriceTable {
    let (table, report) = budgetgate::pricing::PriceTable::from_litellm_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/litellm_prices.json"
    ))
    .unwrap();
    assert_eq!(report.loaded, 11, "{report:?}");
    let skipped: Vec<&str> = report.skipped.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "broken/gapped-tiers",
            "broken/string-price",
            "chatgpt/gpt-4o",
            "dall-e-3",
            "github_copilot/gpt-4o",
            "gpt-3-gone",
            "sample_spec",
            "whisper-1"
        ]
    );
    assert!(table.price("sample_spec").is_err());
    table
}

/// An engine on `server` whose scripts take their time from `clock` (the
/// Redis store's test time source), so a test can move time.
pub fn clock_engine(
    server: &redis_server::RedisServer,
    clock: &budgetgate::clock::ManualClock,
) -> budgetgate::Engine {
    let store = budgetgate::store::redis::RedisStore::builder(&server.url())
        .timeout(std::time::Duration::from_secs(2))
        .time_source(budgetgate::store::redis::TimeSource::Clock(
            std::sync::Arc::new(clock.clone()),
        ))
        .build()
        .expect("a Redis store");
    budgetgate::Engine::builder().store(store).build()
}
