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

/// A principal pattern: `*` matches any run of characters (`"user:*"`,
/// `"*:eu"`, `"*"`); everything else matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(String);

impl Pattern {
    /// How specific the pattern is: its characters other than `*`. The
    /// most specific matching pattern wins.
    fn specificity(&self) -> usize {
        self.0.chars().filter(|c| *c != '*').count()
    }

    fn matches(&self, principal: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = principal.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty(); // no `*`: an exact match
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// One version of the registered budgets.
#[derive(Default, Clone)]
pub(crate) struct Budgets {
    /// Unique across every registry of the process (see [`VERSIONS`]), so a
    /// thread's snapshot can never be mistaken for another engine's.
    version: u64,
    pub(crate) by_ledger: HashMap<Ledger, Caps, Prehashed>,
    /// Per namespace and resource, principal patterns, most specific first
    /// (equally specific: first registered first).
    pub(crate) by_pattern: HashMap<String, HashMap<String, Vec<(Pattern, Caps)>>>,
}

impl Budgets {
    /// Registers (or replaces) the caps of a principal pattern.
    pub(crate) fn insert_pattern(
        &mut self,
        namespace: &str,
        resource: &str,
        pattern: &str,
        caps: Caps,
    ) {
        let list = self
            .by_pattern
            .entry(namespace.to_owned())
            .or_default()
            .entry(resource.to_owned())
            .or_default();
        let pattern = Pattern(pattern.to_owned());
        match list.iter_mut().find(|(p, _)| *p == pattern) {
            Some(entry) => entry.1 = caps,
            None => {
                let at = list
                    .iter()
                    .position(|(p, _)| p.specificity() < pattern.specificity())
                    .unwrap_or(list.len());
                list.insert(at, (pattern, caps));
            }
        }
    }

    /// Removes a principal pattern's caps.
    pub(crate) fn remove_pattern(&mut self, namespace: &str, resource: &str, pattern: &str) {
        if let Some(list) = self
            .by_pattern
            .get_mut(namespace)
            .and_then(|m| m.get_mut(resource))
        {
            list.retain(|(p, _)| p.0 != pattern);
        }
    }

    /// Every principal of `namespace:resource` (the pattern `*`).
    pub(crate) fn insert_per_principal(&mut self, namespace: &str, resource: &str, caps: Caps) {
        self.insert_pattern(namespace, resource, "*", caps);
    }

    #[inline]
    fn lookup(&self, ledger: &Ledger) -> Option<Caps> {
        if let Some(caps) = self.by_ledger.get(ledger) {
            return Some(caps.clone());
        }
        self.by_pattern
            .get(ledger.namespace())
            .and_then(|m| m.get(ledger.resource()))?
            .iter()
            .find(|(p, _)| p.matches(ledger.principal()))
            .map(|(_, caps)| caps.clone())
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
    fn patterns_match_and_rank_by_specificity() {
        let p = |s: &str| Pattern(s.to_owned());
        assert!(p("user:*").matches("user:42"));
        assert!(p("user:*").matches("user:"));
        assert!(!p("user:*").matches("org"));
        assert!(!p("user:*").matches("xuser:1"));
        assert!(p("*").matches("anything"));
        assert!(p("*:eu").matches("team:eu"));
        assert!(!p("*:eu").matches("team:us"));
        assert!(p("a*b*c").matches("a-b-c"));
        assert!(!p("a*b*c").matches("a-c-b"));
        assert!(!p("ab*ba").matches("aba"), "the ends may not overlap");
        assert!(p("org").matches("org"));
        assert!(!p("org").matches("org:1"));

        let mut b = Budgets::default();
        b.insert_pattern("n", "r", "*", caps(dec!(1)));
        b.insert_pattern("n", "r", "user:*", caps(dec!(2)));
        b.insert_pattern("n", "r", "user:vip*", caps(dec!(3)));
        let l = |p: &str| Ledger::new("n", "r", p);
        assert_eq!(b.lookup(&l("user:vip1")), Some(caps(dec!(3))));
        assert_eq!(b.lookup(&l("user:1")), Some(caps(dec!(2))));
        assert_eq!(b.lookup(&l("org")), Some(caps(dec!(1))));
        b.remove_pattern("n", "r", "*");
        assert_eq!(b.lookup(&l("org")), None);
        assert_eq!(b.lookup(&Ledger::new("n", "other", "user:1")), None);
    }

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
