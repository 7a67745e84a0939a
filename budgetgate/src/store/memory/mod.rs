//! [`MemoryStore`]: the embedded default store.
//!
//! - **Exact**: integer nano-units, no floats.
//! - **Per-ledger locking**: ledgers live in 64 shards behind read-mostly
//!   locks; each ledger has its own mutex, so callers of different ledgers do
//!   not wait for each other and no lock is global.
//! - **Amortized O(1)**: each window keeps a running total plus a queue of
//!   entries ordered by time. An operation pops what left the window from the
//!   front and pushes at the back, so its cost does not depend on how many
//!   spends the window holds. Reservation expiry keeps only a lower bound of
//!   the earliest expiry; when time passes it, one scan of the *open*
//!   reservations removes the expired ones and finds the next bound (in a
//!   steady stream of short calls that is about one scan per TTL). Settled
//!   reservations leave nothing behind.
//! - **Reservations expire** after their TTL: their headroom returns, and a
//!   late commit still records the actual (at the commit's time).
//!
//! - **Reclaimed**: a ledger with no open reservation and nothing counting
//!   in any window is dropped when its shard is next swept (each time the
//!   shard doubles), so one-off principals do not accumulate. Open
//!   reservations expire through a queue ordered by expiry: many abandoned
//!   holds expiring one by one cost O(1) each.
//!
//! Files: `shards.rs` (the maps and the sweep), `ledger.rs` (a ledger's
//! windows, reservations and arithmetic), `gate.rs` (a rate gate's state);
//! this file holds the store and its [`Store`] implementation.

mod gate;
mod ledger;
mod shards;

use self::gate::*;
use self::ledger::*;
use self::shards::*;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::budget::{Limit, Window};
use crate::clock::{Clock, SystemClock};
use crate::ledger::{Ledger, Prehashed};
use crate::pause::PauseScope;
use crate::rate::{gcra, Policy, RateReason};
use crate::store::{RateOutcome, RateRequest};

use super::{
    ChargeOutcome, ChargeRequest, ManyOutcome, Nanos, ReservationIdKey, SettleOutcome,
    SettleRequest, Store, StoreError, WindowUsage,
};

/// The in-memory store. Cheap to share (`Arc`); see the module docs.
///
/// ```
/// use budgetgate::{Budget, Engine, Ledger, MemoryStore};
/// use budgetgate::clock::ManualClock;
/// use budgetgate::dec;
/// use std::time::Duration;
///
/// let clock = ManualClock::new(0);
/// let engine = Engine::builder().store(MemoryStore::with_clock(clock.clone())).build();
/// let ledger = Ledger::new("api", "search", "user:7");
/// engine.set_budget(&ledger, Budget::rolling(dec!(1), Duration::from_secs(60))?);
/// assert!(engine.check(&ledger, dec!(1)).is_allowed());
/// assert!(engine.check(&ledger, dec!(1)).is_blocked());
/// clock.advance(Duration::from_secs(61)); // no sleeping in tests
/// assert!(engine.check(&ledger, dec!(1)).is_allowed());
/// # Ok::<(), budgetgate::BudgetError>(())
/// ```
pub struct MemoryStore {
    shards: Box<[Shard<LedgerState>]>,
    gates: Box<[Shard<GateState>]>,
    clock: Arc<dyn Clock>,
    /// Paused scopes; `any_paused` lets charges skip the set when empty.
    paused: Mutex<HashSet<PauseScope>>,
    any_paused: AtomicBool,
    /// Operator-stored budgets: (version, key → JSON text).
    shared: Mutex<(u64, std::collections::BTreeMap<String, String>)>,
    /// Records: key → (value, expiry in µs of the store's clock).
    records: Mutex<HashMap<String, (String, i64)>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ledgers: usize = self
            .shards
            .iter()
            .map(|s| s.0.read().map_or(0, |m| m.len()))
            .sum();
        let gates: usize = self
            .gates
            .iter()
            .map(|s| s.0.read().map_or(0, |m| m.len()))
            .sum();
        f.debug_struct("MemoryStore")
            .field("ledgers", &ledgers)
            .field("gates", &gates)
            .field("clock", &self.clock)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// A store on the given clock (a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn with_clock(clock: impl Clock) -> Self {
        MemoryStore {
            shards: shards(),
            gates: shards(),
            clock: Arc::new(clock),
            paused: Mutex::new(HashSet::new()),
            any_paused: AtomicBool::new(false),
            shared: Mutex::new((0, std::collections::BTreeMap::new())),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the ledger's state under its own lock.
    fn with_ledger<R>(
        &self,
        ledger: &Ledger,
        now: i64,
        f: impl FnOnce(&mut LedgerState) -> R,
    ) -> R {
        with_entry(&self.shards, ledger, now, f)
    }

    fn now(&self) -> i64 {
        self.clock.now_micros()
    }

    fn is_paused(&self, ledger: &Ledger) -> bool {
        self.any_paused.load(Ordering::Acquire)
            && self
                .paused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|scope| scope.covers(ledger))
    }
}

impl Store for MemoryStore {
    fn rate(&self, request: &RateRequest<'_>) -> Result<RateOutcome, StoreError> {
        let now = self.now();
        Ok(with_entry(&self.gates, request.gate.key(), now, |gate| {
            gate.check(now, request.policy, request.record)
        }))
    }

    fn charge(&self, request: &ChargeRequest<'_>) -> Result<ChargeOutcome, StoreError> {
        let now = self.now();
        if self.is_paused(request.ledger) {
            return Ok(ChargeOutcome::paused(now));
        }
        self.with_ledger(request.ledger, now, |state| {
            state.charge(now, request, true)
        })
    }

    fn settle(&self, request: &SettleRequest<'_>) -> Result<SettleOutcome, StoreError> {
        let now = self.now();
        Ok(self.with_ledger(request.ledger, now, |state| state.settle(now, request)))
    }

    /// Atomic across the ledgers: all are locked (in one global order, so
    /// concurrent hierarchies cannot deadlock), all are checked, then all are
    /// recorded — or none.
    fn charge_many(&self, requests: &[ChargeRequest<'_>]) -> Result<ManyOutcome, StoreError> {
        let now = self.now();
        let entries: Vec<Arc<Padded<LedgerState>>> = requests
            .iter()
            .map(|r| entry_arc(&self.shards, r.ledger, now))
            .collect();
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&i| Arc::as_ptr(&entries[i]) as usize);
        if order
            .windows(2)
            .any(|w| Arc::ptr_eq(&entries[w[0]], &entries[w[1]]))
        {
            return Err(StoreError::Backend(
                "a ledger is listed twice in one charge".into(),
            ));
        }
        let mut guards: Vec<Option<std::sync::MutexGuard<'_, LedgerState>>> =
            (0..requests.len()).map(|_| None).collect();
        for &i in &order {
            guards[i] = Some(entries[i].lock().unwrap_or_else(|e| e.into_inner()));
        }
        let mut states: Vec<std::sync::MutexGuard<'_, LedgerState>> =
            guards.into_iter().flatten().collect();
        for (i, request) in requests.iter().enumerate() {
            if self.is_paused(request.ledger) {
                return Ok(ManyOutcome::Refused {
                    index: i,
                    outcome: ChargeOutcome::paused(now),
                });
            }
            let outcome = states[i].charge(now, request, false)?;
            if !outcome.admitted {
                return Ok(ManyOutcome::Refused { index: i, outcome });
            }
        }
        let outcomes = requests
            .iter()
            .zip(states.iter_mut())
            .map(|(request, state)| state.charge(now, request, true))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ManyOutcome::Admitted(outcomes))
    }

    fn ledgers(&self, limit: usize) -> Result<Vec<Ledger>, StoreError> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.0.read().unwrap_or_else(|e| e.into_inner());
            out.extend(map.keys().take(limit - out.len().min(limit)).cloned());
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn set_paused(&self, scope: &PauseScope, paused: bool) -> Result<(), StoreError> {
        let mut set = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        if paused {
            set.insert(scope.clone());
        } else {
            set.remove(scope);
        }
        self.any_paused.store(!set.is_empty(), Ordering::Release);
        Ok(())
    }

    fn paused(&self) -> Result<Vec<PauseScope>, StoreError> {
        Ok(self
            .paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect())
    }

    fn reset(&self, ledger: &Ledger) -> Result<(), StoreError> {
        let now = self.now();
        self.with_ledger(ledger, now, |state| *state = LedgerState::default());
        Ok(())
    }

    fn put_record(
        &self,
        key: &str,
        value: &str,
        ttl: std::time::Duration,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let expiry = now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= 1024 && records.len().is_power_of_two() {
            records.retain(|_, (_, at)| *at > now);
        }
        records.insert(key.to_owned(), (value.to_owned(), expiry));
        Ok(())
    }

    fn get_record(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = self.now();
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        Ok(records
            .get(key)
            .filter(|(_, at)| *at > now)
            .map(|(v, _)| v.clone()))
    }

    fn shared_budgets_version(&self) -> Result<u64, StoreError> {
        Ok(self.shared.lock().unwrap_or_else(|e| e.into_inner()).0)
    }

    fn shared_budgets(&self) -> Result<(u64, Vec<String>), StoreError> {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        Ok((shared.0, shared.1.values().cloned().collect()))
    }

    fn put_shared_budget(&self, key: &str, value: Option<&str>) -> Result<u64, StoreError> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match value {
            Some(v) => shared.1.insert(key.to_owned(), v.to_owned()),
            None => shared.1.remove(key),
        };
        shared.0 += 1;
        Ok(shared.0)
    }

    fn status(&self, ledger: &Ledger, limits: &[Limit]) -> Result<Vec<WindowUsage>, StoreError> {
        let now = self.now();
        Ok(self.with_ledger(ledger, now, |state| {
            let at = state.advance(now);
            limits
                .iter()
                .map(|limit| {
                    let (committed, reserved) = state
                        .tracks
                        .iter()
                        .find(|t| t.window == limit.window())
                        .map_or((0, 0), |t| (t.committed, t.reserved));
                    WindowUsage {
                        committed,
                        reserved,
                        at,
                    }
                })
                .collect()
        }))
    }
}
