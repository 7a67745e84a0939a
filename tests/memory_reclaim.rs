//! The in-memory store does not grow without bound: one-off principals are
//! reclaimed once nothing of theirs counts, and abandoned reservations
//! expire through a heap, not by scanning every open one.

use std::time::Duration;

use budgetgate::clock::ManualClock;
use budgetgate::{dec, Budget, Engine, Ledger, MemoryStore};

fn engine(clock: &ManualClock) -> Engine {
    Engine::builder()
        .store(MemoryStore::with_clock(clock.clone()))
        .reservation_ttl(Duration::from_secs(60))
        .build()
}

/// 200,000 one-off principals on a rolling minute: once their spend left
/// the window they are dropped as new ones arrive; ledgers that still hold
/// spend (a lifetime cap) are kept with their totals.
#[test]
fn one_off_principals_are_reclaimed_and_live_ones_kept() {
    let clock = ManualClock::new(1_700_000_000_000_000);
    let engine = engine(&clock);
    let minute = Budget::rolling(dec!(1), Duration::from_secs(60)).unwrap();
    engine.set_budget_per_principal("llm", "chat", minute);
    let keep: Vec<Ledger> = (0..1000)
        .map(|i| Ledger::new("llm", "lifetime", format!("user:{i}")))
        .collect();
    for l in &keep {
        engine.set_budget(l, Budget::lifetime(dec!(10)).unwrap());
        assert!(engine.check(l, dec!(3)).is_allowed());
    }
    for wave in 0..4 {
        for i in 0..50_000 {
            let l = Ledger::new("llm", "chat", format!("one-off:{wave}:{i}"));
            assert!(engine.check(&l, dec!(0.5)).is_allowed());
        }
        clock.advance(Duration::from_secs(61)); // this wave's spend leaves
    }
    let held = engine.active_ledgers(usize::MAX).unwrap().len();
    assert!(held < 120_000, "{held} ledgers kept for 201,000 used");
    for l in &keep {
        assert_eq!(engine.status(l).unwrap().committed(), dec!(3), "{l}");
        assert!(engine.check(l, dec!(8)).is_blocked(), "{l}: 3 + 8 > 10");
    }
}

/// 20,000 abandoned reservations expiring one by one: each call sees
/// exactly the headroom of those that expired.
#[test]
fn abandoned_reservations_expire_one_by_one() {
    let clock = ManualClock::new(1_700_000_000_000_000);
    let engine = engine(&clock);
    let l = Ledger::new("llm", "chat", "abandoner");
    engine.set_budget(&l, Budget::lifetime(dec!(20000)).unwrap());
    for _ in 0..20_000 {
        let r = engine.reserve(&l, dec!(1)).unwrap();
        std::mem::forget(r.into_owned()); // the holder died
        clock.advance(Duration::from_micros(100));
    }
    assert!(engine.check(&l, dec!(1)).is_blocked(), "all held");
    // Reservations were made 100 µs apart with a 60 s TTL: 60 s after the
    // first, they expire one per 100 µs.
    clock.advance(Duration::from_secs(58) - Duration::from_micros(100));
    for expired in 1..=1000u32 {
        clock.advance(Duration::from_micros(100));
        let status = engine.status(&l).unwrap();
        assert_eq!(
            status.reserved(),
            rust_decimal::Decimal::from(20_000 - expired),
            "after {expired}"
        );
    }
}
