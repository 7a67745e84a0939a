//! The admin API: operator budgets, the kill switch, resets.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use budgetgate::shared::SharedBudget;
use serde::Deserialize;
use serde_json::Value;

use super::{AdminKey, AppState, ReadKey};
use crate::body::Body;
use crate::error::ApiError;
use crate::ops::{self, LedgerRef, ScopeRef};

/// `GET /v1/admin/budgets` (read).
pub async fn budgets_list(
    State(s): State<Arc<AppState>>,
    _: ReadKey,
) -> Result<Json<Value>, ApiError> {
    ops::budgets_list(&s.engine).await.map(Json)
}

/// `PUT /v1/admin/budgets` with a [`SharedBudget`] (admin).
pub async fn budgets_set(
    State(s): State<Arc<AppState>>,
    AdminKey(caller): AdminKey,
    Body(budget): Body<SharedBudget>,
) -> Result<Json<Value>, ApiError> {
    tracing::warn!(by = %caller.name, namespace = %budget.namespace, resource = %budget.resource,
        principal = %budget.principal, "operator budget set through the API");
    ops::budgets_set(&s.engine, budget).await.map(Json)
}

/// `DELETE /v1/admin/budgets?namespace=&resource=&principal=` (admin).
pub async fn budgets_rm(
    State(s): State<Arc<AppState>>,
    AdminKey(caller): AdminKey,
    query: Result<Query<LedgerRef>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(l) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    tracing::warn!(by = %caller.name, namespace = %l.namespace, resource = %l.resource,
        principal = %l.principal, "operator budget removed through the API");
    ops::budgets_rm(&s.engine, l).await.map(Json)
}

/// `POST /v1/admin/pause` (admin).
pub async fn pause(
    State(s): State<Arc<AppState>>,
    AdminKey(caller): AdminKey,
    Body(scope): Body<ScopeRef>,
) -> Result<Json<Value>, ApiError> {
    let scope = scope.scope()?;
    tracing::warn!(by = %caller.name, %scope, "paused through the API");
    ops::set_paused(&s.engine, scope, true).await.map(Json)
}

/// `POST /v1/admin/resume` (admin).
pub async fn resume(
    State(s): State<Arc<AppState>>,
    AdminKey(caller): AdminKey,
    Body(scope): Body<ScopeRef>,
) -> Result<Json<Value>, ApiError> {
    let scope = scope.scope()?;
    tracing::warn!(by = %caller.name, %scope, "resumed through the API");
    ops::set_paused(&s.engine, scope, false).await.map(Json)
}

/// `GET /v1/admin/paused` (read).
pub async fn paused(State(s): State<Arc<AppState>>, _: ReadKey) -> Result<Json<Value>, ApiError> {
    ops::paused(&s.engine).await.map(Json)
}

/// `{"ledger": {…}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The ledger to reset.
    pub ledger: LedgerRef,
}

/// `POST /v1/admin/reset` (admin): recorded with the key's name.
pub async fn reset(
    State(s): State<Arc<AppState>>,
    AdminKey(caller): AdminKey,
    Body(body): Body<ResetBody>,
) -> Result<Json<Value>, ApiError> {
    ops::reset(&s.engine, body.ledger.ledger(), caller.name)
        .await
        .map(Json)
}
