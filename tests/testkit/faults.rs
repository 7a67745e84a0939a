//! What the Redis fault tests share: their timeout and slack, an engine on
//! a URL, ledgers, timing and waiting helpers, a counter of commits, and a
//! temporary directory for a server's files.

use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{Engine, Ledger};

pub const TIMEOUT: Duration = Duration::from_millis(300);

/// What a bounded call may take beyond its timeout.
pub const SLACK: Duration = Duration::from_millis(100);

pub fn engine(url: &str, timeout: Duration) -> Engine {
    let store = RedisStore::builder(url)
        .timeout(timeout)
        .build()
        .expect("store");
    Engine::builder()
        .store(store)
        .reservation_ttl(Duration::from_secs(600))
        .build()
}

pub fn ledger(name: &str) -> Ledger {
    Ledger::new("faults", name, format!("p{}", std::process::id()))
}

/// A counter of [`budgetgate::Event::Committed`] events, and the listener
/// that counts them.
pub fn committed_events() -> (
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    impl Fn(&budgetgate::Event<'_>) + Send + Sync + 'static,
) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    let listener = move |e: &budgetgate::Event<'_>| {
        if matches!(e, budgetgate::Event::Committed { .. }) {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    };
    (count, listener)
}

/// Runs `f` and returns how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// Waits up to `limit` for `done`.
pub fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn redis_cli(server: &crate::redis_server::RedisServer, args: &[&str]) -> String {
    server.cli(args)
}

/// A fresh directory for a server's files (AOF), removed at the end.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("budgetgate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
    pub fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
