//! [`Faulty`]: a real store behind a switch that makes every operation fail,
//! for testing fail-closed / fail-open decisions and unrecorded commits on any
//! store (the Redis tests also kill a real server).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use budgetgate::budget::Limit;
use budgetgate::store::{
    ChargeOutcome, ChargeRequest, SettleOutcome, SettleRequest, Store, StoreError, WindowUsage,
};
use budgetgate::store::{RateOutcome, RateRequest};
use budgetgate::Ledger;

/// Wraps a store; while `failing`, every operation returns `Unavailable`.
#[derive(Debug, Clone)]
pub struct Faulty {
    inner: Arc<dyn Store>,
    failing: Arc<AtomicBool>,
}

impl Faulty {
    /// Wraps `inner`, initially healthy.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Faulty {
            inner,
            failing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Switches failure on or off (clones share the switch).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn gate(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::NotSent("injected fault".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for Faulty {
    fn charge(&self, request: &ChargeRequest<'_>) -> Result<ChargeOutcome, StoreError> {
        self.gate()?;
        self.inner.charge(request)
    }
    fn settle(&self, request: &SettleRequest<'_>) -> Result<SettleOutcome, StoreError> {
        self.gate()?;
        self.inner.settle(request)
    }
    fn status(&self, ledger: &Ledger, limits: &[Limit]) -> Result<Vec<WindowUsage>, StoreError> {
        self.gate()?;
        self.inner.status(ledger, limits)
    }
    fn rate(&self, request: &RateRequest<'_>) -> Result<RateOutcome, StoreError> {
        self.gate()?;
        self.inner.rate(request)
    }
}
