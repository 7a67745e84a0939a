//! Operator operations on an [`Engine`], as JSON: what the admin API answers
//! and what the CLI prints (in its direct mode it runs these itself; with
//! `--server` it asks the service, which runs the same code).

use std::time::UNIX_EPOCH;

use budgetgate::shared::SharedBudget;
use budgetgate::{Engine, Ledger, LedgerStatus, PauseScope, StatusError};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// A ledger in a request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerRef {
    /// Namespace.
    pub namespace: String,
    /// Resource.
    pub resource: String,
    /// Principal.
    pub principal: String,
}

impl LedgerRef {
    /// The ledger.
    pub fn ledger(&self) -> Ledger {
        Ledger::new(
            self.namespace.as_str(),
            self.resource.as_str(),
            self.principal.as_str(),
        )
    }
}

/// Parses the display form `namespace:resource@principal` (the namespace
/// holds no `:`, the resource no `@`; the principal may hold anything).
pub fn parse_ledger(text: &str) -> Result<Ledger, String> {
    let (ns, rest) = text.split_once(':').ok_or_else(|| {
        format!("{text:?} is not a ledger: expected namespace:resource@principal")
    })?;
    let (res, principal) = rest.split_once('@').ok_or_else(|| {
        format!("{text:?} is not a ledger: expected namespace:resource@principal")
    })?;
    Ok(Ledger::new(ns, res, principal))
}

/// A pause scope in a request body: exactly one of the fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRef {
    /// Everything.
    #[serde(default)]
    pub all: bool,
    /// A namespace.
    pub namespace: Option<String>,
    /// A ledger.
    pub ledger: Option<LedgerRef>,
}

impl ScopeRef {
    /// The scope, or why the body names none or several.
    pub fn scope(&self) -> Result<PauseScope, ApiError> {
        match (self.all, &self.namespace, &self.ledger) {
            (true, None, None) => Ok(PauseScope::All),
            (false, Some(ns), None) => Ok(PauseScope::Namespace(ns.clone())),
            (false, None, Some(l)) => Ok(PauseScope::Ledger(l.ledger())),
            _ => Err(ApiError::bad_request(
                "name exactly one scope: {\"all\": true}, {\"namespace\": …} or {\"ledger\": {…}}",
            )),
        }
    }
}

/// A scope as JSON.
pub fn scope_json(scope: &PauseScope) -> Value {
    match scope {
        PauseScope::All => json!({"all": true}),
        PauseScope::Namespace(ns) => json!({"namespace": ns}),
        PauseScope::Ledger(l) => json!({"ledger": ledger_json(l)}),
    }
}

/// A ledger as JSON (its parts and display form).
pub fn ledger_json(l: &Ledger) -> Value {
    json!({"namespace": l.namespace(), "resource": l.resource(), "principal": l.principal(), "display": l.to_string()})
}

fn rfc3339(t: std::time::SystemTime) -> Option<String> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// Utilisation of the tightest cap: spent / max (1 when max is 0 and something is spent).
pub fn utilisation(s: &LedgerStatus) -> Decimal {
    s.caps()
        .iter()
        .map(|c| {
            let max = c.budget().max_spend();
            if max.is_zero() {
                if c.spent_in_window().is_zero() {
                    Decimal::ZERO
                } else {
                    Decimal::ONE
                }
            } else {
                (c.spent_in_window() / max).round_dp(4)
            }
        })
        .max()
        .unwrap_or_default()
}

/// A ledger's status as JSON.
pub fn status_json(s: &LedgerStatus) -> Value {
    let caps: Vec<Value> = s
        .caps()
        .iter()
        .map(|c| {
            json!({
                "budget": c.budget(),
                "committed": c.committed().to_string(),
                "reserved": c.reserved().to_string(),
                "spent_in_window": c.spent_in_window().to_string(),
                "remaining": c.remaining().to_string(),
                "resets_at": c.resets_at().and_then(rfc3339),
            })
        })
        .collect();
    let tight = s.tightest();
    json!({
        "ledger": ledger_json(s.ledger()),
        "max_spend": tight.budget().max_spend().to_string(),
        "window": tight.budget().window().to_string(),
        "committed": s.committed().to_string(),
        "reserved": s.reserved().to_string(),
        "spent_in_window": s.spent_in_window().to_string(),
        "remaining": s.remaining().to_string(),
        "resets_at": tight.resets_at().and_then(rfc3339),
        "utilisation": utilisation(s).to_string(),
        "caps": caps,
    })
}

/// One ledger's status.
pub async fn status(engine: &Engine, ledger: &Ledger) -> Result<Value, ApiError> {
    match engine.status_async(ledger).await {
        Ok(s) => Ok(status_json(&s)),
        Err(StatusError::NoBudget(l)) => Err(ApiError::not_found(format!(
            "no budget applies to {l} (none stored by an operator, none configured in the service)"
        ))),
        Err(StatusError::Store(e)) => Err(ApiError::store(e)),
        Err(e) => Err(ApiError::store(e)),
    }
}

/// Up to `limit` ledgers with their status, most utilised first (ledgers
/// the service knows no budget for come last, with `"status": null`).
pub async fn ledgers(engine: &Engine, limit: usize) -> Result<Value, ApiError> {
    let e = engine.clone();
    let listed = tokio::task::spawn_blocking(move || e.active_ledgers(limit))
        .await
        .map_err(ApiError::store)?
        .map_err(ApiError::store)?;
    let mut rows: Vec<(Decimal, Value)> = Vec::with_capacity(listed.len());
    for ledger in &listed {
        match engine.status_async(ledger).await {
            Ok(s) => rows.push((utilisation(&s), status_json(&s))),
            Err(StatusError::NoBudget(_)) => rows.push((
                Decimal::NEGATIVE_ONE,
                json!({"ledger": ledger_json(ledger), "utilisation": null}),
            )),
            Err(e) => return Err(ApiError::store(e)),
        }
    }
    rows.sort_by(|a, b| {
        b.0.cmp(&a.0).then_with(|| {
            a.1["ledger"]["display"]
                .as_str()
                .cmp(&b.1["ledger"]["display"].as_str())
        })
    });
    Ok(Value::Array(rows.into_iter().map(|r| r.1).collect()))
}

/// Runs a blocking engine operation off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::store(format!("task failed: {e}")))?
}

/// Operator budgets.
pub async fn budgets_list(engine: &Engine) -> Result<Value, ApiError> {
    let e = engine.clone();
    let all = blocking(move || e.shared_budgets().map_err(ApiError::store)).await?;
    Ok(serde_json::to_value(all).unwrap_or_default())
}

/// Stores an operator budget and applies it on this engine at once.
pub async fn budgets_set(engine: &Engine, budget: SharedBudget) -> Result<Value, ApiError> {
    let e = engine.clone();
    blocking(move || {
        let version = e.put_shared_budget(&budget).map_err(|err| match err {
            budgetgate::shared::SharedBudgetError::NoCaps => {
                ApiError::bad_request("\"budgets\" must hold at least one budget")
            }
            other => ApiError::store(other),
        })?;
        let _ = e.refresh_shared_budgets();
        Ok(json!({"version": version, "budget": budget}))
    })
    .await
}

/// Removes an operator budget.
pub async fn budgets_rm(engine: &Engine, l: LedgerRef) -> Result<Value, ApiError> {
    let e = engine.clone();
    blocking(move || {
        let exists = e
            .shared_budgets()
            .map_err(ApiError::store)?
            .iter()
            .any(|b| b.namespace == l.namespace && b.resource == l.resource && b.principal == l.principal);
        if !exists {
            return Err(ApiError::not_found(format!(
                "no operator budget for {}:{}@{}",
                l.namespace, l.resource, l.principal
            )));
        }
        let version = e
            .remove_shared_budget(&l.namespace, &l.resource, &l.principal)
            .map_err(ApiError::store)?;
        let _ = e.refresh_shared_budgets();
        Ok(json!({"version": version, "removed": {"namespace": l.namespace, "resource": l.resource, "principal": l.principal}}))
    })
    .await
}

/// Pauses or resumes a scope.
pub async fn set_paused(
    engine: &Engine,
    scope: PauseScope,
    paused: bool,
) -> Result<Value, ApiError> {
    let e = engine.clone();
    let shown = scope_json(&scope);
    blocking(move || {
        if paused {
            e.pause(&scope)
        } else {
            e.resume(&scope)
        }
        .map_err(ApiError::store)
    })
    .await?;
    Ok(json!({"paused": paused, "scope": shown}))
}

/// Every paused scope.
pub async fn paused(engine: &Engine) -> Result<Value, ApiError> {
    let e = engine.clone();
    let scopes = blocking(move || e.paused().map_err(ApiError::store)).await?;
    Ok(Value::Array(scopes.iter().map(scope_json).collect()))
}

/// Resets a ledger's spend, recorded as who did it and how much.
pub async fn reset(engine: &Engine, ledger: Ledger, by: String) -> Result<Value, ApiError> {
    let e = engine.clone();
    let l = ledger.clone();
    let who = by.clone();
    let before = blocking(move || e.reset_ledger(&l, &who).map_err(ApiError::store)).await?;
    let (committed, reserved) = before.as_ref().map_or((Decimal::ZERO, Decimal::ZERO), |s| {
        (
            s.caps()
                .iter()
                .map(|c| c.committed())
                .max()
                .unwrap_or_default(),
            s.caps()
                .iter()
                .map(|c| c.reserved())
                .max()
                .unwrap_or_default(),
        )
    });
    Ok(json!({
        "ledger": ledger_json(&ledger),
        "reset_by": by,
        "committed": committed.to_string(),
        "reserved": reserved.to_string(),
    }))
}
