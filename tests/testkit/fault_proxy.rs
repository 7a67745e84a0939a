//! [`FaultProxy`]: a TCP proxy in front of a test's `redis-server` that
//! injects network faults for real — replies delayed, trickled a byte at a
//! time or dropped, and connections refused for a while — so the Redis
//! store's bounds are tested against sockets, not mocks.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
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

struct Shared {
    fault: Mutex<Fault>,
    /// Streams of the open connections (to cut them all at once).
    open: Mutex<Vec<TcpStream>>,
    stopped: AtomicBool,
}

/// A proxy on `127.0.0.1:port()` forwarding to `127.0.0.1:target`.
pub struct FaultProxy {
    port: u16,
    target: u16,
    shared: Arc<Shared>,
    listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl FaultProxy {
    /// A proxy to the server on `target`.
    pub fn start(target: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let proxy = FaultProxy {
            port,
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

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:port` through the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the proxy");
        self.shared.stopped.store(false, Ordering::SeqCst);
        self.serve(listener);
    }

    fn stop_listening(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stopped` and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.listener.lock().unwrap().take() {
            let _ = handle.join();
        }
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let target = self.target;
        let handle = std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut open = shared.open.lock().unwrap();
                    open.extend(client.try_clone().ok());
                    open.extend(server.try_clone().ok());
                }
                let (c_read, s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(c_read, s_write, None));
                let shared = shared.clone();
                std::thread::spawn(move || pump(server, client, Some(shared)));
            }
        });
        *self.listener.lock().unwrap() = Some(handle);
    }
}

/// Copies `from` to `to`; with `shared`, applies the reply fault.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: Option<Arc<Shared>>) {
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
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop_listening();
    }
}
