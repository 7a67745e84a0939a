//! [`FaultProxy`]: a proxy in front of a test's `redis-server` that
//! injects network faults for real — replies delayed, trickled a byte at a
//! time or dropped, and connections refused for a while — so the Redis
//! store's bounds are tested against sockets, not mocks. It listens on TCP
//! ([`FaultProxy::start`]) or on a Unix socket ([`FaultProxy::start_unix`])
//! and forwards to the server's TCP port.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to the server's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as they come.
    None,
    /// Hold every reply chunk this long before forwarding it.
    Delay(Duration),
    /// Forward one byte, then wait this long, and so on.
    Trickle(Duration),
    /// Swallow replies: requests reach the server, answers never come back.
    Drop,
}

/// One side of a proxied connection.
enum Conn {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Conn {
    fn try_clone(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
            #[cfg(unix)]
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(Shutdown::Both),
            #[cfg(unix)]
            Conn::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the proxy listens.
#[derive(Clone)]
enum Front {
    Tcp(u16),
    #[cfg(unix)]
    Unix(PathBuf),
}

enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener),
}

impl Listener {
    fn bind(front: &Front) -> Listener {
        match front {
            Front::Tcp(port) => {
                Listener::Tcp(TcpListener::bind(("127.0.0.1", *port)).expect("bind the proxy"))
            }
            #[cfg(unix)]
            Front::Unix(path) => {
                let _ = std::fs::remove_file(path);
                Listener::Unix(UnixListener::bind(path).expect("bind the proxy's Unix socket"))
            }
        }
    }

    fn accept(&self) -> std::io::Result<Conn> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
            #[cfg(unix)]
            Listener::Unix(l) => l.accept().map(|(s, _)| Conn::Unix(s)),
        }
    }
}

struct Shared {
    fault: Mutex<Fault>,
    /// Streams of the open connections (to cut them all at once).
    open: Mutex<Vec<Conn>>,
    stopped: AtomicBool,
}

/// A proxy on `127.0.0.1:port()` (or a Unix socket) forwarding to
/// `127.0.0.1:target`.
pub struct FaultProxy {
    front: Front,
    target: u16,
    shared: Arc<Shared>,
    listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl FaultProxy {
    /// A TCP proxy to the server on `target`.
    pub fn start(target: u16) -> FaultProxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for the proxy")
            .port();
        FaultProxy::start_at(Front::Tcp(port), target)
    }

    /// A proxy listening on a fresh Unix socket, to the server on `target`.
    #[cfg(unix)]
    pub fn start_unix(target: u16) -> FaultProxy {
        let path = std::env::temp_dir().join(format!(
            "budgetgate-proxy-{}-{target}.sock",
            std::process::id()
        ));
        FaultProxy::start_at(Front::Unix(path), target)
    }

    fn start_at(front: Front, target: u16) -> FaultProxy {
        let listener = Listener::bind(&front);
        let proxy = FaultProxy {
            front,
            target,
            shared: Arc::new(Shared {
                fault: Mutex::new(Fault::None),
                open: Mutex::new(Vec::new()),
                stopped: AtomicBool::new(false),
            }),
            listener: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    /// The proxy's TCP port (0 for a Unix-socket proxy).
    pub fn port(&self) -> u16 {
        match &self.front {
            Front::Tcp(port) => *port,
            #[cfg(unix)]
            Front::Unix(_) => 0,
        }
    }

    /// The store URL through the proxy: `redis://127.0.0.1:port`, or
    /// `redis+unix:///path`.
    pub fn url(&self) -> String {
        match &self.front {
            Front::Tcp(port) => format!("redis://127.0.0.1:{port}"),
            #[cfg(unix)]
            Front::Unix(path) => format!("redis+unix://{}", path.display()),
        }
    }

    /// Sets the fault applied to replies from now on (open connections too).
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Cuts every open connection and refuses new ones for `length` (the
    /// port is closed), as a restarting server does; then accepts again.
    pub fn outage(&self, length: Duration) {
        self.stop_listening();
        std::thread::sleep(length);
        let listener = Listener::bind(&self.front);
        self.shared.stopped.store(false, Ordering::SeqCst);
        self.serve(listener);
    }

    fn stop_listening(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stopped` and drops the listener.
        match &self.front {
            Front::Tcp(port) => drop(TcpStream::connect(("127.0.0.1", *port))),
            #[cfg(unix)]
            Front::Unix(path) => drop(UnixStream::connect(path)),
        }
        if let Some(handle) = self.listener.lock().unwrap().take() {
            let _ = handle.join();
        }
        #[cfg(unix)]
        if let Front::Unix(path) = &self.front {
            let _ = std::fs::remove_file(path);
        }
        for stream in self.shared.open.lock().unwrap().drain(..) {
            stream.shutdown();
        }
    }

    fn serve(&self, listener: Listener) {
        let shared = self.shared.clone();
        let target = self.target;
        let handle = std::thread::spawn(move || loop {
            let client = listener.accept();
            if shared.stopped.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let _ = server.set_nodelay(true);
            let server = Conn::Tcp(server);
            {
                let mut open = shared.open.lock().unwrap();
                open.extend(client.try_clone().ok());
                open.extend(server.try_clone().ok());
            }
            let (Ok(c_read), Ok(s_write)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || pump(c_read, s_write, None));
            let shared = shared.clone();
            std::thread::spawn(move || pump(server, client, Some(shared)));
        });
        *self.listener.lock().unwrap() = Some(handle);
    }
}

/// Copies `from` to `to`; with `shared`, applies the reply fault.
fn pump(mut from: Conn, mut to: Conn, shared: Option<Arc<Shared>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let fault = shared
            .as_ref()
            .map_or(Fault::None, |s| *s.fault.lock().unwrap());
        let ok = match fault {
            Fault::None => to.write_all(&buf[..n]).is_ok(),
            Fault::Delay(d) => {
                std::thread::sleep(d);
                to.write_all(&buf[..n]).is_ok()
            }
            Fault::Trickle(d) => buf[..n].iter().all(|b| {
                let sent = to.write_all(std::slice::from_ref(b)).is_ok();
                std::thread::sleep(d);
                sent
            }),
            Fault::Drop => true,
        };
        if !ok {
            break;
        }
    }
    to.shutdown();
    from.shutdown();
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop_listening();
    }
}
