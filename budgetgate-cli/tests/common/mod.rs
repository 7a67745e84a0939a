//! Helpers of the service tests: the real `budgetgate` binary started as a
//! process on a free port (memory store, or a real redis-server started by
//! testkit), a real HTTP client (ureq), and the CLI run as a process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN: &str = "admin-key-for-tests";
pub const SPEND: &str = "spend-key-for-tests";
pub const READ: &str = "read-key-for-tests";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_budgetgate")
}

/// A unique name (prefixes, namespaces) for this run.
pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{tag}{}x{nonce}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running `budgetgate serve` process; killed (by PID) when dropped.
pub struct Service {
    pub base: String,
    /// The first line the service printed.
    pub banner: String,
    pub child: Child,
    pub log: std::path::PathBuf,
}

impl Service {
    /// Starts the binary with a config file: `redis` (url, prefix) or memory.
    pub fn start(redis: Option<(&str, &str)>, extra_toml: &str) -> Service {
        let dir = std::env::temp_dir().join(unique("bg-svc-"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut toml = String::from("listen = \"127.0.0.1:0\"\nshared_budgets_poll_ms = 100\n");
        if let Some((url, prefix)) = redis {
            toml.push_str(&format!(
                "redis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\n"
            ));
        }
        toml.push_str(extra_toml);
        for (name, role, key) in [
            ("ops", "admin", ADMIN),
            ("agent", "spend", SPEND),
            ("viewer", "read", READ),
        ] {
            toml.push_str(&format!(
                "\n[[keys]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
                budgetgate_cli::auth::hash_key(key)
            ));
        }
        let config = dir.join("budgetgate.toml");
        std::fs::write(&config, toml).expect("config");
        let log = dir.join("stderr.log");
        let mut child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("BUDGETGATE_REDIS_URL")
            .env_remove("BUDGETGATE_API_KEYS")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("the budgetgate binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!(
                    "the service did not say where it listens: {line:?}; stderr: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_owned();
        Service {
            base: format!("http://{addr}"),
            banner: line.clone(),
            child,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that returns every status (never an error for 4xx/5xx).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// (status, JSON body) of a request with `key` (None: no header).
pub fn call(method: &str, url: &str, key: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let a = agent();
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(url);
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = a.delete(url);
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
        (m, b) => {
            let mut r = match m {
                "PUT" => a.put(url),
                _ => a.post(url),
            };
            r = r.header("content-type", "application/json");
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.send(b.unwrap_or(""))
        }
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

pub fn post(s: &Service, path: &str, key: &str, body: &str) -> (u16, Value) {
    call("POST", &s.url(path), Some(key), Some(body))
}

pub fn get(s: &Service, path: &str, key: &str) -> (u16, Value) {
    call("GET", &s.url(path), Some(key), None)
}

pub fn ledger(ns: &str, res: &str, p: &str) -> String {
    format!(r#"{{"namespace":"{ns}","resource":"{res}","principal":"{p}"}}"#)
}

/// Stores an operator budget through the admin API.
pub fn set_budget(s: &Service, ns: &str, res: &str, principal: &str, caps: &str) {
    let body = format!(
        r#"{{"namespace":"{ns}","resource":"{res}","principal":"{principal}","budgets":{caps}}}"#
    );
    let (status, answer) = call("PUT", &s.url("/v1/admin/budgets"), Some(ADMIN), Some(&body));
    assert_eq!(status, 200, "{answer}");
}

/// The status of a ledger (query-encoded).
pub fn status(s: &Service, ns: &str, res: &str, p: &str) -> (u16, Value) {
    let enc = |t: &str| -> String {
        t.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    get(
        s,
        &format!(
            "/v1/status?namespace={}&resource={}&principal={}",
            enc(ns),
            enc(res),
            enc(p)
        ),
        READ,
    )
}

/// Runs the CLI; (exit code, stdout, stderr).
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("BUDGETGATE_REDIS_URL")
        .env_remove("BUDGETGATE_SERVER")
        .env_remove("BUDGETGATE_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the budgetgate binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` until it is true or `limit` passes; returns the time it took.
pub fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
