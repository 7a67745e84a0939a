//! A lean RESP2 connection for the sync API, on plain TCP and Unix sockets.
//!
//! A sync call is one script round trip, and on the client the general-purpose
//! redis-rs connection spent more on it than the script's own work on the
//! server: building a `Cmd` from a `ScriptInvocation`, zeroing an 8 KiB read
//! buffer per reply, and a combinator parser. Here a call is packed once into
//! one buffer, and its flat reply is read into the connection's own buffer
//! (kept between calls) by a small parser (measured with callgrind on the
//! client: about 38,000 fewer instructions per reserve+commit). Above all,
//! it bounds an operation as a whole — connect (TCP and Unix socket), write
//! and every read — by one deadline, which redis-rs's blocking connection
//! cannot (see `blocking.rs`). TLS connections keep redis-rs.
//!
//! The handshake is the one redis-rs makes for these URLs: `AUTH` (with the
//! user name if given) and `SELECT` for a database other than 0. Replies are
//! RESP2: the connection never asks for RESP3.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ::redis::{ConnectionAddr, ConnectionInfo};

/// Nesting deeper than this is refused (our replies nest at most twice).
const MAX_DEPTH: usize = 16;
/// The largest bulk string accepted (Redis's own default limit).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// Commands packed for sending: `*<n>` then `n` bulk strings each.
#[derive(Debug, Default)]
pub(super) struct Request {
    buf: Vec<u8>,
    commands: usize,
}

impl Request {
    pub(super) fn new() -> Self {
        Request {
            buf: Vec::with_capacity(1024),
            commands: 0,
        }
    }

    /// Starts a command of `args` arguments (the command's name included).
    pub(super) fn command(&mut self, args: usize) -> &mut Self {
        self.buf.push(b'*');
        push_usize(&mut self.buf, args);
        self.buf.extend_from_slice(b"\r\n");
        self.commands += 1;
        self
    }

    /// One argument.
    pub(super) fn arg(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        let bytes = bytes.as_ref();
        self.buf.push(b'$');
        push_usize(&mut self.buf, bytes.len());
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(bytes);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// One argument: `n` in decimal.
    pub(super) fn arg_usize(&mut self, n: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let text = u64_digits(n as u64, &mut digits);
        self.arg(text)
    }

    /// The packed bytes.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The packed bytes, owned (to hand to the async connection's driver).
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// How many commands (so how many replies).
    pub(super) fn commands(&self) -> usize {
        self.commands
    }
}

fn push_usize(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(u64_digits(n as u64, &mut digits));
}

/// `n` in decimal (as `Display`, without the formatting machinery).
pub(super) fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    out.extend_from_slice(u64_digits(n.unsigned_abs(), &mut digits));
}

/// `n` in decimal, written at the end of `buf` (20 digits hold any u64).
fn u64_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    Nil,
    Int(i64),
    /// A bulk or simple string.
    Data(Vec<u8>),
    Array(Vec<Reply>),
    /// An error reply: its code and message (`NOSCRIPT No matching …`).
    Error(String),
}

impl Reply {
    /// A reply of redis-rs (the TLS connection's).
    pub(super) fn from_value(value: ::redis::Value) -> Reply {
        use ::redis::Value;
        match value {
            Value::Nil => Reply::Nil,
            Value::Int(i) => Reply::Int(i),
            Value::BulkString(b) => Reply::Data(b),
            Value::SimpleString(s) => Reply::Data(s.into_bytes()),
            Value::Okay => Reply::Data(b"OK".to_vec()),
            Value::Array(items) | Value::Set(items) => {
                Reply::Array(items.into_iter().map(Reply::from_value).collect())
            }
            Value::ServerError(e) => Reply::Error(match e.details() {
                Some(details) => format!("{} {details}", e.code()),
                None => e.code().to_owned(),
            }),
            other => Reply::Error(format!("unexpected reply type: {other:?}")),
        }
    }
}

/// Why a connection failed. The connection is dropped after any of these.
#[derive(Debug)]
pub(super) enum ConnError {
    Io(io::Error),
    /// The server sent something that is not a RESP2 reply.
    Protocol(String),
    /// An error of a redis-rs (TLS) connection.
    Redis(::redis::RedisError),
    /// The server is not fit to hold budgets (see `checks.rs`).
    Refused(String),
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        ConnError::Io(e)
    }
}

impl From<::redis::RedisError> for ConnError {
    fn from(e: ::redis::RedisError) -> Self {
        ConnError::Redis(e)
    }
}

pub(super) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
            #[cfg(unix)]
            Stream::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
        }
    }

    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(timeout)),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(Some(timeout)),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(bytes),
            #[cfg(unix)]
            Stream::Unix(s) => s.write_all(bytes),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }
}

/// What a new connection adds to its handshake and checks in its replies
/// (`checks.rs`: whether the server is fit to hold budgets).
pub(super) trait Handshake: Send + Sync {
    /// Appends commands to the handshake request.
    fn add_to(&self, request: &mut Request);
    /// Judges their replies; an error fails the connection.
    fn verify(&self, replies: &[Reply]) -> Result<(), ConnError>;
}

/// A blocking RESP2 connection.
pub(super) struct RespConnection {
    stream: Stream,
    /// Read buffer: `buf[..filled]` holds bytes not yet parsed.
    buf: Vec<u8>,
    filled: usize,
    /// The socket's read/write timeout between exchanges.
    timeout: Duration,
    /// An exchange shortened the read timeout (restored when it ends).
    stream_timeout_changed: bool,
}

impl RespConnection {
    /// Connects to a `redis://` (TCP) or `redis+unix://` address within
    /// `deadline` and makes the handshake; `None` for TLS addresses, which
    /// this connection does not speak.
    pub(super) fn connect(
        info: &ConnectionInfo,
        deadline: Instant,
        checks: &dyn Handshake,
    ) -> Option<Result<RespConnection, ConnError>> {
        let stream = match info.addr() {
            ConnectionAddr::Tcp(host, port) => tcp(host, *port, deadline).map(Stream::Tcp),
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => unix(path, deadline).map(Stream::Unix),
            _ => return None,
        };
        Some(stream.map_err(ConnError::Io).and_then(|stream| {
            let mut con = RespConnection {
                stream,
                buf: vec![0; 4096],
                filled: 0,
                timeout: Duration::ZERO,
                stream_timeout_changed: false,
            };
            con.set_timeout(left(deadline)?)?;
            con.handshake(info, deadline, checks)?;
            Ok(con)
        }))
    }

    /// `AUTH` and `SELECT` as the URL asks, then the server checks
    /// (`checks.rs`), in one round trip.
    fn handshake(
        &mut self,
        info: &ConnectionInfo,
        deadline: Instant,
        checks: &dyn Handshake,
    ) -> Result<(), ConnError> {
        let settings = info.redis_settings();
        let mut request = Request::new();
        if let Some(password) = settings.password() {
            match settings.username() {
                Some(user) => request.command(3).arg("AUTH").arg(user).arg(password),
                None => request.command(2).arg("AUTH").arg(password),
            };
        }
        if settings.db() != 0 {
            request
                .command(2)
                .arg("SELECT")
                .arg(settings.db().to_string());
        }
        let setup = request.commands();
        checks.add_to(&mut request);
        let replies = self.exchange(request.bytes(), request.commands(), deadline)?;
        for reply in &replies[..setup.min(replies.len())] {
            if let Reply::Error(message) = reply {
                // The server's words (e.g. WRONGPASS …), never the password.
                return Err(ConnError::Protocol(format!("handshake refused: {message}")));
            }
        }
        checks.verify(&replies[setup.min(replies.len())..])
    }

    /// Whether a pooled connection is still open: a server that restarted
    /// or closed it has left an end-of-file (or a reset) to read. Checked
    /// before a request is sent, so a dead connection is replaced within
    /// the same call instead of failing it.
    pub(super) fn is_alive(&self) -> bool {
        let socket = match &self.stream {
            Stream::Tcp(s) => socket2::SockRef::from(s),
            #[cfg(unix)]
            Stream::Unix(s) => socket2::SockRef::from(s),
        };
        if socket.set_nonblocking(true).is_err() {
            return false;
        }
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let alive = match socket.peek(&mut probe) {
            // Nothing to read: open and idle, as it should be.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            // End of file, a reset, or bytes nobody asked for.
            _ => false,
        };
        socket.set_nonblocking(false).is_ok() && alive
    }

    /// The socket's read and write timeout between exchanges.
    pub(super) fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_timeout(timeout)?;
        self.timeout = timeout;
        Ok(())
    }

    /// The socket, after the handshake (its read buffer is empty then), for
    /// the async connection (`aio.rs`).
    pub(super) fn into_stream(self) -> Stream {
        self.stream
    }

    /// Sends `request` and reads `count` replies, all by `deadline`.
    ///
    /// The socket's timeout bounds one system call, so a reply that
    /// trickles in would otherwise take a timeout per read: every read after
    /// the first waits at most what is left until the deadline. (The first
    /// needs no system call to set it: the socket's timeout is the whole
    /// operation's, and a pooled connection starts its operation now.)
    pub(super) fn exchange(
        &mut self,
        request: &[u8],
        count: usize,
        deadline: Instant,
    ) -> Result<Vec<Reply>, ConnError> {
        let result = self.exchange_within(request, count, deadline);
        if self.stream_timeout_changed {
            self.stream_timeout_changed = false;
            self.stream.set_timeout(self.timeout)?;
        }
        result
    }

    fn exchange_within(
        &mut self,
        request: &[u8],
        count: usize,
        deadline: Instant,
    ) -> Result<Vec<Reply>, ConnError> {
        self.stream.write_all(request)?;
        let mut replies = Vec::with_capacity(count);
        let mut at = 0;
        let mut reads = 0u32;
        while replies.len() < count {
            match parse(&self.buf[at..self.filled], 0)? {
                Some((reply, used)) => {
                    replies.push(reply);
                    at += used;
                }
                None => {
                    // Keep the unparsed tail at the front and read more.
                    self.buf.copy_within(at..self.filled, 0);
                    self.filled -= at;
                    at = 0;
                    if self.filled == self.buf.len() {
                        let grown = self.buf.len() * 2;
                        self.buf.resize(grown, 0);
                    }
                    if reads > 0 {
                        self.stream.set_read_timeout(left(deadline)?)?;
                        self.stream_timeout_changed = true;
                    }
                    reads += 1;
                    let n = self.stream.read(&mut self.buf[self.filled..])?;
                    if n == 0 {
                        return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into()));
                    }
                    self.filled += n;
                }
            }
        }
        if at != self.filled {
            return Err(ConnError::Protocol("more replies than requests".to_owned()));
        }
        self.filled = 0;
        Ok(replies)
    }
}

fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    Ok(left)
}

/// A Unix-socket connection within `deadline`. std's `connect` has no
/// timeout, and a frozen Redis whose accept queue is full blocks it until
/// Redis runs again: the connect is made non-blocking and waited for
/// (`socket2`, already in the build through tokio).
#[cfg(unix)]
fn unix(path: &std::path::Path, deadline: Instant) -> io::Result<UnixStream> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    let address = socket2::SockAddr::unix(path)?;
    match socket.connect_timeout(&address, left(deadline)?) {
        Ok(()) => {}
        // A full accept queue: the server is not taking connections.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the Redis server's Unix socket is not accepting connections",
            ))
        }
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

fn tcp(host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, left(deadline)?) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Parses one reply from the start of `buf`: `None` if more bytes are
/// needed, else the reply and how many bytes it took.
pub(super) fn parse(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, ConnError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..end].split_first() else {
        return Err(protocol(buf));
    };
    let after = end + 2;
    let number = || -> Result<i64, ConnError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| protocol(buf))
    };
    Ok(Some(match kind {
        b'+' => (Reply::Data(line.to_vec()), after),
        b'-' => (
            Reply::Error(String::from_utf8_lossy(line).into_owned()),
            after,
        ),
        b':' => (Reply::Int(number()?), after),
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Reply::Nil, after)));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_BULK)
                .ok_or_else(|| protocol(buf))?;
            let Some(data) = buf.get(after..after + len + 2) else {
                return Ok(None);
            };
            if !data.ends_with(b"\r\n") {
                return Err(protocol(buf));
            }
            (Reply::Data(data[..len].to_vec()), after + len + 2)
        }
        b'*' => {
            let count = number()?;
            if count < 0 {
                return Ok(Some((Reply::Nil, after)));
            }
            if depth >= MAX_DEPTH {
                return Err(ConnError::Protocol("replies nested too deeply".to_owned()));
            }
            let count = usize::try_from(count).map_err(|_| protocol(buf))?;
            let mut items = Vec::with_capacity(count.min(1024));
            let mut at = after;
            for _ in 0..count {
                match parse(&buf[at..], depth + 1)? {
                    Some((item, used)) => {
                        items.push(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            (Reply::Array(items), at)
        }
        _ => return Err(protocol(buf)),
    }))
}

fn protocol(buf: &[u8]) -> ConnError {
    let shown = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
    ConnError::Protocol(format!("not a RESP2 reply: {shown:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Option<(Reply, usize)> {
        parse(bytes, 0).unwrap()
    }

    #[test]
    fn writes_decimals_as_display_does() {
        for n in [0, 1, -1, 9, 10, -10, 1_234_567, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn packs_commands() {
        let mut r = Request::new();
        r.command(2).arg("GET").arg("k\r\n");
        r.command(1).arg("PING");
        assert_eq!(
            r.bytes(),
            b"*2\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n*1\r\n$4\r\nPING\r\n"
        );
        assert_eq!(r.commands(), 2);
        let mut big = Vec::new();
        push_usize(&mut big, 0);
        push_usize(&mut big, usize::MAX);
        assert_eq!(big, format!("0{}", usize::MAX).as_bytes());
    }

    #[test]
    fn parses_every_reply_kind() {
        assert_eq!(one(b"+OK\r\n"), Some((Reply::Data(b"OK".to_vec()), 5)));
        assert_eq!(
            one(b"-NOSCRIPT x\r\n"),
            Some((Reply::Error("NOSCRIPT x".into()), 13))
        );
        assert_eq!(one(b":-42\r\n"), Some((Reply::Int(-42), 6)));
        assert_eq!(one(b"$-1\r\n"), Some((Reply::Nil, 5)));
        assert_eq!(
            one(b"$4\r\na\r\nb\r\n"),
            Some((Reply::Data(b"a\r\nb".to_vec()), 10))
        );
        assert_eq!(one(b"*-1\r\n"), Some((Reply::Nil, 5)));
        assert_eq!(
            one(b"*2\r\n$1\r\n7\r\n*1\r\n:1\r\n"),
            Some((
                Reply::Array(vec![
                    Reply::Data(b"7".to_vec()),
                    Reply::Array(vec![Reply::Int(1)])
                ]),
                19
            ))
        );
    }

    #[test]
    fn incomplete_replies_ask_for_more() {
        let full = b"*2\r\n$5\r\nhello\r\n:12\r\n";
        for cut in 0..full.len() {
            assert_eq!(one(&full[..cut]), None, "cut at {cut}");
        }
        assert!(one(full).is_some());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"?x\r\n"[..],
            b"\r\n",
            b":abc\r\n",
            b"$5\r\nhelloXY",
            b"$99999999999999999999\r\n",
            b"*1\r\n!\r\n",
        ] {
            assert!(parse(bad, 0).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes(), 0).is_err());
    }
}
