//! The conformance suite against a `redis-server` in cluster mode (one node
//! that owns every slot). A cluster node refuses a script that touches keys
//! of another slot than its declared keys' ("Script attempted to access
//! keys that do not hash to the same slot"), so every check passing here
//! shows that each single-ledger script — charge, settle, status, rate
//! gates — touches only keys under its ledger's hash tag, the kill switch
//! included (it is read beside the script, not inside it).
//!
//! The one exception is the atomic hierarchy script, which spans its
//! ledgers' hash tags: the node refuses it (checked below: the engine
//! blocks the call, fail-closed). With
//! `RedisStoreBuilder::one_ledger_per_script` a hierarchy charges its
//! ledgers one script each instead, and the whole suite — hierarchies
//! included — passes on the cluster node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use budgetgate::clock::ManualClock;
use budgetgate::store::redis::{RedisStore, TimeSource};
use budgetgate::store::Store;
use budgetgate::{BlockReason, Budget, Engine, Ledger};
use rust_decimal_macros::dec;
use testkit::redis_server::RedisServer;

static SERVER: LazyLock<RedisServer> = LazyLock::new(|| {
    // A node file of its own: a port used before must not bring back the
    // slots an earlier run assigned.
    let nodes = format!(
        "nodes-{}-{}.conf",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let server = RedisServer::start_with_args(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &nodes,
    ]);
    let added = server.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    assert_eq!(added, "OK", "CLUSTER ADDSLOTSRANGE");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .cli(&["CLUSTER", "INFO"])
        .contains("cluster_state:ok")
    {
        assert!(
            Instant::now() < deadline,
            "the one-node cluster never became ok"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
});

fn store(clock: Option<&ManualClock>) -> RedisStore {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut builder = RedisStore::builder(&SERVER.url())
        .prefix(format!("cluster{}", N.fetch_add(1, Ordering::Relaxed)))
        .timeout(Duration::from_secs(2));
    // The suite's stores (on a clock) charge hierarchies one script per
    // ledger; the plain one keeps the atomic hierarchy script.
    if let Some(clock) = clock {
        builder = builder
            .one_ledger_per_script()
            .time_source(TimeSource::Clock(Arc::new(clock.clone())));
    }
    builder.build().expect("store")
}

fn redis(clock: &ManualClock) -> Arc<dyn Store> {
    Arc::new(store(Some(clock)))
}

testkit::conformance_tests!(redis);

/// Without `one_ledger_per_script`, the atomic hierarchy script spans
/// several hash tags: a cluster node refuses it, and the engine blocks the
/// call with a store error rather than charging some of the ledgers.
#[test]
fn the_hierarchy_script_is_refused_across_slots() {
    let engine = Engine::new(store(None));
    let user = Ledger::new("cluster", "gpt", "user:1");
    let team = Ledger::new("cluster", "gpt", "team:1");
    for l in [&user, &team] {
        engine.set_budget(l, Budget::lifetime(dec!(10)).unwrap());
    }
    assert!(
        engine.check(&user, dec!(1)).is_allowed(),
        "one ledger works"
    );
    let d = engine.check_all(&[user.clone(), team.clone()], dec!(1));
    assert_eq!(d.reason(), Some(BlockReason::StoreError), "{d}");
    assert!(
        d.to_string().contains("same slot") || d.to_string().contains("CROSSSLOT"),
        "{d}"
    );
    assert_eq!(engine.status(&user).unwrap().committed(), dec!(1));
    assert_eq!(engine.status(&team).unwrap().committed(), dec!(0));
}
