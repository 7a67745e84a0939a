//! [`RedisServer`]: a real `redis-server` started for the tests on a free
//! port and killed when dropped. No test depends on a Redis the machine
//! happens to run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on `127.0.0.1:port`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    password: Option<String>,
    /// TLS: the directory holding `ca.pem` and the server's `cert.pem` /
    /// `key.pem` (for 127.0.0.1), made with the `openssl` command.
    tls: Option<std::path::PathBuf>,
    /// More `redis-server` arguments (kept across restarts).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port. Panics, saying how to get one, if
    /// `redis-server` is not on PATH.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// Starts a server that requires `password`.
    pub fn start_with_password(password: Option<&str>) -> Self {
        let port = free_port();
        let mut server = RedisServer {
            port,
            child: None,
            password: password.map(str::to_owned),
            tls: None,
            extra: Vec::new(),
        };
        server.spawn();
        server
    }

    /// Starts a server with more `redis-server` arguments (e.g.
    /// `["--maxmemory", "2mb"]`), kept when it is restarted.
    pub fn start_with_args(args: &[&str]) -> Self {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            password: None,
            tls: None,
            extra: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    /// Starts a TLS-only server with a fresh CA and a certificate for
    /// 127.0.0.1 signed by it (see [`RedisServer::ca_pem`]). Needs the
    /// `openssl` command.
    pub fn start_tls() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "budgetgate-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        // A CA, and a leaf certificate for 127.0.0.1 signed by it.
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extension file");
        let openssl = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|e| {
                    panic!("cannot run openssl ({e}): the TLS test needs it to make certificates; `apt-get install openssl`")
                })
                .success()
        };
        let status = openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=budgetgate test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]) && openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ]) && openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ]);
        assert!(status, "openssl could not make the certificates");
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            password: None,
            tls: Some(dir),
            extra: Vec::new(),
        };
        server.spawn();
        server
    }

    /// The CA that signed a TLS server's certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        let dir = self.tls.as_ref().expect("a TLS server");
        std::fs::read(dir.join("ca.pem")).expect("CA certificate")
    }

    fn spawn(&mut self) {
        which_redis();
        // A watchdog shell in its own process group runs the server and kills
        // it when this process is gone, so a server held in a `static` (never
        // dropped) does not outlive the tests; `kill` ends the whole group.
        let script = "redis-server \"$@\" & r=$!; \
             while kill -0 \"$WATCH\" 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.3; done; \
             kill -9 $r 2>/dev/null";
        let mut cmd = Command::new("sh");
        cmd.env("WATCH", std::process::id().to_string());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(["-c", script, "redis-server"]);
        match &self.tls {
            Some(dir) => {
                let cert = dir.join("cert.pem");
                cmd.args(["--port", "0", "--tls-port", &self.port.to_string()]);
                cmd.arg("--tls-cert-file").arg(&cert);
                cmd.arg("--tls-key-file").arg(dir.join("key.pem"));
                cmd.arg("--tls-ca-cert-file").arg(dir.join("ca.pem"));
                cmd.args(["--tls-auth-clients", "no"]);
            }
            None => {
                cmd.args(["--port", &self.port.to_string()]);
                cmd.arg("--unixsocket").arg(self.socket_path());
                cmd.args(["--unixsocketperm", "700"]);
            }
        }
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        // Whatever the server writes (a replica's copy of its primary, a
        // BGSAVE) goes to a directory of its own, never the test's cwd.
        let dir = std::env::temp_dir().join(format!("budgetgate-redis-{}.d", self.port));
        std::fs::create_dir_all(&dir).expect("the server's directory");
        cmd.arg("--dir").arg(&dir);
        // Later arguments win: these may override the ones above.
        cmd.args(&self.extra);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sh for redis-server: {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(dir) = &self.tls {
            while Instant::now() < deadline {
                let out = Command::new("redis-cli")
                    .args([
                        "--tls",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &self.port.to_string(),
                        "--cacert",
                    ])
                    .arg(dir.join("ca.pem"))
                    .arg("ping")
                    .output();
                if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG")) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!(
                "TLS redis-server on port {} did not answer PING within 10 s",
                self.port
            );
        }
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let ping = match &self.password {
                    Some(p) => format!("AUTH {p}\r\nPING\r\n"),
                    None => "PING\r\n".to_owned(),
                };
                let mut buf = [0u8; 64];
                if s.write_all(ping.as_bytes()).is_ok() {
                    let mut got = String::new();
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        got.push_str(&String::from_utf8_lossy(&buf[..n]));
                        if got.contains("PONG") {
                            return;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        );
    }

    /// The Unix socket a plain (non-TLS) server also listens on.
    pub fn socket_path(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("budgetgate-redis-{}.sock", self.port))
    }

    /// The port.
    /// Runs `redis-cli` against this server; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli (installed with redis-server)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis+unix://` to the server's Unix socket.
    pub fn unix_url(&self) -> String {
        format!("redis+unix://{}", self.socket_path().display())
    }

    /// `redis://127.0.0.1:port` (with the password, if any).
    pub fn url(&self) -> String {
        if self.tls.is_some() {
            return format!("rediss://127.0.0.1:{}", self.port);
        }
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.kill();
            let _ = child.wait();
            // Wait until the port is free again, so a restart can bind it.
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections open and requests are
    /// accepted by the kernel, but nothing answers — a hung Redis, or one
    /// behind a network that drops packets.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let group = format!("-{}", child.id());
            let status = Command::new("kill").args([signal, "--", &group]).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "kill {signal} failed for the redis-server process group"
            );
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if self.tls.is_none() {
            let _ = std::fs::remove_file(self.socket_path());
        }
        if let Some(dir) = &self.tls {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Fails, saying how to get it, if `redis-server` is not on PATH: a missing
/// dependency fails the test, it never skips it.
fn which_redis() {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "redis-server is not on PATH: the Redis tests start their own. Install it with \
         `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS); \
         .ci/run installs it when missing."
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}
