//! Async connections: redis-rs's multiplexed connection (one socket shared
//! by every task, requests pipelined, replies matched in order), wrapped
//! with what a budget store needs from a connection:
//!
//! - every new connection passes the server checks of `checks.rs`
//!   (eviction policy, persistence, the store's epoch) before any request
//!   is sent on it;
//! - a live connection re-checks the epoch at least every
//!   [`EPOCH_RECHECK`], in the same pipeline as a request, so a `FLUSHALL`
//!   (which breaks no connection) is caught within that time;
//! - a connection whose driver ended (the server closed the socket: a
//!   restart) is replaced before a request is sent on it, within the same
//!   call; one that failed or timed out is dropped, and the next call
//!   connects again;
//! - a connection that could not be made sent nothing
//!   ([`StoreError::NotSent`]), so the engine need not settle the write.
//!
//! Each operation is bounded as a whole (connect, write and read) by the
//! caller, which runs it under the store's timeout.
//!
//! Plain TCP and Unix sockets connect with the sync client's handshake
//! (`resp.rs`: the connect itself bounded by the deadline — std has no
//! Unix-socket connect timeout — then AUTH, SELECT and the checks), on a
//! blocking thread, and the socket is handed to redis-rs. TLS (`rediss://`)
//! connects through redis-rs and runs the same checks as commands.
//!
//! This replaced a hand-written async driver: measured side by side in one
//! run (`cargo bench -p budgetgate-tests --bench redis -- redis_latency`),
//! redis-rs's connection cost within a few per cent of it on
//! reserve+commit, which does not justify keeping one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, ConnectionAddr, RedisConnectionInfo, Value};

use super::blocking::EPOCH_RECHECK;
use super::checks::ServerChecks;
use super::replies::{conn_error, store_error};
use super::resp::{ConnError, Handshake, Reply, RespConnection, Stream};
use crate::store::StoreError;

/// The connection async operations share (cheap to clone).
#[derive(Clone)]
pub(super) struct AsyncPool(Arc<Inner>);

struct Inner {
    client: Client,
    checks: Arc<ServerChecks>,
    timeout: Duration,
    secret: Option<String>,
    /// The connection in use, or the connect under way.
    slot: Mutex<Slot>,
}

/// What async calls find when they need a connection.
enum Slot {
    Idle,
    /// A connect under way, in a task of its own (so a caller that gives
    /// up does not abandon it: the next caller finds its connection), and
    /// where its result is told.
    Connecting(tokio::sync::watch::Receiver<Option<Result<Live, StoreError>>>),
    Live(Live),
}

#[derive(Clone)]
struct Live {
    con: MultiplexedConnection,
    /// Set when the connection's driver ended (the socket closed). Never
    /// set for TLS connections, whose driver redis-rs runs: an error
    /// replaces those.
    ended: Arc<AtomicBool>,
    /// When the store's epoch was last verified on this connection.
    checked: Arc<Mutex<Instant>>,
}

impl Live {
    /// Whether this request should verify the epoch first (and, if so,
    /// counts it as verified now, so concurrent calls do not all probe).
    fn probe_due(&self) -> bool {
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.saturating_duration_since(*checked) >= EPOCH_RECHECK {
            *checked = now;
            true
        } else {
            false
        }
    }

    fn same(&self, other: &Live) -> bool {
        Arc::ptr_eq(&self.ended, &other.ended)
    }
}

impl AsyncPool {
    pub(super) fn new(
        client: Client,
        checks: Arc<ServerChecks>,
        timeout: Duration,
        secret: Option<String>,
    ) -> Self {
        AsyncPool(Arc::new(Inner {
            client,
            checks,
            timeout,
            secret,
            slot: Mutex::new(Slot::Idle),
        }))
    }

    /// Sends the commands `build` adds to a pipeline and returns one reply
    /// per command (error replies included, as [`Reply::Error`]). Runs on
    /// the store's runtime; the caller bounds it with the timeout.
    pub(super) async fn exchange(
        &self,
        build: impl Fn(&mut ::redis::Pipeline),
    ) -> Result<Vec<Reply>, StoreError> {
        let inner = &self.0;
        if let Some(why) = inner.checks.refusal() {
            return Err(StoreError::NotSent(why));
        }
        let live = self.live().await?;
        let probe = live.probe_due();
        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        if probe {
            pipe.cmd("GET").arg(inner.checks.epoch_key());
        }
        build(&mut pipe);
        let mut con = live.con.clone();
        // Dropped before the reply (the operation's timeout passed): the
        // server may hang for good, so the next call connects again.
        let mut overdue = ForgetOnDrop(Some((self, &live)));
        let result = pipe.query_async(&mut con).await;
        overdue.0 = None;
        let values: Vec<Value> = match result {
            Ok(values) => values,
            Err(e) => {
                // A reply may be lost or the server gone: the next call
                // connects again.
                self.forget(&live);
                return Err(store_error(&e, inner.secret.as_deref()));
            }
        };
        let mut replies: Vec<Reply> = values.into_iter().map(Reply::from_value).collect();
        if probe {
            if replies.is_empty() {
                self.forget(&live);
                return Err(StoreError::Backend(
                    "the server answered the epoch check with nothing".into(),
                ));
            }
            let epoch = replies.remove(0);
            if let Err(e) = inner.checks.verify_epoch(&epoch) {
                self.forget(&live);
                return Err(conn_error(e, inner.secret.as_deref()));
            }
        }
        Ok(replies)
    }

    /// The connection to send on: the live one, unless its driver ended;
    /// else a new one (which nothing was sent on yet). One connect at a
    /// time: calls that find one under way wait for it.
    async fn live(&self) -> Result<Live, StoreError> {
        let mut told = {
            let mut slot = self.0.slot.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Slot::Live(live) if !live.ended.load(Ordering::Acquire) => return Ok(live.clone()),
                Slot::Connecting(told) => told.clone(),
                Slot::Live(_) | Slot::Idle => {
                    let (tell, told) = tokio::sync::watch::channel(None);
                    *slot = Slot::Connecting(told.clone());
                    let pool = self.clone();
                    tokio::spawn(async move {
                        let timeout = pool.0.timeout;
                        let result = match tokio::time::timeout(timeout, pool.connect()).await {
                            Ok(Ok(live)) => Ok(live),
                            // Not connected: nothing was sent.
                            Ok(Err(StoreError::NotSent(m))) => Err(StoreError::NotSent(m)),
                            Ok(Err(other)) => Err(StoreError::NotSent(other.to_string())),
                            Err(_) => Err(StoreError::NotSent(format!(
                                "could not connect within {timeout:?}"
                            ))),
                        };
                        *pool.0.slot.lock().unwrap_or_else(|e| e.into_inner()) = match &result {
                            Ok(live) => Slot::Live(live.clone()),
                            Err(_) => Slot::Idle,
                        };
                        let _ = tell.send(Some(result));
                    });
                    told
                }
            }
        };
        let result = told
            .wait_for(Option::is_some)
            .await
            .map_err(|_| StoreError::NotSent("the connecting task stopped".into()))?
            .clone();
        result.unwrap_or_else(|| Err(StoreError::NotSent("no connection".into())))
    }

    /// Drops `live` as the connection in use (if it still is).
    fn forget(&self, live: &Live) {
        let mut slot = self.0.slot.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(&*slot, Slot::Live(l) if l.same(live)) {
            *slot = Slot::Idle;
        }
    }

    async fn connect(&self) -> Result<Live, StoreError> {
        let inner = &self.0;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(inner.timeout))
            .set_response_timeout(Some(inner.timeout));
        let ended = Arc::new(AtomicBool::new(false));
        let info = inner.client.get_connection_info().clone();
        let con = match info.addr() {
            ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(..) => {
                let checks = inner.checks.clone();
                let deadline = Instant::now() + inner.timeout;
                let stream = tokio::task::spawn_blocking(move || {
                    RespConnection::connect(&info, deadline, &*checks)
                })
                .await
                .map_err(|e| StoreError::NotSent(format!("the connecting thread failed: {e}")))?
                .ok_or_else(|| StoreError::NotSent("not a TCP or Unix address".into()))?
                .map_err(|e| conn_error(e, inner.secret.as_deref()))?
                .into_stream();
                let socket = socket(stream).map_err(|e| conn_error(e, inner.secret.as_deref()))?;
                // AUTH and SELECT were sent by the handshake: redis-rs sends
                // nothing more.
                let plain = RedisConnectionInfo::default().set_skip_set_lib_name();
                let (con, driver) = MultiplexedConnection::new_with_config(&plain, socket, config)
                    .await
                    .map_err(|e| store_error(&e, inner.secret.as_deref()))?;
                let flag = ended.clone();
                tokio::spawn(async move {
                    driver.await;
                    flag.store(true, Ordering::Release);
                });
                con
            }
            _ => {
                // TLS: redis-rs connects (and drives) it; the checks follow
                // as commands.
                let mut con = inner
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| store_error(&e, inner.secret.as_deref()))?;
                let mut pipe = ::redis::pipe();
                pipe.ignore_errors();
                for command in inner.checks.commands() {
                    let mut args = command.iter();
                    if let Some(name) = args.next() {
                        pipe.cmd(name);
                        for arg in args {
                            pipe.arg(arg);
                        }
                    }
                }
                let values: Vec<Value> = pipe
                    .query_async(&mut con)
                    .await
                    .map_err(|e| store_error(&e, inner.secret.as_deref()))?;
                let replies: Vec<Reply> = values.into_iter().map(Reply::from_value).collect();
                inner
                    .checks
                    .verify(&replies)
                    .map_err(|e| conn_error(e, inner.secret.as_deref()))?;
                con
            }
        };
        Ok(Live {
            con,
            ended,
            checked: Arc::new(Mutex::new(Instant::now())),
        })
    }
}

/// Forgets a connection when dropped (see [`AsyncPool::exchange`]).
struct ForgetOnDrop<'a>(Option<(&'a AsyncPool, &'a Live)>);

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some((pool, live)) = self.0.take() {
            pool.forget(live);
        }
    }
}

trait Socket: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Socket for T {}

/// A connected std socket as a tokio one (on the current runtime).
fn socket(stream: Stream) -> Result<Box<dyn Socket>, ConnError> {
    Ok(match stream {
        Stream::Tcp(s) => {
            s.set_nonblocking(true)?;
            Box::new(tokio::net::TcpStream::from_std(s)?)
        }
        #[cfg(unix)]
        Stream::Unix(s) => {
            s.set_nonblocking(true)?;
            Box::new(tokio::net::UnixStream::from_std(s)?)
        }
    })
}
