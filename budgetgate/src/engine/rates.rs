//! Call-rate checks on the engine: [`Engine::rate_check`] and
//! [`Engine::rate_status`] (see [`crate::rate`]).

use super::*;

impl Engine {
    /// Checks a call against a rate policy and records it if admitted, in one
    /// atomic step (see [`crate::rate`]).
    pub fn rate_check(&self, gate: &Gate, policy: &Policy) -> RateDecision {
        match policy.validate() {
            Ok(()) => {
                let result = self.inner.store.rate(&rate_request(gate, policy, true));
                self.conclude_rate(gate, policy, result)
            }
            Err(e) => self.invalid_policy(gate, e),
        }
    }

    /// Whether a call on `gate` would be admitted now, without making one:
    /// nothing is recorded and no listener is told (a dashboard's or a
    /// scheduler's question). The answer can change before the next real
    /// [`Engine::rate_check`].
    ///
    /// ```
    /// use budgetgate::{Engine, Gate, Policy};
    /// use std::time::Duration;
    /// let engine = Engine::in_memory();
    /// let gate = Gate::new("tools", "search", "user:1");
    /// let policy = Policy::new().max_calls(1, Duration::from_secs(60));
    /// assert!(engine.rate_status(&gate, &policy).is_allowed());
    /// assert!(engine.rate_status(&gate, &policy).is_allowed()); // nothing consumed
    /// assert!(engine.rate_check(&gate, &policy).is_allowed());
    /// let peek = engine.rate_status(&gate, &policy);
    /// assert!(peek.is_blocked() && peek.retry_after().is_some());
    /// ```
    pub fn rate_status(&self, gate: &Gate, policy: &Policy) -> RateDecision {
        if let Err(e) = policy.validate() {
            return self.invalid_policy(gate, e);
        }
        let result = self.inner.store.rate(&rate_request(gate, policy, false));
        Self::rate_decision(gate, policy, result)
    }

    /// Async [`Engine::rate_check`].
    pub async fn rate_check_async(&self, gate: &Gate, policy: &Policy) -> RateDecision {
        match policy.validate() {
            Ok(()) => {
                let request = rate_request(gate, policy, true);
                let result = self.inner.store.rate_async(request).await;
                self.conclude_rate(gate, policy, result)
            }
            Err(e) => self.invalid_policy(gate, e),
        }
    }

    fn invalid_policy(&self, gate: &Gate, error: crate::rate::PolicyError) -> RateDecision {
        self.emit_rate(RateDecision {
            status: Status::Block,
            gate: gate.clone(),
            reason: Some(RateReason::InvalidPolicy),
            calls_in_window: 0,
            since_last: None,
            retry_after: None,
            detail: Some(error.to_string()),
        })
    }

    fn conclude_rate(
        &self,
        gate: &Gate,
        policy: &Policy,
        result: Result<RateOutcome, StoreError>,
    ) -> RateDecision {
        self.emit_rate(Self::rate_decision(gate, policy, result))
    }

    /// The decision for a store's rate answer (no side effects).
    fn rate_decision(
        gate: &Gate,
        policy: &Policy,
        result: Result<RateOutcome, StoreError>,
    ) -> RateDecision {
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        match result {
            Ok(o) => RateDecision {
                status: if o.admitted {
                    Status::Allow
                } else {
                    Status::Block
                },
                gate: gate.clone(),
                reason: o.reason,
                calls_in_window: o.calls_in_window,
                since_last: o.since_last_us.map(us),
                retry_after: o.retry_after_us.map(us),
                detail: None,
            },
            Err(error) => RateDecision {
                status: match policy.on_store_error() {
                    StoreErrorMode::FailClosed => Status::Block,
                    StoreErrorMode::FailOpen => Status::Allow,
                },
                gate: gate.clone(),
                reason: Some(RateReason::StoreError),
                calls_in_window: 0,
                since_last: None,
                retry_after: Some(crate::rate::STORE_RETRY_AFTER),
                detail: Some(error.to_string()),
            },
        }
    }

    fn emit_rate(&self, decision: RateDecision) -> RateDecision {
        match (decision.status, decision.reason) {
            (Status::Allow, None) => tracing::debug!(gate = %decision.gate, "rate allow"),
            (_, Some(RateReason::StoreError)) => tracing::error!(gate = %decision.gate,
                status = %decision.status, error = decision.detail().unwrap_or(""), "rate store error"),
            (_, reason) => tracing::info!(gate = %decision.gate,
                reason = reason.map_or("", |r| r.as_str()),
                retry_after_ms = decision.retry_after.map_or(0, |d| d.as_millis() as u64), "rate limited"),
        }
        self.emit(&Event::Rate(&decision));
        decision
    }
}

/// One call's request to a store: a fresh id, recorded if admitted (or not:
/// [`Engine::rate_status`]).
fn rate_request<'a>(gate: &'a Gate, policy: &'a Policy, record: bool) -> RateRequest<'a> {
    RateRequest {
        gate,
        policy,
        call_id: ReservationId::new(),
        record,
    }
}
