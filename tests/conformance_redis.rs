//! The conformance suite against the Redis store, on a real `redis-server`
//! this test binary starts (and kills) itself. Time comes from the tests'
//! manual clock through the store's time source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use budgetgate::clock::ManualClock;
use budgetgate::store::redis::{RedisStore, TimeSource};
use budgetgate::store::Store;
use testkit::redis_server::RedisServer;

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

fn redis(clock: &ManualClock) -> Arc<dyn Store> {
    // A prefix per store: tests run in parallel on one server, and some state
    // (the kill switch) is shared by every ledger under a prefix.
    static N: AtomicU64 = AtomicU64::new(0);
    let prefix = format!("conf{}", N.fetch_add(1, Ordering::Relaxed));
    Arc::new(
        RedisStore::builder(&SERVER.url())
            .prefix(prefix)
            .timeout(Duration::from_secs(2))
            .time_source(TimeSource::Clock(Arc::new(clock.clone())))
            .build()
            .expect("store"),
    )
}

testkit::conformance_tests!(redis);
