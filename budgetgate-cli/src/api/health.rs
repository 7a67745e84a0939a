//! `GET /health` and `GET /metrics` (no key needed: they reveal no ledger).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

/// `{"status": "healthy", "redis": "connected", "store": "redis", "latency_ms": 0.21}`;
/// 503 `{"status": "unhealthy", "redis": "disconnected", …}` when the store
/// cannot be reached. On the memory store `redis` is `"not configured"`.
pub async fn health(State(s): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    match &s.redis {
        Some(redis) => {
            let result = redis.ping().await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            super::observe("ping", started);
            match result {
                Ok(()) => (
                    StatusCode::OK,
                    Json(json!({"status": "healthy", "redis": "connected", "store": "redis", "latency_ms": ms})),
                )
                    .into_response(),
                Err(e) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"status": "unhealthy", "redis": "disconnected", "store": "redis", "latency_ms": ms, "error": e.to_string()})),
                )
                    .into_response(),
            }
        }
        None => (
            StatusCode::OK,
            Json(json!({"status": "healthy", "redis": "not configured", "store": "memory", "latency_ms": 0.0})),
        )
            .into_response(),
    }
}

/// Prometheus text.
pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    metrics::gauge!("budgetgate_open_reservations").set(s.reservations.open() as f64);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
