//! Engine benchmarks (issue #2). Run: `cargo bench --bench engine`.
//!
//! Every group carries its baselines, measured in the same run:
//! a bare function call and a `Mutex<HashMap>` add.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use budgetgate::clock::ManualClock;
use budgetgate::{Budget, Engine, Ledger, MemoryStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rust_decimal_macros::dec;

#[inline(never)]
fn bare_call(x: u64) -> u64 {
    x.wrapping_add(1)
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_thread");
    g.bench_function("baseline/bare_fn_call", |b| {
        b.iter(|| bare_call(black_box(1)))
    });
    let map: Mutex<HashMap<String, u128>> = Mutex::new(HashMap::new());
    let key = "openai:gpt-4o@user:42".to_string();
    g.bench_function("baseline/mutex_hashmap_add", |b| {
        b.iter(|| {
            let mut m = map.lock().unwrap();
            *m.entry(black_box(&key).clone()).or_insert(0) += 1;
        })
    });
    // The fair version of the baseline: no key allocation.
    g.bench_function("baseline/mutex_hashmap_add_borrowed_key", |b| {
        b.iter(|| {
            let mut m = map.lock().unwrap();
            if let Some(v) = m.get_mut(black_box(key.as_str())) {
                *v += 1;
            }
        })
    });

    // What every store operation pays to read the time (two per
    // reserve+commit): `SystemTime::now()`, and the store's own clock.
    g.bench_function("baseline/std_system_time_read", |b| {
        b.iter(budgetgate::clock::system_time_micros)
    });
    g.bench_function("budgetgate_clock_read", |b| {
        b.iter(|| budgetgate::clock::Clock::now_micros(&budgetgate::clock::SystemClock))
    });

    let engine = Engine::in_memory();
    let allow = Ledger::new("openai", "gpt-4o", "user:allow");
    engine.set_budget(&allow, Budget::lifetime(dec!(1000000000000)).unwrap());
    g.bench_function("check_allow", |b| {
        b.iter(|| engine.check(&allow, dec!(0.000001)))
    });
    let block = Ledger::new("openai", "gpt-4o", "user:block");
    engine.set_budget(&block, Budget::lifetime(dec!(0)).unwrap());
    g.bench_function("check_block", |b| b.iter(|| engine.check(&block, dec!(1))));
    g.bench_function("reserve_commit", |b| {
        b.iter(|| {
            let r = engine.reserve(&allow, dec!(0.00001)).unwrap();
            r.commit(dec!(0.000001)).unwrap()
        })
    });
    g.finish();
}

/// Steady state with N spends in a rolling window: the clock moves 1 µs per
/// operation and the window is N µs long, so each call prunes one entry and
/// appends one.
fn window_size(c: &mut Criterion) {
    let mut g = c.benchmark_group("window_size");
    for n in [10u64, 1_000, 100_000, 1_000_000] {
        let clock = ManualClock::new(0);
        let engine = Engine::new(MemoryStore::with_clock(clock.clone()));
        let ledger = Ledger::new("bench", "window", n.to_string());
        engine.set_budget(
            &ledger,
            Budget::rolling(dec!(1000000000000), Duration::from_micros(n)).unwrap(),
        );
        for _ in 0..n {
            clock.advance(Duration::from_micros(1));
            assert!(engine.check(&ledger, dec!(0.000001)).is_allowed());
        }
        g.bench_with_input(BenchmarkId::new("check_allow", n), &n, |b, _| {
            b.iter(|| {
                clock.advance(Duration::from_micros(1));
                engine.check(&ledger, dec!(0.000001))
            })
        });
    }
    g.finish();
}

/// Runs `work(thread, iters)` on `threads` threads started together; the
/// wall time of the slowest.
fn parallel(
    threads: usize,
    iters: u64,
    work: impl Fn(usize, u64) + Send + Sync + Clone + 'static,
) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (barrier, work) = (barrier.clone(), work.clone());
            std::thread::spawn(move || {
                barrier.wait();
                work(t, iters)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for w in workers {
        w.join().unwrap();
    }
    start.elapsed()
}

/// Total throughput of 1 and 2 threads, each on its own ledger, beside the
/// same scaling for a per-thread `Mutex<HashMap>` add (what the machine
/// itself allows).
fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("threads_distinct_ledgers");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_with_input(
            BenchmarkId::new("baseline_mutex_hashmap", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    parallel(threads, iters, |t, iters| {
                        let map: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
                        let key = format!("t{t}");
                        map.lock().unwrap().insert(key.clone(), 0);
                        for _ in 0..iters {
                            *black_box(&map)
                                .lock()
                                .unwrap()
                                .get_mut(key.as_str())
                                .unwrap() += 1;
                        }
                    })
                })
            },
        );
    }
    let engine = Engine::in_memory();
    let ledgers: Vec<Ledger> = (0..2)
        .map(|t| Ledger::new("bench", "threads", format!("t{t}")))
        .collect();
    for ledger in &ledgers {
        engine.set_budget(ledger, Budget::lifetime(dec!(1000000000000)).unwrap());
    }
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_with_input(
            BenchmarkId::new("reserve_commit", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    let (engine, ledgers) = (engine.clone(), ledgers.clone());
                    parallel(threads, iters, move |t, iters| {
                        for _ in 0..iters {
                            let r = engine.reserve(&ledgers[t], dec!(0.00001)).unwrap();
                            black_box(r.commit(dec!(0.000001)).unwrap());
                        }
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = single_thread, window_size, threads
}
criterion_main!(benches);
