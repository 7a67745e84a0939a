//! The guards composed with other attributes: `#[tracing::instrument]` in both
//! orders, and methods inside `#[async_trait]` impls.
//!
//! Outer attributes expand first. `#[guard]` above `#[instrument]`: the span
//! wraps the guarded body, so the budget decision is recorded inside the span.
//! `#[instrument]` above `#[guard]`: the guard wraps the instrumented body, so
//! the decision happens before the span is entered and a blocked call opens
//! no span.

use std::sync::{Arc, LazyLock, Mutex};
use testkit::Blocked;

use async_trait::async_trait;
use budgetgate::{guard, guard_bounded, Decimal, Engine, Ledger};
use rust_decimal_macros::dec;
use tracing::subscriber::with_default;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::in_memory);

/// (event message, name of the span it happened in).
type Recorded = Vec<(String, Option<String>)>;

/// Records every event with its span.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recorded>>);

impl<S> Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let span = ctx.event_span(event).map(|s| s.name().to_owned());
        self.0.lock().unwrap().push((message.0, span));
    }
}

fn record(f: impl FnOnce()) -> Recorded {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    with_default(subscriber, f);
    let events = recorder.0.lock().unwrap().clone();
    events
}

fn decision_span(events: &Recorded, message: &str) -> Option<Option<String>> {
    events
        .iter()
        .find(|(m, _)| m == message)
        .map(|(_, s)| s.clone())
}

#[guard(ledger = ("comp", "outer", "p"), cost = "1", max_spend = "1", engine = &*ENGINE)]
#[tracing::instrument]
fn guard_outside(n: u32) -> Result<u32, Blocked> {
    tracing::info!("body ran");
    Ok(n)
}

#[tracing::instrument]
#[guard(ledger = ("comp", "inner", "p"), cost = "1", max_spend = "1", engine = &*ENGINE)]
fn instrument_outside(n: u32) -> Result<u32, Blocked> {
    tracing::info!("body ran");
    Ok(n)
}

#[test]
fn guard_above_instrument_decides_inside_the_span() {
    let events = record(|| {
        guard_outside(1).unwrap();
        guard_outside(2).unwrap_err();
    });
    assert_eq!(
        decision_span(&events, "budget allow"),
        Some(Some("guard_outside".into()))
    );
    assert_eq!(
        decision_span(&events, "budget block"),
        Some(Some("guard_outside".into()))
    );
    assert_eq!(events.iter().filter(|(m, _)| m == "body ran").count(), 1);
}

#[test]
fn instrument_above_guard_decides_before_the_span() {
    let events = record(|| {
        instrument_outside(1).unwrap();
        instrument_outside(2).unwrap_err();
    });
    assert_eq!(decision_span(&events, "budget allow"), Some(None));
    assert_eq!(decision_span(&events, "budget block"), Some(None));
    assert_eq!(
        decision_span(&events, "body ran"),
        Some(Some("instrument_outside".into()))
    );
}

#[guard_bounded(ledger = ("comp", "async-outer", "p"), estimate = "0.5", actual = |v: &u32| Decimal::from(*v) / dec!(10),
                max_spend = "1", engine = &*ENGINE)]
#[tracing::instrument]
async fn async_guard_outside(v: u32) -> Result<u32, Blocked> {
    Ok(v)
}

#[tracing::instrument]
#[guard_bounded(ledger = ("comp", "async-inner", "p"), estimate = "0.5", actual = |v: &u32| Decimal::from(*v) / dec!(10),
                max_spend = "1", engine = &*ENGINE)]
async fn async_instrument_outside(v: u32) -> Result<u32, Blocked> {
    Ok(v)
}

#[test]
fn async_both_orders() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let events = record(|| {
        rt.block_on(async {
            assert_eq!(async_guard_outside(2).await.unwrap(), 2);
            assert_eq!(async_instrument_outside(3).await.unwrap(), 3);
        })
    });
    let allows: Vec<_> = events.iter().filter(|(m, _)| m == "budget allow").collect();
    assert_eq!(allows.len(), 2);
    assert_eq!(allows[0].1.as_deref(), Some("async_guard_outside"));
    assert_eq!(allows[1].1, None);
    let status = |res| {
        ENGINE
            .status_with(
                &Ledger::new("comp", res, "p"),
                &budgetgate::Budget::lifetime(dec!(1)).unwrap(),
            )
            .unwrap()
            .committed()
    };
    assert_eq!(
        (status("async-outer"), status("async-inner")),
        (dec!(0.2), dec!(0.3))
    );
}

// ----- #[async_trait] ----------------------------------------------------------------

#[async_trait]
trait Tool {
    async fn run(&self, query: String) -> Result<usize, Blocked>;
    async fn run_bounded(&self, tokens: u64) -> Result<u64, Blocked>;
}

struct Search {
    tenant: String,
}

#[async_trait]
impl Tool for Search {
    #[guard(ledger = ("comp", "trait", self.tenant.clone()), cost = "0.4", max_spend = "1", engine = &*ENGINE)]
    async fn run(&self, query: String) -> Result<usize, Blocked> {
        Ok(query.len())
    }

    #[guard_bounded(ledger = ("comp", "trait-bounded", self.tenant.clone()), estimate = "0.5",
                    actual = |t: &u64| Decimal::from(*t) / dec!(1000), max_spend = "1", engine = &*ENGINE)]
    async fn run_bounded(&self, tokens: u64) -> Result<u64, Blocked> {
        if tokens == 0 {
            return Ok(0);
        }
        Ok(tokens)
    }
}

#[tokio::test]
async fn inside_async_trait_impls() {
    let tool: Box<dyn Tool + Send + Sync> = Box::new(Search {
        tenant: "t1".into(),
    });
    assert_eq!(tool.run("abc".into()).await.unwrap(), 3);
    assert_eq!(tool.run("de".into()).await.unwrap(), 2);
    assert!(tool.run("f".into()).await.is_err(), "0.8 + 0.4 > 1");
    assert_eq!(tool.run_bounded(300).await.unwrap(), 300);
    assert_eq!(tool.run_bounded(0).await.unwrap(), 0);
    let spent = ENGINE
        .status_with(
            &Ledger::new("comp", "trait-bounded", "t1"),
            &budgetgate::Budget::lifetime(dec!(1)).unwrap(),
        )
        .unwrap();
    assert_eq!((spent.committed(), spent.reserved()), (dec!(0.3), dec!(0)));
    // The trait object future is Send (spawnable).
    let handle = tokio::spawn(async move { tool.run_bounded(1).await.is_ok() });
    assert!(handle.await.unwrap());
}
