//! The Redis scripts' fast paths (a reserve, check, commit or release on one
//! lifetime window) must give exactly what the general code gives. Two
//! stores on one redis-server — one with the fast paths, one without — run
//! the same random sequence of operations on the same clock; after every
//! step their answers and their stored ledger hashes must be equal.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use budgetgate::clock::ManualClock;
use budgetgate::store::redis::{RedisStore, TimeSource};
use budgetgate::{Budget, Decimal, Engine, Event, Ledger, PauseScope, Reservation};
use rust_decimal_macros::dec;
use testkit::redis_server::RedisServer;

/// xorshift64*: a reproducible sequence without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// 0 to 3 with up to 9 decimal places.
    fn amount(&mut self) -> Decimal {
        Decimal::new(self.below(3_000_000_001) as i64, 9)
    }
}

fn engine(
    server: &RedisServer,
    clock: &ManualClock,
    prefix: &str,
    fast: bool,
    warnings: Arc<AtomicUsize>,
) -> Engine {
    let mut store = RedisStore::builder(&server.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(5))
        .time_source(TimeSource::Clock(Arc::new(clock.clone())));
    if !fast {
        store = store.without_fast_paths();
    }
    Engine::builder()
        .store(store.build().unwrap())
        .reservation_ttl(Duration::from_secs(60))
        .listener(move |event: &Event<'_>| {
            if let Event::SoftLimit { .. } = event {
                warnings.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
}

/// The ledger's hash and its rolling window's entries, with reservation ids
/// replaced by the pair they belong to.
fn stored(
    con: &mut redis::Connection,
    prefix: &str,
    principal: &str,
    ids: &HashMap<String, usize>,
) -> BTreeMap<String, String> {
    let pair = |id: &str| format!("#{}", ids.get(id).copied().unwrap_or(usize::MAX));
    let base = format!("{prefix}:{{fp:api:{principal}}}");
    // Window states are binary (five i64s): shown escaped, compared exactly.
    let map: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(format!("{base}:meta"))
        .query(con)
        .unwrap();
    let mut out: BTreeMap<String, String> = map
        .into_iter()
        .map(|(field, value)| (field, value.escape_ascii().to_string()))
        .map(|(field, value)| match field.strip_prefix("r:") {
            Some(id) => (format!("r:{}", pair(id)), value),
            None => (field, value),
        })
        .collect();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{base}:e:*"))
        .query(con)
        .unwrap();
    for key in keys {
        let entries: Vec<(String, String)> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(con)
            .unwrap();
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query(con).unwrap();
        let mut entries: Vec<String> = entries
            .into_iter()
            .map(|(member, score)| match member.split_once('|') {
                Some((id, rest)) => format!("{score} {}|{rest}", pair(id)),
                None => format!("{score} {member}"),
            })
            .collect();
        entries.sort();
        let suffix = key.rsplit(':').next().unwrap_or_default().to_owned();
        out.insert(format!("entries {suffix}"), format!("{entries:?}"));
        out.insert(format!("ttl {suffix}"), ttl.to_string());
    }
    out
}

/// Every command the server runs, as MONITOR prints it.
struct Monitor {
    stream: std::net::TcpStream,
    reader: std::thread::JoinHandle<Vec<String>>,
}

impl Monitor {
    fn start(port: u16) -> Monitor {
        use std::io::{BufRead, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert_eq!(ok.trim(), "+OK");
        let reader = std::thread::spawn(move || reader.lines().map_while(Result::ok).collect());
        Monitor { stream, reader }
    }

    fn stop(self) -> Vec<String> {
        // Let the last lines arrive, then end the reader.
        std::thread::sleep(Duration::from_millis(200));
        self.stream.shutdown(std::net::Shutdown::Both).unwrap();
        self.reader.join().unwrap()
    }
}

/// A commit's result without the reservation id (the stores' ids differ).
fn outcome(r: Result<budgetgate::Commit, budgetgate::CommitError>) -> String {
    match r {
        Ok(c) => format!("ok {} {} late={}", c.estimate(), c.actual(), c.is_late()),
        Err(budgetgate::CommitError::UnknownReservation { .. }) => "unknown".into(),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn fast_paths_match_the_general_code_on_a_lifetime_window() {
    let budget = Budget::lifetime(dec!(800))
        .unwrap()
        .warn_at(dec!(0.5))
        .unwrap();
    same_results(budget, dec!(400), "lifetime", 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn fast_paths_match_the_general_code_on_a_rolling_window() {
    // Two minutes: the random clock moves (seconds, 61 s, an hour) make
    // entries leave the window and reservations expire.
    let budget = Budget::rolling(dec!(20), Duration::from_secs(120))
        .unwrap()
        .warn_at(dec!(0.5))
        .unwrap();
    same_results(budget, dec!(10), "rolling", 0xD1B5_4A32_D192_ED03);
}

/// Runs both stores through the same sequence; `crossing` takes a ledger
/// that has spent 1 over the budget's 50% warning threshold.
fn same_results(budget: Budget, crossing: Decimal, principal: &str, seed: u64) {
    let server = RedisServer::start();
    let clock = ManualClock::new(1_700_000_000_000_000);
    let (fast_warnings, general_warnings) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let fast = engine(&server, &clock, "fast", true, fast_warnings.clone());
    let general = engine(&server, &clock, "general", false, general_warnings.clone());
    let ledger = Ledger::new("fp", "api", principal);
    fast.set_budget(&ledger, budget);
    general.set_budget(&ledger, budget);
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();

    // A new ledger takes the general code; the next check crosses the
    // warning threshold (50%) on the fast path.
    for a in [dec!(1), crossing] {
        assert_eq!(
            fast.check(&ledger, a).to_json(),
            general.check(&ledger, a).to_json()
        );
    }
    assert_eq!(
        (
            fast_warnings.load(Ordering::SeqCst),
            general_warnings.load(Ordering::SeqCst)
        ),
        (1, 1),
        "one crossing of the soft limit, reported by both"
    );
    let mut rng = Rng(seed);
    let mut open: Vec<(Reservation<'_>, Reservation<'_>, usize)> = Vec::new();
    let (mut fast_ids, mut general_ids) = (HashMap::new(), HashMap::new());
    let mut pairs = 0;
    let (mut commits, mut blocked) = (0, 0);
    let monitor = Monitor::start(server.port());
    for step in 0..1_500 {
        let what = rng.below(100);
        match what {
            0..=24 => {
                let a = rng.amount();
                let (f, g) = (fast.check(&ledger, a), general.check(&ledger, a));
                assert_eq!(f.to_json(), g.to_json(), "step {step}: check {a}");
                blocked += usize::from(f.is_blocked());
            }
            25..=54 => {
                let a = rng.amount();
                match (fast.reserve(&ledger, a), general.reserve(&ledger, a)) {
                    (Ok(f), Ok(g)) => {
                        assert_eq!(
                            f.decision().to_json(),
                            g.decision().to_json(),
                            "step {step}"
                        );
                        fast_ids.insert(f.id().to_string(), pairs);
                        general_ids.insert(g.id().to_string(), pairs);
                        open.push((f, g, pairs));
                        pairs += 1;
                    }
                    (Err(f), Err(g)) => {
                        assert_eq!(
                            f.decision().to_json(),
                            g.decision().to_json(),
                            "step {step}"
                        )
                    }
                    (f, g) => panic!(
                        "step {step}: reserve {a}: {:?} vs {:?}",
                        f.is_ok(),
                        g.is_ok()
                    ),
                }
            }
            55..=74 if !open.is_empty() => {
                let (f, g, _) = open.swap_remove(rng.below(open.len() as u64) as usize);
                let a = rng.amount();
                assert_eq!(
                    outcome(f.commit(a)),
                    outcome(g.commit(a)),
                    "step {step}: commit {a}"
                );
                commits += 1;
            }
            75..=82 if !open.is_empty() => {
                let (f, g, _) = open.swap_remove(rng.below(open.len() as u64) as usize);
                assert_eq!(
                    f.release().is_ok(),
                    g.release().is_ok(),
                    "step {step}: release"
                );
            }
            83..=87 if !open.is_empty() => {
                // Dropped: released on this thread.
                drop(open.swap_remove(rng.below(open.len() as u64) as usize));
            }
            88..=95 => {
                // Mostly seconds; sometimes past the reservation TTL (60 s) or
                // an hour (the keys' TTL renewal).
                let secs = match rng.below(10) {
                    0 => 3_700,
                    1 => 61,
                    _ => rng.below(20),
                };
                clock.advance(
                    Duration::from_secs(secs) + Duration::from_micros(rng.below(1_000_000)),
                );
            }
            96..=97 => {
                let scope = PauseScope::Ledger(ledger.clone());
                fast.pause(&scope).unwrap();
                general.pause(&scope).unwrap();
                let a = rng.amount();
                let (f, g) = (fast.check(&ledger, a), general.check(&ledger, a));
                assert!(f.is_blocked(), "step {step}: paused");
                assert_eq!(f.to_json(), g.to_json(), "step {step}: paused check");
                fast.resume(&scope).unwrap();
                general.resume(&scope).unwrap();
            }
            _ => {
                let (f, g) = (
                    fast.status(&ledger).unwrap(),
                    general.status(&ledger).unwrap(),
                );
                assert_eq!(
                    (f.committed(), f.reserved()),
                    (g.committed(), g.reserved()),
                    "step {step}: status"
                );
            }
        }
        let (mut f, mut g) = (
            stored(&mut con, "fast", principal, &fast_ids),
            stored(&mut con, "general", principal, &general_ids),
        );
        // Entry keys' TTLs count down in real time: equal within 2 s.
        let ttls = |m: &mut BTreeMap<String, String>| -> Vec<i64> {
            let keys: Vec<String> = m
                .keys()
                .filter(|k| k.starts_with("ttl "))
                .cloned()
                .collect();
            keys.iter()
                .map(|k| m.remove(k).unwrap().parse().unwrap())
                .collect()
        };
        let (ft, gt) = (ttls(&mut f), ttls(&mut g));
        assert_eq!(f, g, "step {step}: the stored ledgers differ");
        assert_eq!(ft.len(), gt.len(), "step {step}");
        for (a, b) in ft.iter().zip(&gt) {
            assert!(
                (a - b).abs() <= 2_000,
                "step {step}: entry TTLs {a} vs {b} ms"
            );
        }
        assert_eq!(
            fast_warnings.load(Ordering::SeqCst),
            general_warnings.load(Ordering::SeqCst),
            "step {step}: soft-limit warnings differ"
        );
    }
    assert!(
        commits > 50,
        "the sequence exercised too few commits: {commits}"
    );
    assert!(
        blocked > 10,
        "the sequence never reached the budget: {blocked} blocks"
    );
    // Each store's scripts read the ledger's hash with HMGET: the fast
    // paths ask for 'h' and the reservation, the general code for 'tracks'
    // first. The fast
    // store must mostly take its fast path (not always: renewals, expiries
    // and pauses need the general code), the general store never.
    let lines = monitor.stop();
    let reads = |prefix: &str, general: bool| {
        let fields = if general {
            "\"tracks\" \"h\""
        } else {
            "\"h\" \"r:"
        };
        let read = format!("\"HMGET\" \"{prefix}:{{fp:api:{principal}}}:meta\" {fields}");
        lines.iter().filter(|l| l.contains(&read)).count()
    };
    let (fast_fast, fast_general) = (reads("fast", false), reads("fast", true));
    assert_eq!(
        reads("general", false),
        0,
        "the general store took a fast path"
    );
    assert!(
        reads("general", true) > 1_000,
        "MONITOR saw too little: {}",
        reads("general", true)
    );
    assert!(
        fast_fast > 2 * fast_general,
        "fast paths taken {fast_fast} times, general code {fast_general} times"
    );
}
