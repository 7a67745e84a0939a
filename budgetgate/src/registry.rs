//! The budgets an engine has registered: read on every call, written rarely.
//!
//! Readers must not write a cache line other threads read, or threads on
//! unrelated ledgers slow each other down. The registry is copy-on-write
//! behind an [`ArcSwap`], and each thread keeps the last few snapshots it
//! used: while the registry's version is unchanged (one atomic load of a
//! line nobody writes), a lookup touches nothing shared at all.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::caps::Caps;
use crate::ledger::{Ledger, Prehashed};

/// One version of the registered budgets.
#[derive(Default, Clone)]
pub(crate) struct Budgets {
    /// Unique across every registry of the process (see [`VERSIONS`]), so a
    /// thread's snapshot can never be mistaken for another engine's.
    version: u64,
    pub(crate) by_ledger: HashMap<Ledger, Caps, Prehashed>,
    pub(crate) by_resource: HashMap<String, HashMap<String, Caps>>,
}

impl Budgets {
    pub(crate) fn insert_per_principal(&mut self, namespace: &str, resource: &str, caps: Caps) {
        self.by_resource
            .entry(namespace.to_owned())
            .or_default()
            .insert(resource.to_owned(), caps);
    }

    #[inline]
    fn lookup(&self, ledger: &Ledger) -> Option<Caps> {
        if let Some(caps) = self.by_ledger.get(ledger) {
            return Some(caps.clone());
        }
        self.by_resource
            .get(ledger.namespace())
            .and_then(|m| m.get(ledger.resource()))
            .cloned()
    }
}

/// The source of [`Budgets::version`]s. 0 is never issued.
static VERSIONS: AtomicU64 = AtomicU64::new(1);

/// Snapshots a thread keeps: enough for a few engines used in turn.
const SNAPSHOTS: usize = 4;

thread_local! {
    /// The snapshots this thread used last, and the slot to replace next.
    /// They keep an old version alive until replaced (at most `SNAPSHOTS`).
    static SNAPSHOT: RefCell<([Option<Arc<Budgets>>; SNAPSHOTS], usize)> =
        const { RefCell::new(([None, None, None, None], 0)) };
}

/// The registered budgets of one engine.
pub(crate) struct Registry {
    current: ArcSwap<Budgets>,
    /// `current`'s version.
    version: AtomicU64,
    /// Serializes writers, so no update is lost.
    write: Mutex<()>,
}

impl Registry {
    pub(crate) fn new(mut budgets: Budgets) -> Self {
        budgets.version = VERSIONS.fetch_add(1, Ordering::Relaxed);
        Registry {
            version: AtomicU64::new(budgets.version),
            current: ArcSwap::from_pointee(budgets),
            write: Mutex::new(()),
        }
    }

    /// The caps registered for `ledger` (its own, else its namespace:resource's).
    #[inline]
    pub(crate) fn lookup(&self, ledger: &Ledger) -> Option<Caps> {
        let version = self.version.load(Ordering::Acquire);
        let cached = SNAPSHOT.try_with(|cell| {
            let cell = cell.try_borrow().ok()?;
            let budgets = cell.0.iter().flatten().find(|b| b.version == version)?;
            Some(budgets.lookup(ledger))
        });
        match cached {
            Ok(Some(caps)) => caps,
            _ => self.lookup_and_keep(ledger),
        }
    }

    /// A lookup that keeps the current snapshot for this thread's next calls.
    #[cold]
    #[inline(never)]
    fn lookup_and_keep(&self, ledger: &Ledger) -> Option<Caps> {
        let budgets = self.current.load_full();
        let caps = budgets.lookup(ledger);
        // Fails only during thread teardown, or if re-entered: then the
        // snapshot is just not kept.
        let _ = SNAPSHOT.try_with(|cell| {
            if let Ok(mut cell) = cell.try_borrow_mut() {
                let (slots, next) = &mut *cell;
                slots[*next] = Some(budgets);
                *next = (*next + 1) % SNAPSHOTS;
            }
        });
        caps
    }

    /// Copy-on-write update.
    pub(crate) fn update(&self, f: impl FnOnce(&mut Budgets)) {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut budgets = Budgets::clone(&self.current.load());
        f(&mut budgets);
        budgets.version = VERSIONS.fetch_add(1, Ordering::Relaxed);
        let version = budgets.version;
        self.current.store(Arc::new(budgets));
        // After the store: a reader that sees the new version finds the new
        // budgets (or a newer version) when it loads them.
        self.version.store(version, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use budgetgate::dec;

    fn caps(max: rust_decimal::Decimal) -> Caps {
        Caps::one(Budget::lifetime(max).unwrap())
    }

    /// A thread that cached a snapshot sees every later update, and several
    /// registries used in turn on one thread never answer for each other.
    #[test]
    fn snapshots_follow_updates_and_never_cross_registries() {
        let ledger = Ledger::new("n", "r", "p");
        let registries: Vec<Registry> = (0..SNAPSHOTS + 2)
            .map(|_| Registry::new(Budgets::default()))
            .collect();
        for (i, r) in registries.iter().enumerate() {
            assert_eq!(r.lookup(&ledger), None);
            r.update(|b| {
                b.by_ledger.insert(ledger.clone(), caps(i.into()));
            });
        }
        for round in 0..3 {
            for (i, r) in registries.iter().enumerate() {
                assert_eq!(r.lookup(&ledger), Some(caps(i.into())), "round {round}");
            }
        }
        registries[1].update(|b| b.insert_per_principal("n", "r", caps(dec!(7))));
        registries[1].update(|b| {
            b.by_ledger.remove(&ledger);
        });
        assert_eq!(registries[1].lookup(&ledger), Some(caps(dec!(7))));
        // Another thread updates; this thread's snapshot is stale and unused.
        std::thread::scope(|s| {
            s.spawn(|| registries[1].update(|b| b.insert_per_principal("n", "r", caps(dec!(8)))));
        });
        assert_eq!(registries[1].lookup(&ledger), Some(caps(dec!(8))));
    }
}
