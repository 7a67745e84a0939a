//! Prometheus-style counters through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): install any `metrics` recorder (for example
//! `metrics-exporter-prometheus`) and register [`MetricsListener`] on the
//! engine; the `budgetgate serve` service does exactly this.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `budgetgate_decisions_total` | counter | `status` (`ALLOW`/`BLOCK`), `reason` (`BUDGET_EXCEEDED`, …, `none`) |
//! | `budgetgate_rate_decisions_total` | counter | `status`, `reason` |
//! | `budgetgate_reservation_commits_nanos_total` | counter | — (actual cost of committed reservations, per ledger charged, in 10⁻⁹ units) |
//! | `budgetgate_overruns_total` | counter | — |
//! | `budgetgate_overrun_nanos_total` | counter | — |
//! | `budgetgate_late_commits_total` | counter | — |
//! | `budgetgate_unrecorded_spend_total` | counter | — |
//! | `budgetgate_unrecorded_spend_nanos_total` | counter | — |
//! | `budgetgate_soft_limit_warnings_total` | counter | — |
//! | `budgetgate_resets_total` | counter | — |
//!
//! Amounts are counted in nano-units (integers), so sums are exact.
//!
//! ```
//! // Install the recorder first: the listener binds its counters to the
//! // recorder in place at its first event.
//! let engine = budgetgate::Engine::builder()
//!     .listener(budgetgate::metrics::MetricsListener::new())
//!     .build();
//! # let _ = engine;
//! ```

use crate::event::{Event, Listener};
use crate::Status;

/// Counts every [`Event`] into the `metrics` facade (see the module docs).
/// The decision counters are resolved once (at the first event) and kept,
/// so a decision costs an atomic add, not a registry lookup.
#[derive(Debug, Default)]
pub struct MetricsListener {
    decisions: std::sync::OnceLock<Vec<(Status, &'static str, metrics::Counter)>>,
}

/// Every reason a decision can carry, and `none`.
const REASONS: [&str; 6] = [
    "none",
    "BUDGET_EXCEEDED",
    "STORE_ERROR",
    "NO_BUDGET",
    "INVALID_AMOUNT",
    "PAUSED",
];

impl MetricsListener {
    /// A listener.
    pub fn new() -> Self {
        Self::default()
    }

    fn decision(&self, s: Status, reason: &'static str) {
        let all = self.decisions.get_or_init(|| {
            [Status::Allow, Status::Block]
                .into_iter()
                .flat_map(|s| REASONS.iter().map(move |r| (s, *r)))
                .map(|(s, r)| {
                    let c = metrics::counter!("budgetgate_decisions_total",
                        "status" => status(s), "reason" => r);
                    (s, r, c)
                })
                .collect()
        });
        match all.iter().find(|(st, r, _)| *st == s && *r == reason) {
            Some((_, _, c)) => c.increment(1),
            None => metrics::counter!("budgetgate_decisions_total",
                "status" => status(s), "reason" => reason)
            .increment(1),
        }
    }
}

fn nanos(amount: rust_decimal::Decimal) -> u64 {
    crate::amount::to_nanos(amount)
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Allow => "ALLOW",
        Status::Block => "BLOCK",
    }
}

impl Listener for MetricsListener {
    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::Decision(d) => {
                self.decision(d.status(), d.reason().map_or("none", |r| r.as_str()));
            }
            Event::Rate(d) => {
                let reason = d.reason().map_or("none", |r| r.as_str());
                metrics::counter!("budgetgate_rate_decisions_total",
                    "status" => status(d.status()), "reason" => reason)
                .increment(1);
            }
            Event::Committed { actual, late, .. } => {
                metrics::counter!("budgetgate_reservation_commits_nanos_total")
                    .increment(nanos(*actual));
                if *late {
                    metrics::counter!("budgetgate_late_commits_total").increment(1);
                }
            }
            Event::Overrun {
                estimate, actual, ..
            } => {
                metrics::counter!("budgetgate_overruns_total").increment(1);
                metrics::counter!("budgetgate_overrun_nanos_total")
                    .increment(nanos(*actual - *estimate));
            }
            Event::UnrecordedSpend { actual, .. } => {
                metrics::counter!("budgetgate_unrecorded_spend_total").increment(1);
                metrics::counter!("budgetgate_unrecorded_spend_nanos_total")
                    .increment(nanos(*actual));
            }
            Event::SoftLimit { .. } => {
                metrics::counter!("budgetgate_soft_limit_warnings_total").increment(1);
            }
            Event::Reset { .. } => {
                metrics::counter!("budgetgate_resets_total").increment(1);
            }
            _ => {}
        }
    }
}
