//! [`StallingSettles`]: a memory store whose async settle never answers
//! while switched on — a commit whose request never reached the store —
//! while its sync path (the settler's) keeps working.

use std::sync::atomic::Ordering;

use budgetgate::{Ledger, MemoryStore};

/// A memory store whose async settle never answers while `stall` is on
/// (the request never reaches the store): the sync path — the settler's —
/// still works.
#[derive(Debug, Default)]
pub struct StallingSettles {
    inner: MemoryStore,
    /// While true, `settle_async` never completes.
    pub stall: std::sync::atomic::AtomicBool,
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
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(self.inner.settle(&request)))
        }
    }
}
