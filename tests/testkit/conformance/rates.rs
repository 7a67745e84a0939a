//! Call-rate gates: calls per window, cooldowns, token buckets, extreme policies, reading without consuming, store failures.

use super::*;

/// Rate policies at their extremes behave the same on every store and
/// never panic: `Duration::MAX` windows and cooldowns mean "as good as
/// forever", zero calls is an invalid policy.
pub fn rate_extreme_policies(f: &dyn StoreFactory) {
    let s = setup(f);
    let cooldown = Policy::new().cooldown(Duration::MAX);
    let g = gate("forever-cooldown");
    assert!(s.engine.rate_check(&g, &cooldown).is_allowed());
    s.clock.advance(Duration::from_secs(86_400 * 365));
    let d = s.engine.rate_check(&g, &cooldown);
    assert_eq!(d.reason(), Some(RateReason::Cooldown), "{}", d.message());
    assert!(d.retry_after().unwrap() > Duration::from_secs(86_400 * 365 * 90));

    let once = Policy::new().max_calls(1, Duration::MAX);
    let g = gate("forever-window");
    assert!(s.engine.rate_check(&g, &once).is_allowed());
    let d = s.engine.rate_check(&g, &once);
    assert_eq!(
        d.reason(),
        Some(RateReason::TooManyCalls),
        "{}",
        d.message()
    );
    s.clock.advance(Duration::from_secs(86_400 * 365));
    assert!(s.engine.rate_check(&g, &once).is_blocked());

    let bucket = Policy::new().bucket(1, 1, Duration::MAX);
    let g = gate("forever-bucket");
    let first = s.engine.rate_check(&g, &bucket);
    assert!(first.is_allowed(), "{}", first.message());
    let d = s.engine.rate_check(&g, &bucket);
    assert_eq!(d.reason(), Some(RateReason::BucketEmpty), "{}", d.message());

    for fail_open in [false, true] {
        let zero = Policy::new().max_calls(0, Duration::from_secs(60));
        let zero = if fail_open { zero.fail_open() } else { zero };
        let d = s.engine.rate_check(&gate("zero"), &zero);
        assert!(d.is_blocked(), "{}", d.message());
        assert_eq!(d.reason(), Some(RateReason::InvalidPolicy));
    }
}

/// A gate can be read without consuming a call: `rate_status` says what
/// `rate_check` would, and records nothing.
pub fn rate_status_peeks(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("peek");
    let policy = Policy::new()
        .max_calls(2, Duration::from_secs(60))
        .cooldown(Duration::from_secs(1));
    for _ in 0..5 {
        let peek = s.engine.rate_status(&g, &policy);
        assert!(peek.is_allowed(), "{}", peek.message());
        assert_eq!(peek.calls_in_window(), 0);
    }
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    let peek = s.engine.rate_status(&g, &policy);
    assert_eq!(peek.reason(), Some(RateReason::Cooldown));
    assert_eq!(peek.retry_after(), Some(Duration::from_secs(1)));
    s.clock.advance(Duration::from_secs(1));
    assert!(s.engine.rate_status(&g, &policy).is_allowed());
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    s.clock.advance(Duration::from_secs(1));
    let peek = s.engine.rate_status(&g, &policy);
    assert_eq!(peek.reason(), Some(RateReason::TooManyCalls));
    assert_eq!(peek.calls_in_window(), 2);
    assert_eq!(
        s.engine.rate_check(&g, &policy).reason(),
        Some(RateReason::TooManyCalls)
    );
}

fn gate(action: &str) -> Gate {
    let l = fresh_ledger("p");
    Gate::new(l.namespace(), action, "p")
}

/// At most max_calls in any rolling window; a call counts while
/// `time >= now - window`.
pub fn rate_max_calls(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("calls");
    let policy = Policy::new().max_calls(3, Duration::from_secs(60));
    for n in 1..=3 {
        let d = s.engine.rate_check(&g, &policy);
        assert!(d.is_allowed(), "{}", d.message());
        assert_eq!(d.calls_in_window(), n);
        s.clock.advance(Duration::from_secs(1));
    }
    let d = s.engine.rate_check(&g, &policy);
    assert_eq!(d.reason(), Some(RateReason::TooManyCalls));
    // The first call (at T0) stops counting 1 µs after T0 + 60 s; now is T0 + 3 s.
    assert_eq!(d.retry_after(), Some(Duration::from_micros(57_000_001)));
    s.clock.advance(Duration::from_secs(57));
    assert!(
        s.engine.rate_check(&g, &policy).is_blocked(),
        "at exactly the window edge it counts"
    );
    s.clock.advance(Duration::from_micros(1));
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
}

/// A cooldown between admitted calls; blocked calls do not restart it.
pub fn rate_cooldown(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("cooldown");
    let policy = Policy::new().cooldown(Duration::from_secs(2));
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    s.clock.advance(Duration::from_millis(1500));
    let d = s.engine.rate_check(&g, &policy);
    assert_eq!(d.reason(), Some(RateReason::Cooldown));
    assert_eq!(d.retry_after(), Some(Duration::from_millis(500)));
    assert_eq!(d.since_last(), Some(Duration::from_millis(1500)));
    s.clock.advance(Duration::from_millis(500));
    let d = s.engine.rate_check(&g, &policy);
    assert!(d.is_allowed(), "{}", d.message());
    assert_eq!(d.since_last(), Some(Duration::from_secs(2)));
}

/// A token bucket admits its capacity at once and refills at the stated rate.
pub fn rate_bucket_refill(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("bucket");
    let policy = Policy::new().bucket(10, 5, Duration::from_secs(1)); // 5/s
    for _ in 0..10 {
        assert!(s.engine.rate_check(&g, &policy).is_allowed());
    }
    let d = s.engine.rate_check(&g, &policy);
    assert_eq!(d.reason(), Some(RateReason::BucketEmpty));
    assert_eq!(d.retry_after(), Some(Duration::from_millis(200)));
    s.clock.advance(Duration::from_micros(199_999));
    assert_eq!(
        s.engine.rate_check(&g, &policy).retry_after(),
        Some(Duration::from_micros(1))
    );
    s.clock.advance(Duration::from_micros(1));
    assert!(
        s.engine.rate_check(&g, &policy).is_allowed(),
        "one token after 200 ms"
    );
    assert!(s.engine.rate_check(&g, &policy).is_blocked());
    s.clock.advance(Duration::from_secs(1));
    let admitted = (0..10)
        .filter(|_| s.engine.rate_check(&g, &policy).is_allowed())
        .count();
    assert_eq!(admitted, 5, "five tokens per second");
    s.clock.advance(Duration::from_secs(60));
    let admitted = (0..20)
        .filter(|_| s.engine.rate_check(&g, &policy).is_allowed())
        .count();
    assert_eq!(admitted, 10, "never more than the capacity at once");
}

/// Limits combine: every one must pass; the decision names a blocking one.
pub fn rate_combined(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("combined");
    let policy = Policy::new()
        .max_calls(2, Duration::from_secs(60))
        .cooldown(Duration::from_secs(1));
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    assert_eq!(
        s.engine.rate_check(&g, &policy).reason(),
        Some(RateReason::Cooldown)
    );
    s.clock.advance(Duration::from_secs(1));
    assert!(s.engine.rate_check(&g, &policy).is_allowed());
    s.clock.advance(Duration::from_secs(5));
    assert_eq!(
        s.engine.rate_check(&g, &policy).reason(),
        Some(RateReason::TooManyCalls)
    );
    // An invalid policy blocks instead of admitting everything.
    let d = s
        .engine
        .rate_check(&g, &Policy::new().bucket(0, 1, Duration::from_secs(1)));
    assert_eq!(d.reason(), Some(RateReason::InvalidPolicy));
}

/// Threads on one gate: exactly max_calls are admitted in a window.
pub fn rate_threads_exact(f: &dyn StoreFactory) {
    let s = setup(f);
    let g = gate("threads");
    let policy = Policy::new().max_calls(100, Duration::from_secs(3600));
    let admitted = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..40 {
                    if s.engine.rate_check(&g, &policy).is_allowed() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.load(Ordering::SeqCst), 100);
}

/// A failing store: fail-closed blocks, fail-open allows, both StoreError.
pub fn rate_store_failures(f: &dyn StoreFactory) {
    let clock = ManualClock::new(T0);
    let faulty = Faulty::new(f.store(&clock));
    let engine = Engine::new(faulty.clone());
    let g = gate("faults");
    faulty.set_failing(true);
    let policy = Policy::new().max_calls(1, Duration::from_secs(1));
    let d = engine.rate_check(&g, &policy);
    assert_eq!(
        (d.status(), d.reason()),
        (Status::Block, Some(RateReason::StoreError))
    );
    // A store failure is not a rate limit: its own kind, a message that
    // says so, and a retry_after a retry loop can sleep on.
    let limited = d.clone().into_result().unwrap_err();
    assert!(limited.is_store_error());
    assert!(limited.retry_after().is_some_and(|w| !w.is_zero()));
    let message = limited.to_string();
    assert!(message.contains("store failed"), "{message}");
    assert!(!message.contains("Some("), "{message}");
    let d = engine.rate_check(&g, &policy.fail_open());
    assert_eq!(
        (d.status(), d.reason()),
        (Status::Allow, Some(RateReason::StoreError))
    );
    faulty.set_failing(false);
    assert!(engine.rate_check(&g, &policy).is_allowed());
}
