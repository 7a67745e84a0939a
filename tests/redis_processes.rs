//! Real OS processes sharing one budget through Redis.
//!
//! The workers are this test binary run again with `BUDGETGATE_TEST_ROLE`
//! set: they configure nothing but `BUDGETGATE_REDIS_URL`, and use the
//! attributes on the global engine — sync and async functions alike.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{guard_bounded, Budget, Decimal, Engine, Ledger};
use rust_decimal_macros::dec;
use testkit::redis_server::RedisServer;
use testkit::Blocked;

const PROCESSES: usize = 4;
const THREADS: usize = 4;
const OPS: usize = 300;
const MAX: Decimal = dec!(5);

/// Returns what it cost, so the worker can add up exactly what was committed.
#[guard_bounded(ledger = ("xproc", "llm", principal), estimate = "0.01", actual = |cost: &Decimal| *cost, max_spend = "5")]
fn sync_call(principal: &str, cost: Decimal) -> Result<Decimal, Blocked> {
    Ok(cost)
}

#[guard_bounded(ledger = ("xproc", "llm", principal), estimate = "0.01", actual = |cost: &Decimal| *cost, max_spend = "5")]
async fn async_call(principal: &str, cost: Decimal) -> Result<Decimal, Blocked> {
    tokio::task::yield_now().await;
    Ok(cost)
}

/// The worker: prints `COMMITTED <sum> BLOCKED <n>`.
#[test]
fn worker() {
    if std::env::var("BUDGETGATE_TEST_ROLE").as_deref() != Ok("worker") {
        return;
    }
    let principal = std::env::var("BUDGETGATE_TEST_PRINCIPAL").expect("principal");
    let (sum, blocked) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let principal = principal.as_str();
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let (mut sum, mut blocked) = (Decimal::ZERO, 0usize);
                    for i in 0..OPS {
                        // 0.001 ..= 0.010, never above the estimate.
                        let cost = Decimal::new(((i + t) % 10 + 1) as i64, 3);
                        let result = if i % 2 == 0 {
                            sync_call(principal, cost)
                        } else {
                            rt.block_on(async_call(principal, cost))
                        };
                        match result {
                            Ok(c) => sum += c,
                            Err(Blocked(e)) => {
                                assert!(e.decision().is_blocked());
                                assert_eq!(
                                    e.decision().reason(),
                                    Some(budgetgate::BlockReason::BudgetExceeded),
                                    "{e}"
                                );
                                blocked += 1;
                            }
                        }
                    }
                    (sum, blocked)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((Decimal::ZERO, 0), |(s, b), (s2, b2)| (s + s2, b + b2))
    });
    println!("COMMITTED {sum} BLOCKED {blocked}");
}

fn spawn_worker(url: &str, principal: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker", "--nocapture", "--test-threads=1"])
        .env("BUDGETGATE_TEST_ROLE", "worker")
        .env("BUDGETGATE_TEST_PRINCIPAL", principal)
        .env("BUDGETGATE_REDIS_URL", url)
        .env("BUDGETGATE_REDIS_TIMEOUT_MS", "5000")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn worker")
}

/// 4 processes × 4 threads reserving and committing on one ledger: the total
/// in Redis never exceeds max_spend and equals the sum of committed actuals.
#[test]
fn no_overspend_across_processes() {
    if std::env::var("BUDGETGATE_TEST_ROLE").is_ok() {
        return;
    }
    let server = RedisServer::start();
    let principal = format!("p{}", std::process::id());
    let started = Instant::now();
    let workers: Vec<_> = (0..PROCESSES)
        .map(|_| spawn_worker(&server.url(), &principal))
        .collect();
    let (mut committed, mut blocked) = (Decimal::ZERO, 0usize);
    for w in workers {
        let out = w.wait_with_output().expect("worker output");
        assert!(
            out.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        // The harness prints "test worker ... " before the report, on the same line.
        let report = text
            .lines()
            .find_map(|l| l.find("COMMITTED ").map(|i| &l[i..]))
            .expect("worker report");
        let parts: Vec<&str> = report.split_whitespace().collect();
        committed += parts[1].parse::<Decimal>().unwrap();
        blocked += parts[3].parse::<usize>().unwrap();
    }
    let store = RedisStore::connect(&server.url()).unwrap();
    let status = Engine::new(store)
        .status_with(
            &Ledger::new("xproc", "llm", principal),
            &Budget::lifetime(MAX).unwrap(),
        )
        .unwrap();
    println!(
        "{} ops in {:?}: committed {committed}, blocked {blocked}",
        PROCESSES * THREADS * OPS,
        started.elapsed()
    );
    assert_eq!(
        status.committed(),
        committed,
        "Redis total equals the sum of commits exactly"
    );
    assert_eq!(status.reserved(), dec!(0));
    assert!(committed <= MAX, "overspent: {committed}");
    assert!(
        committed > MAX - dec!(0.01),
        "the cap was reached: {committed}"
    );
    assert!(blocked > 0);
}

/// A process SIGKILLed while holding reservations: the headroom returns after
/// the reservation TTL.
#[test]
fn killed_holder_headroom_returns_after_ttl() {
    if std::env::var("BUDGETGATE_TEST_ROLE").is_ok() {
        return;
    }
    let server = RedisServer::start();
    let principal = format!("holder{}", std::process::id());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "holder", "--nocapture", "--test-threads=1"])
        .env("BUDGETGATE_TEST_ROLE", "holder")
        .env("BUDGETGATE_TEST_PRINCIPAL", &principal)
        .env("BUDGETGATE_REDIS_URL", server.url())
        .env("BUDGETGATE_RESERVATION_TTL", "2s")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "holder exited before holding");
        if line.contains("HELD ") {
            break;
        }
    }
    let engine = Engine::new(RedisStore::connect(&server.url()).unwrap());
    let ledger = Ledger::new("xproc", "held", &principal);
    let budget = Budget::lifetime(dec!(1)).unwrap();
    assert_eq!(
        engine.status_with(&ledger, &budget).unwrap().reserved(),
        dec!(0.9)
    );
    assert!(engine
        .check_with(&ledger, Some(&budget), dec!(0.2))
        .is_blocked());
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let killed = Instant::now();
    assert_eq!(
        engine.status_with(&ledger, &budget).unwrap().reserved(),
        dec!(0.9),
        "still held"
    );
    let deadline = killed + Duration::from_secs(10);
    while engine.status_with(&ledger, &budget).unwrap().reserved() > dec!(0) {
        assert!(Instant::now() < deadline, "headroom never returned");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(engine
        .check_with(&ledger, Some(&budget), dec!(1))
        .is_allowed());
}

/// The holder: reserves 0.9 of 1 in three reservations, says so, then waits
/// to be killed.
#[test]
fn holder() {
    if std::env::var("BUDGETGATE_TEST_ROLE").as_deref() != Ok("holder") {
        return;
    }
    let principal = std::env::var("BUDGETGATE_TEST_PRINCIPAL").unwrap();
    let engine = budgetgate::global();
    let ledger = Ledger::new("xproc", "held", principal);
    let budget = Budget::lifetime(dec!(1)).unwrap();
    let held: Vec<_> = (0..3)
        .map(|_| {
            engine
                .reserve_with(&ledger, Some(&budget), dec!(0.3))
                .expect("fits")
        })
        .collect();
    println!("HELD {}", held.len());
    std::thread::sleep(Duration::from_secs(60));
    drop(held);
}

// ----- rate limits across processes ------------------------------------------------

#[derive(Debug)]
#[allow(dead_code)]
struct Limited(budgetgate::RateLimited);
impl From<budgetgate::RateLimited> for Limited {
    fn from(e: budgetgate::RateLimited) -> Self {
        Limited(e)
    }
}

const RATE_MAX: usize = 100;

#[budgetgate::rate_limit(gate = ("xproc", "rate", principal), max_calls = 100, window = "1h")]
fn rate_limited(principal: &str) -> Result<(), Limited> {
    Ok(())
}

/// The rate worker: prints `ADMITTED <n>`.
#[test]
fn rate_worker() {
    if std::env::var("BUDGETGATE_TEST_ROLE").as_deref() != Ok("rate-worker") {
        return;
    }
    let principal = std::env::var("BUDGETGATE_TEST_PRINCIPAL").expect("principal");
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let principal = principal.as_str();
                s.spawn(move || (0..40).filter(|_| rate_limited(principal).is_ok()).count())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!("ADMITTED {admitted}");
}

/// 4 processes × 4 threads × 40 attempts on one gate limited to 100 calls
/// per hour: exactly 100 are admitted in all.
#[test]
fn rate_limit_exact_across_processes() {
    if std::env::var("BUDGETGATE_TEST_ROLE").is_ok() {
        return;
    }
    let server = RedisServer::start();
    let principal = format!("rate{}", std::process::id());
    let workers: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "rate_worker", "--nocapture", "--test-threads=1"])
                .env("BUDGETGATE_TEST_ROLE", "rate-worker")
                .env("BUDGETGATE_TEST_PRINCIPAL", &principal)
                .env("BUDGETGATE_REDIS_URL", server.url())
                .env("BUDGETGATE_REDIS_TIMEOUT_MS", "5000")
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn rate worker")
        })
        .collect();
    let mut admitted = 0usize;
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let n = text
            .lines()
            .find_map(|l| l.find("ADMITTED ").map(|i| &l[i + 9..]))
            .expect("rate worker report");
        admitted += n.trim().parse::<usize>().unwrap();
    }
    assert_eq!(
        admitted, RATE_MAX,
        "exactly max_calls admitted across processes"
    );
}

// ----- the kill switch across processes ----------------------------------------------

/// The probe: one check on the global engine; prints `PROBE <status> <reason>`.
#[test]
fn pause_probe() {
    if std::env::var("BUDGETGATE_TEST_ROLE").as_deref() != Ok("pause-probe") {
        return;
    }
    let principal = std::env::var("BUDGETGATE_TEST_PRINCIPAL").unwrap();
    let ledger = Ledger::new("xproc", "paused", principal);
    let budget = Budget::lifetime(dec!(100)).unwrap();
    let d = budgetgate::global().check_with(&ledger, Some(&budget), dec!(1));
    println!("PROBE {:?} {:?}", d.status(), d.reason());
}

fn probe(server: &RedisServer, principal: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "pause_probe", "--nocapture", "--test-threads=1"])
        .env("BUDGETGATE_TEST_ROLE", "pause-probe")
        .env("BUDGETGATE_TEST_PRINCIPAL", principal)
        .env("BUDGETGATE_REDIS_URL", server.url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.find("PROBE ").map(|i| l[i + 6..].trim().to_owned()))
        .unwrap_or_else(|| panic!("no probe report in {text}"))
}

/// Pause in this process blocks calls in another; resume restores them.
#[test]
fn pause_in_one_process_blocks_another() {
    if std::env::var("BUDGETGATE_TEST_ROLE").is_ok() {
        return;
    }
    let server = RedisServer::start();
    let principal = format!("pause{}", std::process::id());
    let engine = Engine::new(RedisStore::connect(&server.url()).unwrap());
    assert_eq!(probe(&server, &principal), "Allow None");
    engine
        .pause(&budgetgate::PauseScope::Namespace("xproc".into()))
        .unwrap();
    assert_eq!(probe(&server, &principal), "Block Some(Paused)");
    engine
        .resume(&budgetgate::PauseScope::Namespace("xproc".into()))
        .unwrap();
    assert_eq!(probe(&server, &principal), "Allow None");
}

/// The kill-and-restart test's budget: large enough that the kill comes
/// while the workers are still spending.
const AOF_BUDGET: Decimal = dec!(1000);

/// A worker of the kill-and-restart test: 4 threads reserving 0.01 and
/// committing through the Engine API while Redis is killed and restarted.
/// Prints `LANDED <sum of Event::Committed> CONFIRMED <sum of Ok commits>
/// UNKNOWN <sum of Unknown commits>`, after giving the background retries
/// time to finish.
#[test]
fn aof_worker() {
    if std::env::var("BUDGETGATE_TEST_ROLE").as_deref() != Ok("aof_worker") {
        return;
    }
    let url = std::env::var("BUDGETGATE_TEST_URL").expect("url");
    let principal = std::env::var("BUDGETGATE_TEST_PRINCIPAL").expect("principal");
    let landed = std::sync::Arc::new(std::sync::Mutex::new(Decimal::ZERO));
    let sink = landed.clone();
    let store = RedisStore::builder(&url)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let engine = Engine::builder()
        .store(store)
        .listener(move |e: &budgetgate::Event<'_>| {
            if let budgetgate::Event::Committed { actual, .. } = e {
                *sink.lock().unwrap() += *actual;
            }
        })
        .build();
    let ledger = Ledger::new("xproc", "aof", principal);
    engine.set_budget(&ledger, Budget::lifetime(AOF_BUDGET).unwrap());
    let started = Instant::now();
    let (confirmed, unknown) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (engine, ledger) = (&engine, &ledger);
                s.spawn(move || {
                    let (mut confirmed, mut unknown) = (Decimal::ZERO, Decimal::ZERO);
                    let mut i = 0;
                    while started.elapsed() < Duration::from_secs(3) {
                        i += 1;
                        let cost = Decimal::new(((i + t) % 10 + 1) as i64, 3);
                        if let Ok(r) = engine.reserve(ledger, dec!(0.01)) {
                            match r.commit(cost) {
                                Ok(_) => confirmed += cost,
                                Err(budgetgate::CommitError::Unknown { actual, .. }) => {
                                    unknown += actual
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    (confirmed, unknown)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((Decimal::ZERO, Decimal::ZERO), |(a, b), (c, d)| {
                (a + c, b + d)
            })
    });
    // Let unconfirmed commits land in the background before exiting.
    assert!(
        engine.wait_settled(Duration::from_secs(30)),
        "{} writes still pending",
        engine.pending_settles()
    );
    let landed = *landed.lock().unwrap();
    println!("LANDED {landed} CONFIRMED {confirmed} UNKNOWN {unknown}");
}

/// Redis `kill -9`ed and restarted with its AOF under 4 processes × 4
/// threads: the stored total equals what the clients saw land (confirmed
/// commits plus the unknown ones that landed later), never above the
/// budget, and the restarted Redis is not mistaken for a reset.
#[test]
fn kill_and_restart_with_aof_keeps_the_books() {
    if std::env::var("BUDGETGATE_TEST_ROLE").is_ok() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("budgetgate-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = RedisServer::start_with_args(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let principal = format!("aof{}", std::process::id());
    let workers: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "aof_worker", "--nocapture", "--test-threads=1"])
                .env("BUDGETGATE_TEST_ROLE", "aof_worker")
                .env("BUDGETGATE_TEST_URL", server.url())
                .env("BUDGETGATE_TEST_PRINCIPAL", &principal)
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    server.kill(); // SIGKILL mid-run
    std::thread::sleep(Duration::from_millis(500));
    server.restart(); // from the AOF
    let (mut landed, mut confirmed, mut unknown) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for w in workers {
        let out = w.wait_with_output().expect("worker output");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "worker failed: {text}");
        let report = text
            .lines()
            .find_map(|l| l.find("LANDED ").map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("no report in {text}"));
        let parts: Vec<&str> = report.split_whitespace().collect();
        landed += parts[1].parse::<Decimal>().unwrap();
        confirmed += parts[3].parse::<Decimal>().unwrap();
        unknown += parts[5].parse::<Decimal>().unwrap();
    }
    let store = RedisStore::connect(&server.url()).unwrap();
    let status = Engine::new(store)
        .status_with(
            &Ledger::new("xproc", "aof", principal),
            &Budget::lifetime(AOF_BUDGET).unwrap(),
        )
        .unwrap();
    println!(
        "stored {} landed {landed} confirmed {confirmed} unknown {unknown}",
        status.committed()
    );
    assert_eq!(
        status.committed(),
        landed,
        "the store agrees with the clients"
    );
    assert!(confirmed <= landed && landed <= confirmed + unknown);
    assert!(landed <= AOF_BUDGET, "overspent: {landed}");
    assert_eq!(status.reserved(), dec!(0), "no hold left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
