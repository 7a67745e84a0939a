//! The conformance suite against the Redis store, on a real `redis-server`
//! this test binary starts (and kills) itself. Time comes from the tests'
//! manual clock through the store's time source.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use budgetgate::clock::ManualClock;
use budgetgate::store::redis::{RedisStore, TimeSource};
use budgetgate::store::Store;
use testkit::redis_server::RedisServer;

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

fn redis(clock: &ManualClock) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::builder(&SERVER.url())
            .timeout(Duration::from_secs(2))
            .time_source(TimeSource::Clock(Arc::new(clock.clone())))
            .build()
            .expect("store"),
    )
}

testkit::conformance_tests!(redis);
