//! Engines for tests that run once per store: a fresh memory store, or a
//! store on one redis-server shared by the test binary, each engine under
//! a prefix of its own (so tests do not see each other's ledgers), and the
//! macro that runs an async test on both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use budgetgate::store::redis::RedisStore;
use budgetgate::store::MemoryStore;
use budgetgate::Engine;

use crate::redis_server::RedisServer;

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

/// An engine on a fresh memory store.
pub fn memory() -> Engine {
    Engine::new(MemoryStore::new())
}

/// An engine on the binary's redis-server, under a prefix no other engine
/// of this binary uses (`name` and a counter).
pub fn redis(name: &str) -> Engine {
    static N: AtomicU64 = AtomicU64::new(0);
    let store = RedisStore::builder(&SERVER.url())
        .prefix(format!("{name}{}", N.fetch_add(1, Ordering::Relaxed)))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("redis store");
    Engine::new(store)
}

/// Runs each `async fn name(engine: Engine)` of the calling module as a
/// test on the memory store and on Redis (`memory_store::name`,
/// `redis_store::name`), on a two-thread runtime.
#[macro_export]
macro_rules! async_on_both_stores {
    ($prefix:literal: $($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::engines::memory()).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::engines::redis($prefix)).await;
                }
            )*
        }
    };
}
