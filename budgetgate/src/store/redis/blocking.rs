//! Blocking connections for the sync API.
//!
//! A sync call is one blocking round trip on the calling thread: no hand-over
//! to another thread and back, which on a small VM costs more than the
//! script itself. Connections are made on first use and kept in a small idle
//! list; a connection that fails is dropped, and the idle ones with it (they
//! almost always failed together, e.g. Redis restarted), so the next call
//! connects anew.
//!
//! Every step (connect, send, receive) is bounded by the operation's
//! timeout (by what is left of it after connecting, on a new connection). This works the same inside or
//! outside an async runtime (it blocks the calling thread, as any sync call
//! does, and never the store's runtime).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::{Client, Connection, ConnectionLike, RedisResult};

use super::store_error;
use crate::store::StoreError;

/// Idle connections kept for reuse; more concurrent callers get their own
/// and close them afterwards.
const MAX_IDLE: usize = 64;

pub(super) struct BlockingPool {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    timeout: Duration,
    secret: Option<String>,
}

impl BlockingPool {
    pub(super) fn new(client: Client, timeout: Duration, secret: Option<String>) -> Self {
        BlockingPool {
            client,
            idle: Mutex::new(Vec::new()),
            timeout,
            secret,
        }
    }

    /// Runs `f` on a connection, within the timeout.
    pub(super) fn run<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.timeout;
        // A pooled connection's reads and writes already time out after the
        // whole timeout (set when it was made), and it was taken just now:
        // no system call needed. A new one is bounded by what is left after
        // connecting.
        let (mut con, fresh) = match self.take() {
            Some(con) => (con, false),
            None => (self.connect(deadline)?, true),
        };
        let result = if fresh {
            let left = self.left(deadline)?;
            con.set_read_timeout(Some(left))
                .and_then(|()| con.set_write_timeout(Some(left)))
                .and_then(|()| f(&mut con))
                // Kept for reuse with the full timeout.
                .and_then(|value| {
                    con.set_read_timeout(Some(self.timeout))?;
                    con.set_write_timeout(Some(self.timeout))?;
                    Ok(value)
                })
        } else {
            f(&mut con)
        };
        match result {
            Ok(value) => {
                self.put(con);
                Ok(value)
            }
            Err(e) => {
                if matches!(
                    e.kind(),
                    ::redis::ErrorKind::Server(_) | ::redis::ErrorKind::Extension
                ) {
                    // The server answered (e.g. a script's error): the
                    // connection is in step and can be used again.
                    self.put(con);
                } else {
                    // A reply may be left unread, or the server is gone: drop
                    // this connection and the idle ones, which almost always
                    // failed together (e.g. Redis restarted).
                    self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
                Err(store_error(&e, self.secret.as_deref()))
            }
        }
    }

    fn left(&self, deadline: Instant) -> Result<Duration, StoreError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StoreError::Timeout(self.timeout));
        }
        Ok(left)
    }

    fn connect(&self, deadline: Instant) -> Result<Connection, StoreError> {
        let left = self.left(deadline)?;
        self.client
            .get_connection_with_timeout(left)
            .map_err(|e| store_error(&e, self.secret.as_deref()))
    }

    fn take(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(con) = idle.pop() {
            if con.is_open() {
                return Some(con);
            }
        }
        None
    }

    fn put(&self, con: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(con);
        }
    }
}
