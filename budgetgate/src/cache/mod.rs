//! An opt-in response cache for guarded calls: an identical request is
//! answered from the cache — the body does not run and **nothing is
//! charged** — and the cache counts the money it saved (what the cached
//! response cost when it was made).
//!
//! The key is the request itself (any `Hash + Eq` value: the model, the
//! prompt, the parameters that change the answer), compared in full, so
//! two different requests never share an answer even if their hashes
//! collide. On a miss the call is guarded as usual — the estimate reserved,
//! the body run, the actual committed — and the response is kept with its
//! cost for the cache's TTL. A body that fails is not cached (and its
//! reservation is released). Identical requests that miss at the same
//! time share one call (single-flight, in each process): the first runs,
//! the others wait for its answer and are hits — or, if it failed or was
//! dropped, one of them runs next.
//!
//! Two backends:
//!
//! - [`ResponseCache`], in process: any `Hash + Eq` request and `Clone`
//!   response, cleared when the process ends.
//! - [`SharedCache`], in the engine's store: requests and responses as
//!   JSON (`serde`), shared by every process and host on the same Redis
//!   (through the store's own connection; Redis expires the entries).
//!
//! The in-process backend:
//!
//! ```
//! use budgetgate::cache::ResponseCache;
//! use budgetgate::{dec, Budget, BudgetExceeded, Engine, Ledger};
//! use std::time::Duration;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let engine = Engine::in_memory();
//! let ledger = Ledger::new("llm", "gpt-4o-mini", "user:1");
//! engine.set_budget(&ledger, Budget::lifetime(dec!(1))?);
//! let cache: ResponseCache<String, String> = ResponseCache::new(Duration::from_secs(600));
//!
//! for _ in 0..3 {
//!     let answer = cache
//!         .call(&engine, &ledger, "What is 2 + 2?".to_string(), dec!(0.01), |_| dec!(0.002), || async {
//!             Ok::<_, BudgetExceeded>("4".to_string()) // the model call
//!         })
//!         .await?;
//!     assert_eq!(answer.value(), "4");
//! }
//! let stats = cache.stats();
//! assert_eq!((stats.hits(), stats.misses()), (2, 1));
//! assert_eq!(stats.saved(), dec!(0.004));
//! assert_eq!(engine.status(&ledger)?.committed(), dec!(0.002)); // charged once
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;

use crate::{BudgetExceeded, Engine, Ledger};

mod attribute;
mod flight;
mod shared;
#[doc(hidden)]
pub use attribute::AttributeCache;
pub use shared::{CacheError, SharedCache};

/// How many expired entries a call removes at most (the work per call is
/// bounded; what is left is removed by later calls or when looked up).
const SWEEP_PER_CALL: usize = 8;

/// A response from [`ResponseCache::call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached<V> {
    value: V,
    hit: bool,
    cost: Decimal,
}

impl<V> Cached<V> {
    /// The response.
    pub fn value(&self) -> &V {
        &self.value
    }
    /// The response, owned.
    pub fn into_value(self) -> V {
        self.value
    }
    /// Answered from the cache: the body did not run, nothing was charged.
    pub fn is_hit(&self) -> bool {
        self.hit
    }
    /// What the response cost when it was made (on a hit: what was saved).
    pub fn cost(&self) -> Decimal {
        self.cost
    }
}

/// What a cache has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    hits: u64,
    misses: u64,
    saved: Decimal,
    entries: usize,
}

impl CacheStats {
    /// Calls answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }
    /// Calls that ran their body (including ones that failed).
    pub fn misses(&self) -> u64 {
        self.misses
    }
    /// The money the hits did not spend: for each hit, what its response
    /// cost when it was made.
    pub fn saved(&self) -> Decimal {
        self.saved.normalize()
    }
    /// Responses held now (expired ones not yet removed included).
    pub fn entries(&self) -> usize {
        self.entries
    }
}

struct Entry<V> {
    value: V,
    cost: Decimal,
    expires: Instant,
}

struct State<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Keys in the order they were inserted — the order they expire in,
    /// the TTL being one for all — with the expiry of that insertion.
    expiry: VecDeque<(Instant, K)>,
    hits: u64,
    misses: u64,
    saved: Decimal,
}

/// An in-process response cache (see the [module docs](self)).
pub struct ResponseCache<K, V> {
    ttl: Duration,
    state: Mutex<State<K, V>>,
    flights: flight::Flights<K>,
}

impl<K, V> std::fmt::Debug for ResponseCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("ttl", &self.ttl)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<K, V> ResponseCache<K, V> {
    /// A cache whose responses are kept for `ttl` after they were made.
    pub fn new(ttl: Duration) -> Self {
        ResponseCache {
            ttl,
            state: Mutex::new(State {
                entries: HashMap::new(),
                expiry: VecDeque::new(),
                hits: 0,
                misses: 0,
                saved: Decimal::ZERO,
            }),
            flights: flight::Flights::default(),
        }
    }

    /// Hits, misses, money saved and entries so far.
    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            hits: state.hits,
            misses: state.misses,
            saved: state.saved,
            entries: state.entries.len(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        // A panic while holding the lock leaves the state consistent (each
        // update is one assignment), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ResponseCache<K, V> {
    /// The cached response for `key`, if one is held and not expired —
    /// counted as a hit (and its cost as saved). `None` counts nothing.
    pub fn lookup(&self, key: &K) -> Option<Cached<V>> {
        let now = Instant::now();
        let mut state = self.lock();
        state.sweep(now);
        let entry = state.entries.get(key)?;
        if entry.expires <= now {
            state.entries.remove(key);
            return None;
        }
        let cached = Cached {
            value: entry.value.clone(),
            hit: true,
            cost: entry.cost,
        };
        state.hits += 1;
        state.saved += cached.cost;
        Some(cached)
    }

    /// Keeps `value`, which cost `cost`, for `key` (for the cache's TTL).
    pub fn insert(&self, key: K, value: V, cost: Decimal) {
        let now = Instant::now();
        let expires = now + self.ttl;
        let mut state = self.lock();
        state.sweep(now);
        state.expiry.push_back((expires, key.clone()));
        state.entries.insert(
            key,
            Entry {
                value,
                cost,
                expires,
            },
        );
    }

    /// A guarded call through the cache: a hit returns the cached response
    /// (no body, no charge); a miss reserves `estimate` on `ledger`, runs
    /// `body`, commits `actual(&value)` and caches the value with that
    /// cost. A block returns `Err(BudgetExceeded.into())` and runs nothing;
    /// a body error releases the reservation and caches nothing.
    pub async fn call<E, F, Fut>(
        &self,
        engine: &Engine,
        ledger: &Ledger,
        key: K,
        estimate: Decimal,
        actual: impl FnOnce(&V) -> Decimal,
        body: F,
    ) -> Result<Cached<V>, E>
    where
        E: From<BudgetExceeded>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.call_with(key, guarded_miss(engine, ledger, estimate, actual, body))
            .await
    }

    /// [`ResponseCache::call`] with the miss given: the cache's part of a
    /// call (look up, single-flight, count, insert) around `miss`, which
    /// guards and runs the call and returns the value and what was
    /// recorded for it. `miss` is only polled on a miss.
    pub(crate) async fn call_with<E, Fut>(&self, key: K, miss: Fut) -> Result<Cached<V>, E>
    where
        Fut: Future<Output = Result<(V, Decimal), E>>,
    {
        let _leader = loop {
            if let Some(hit) = self.lookup(&key) {
                tracing::debug!(saved = %hit.cost, "response cache hit: nothing charged");
                return Ok(hit);
            }
            match self.flights.turn(&key) {
                flight::Turn::Follow(rx) => flight::wait(rx).await,
                // Looked up again: a leader inserts before it lets go.
                flight::Turn::Lead(leader) => match self.lookup(&key) {
                    Some(hit) => return Ok(hit),
                    None => break leader,
                },
            }
        };
        self.lock().misses += 1;
        let (value, committed) = miss.await?;
        self.insert(key, value.clone(), committed);
        Ok(Cached {
            value,
            hit: false,
            cost: committed,
        })
    }
}

/// A miss, for both backends: reserves `estimate` on `ledger`, runs
/// `body`, commits `actual(&value)`; returns the value and what was
/// recorded for it. A block runs nothing; a body error releases the
/// reservation (before returning, so the caller sees the headroom back).
async fn guarded_miss<V, E, F, Fut>(
    engine: &Engine,
    ledger: &Ledger,
    estimate: Decimal,
    actual: impl FnOnce(&V) -> Decimal,
    body: F,
) -> Result<(V, Decimal), E>
where
    E: From<BudgetExceeded>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<V, E>>,
{
    let held = engine.reserve_async(ledger, estimate).await?;
    let value = match body().await {
        Ok(value) => value,
        Err(error) => {
            if let Err(store) = held.release_async().await {
                tracing::warn!(%ledger, error = %store,
                    "could not release the reservation of a failed cached call; it expires after its TTL");
            }
            return Err(error);
        }
    };
    let cost = actual(&value);
    Ok((value, commit_recorded(held, cost).await))
}

/// Commits `cost` and returns what was recorded for it: what the response
/// cost, kept with it in the cache. The body ran: its cost is committed even
/// if this future is dropped while the store answers (`commit_async` hands
/// it to the settler).
pub(crate) async fn commit_recorded(held: crate::Reservation<'_>, cost: Decimal) -> Decimal {
    let id = held.id();
    match held.commit_async(cost).await {
        Ok(commit) => commit.actual(),
        // What was recorded is what the response cost (the estimate for an
        // invalid actual); a commit still being retried records `cost`.
        Err(crate::CommitError::InvalidActual { estimate, .. }) => estimate,
        Err(error) => {
            tracing::error!(%id, %cost, %error, "the commit of a cached call did not go as asked");
            cost
        }
    }
}

impl<K: Hash + Eq, V> State<K, V> {
    /// Removes up to [`SWEEP_PER_CALL`] expired entries, oldest first.
    fn sweep(&mut self, now: Instant) {
        for _ in 0..SWEEP_PER_CALL {
            match self.expiry.front() {
                Some((expires, _)) if *expires <= now => {}
                _ => return,
            }
            if let Some((expires, key)) = self.expiry.pop_front() {
                // A key inserted again since has a later expiry: kept.
                if self.entries.get(&key).is_some_and(|e| e.expires == expires) {
                    self.entries.remove(&key);
                }
            }
        }
    }
}
