//! The CLI's client for a running service (`--server URL --api-key KEY`).

use serde_json::{json, Value};

use super::{exit_code, CliError, Request};
use crate::ops::{ledger_json, scope_json};

/// A service client (HTTP/1.1; put TLS in front with a reverse proxy).
pub struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base` (`http://host:port`).
    pub fn new(base: &str, key: Option<String>) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_owned(),
            key,
            agent,
        }
    }

    /// The service's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.key.as_deref().unwrap_or(""))
    }

    /// Runs a request on the service.
    pub fn call(&self, request: &Request) -> Result<Value, CliError> {
        let url = |path: &str| format!("{}{path}", self.base);
        let ledger_query = |l: &budgetgate::Ledger| {
            vec![
                ("namespace", l.namespace().to_owned()),
                ("resource", l.resource().to_owned()),
                ("principal", l.principal().to_owned()),
            ]
        };
        let result = match request {
            Request::Status(l) => self
                .agent
                .get(url("/v1/status"))
                .header("authorization", self.auth())
                .query_pairs(ledger_query(l).iter().map(|(k, v)| (*k, v.as_str())))
                .call(),
            Request::Ledgers(n) => self
                .agent
                .get(url("/v1/ledgers"))
                .header("authorization", self.auth())
                .query("limit", n.to_string())
                .call(),
            Request::BudgetsList => self
                .agent
                .get(url("/v1/admin/budgets"))
                .header("authorization", self.auth())
                .call(),
            Request::BudgetsSet(b) => self
                .agent
                .put(url("/v1/admin/budgets"))
                .header("authorization", self.auth())
                .send_json(b),
            Request::BudgetsRm(l) => self
                .agent
                .delete(url("/v1/admin/budgets"))
                .header("authorization", self.auth())
                .query_pairs(ledger_query(l).iter().map(|(k, v)| (*k, v.as_str())))
                .call(),
            Request::Paused(scope, on) => {
                let mut body = scope_json(scope);
                if let Some(l) = body.get_mut("ledger") {
                    if let Some(o) = l.as_object_mut() {
                        o.remove("display");
                    }
                }
                self.agent
                    .post(url(if *on {
                        "/v1/admin/pause"
                    } else {
                        "/v1/admin/resume"
                    }))
                    .header("authorization", self.auth())
                    .send_json(body)
            }
            Request::ListPaused => self
                .agent
                .get(url("/v1/admin/paused"))
                .header("authorization", self.auth())
                .call(),
            Request::Reset(l) => {
                let mut ledger = ledger_json(l);
                if let Some(o) = ledger.as_object_mut() {
                    o.remove("display");
                }
                self.agent
                    .post(url("/v1/admin/reset"))
                    .header("authorization", self.auth())
                    .send_json(json!({ "ledger": ledger }))
            }
        };
        let mut response = result.map_err(|e| CliError {
            code: 1,
            message: format!("cannot reach the service at {}: {e}", self.base),
        })?;
        let status = response.status().as_u16();
        let body: Value = response
            .body_mut()
            .read_json()
            .unwrap_or_else(|_| json!({"message": "the service answered no JSON"}));
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(CliError {
                code: exit_code(status),
                message: format!(
                    "the service answered {status}: {}",
                    body["message"].as_str().unwrap_or("no message")
                ),
            })
        }
    }
}
