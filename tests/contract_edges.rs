//! The contract's edges that involve no store: windows, offsets, budgets
//! from configuration, warning thresholds, `dec!`, events, and how
//! decisions read in logs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use budgetgate::{
    dec, BlockReason, Budget, BudgetError, Decimal, Engine, Event, Ledger, Release, Window,
};
use proptest::prelude::*;

#[test]
fn utc_offsets_beyond_a_day_are_refused() {
    for minutes in [-1440i16, -720, 0, 330, 1440] {
        assert!(Budget::new(
            dec!(1),
            Window::Daily {
                utc_offset_minutes: minutes
            }
        )
        .is_ok());
        assert!(Budget::new(
            dec!(1),
            Window::Monthly {
                utc_offset_minutes: minutes
            }
        )
        .is_ok());
    }
    for minutes in [3000i16, -3000, 1441, -1441, i16::MAX, i16::MIN] {
        let daily = Budget::new(
            dec!(1),
            Window::Daily {
                utc_offset_minutes: minutes,
            },
        );
        assert!(
            matches!(daily, Err(BudgetError::UtcOffset { minutes: m, .. }) if m == minutes),
            "{minutes}: {daily:?}"
        );
        let monthly = Budget::new(
            dec!(1),
            Window::Monthly {
                utc_offset_minutes: minutes,
            },
        );
        assert!(monthly.is_err(), "{minutes}");
        assert!(format!("daily{minutes:+}min").parse::<Window>().is_err());
    }
}

#[test]
fn window_errors_name_every_form() {
    let message = "fortnightly".parse::<Window>().unwrap_err().to_string();
    for form in ["daily", "monthly", "unbounded", "1h"] {
        assert!(message.contains(form), "{message}");
    }
}

#[test]
fn windows_print_in_the_units_they_parse_from() {
    let w = |s: &str| s.parse::<Window>().unwrap();
    assert_eq!(w("3600s").to_string(), "1h");
    assert_eq!(w("90m").to_string(), "90m");
    assert_eq!(w("500ms").to_string(), "500ms");
    assert_eq!(w("7d").to_string(), "7d");
    assert_eq!(
        Window::Rolling(Duration::from_micros(1500)).to_string(),
        "1500us"
    );
    assert_eq!(w("daily").to_string(), "daily");
    assert_eq!(w("monthly-300min").to_string(), "monthly-300min");
    assert_eq!(
        w("daily+60min"),
        Window::Daily {
            utc_offset_minutes: 60
        }
    );
}

proptest! {
    /// Every window prints a text that parses back to it.
    #[test]
    fn window_display_parses_back(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000, offset in -1440i16..=1440) {
        let d = Duration::new(secs, nanos);
        prop_assume!(!d.is_zero());
        for window in [
            Window::Rolling(d),
            Window::Daily { utc_offset_minutes: offset },
            Window::Monthly { utc_offset_minutes: offset },
            Window::Unbounded,
        ] {
            prop_assert_eq!(window.to_string().parse::<Window>(), Ok(window));
        }
    }
}

#[test]
fn budgets_and_windows_come_from_configuration() {
    let b: Budget = serde_json::from_str(
        r#"{"max_spend": "12.50", "window": "monthly+60min", "on_store_error": "FAIL_OPEN", "warn_at": ["0.5", "0.9"]}"#,
    )
    .unwrap();
    assert_eq!(b.max_spend(), dec!(12.50));
    assert_eq!(
        b.window(),
        Window::Monthly {
            utc_offset_minutes: 60
        }
    );
    assert_eq!(b.on_store_error(), budgetgate::StoreErrorMode::FailOpen);
    assert_eq!(b.warn_fractions(), vec![dec!(0.5), dec!(0.9)]);
    // Round trip through its own JSON.
    let again: Budget = serde_json::from_value(serde_json::to_value(b).unwrap()).unwrap();
    assert_eq!(again, b);
    // Integers are amounts too; the window defaults to a lifetime cap.
    let b: Budget = serde_json::from_str(r#"{"max_spend": 5}"#).unwrap();
    assert_eq!((b.max_spend(), b.window()), (dec!(5), Window::Unbounded));
    let w: Window = serde_json::from_str(r#""15m""#).unwrap();
    assert_eq!(w, Window::Rolling(Duration::from_secs(900)));
    // Every rule applies, and mistakes are named.
    for (json, needle) in [
        (r#"{"max_spend": 0.1}"#, "write it as a string"),
        (r#"{"max_spend": "-1"}"#, "max_spend"),
        (r#"{"max_spend": "1", "window": "0s"}"#, "window"),
        (
            r#"{"max_spend": "1", "window": "daily+3000min"}"#,
            "daily+3000min",
        ),
        (r#"{"max_spend": "1", "warn_at": ["80"]}"#, "0.8"),
        (r#"{"max_spend": "1", "max_spnd": "2"}"#, "max_spnd"),
    ] {
        let error = serde_json::from_str::<Budget>(json)
            .unwrap_err()
            .to_string();
        assert!(error.contains(needle), "{json}: {error}");
    }
}

#[test]
fn warning_thresholds_are_validated_not_ignored() {
    let b = Budget::daily(dec!(10)).unwrap();
    let err = b.warn_at(dec!(80)).unwrap_err();
    assert!(err.to_string().contains("0.8"), "{err}");
    for bad in [dec!(0), dec!(-0.5), dec!(1.01), dec!(0.00001), dec!(1000)] {
        assert!(
            matches!(b.warn_at(bad), Err(BudgetError::WarnThreshold { .. })),
            "{bad}"
        );
    }
    let four = b
        .warn_at(dec!(0.25))
        .and_then(|b| b.warn_at(dec!(1)))
        .and_then(|b| b.warn_at(dec!(0.5)))
        .and_then(|b| b.warn_at(dec!(0.75)))
        .unwrap();
    assert_eq!(
        four.warn_thresholds(),
        vec![dec!(2.5), dec!(5), dec!(7.5), dec!(10)]
    );
    assert_eq!(
        four.warn_at(dec!(0.5)).unwrap(),
        four,
        "a repeat is not a new threshold"
    );
    assert_eq!(
        four.warn_at(dec!(0.9)),
        Err(BudgetError::TooManyThresholds { max: 4 })
    );
    // Thresholds round up: a warning never comes before the exact fraction.
    let odd = Budget::lifetime(dec!(0.000000003))
        .unwrap()
        .warn_at(dec!(0.5))
        .unwrap();
    assert_eq!(odd.warn_thresholds(), vec![dec!(0.000000002)]);
}

#[test]
fn dec_reads_the_literal_exactly() {
    const CAP: Decimal = dec!(10.50);
    assert_eq!(CAP, Decimal::new(1050, 2));
    assert_eq!(dec!(0.1) + dec!(0.2), dec!(0.3));
    assert_eq!(dec!(-3), Decimal::from(-3));
    assert_eq!(dec!("0.000000001"), Decimal::new(1, 9));
    assert_eq!(dec!(79228162514264337593543950335), Decimal::MAX);
    assert_eq!(dec!(0.1000).to_string(), "0.1000", "the scale is kept");
}

#[test]
fn commits_and_releases_are_events() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let clock = budgetgate::clock::ManualClock::new(1_700_000_000_000_000);
    let engine = Engine::builder()
        .store(budgetgate::MemoryStore::with_clock(clock.clone()))
        .listener(move |e: &Event<'_>| {
            let line = match e {
                Event::Committed {
                    ledger,
                    estimate,
                    actual,
                    late,
                    ..
                } => format!("commit {} {estimate} {actual} {late}", ledger.principal()),
                Event::Released {
                    ledger,
                    estimate,
                    held,
                    ..
                } => format!("release {} {estimate} {held}", ledger.principal()),
                _ => return,
            };
            sink.lock().unwrap().push(line);
        })
        .reservation_ttl(Duration::from_secs(1))
        .build();
    let user = Ledger::new("llm", "chat", "user:1");
    let org = Ledger::new("llm", "chat", "org");
    engine.set_budget(&user, Budget::lifetime(dec!(10)).unwrap());
    engine.set_budget(&org, Budget::lifetime(dec!(10)).unwrap());
    engine
        .reserve(&user, dec!(1))
        .unwrap()
        .commit(dec!(0.25))
        .unwrap();
    assert_eq!(
        engine.reserve(&user, dec!(1)).unwrap().release().unwrap(),
        Release::Released
    );
    let both = engine
        .reserve_all(&[user.clone(), org.clone()], dec!(2))
        .unwrap();
    both.commit(dec!(1.5)).unwrap();
    let expired = engine.reserve(&user, dec!(1)).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(expired.release().unwrap(), Release::NotHeld);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "commit user:1 1 0.25 false",
            "release user:1 1 true",
            "commit user:1 2 1.5 false",
            "commit org 2 1.5 false",
            "release user:1 1 false",
        ]
    );
}

#[test]
fn messages_and_logs_read_like_the_json() {
    let engine = Engine::in_memory();
    let ledger = Ledger::new("llm", "chat", "user:1");
    let d = engine.check(&ledger, dec!(1));
    assert_eq!(d.reason(), Some(BlockReason::NoBudget));
    assert_eq!(d.reason().unwrap().to_string(), "NO_BUDGET");
    assert_eq!(d.status().to_string(), "BLOCK");
    let d = engine.check_with(&ledger, Some(&Budget::lifetime(dec!(1)).unwrap()), dec!(-1));
    let message = d.message();
    assert!(message.contains("invalid amount"), "{message}");
    assert!(!message.contains("InvalidAmount"), "{message}");

    // `tracing` fields are the JSON names, not Debug forms.
    let fields = Arc::new(Mutex::new(Vec::<String>::new()));
    let subscriber = Recorder(fields.clone());
    tracing::subscriber::with_default(subscriber, || {
        let _ = engine.check(&ledger, dec!(1));
    });
    let fields = fields.lock().unwrap().join(" ");
    assert!(fields.contains("reason=NO_BUDGET"), "{fields}");
    assert!(!fields.contains("Some("), "{fields}");
}

/// A `tracing` subscriber that keeps every event's fields as `name=value`.
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut Vec<String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = Vec::new();
        event.record(&mut Fields(&mut out));
        self.0.lock().unwrap().extend(out);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn durations_at_their_extremes_are_refused_or_clamped() {
    assert!(matches!(
        Budget::rolling(dec!(1), Duration::MAX),
        Err(BudgetError::WindowTooLong { .. })
    ));
    assert!(Budget::rolling(dec!(1), budgetgate::budget::MAX_DURATION).is_ok());
    assert!("99999999999d"
        .parse::<Window>()
        .map_or(true, |w| Budget::new(dec!(1), w).is_err()));
    for ttl in [Duration::ZERO, Duration::from_nanos(1), Duration::MAX] {
        let engine = Engine::builder()
            .store(budgetgate::MemoryStore::new())
            .reservation_ttl(ttl)
            .build();
        let ttl_used = engine.reservation_ttl();
        assert!(
            ttl_used >= Duration::from_secs(1),
            "{ttl:?} -> {ttl_used:?}"
        );
        assert!(
            ttl_used <= budgetgate::budget::MAX_DURATION,
            "{ttl:?} -> {ttl_used:?}"
        );
        // A reservation is held, not lost at once: 10 of 10, no more.
        let l = Ledger::new("ttl", "r", format!("{ttl:?}"));
        engine.set_budget(&l, Budget::lifetime(dec!(10)).unwrap());
        let held: Vec<_> = (0..12)
            .filter_map(|_| engine.reserve(&l, dec!(1)).ok())
            .collect();
        assert_eq!(held.len(), 10, "{ttl:?}");
    }
}
