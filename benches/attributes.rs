//! Overhead of the attributes (issue #3): a guarded function beside the same
//! work written by hand against the Engine API, in the same run.
//! Run: `cargo bench --bench attributes`.

use std::hint::black_box;
use std::sync::LazyLock;
use std::time::Duration;
use testkit::Blocked;

use budgetgate::{guard, guard_bounded, Budget, Decimal, Engine, Ledger};
use criterion::{criterion_group, criterion_main, Criterion};
use rust_decimal_macros::dec;

static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::in_memory);
const BUDGET: &str = "1000000000000";

#[guard(ledger = ("bench", "fixed", "p"), cost = "0.000001", max_spend = "1000000000000", engine = &*ENGINE)]
fn guarded_fixed(x: u64) -> Result<u64, Blocked> {
    Ok(x + 1)
}

fn by_hand_fixed(x: u64, budget: &Budget) -> Result<u64, Blocked> {
    let ledger = Ledger::new("bench", "fixed-hand", "p");
    let _admitted = ENGINE
        .check_with(&ledger, Some(budget), dec!(0.000001))
        .into_result()?;
    Ok(x + 1)
}

#[guard_bounded(ledger = ("bench", "bounded", "p"), estimate = "0.00001", actual = |_| dec!(0.000001),
                max_spend = "1000000000000", engine = &*ENGINE)]
fn guarded_bounded(x: u64) -> Result<u64, Blocked> {
    Ok(x + 1)
}

fn by_hand_bounded(x: u64, budget: &Budget) -> Result<u64, Blocked> {
    let ledger = Ledger::new("bench", "bounded-hand", "p");
    let reservation = ENGINE.reserve_with(&ledger, Some(budget), dec!(0.00001))?;
    let out: Result<u64, Blocked> = Ok(x + 1);
    match &out {
        Ok(_) => drop(reservation.commit(dec!(0.000001))),
        Err(_) => drop(reservation.release()),
    }
    out
}

#[guard_bounded(ledger = ("bench", "bounded-async", "p"), estimate = "0.00001", actual = |_| dec!(0.000001),
                max_spend = "1000000000000", engine = &*ENGINE)]
async fn guarded_bounded_async(x: u64) -> Result<u64, Blocked> {
    Ok(x + 1)
}

/// The async Engine API by hand: reserve, run, commit (a plain
/// `commit_async`, which a dropped future could cut short; the attribute's
/// commit is made sure of).
async fn by_hand_bounded_async(x: u64, budget: &Budget) -> Result<u64, Blocked> {
    let ledger = Ledger::new("bench", "bounded-async-hand", "p");
    let reservation = ENGINE
        .reserve_with_async(&ledger, Some(budget), dec!(0.00001))
        .await?;
    let out: Result<u64, Blocked> = Ok(x + 1);
    match &out {
        Ok(_) => drop(reservation.commit_async(dec!(0.000001)).await),
        Err(_) => drop(reservation.release_async().await),
    }
    out
}

fn overhead(c: &mut Criterion) {
    let budget = Budget::lifetime(BUDGET.parse::<Decimal>().unwrap()).unwrap();
    let mut g = c.benchmark_group("attribute_overhead");
    g.bench_function("fixed/by_hand", |b| {
        b.iter(|| by_hand_fixed(black_box(1), &budget))
    });
    g.bench_function("fixed/guard", |b| b.iter(|| guarded_fixed(black_box(1))));
    g.bench_function("bounded/by_hand", |b| {
        b.iter(|| by_hand_bounded(black_box(1), &budget))
    });
    g.bench_function("bounded/guard_bounded", |b| {
        b.iter(|| guarded_bounded(black_box(1)))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    g.bench_function("async_bounded/by_hand", |b| {
        b.iter(|| rt.block_on(by_hand_bounded_async(black_box(1), &budget)))
    });
    g.bench_function("async_bounded/guard_bounded", |b| {
        b.iter(|| rt.block_on(guarded_bounded_async(black_box(1))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = overhead
}
criterion_main!(benches);
