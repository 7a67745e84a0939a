//! The lean RESP2 connection of `resp.rs`, for async calls: one socket
//! shared by every task (requests pipelined, replies matched in order),
//! driven by one task on the store's runtime.
//!
//! redis-rs's multiplexed connection spent about 50,000 more client
//! instructions than the sync path per reserve+commit (callgrind): building
//! a `Cmd` from a `ScriptInvocation`, its combinator parser, a buffer zeroed
//! per read. Here a request is packed once by the caller and its replies
//! are parsed by `resp::parse`.
//!
//! The driver connects on the first request (with the sync handshake, on a
//! blocking thread, bounded by the timeout) and again after any failure:
//! a write or read error, the server closing the socket, or a reply
//! overdue by more than the timeout (a server that hangs for good). Every
//! request in flight on a failed connection fails; later ones reconnect.
//! TLS (`rediss://`) keeps redis-rs's connection manager.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use ::redis::ConnectionInfo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::checks::ServerChecks;
use super::resp::{self, ConnError, Reply, RespConnection, Stream};
use std::sync::Arc;

type Replies = Result<Vec<Reply>, ConnError>;

/// Queued requests are gathered into one write up to about this many bytes.
const MAX_BATCH: usize = 64 * 1024;

/// One packed request of `count` commands, and where its replies go.
struct Job {
    request: Vec<u8>,
    count: usize,
    reply: oneshot::Sender<Replies>,
}

/// A handle to the shared connection (cheap to clone).
#[derive(Clone)]
pub(super) struct Multiplexed {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Multiplexed {
    /// Starts the driver on `runtime`; `None` for TLS addresses.
    pub(super) fn start(
        info: ConnectionInfo,
        timeout: Duration,
        checks: Arc<ServerChecks>,
        runtime: &tokio::runtime::Handle,
    ) -> Option<Multiplexed> {
        if !matches!(
            info.addr(),
            ::redis::ConnectionAddr::Tcp(..) | ::redis::ConnectionAddr::Unix(..)
        ) {
            return None;
        }
        let (jobs, queue) = mpsc::unbounded_channel();
        runtime.spawn(drive(info, timeout, checks, queue));
        Some(Multiplexed { jobs })
    }

    /// Sends a packed request of `count` commands and waits for their
    /// replies (error replies included, as [`Reply::Error`]). Not bounded
    /// here: callers bound it with the operation timeout.
    pub(super) async fn exchange(&self, request: Vec<u8>, count: usize) -> Replies {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                request,
                count,
                reply,
            })
            .map_err(|_| closed("the store is shutting down"))?;
        answer
            .await
            .map_err(|_| closed("the connection's driver stopped"))?
    }
}

fn closed(why: &str) -> ConnError {
    ConnError::Io(io::Error::new(io::ErrorKind::BrokenPipe, why.to_owned()))
}

/// A job whose request was written: its replies so far.
struct InFlight {
    count: usize,
    replies: Vec<Reply>,
    reply: oneshot::Sender<Replies>,
    sent: Instant,
}

/// A connected socket and its read buffer (`buf[..filled]` not yet parsed).
struct Connection {
    socket: Box<dyn Socket>,
    buf: Vec<u8>,
    filled: usize,
    in_flight: VecDeque<InFlight>,
}

trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

async fn drive(
    info: ConnectionInfo,
    timeout: Duration,
    checks: Arc<ServerChecks>,
    mut queue: mpsc::UnboundedReceiver<Job>,
) {
    let mut con: Option<Connection> = None;
    loop {
        let Some(c) = con.as_mut() else {
            // Idle and disconnected: connect for the next job.
            let Some(job) = queue.recv().await else {
                return;
            };
            match connect(&info, timeout, &checks).await {
                Ok(mut c) => {
                    if let Err(e) = c.send(job, &mut queue, timeout).await {
                        c.fail(&e);
                        continue;
                    }
                    con = Some(c);
                }
                Err(e) => {
                    // Not connected: this request was not sent.
                    let not_sent = match e {
                        ConnError::Refused(m) => ConnError::NotSent(m),
                        other => ConnError::NotSent(super::conn_error(other, None).to_string()),
                    };
                    let _ = job.reply.send(Err(not_sent));
                }
            }
            continue;
        };
        let overdue = c.in_flight.front().map(|f| f.sent + timeout);
        let result = tokio::select! {
            job = queue.recv() => match job {
                Some(job) => c.send(job, &mut queue, timeout).await,
                None => return,
            },
            read = c.read() => read,
            () = sleep_until(overdue) => Err(ConnError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "no reply within the timeout",
            ))),
        };
        if let Err(e) = result {
            c.fail(&e);
            con = None;
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn connect(
    info: &ConnectionInfo,
    timeout: Duration,
    checks: &Arc<ServerChecks>,
) -> Result<Connection, ConnError> {
    let info = info.clone();
    let checks = checks.clone();
    let deadline = std::time::Instant::now() + timeout;
    let stream =
        tokio::task::spawn_blocking(move || RespConnection::connect(&info, deadline, &*checks))
            .await
            .map_err(|_| closed("the connecting thread failed"))?
            .ok_or_else(|| closed("not a plain TCP or Unix address"))??
            .into_stream();
    let socket: Box<dyn Socket> = match stream {
        Stream::Tcp(s) => {
            s.set_nonblocking(true)?;
            Box::new(tokio::net::TcpStream::from_std(s)?)
        }
        #[cfg(unix)]
        Stream::Unix(s) => {
            s.set_nonblocking(true)?;
            Box::new(tokio::net::UnixStream::from_std(s)?)
        }
    };
    Ok(Connection {
        socket,
        buf: vec![0; 4096],
        filled: 0,
        in_flight: VecDeque::new(),
    })
}

impl Connection {
    /// Writes `job` and every other job already queued, in one write.
    async fn send(
        &mut self,
        job: Job,
        queue: &mut mpsc::UnboundedReceiver<Job>,
        timeout: Duration,
    ) -> Result<(), ConnError> {
        let sent = Instant::now();
        let mut bytes = Vec::new();
        let mut next = Some(job);
        while let Some(job) = next {
            // Counted in flight before writing: a failed write fails it too.
            self.in_flight.push_back(InFlight {
                count: job.count,
                replies: Vec::with_capacity(job.count),
                reply: job.reply,
                sent,
            });
            if bytes.is_empty() {
                bytes = job.request;
            } else {
                bytes.extend_from_slice(&job.request);
            }
            next = if bytes.len() < MAX_BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        match tokio::time::timeout(timeout, self.socket.write_all(&bytes)).await {
            Ok(written) => Ok(written?),
            Err(_) => Err(ConnError::Io(io::ErrorKind::TimedOut.into())),
        }
    }

    /// Reads what arrived and hands out every complete reply. Cancel-safe:
    /// a read that is dropped consumed nothing.
    async fn read(&mut self) -> Result<(), ConnError> {
        if self.filled == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        let n = self.socket.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        self.filled += n;
        let mut at = 0;
        while let Some((reply, used)) = resp::parse(&self.buf[at..self.filled], 0)? {
            at += used;
            let Some(front) = self.in_flight.front_mut() else {
                return Err(ConnError::Protocol("more replies than requests".to_owned()));
            };
            front.replies.push(reply);
            if front.replies.len() == front.count {
                if let Some(done) = self.in_flight.pop_front() {
                    // The caller may have given up (timed out): nothing to do.
                    let _ = done.reply.send(Ok(done.replies));
                }
            }
        }
        self.buf.copy_within(at..self.filled, 0);
        self.filled -= at;
        Ok(())
    }

    /// Fails every request in flight with `e` (the connection is dropped).
    fn fail(&mut self, e: &ConnError) {
        for job in self.in_flight.drain(..) {
            let _ = job.reply.send(Err(copy(e)));
        }
    }
}

/// The same error for each failed request.
fn copy(e: &ConnError) -> ConnError {
    match e {
        ConnError::Io(e) => ConnError::Io(io::Error::new(e.kind(), e.to_string())),
        ConnError::Protocol(m) => ConnError::Protocol(m.clone()),
        ConnError::Redis(e) => ConnError::Protocol(e.to_string()),
        ConnError::Refused(m) => ConnError::Refused(m.clone()),
        ConnError::NotSent(m) => ConnError::NotSent(m.clone()),
    }
}
