//! Commit and release by id — idempotent, and on Redis from any replica.
//!
//! The replica that made a reservation holds it ([`crate::reservations`]);
//! on Redis it also writes a record of it to the store (`PREFIX:rec:res:<id>`:
//! the store's reservation id, the ledgers with their caps, the estimate),
//! and every settle writes its answer there. So a commit or release sent to
//! another replica — or after the first one stopped — settles the same hold
//! (the store settles an id once: a second settle of it changes nothing),
//! and the same request twice, anywhere, answers the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use budgetgate::store::{SettleOutcome, SettleRequest};
use budgetgate::{Budget, CommitError, Ledger, Release, ReservationId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{observe, AppState, SpendKey};
use crate::amount::Amount;
use crate::body::Body;
use crate::error::ApiError;
use crate::reservations::{Taken, SETTLED_RETENTION};

/// `{"reservation_id": …, "actual": …}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitBody {
    /// The id `reserve` answered.
    pub reservation_id: String,
    /// The actual cost.
    pub actual: Amount,
}

/// `{"reservation_id": …}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The id `reserve` answered.
    pub reservation_id: String,
}

/// One ledger of a recorded reservation, with the caps it was held under.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordLedger {
    namespace: String,
    resource: String,
    principal: String,
    budgets: Vec<Budget>,
}

/// A settled reservation's answer, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordAnswer {
    kind: String,
    actual: Option<Decimal>,
    status: u16,
    body: Value,
}

/// A reservation as the store keeps it for every replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    id: String,
    estimate: Decimal,
    ledgers: Vec<RecordLedger>,
    settled: Option<RecordAnswer>,
}

impl Record {
    /// An open reservation on `ledgers` (each under the caps that apply now).
    pub fn open(s: &AppState, id: ReservationId, ledgers: &[Ledger], estimate: Decimal) -> Record {
        Record {
            id: id.to_string(),
            estimate,
            ledgers: ledgers
                .iter()
                .map(|l| RecordLedger {
                    namespace: l.namespace().to_owned(),
                    resource: l.resource().to_owned(),
                    principal: l.principal().to_owned(),
                    budgets: s
                        .engine
                        .caps_for(l)
                        .map(|c| c.budgets().to_vec())
                        .unwrap_or_default(),
                })
                .collect(),
            settled: None,
        }
    }
}

/// How long a record is kept: an open one a minute past its hold's TTL
/// (a late commit is still recorded), a settled one for the retention.
fn record_ttl(s: &AppState, record: &Record) -> Duration {
    if record.settled.is_some() {
        SETTLED_RETENTION
    } else {
        s.reservation_ttl + Duration::from_secs(60)
    }
}

fn key(public_id: &str) -> String {
    format!("res:{public_id}")
}

/// Writes a record (a failure is logged: the replica that made the
/// reservation can still settle it).
pub async fn put(s: &Arc<AppState>, public_id: &str, record: Record) {
    let (store, key, ttl) = (
        s.engine.store().clone(),
        key(public_id),
        record_ttl(s, &record),
    );
    let text = serde_json::to_string(&record).unwrap_or_default();
    let result = tokio::task::spawn_blocking(move || store.put_record(&key, &text, ttl)).await;
    if !matches!(result, Ok(Ok(()))) {
        tracing::warn!(id = %public_id, "could not record a reservation in the store; only this replica can settle it");
    }
}

async fn get(s: &Arc<AppState>, public_id: &str) -> Result<Option<Record>, ApiError> {
    let (store, key) = (s.engine.store().clone(), key(public_id));
    let text = tokio::task::spawn_blocking(move || store.get_record(&key))
        .await
        .map_err(ApiError::store)?
        .map_err(ApiError::store)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 48
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{id:?} is not a reservation id (48 lowercase hex digits, as reserve answered)"
        )))
    }
}

fn replay(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Json(body),
    )
        .into_response()
}

fn unknown(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "unknown reservation {id}: never made, or expired and forgotten"
    ))
}

/// What a settle asks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Commit(Decimal),
    Release,
}

impl Action {
    fn kind(self) -> &'static str {
        match self {
            Action::Commit(_) => "committed",
            Action::Release => "released",
        }
    }
    fn actual(self) -> Option<Decimal> {
        match self {
            Action::Commit(a) => Some(a),
            Action::Release => None,
        }
    }
}

/// The answer to a request on an already settled reservation: the same
/// answer for the same request, 409 for another.
fn answer_settled(
    id: &str,
    action: Action,
    kind: &str,
    actual: Option<Decimal>,
    status: u16,
    body: Value,
) -> Result<Response, ApiError> {
    if kind == action.kind() && actual == action.actual() {
        return Ok(replay(status, body));
    }
    Err(ApiError::conflict(format!(
        "reservation {id} was already {kind}{}",
        actual.map_or_else(String::new, |a| format!(" with actual {a}"))
    )))
}

/// `POST /v1/commit`.
pub async fn commit(
    State(s): State<Arc<AppState>>,
    _: SpendKey,
    Body(body): Body<CommitBody>,
) -> Result<Response, ApiError> {
    check_id(&body.reservation_id)?;
    settle(s, body.reservation_id, Action::Commit(body.actual.0)).await
}

/// `POST /v1/release`.
pub async fn release(
    State(s): State<Arc<AppState>>,
    _: SpendKey,
    Body(body): Body<ReleaseBody>,
) -> Result<Response, ApiError> {
    check_id(&body.reservation_id)?;
    settle(s, body.reservation_id, Action::Release).await
}

async fn settle(s: Arc<AppState>, id: String, action: Action) -> Result<Response, ApiError> {
    let local = s.reservations.take(&id);
    if let Taken::Busy = local {
        return Err(ApiError::conflict(format!(
            "reservation {id} is being settled by another request"
        )));
    }
    if let Taken::Done(done) = &local {
        return answer_settled(
            &id,
            action,
            done.kind,
            done.actual,
            done.status,
            done.body.clone(),
        );
    }
    let record = if s.redis.is_some() {
        match get(&s, &id).await {
            Ok(r) => r,
            Err(e) => {
                if let Taken::Open(r) = local {
                    s.reservations.put_back(&id, r, s.reservation_ttl);
                }
                return Err(e);
            }
        }
    } else {
        None
    };
    if let Some(Record {
        settled: Some(a), ..
    }) = &record
    {
        // Settled by another replica: this one's hold object is dropped
        // (its release finds the id settled and changes nothing).
        let kind = if a.kind == "committed" {
            "committed"
        } else {
            "released"
        };
        s.reservations
            .finish(&id, kind, a.actual, a.status, a.body.clone());
        return answer_settled(&id, action, kind, a.actual, a.status, a.body.clone());
    }
    let started = Instant::now();
    let (status, answer) = match (local, record) {
        (Taken::Open(r), record) => {
            let answer = settle_local(*r, &id, action).await;
            if let Some(mut record) = record {
                record.settled = Some(RecordAnswer {
                    kind: action.kind().into(),
                    actual: action.actual(),
                    status: answer.0,
                    body: answer.1.clone(),
                });
                put(&s, &id, record).await;
            }
            answer
        }
        (_, Some(record)) => {
            let answer = settle_recorded(&s, &id, &record, action).await;
            if answer.0 == 503 {
                // Not settled: nothing is remembered, so a retry can settle it.
                return Ok(replay(answer.0, answer.1));
            }
            let mut record = record;
            record.settled = Some(RecordAnswer {
                kind: action.kind().into(),
                actual: action.actual(),
                status: answer.0,
                body: answer.1.clone(),
            });
            put(&s, &id, record).await;
            answer
        }
        (_, None) => return Err(unknown(&id)),
    };
    observe(
        if action == Action::Release {
            "release"
        } else {
            "commit"
        },
        started,
    );
    if status == 200 {
        if let Action::Commit(a) = action {
            super::count_spend(a);
        }
    }
    s.reservations
        .finish(&id, action.kind(), action.actual(), status, answer.clone());
    Ok(replay(status, answer))
}

/// Settles the reservation object this replica holds.
async fn settle_local(
    r: budgetgate::Reservation<'static>,
    id: &str,
    action: Action,
) -> (u16, Value) {
    let estimate = r.estimate();
    match action {
        Action::Commit(actual) => match r.commit_async(actual).await {
            Ok(c) => (
                200,
                json!({
                    "reservation_id": id, "state": "committed",
                    "estimate": c.estimate().to_string(), "actual": c.actual().to_string(),
                    "overrun": c.overrun().map(|o| o.to_string()), "late": c.is_late(),
                }),
            ),
            Err(CommitError::InvalidActual { .. }) => (
                422,
                json!({"error": "invalid_amount", "reservation_id": id, "message": "the actual was refused; the estimate was committed"}),
            ),
            Err(e) => (
                202,
                json!({"reservation_id": id, "state": "pending", "estimate": estimate.to_string(), "actual": actual.to_string(), "message": e.to_string()}),
            ),
        },
        Action::Release => match r.release_async().await {
            Ok(release) => (
                200,
                json!({"reservation_id": id, "state": "released", "estimate": estimate.to_string(), "held": release == Release::Released}),
            ),
            Err(e) => (
                503,
                json!({"error": "store_error", "reservation_id": id, "state": "unknown", "message": format!("the release was not confirmed; the hold expires after its TTL: {e}")}),
            ),
        },
    }
}

/// Settles a reservation another replica made, from its record in the store.
async fn settle_recorded(
    s: &Arc<AppState>,
    id: &str,
    record: &Record,
    action: Action,
) -> (u16, Value) {
    let (Ok(store_id), Ok(estimate)) = (
        u128::from_str_radix(&record.id, 16),
        budgetgate::amount::to_nanos(record.estimate),
    ) else {
        return (
            503,
            json!({"error": "store_error", "reservation_id": id, "message": "the reservation's record is unreadable"}),
        );
    };
    let ledgers: Vec<(Ledger, budgetgate::Caps)> = record
        .ledgers
        .iter()
        .filter_map(|l| {
            let caps = budgetgate::Caps::new(l.budgets.iter().copied())?;
            Some((
                Ledger::new(
                    l.namespace.as_str(),
                    l.resource.as_str(),
                    l.principal.as_str(),
                ),
                caps,
            ))
        })
        .collect();
    let actual = match action.actual().map(budgetgate::amount::to_nanos) {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            return (
                422,
                json!({"error": "invalid_amount", "reservation_id": id, "message": e.to_string()}),
            )
        }
        None => None,
    };
    let requests: Vec<SettleRequest<'_>> = ledgers
        .iter()
        .map(|(ledger, caps)| SettleRequest {
            ledger,
            limits: caps.limits(),
            id: ReservationId::from_u128(store_id),
            reserved: estimate,
            actual,
            // The money was spent: a commit records it even if the hold expired.
            record_if_missing: actual.is_some(),
            cancel: false,
        })
        .collect();
    match s.engine.store().settle_many_async(requests).await {
        Ok(outcomes) => {
            let first = outcomes.first().copied().unwrap_or(SettleOutcome::Unknown);
            match action {
                Action::Commit(a) => {
                    let overrun = (a > record.estimate).then(|| (a - record.estimate).to_string());
                    if overrun.is_some() {
                        metrics::counter!("budgetgate_overruns_total").increment(1);
                    }
                    (
                        200,
                        json!({
                            "reservation_id": id, "state": "committed",
                            "estimate": record.estimate.to_string(), "actual": a.to_string(),
                            "overrun": overrun, "late": first == SettleOutcome::CommittedLate,
                        }),
                    )
                }
                Action::Release => (
                    200,
                    json!({
                        "reservation_id": id, "state": "released",
                        "estimate": record.estimate.to_string(), "held": first == SettleOutcome::Released,
                    }),
                ),
            }
        }
        Err(e) => (
            503,
            json!({"error": "store_error", "reservation_id": id, "state": "unknown", "message": format!("not settled: {e}")}),
        ),
    }
}
