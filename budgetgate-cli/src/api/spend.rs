//! The spend API: check, reserve, commit, release, rate, status, ledgers.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use budgetgate::rate::Gate;
use budgetgate::{Ledger, Policy, Window};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{decision_status, observe, AppState, ReadKey, SpendKey};
use crate::amount::Amount;
use crate::body::Body;
use crate::error::ApiError;
use crate::ops::{self, LedgerRef};

/// Most ledgers in one hierarchy.
pub const MAX_LEDGERS: usize = 16;

/// `{"ledger": {…}}` or `{"ledgers": [{…}, …]}`, and an amount.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendBody {
    /// One ledger.
    pub ledger: Option<LedgerRef>,
    /// A hierarchy (all or nothing).
    pub ledgers: Option<Vec<LedgerRef>>,
    /// The cost (check) or worst case (reserve).
    pub amount: Amount,
}

impl SpendBody {
    fn targets(&self) -> Result<Vec<Ledger>, ApiError> {
        match (&self.ledger, &self.ledgers) {
            (Some(l), None) => Ok(vec![l.ledger()]),
            (None, Some(ls)) if !ls.is_empty() && ls.len() <= MAX_LEDGERS => {
                Ok(ls.iter().map(LedgerRef::ledger).collect())
            }
            (None, Some(_)) => Err(ApiError::bad_request(format!(
                "\"ledgers\" must list 1 to {MAX_LEDGERS} ledgers"
            ))),
            _ => Err(ApiError::bad_request(
                "give exactly one of \"ledger\" and \"ledgers\"",
            )),
        }
    }
}

fn decision_response(d: &budgetgate::Decision) -> Response {
    (decision_status(d), Json(d)).into_response()
}

/// `POST /v1/check`: a fixed cost, recorded if it fits.
pub async fn check(
    State(s): State<Arc<AppState>>,
    _: SpendKey,
    Body(body): Body<SpendBody>,
) -> Result<Response, ApiError> {
    let targets = body.targets()?;
    let amount = body.amount.0;
    let started = Instant::now();
    let d = if targets.len() == 1 {
        s.engine.check_with_async(&targets[0], None, amount).await
    } else {
        s.engine.check_all_async(&targets, amount).await
    };
    observe("check", started);
    if d.is_allowed() {
        super::count_spend(amount);
    }
    Ok(decision_response(&d))
}

/// `POST /v1/reserve`: hold a worst case; answers its id.
pub async fn reserve(
    State(s): State<Arc<AppState>>,
    _: SpendKey,
    Body(body): Body<SpendBody>,
) -> Result<Response, ApiError> {
    let targets = body.targets()?;
    let amount = body.amount.0;
    let started = Instant::now();
    let result = if targets.len() == 1 {
        s.engine.reserve_with_async(&targets[0], None, amount).await
    } else {
        s.engine.reserve_all_async(&targets, amount).await
    };
    observe("reserve", started);
    match result {
        Ok(r) => {
            let decision = r.decision().to_json();
            let store_id = r.id();
            let id = s.reservations.insert(r.into_owned(), s.reservation_ttl);
            if s.redis.is_some() {
                // Any replica on the store can settle it, even after this one stops.
                let record = super::settle::Record::open(&s, store_id, &targets, amount);
                super::settle::put(&s, &id, record).await;
            }
            Ok((
                StatusCode::OK,
                Json(json!({
                    "reservation_id": id,
                    "ttl_ms": s.reservation_ttl.as_millis() as u64,
                    "decision": decision,
                })),
            )
                .into_response())
        }
        Err(blocked) => {
            let d = blocked.into_decision();
            Ok((
                decision_status(&d),
                Json(json!({"reservation_id": null, "decision": d.to_json()})),
            )
                .into_response())
        }
    }
}

/// A gate in a request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRef {
    /// Namespace.
    pub namespace: String,
    /// Action.
    pub action: String,
    /// Principal.
    pub principal: String,
}

/// A token bucket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketBody {
    /// Most tokens.
    pub capacity: u64,
    /// Tokens added per period.
    pub tokens: u64,
    /// The period (`"1s"`).
    pub period: String,
}

/// `POST /v1/rate` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateBody {
    /// The gate.
    pub gate: GateRef,
    /// At most this many calls per `window`.
    pub max_calls: Option<u64>,
    /// The window of `max_calls` (`"1m"`).
    pub window: Option<String>,
    /// Least time between calls (`"500ms"`).
    pub cooldown: Option<String>,
    /// A token bucket.
    pub bucket: Option<BucketBody>,
}

fn duration(name: &str, text: &str) -> Result<std::time::Duration, ApiError> {
    match text.parse::<Window>() {
        Ok(Window::Rolling(d)) => Ok(d),
        _ => Err(ApiError::bad_request(format!(
            "{name} {text:?}: expected a duration such as \"1m\" or \"500ms\""
        ))),
    }
}

/// `POST /v1/rate`: a rate-gate check (recorded if allowed).
pub async fn rate(
    State(s): State<Arc<AppState>>,
    _: SpendKey,
    Body(body): Body<RateBody>,
) -> Result<Response, ApiError> {
    let mut policy = Policy::new();
    match (body.max_calls, &body.window) {
        (Some(n), Some(w)) => policy = policy.max_calls(n, duration("window", w)?),
        (None, None) => {}
        _ => {
            return Err(ApiError::bad_request(
                "\"max_calls\" and \"window\" go together",
            ))
        }
    }
    if let Some(c) = &body.cooldown {
        policy = policy.cooldown(duration("cooldown", c)?);
    }
    if let Some(b) = &body.bucket {
        policy = policy.bucket(b.capacity, b.tokens, duration("bucket.period", &b.period)?);
    }
    policy
        .validate()
        .map_err(|e| ApiError::bad_request(format!("invalid rate policy: {e}")))?;
    let gate = Gate::new(
        body.gate.namespace.as_str(),
        body.gate.action.as_str(),
        body.gate.principal.as_str(),
    );
    let started = Instant::now();
    let d = s.engine.rate_check_async(&gate, &policy).await;
    observe("rate", started);
    let answer = json!({
        "status": d.status().as_str(),
        "gate": {"namespace": gate.namespace(), "action": gate.action(), "principal": gate.principal()},
        "reason": d.reason().map(|r| r.as_str()),
        "message": d.message(),
        "calls_in_window": d.calls_in_window(),
        "retry_after_ms": d.retry_after().map(|r| r.as_millis() as u64),
    });
    if d.is_allowed() {
        return Ok((StatusCode::OK, Json(answer)).into_response());
    }
    let status = match d.reason() {
        Some(budgetgate::rate::RateReason::StoreError) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::TOO_MANY_REQUESTS,
    };
    let mut response = (status, Json(answer)).into_response();
    if let Some(after) = d.retry_after() {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            response.headers_mut().insert("retry-after", v);
        }
    }
    Ok(response)
}

/// `GET /v1/status?namespace=&resource=&principal=`.
pub async fn status(
    State(s): State<Arc<AppState>>,
    _: ReadKey,
    query: Result<Query<LedgerRef>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(l) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let started = Instant::now();
    let answer = ops::status(&s.engine, &l.ledger()).await;
    observe("status", started);
    answer.map(Json)
}

/// `?limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// Most ledgers listed (default 100, at most 10,000).
    pub limit: Option<usize>,
}

/// `GET /v1/ledgers?limit=`: most utilised first.
pub async fn ledgers(
    State(s): State<Arc<AppState>>,
    _: ReadKey,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    ops::ledgers(&s.engine, limit).await.map(Json)
}
