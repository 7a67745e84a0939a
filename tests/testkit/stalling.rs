//! [`StallingSettles`]: a store (memory by default) whose async settle
//! never answers while switched on — a commit whose request never reached
//! the store, or (`land_first`) one that landed and whose reply was lost —
//! while its sync path (the settler's) keeps working.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use budgetgate::store::Store;
use budgetgate::{Ledger, MemoryStore};

/// A store whose async settle never answers while `stall` is on: the sync
/// path — the settler's — still works.
#[derive(Debug)]
pub struct StallingSettles {
    inner: Arc<dyn Store>,
    /// While true, `settle_async` never completes.
    pub stall: std::sync::atomic::AtomicBool,
    /// With `stall`: the settle is applied first, then its answer never
    /// comes (a commit that landed, whose reply was lost).
    pub land_first: std::sync::atomic::AtomicBool,
}

impl Default for StallingSettles {
    fn default() -> Self {
        Self::over(Arc::new(MemoryStore::new()))
    }
}

impl StallingSettles {
    /// Wraps `inner`, not stalling.
    pub fn over(inner: Arc<dyn Store>) -> Self {
        StallingSettles {
            inner,
            stall: AtomicBool::new(false),
            land_first: AtomicBool::new(false),
        }
    }
}

impl budgetgate::Store for StallingSettles {
    fn charge(
        &self,
        request: &budgetgate::store::ChargeRequest<'_>,
    ) -> Result<budgetgate::store::ChargeOutcome, budgetgate::StoreError> {
        self.inner.charge(request)
    }
    fn settle(
        &self,
        request: &budgetgate::store::SettleRequest<'_>,
    ) -> Result<budgetgate::store::SettleOutcome, budgetgate::StoreError> {
        self.inner.settle(request)
    }
    fn status(
        &self,
        ledger: &Ledger,
        limits: &[budgetgate::budget::Limit],
    ) -> Result<Vec<budgetgate::store::WindowUsage>, budgetgate::StoreError> {
        self.inner.status(ledger, limits)
    }
    fn settle_async<'a>(
        &'a self,
        request: budgetgate::store::SettleRequest<'a>,
    ) -> budgetgate::store::StoreFuture<'a, budgetgate::store::SettleOutcome> {
        if self.stall.load(Ordering::SeqCst) {
            if self.land_first.load(Ordering::SeqCst) {
                let _landed = self.inner.settle(&request);
            }
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(self.inner.settle(&request)))
        }
    }
}
