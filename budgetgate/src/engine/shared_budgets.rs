//! The engine's side of operator-stored budgets ([`crate::shared`]):
//! writing and listing them, and the poller that reloads them when their
//! version changes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Engine;
use crate::caps::Caps;
use crate::ledger::Ledger;
use crate::shared::{key, parse_all, SharedBudget, SharedBudgetError};
use crate::store::StoreError;

impl Engine {
    /// Stores (or replaces) an operator budget in the store: every engine
    /// with shared budgets on the store applies it within a second. Returns
    /// the new version.
    pub fn put_shared_budget(&self, budget: &SharedBudget) -> Result<u64, SharedBudgetError> {
        if budget.budgets.is_empty() {
            return Err(SharedBudgetError::NoCaps);
        }
        let text = serde_json::to_string(budget).unwrap_or_default();
        tracing::warn!(namespace = %budget.namespace, resource = %budget.resource,
            principal = %budget.principal, budgets = %text, "shared budget stored");
        let version = self.store().put_shared_budget(&budget.key(), Some(&text))?;
        Ok(version)
    }

    /// Removes an operator budget (the ledgers fall back to the call-site
    /// or code budgets). Returns the new version.
    pub fn remove_shared_budget(
        &self,
        namespace: &str,
        resource: &str,
        principal: &str,
    ) -> Result<u64, StoreError> {
        tracing::warn!(%namespace, %resource, %principal, "shared budget removed");
        self.store()
            .put_shared_budget(&key(namespace, resource, principal), None)
    }

    /// Every operator budget in the store (entries that do not parse are
    /// skipped and logged), sorted by namespace, resource, principal.
    pub fn shared_budgets(&self) -> Result<Vec<SharedBudget>, StoreError> {
        Ok(parse_all(self.store().shared_budgets()?.1))
    }

    /// Reloads the operator budgets now if their version changed (the
    /// poller calls it; call it to apply a change without waiting).
    /// Returns whether anything was reloaded.
    pub fn refresh_shared_budgets(&self) -> Result<bool, StoreError> {
        let inner = self.shared_state();
        let version = self.store().shared_budgets_version()?;
        if version == inner.version.load(Ordering::Acquire) {
            return Ok(false);
        }
        let (version, texts) = self.store().shared_budgets()?;
        let all = parse_all(texts);
        inner.active.store(!all.is_empty(), Ordering::Release);
        inner.registry.update(|b| {
            b.by_ledger.clear();
            b.by_pattern.clear();
            for sb in &all {
                let Some(caps) = Caps::new(sb.budgets.iter().copied()) else {
                    continue;
                };
                if sb.is_pattern() {
                    b.insert_pattern(&sb.namespace, &sb.resource, &sb.principal, caps);
                } else {
                    b.by_ledger.insert(
                        Ledger::new(
                            sb.namespace.as_str(),
                            sb.resource.as_str(),
                            sb.principal.as_str(),
                        ),
                        caps,
                    );
                }
            }
        });
        inner.version.store(version, Ordering::Release);
        Ok(true)
    }
}

/// Starts the poller: a thread that refreshes the engine's operator budgets
/// every `every` until the engine is dropped.
pub(crate) fn spawn_poller(engine: super::WeakEngine, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("budgetgate-shared-budgets".into())
        .spawn(move || {
            // Logged when reading starts or stops failing, not every poll.
            let mut failing = false;
            loop {
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                match engine.refresh_shared_budgets() {
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, "could not read the shared budgets; keeping the last ones");
                    }
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("reading the shared budgets again");
                    }
                    _ => {}
                }
                drop(engine);
                std::thread::sleep(every);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the shared-budgets poller");
    }
}
