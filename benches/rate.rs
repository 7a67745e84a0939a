//! In-memory rate gate beside `governor`'s keyed limiter, same run.
//! Run: `cargo bench --bench rate`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use budgetgate::rate::{Gate, Policy};
use budgetgate::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use governor::{Quota, RateLimiter};

fn gate_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_check_allow");
    let quota = Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap());
    let limiter = RateLimiter::keyed(quota);
    let key = "tools:search@user:42".to_string();
    g.bench_function("baseline/governor_keyed", |b| {
        b.iter(|| limiter.check_key(black_box(&key)).is_ok())
    });

    let engine = Engine::in_memory();
    let gate = Gate::new("tools", "search", "user:42");
    let bucket = Policy::new().bucket(1_000_000_000, 1_000_000_000, Duration::from_secs(1));
    g.bench_function("budgetgate/token_bucket", |b| {
        b.iter(|| engine.rate_check(&gate, &bucket))
    });
    let cooldown = Policy::new().cooldown(Duration::from_micros(0));
    let cooldown_gate = Gate::new("tools", "search", "user:43");
    g.bench_function("budgetgate/cooldown", |b| {
        b.iter(|| engine.rate_check(&cooldown_gate, &cooldown))
    });
    let window = Policy::new().max_calls(u64::MAX, Duration::from_millis(10));
    let window_gate = Gate::new("tools", "search", "user:44");
    g.bench_function("budgetgate/max_calls_10ms_window", |b| {
        b.iter(|| engine.rate_check(&window_gate, &window))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = gate_check
}
criterion_main!(benches);
