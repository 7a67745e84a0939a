//! [`RedisStore`]: budgets shared by every process and host that uses the same
//! Redis.
//!
//! - **One round trip per operation**: check, reserve, commit, release and
//!   status are each one Lua script (`EVALSHA`, reloaded on `NOSCRIPT`).
//! - **Exact**: amounts travel and are stored as two-limb integers (whole
//!   units + nano-units); never `INCRBYFLOAT`, never a float sum. The largest
//!   amount is 10¹⁵ units ([`MAX_AMOUNT_NANOS`](crate::amount::MAX_AMOUNT_NANOS));
//!   totals are exact up to 9×10¹⁵ units.
//! - **Server time**: scripts read Redis `TIME`, so client clocks do not
//!   matter (a [`Clock`] can replace it in tests).
//! - **Amortized O(1)**: a running total per window plus a sorted set of the
//!   entries that will leave it; each call reads only what leaves.
//! - **One slot per ledger**: every key of a ledger shares the hash tag
//!   `{namespace:resource:principal}` (parts percent-encoded, so no two
//!   ledgers collide and no part can open or close a tag), and a script on
//!   one ledger touches no other key: the kill switch is read beside the
//!   charge script in the same round trip (`kill_switch.rs`), and a charge
//!   made by a request that finds its ledger paused is taken back by id
//!   before the call returns. Only the hierarchy script spans several
//!   ledgers' tags, and [`RedisStoreBuilder::one_ledger_per_script`]
//!   replaces it with one script per ledger.
//! - **TTLs on every key**; reservations expire after their TTL; settled
//!   reservation ids are remembered for a while so a retried commit is never
//!   charged twice.
//! - **Bounded time**: every operation — connect, send and reply together —
//!   has one deadline (the timeout, default 500 ms) and fails as a
//!   [`StoreError`]; the connection reconnects by itself when Redis comes
//!   back, and a pooled connection found dead is replaced before a request
//!   is sent on it.
//! - **A Redis that forgets is refused** (`checks.rs`): every new
//!   connection checks `maxmemory-policy` (only `noeviction` unless
//!   [`RedisStoreBuilder::accept_eviction`]), warns once about missing
//!   persistence, and compares the store's epoch key, so a reset while the
//!   process runs fails closed ([`RedisStore::accept_reset`]).
//! - **Unknown outcomes settle by id**: a cancelled reservation leaves a
//!   tombstone, so a request that arrives after its cancellation is
//!   refused; the settle and status scripts may write on a full
//!   `noeviction` Redis (`allow-oom`), the charge scripts may not. Redis 7.0
//!   or newer.
//! - **Bounded work**: a call prunes at most 1,000 entries per window that
//!   left it; a window whose totals or log were lost is rebuilt or emptied,
//!   never negative.
//! - **Sync and async**: a sync call is one blocking round trip on the
//!   calling thread (a small pool of connections; no hand-over to another
//!   thread), so it needs no async runtime and works inside one too. On
//!   `redis://` and `redis+unix://` these connections are the store's own
//!   lean RESP2 client (a call is packed once and its flat reply parsed
//!   without redis-rs's general machinery); `rediss://` uses redis-rs. Async
//!   calls run on the store's own small runtime (one thread), so they work
//!   from any executor; they share one pipelined connection, redis-rs's
//!   multiplexed one, which passes the same server checks on every URL.
//! - **Secrets**: the password of a URL never appears in `Debug`, `Display`,
//!   logs or errors.
//!
//! Keys, for prefix `budgetgate` and ledger `openai:gpt-4o@user:42`:
//! `budgetgate:{openai:gpt-4o:user%3A42}:meta` (one hash: a header — the
//! ledger's last time, the earliest reservation expiry, when its keys expire
//! and are renewed next — the running totals of every window and the open
//! reservations; a ledger with one window keeps its totals in the header,
//! so a call reads and writes one field; numbers are little-endian i64s,
//! read and written with Lua's `struct`, because parsing decimal text cost
//! ten times more), `…:e:<w>`
//! (the entries of rolling window `<w>` = `r<µs>`; other windows need none)
//! and `…:d:<id>` (a settled or cancelled reservation, or a fixed cost
//! recorded under its id, kept for the retention), `…:w:<w>:<threshold>` (a soft-limit threshold reported in
//! this window). A ledger's keys expire together, renewed about hourly
//! while it is used. `budgetgate:epoch` and `budgetgate:layout` (the key
//! layout's version) are the store's own (never expire).
//! Scripts take their numbers the same way, packed into one argument.
//!
//! Files, one concept each: `config.rs` (the builder, time source, URL
//! redaction), `keys.rs` (key layout and argument encodings), `scripts.rs`
//! (the Lua scripts, calls, `NOSCRIPT` recovery), `calls.rs` (a request's
//! call), `replies.rs` (replies into outcomes and errors), `checks.rs`
//! (what a connection checks about the server), `kill_switch.rs` (the
//! pause read beside a charge, and the take-back), `operator.rs` (resets,
//! operator budgets, records), `resp.rs` (the lean RESP2 client of the
//! sync calls), `blocking.rs` and `aio.rs` (sync and async connections); this
//! file holds the store and its [`Store`] implementation.
//!
//! A script's cost is its set-up, its Redis calls and the Lua allocation
//! it does. The common case — one lifetime or rolling window, nothing to
//! prune, expire or renew — takes a fast path at the top of the charge and
//! settle scripts: a reserve makes 3 calls (`TIME`, `HMGET` of the ledger
//! and `HSET`; a rolling window adds a `ZADD`; the kill switch's `HMGET`
//! follows the script in the same round trip), a
//! commit 5 (`TIME`, `HMGET`, `HDEL` of the reservation, `SET` of its
//! tombstone, `HSET`; rolling: `ZREM` and `ZADD`). Everything else runs the
//! general code, which gives the same results (`tests/redis_fast_paths.rs`
//! checks them step by step).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

mod aio;
mod blocking;
mod calls;
mod checks;
mod config;
mod keys;
mod kill_switch;
mod operator;
mod replies;
mod resp;
mod scripts;

pub use self::config::{redact, RedisConfigError, RedisStoreBuilder, TimeSource};
use self::keys::*;
use self::kill_switch::PauseRead;
use self::replies::*;
use self::scripts::*;

use self::resp::{Reply, Request};

use crate::budget::Limit;
use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::pause::PauseScope;
use crate::store::{RateOutcome, RateRequest};

use super::{
    ChargeOutcome, ChargeRequest, ManyOutcome, SettleOutcome, SettleRequest, Store, StoreError,
    StoreFuture, WindowUsage,
};

/// The Redis store. See the module docs.
///
/// ```no_run
/// use budgetgate::{Engine, store::redis::RedisStore};
/// let store = RedisStore::connect("redis://:secret@127.0.0.1:6379/0")?;
/// let engine = Engine::new(store);
/// # Ok::<(), budgetgate::store::redis::RedisConfigError>(())
/// ```
pub struct RedisStore {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// Async operations: one connection shared by every task, driven by
    /// `runtime` (`aio.rs`).
    async_con: aio::AsyncPool,
    /// Sync operations: blocking connections on the calling thread.
    blocking: blocking::BlockingPool,
    /// What every new connection checks about the server (`checks.rs`).
    checks: Arc<checks::ServerChecks>,
    url: String,
    prefix: String,
    timeout: Duration,
    idle_ttl: Duration,
    time: TimeSource,
    /// Scripts skip the general code when a call needs none of it.
    fast_paths: bool,
    /// Hierarchies as one script per ledger (`one_ledger_per_script`).
    one_ledger_per_script: bool,
    /// `WAIT`'s arguments (replicas, ms) for writes that record spend.
    replicas: Option<(String, String)>,
    /// Arguments every call sends, made once: `keep_arg` for reservation
    /// TTLs up to a day, the settled retention in ms, the pause hash's key.
    keep_default: Vec<u8>,
    retention_ms: Vec<u8>,
    /// The settled retention in µs (how long a fixed cost's id is kept).
    retention_us: i64,
    pause_key: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Allowed in any context, async included (a plain drop is not).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl RedisStore {
    /// A store with default settings (see [`RedisStoreBuilder`]).
    pub fn connect(url: &str) -> Result<RedisStore, RedisConfigError> {
        RedisStore::builder(url).build()
    }

    /// A builder for `url` (`redis://`, `rediss://` with the `redis-tls`
    /// feature, `redis://:password@host:port/db`, `redis+unix:///path`).
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url)
    }

    /// The URL with its password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One `PING` through the store's connection (health checks, benchmarks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run_async(self.ping_op()).await
    }

    /// Accepts the server's data as it is now, after this store detected
    /// that it was lost (a restart without persistence, a failover to an
    /// empty replica, `FLUSHALL`) and began failing closed. Call it once the
    /// data is restored, or once you decided to count from zero again.
    pub fn accept_reset(&self) {
        self.checks.accept_reset();
    }

    /// Sync [`RedisStore::ping`] (through the connections sync calls use).
    pub fn ping_blocking(&self) -> Result<(), StoreError> {
        self.command_blocking(&["PING"]).map(|_| ())
    }

    fn ping_op(&self) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let con = self.async_con.clone();
        async move {
            let replies = con
                .exchange(|pipe| {
                    pipe.cmd("PING");
                })
                .await?;
            match replies.as_slice() {
                [Reply::Data(pong)] if pong == b"PONG" => Ok(()),
                other => Err(unexpected(&other)),
            }
        }
    }

    /// One command on a sync connection; an error reply is an error.
    fn command_blocking(&self, args: &[&str]) -> Result<Reply, StoreError> {
        let mut request = Request::new();
        request.command(args.len());
        for arg in args {
            request.arg(arg);
        }
        match self.blocking.exchange(request.bytes(), 1)?.pop() {
            Some(Reply::Error(message)) => Err(StoreError::Backend(message)),
            Some(reply) => Ok(reply),
            None => Err(unexpected(&"nothing")),
        }
    }

    fn eval(
        &self,
        call: Call,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send + 'static {
        let con = self.async_con.clone();
        let wait = self.wait_for(std::slice::from_ref(&call)).cloned();
        async move {
            let mut replies = eval_async(&con, std::slice::from_ref(&call), wait.as_ref()).await?;
            replies.pop().ok_or_else(|| unexpected(&"nothing"))
        }
    }

    /// [`RedisStore::eval`] for the sync API: on the calling thread.
    fn eval_blocking(&self, call: Call) -> Result<Vec<String>, StoreError> {
        let mut replies = self.eval_pipeline_blocking(std::slice::from_ref(&call))?;
        replies.pop().ok_or_else(|| unexpected(&"nothing"))
    }

    /// Several script calls in one pipelined round trip (each script stays
    /// atomic on its own); scripts are loaded again if the server lost them.
    fn eval_pipeline(
        &self,
        calls: Vec<Call>,
    ) -> impl Future<Output = Result<Vec<Vec<String>>, StoreError>> + Send + 'static {
        let con = self.async_con.clone();
        let wait = self.wait_for(&calls).cloned();
        async move { eval_async(&con, &calls, wait.as_ref()).await }
    }

    /// `WAIT`'s arguments if `calls` must be replicated before they count
    /// (see `RedisStoreBuilder::wait_for_replicas`).
    fn wait_for(&self, calls: &[Call]) -> Option<&Wait> {
        self.replicas
            .as_ref()
            .filter(|_| calls.iter().any(|c| c.records_spend))
    }

    /// [`RedisStore::eval_pipeline`] for the sync API: on the calling
    /// thread, packed once (`EVALSHA`). Calls the server answers `NOSCRIPT`
    /// (it restarted or was flushed) did not run: they are sent again with
    /// the script's text (`EVAL`, which also caches it); the others ran and
    /// are not repeated.
    fn eval_pipeline_blocking(&self, calls: &[Call]) -> Result<Vec<Vec<String>>, StoreError> {
        Ok(self.eval_pipeline_blocking_with(calls, None)?.0)
    }

    /// [`RedisStore::eval_pipeline_blocking`], with the kill switch read
    /// after the calls (its reply comes back beside theirs).
    fn eval_pipeline_blocking_with(
        &self,
        calls: &[Call],
        pause: Option<&PauseRead>,
    ) -> Result<(Vec<Vec<String>>, Option<Reply>), StoreError> {
        let wait = self.wait_for(calls);
        let exchange = |lost: Option<&[usize]>| {
            let mut request = pack_calls(calls, lost);
            if let (None, Some(pause)) = (lost, pause) {
                pause.pack(&mut request);
            }
            if let Some(wait) = wait {
                pack_wait(&mut request, wait);
            }
            let mut replies = self
                .blocking
                .exchange(request.bytes(), request.commands())?;
            if let Some(wait) = wait {
                replicated(replies.pop(), wait)?;
            }
            Ok::<_, StoreError>(replies)
        };
        let mut replies = exchange(None)?;
        let paused = match pause {
            Some(_) => Some(replies.pop().ok_or_else(|| unexpected(&"nothing"))?),
            None => None,
        };
        let lost = lost_scripts(&replies);
        if !lost.is_empty() {
            let again = exchange(Some(&lost))?;
            restore(&mut replies, &lost, again);
        }
        let replies = replies.into_iter().map(strings).collect::<Result<_, _>>()?;
        Ok((replies, paused))
    }

    /// Runs `op` on the store's runtime, bounded by the timeout.
    fn spawn<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<T, StoreError>> {
        let timeout = self.timeout;
        self.handle.spawn(async move {
            tokio::time::timeout(timeout, op)
                .await
                .unwrap_or(Err(StoreError::Timeout(timeout)))
        })
    }

    async fn run_async<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.spawn(op).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Backend(format!("store task failed: {e}"))),
        }
    }
}

impl Store for RedisStore {
    fn charge(&self, request: &ChargeRequest<'_>) -> Result<ChargeOutcome, StoreError> {
        self.charge_now(request)
    }

    fn settle(&self, request: &SettleRequest<'_>) -> Result<SettleOutcome, StoreError> {
        let call = self.settle_call(request);
        self.eval_blocking(call).and_then(parse_settle)
    }

    fn status(&self, ledger: &Ledger, limits: &[Limit]) -> Result<Vec<WindowUsage>, StoreError> {
        let call = self.status_call(ledger, limits);
        self.eval_blocking(call)
            .and_then(|r| parse_status(r, limits.len()))
    }

    fn charge_async<'a>(&'a self, request: ChargeRequest<'a>) -> StoreFuture<'a, ChargeOutcome> {
        Box::pin(self.charge_later(request))
    }

    fn settle_async<'a>(&'a self, request: SettleRequest<'a>) -> StoreFuture<'a, SettleOutcome> {
        let call = self.settle_call(&request);
        let op = self.eval(call);
        Box::pin(async move { self.run_async(op).await.and_then(parse_settle) })
    }

    fn status_async<'a>(
        &'a self,
        ledger: &'a Ledger,
        limits: &'a [Limit],
    ) -> StoreFuture<'a, Vec<WindowUsage>> {
        let call = self.status_call(ledger, limits);
        let op = self.eval(call);
        let n = limits.len();
        Box::pin(async move { self.run_async(op).await.and_then(|r| parse_status(r, n)) })
    }

    /// `SCAN`s for the ledgers' `meta` keys (never `KEYS`): bounded by `limit`
    /// and by the operation timeout.
    fn ledgers(&self, limit: usize) -> Result<Vec<Ledger>, StoreError> {
        let pattern = format!("{}:{{*}}:meta", glob_escape(&self.prefix));
        let prefix_len = self.prefix.len() + 2; // "prefix:{"
        let deadline = std::time::Instant::now() + self.timeout;
        let mut found = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::Timeout(self.timeout));
            }
            let reply =
                self.command_blocking(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])?;
            let Reply::Array(mut parts) = reply else {
                return Err(StoreError::Backend(format!(
                    "unexpected SCAN reply: {}",
                    shown(&reply)
                )));
            };
            let (Some(Reply::Array(keys)), Some(Reply::Data(next))) = (parts.pop(), parts.pop())
            else {
                return Err(StoreError::Backend("unexpected SCAN reply".to_owned()));
            };
            for key in keys {
                let Reply::Data(key) = key else { continue };
                let key = String::from_utf8_lossy(&key);
                let inner = key.get(prefix_len..key.len().saturating_sub("}:meta".len()));
                let parts: Vec<&str> = inner.unwrap_or("").split(':').collect();
                if let [ns, res, p] = parts.as_slice() {
                    if let (Some(ns), Some(res), Some(p)) =
                        (decode_part(ns), decode_part(res), decode_part(p))
                    {
                        found.push(Ledger::new(ns, res, p));
                    }
                }
                if found.len() >= limit {
                    return Ok(found);
                }
            }
            if next == b"0" {
                return Ok(found);
            }
            cursor = String::from_utf8_lossy(&next).into_owned();
        }
    }

    /// A hierarchy in one script — one round trip, atomic across its
    /// ledgers: every ledger is checked, then all are recorded or none.
    /// (On a standalone Redis any keys may share a script; a Redis Cluster
    /// would need the ledgers under one hash tag.)
    fn charge_many(&self, requests: &[ChargeRequest<'_>]) -> Result<ManyOutcome, StoreError> {
        if self.one_ledger_per_script {
            return crate::store::charge_in_order(self, requests);
        }
        self.charge_many_now(requests)
    }

    fn charge_many_async<'a>(
        &'a self,
        requests: Vec<ChargeRequest<'a>>,
    ) -> StoreFuture<'a, ManyOutcome> {
        if self.one_ledger_per_script {
            return Box::pin(crate::store::charge_in_order_async(self, requests));
        }
        Box::pin(self.charge_many_later(requests))
    }

    fn settle_many_async<'a>(
        &'a self,
        requests: Vec<SettleRequest<'a>>,
    ) -> StoreFuture<'a, Vec<SettleOutcome>> {
        let calls = requests.iter().map(|r| self.settle_call(r)).collect();
        let op = self.eval_pipeline(calls);
        Box::pin(async move {
            self.run_async(op)
                .await?
                .into_iter()
                .map(parse_settle)
                .collect()
        })
    }

    /// One pipelined round trip (settling is idempotent per reservation, so
    /// the batch can be retried whole).
    fn settle_many(
        &self,
        requests: &[SettleRequest<'_>],
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let calls: Vec<Call> = requests.iter().map(|r| self.settle_call(r)).collect();
        self.eval_pipeline_blocking(&calls)?
            .into_iter()
            .map(parse_settle)
            .collect()
    }

    fn set_paused(&self, scope: &PauseScope, paused: bool) -> Result<(), StoreError> {
        let field = match scope {
            PauseScope::All => "*".to_owned(),
            PauseScope::Namespace(ns) => self.pause_fields(&Ledger::new(ns.as_str(), "", "")).0,
            PauseScope::Ledger(l) => self.pause_fields(l).1,
        };
        let key = &self.pause_key;
        if paused {
            self.command_blocking(&["HSET", key, &field, "1"])?;
        } else {
            self.command_blocking(&["HDEL", key, &field])?;
        }
        Ok(())
    }

    fn paused(&self) -> Result<Vec<PauseScope>, StoreError> {
        let key = &self.pause_key;
        let fields = strings(self.command_blocking(&["HKEYS", key])?)?;
        Ok(fields.iter().filter_map(|f| parse_pause_field(f)).collect())
    }

    fn reset(&self, ledger: &Ledger) -> Result<(), StoreError> {
        self.reset_ledger(ledger)
    }

    fn shared_budgets_version(&self) -> Result<u64, StoreError> {
        self.budgets_version()
    }

    fn shared_budgets(&self) -> Result<(u64, Vec<String>), StoreError> {
        self.budgets_all()
    }

    fn put_shared_budget(&self, key: &str, value: Option<&str>) -> Result<u64, StoreError> {
        self.budgets_put(key, value)
    }

    fn put_record(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.record_put(key, value, ttl)
    }

    fn put_record_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.record_put_async(key, value, ttl))
    }

    fn get_record_async<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(self.record_get_async(key))
    }

    fn get_record(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.record_get(key)
    }

    fn rate(&self, request: &RateRequest<'_>) -> Result<RateOutcome, StoreError> {
        let call = self.rate_call(request);
        self.eval_blocking(call).and_then(parse_rate)
    }

    fn rate_async<'a>(&'a self, request: RateRequest<'a>) -> StoreFuture<'a, RateOutcome> {
        let call = self.rate_call(&request);
        let op = self.eval(call);
        Box::pin(async move { self.run_async(op).await.and_then(parse_rate) })
    }

    fn release_in_background(&self, request: &SettleRequest<'_>) {
        // Never wait in a destructor: the release is sent from the store's
        // runtime; if it fails, the hold expires after its TTL.
        let call = self.settle_call(request);
        let op = self.eval(call);
        let (ledger, id) = (request.ledger.clone(), request.id);
        let _detached = self.spawn(async move {
            if let Err(error) = op.await {
                tracing::warn!(%ledger, %id, %error,
                    "could not release a dropped reservation; its headroom returns when it expires");
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::config::scrub;
    use super::*;

    #[test]
    fn encoding_keeps_ledgers_apart() {
        let enc = |p: &str| {
            let mut s = String::new();
            encode_part(&mut s, p);
            s
        };
        assert_eq!(enc("user:42"), "user%3A42");
        assert_eq!(enc("{x}*\n é"), "%7Bx%7D%2A%0A%20%C3%A9");
        assert_ne!(enc("a:b"), enc("a%3Ab"), "'%' itself is encoded");
    }

    #[test]
    fn amounts_as_text() {
        for (nanos, text) in [
            (0, "0|0"),
            (1, "0|1"),
            (1_500_000_000, "1|500000000"),
            (-1, "-1|999999999"),
            (1_000_000_000_000_000_000_000_000, "1000000000000000|0"),
        ] {
            assert_eq!(amount_text(nanos), text.as_bytes(), "{nanos}");
        }
    }

    #[test]
    fn pause_fields_round_trip() {
        // A prefix with ':' in it: the fields come from the key's base.
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .prefix("bg:x")
            .build()
            .unwrap();
        for (ns, l) in [
            ("a:b", Ledger::new("a:b", "{x}", "user 1\né")),
            ("", Ledger::new("", "", "")),
            ("ns", Ledger::new("ns", "res", "p*@%")),
        ] {
            let (ns_field, field) = store.pause_fields(&l);
            assert_eq!(parse_pause_field(&field), Some(PauseScope::Ledger(l)));
            assert_eq!(
                parse_pause_field(&ns_field),
                Some(PauseScope::Namespace(ns.into()))
            );
        }
        assert_eq!(parse_pause_field("*"), Some(PauseScope::All));
    }

    #[test]
    fn limbs_round_trip() {
        for n in [
            0i128,
            1,
            999_999_999,
            1_000_000_000,
            123_456_789_012_345_678_901,
            -5,
        ] {
            let (u, r) = limbs(n);
            assert_eq!(join(&u.to_string(), &r.to_string()).unwrap(), n);
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://:hunter2@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("rediss://user:p%40ss@host"),
            "rediss://user:***@host"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            scrub("auth failed for hunter2", Some("hunter2")),
            "auth failed for ***"
        );
    }
}
