//! Real threads hammering one ledger of the in-memory store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use budgetgate::{Budget, Decimal, Engine, Ledger};
use rust_decimal_macros::dec;

/// 8 threads × 10,000 reserve/commit on one ledger: the spend seen by every
/// admitted reservation stays within max_spend, and the final total equals the
/// sum of committed actuals exactly.
#[test]
fn no_overspend_across_threads() {
    const THREADS: usize = 8;
    const OPS: usize = 10_000;
    let max = dec!(300);
    let engine = Engine::in_memory();
    let ledger = Ledger::new("llm", "gpt", "shared");
    engine.set_budget(&ledger, Budget::lifetime(max).unwrap());
    let blocked = Arc::new(AtomicUsize::new(0));

    let committed: Vec<Decimal> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (engine, ledger, blocked) = (&engine, &ledger, &blocked);
                scope.spawn(move || {
                    let mut sum = Decimal::ZERO;
                    for i in 0..OPS {
                        match engine.reserve(ledger, dec!(0.01)) {
                            Ok(r) => {
                                let seen = r.decision().spent_in_window();
                                assert!(seen <= max, "admitted at {seen} > {max}");
                                // 0.001 ..= 0.010, never above the estimate.
                                let actual = Decimal::new(((i + t) % 10 + 1) as i64, 3);
                                r.commit(actual).expect("commit");
                                sum += actual;
                            }
                            Err(e) => {
                                assert!(e.decision().spent_in_window() + dec!(0.01) > max);
                                blocked.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    sum
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let total: Decimal = committed.iter().sum();
    let status = engine.status(&ledger).unwrap();
    assert_eq!(
        status.committed(),
        total,
        "store total equals the sum of commits exactly"
    );
    assert_eq!(status.reserved(), dec!(0));
    assert!(total <= max);
    assert!(total > max - dec!(0.01), "the budget was used up: {total}");
    assert!(
        blocked.load(Ordering::Relaxed) > 0,
        "the run must reach the cap"
    );
}

/// Threads on distinct ledgers never see each other's spend.
#[test]
fn distinct_ledgers_share_nothing_under_threads() {
    let engine = Engine::in_memory();
    thread::scope(|scope| {
        for t in 0..8 {
            let engine = &engine;
            scope.spawn(move || {
                let ledger = Ledger::new("svc", "op", format!("user:{t}"));
                engine.set_budget(&ledger, Budget::lifetime(dec!(10)).unwrap());
                let admitted = (0..2_000)
                    .filter(|_| engine.check(&ledger, dec!(0.01)).is_allowed())
                    .count();
                assert_eq!(admitted, 1_000);
            });
        }
    });
}
