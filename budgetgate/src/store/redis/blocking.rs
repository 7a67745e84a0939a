//! Blocking connections for the sync API.
//!
//! A sync call is one blocking round trip on the calling thread: no hand-over
//! to another thread and back, which on a small VM costs more than the
//! script itself. Plain TCP and Unix sockets use the lean connection of
//! `resp.rs`; TLS uses redis-rs's. Both take the same pre-packed requests.
//! Connections are made on first use and kept in a small idle
//! list; a connection that fails is dropped, and the idle ones with it (they
//! almost always failed together, e.g. Redis restarted), so the next call
//! connects anew.
//!
//! Every step (connect, send, receive) is bounded by the operation's
//! timeout (by what is left of it after connecting, on a new connection).
//! This works the same inside or outside an async runtime (it blocks the
//! calling thread, as any sync call does, and never the store's runtime).
//!
//! Why a hand-written client here, when async calls use redis-rs: speed is
//! not the reason (redis-rs's blocking connection costs within a few per
//! cent of it on reserve+commit, measured side by side in one run by
//! `cargo bench -p budgetgate-tests --bench redis -- redis_latency`). The
//! reason is the bounds: redis-rs's blocking timeouts bound each socket
//! read, not an operation — a reply trickled one byte every 100 ms kept a
//! call 5.1 s under a 300 ms timeout — and its Unix-socket connect has no
//! timeout (std has none), so a frozen Redis blocked every sync call until
//! it resumed. Bounding the whole operation needs control of every read,
//! which `resp.rs` has; handing sync calls to the async connection's thread
//! instead would add a thread hand-over each way to every call.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::{Client, Connection, ConnectionLike};

use super::checks::ServerChecks;
use super::resp::{ConnError, Handshake, Reply, RespConnection};
use super::store_error;
use crate::store::StoreError;
use std::sync::Arc;

/// One blocking connection.
pub(super) enum Conn {
    Resp(RespConnection),
    Redis(Connection),
}

impl Conn {
    /// Sends the packed `request` and reads its `count` replies (error
    /// replies included, as [`Reply::Error`]).
    pub(super) fn exchange(
        &mut self,
        request: &[u8],
        count: usize,
        deadline: Instant,
    ) -> Result<Vec<Reply>, ConnError> {
        match self {
            Conn::Resp(con) => con.exchange(request, count, deadline),
            Conn::Redis(con) => Ok(con
                .req_packed_commands(request, 0, count)?
                .into_iter()
                .map(Reply::from_value)
                .collect()),
        }
    }

    fn set_timeout(&mut self, timeout: Duration) -> Result<(), ConnError> {
        match self {
            Conn::Resp(con) => Ok(con.set_timeout(timeout)?),
            Conn::Redis(con) => {
                con.set_read_timeout(Some(timeout))?;
                Ok(con.set_write_timeout(Some(timeout))?)
            }
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::Resp(con) => con.is_alive(),
            Conn::Redis(con) => con.is_open(),
        }
    }
}

/// Idle connections kept for reuse; more concurrent callers get their own
/// and close them afterwards.
const MAX_IDLE: usize = 64;

/// How old a pooled connection's last check of the store's epoch may be
/// before its next request re-checks it.
pub(super) const EPOCH_RECHECK: Duration = Duration::from_secs(1);

pub(super) struct BlockingPool {
    client: Client,
    checks: Arc<ServerChecks>,
    /// redis-rs's connections even where the lean client could serve.
    redis_rs: bool,
    /// Idle connections and when each last checked the store's epoch.
    idle: Mutex<Vec<(Conn, Instant)>>,
    timeout: Duration,
    secret: Option<String>,
}

impl BlockingPool {
    pub(super) fn new(
        client: Client,
        checks: Arc<ServerChecks>,
        timeout: Duration,
        secret: Option<String>,
        redis_rs: bool,
    ) -> Self {
        BlockingPool {
            client,
            checks,
            redis_rs,
            idle: Mutex::new(Vec::new()),
            timeout,
            secret,
        }
    }

    /// Sends a packed request of `count` commands and reads their replies.
    ///
    /// On a pooled connection whose last check of the store's epoch is
    /// older than [`EPOCH_RECHECK`], a `GET` of the epoch goes first, in the
    /// same write: a store flushed while connections stayed open (`FLUSHALL`)
    /// is caught within that time, at the cost of one command per
    /// connection per interval.
    pub(super) fn exchange(&self, request: &[u8], count: usize) -> Result<Vec<Reply>, StoreError> {
        self.run(|con, deadline, probe| {
            if !probe {
                return con.exchange(request, count, deadline);
            }
            let mut probed = self.checks.epoch_probe().into_bytes();
            probed.extend_from_slice(request);
            let mut replies = con.exchange(&probed, count + 1, deadline)?;
            let epoch = replies.remove(0);
            self.checks.verify_epoch(&epoch)?;
            Ok(replies)
        })
    }

    /// Runs `f` on a connection, within the timeout.
    fn run<T>(
        &self,
        f: impl FnOnce(&mut Conn, Instant, bool) -> Result<T, ConnError>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        // A pooled connection's reads and writes already time out after the
        // whole timeout (set when it was made), and it was taken just now:
        // no system call needed. A new one is bounded by what is left after
        // connecting (and has just checked the epoch in its handshake).
        let (mut con, fresh, checked) = match self.take() {
            Some((con, checked)) => (con, false, checked),
            None => (self.connect(deadline)?, true, started),
        };
        let probe = !fresh && started.saturating_duration_since(checked) >= EPOCH_RECHECK;
        let result = if fresh {
            self.left(deadline)
                .map_err(|_| ConnError::Io(std::io::ErrorKind::TimedOut.into()))
                .and_then(|left| con.set_timeout(left))
                .and_then(|()| f(&mut con, deadline, false))
                // Kept for reuse with the full timeout.
                .and_then(|value| {
                    con.set_timeout(self.timeout)?;
                    Ok(value)
                })
        } else {
            f(&mut con, deadline, probe)
        };
        match result {
            Ok(value) => {
                // Error replies (e.g. a script's error) arrive as values: the
                // connection is in step and can be used again.
                self.put(con, if probe { started } else { checked });
                Ok(value)
            }
            Err(e) => {
                // A reply may be left unread, or the server is gone: drop
                // this connection and the idle ones, which almost always
                // failed together (e.g. Redis restarted).
                self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                Err(self.error(e))
            }
        }
    }

    fn error(&self, e: ConnError) -> StoreError {
        super::conn_error(e, self.secret.as_deref())
    }

    fn left(&self, deadline: Instant) -> Result<Duration, StoreError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StoreError::Timeout(self.timeout));
        }
        Ok(left)
    }

    fn connect(&self, deadline: Instant) -> Result<Conn, StoreError> {
        let left = self.left(deadline)?;
        // A connection that could not be made sent nothing.
        let not_sent = |e: StoreError| StoreError::NotSent(e.to_string());
        let lean = if self.redis_rs {
            None
        } else {
            RespConnection::connect(self.client.get_connection_info(), deadline, &*self.checks)
        };
        match lean {
            Some(con) => con.map(Conn::Resp).map_err(|e| not_sent(self.error(e))),
            None => {
                let mut con = self
                    .client
                    .get_connection_with_timeout(left)
                    .map(Conn::Redis)
                    .map_err(|e| not_sent(store_error(&e, self.secret.as_deref())))?;
                // The same server checks as the lean connection's handshake.
                let mut request = super::resp::Request::new();
                self.checks.add_to(&mut request);
                let replies = con
                    .exchange(request.bytes(), request.commands(), deadline)
                    .map_err(|e| not_sent(self.error(e)))?;
                self.checks
                    .verify(&replies)
                    .map_err(|e| not_sent(self.error(e)))?;
                Ok(con)
            }
        }
    }

    fn take(&self) -> Option<(Conn, Instant)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((con, checked)) = idle.pop() {
            if con.is_open() {
                return Some((con, checked));
            }
        }
        None
    }

    fn put(&self, con: Conn, checked: Instant) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((con, checked));
        }
    }
}
