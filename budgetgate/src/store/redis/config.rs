//! Configuring a [`RedisStore`]: the builder, where time comes from, what
//! cannot be built, and URLs shown without their password.

use super::*;

/// Where a [`RedisStore`] takes time from.
#[derive(Debug, Clone, Default)]
pub enum TimeSource {
    /// The Redis server's `TIME` (the default: one clock for every client).
    #[default]
    Server,
    /// A client clock, for tests that move time (a `ManualClock`).
    Clock(Arc<dyn Clock>),
}

/// A Redis store that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// The URL could not be parsed (shown without its password).
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password replaced by `***`.
        url: String,
        /// Why.
        reason: String,
    },
    /// A key prefix may not contain `{` or `}` (they delimit the hash tag).
    #[error("invalid key prefix {0:?}: it may not contain '{{' or '}}'")]
    InvalidPrefix(String),
    /// The store's runtime could not start.
    #[error("could not start the Redis store's runtime: {0}")]
    Runtime(String),
    /// [`RedisStoreBuilder::wait_for_replicas`] was given a wait that does
    /// not fit in the operation timeout.
    #[error("waiting up to {wait:?} for replicas does not fit in the operation timeout of {timeout:?}: make the wait shorter than the timeout")]
    ReplicaWait {
        /// The wait asked for.
        wait: Duration,
        /// The store's operation timeout.
        timeout: Duration,
    },
}

/// Builds a [`RedisStore`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    #[cfg_attr(not(feature = "redis-tls"), allow(dead_code))]
    root_certificate: Option<Vec<u8>>,
    prefix: String,
    timeout: Duration,
    idle_ttl: Duration,
    settled_retention: Duration,
    time: TimeSource,
    fast_paths: bool,
    one_ledger_per_script: bool,
    accept_eviction: bool,
    redis_rs: bool,
    replicas: Option<(u32, Duration)>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The defaults, for `url` ([`RedisStore::builder`]).
    pub(super) fn new(url: &str) -> Self {
        RedisStoreBuilder {
            url: url.to_owned(),
            root_certificate: None,
            prefix: "budgetgate".to_owned(),
            timeout: Duration::from_millis(500),
            idle_ttl: Duration::from_secs(400 * 86_400),
            settled_retention: Duration::from_secs(900),
            time: TimeSource::Server,
            fast_paths: true,
            one_ledger_per_script: false,
            accept_eviction: false,
            redis_rs: false,
            replicas: None,
        }
    }

    /// Keys start with `prefix:` (default `budgetgate`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound on every operation, connecting included (default 500 ms;
    /// clamped to 1 ms ..= 1 hour).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(1), Duration::from_secs(3600));
        self
    }

    /// How long an untouched ledger with a lifetime cap is kept (default 400
    /// days). Ledgers with only rolling or calendar windows are kept for
    /// their longest window (a day, a month) plus a margin of at least a day
    /// and the reservation TTL, then disappear.
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        // Clamped to 1 s ..= 100 years: the scripts add it to the time.
        self.idle_ttl = crate::budget::clamp_duration(ttl, Duration::from_secs(1));
        self
    }

    /// How long a settled reservation id is remembered, so a retried commit is
    /// recognised and a cancelled reservation that arrives late is refused
    /// (default 15 minutes: longer than the engine's settle horizon, 10
    /// minutes by default, within which retries happen; each remembered id
    /// costs about 180 bytes of Redis memory: at 1,000 commits a second,
    /// about 160 MB).
    pub fn settled_retention(mut self, retention: Duration) -> Self {
        // Clamped to 1 s ..= 100 years.
        self.settled_retention = crate::budget::clamp_duration(retention, Duration::from_secs(1));
        self
    }

    /// Writes that record spend — commits and fixed costs — are confirmed
    /// only once `replicas` replicas acknowledged them (Redis's `WAIT`,
    /// sent in the same round trip), waiting at most `wait`. Replication is
    /// asynchronous, so without this a failover can lose the last spends
    /// the old primary acknowledged, and grant their money again.
    ///
    /// A write the replicas did not acknowledge in time is a store error
    /// whose outcome is unknown: a commit is then retried by id in the
    /// background (idempotent) until they do, within the engine's settle
    /// horizon; a fail-closed fixed cost is refused and its charge taken
    /// back by id. Reservations and releases do not wait. `wait` must be
    /// shorter than the operation [`timeout`](Self::timeout) (else `build`
    /// fails); each such write takes at least one replication round trip
    /// longer.
    ///
    /// ```no_run
    /// use budgetgate::store::redis::RedisStore;
    /// use std::time::Duration;
    ///
    /// let store = RedisStore::builder("redis://127.0.0.1:6379")
    ///     .timeout(Duration::from_millis(500))
    ///     .wait_for_replicas(1, Duration::from_millis(100))
    ///     .build()?;
    /// # Ok::<(), budgetgate::store::redis::RedisConfigError>(())
    /// ```
    pub fn wait_for_replicas(mut self, replicas: u32, wait: Duration) -> Self {
        self.replicas = (replicas > 0).then_some((replicas, wait));
        self
    }

    /// For `rediss://`: trust this CA (PEM) instead of the public web roots —
    /// for a Redis behind a private CA. Needs the `redis-tls` feature.
    #[cfg(feature = "redis-tls")]
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// Accepts a server whose `maxmemory-policy` is not `noeviction`. By
    /// default such a server is refused (every operation fails with a store
    /// error naming the policy): under memory pressure it may delete a
    /// ledger's keys and so grant its budget again.
    pub fn accept_eviction(mut self) -> Self {
        self.accept_eviction = true;
        self
    }

    /// Hierarchies charge their ledgers one script each — held in one
    /// global order, rolled back on a refusal, fixed costs' holds turned
    /// into spend once every ledger fitted — instead of one atomic script
    /// over all of them. Then no script touches more than one ledger's
    /// hash tag, as a Redis Cluster requires. No ledger is ever overspent
    /// either way; this costs a round trip per ledger (plus one for fixed
    /// costs), and between the holds another caller may find some of the
    /// hierarchy's ledgers held and not yet the others.
    ///
    /// ```
    /// use budgetgate::store::redis::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379").one_ledger_per_script();
    /// ```
    pub fn one_ledger_per_script(mut self) -> Self {
        self.one_ledger_per_script = true;
        self
    }

    /// Where time comes from (default: the server's `TIME`).
    pub fn time_source(mut self, time: TimeSource) -> Self {
        self.time = time;
        self
    }

    /// Scripts without their fast paths (for tests that check the fast
    /// paths give the same results as the general code).
    #[doc(hidden)]
    pub fn without_fast_paths(mut self) -> Self {
        self.fast_paths = false;
        self
    }

    /// redis-rs's blocking connections for sync calls on `redis://` too,
    /// instead of the store's own RESP2 client (for benchmarks comparing the
    /// two; their timeouts bound each read, not an operation, and their
    /// Unix-socket connects have none, which the lean client's do). Async
    /// calls always use redis-rs's multiplexed connection.
    #[doc(hidden)]
    pub fn redis_rs_connections(mut self) -> Self {
        self.redis_rs = true;
        self
    }

    fn client(&self) -> ::redis::RedisResult<::redis::Client> {
        #[cfg(feature = "redis-tls")]
        if let Some(root) = &self.root_certificate {
            return ::redis::Client::build_with_tls(
                self.url.as_str(),
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.clone()),
                },
            );
        }
        ::redis::Client::open(self.url.as_str())
    }

    /// Builds the store. It connects lazily: a Redis that is down now makes
    /// operations fail (and budgets fail closed) until it is up.
    pub fn build(self) -> Result<RedisStore, RedisConfigError> {
        if self.prefix.contains(['{', '}']) {
            return Err(RedisConfigError::InvalidPrefix(self.prefix));
        }
        if let Some((_, wait)) = self.replicas {
            if wait >= self.timeout {
                return Err(RedisConfigError::ReplicaWait {
                    wait,
                    timeout: self.timeout,
                });
            }
        }
        let redacted = redact(&self.url);
        let secret = password(&self.url);
        let client = self.client().map_err(|e| RedisConfigError::InvalidUrl {
            url: redacted.clone(),
            reason: scrub(&e.to_string(), secret.as_deref()),
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("budgetgate-redis")
            .enable_all()
            .build()
            .map_err(|e| RedisConfigError::Runtime(e.to_string()))?;
        let checks = Arc::new(checks::ServerChecks::new(
            &self.prefix,
            self.accept_eviction,
        ));
        let async_con =
            aio::AsyncPool::new(client.clone(), checks.clone(), self.timeout, secret.clone());
        Ok(RedisStore {
            async_con,
            blocking: blocking::BlockingPool::new(
                client,
                checks.clone(),
                self.timeout,
                secret.clone(),
                self.redis_rs,
            ),
            checks,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            url: redacted,
            pause_key: format!("{}:paused", self.prefix),
            prefix: self.prefix,
            timeout: self.timeout,
            idle_ttl: self.idle_ttl,
            keep_default: keep_arg(self.idle_ttl, margin_ms(Duration::ZERO)),
            retention_ms: self
                .settled_retention
                .as_millis()
                .max(1)
                .to_string()
                .into_bytes(),
            retention_us: micros(self.settled_retention),
            time: self.time,
            fast_paths: self.fast_paths,
            one_ledger_per_script: self.one_ledger_per_script,
            // `WAIT n ms` (at least 1 ms: 0 would wait for ever).
            replicas: self.replicas.map(|(n, wait)| {
                (
                    n.to_string(),
                    wait.as_millis().clamp(1, u128::from(u32::MAX)).to_string(),
                )
            }),
        })
    }
}

/// The password of a URL, if any (`redis://user:pass@…`, `redis://:pass@…`).
pub(super) fn password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pass) = userinfo.split_once(':')?;
    (!pass.is_empty()).then(|| pass.to_owned())
}

/// The URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    match password(url) {
        Some(secret) => url.replacen(&format!(":{secret}@"), ":***@", 1),
        None => url.to_owned(),
    }
}

pub(super) fn scrub(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => message.replace(s, "***"),
        _ => message.to_owned(),
    }
}
