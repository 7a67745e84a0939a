//! [`SharedCache`]: the response cache in the engine's store.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{CacheStats, Cached};
use crate::{BudgetExceeded, Engine, Ledger};

/// Why a [`SharedCache`] could not be made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A cache name must be 1 to 64 characters of `[A-Za-z0-9._-]`.
    #[error("invalid cache name {name:?}: use 1 to 64 characters of [A-Za-z0-9._-]")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A TTL must be between 1 ms and 10 years.
    #[error("invalid cache TTL {ttl:?}: use 1 ms to 10 years")]
    InvalidTtl {
        /// The TTL given.
        ttl: Duration,
    },
    /// A request or response could not be written or read as JSON.
    #[error("cache entry for {name}: {source}")]
    Json {
        /// The cache's name.
        name: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The store failed.
    #[error("cache {name}: {source}")]
    Store {
        /// The cache's name.
        name: String,
        /// What the store said.
        #[source]
        source: crate::StoreError,
    },
}

/// The longest TTL a [`SharedCache`] accepts.
const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 86_400);

#[derive(Serialize, Deserialize)]
struct Stored<K, V> {
    request: K,
    response: V,
    cost: Decimal,
}

/// A request as the cache finds it: its JSON value (compared on a hit) and
/// its record key; computed once per call.
struct Located {
    value: serde_json::Value,
    key: String,
}

#[derive(Default)]
struct Counts {
    hits: u64,
    misses: u64,
    saved: Decimal,
}

/// A response cache kept in the engine's store, so every
/// process and host that uses the same store (a Redis) shares its answers.
///
/// Requests and responses travel as JSON (`serde`). An entry is a record of
/// the store — on Redis `PREFIX:rec:cache:<name>:<hash>`, written with the
/// store's own connection, `SET … PX <ttl>`, so Redis expires it — holding
/// the request itself, the response and what it cost. The key's hash only
/// finds the entry: a hit also needs the stored request to equal the one
/// asked (compared as JSON values), so two requests whose hashes collide
/// never share an answer.
///
/// The cache is an optimisation, never a reason to fail a call: a store
/// error on a lookup counts as a miss (the call is then guarded as usual,
/// and fails closed if the store is down), and one on an insert only
/// leaves the response uncached; both are logged. Hits, misses and savings
/// are counted by each [`SharedCache`] value (this process's share).
/// Identical requests that miss at the same time in one process share one
/// call (single-flight); in different processes each may run.
///
/// ```
/// use budgetgate::cache::SharedCache;
/// use budgetgate::{dec, Budget, BudgetExceeded, Engine, Ledger};
/// use std::time::Duration;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // With `Engine::new(RedisStore::connect(url)?)`, every process shares it.
/// let engine = Engine::in_memory();
/// let ledger = Ledger::new("llm", "gpt-4o-mini", "user:1");
/// engine.set_budget(&ledger, Budget::lifetime(dec!(1))?);
/// let cache: SharedCache<(String, String), String> =
///     SharedCache::new("answers", Duration::from_secs(600))?;
///
/// let request = ("gpt-4o-mini".to_string(), "What is 2 + 2?".to_string());
/// for _ in 0..3 {
///     let answer = cache
///         .call(&engine, &ledger, &request, dec!(0.01), |_| dec!(0.002), || async {
///             Ok::<_, BudgetExceeded>("4".to_string()) // the model call
///         })
///         .await?;
///     assert_eq!(answer.value(), "4");
/// }
/// assert_eq!((cache.stats().hits(), cache.stats().saved()), (2, dec!(0.004)));
/// assert_eq!(engine.status(&ledger)?.committed(), dec!(0.002)); // charged once
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct SharedCache<K, V> {
    name: String,
    ttl: Duration,
    counts: Mutex<Counts>,
    /// Calls in flight in this process, by record key.
    flights: super::flight::Flights<String>,
    _types: PhantomData<fn(&K) -> V>,
}

impl<K, V> std::fmt::Debug for SharedCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<K, V> SharedCache<K, V> {
    /// A cache named `name` (caches of different names never share
    /// entries; every process that uses the same name and store does)
    /// whose responses are kept for `ttl` after they were made.
    pub fn new(name: impl Into<String>, ttl: Duration) -> Result<Self, CacheError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(CacheError::InvalidName { name });
        }
        if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
            return Err(CacheError::InvalidTtl { ttl });
        }
        Ok(SharedCache {
            name,
            ttl,
            counts: Mutex::new(Counts::default()),
            flights: super::flight::Flights::default(),
            _types: PhantomData,
        })
    }

    /// This value's hits, misses and money saved so far (`entries` is not
    /// known for a shared cache: 0).
    pub fn stats(&self) -> CacheStats {
        let counts = self.lock();
        CacheStats {
            hits: counts.hits,
            misses: counts.misses,
            saved: counts.saved,
            entries: 0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Each update is one assignment: a poisoned lock is consistent.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn json_error(&self, source: serde_json::Error) -> CacheError {
        CacheError::Json {
            name: self.name.clone(),
            source,
        }
    }

    fn store_error(&self, source: crate::StoreError) -> CacheError {
        CacheError::Store {
            name: self.name.clone(),
            source,
        }
    }
}

impl<K: Serialize, V: Serialize + DeserializeOwned> SharedCache<K, V> {
    /// The request as a JSON value (objects' keys sorted, so equal requests
    /// give equal text) and the record key it is found under.
    fn locate(&self, request: &K) -> Result<Located, CacheError> {
        let value = serde_json::to_value(request).map_err(|e| self.json_error(e))?;
        let text = value.to_string();
        let key = format!("cache:{}:{:032x}", self.name, fnv1a_128(text.as_bytes()));
        Ok(Located { value, key })
    }

    /// The cached response for `request`, if one is held and not expired —
    /// counted as a hit (and its cost as saved). `Ok(None)` counts nothing.
    pub async fn lookup(
        &self,
        engine: &Engine,
        request: &K,
    ) -> Result<Option<Cached<V>>, CacheError> {
        let located = self.locate(request)?;
        self.lookup_at(engine, &located).await
    }

    /// [`SharedCache::lookup`] of a request already located.
    async fn lookup_at(
        &self,
        engine: &Engine,
        located: &Located,
    ) -> Result<Option<Cached<V>>, CacheError> {
        let (wanted, key) = (&located.value, &located.key);
        let Some(text) = engine
            .store()
            .get_record_async(key)
            .await
            .map_err(|e| self.store_error(e))?
        else {
            return Ok(None);
        };
        let stored: Stored<serde_json::Value, V> =
            serde_json::from_str(&text).map_err(|e| self.json_error(e))?;
        if stored.request != *wanted {
            return Ok(None); // another request with the same hash
        }
        let mut counts = self.lock();
        counts.hits += 1;
        counts.saved += stored.cost;
        Ok(Some(Cached {
            value: stored.response,
            hit: true,
            cost: stored.cost,
        }))
    }

    /// [`SharedCache::lookup`] for a call: a hit (logged), or `None` for a
    /// miss or an unreadable cache (logged too: the call goes on as a miss).
    async fn lookup_logged(&self, engine: &Engine, located: &Located) -> Option<Cached<V>> {
        match self.lookup_at(engine, located).await {
            Ok(Some(hit)) => {
                tracing::debug!(cache = %self.name, saved = %hit.cost,
                    "response cache hit: nothing charged");
                Some(hit)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(cache = %self.name, %error, "response cache unreadable; calling as a miss");
                None
            }
        }
    }

    /// Keeps `response`, which cost `cost`, for `request` (for the cache's
    /// TTL), replacing what was there.
    pub async fn insert(
        &self,
        engine: &Engine,
        request: &K,
        response: &V,
        cost: Decimal,
    ) -> Result<(), CacheError> {
        let located = self.locate(request)?;
        self.insert_at(engine, &located, response, cost).await
    }

    /// [`SharedCache::insert`] of a request already located.
    async fn insert_at(
        &self,
        engine: &Engine,
        located: &Located,
        response: &V,
        cost: Decimal,
    ) -> Result<(), CacheError> {
        let key = &located.key;
        // The request as located (already JSON): not serialized again.
        let text = serde_json::to_string(&Stored {
            request: &located.value,
            response,
            cost: cost.normalize(),
        })
        .map_err(|e| self.json_error(e))?;
        engine
            .store()
            .put_record_async(key, &text, self.ttl)
            .await
            .map_err(|e| self.store_error(e))
    }

    /// A guarded call through the cache, as
    /// [`ResponseCache::call`](super::ResponseCache::call): a hit returns
    /// the cached response (no body, no charge); a miss reserves `estimate`
    /// on `ledger`, runs `body`, commits `actual(&value)` and caches the
    /// value with that cost. A block returns `Err(BudgetExceeded.into())`
    /// and runs nothing; a body error releases the reservation and caches
    /// nothing. A cache that cannot be read or written is logged and
    /// bypassed.
    pub async fn call<E, F, Fut>(
        &self,
        engine: &Engine,
        ledger: &Ledger,
        request: &K,
        estimate: Decimal,
        actual: impl FnOnce(&V) -> Decimal,
        body: F,
    ) -> Result<Cached<V>, E>
    where
        E: From<BudgetExceeded>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.call_with(
            engine,
            request,
            super::guarded_miss(engine, ledger, estimate, actual, body),
        )
        .await
    }

    /// [`SharedCache::call`] with the miss given: the cache's part of a call
    /// (look up, single-flight, count, insert) around `miss`, which guards
    /// and runs the call and returns the value and what was recorded for
    /// it. `miss` is only polled on a miss.
    pub(crate) async fn call_with<E, Fut>(
        &self,
        engine: &Engine,
        request: &K,
        miss: Fut,
    ) -> Result<Cached<V>, E>
    where
        Fut: Future<Output = Result<(V, Decimal), E>>,
    {
        let located = match self.locate(request) {
            Ok(located) => located,
            Err(error) => {
                // Not cacheable: guarded as usual, nothing kept.
                tracing::warn!(cache = %self.name, %error, "request not cacheable; calling as a miss");
                self.lock().misses += 1;
                let (value, committed) = miss.await?;
                return Ok(Cached {
                    value,
                    hit: false,
                    cost: committed,
                });
            }
        };
        // Flights by record key: requests whose hashes collide only wait
        // for each other, then each finds its own answer or leads.
        let _leader = loop {
            if let Some(hit) = self.lookup_logged(engine, &located).await {
                return Ok(hit);
            }
            match self.flights.turn(&located.key) {
                super::flight::Turn::Follow(rx) => super::flight::wait(rx).await,
                // Looked up again: a leader inserts before it lets go.
                super::flight::Turn::Lead(leader) => {
                    match self.lookup_logged(engine, &located).await {
                        Some(hit) => return Ok(hit),
                        None => break leader,
                    }
                }
            }
        };
        self.lock().misses += 1;
        let (value, committed) = miss.await?;
        if let Err(error) = self.insert_at(engine, &located, &value, committed).await {
            tracing::warn!(cache = %self.name, %error, "response not cached");
        }
        Ok(Cached {
            value,
            hit: false,
            cost: committed,
        })
    }
}

/// FNV-1a, 128 bits: the same in every process and build (std's hasher
/// may change between Rust releases), and only a locator — a hit also
/// compares the whole request.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_128_matches_its_reference_values() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn names_and_ttls_are_checked() {
        let ok = |name: &str, ttl| SharedCache::<String, String>::new(name, ttl).is_ok();
        assert!(ok("answers-v1.2_x", Duration::from_secs(1)));
        assert!(!ok("", Duration::from_secs(1)));
        assert!(!ok("a:b", Duration::from_secs(1)));
        assert!(!ok(&"x".repeat(65), Duration::from_secs(1)));
        assert!(!ok("a", Duration::ZERO));
        assert!(!ok("a", Duration::MAX));
    }
}
