//! The HTTP service: state, routes, limits and [`serve`].
//!
//! | route | role | what |
//! |---|---|---|
//! | `POST /v1/check` | spend | fixed cost on one ledger or a hierarchy (all or nothing) |
//! | `POST /v1/reserve` | spend | reserve a worst case → `reservation_id` |
//! | `POST /v1/commit` | spend | commit a reservation's actual (idempotent) |
//! | `POST /v1/release` | spend | release a reservation (idempotent) |
//! | `POST /v1/rate` | spend | rate-gate check |
//! | `GET /v1/status` | read | one ledger's status (`?namespace=&resource=&principal=`) |
//! | `GET /v1/ledgers` | read | ledgers, most utilised first (`?limit=`) |
//! | `GET/PUT/DELETE /v1/admin/budgets` | read/admin/admin | operator budgets (shared through the store) |
//! | `POST /v1/admin/pause`, `/resume`, `GET /v1/admin/paused` | admin/admin/read | kill switch |
//! | `POST /v1/admin/reset` | admin | forget a ledger's spend (audited) |
//! | `POST /check`, `POST /spend` | spend (configurable) | coreason-budget compatible |
//! | `GET /health`, `GET /metrics` | none | health (store latency), Prometheus text |
//!
//! HTTP status per refusal reason: `BUDGET_EXCEEDED` and `NO_BUDGET` 402,
//! `PAUSED` 423, `INVALID_AMOUNT` 422, `STORE_ERROR` 503; a rate refusal is
//! 429 with `Retry-After`. The coreason routes answer 429 for every refusal.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use budgetgate::store::redis::RedisStore;
use budgetgate::{BlockReason, Budget, Decision, Engine, Ledger, Store};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

use crate::auth::{presented_key, Caller, Keys, Role};
use crate::config::{CompatConfig, Config};
use crate::error::ApiError;
use crate::reservations::Reservations;

pub mod admin;
pub mod compat;
pub mod health;
pub mod settle;
pub mod spend;

/// What every handler shares.
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// The Redis store, when one is used (health pings it).
    pub redis: Option<Arc<RedisStore>>,
    /// The keys.
    pub keys: Keys,
    /// Open and settled reservations.
    pub reservations: Reservations,
    /// The reservation TTL.
    pub reservation_ttl: Duration,
    /// The coreason routes' settings.
    pub compat: CompatConfig,
    /// Prometheus text.
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// The caller, if its key has `role`.
    pub fn auth(&self, headers: &HeaderMap, role: Role) -> Result<Caller, ApiError> {
        Ok(self.keys.authorize(presented_key(headers), role)?)
    }
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("budgetgate_store_seconds".into()),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 0.5, 1.0,
                    ],
                )
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then the
            // handle renders nothing of ours, which /metrics shows.
            let _ = metrics::set_global_recorder(recorder);
            // Shown from the start (at 0), so dashboards and alerts on
            // overruns and unrecorded spend have a series before the first.
            for name in [
                "budgetgate_spend_committed_nanos_total",
                "budgetgate_reservation_commits_nanos_total",
                "budgetgate_overruns_total",
                "budgetgate_overrun_nanos_total",
                "budgetgate_unrecorded_spend_total",
                "budgetgate_unrecorded_spend_nanos_total",
                "budgetgate_late_commits_total",
                "budgetgate_resets_total",
            ] {
                metrics::counter!(name).absolute(0);
            }
            handle
        })
        .clone()
}

/// The operations [`observe`] times.
const OPS: [&str; 9] = [
    "check",
    "reserve",
    "commit",
    "release",
    "rate",
    "status",
    "compat_check",
    "compat_spend",
    "ping",
];

/// Records how long a store operation took (histogram handles are resolved
/// once, after the recorder is installed by [`build_state`]).
pub fn observe(op: &'static str, started: Instant) {
    static HISTOGRAMS: OnceLock<Vec<(&'static str, metrics::Histogram)>> = OnceLock::new();
    let all = HISTOGRAMS.get_or_init(|| {
        OPS.iter()
            .map(|op| {
                (
                    *op,
                    metrics::histogram!("budgetgate_store_seconds", "op" => *op),
                )
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    match all.iter().find(|(o, _)| *o == op) {
        Some((_, h)) => h.record(seconds),
        None => metrics::histogram!("budgetgate_store_seconds", "op" => op).record(seconds),
    }
}

/// The HTTP status of a decision.
pub fn decision_status(d: &Decision) -> StatusCode {
    if d.is_allowed() {
        return StatusCode::OK;
    }
    match d.reason() {
        Some(BlockReason::BudgetExceeded) | Some(BlockReason::NoBudget) => {
            StatusCode::PAYMENT_REQUIRED
        }
        Some(BlockReason::Paused) => StatusCode::LOCKED,
        Some(BlockReason::InvalidAmount) => StatusCode::UNPROCESSABLE_ENTITY,
        Some(BlockReason::StoreError) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::PAYMENT_REQUIRED,
    }
}

/// Builds the engine and state from a configuration.
pub fn build_state(config: &Config) -> Result<Arc<AppState>, String> {
    let mut builder = Engine::builder()
        .shared_budgets_every(Duration::from_millis(config.shared_budgets_poll_ms.max(10)))
        .listener(budgetgate::metrics::MetricsListener::new());
    let mut redis = None;
    if let Some(url) = &config.redis_url {
        let mut b = RedisStore::builder(url);
        if let Some(prefix) = &config.redis_prefix {
            b = b.prefix(prefix.clone());
        }
        let store = Arc::new(b.build().map_err(|e| format!("the Redis store: {e}"))?);
        builder = builder.shared_store(store.clone() as Arc<dyn Store>);
        redis = Some(store);
    } else {
        builder = builder.store(budgetgate::MemoryStore::new());
    }
    let ttl = match &config.reservation_ttl {
        Some(text) => match text.parse::<budgetgate::Window>() {
            Ok(budgetgate::Window::Rolling(d)) => Some(d),
            _ => {
                return Err(format!(
                    "reservation_ttl {text:?}: expected a duration such as \"10m\""
                ))
            }
        },
        None => None,
    };
    if let Some(ttl) = ttl {
        builder = builder.reservation_ttl(ttl);
    }
    let engine = builder.try_build().map_err(|e| e.to_string())?;
    let c = &config.compat;
    let daily = |max| Budget::daily(max).map_err(|e| format!("compat limits: {e}"));
    engine.set_budget_matching(
        &c.namespace,
        &c.resource,
        "user:*",
        daily(c.daily_user_limit)?,
    );
    engine.set_budget_matching(
        &c.namespace,
        &c.resource,
        "project:*",
        daily(c.daily_project_limit)?,
    );
    engine.set_budget(
        &Ledger::new(c.namespace.as_str(), c.resource.as_str(), "global"),
        daily(c.daily_global_limit)?,
    );
    Ok(Arc::new(AppState {
        reservation_ttl: engine.reservation_ttl(),
        engine,
        redis,
        keys: Keys::new(&config.keys, config.insecure_no_auth),
        reservations: Reservations::default(),
        compat: config.compat.clone(),
        metrics: metrics_handle(),
    }))
}

/// Every route, with the body-size and time limits.
pub fn router(state: Arc<AppState>, config: &Config) -> Router {
    Router::new()
        .route("/v1/check", post(spend::check))
        .route("/v1/reserve", post(spend::reserve))
        .route("/v1/commit", post(settle::commit))
        .route("/v1/release", post(settle::release))
        .route("/v1/rate", post(spend::rate))
        .route("/v1/status", get(spend::status))
        .route("/v1/ledgers", get(spend::ledgers))
        .route(
            "/v1/admin/budgets",
            get(admin::budgets_list)
                .put(admin::budgets_set)
                .delete(admin::budgets_rm),
        )
        .route("/v1/admin/pause", post(admin::pause))
        .route("/v1/admin/resume", post(admin::resume))
        .route("/v1/admin/paused", get(admin::paused))
        .route("/v1/admin/reset", post(admin::reset))
        .route("/check", post(compat::check))
        .route("/spend", post(compat::spend))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout(),
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves; requests in flight finish first. Open
/// reservations keep their holds until their TTL (see [`crate::reservations`]).
pub async fn serve(
    state: Arc<AppState>,
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone(), config);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let kept = state.reservations.abandon();
    if kept > 0 {
        tracing::warn!(
            open = kept,
            "shutting down with open reservations: their holds stay until their TTL"
        );
    }
    tracing::info!("budgetgate service stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}

macro_rules! role_extractor {
    ($name:ident, $role:expr, $doc:literal) => {
        #[doc = $doc]
        /// Checked from the headers before the body is read, so a caller
        /// without the role learns nothing about the body's rules.
        pub struct $name(pub Caller);

        impl axum::extract::FromRequestParts<Arc<AppState>> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &Arc<AppState>,
            ) -> Result<Self, ApiError> {
                state.auth(&parts.headers, $role).map($name)
            }
        }
    };
}

role_extractor!(ReadKey, Role::Read, "A caller with the `read` role.");
role_extractor!(SpendKey, Role::Spend, "A caller with the `spend` role.");
role_extractor!(AdminKey, Role::Admin, "A caller with the `admin` role.");

/// The coreason routes' caller: `spend` when `[compat] require_key`, else anyone.
pub struct CompatKey;

impl axum::extract::FromRequestParts<Arc<AppState>> for CompatKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if state.compat.require_key {
            state.auth(&parts.headers, Role::Spend)?;
        }
        Ok(CompatKey)
    }
}

/// Counts spend the service recorded (fixed costs, commits, coreason spends).
pub fn count_spend(amount: rust_decimal::Decimal) {
    static SPENT: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    if let Ok(n) = budgetgate::amount::to_nanos(amount) {
        SPENT
            .get_or_init(|| metrics::counter!("budgetgate_spend_committed_nanos_total"))
            .increment(u64::try_from(n).unwrap_or(0));
    }
}
