//! Redis store benchmarks (issue #4), on a redis-server this bench starts.
//! Run: `cargo bench --bench redis`.
//!
//! - latency: reserve+commit beside two PINGs (a direct multiplexed
//!   connection, and the store's own path), same run;
//! - window size: check with 10, 10,000 and 1,000,000 spends in the window;
//! - throughput: 64 concurrent tasks of guarded calls vs 64 tasks of PINGs.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{guard, Budget, Engine, Ledger};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rust_decimal_macros::dec;
use testkit::redis_server::RedisServer;
use testkit::Blocked;

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);
static STORE: LazyLock<Arc<RedisStore>> = LazyLock::new(|| {
    Arc::new(
        RedisStore::builder(&SERVER.url())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
});
static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::builder().shared_store(STORE.clone()).build());
/// The same store on redis-rs's blocking connections for sync calls, to
/// weigh the lean sync client against the well-kept crate in the same run
/// (async calls use redis-rs's multiplexed connection in both).
static RS_ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let store = RedisStore::builder(&SERVER.url())
        .timeout(Duration::from_secs(5))
        .redis_rs_connections()
        .build()
        .unwrap();
    Engine::builder().store(store).build()
});

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn latency(c: &mut Criterion) {
    let rt = runtime();
    let client = redis::Client::open(SERVER.url()).unwrap();
    let direct = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let ledger = Ledger::new("bench", "latency", "p");
    let budget = Budget::lifetime(dec!(1000000000000)).unwrap();
    ENGINE.set_budget(&ledger, budget);

    let mut g = c.benchmark_group("redis_latency");
    g.bench_function("baseline/two_pings_direct", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut con = direct.clone();
                let _: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
                let _: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
            })
        })
    });
    // The sync path's own baseline: a blocking connection, as sync calls use.
    let mut blocking = client.get_connection().unwrap();
    g.bench_function("baseline/two_pings_blocking", |b| {
        b.iter(|| {
            let _: String = redis::cmd("PING").query(&mut blocking).unwrap();
            let _: String = redis::cmd("PING").query(&mut blocking).unwrap();
        })
    });
    g.bench_function("baseline/two_pings_store_path", |b| {
        b.iter(|| {
            rt.block_on(async {
                STORE.ping().await.unwrap();
                STORE.ping().await.unwrap();
            })
        })
    });
    g.bench_function("reserve_commit_async", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = ENGINE.reserve_async(&ledger, dec!(0.00001)).await.unwrap();
                r.commit_async(dec!(0.000001)).await.unwrap();
            })
        })
    });
    g.bench_function("reserve_commit_sync", |b| {
        b.iter(|| {
            let r = ENGINE.reserve(&ledger, dec!(0.00001)).unwrap();
            r.commit(dec!(0.000001)).unwrap();
        })
    });
    g.finish();

    // The same comparison interleaved: each round times, in turn, two PINGs
    // and a reserve+commit on each path, so all see the machine at the same
    // moment (on a shared VM the level drifts between criterion's separate
    // loops by 10-40%). Printed, not a criterion result: ratios of medians,
    // per block of rounds, so the spread shows too. The sync path is
    // compared with redis-rs's blocking PINGs and with PINGs on the store's
    // own connection (a leaner client, so a lower baseline).
    let mut blocking = client.get_connection().unwrap();
    // A second ledger with a rolling 1 h window (entries in a sorted set).
    let rolling = Ledger::new("bench", "latency", "rolling");
    ENGINE.set_budget(
        &rolling,
        Budget::rolling(dec!(1000000000000), Duration::from_secs(3600)).unwrap(),
    );
    const BLOCKS: usize = 8;
    const ROUNDS: usize = 400;
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let mut ratios: [Vec<f64>; 7] = Default::default();
    RS_ENGINE.set_budget(&ledger, budget);
    let mut levels = Vec::new();
    for _ in 0..BLOCKS {
        let mut t: [Vec<Duration>; 9] = Default::default();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let _: String = redis::cmd("PING").query(&mut blocking).unwrap();
            let _: String = redis::cmd("PING").query(&mut blocking).unwrap();
            t[0].push(start.elapsed());
            let start = Instant::now();
            STORE.ping_blocking().unwrap();
            STORE.ping_blocking().unwrap();
            t[1].push(start.elapsed());
            let start = Instant::now();
            let r = ENGINE.reserve(&ledger, dec!(0.00001)).unwrap();
            r.commit(dec!(0.000001)).unwrap();
            t[2].push(start.elapsed());
            let start = Instant::now();
            let r = ENGINE.reserve(&rolling, dec!(0.00001)).unwrap();
            r.commit(dec!(0.000001)).unwrap();
            t[5].push(start.elapsed());
            let start = Instant::now();
            let r = RS_ENGINE.reserve(&ledger, dec!(0.00001)).unwrap();
            r.commit(dec!(0.000001)).unwrap();
            t[7].push(start.elapsed());
            rt.block_on(async {
                let mut con = direct.clone();
                let start = Instant::now();
                let _: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
                let _: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
                t[3].push(start.elapsed());
                let start = Instant::now();
                let r = ENGINE.reserve_async(&ledger, dec!(0.00001)).await.unwrap();
                r.commit_async(dec!(0.000001)).await.unwrap();
                t[4].push(start.elapsed());
                let start = Instant::now();
                let r = ENGINE.reserve_async(&rolling, dec!(0.00001)).await.unwrap();
                r.commit_async(dec!(0.000001)).await.unwrap();
                t[6].push(start.elapsed());
                let start = Instant::now();
                let r = RS_ENGINE
                    .reserve_async(&ledger, dec!(0.00001))
                    .await
                    .unwrap();
                r.commit_async(dec!(0.000001)).await.unwrap();
                t[8].push(start.elapsed());
            });
        }
        let m: Vec<f64> = t.iter_mut().map(median).collect();
        ratios[0].push(m[2] / m[0]);
        ratios[1].push(m[2] / m[1]);
        ratios[2].push(m[4] / m[3]);
        ratios[3].push(m[5] / m[1]);
        ratios[4].push(m[6] / m[3]);
        ratios[5].push(m[7] / m[2]);
        ratios[6].push(m[8] / m[4]);
        levels.push(m);
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!(
            "{:.2}x (blocks {:.2}-{:.2})",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        )
    };
    let us = |i: usize| {
        let mut v: Vec<f64> = levels.iter().map(|m| m[i] * 1e6).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "redis_latency interleaved ({BLOCKS} blocks x {ROUNDS} rounds, median of block medians): \
         sync reserve+commit {:.1}us / two redis-rs blocking PINGs {:.1}us = {}; \
         / two PINGs on the store's own connection {:.1}us = {}; \
         async reserve+commit {:.1}us / two multiplexed PINGs {:.1}us = {}; \
         rolling 1 h window: sync {:.1}us / store PINGs = {}, async {:.1}us / multiplexed PINGs = {}; \
         sync on redis-rs's blocking connections {:.1}us = {} of the lean client's; \
         async on a second store (both on redis-rs's multiplexed connection) {:.1}us = {}",
        us(2),
        us(0),
        summary(&mut ratios[0]),
        us(1),
        summary(&mut ratios[1]),
        us(4),
        us(3),
        summary(&mut ratios[2]),
        us(5),
        summary(&mut ratios[3]),
        us(6),
        summary(&mut ratios[4]),
        us(7),
        summary(&mut ratios[5]),
        us(8),
        summary(&mut ratios[6]),
    );
}

/// Writes `n` committed entries (1 s old) into a ledger's 1 h window, the
/// way the scripts store them, in one server-side loop.
fn prefill(ledger_principal: &str, n: u64) {
    prefill_aged(ledger_principal, n, 1_000_000);
}

/// [`prefill`] with entries `age_us` old.
fn prefill_aged(ledger_principal: &str, n: u64, age_us: u64) {
    let mut con = redis::Client::open(SERVER.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let base = format!("budgetgate:{{bench:window:{ledger_principal}}}");
    let script = redis::Script::new(
        r"
        local t = redis.call('TIME')
        local at = tonumber(t[1]) * 1000000 + tonumber(t[2]) - tonumber(ARGV[2])
        local n = tonumber(ARGV[1])
        local i = 0
        while i < n do
          local batch = {}
          for j = 1, math.min(1000, n - i) do
            table.insert(batch, string.format('%d', at))
            table.insert(batch, 'pre' .. (i + j) .. '|0|1|c')
          end
          redis.call('ZADD', KEYS[1], unpack(batch))
          i = i + 1000
        end
        -- The ledger's one window, in its header 'h': last, minexp, exp, ren
        -- (exp and ren unset, so the first call renews the TTLs), the
        -- window's state (committed n nano-units, its oldest entry at `at`)
        -- and its id.
        redis.call('HSET', KEYS[2], 'h',
                   struct.pack('<i8i8i8i8i8i8i8i8i8', at, -1, -1, -1, 0, n, 0, 0, at) .. 'r3600000000')
        return n",
    );
    let _: u64 = script
        .key(format!("{base}:e:r3600000000"))
        .key(format!("{base}:meta"))
        .arg(n)
        .arg(age_us)
        .invoke(&mut con)
        .unwrap();
}

/// 1,000,000 entries of a rolling 1 h window that all left it (written two
/// hours ago): calls prune them in bounded steps. Prints the slowest and
/// median call on that ledger while it empties, the slowest call of a
/// bystander ledger meanwhile, and the longest script Redis logged
/// (`SLOWLOG`, every command). Runs with no filter or `mass_expiry`.
fn mass_expiry(_: &mut Criterion) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // Criterion's filters are regular expressions; `a|b` alternatives are
    // matched by name here.
    let named = |f: &String| f.split('|').any(|part| "mass_expiry".contains(part));
    if !filters.is_empty() && !filters.iter().any(named) {
        return;
    }
    const N: u64 = 1_000_000;
    let ledger = Ledger::new("bench", "window", "expiring");
    let bystander = Ledger::new("bench", "window", "bystander");
    let budget = Budget::rolling(dec!(1000000000), Duration::from_secs(3600)).unwrap();
    ENGINE.set_budget(&ledger, budget);
    ENGINE.set_budget(&bystander, budget);
    prefill_aged("expiring", N, 2 * 3600 * 1_000_000);
    assert!(ENGINE.check(&bystander, dec!(0.000000001)).is_allowed());
    let mut con = redis::Client::open(SERVER.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg(10_000)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    let (mut own, mut other) = (Vec::new(), Vec::new());
    let mut slowest_script = 0i64;
    loop {
        let start = Instant::now();
        assert!(ENGINE.check(&ledger, dec!(0)).is_allowed());
        own.push(start.elapsed());
        let start = Instant::now();
        assert!(ENGINE.check(&bystander, dec!(0.000000001)).is_allowed());
        other.push(start.elapsed());
        if own.len() % 100 == 0 || own.len() > 1100 {
            let log: Vec<redis::Value> = redis::cmd("SLOWLOG")
                .arg("GET")
                .arg(-1)
                .query(&mut con)
                .unwrap();
            for entry in log {
                if let redis::Value::Array(fields) = entry {
                    if let Some(redis::Value::Int(us)) = fields.get(2) {
                        slowest_script = slowest_script.max(*us);
                    }
                }
            }
            let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
        }
        if ENGINE.status(&ledger).unwrap().spent_in_window() == dec!(0) || own.len() > 5000 {
            break;
        }
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(10_000)
        .query(&mut con)
        .unwrap();
    let calls = own.len();
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "mass_expiry: {N} entries left a rolling 1 h window at once; emptied in {calls} calls; \
         on that ledger slowest call {:?}, median {:?}; a bystander ledger meanwhile: slowest {:?}, median {:?}; \
         longest command in SLOWLOG {} us",
        max(&own),
        median(&mut own),
        max(&other),
        median(&mut other),
        slowest_script,
    );
}

fn window_size(c: &mut Criterion) {
    let mut g = c.benchmark_group("redis_window_size");
    let budget = Budget::rolling(dec!(1000000000000), Duration::from_secs(3600)).unwrap();
    for n in [10u64, 10_000, 1_000_000] {
        let principal = format!("n{n}");
        prefill(&principal, n);
        let ledger = Ledger::new("bench", "window", principal);
        let d = ENGINE.check_with(&ledger, Some(&budget), dec!(0.000000001));
        assert!(d.is_allowed(), "{d}");
        assert!(
            d.spent_in_window() >= budgetgate::Decimal::new(n as i64, 9),
            "prefill counted: {d}"
        );
        g.bench_with_input(BenchmarkId::new("check_allow_sync", n), &n, |b, _| {
            b.iter(|| ENGINE.check_with(&ledger, Some(&budget), dec!(0.000000001)))
        });
    }
    g.finish();
}

#[guard(ledger = ("bench", "throughput", format!("task:{task}")), cost = "0.000001",
        max_spend = "1000000000", engine = &*ENGINE)]
async fn guarded(task: usize) -> Result<usize, Blocked> {
    Ok(task)
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let client = redis::Client::open(SERVER.url()).unwrap();
    let direct = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let mut g = c.benchmark_group("redis_throughput_64_tasks");
    g.throughput(Throughput::Elements(64));
    g.bench_function("baseline/ping", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..64)
                    .map(|_| {
                        let mut con = direct.clone();
                        tokio::spawn(async move {
                            let _: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.bench_function("guarded_call", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..64).map(|t| tokio::spawn(guarded(t))).collect();
                for t in tasks {
                    t.await.unwrap().unwrap();
                }
            })
        })
    });
    g.finish();
}

/// A hierarchy of three ledgers beside one ledger, same run.
fn hierarchy(c: &mut Criterion) {
    let mut g = c.benchmark_group("redis_hierarchy");
    let budget = Budget::lifetime(dec!(1000000000000)).unwrap();
    let ledgers: Vec<Ledger> = ["user:1", "project:a", "org"]
        .iter()
        .map(|p| Ledger::new("bench", "hier", *p))
        .collect();
    for l in &ledgers {
        ENGINE.set_budget(l, budget);
    }
    g.bench_function("check_one_ledger", |b| {
        b.iter(|| ENGINE.check(&ledgers[0], dec!(0.000001)))
    });
    g.bench_function("check_all_three_ledgers", |b| {
        b.iter(|| ENGINE.check_all(&ledgers, dec!(0.000001)))
    });
    g.bench_function("reserve_commit_one_ledger", |b| {
        b.iter(|| {
            ENGINE
                .reserve(&ledgers[0], dec!(0.00001))
                .unwrap()
                .commit(dec!(0.000001))
                .unwrap()
        })
    });
    g.bench_function("reserve_commit_all_three_ledgers", |b| {
        b.iter(|| {
            ENGINE
                .reserve_all(&ledgers, dec!(0.00001))
                .unwrap()
                .commit(dec!(0.000001))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)).sample_size(50);
    targets = latency, window_size, throughput, hierarchy, mass_expiry
}
criterion_main!(benches);
