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
//!   ledgers collide and no part can open or close a tag).
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
//!   from any executor; they share one pipelined connection (the same lean
//!   client on `redis://` and `redis+unix://`, redis-rs's multiplexed one on
//!   `rediss://`).
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
//! and `…:d:<id>` (a settled or cancelled reservation, kept for the
//! retention), `…:w:<w>:<threshold>` (a soft-limit threshold reported in
//! this window). A ledger's keys expire together, renewed about hourly
//! while it is used. `budgetgate:epoch` is the store's own (never expires).
//! Scripts take their numbers the same way, packed into one argument.
//!
//! A script's cost is its set-up, its Redis calls and the Lua allocation
//! it does. The common case — one lifetime or rolling window, nothing to
//! prune, expire or renew — takes a fast path at the top of the charge and
//! settle scripts: a reserve makes 4 calls (`TIME`, `HMGET` of the ledger,
//! `EXISTS` of the kill switch — its fields are read only while something is
//! paused — and `HSET`; a rolling window adds a `ZADD`), a
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
mod checks;
mod resp;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Script;

use self::resp::{push_i64, Reply, Request};
use std::sync::LazyLock;

use crate::budget::{Limit, Window};
use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::pause::PauseScope;
use crate::rate::{RateOutcome, RateReason, RateRequest};

use super::{
    ChargeOutcome, ChargeRequest, ManyOutcome, Nanos, SettleOutcome, SettleRequest, Store,
    StoreError, StoreFuture, WindowUsage,
};

const NANOS: i128 = 1_000_000_000;

static CHARGE: LazyLock<Lua> = LazyLock::new(|| {
    script(
        include_str!("lua/fast_charge.lua"),
        include_str!("lua/charge.lua"),
    )
});
static SETTLE: LazyLock<Lua> = LazyLock::new(|| {
    settle_script(script(
        include_str!("lua/fast_settle.lua"),
        include_str!("lua/settle.lua"),
    ))
});
// The same without their fast paths: the equivalence tests compare the two.
static CHARGE_GENERAL: LazyLock<Lua> =
    LazyLock::new(|| script(NO_FAST_PATH, include_str!("lua/charge.lua")));
static SETTLE_GENERAL: LazyLock<Lua> =
    LazyLock::new(|| settle_script(script(NO_FAST_PATH, include_str!("lua/settle.lua"))));
static STATUS: LazyLock<Lua> =
    LazyLock::new(|| settle_script(script(NO_FAST_PATH, include_str!("lua/status.lua"))));
static CHARGE_MANY: LazyLock<Lua> =
    LazyLock::new(|| script(NO_FAST_PATH, include_str!("lua/charge_many.lua")));
static RATE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(format!(
        "{}\n{}",
        include_str!("lua/now.lua"),
        include_str!("lua/rate.lua")
    ))
});

/// A script: redis-rs's handle (its hash, the async calls) and its text,
/// which the sync connections send with `EVAL` when the server lost it.
struct Lua {
    script: Script,
    code: String,
}

impl Lua {
    fn new(code: String) -> Lua {
        Lua {
            script: Script::new(&code),
            code,
        }
    }
}

/// A settle script may write when Redis is out of memory (`noeviction` at
/// `maxmemory`): money already spent must be recorded and holds released
/// — both shrink what new calls may reserve, and new reservations (the
/// charge scripts, without the flag) are refused with Redis's OOM error.
/// Status reads may too (they prune). The flag needs the script's first
/// line (Redis 7's shebang), hence Redis 7.0 or newer.
fn settle_script(lua: Lua) -> Lua {
    Lua::new(format!("#!lua flags=allow-oom\n{}", lua.code))
}

/// A script without a fast path.
const NO_FAST_PATH: &str = "";

/// A budget script: the time, its fast path (before the shared code, so a
/// call that takes it creates none of the shared functions), the shared
/// code, then its general body.
fn script(fast: &str, body: &str) -> Lua {
    Lua::new(format!(
        "{}\n{fast}\n{}\n{body}",
        include_str!("lua/now.lua"),
        include_str!("lua/common.lua"),
    ))
}

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
    accept_eviction: bool,
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
        let lean = aio::Multiplexed::start(
            client.get_connection_info().clone(),
            self.timeout,
            checks.clone(),
            runtime.handle(),
        );
        let async_con = match lean {
            Some(lean) => AsyncConn::Lean(lean),
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(100));
                let _context = runtime.enter();
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map_err(|e| RedisConfigError::InvalidUrl {
                        url: redacted.clone(),
                        reason: scrub(&e.to_string(), secret.as_deref()),
                    })?;
                AsyncConn::Manager(manager)
            }
        };
        Ok(RedisStore {
            async_con,
            blocking: blocking::BlockingPool::new(
                client,
                checks.clone(),
                self.timeout,
                secret.clone(),
            ),
            checks,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            url: redacted,
            secret,
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
            time: self.time,
            fast_paths: self.fast_paths,
        })
    }
}

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
    /// `runtime`.
    async_con: AsyncConn,
    /// Sync operations: blocking connections on the calling thread.
    blocking: blocking::BlockingPool,
    /// What every new connection checks about the server (`checks.rs`).
    checks: Arc<checks::ServerChecks>,
    url: String,
    secret: Option<String>,
    prefix: String,
    timeout: Duration,
    idle_ttl: Duration,
    time: TimeSource,
    /// Scripts skip the general code when a call needs none of it.
    fast_paths: bool,
    /// Arguments every call sends, made once: `keep_arg` for reservation
    /// TTLs up to a day, the settled retention in ms, the pause hash's key.
    keep_default: Vec<u8>,
    retention_ms: Vec<u8>,
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

/// The connection async operations share (cheap to clone).
#[derive(Clone)]
enum AsyncConn {
    /// `redis://` and `redis+unix://`: the store's lean client (`aio.rs`).
    Lean(aio::Multiplexed),
    /// `rediss://`: redis-rs's multiplexed connection, reconnecting.
    Manager(ConnectionManager),
}

/// An operation ready to send: owned, so it can move to the store's runtime.
struct Call {
    script: &'static Lua,
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
}

/// A script's numbers in one argument: little-endian i64s, which the
/// scripts read with Lua's `struct` (exact: every value is below 2⁵³).
/// Separate decimal arguments cost the server about 1.3k instructions
/// each to set up and as much again to convert.
struct Packed(Vec<u8>);

impl Packed {
    /// Room for `n` numbers.
    fn with_room(n: usize) -> Self {
        Packed(Vec::with_capacity(8 * n))
    }

    fn push(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn amount(&mut self, nanos: Nanos) -> &mut Self {
        let (units, rest) = limbs(nanos);
        self.push(units).push(rest)
    }
}

impl Call {
    /// `EVALSHA`, loading the script if the server lost it.
    fn invocation(&self) -> ::redis::ScriptInvocation<'_> {
        let mut invocation = self.script.script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        for arg in &self.args {
            invocation.arg(arg.as_slice());
        }
        invocation
    }
}

impl Call {
    /// Appends this call: `EVALSHA hash …`, or `EVAL text …` with `full`.
    fn pack(&self, request: &mut Request, full: bool) {
        request.command(3 + self.keys.len() + self.args.len());
        if full {
            request.arg("EVAL").arg(&self.script.code);
        } else {
            request.arg("EVALSHA").arg(self.script.script.get_hash());
        }
        request.arg_usize(self.keys.len());
        for key in &self.keys {
            request.arg(key);
        }
        for arg in &self.args {
            request.arg(arg);
        }
    }
}

/// `calls` packed with `EVALSHA`, or only those at `lost`, with `EVAL`.
fn pack_calls(calls: &[Call], lost: Option<&[usize]>) -> Request {
    let mut request = Request::new();
    match lost {
        None => calls.iter().for_each(|c| c.pack(&mut request, false)),
        Some(lost) => lost
            .iter()
            .filter_map(|&i| calls.get(i))
            .for_each(|c| c.pack(&mut request, true)),
    }
    request
}

/// The calls the server answered `NOSCRIPT` (it restarted or was flushed):
/// they did not run, and are sent again with the script's text (`EVAL`,
/// which also caches it); the others ran and are not repeated.
fn lost_scripts(replies: &[Reply]) -> Vec<usize> {
    replies
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Reply::Error(e) if e.starts_with("NOSCRIPT")))
        .map(|(i, _)| i)
        .collect()
}

/// Puts the replies of the calls sent again in their places.
fn restore(replies: &mut [Reply], lost: &[usize], again: Vec<Reply>) {
    for (&i, reply) in lost.iter().zip(again) {
        if let Some(slot) = replies.get_mut(i) {
            *slot = reply;
        }
    }
}

/// Script calls in one pipelined round trip on the async lean connection
/// (`eval_pipeline_blocking`'s twin).
async fn eval_lean(
    lean: &aio::Multiplexed,
    calls: &[Call],
    secret: Option<&str>,
) -> Result<Vec<Vec<String>>, StoreError> {
    let request = pack_calls(calls, None);
    let count = request.commands();
    let mut replies = lean
        .exchange(request.into_bytes(), count)
        .await
        .map_err(|e| conn_error(e, secret))?;
    let lost = lost_scripts(&replies);
    if !lost.is_empty() {
        let request = pack_calls(calls, Some(&lost));
        let count = request.commands();
        let again = lean
            .exchange(request.into_bytes(), count)
            .await
            .map_err(|e| conn_error(e, secret))?;
        restore(&mut replies, &lost, again);
    }
    replies.into_iter().map(strings).collect()
}

/// A failed lean connection as a [`StoreError`] (never showing `secret`).
fn conn_error(e: resp::ConnError, secret: Option<&str>) -> StoreError {
    use resp::ConnError;
    match e {
        ConnError::Redis(e) => store_error(&e, secret),
        ConnError::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            StoreError::Unavailable(format!("timed out: {e}"))
        }
        ConnError::Io(e) => StoreError::Unavailable(scrub(&e.to_string(), secret)),
        ConnError::Protocol(message) => StoreError::Backend(scrub(&message, secret)),
        ConnError::Refused(message) | ConnError::NotSent(message) => StoreError::NotSent(message),
    }
}

/// A script's reply as its strings (every budgetgate script returns a flat
/// array of strings or integers); an error reply is the script's error.
fn strings(reply: Reply) -> Result<Vec<String>, StoreError> {
    match reply {
        Reply::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Reply::Data(bytes) => String::from_utf8(bytes).map_err(|e| {
                    StoreError::Backend(format!("a budgetgate script replied non-UTF-8: {e}"))
                }),
                Reply::Int(i) => Ok(i.to_string()),
                other => Err(unexpected(&other)),
            })
            .collect(),
        Reply::Error(message) => Err(StoreError::Backend(message)),
        other => Err(unexpected(&other)),
    }
}

/// Several calls' `EVALSHA`s in one pipeline (each script stays atomic on
/// its own).
fn pipeline(calls: &[Call]) -> ::redis::Pipeline {
    let mut pipe = ::redis::pipe();
    for call in calls {
        pipe.cmd("EVALSHA")
            .arg(call.script.script.get_hash())
            .arg(call.keys.len())
            .arg(&call.keys);
        for arg in &call.args {
            pipe.arg(arg.as_slice());
        }
    }
    pipe
}

impl RedisStore {
    /// A store with default settings (see [`RedisStoreBuilder`]).
    pub fn connect(url: &str) -> Result<RedisStore, RedisConfigError> {
        RedisStore::builder(url).build()
    }

    /// A builder for `url` (`redis://`, `rediss://` with the `redis-tls`
    /// feature, `redis://:password@host:port/db`, `redis+unix:///path`).
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            root_certificate: None,
            prefix: "budgetgate".to_owned(),
            timeout: Duration::from_millis(500),
            idle_ttl: Duration::from_secs(400 * 86_400),
            settled_retention: Duration::from_secs(900),
            time: TimeSource::Server,
            fast_paths: true,
            accept_eviction: false,
        }
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
        let secret = self.secret.clone();
        async move {
            match con {
                AsyncConn::Lean(lean) => {
                    let mut request = Request::new();
                    request.command(1).arg("PING");
                    match lean.exchange(request.into_bytes(), 1).await {
                        Ok(replies) => match replies.as_slice() {
                            [Reply::Data(pong)] if pong == b"PONG" => Ok(()),
                            other => Err(unexpected(&other)),
                        },
                        Err(e) => Err(conn_error(e, secret.as_deref())),
                    }
                }
                AsyncConn::Manager(mut con) => ::redis::cmd("PING")
                    .query_async::<String>(&mut con)
                    .await
                    .map(|_| ())
                    .map_err(|e| store_error(&e, secret.as_deref())),
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

    /// The scripts' time argument: empty for the server's `TIME`.
    fn now_arg(&self) -> String {
        match &self.time {
            TimeSource::Server => String::new(),
            TimeSource::Clock(c) => c.now_micros().to_string(),
        }
    }

    /// `prefix:{ns:res:principal}`: every key of the ledger starts with it.
    fn base(&self, ledger: &Ledger) -> String {
        let mut base = String::with_capacity(self.prefix.len() + 64);
        base.push_str(&self.prefix);
        base.push_str(":{");
        encode_part(&mut base, ledger.namespace());
        base.push(':');
        encode_part(&mut base, ledger.resource());
        base.push(':');
        encode_part(&mut base, ledger.principal());
        base.push('}');
        base
    }

    /// [`keep_arg`] for this store.
    fn keep_arg(&self, margin_ms: u128) -> Vec<u8> {
        if margin_ms == self::margin_ms(Duration::ZERO) {
            return self.keep_default.clone();
        }
        keep_arg(self.idle_ttl, margin_ms)
    }

    /// A budget script's call on one ledger: keys `[meta]` (the scripts
    /// find the ledger's other keys from it), arguments `[now, keep]`; the
    /// caller appends its own.
    fn call(&self, script: &'static Lua, ledger: &Ledger, ttl: Duration) -> (Call, String) {
        let base = self.base(ledger);
        let mut keys = Vec::with_capacity(2);
        keys.push(key(&base, ":meta"));
        let mut args = Vec::with_capacity(16);
        args.extend([self.now_arg().into_bytes(), self.keep_arg(margin_ms(ttl))]);
        (Call { script, keys, args }, base)
    }

    fn eval(
        &self,
        call: Call,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send + 'static {
        let con = self.async_con.clone();
        let secret = self.secret.clone();
        async move {
            let mut con = match con {
                AsyncConn::Lean(lean) => {
                    let mut replies = eval_lean(&lean, &[call], secret.as_deref()).await?;
                    return replies.pop().ok_or_else(|| unexpected(&"nothing"));
                }
                AsyncConn::Manager(con) => con,
            };
            call.invocation()
                .invoke_async::<Vec<String>>(&mut con)
                .await
                .map_err(|e| store_error(&e, secret.as_deref()))
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
        let secret = self.secret.clone();
        async move {
            let mut con = match con {
                AsyncConn::Lean(lean) => return eval_lean(&lean, &calls, secret.as_deref()).await,
                AsyncConn::Manager(con) => con,
            };
            let build = || pipeline(&calls);
            match build().query_async::<Vec<Vec<String>>>(&mut con).await {
                Ok(replies) => Ok(replies),
                Err(e)
                    if e.kind()
                        == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript) =>
                {
                    for call in &calls {
                        call.script
                            .script
                            .load_async(&mut con)
                            .await
                            .map_err(|e| store_error(&e, secret.as_deref()))?;
                    }
                    build()
                        .query_async::<Vec<Vec<String>>>(&mut con)
                        .await
                        .map_err(|e| store_error(&e, secret.as_deref()))
                }
                Err(e) => Err(store_error(&e, secret.as_deref())),
            }
        }
    }

    /// [`RedisStore::eval_pipeline`] for the sync API: on the calling
    /// thread, packed once (`EVALSHA`). Calls the server answers `NOSCRIPT`
    /// (it restarted or was flushed) did not run: they are sent again with
    /// the script's text (`EVAL`, which also caches it); the others ran and
    /// are not repeated.
    fn eval_pipeline_blocking(&self, calls: &[Call]) -> Result<Vec<Vec<String>>, StoreError> {
        let request = pack_calls(calls, None);
        let mut replies = self
            .blocking
            .exchange(request.bytes(), request.commands())?;
        let lost = lost_scripts(&replies);
        if !lost.is_empty() {
            let request = pack_calls(calls, Some(&lost));
            let again = self
                .blocking
                .exchange(request.bytes(), request.commands())?;
            restore(&mut replies, &lost, again);
        }
        replies.into_iter().map(strings).collect()
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

    /// A charge: keys `[meta, paused]`; arguments `[now, keep]` and the
    /// charge as `read_charge` in common.lua reads it.
    fn charge_call(&self, request: &ChargeRequest<'_>) -> Call {
        let ttl = request.hold.map_or(Duration::ZERO, |h| h.ttl);
        let script: &'static Lua = if self.fast_paths {
            &CHARGE
        } else {
            &CHARGE_GENERAL
        };
        let (mut call, base) = self.call(script, request.ledger, ttl);
        self.charge_args(request, &base, &mut call.args);
        call.keys.push(self.pause_key.clone());
        call
    }

    /// One charge's arguments: its numbers, amount, id, pause fields and
    /// window ids.
    fn charge_args(&self, request: &ChargeRequest<'_>, base: &str, args: &mut Vec<Vec<u8>>) {
        let mut numbers = Packed::with_room(5 + 5 * request.limits.len());
        // A limit with several soft-limit thresholds travels as one packed
        // limit per threshold (same window and maximum; see `Packing`).
        let packed: usize = request.limits.iter().map(packed_count).sum();
        numbers.push(count(packed));
        for limit in request.limits {
            if !limit.warns() {
                numbers
                    .push(window_us(limit.window()))
                    .amount(limit.max_nanos())
                    .push(-1)
                    .push(0);
            }
            for (_, warn) in limit.warn_thresholds() {
                numbers
                    .push(window_us(limit.window()))
                    .amount(limit.max_nanos())
                    .amount(warn);
            }
        }
        let id = request
            .hold
            .map_or_else(super::ReservationId::new, |h| h.id);
        numbers
            .amount(request.amount)
            .push(i64::from(request.hold.is_some()))
            .push(micros(request.hold.map_or(Duration::ZERO, |h| h.ttl)));
        let (ns_field, ledger_field) = self.pause_fields_of(base);
        args.extend([
            numbers.0,
            amount_text(request.amount),
            id.hex().to_vec(),
            ns_field.into_bytes(),
            ledger_field.into_bytes(),
        ]);
        for limit in request.limits {
            let wid = wid(limit.window()).into_bytes();
            for _ in 1..packed_count(limit) {
                args.push(wid.clone());
            }
            args.push(wid);
        }
    }

    /// The pause-hash fields that cover a ledger: `n:<ns>` and
    /// `l:<ns>:<resource>:<principal>` (parts percent-encoded).
    fn pause_fields(&self, ledger: &Ledger) -> (String, String) {
        self.pause_fields_of(&self.base(ledger))
    }

    /// [`RedisStore::pause_fields`] from a ledger's `base` (which holds its
    /// encoded parts).
    fn pause_fields_of(&self, base: &str) -> (String, String) {
        // base = prefix + ":{" + ns:res:principal + "}"; parts contain no ':'.
        let inner = base
            .get(self.prefix.len() + 2..base.len().saturating_sub(1))
            .unwrap_or_default();
        let ns = inner.split(':').next().unwrap_or_default();
        (format!("n:{ns}"), format!("l:{inner}"))
    }

    /// A settle: keys `[meta, tombstone]`; arguments as settle.lua reads
    /// them.
    fn settle_call(&self, request: &SettleRequest<'_>) -> Call {
        let script: &'static Lua = if self.fast_paths {
            &SETTLE
        } else {
            &SETTLE_GENERAL
        };
        let (mut call, base) = self.call(script, request.ledger, Duration::ZERO);
        let mut tombstone = key(&base, ":d:");
        tombstone.push_str(std::str::from_utf8(&request.id.hex()).unwrap_or_default());
        call.keys.push(tombstone);
        let mut numbers = Packed::with_room(7 + request.limits.len());
        numbers.push(count(request.limits.len()));
        for limit in request.limits {
            numbers.push(window_us(limit.window()));
        }
        let actual = request.actual.unwrap_or(0);
        numbers
            .amount(request.reserved)
            .amount(actual)
            .push(match (request.actual, request.cancel) {
                (Some(_), _) => 1,
                (None, false) => 0,
                (None, true) => 2,
            })
            .push(i64::from(request.record_if_missing));
        call.args.extend([
            numbers.0,
            request.id.hex().to_vec(),
            amount_text(request.reserved),
            amount_text(actual),
            self.retention_ms.clone(),
        ]);
        call.args
            .extend(request.limits.iter().map(|l| wid(l.window()).into_bytes()));
        call
    }

    fn charge_many_call(&self, requests: &[ChargeRequest<'_>]) -> Result<Call, StoreError> {
        for (i, a) in requests.iter().enumerate() {
            if requests[..i].iter().any(|b| b.ledger == a.ledger) {
                return Err(StoreError::Backend(format!(
                    "ledger {} is listed twice in one charge",
                    a.ledger
                )));
            }
        }
        let mut keys = vec![self.pause_key.clone()];
        // The widest margin of the requests' reservation TTLs.
        let margin = requests
            .iter()
            .map(|r| margin_ms(r.hold.map_or(Duration::ZERO, |h| h.ttl)))
            .max()
            .unwrap_or_else(|| margin_ms(Duration::ZERO));
        let mut args = vec![
            self.now_arg().into_bytes(),
            self.keep_arg(margin),
            requests.len().to_string().into_bytes(),
        ];
        for r in requests {
            let base = self.base(r.ledger);
            keys.push(key(&base, ":meta"));
            self.charge_args(r, &base, &mut args);
        }
        Ok(Call {
            script: &CHARGE_MANY,
            keys,
            args,
        })
    }

    fn rate_call(&self, request: &RateRequest<'_>) -> Call {
        let base = self.base(request.gate.key());
        let policy = request.policy;
        let now = self.now_arg();
        let us = |d: Duration| d.as_micros().to_string();
        let (max, window) = policy
            .max_calls_limit()
            .map_or(("0".to_owned(), "0".to_owned()), |(m, w)| {
                (m.to_string(), us(w))
            });
        let cooldown = policy.cooldown_limit().map_or("-1".to_owned(), us);
        let (cap, k, period) = policy
            .bucket_limit()
            .map_or(("0".to_owned(), "1".to_owned(), "1".to_owned()), |b| {
                (b.capacity.to_string(), b.tokens.to_string(), us(b.period))
            });
        // Kept while a window, cooldown or bucket could still matter.
        let longest = [
            policy.max_calls_limit().map(|(_, w)| w),
            policy.cooldown_limit(),
            policy.bucket_limit().map(|b| {
                b.period
                    .saturating_mul(u32::try_from(b.capacity).unwrap_or(u32::MAX))
            }),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default();
        let keep_ms = (longest.as_millis() + 3_600_000).to_string();
        Call {
            script: &RATE,
            keys: vec![format!("{base}:rlog"), format!("{base}:rstate")],
            args: [
                now,
                max,
                window,
                cooldown,
                cap,
                k,
                period,
                request.call_id.to_string(),
                keep_ms,
                if request.record { "1" } else { "0" }.to_owned(),
            ]
            .map(String::into_bytes)
            .into(),
        }
    }

    /// A status: keys `[meta]`; arguments as status.lua reads them.
    fn status_call(&self, ledger: &Ledger, limits: &[Limit]) -> Call {
        let (mut call, _) = self.call(&STATUS, ledger, Duration::ZERO);
        let mut numbers = Packed::with_room(1 + limits.len());
        numbers.push(count(limits.len()));
        for limit in limits {
            numbers.push(window_us(limit.window()));
        }
        call.args.push(numbers.0);
        call.args
            .extend(limits.iter().map(|l| wid(l.window()).into_bytes()));
        call
    }
}

/// How many packed limits a limit travels as: one per soft-limit threshold,
/// at least one.
fn packed_count(limit: &Limit) -> usize {
    limit.warn_thresholds().count().max(1)
}

/// Which limit and threshold each packed limit of a charge stands for.
/// `None` — every limit has at most one threshold, the common case — is
/// the identity: packed limit `k` is limit `k`, threshold 0.
#[derive(Debug, Clone, Default)]
struct Packing(Option<Vec<(usize, usize)>>);

impl Packing {
    fn of(limits: &[Limit]) -> Self {
        if limits.iter().all(|l| packed_count(l) == 1) {
            return Packing(None);
        }
        let mut map = Vec::new();
        for (i, limit) in limits.iter().enumerate() {
            map.extend((0..packed_count(limit)).map(|slot| (i, slot)));
        }
        Packing(Some(map))
    }

    fn get(&self, packed: usize) -> (usize, usize) {
        match &self.0 {
            None => (packed, 0),
            Some(map) => map.get(packed).copied().unwrap_or((packed, 0)),
        }
    }

    /// The script's bitmask (bit k: packed limit k) as
    /// [`ChargeOutcome::warnings`].
    fn warnings(&self, packed_bits: u64) -> u64 {
        (0..64)
            .filter(|k| packed_bits & (1 << k) != 0)
            .filter_map(|k| {
                let (limit, slot) = self.get(k);
                super::warning_bit(limit, slot)
            })
            .fold(0, |acc, bit| acc | bit)
    }
}

fn parse_charge(reply: Vec<String>, packing: &Packing) -> Result<ChargeOutcome, StoreError> {
    match reply.as_slice() {
        [admitted, index, u, n, at, warnings] => Ok(ChargeOutcome {
            admitted: admitted == "1",
            paused: admitted == "P",
            limit_index: packing.get(parse(index)?).0,
            spent_before: join(u, n)?,
            at: parse(at)?,
            warnings: match warnings.as_str() {
                "0" => 0,
                w => packing.warnings(parse(w)?),
            },
        }),
        _ => Err(unexpected(&reply)),
    }
}

fn parse_settle(reply: Vec<String>) -> Result<SettleOutcome, StoreError> {
    match reply.first().map(String::as_str) {
        Some("1") => Ok(SettleOutcome::Committed),
        Some("2") => Ok(SettleOutcome::CommittedLate),
        Some("3") => Ok(SettleOutcome::Released),
        Some("4") => Ok(SettleOutcome::Unknown),
        _ => Err(unexpected(&reply)),
    }
}

fn parse_many(reply: Vec<String>, packings: &[Packing]) -> Result<ManyOutcome, StoreError> {
    let packing = |i: usize| packings.get(i).cloned().unwrap_or_default();
    match reply.first().map(String::as_str) {
        Some("A") => reply[1..]
            .chunks(6)
            .enumerate()
            .map(|(i, c)| parse_charge(c.to_vec(), &packing(i)))
            .collect::<Result<Vec<_>, _>>()
            .map(ManyOutcome::Admitted),
        Some("R") if reply.len() == 8 => {
            let index: usize = parse(&reply[1])?;
            Ok(ManyOutcome::Refused {
                index,
                outcome: parse_charge(reply[2..].to_vec(), &packing(index))?,
            })
        }
        _ => Err(unexpected(&reply)),
    }
}

fn parse_rate(reply: Vec<String>) -> Result<RateOutcome, StoreError> {
    let [admitted, reason, calls, since, wait] = reply.as_slice() else {
        return Err(unexpected(&reply));
    };
    let opt = |s: &str| -> Result<Option<i64>, StoreError> {
        if s.is_empty() {
            Ok(None)
        } else {
            parse(s).map(Some)
        }
    };
    Ok(RateOutcome {
        admitted: admitted == "1",
        reason: match reason.as_str() {
            "" => None,
            "TOO_MANY_CALLS" => Some(RateReason::TooManyCalls),
            "COOLDOWN" => Some(RateReason::Cooldown),
            "BUCKET_EMPTY" => Some(RateReason::BucketEmpty),
            _ => return Err(unexpected(&reply)),
        },
        calls_in_window: parse(calls)?,
        since_last_us: opt(since)?,
        retry_after_us: opt(wait)?,
    })
}

fn parse_status(reply: Vec<String>, limits: usize) -> Result<Vec<WindowUsage>, StoreError> {
    if reply.len() != limits * 4 + 1 {
        return Err(unexpected(&reply));
    }
    let at = parse(&reply[limits * 4])?;
    reply[..limits * 4]
        .chunks(4)
        .map(|c| {
            Ok(WindowUsage {
                committed: join(&c[0], &c[1])?,
                reserved: join(&c[2], &c[3])?,
                at,
            })
        })
        .collect()
}

impl Store for RedisStore {
    fn charge(&self, request: &ChargeRequest<'_>) -> Result<ChargeOutcome, StoreError> {
        let call = self.charge_call(request);
        let packing = Packing::of(request.limits);
        self.eval_blocking(call)
            .and_then(|r| parse_charge(r, &packing))
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
        let call = self.charge_call(&request);
        let packing = Packing::of(request.limits);
        let op = self.eval(call);
        Box::pin(async move {
            self.run_async(op)
                .await
                .and_then(|r| parse_charge(r, &packing))
        })
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
        let call = self.charge_many_call(requests)?;
        let packings: Vec<Packing> = requests.iter().map(|r| Packing::of(r.limits)).collect();
        self.eval_blocking(call)
            .and_then(|r| parse_many(r, &packings))
    }

    fn charge_many_async<'a>(
        &'a self,
        requests: Vec<ChargeRequest<'a>>,
    ) -> StoreFuture<'a, ManyOutcome> {
        let call = self.charge_many_call(&requests);
        let packings: Vec<Packing> = requests.iter().map(|r| Packing::of(r.limits)).collect();
        Box::pin(async move {
            let op = self.eval(call?);
            self.run_async(op)
                .await
                .and_then(|r| parse_many(r, &packings))
        })
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

/// Percent-encodes every byte outside `[A-Za-z0-9._~-]`, so parts never
/// contain `:` (the separator), `{`/`}` (hash tags), `*`, spaces or newlines.
fn encode_part(out: &mut String, part: &str) {
    for &b in part.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

fn parse_pause_field(field: &str) -> Option<PauseScope> {
    if field == "*" {
        return Some(PauseScope::All);
    }
    if let Some(ns) = field.strip_prefix("n:") {
        return Some(PauseScope::Namespace(decode_part(ns)?));
    }
    let parts: Vec<&str> = field.strip_prefix("l:")?.split(':').collect();
    match parts.as_slice() {
        [ns, res, p] => Some(PauseScope::Ledger(Ledger::new(
            decode_part(ns)?,
            decode_part(res)?,
            decode_part(p)?,
        ))),
        _ => None,
    }
}

/// Escapes glob characters for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The inverse of [`encode_part`].
fn decode_part(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A window's id in the scripts; it says the window's length (a rolling
/// window's in µs, as [`window_us`]).
fn wid(window: Window) -> String {
    match window {
        Window::Unbounded => "u".to_owned(),
        Window::Rolling(_) => format!("r{}", window_us(window)),
        Window::Daily { utc_offset_minutes } => format!("d{utc_offset_minutes}"),
        Window::Monthly { utc_offset_minutes } => format!("m{utc_offset_minutes}"),
    }
}

/// A window's length for the scripts: µs for rolling (at least 1), 0
/// unbounded, -1 calendar.
fn window_us(window: Window) -> i64 {
    match window.rolling_micros() {
        Some(us) => us.clamp(1, micros(crate::budget::MAX_DURATION)),
        None if window.is_calendar() => -1,
        None => 0,
    }
}

/// How long TTLs must cover beyond a window: a day, or the reservation TTL,
/// plus an hour.
fn margin_ms(ttl: Duration) -> u128 {
    crate::budget::clamp_duration(ttl, Duration::ZERO)
        .as_millis()
        .max(86_400_000)
        + 3_600_000
}

/// A duration for the scripts, in µs, at most
/// [`MAX_DURATION`](crate::budget::MAX_DURATION): they add it to the time
/// and keep every number an exact integer below 2^53.
fn micros(d: Duration) -> i64 {
    i64::try_from(crate::budget::clamp_duration(d, Duration::ZERO).as_micros()).unwrap_or(i64::MAX)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `nanos` as (whole units, nano remainder), each exact in a Lua double
/// (amounts are at most [`MAX_AMOUNT_NANOS`](crate::amount::MAX_AMOUNT_NANOS)).
fn limbs(nanos: Nanos) -> (i64, i64) {
    let units = i64::try_from(nanos.div_euclid(NANOS)).unwrap_or(i64::MAX);
    let rest = i64::try_from(nanos.rem_euclid(NANOS)).unwrap_or(0);
    (units, rest)
}

/// An amount as the scripts write it into entries: `"units|nanos"`.
fn amount_text(nanos: Nanos) -> Vec<u8> {
    let (units, rest) = limbs(nanos);
    let mut out = Vec::with_capacity(24);
    push_i64(&mut out, units);
    out.push(b'|');
    push_i64(&mut out, rest);
    out
}

/// `base` followed by `suffix`, in one allocation.
fn key(base: &str, suffix: &str) -> String {
    let mut key = String::with_capacity(base.len() + suffix.len() + 32);
    key.push_str(base);
    key.push_str(suffix);
    key
}

/// `"idle_ms:margin_ms"`: how long a ledger with a lifetime window is
/// kept, and what is added to windows' lengths.
fn keep_arg(idle_ttl: Duration, margin_ms: u128) -> Vec<u8> {
    format!("{}:{margin_ms}", idle_ttl.as_millis()).into_bytes()
}

fn join(units: &str, nanos: &str) -> Result<Nanos, StoreError> {
    let u: i128 = parse(units)?;
    let n: i128 = parse(nanos)?;
    Ok(u * NANOS + n)
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| {
        StoreError::Backend(format!("unexpected number {s:?} from a budgetgate script"))
    })
}

fn unexpected(reply: &dyn fmt::Debug) -> StoreError {
    StoreError::Backend(format!(
        "unexpected reply from a budgetgate script: {}",
        shown(reply)
    ))
}

/// A reply for an error message, cut to 200 bytes.
fn shown(reply: &dyn fmt::Debug) -> String {
    let mut text = format!("{reply:?}");
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

fn store_error(e: &::redis::RedisError, secret: Option<&str>) -> StoreError {
    let message = scrub(&e.to_string(), secret);
    if e.is_timeout() {
        StoreError::Unavailable(format!("timed out: {message}"))
    } else if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// The password of a URL, if any (`redis://user:pass@…`, `redis://:pass@…`).
fn password(url: &str) -> Option<String> {
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

fn scrub(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => message.replace(s, "***"),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
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
