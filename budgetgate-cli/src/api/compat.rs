//! Routes compatible with `coreason-budget`'s documented server API, so its
//! clients can point at this service unchanged:
//!
//! - `POST /check` `{"user_id": "user_123", "estimated_cost": 0.05}` →
//!   200 `{"status": "allowed"}` or 429 `{"detail": "Budget exceeded for User user_123..."}`.
//!   Nothing is recorded (coreason's pre-flight check).
//! - `POST /spend` `{"user_id": …, "cost": 0.045, "project_id": "proj_alpha", "model": "gpt-4"}`
//!   → 200 `{"status": "recorded"}`. The cost is recorded in full on every
//!   level, even past a limit: the money was spent (coreason's post-flight charge).
//! - `GET /health` → `{"status": "healthy", "redis": "connected"}` (see `health.rs`).
//!
//! Its hierarchy maps onto budgetgate ledgers `NS:RES@user:<id>`,
//! `NS:RES@project:<id>` (when a `project_id` is given) and `NS:RES@global`
//! (`[compat]` `namespace`/`resource`, default `coreason:usd`), with daily
//! budgets from `daily_user_limit` (10), `daily_project_limit` (500) and
//! `daily_global_limit` (5000): registered in the service, so an operator
//! budget (`budgetgate budgets set coreason:usd@user:vip-*  …`) overrides
//! them. Amounts may be JSON numbers (read exactly from their text).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use budgetgate::store::SettleRequest;
use budgetgate::{Ledger, ReservationId, StatusError};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::{observe, AppState, CompatKey};
use crate::amount::Amount;
use crate::body::Body;
use crate::error::ApiError;

/// `POST /check` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// The user.
    pub user_id: String,
    /// The cost about to be spent (default 0: is anything left?).
    pub estimated_cost: Option<Amount>,
    /// The project (optional).
    pub project_id: Option<String>,
    /// Ignored (coreason logs it).
    pub model: Option<String>,
}

/// `POST /spend` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendBody {
    /// The user.
    pub user_id: String,
    /// What was spent.
    pub cost: Amount,
    /// The project (optional).
    pub project_id: Option<String>,
    /// Ignored (coreason logs it).
    pub model: Option<String>,
}

/// The ledgers a request charges, with coreason's name for each level.
fn levels(s: &AppState, user: &str, project: Option<&str>) -> Vec<(String, Ledger)> {
    let c = &s.compat;
    let ledger = |p: String| Ledger::new(c.namespace.as_str(), c.resource.as_str(), p);
    let mut out = vec![(format!("User {user}"), ledger(format!("user:{user}")))];
    if let Some(p) = project {
        out.push((format!("Project {p}"), ledger(format!("project:{p}"))));
    }
    out.push(("Global".to_owned(), ledger("global".to_owned())));
    out
}

fn detail(status: StatusCode, text: String) -> Response {
    (status, Json(json!({ "detail": text }))).into_response()
}

/// `POST /check`.
pub async fn check(
    State(s): State<Arc<AppState>>,
    _: CompatKey,
    Body(body): Body<CheckBody>,
) -> Result<Response, ApiError> {
    let estimate = body.estimated_cost.map_or(Decimal::ZERO, |a| a.0);
    let started = Instant::now();
    let paused = {
        let e = s.engine.clone();
        tokio::task::spawn_blocking(move || e.paused())
            .await
            .map_err(ApiError::store)?
    };
    let paused = match paused {
        Ok(p) => p,
        Err(e) => {
            return Ok(detail(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Budget check failed (fail closed): {e}"),
            ))
        }
    };
    for (name, ledger) in levels(&s, &body.user_id, body.project_id.as_deref()) {
        if paused.iter().any(|p| p.covers(&ledger)) {
            return Ok(detail(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Budget paused for {name} ({ledger})"),
            ));
        }
        match s.engine.status_async(&ledger).await {
            Ok(st) => {
                let spent = st.spent_in_window();
                let max = st.budget().max_spend();
                let over = if estimate.is_zero() {
                    spent >= max
                } else {
                    spent + estimate > max
                };
                if over {
                    observe("compat_check", started);
                    return Ok(detail(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "Budget exceeded for {name}: {spent} spent of {max} ({}), {estimate} requested",
                            st.budget().window()
                        ),
                    ));
                }
            }
            Err(StatusError::NoBudget(l)) => {
                return Ok(detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Budget exceeded for {name}: no budget applies to {l}"),
                ))
            }
            Err(e) => {
                return Ok(detail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Budget check failed (fail closed): {e}"),
                ))
            }
        }
    }
    observe("compat_check", started);
    Ok((StatusCode::OK, Json(json!({"status": "allowed"}))).into_response())
}

/// `POST /spend`.
pub async fn spend(
    State(s): State<Arc<AppState>>,
    _: CompatKey,
    Body(body): Body<SpendBody>,
) -> Result<Response, ApiError> {
    let cost = body.cost.0;
    let nanos =
        budgetgate::amount::to_nanos(cost).map_err(|e| ApiError::invalid_amount(e.to_string()))?;
    let levels = levels(&s, &body.user_id, body.project_id.as_deref());
    let mut caps = Vec::with_capacity(levels.len());
    for (name, ledger) in &levels {
        match s.engine.caps_for(ledger) {
            Some(c) => caps.push(c),
            None => {
                return Ok(detail(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("no budget applies to {name} ({ledger}): nothing was recorded"),
                ))
            }
        }
    }
    // Recorded as a commit of a reservation that is not held: the store
    // records the actual in full at its own time, on every level, once.
    let requests: Vec<SettleRequest<'_>> = levels
        .iter()
        .zip(&caps)
        .map(|((_, ledger), caps)| SettleRequest {
            ledger,
            limits: caps.limits(),
            id: ReservationId::new(),
            reserved: 0,
            actual: Some(nanos),
            record_if_missing: true,
            cancel: false,
        })
        .collect();
    let started = Instant::now();
    let result = s.engine.store().settle_many_async(requests).await;
    observe("compat_spend", started);
    match result {
        Ok(_) => {
            super::count_spend(cost);
            Ok((StatusCode::OK, Json(json!({"status": "recorded"}))).into_response())
        }
        Err(e) => Ok(detail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the spend was not recorded: {e}"),
        )),
    }
}
