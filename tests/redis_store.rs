//! The Redis store against a real `redis-server`: faults, precision, key
//! encoding and secrets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use budgetgate::store::redis::RedisStore;
use budgetgate::{BlockReason, Budget, Decimal, Engine, Ledger, Status};
use rust_decimal_macros::dec;
use testkit::redis_server::RedisServer;

fn engine(server: &RedisServer, timeout: Duration) -> Engine {
    Engine::new(
        RedisStore::builder(&server.url())
            .timeout(timeout)
            .build()
            .unwrap(),
    )
}

/// Redis killed mid-run: StoreError decisions within the timeout (fail-closed
/// blocks, fail-open allows), sync and async, no panic, no hang; restarted
/// (empty: these servers persist nothing): the store refuses to count from
/// zero until told to, then the same engine works again.
#[test]
fn killed_and_restarted_server() {
    let mut server = RedisServer::start();
    let store = Arc::new(
        RedisStore::builder(&server.url())
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    let engine = Engine::builder().shared_store(store.clone()).build();
    let closed = Ledger::new("faults", "api", "closed");
    let open = Ledger::new("faults", "api", "open");
    engine.set_budget(&closed, Budget::lifetime(dec!(100)).unwrap());
    engine.set_budget(&open, Budget::lifetime(dec!(100)).unwrap().fail_open());
    assert!(engine.check(&closed, dec!(1)).is_allowed());

    server.kill();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let d = engine.check(&closed, dec!(1));
        assert_eq!(
            (d.status(), d.reason()),
            (Status::Block, Some(BlockReason::StoreError)),
            "{d}"
        );
        let d = engine.check(&open, dec!(1));
        assert_eq!(
            (d.status(), d.reason()),
            (Status::Allow, Some(BlockReason::StoreError)),
            "{d}"
        );
        let d = rt.block_on(engine.check_async(&closed, dec!(1)));
        assert_eq!(d.reason(), Some(BlockReason::StoreError));
        let err = engine.reserve(&closed, dec!(1)).unwrap_err();
        assert_eq!(err.decision().reason(), Some(BlockReason::StoreError));
        // Bounded by the timeout (300 ms per operation, 4 operations), with
        // a wide margin: this asserts "no hang", not speed.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    server.restart();
    // The restarted server lost every budget: refused, not counted anew.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = engine.check(&closed, dec!(1));
        assert!(d.is_blocked(), "{d}");
        if d.detail()
            .unwrap_or_default()
            .contains("lost budgetgate's data")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the reset was not detected: {d}");
        std::thread::sleep(Duration::from_millis(50));
    }
    store.accept_reset();
    // Sync calls (blocking connections) and async calls (the shared async
    // connection) reconnect independently; each recovers.
    wait_until_allowed(&engine, &rt, &closed);
}

/// Waits (at most 10 s) until a check on `ledger` is allowed again, first
/// on the sync path, then on the async one.
fn wait_until_allowed(engine: &Engine, rt: &tokio::runtime::Runtime, ledger: &Ledger) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for path in ["sync", "async"] {
        loop {
            let d = if path == "sync" {
                engine.check(ledger, dec!(1))
            } else {
                rt.block_on(engine.check_async(ledger, dec!(1)))
            };
            if d.is_allowed() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{path} calls never recovered: {d}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A hung Redis (SIGSTOP: connections open, nothing answers) gives
/// StoreError decisions within the timeout, sync and async, then recovers.
/// A request that timed out may still run when Redis resumes; that can only
/// add spend (never lose it), which the status after recovery shows.
#[test]
fn hung_server_times_out_and_recovers() {
    let server = RedisServer::start();
    let engine = engine(&server, Duration::from_millis(300));
    let ledger = Ledger::new("faults", "api", "hung");
    engine.set_budget(&ledger, Budget::lifetime(dec!(100)).unwrap());
    assert!(engine.check(&ledger, dec!(1)).is_allowed());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(rt
        .block_on(engine.check_async(&ledger, dec!(1)))
        .is_allowed());

    server.freeze();
    for _ in 0..2 {
        let started = Instant::now();
        let d = engine.check(&ledger, dec!(1));
        assert_eq!(d.reason(), Some(BlockReason::StoreError), "{d}");
        assert!(d.is_blocked(), "fail-closed: {d}");
        let d = rt.block_on(engine.check_async(&ledger, dec!(1)));
        assert_eq!(d.reason(), Some(BlockReason::StoreError), "{d}");
        let err = engine.reserve(&ledger, dec!(1)).unwrap_err();
        assert_eq!(err.decision().reason(), Some(BlockReason::StoreError));
        // Three operations of 300 ms each, with a wide margin: "no hang".
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
    }
    server.thaw();

    wait_until_allowed(&engine, &rt, &ledger);
    let spent = engine.status(&ledger).unwrap().committed();
    assert!(
        spent >= dec!(4),
        "two before, two after the freeze: {spent}"
    );
}

/// 100,000 spends of 0.000001 total exactly 0.1 (64 concurrent tasks).
#[test]
fn hundred_thousand_micro_spends_are_exact() {
    let server = RedisServer::start();
    let engine = Arc::new(engine(&server, Duration::from_secs(5)));
    let ledger = Ledger::new("precision", "micro", "p");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let (engine, ledger) = (engine.clone(), ledger.clone());
                tokio::spawn(async move {
                    let n = 100_000 / 64 + usize::from(t < 100_000 % 64);
                    for _ in 0..n {
                        assert!(engine
                            .check_async(&ledger, dec!(0.000001))
                            .await
                            .is_allowed());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(engine.status(&ledger).unwrap().committed(), dec!(0.1));
}

#[test]
fn point_one_plus_point_two_fits_point_three() {
    let server = RedisServer::start();
    let engine = engine(&server, Duration::from_secs(2));
    let ledger = Ledger::new("precision", "classic", "p");
    engine.set_budget(&ledger, Budget::lifetime(dec!(0.3)).unwrap());
    assert!(engine.check(&ledger, dec!(0.1)).is_allowed());
    let d = engine.check(&ledger, dec!(0.2));
    assert!(d.is_allowed(), "{d}");
    assert_eq!(d.spent_in_window(), dec!(0.3));
    assert!(engine.check(&ledger, dec!(0.000000001)).is_blocked());
}

/// The largest amount and a large running total stay exact.
#[test]
fn large_amounts_are_exact() {
    let server = RedisServer::start();
    let engine = engine(&server, Duration::from_secs(2));
    let ledger = Ledger::new("precision", "large", "p");
    let max = dec!(1000000000000000); // 10^15, the largest amount
    engine.set_budget(&ledger, Budget::lifetime(max).unwrap());
    assert!(engine
        .check(&ledger, dec!(999999999999999.999999999))
        .is_allowed());
    let d = engine.check(&ledger, dec!(0.000000001));
    assert!(d.is_allowed(), "{d}");
    assert_eq!(d.spent_in_window(), max);
    assert!(engine.check(&ledger, dec!(0.000000001)).is_blocked());
}

/// Ledgers whose parts contain separators, hash-tag braces, globs, spaces,
/// newlines and non-ASCII stay distinct.
#[test]
fn awkward_ledger_parts_stay_distinct() {
    let server = RedisServer::start();
    let engine = engine(&server, Duration::from_secs(2));
    let parts = [
        ("a:b", "c", "d"),
        ("a", "b:c", "d"),
        ("a", "b", "c:d"),
        ("{a}", "b", "c"),
        ("a", "{b", "c}"),
        ("*", "*", "*"),
        ("a", "b", "c@d"),
        ("a@b", "c", "d"),
        ("a b", "c", "d"),
        ("a\nb", "c", "d"),
        ("é", "ü", "日本"),
        ("a%3Ab", "c", "d"),
        ("", "", ""),
    ];
    for p in parts {
        let ledger = Ledger::from(p);
        engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
        let d = engine.check(&ledger, dec!(1));
        assert!(
            d.is_allowed(),
            "{ledger:?} shares state with another ledger: {d}"
        );
    }
    for p in parts {
        assert!(
            engine.check(&Ledger::from(p), dec!(1)).is_blocked(),
            "{p:?}"
        );
    }
}

/// The password of a URL never shows in Debug output, URLs or errors.
#[test]
fn password_never_printed() {
    let secret = "s3cr3t-Pa55";
    let server = RedisServer::start_with_password(Some(secret));
    let good = RedisStore::connect(&server.url()).unwrap();
    good.ping_blocking().expect("authenticated");
    assert!(!format!("{good:?}").contains(secret));
    assert!(!good.url().contains(secret));
    let engine = Engine::new(good);
    assert!(!format!("{engine:?}").contains(secret));

    let wrong = format!("redis://:{secret}-wrong@127.0.0.1:{}", server.port());
    let store = RedisStore::builder(&wrong)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = store.ping_blocking().unwrap_err();
    for shown in [format!("{err}"), format!("{err:?}"), format!("{store:?}")] {
        assert!(!shown.contains(secret), "secret leaked: {shown}");
    }
    let engine = Engine::new(store);
    let ledger = Ledger::new("secrets", "api", "p");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
    let d = engine.check(&ledger, dec!(0.5));
    assert_eq!(d.reason(), Some(BlockReason::StoreError));
    let json = serde_json::to_string(&d).unwrap();
    assert!(
        !json.contains(secret) && !d.message().contains(secret),
        "{json}"
    );

    let bad = budgetgate::store::redis::RedisStore::connect(&format!("redis://:{secret}@[bad"))
        .unwrap_err();
    assert!(!format!("{bad} {bad:?}").contains(secret), "{bad}");
}

/// The store's own connections (sync and async): scripts the server lost
/// (`SCRIPT FLUSH`, a restart) are sent again, alone and in a pipeline, and
/// every call counts once; an ACL user, a database number and a Unix socket
/// from the URL are honoured, and a refused password is reported without it.
#[test]
fn lean_connections_reload_scripts_and_honour_the_url() {
    let server = RedisServer::start_with_password(Some("admin-pw"));
    let admin = redis::Client::open(server.url()).unwrap();
    let mut admin = admin.get_connection().unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on", ">alice-pw", "~*", "&*", "+@all"][..])
        .query(&mut admin)
        .unwrap();
    let tcp = format!("redis://alice:alice-pw@127.0.0.1:{}/3", server.port());
    let unix = format!(
        "redis+unix://{}?db=3&user=alice&pass=alice-pw",
        server.socket_path().display()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tcp, unix) = (
        Engine::new(RedisStore::connect(&tcp).unwrap()),
        Engine::new(RedisStore::connect(&unix).unwrap()),
    );
    let user = Ledger::new("urls", "gpt", "user:1");
    let project = Ledger::new("urls", "gpt", "project");
    for engine in [&tcp, &unix] {
        engine.set_budget(&user, Budget::lifetime(dec!(10)).unwrap());
        engine.set_budget(&project, Budget::lifetime(dec!(100)).unwrap());
    }
    let flush = |admin: &mut redis::Connection| {
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(admin).unwrap();
    };
    let spent = |e: &Engine, l: &Ledger| e.status(l).unwrap().committed();

    flush(&mut admin);
    tcp.reserve(&user, dec!(1))
        .unwrap()
        .commit(dec!(1))
        .unwrap();
    flush(&mut admin);
    unix.reserve(&user, dec!(1))
        .unwrap()
        .commit(dec!(0.5))
        .unwrap();
    // A hierarchy's commit settles the other ledgers in one pipeline.
    let both = [user.clone(), project.clone()];
    let r = tcp.reserve_all(&both, dec!(2)).unwrap();
    flush(&mut admin);
    r.commit(dec!(2)).unwrap();
    flush(&mut admin);
    rt.block_on(async {
        let r = unix.reserve_async(&user, dec!(1)).await.unwrap();
        r.commit_async(dec!(0.25)).await.unwrap();
    });
    // The async connection: single calls and a hierarchy's pipelined
    // commit after a flush, on TCP and on the Unix socket.
    for engine in [&tcp, &unix] {
        flush(&mut admin);
        rt.block_on(async {
            let r = engine.reserve_async(&user, dec!(1)).await.unwrap();
            flush(&mut admin);
            r.commit_async(dec!(0.5)).await.unwrap();
            let r = engine.reserve_all_async(&both, dec!(1)).await.unwrap();
            flush(&mut admin);
            r.commit_async(dec!(1)).await.unwrap();
        });
    }
    // Each call counted once, and both connections see the same ledger.
    assert_eq!(spent(&tcp, &user), dec!(6.75));
    assert_eq!(spent(&unix, &user), dec!(6.75));
    assert_eq!(spent(&unix, &project), dec!(4));

    // Everything went to database 3.
    let keys = |admin: &mut redis::Connection, db: i64| -> Vec<String> {
        let _: () = redis::cmd("SELECT").arg(db).query(admin).unwrap();
        redis::cmd("KEYS").arg("budgetgate:*").query(admin).unwrap()
    };
    assert!(keys(&mut admin, 0).is_empty());
    assert!(keys(&mut admin, 3)
        .iter()
        .any(|k| k.starts_with("budgetgate:{urls:gpt:user%3A1}")));

    // A wrong ACL password: a StoreError naming the server's refusal.
    let wrong =
        RedisStore::connect(&format!("redis://alice:nope@127.0.0.1:{}/3", server.port())).unwrap();
    let errors = [
        wrong.ping_blocking().unwrap_err().to_string(),
        rt.block_on(wrong.ping()).unwrap_err().to_string(),
    ];
    for err in errors {
        assert!(err.contains("WRONGPASS"), "{err}");
        assert!(!err.contains("nope"), "{err}");
    }
}

/// Async calls of many tasks share one pipelined connection: each reply
/// reaches the call that asked (every ledger ends with exactly its own
/// spend), and the store opened one connection for them, not one per task.
#[test]
fn async_calls_share_one_connection_and_get_their_own_replies() {
    let server = RedisServer::start();
    let engine = Arc::new(engine(&server, Duration::from_secs(5)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients = || -> usize {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &server.port().to_string(), "CLIENT", "LIST"])
            .output()
            .expect("redis-cli (installed with redis-server)");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let before = clients();
    let tasks: Vec<_> = (0..64u32)
        .map(|task| {
            let engine = engine.clone();
            rt.spawn(async move {
                let ledger = Ledger::new("mux", "model", format!("task:{task}"));
                engine.set_budget(&ledger, Budget::lifetime(dec!(1000)).unwrap());
                // Task t spends t/1000 per call, 20 times: distinct totals.
                let each = Decimal::new(i64::from(task) + 1, 3);
                for _ in 0..20 {
                    let r = engine.reserve_async(&ledger, each).await.unwrap();
                    r.commit_async(each).await.unwrap();
                }
                (ledger, each * Decimal::from(20))
            })
        })
        .collect();
    let results: Vec<_> = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (ledger, expected) in results {
        assert_eq!(
            engine.status(&ledger).unwrap().committed(),
            expected,
            "{ledger}"
        );
    }
    // The store's async connection (the sync status calls above add one).
    let opened = clients() - before;
    assert!(opened <= 2, "{opened} connections for 64 tasks");
}

/// Every key of a ledger shares one hash tag, carries a TTL, and the keys of
/// distinct ledgers never overlap.
#[test]
fn keys_share_a_hash_tag_and_expire() {
    let server = RedisServer::start();
    let engine = engine(&server, Duration::from_secs(2));
    let ledger = Ledger::new("keys", "model", "user:1");
    engine.set_budget(
        &ledger,
        Budget::rolling(dec!(10), Duration::from_secs(60)).unwrap(),
    );
    assert!(engine.check(&ledger, dec!(1)).is_allowed());
    let r = engine.reserve(&ledger, dec!(1)).unwrap();
    r.commit(dec!(0.5)).unwrap();
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &server.port().to_string(),
            "--scan",
            "--pattern",
            "budgetgate:*",
        ])
        .output()
        .expect("redis-cli (installed with redis-server)");
    let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    // The store's epoch (reset detection) and the key layout's version are
    // the keys that must never expire; they belong to no ledger.
    for own in ["budgetgate:epoch", "budgetgate:layout"] {
        let at = keys.iter().position(|k| k == own);
        let key = keys.remove(at.unwrap_or_else(|| panic!("no {own} key")));
        let ttl = std::process::Command::new("redis-cli")
            .args(["-p", &server.port().to_string(), "PTTL", &key])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&ttl.stdout).trim(), "-1", "{own}");
    }
    for kind in [":meta", ":e:r60000000", ":d:"] {
        assert!(
            keys.iter().any(|k| k.contains(kind)),
            "no {kind} key in {keys:?}"
        );
    }
    for key in &keys {
        assert!(
            key.starts_with("budgetgate:{keys:model:user%3A1}:"),
            "{key}"
        );
        let ttl = std::process::Command::new("redis-cli")
            .args(["-p", &server.port().to_string(), "PTTL", key])
            .output()
            .unwrap();
        let ttl: i64 = String::from_utf8_lossy(&ttl.stdout).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
        // A ledger with only a 60 s window is forgotten within a day or so of
        // its last write (60 s + a margin of 1 day + 1 h), not kept 400 days.
        assert!(ttl <= 60_000 + 90_000_000, "{key} kept too long ({ttl} ms)");
    }
}

#[test]
fn amounts_above_the_largest_are_refused() {
    // The documented range: 10^15 units per amount; one nano-unit more is refused.
    assert_eq!(
        budgetgate::amount::MAX_AMOUNT_NANOS,
        1_000_000_000_000_000 * 1_000_000_000
    );
    assert!(Budget::lifetime(dec!(1000000000000000.000000001)).is_err());
}

/// rediss:// against a TLS-only redis-server, trusting its CA.
#[test]
fn tls_connection() {
    let server = RedisServer::start_tls();
    let store = RedisStore::builder(&server.url())
        .root_certificate_pem(server.ca_pem())
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    store.ping_blocking().expect("TLS handshake and PING");
    let engine = Engine::new(store);
    let ledger = Ledger::new("tls", "api", "p");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
    assert!(engine.check(&ledger, dec!(1)).is_allowed());
    assert!(engine.check(&ledger, dec!(0.1)).is_blocked());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let other = Ledger::new("tls", "api", "async");
    engine.set_budget(&other, Budget::lifetime(dec!(1)).unwrap());
    assert!(rt
        .block_on(engine.check_async(&other, dec!(1)))
        .is_allowed());
    assert!(rt
        .block_on(engine.check_async(&other, dec!(0.1)))
        .is_blocked());
    // New connections over TLS, async ones included, pass the same server
    // checks as plain ones: a server that may evict budgets is refused.
    let admin = redis::Client::build_with_tls(
        server.url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(server.ca_pem()),
        },
    )
    .unwrap();
    let mut con = admin.get_connection().unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query::<()>(&mut con)
        .unwrap();
    let evicting = Engine::new(
        RedisStore::builder(&server.url())
            .root_certificate_pem(server.ca_pem())
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap(),
    );
    evicting.set_budget(&other, Budget::lifetime(dec!(100)).unwrap());
    for d in [
        evicting.check(&other, dec!(0.1)),
        rt.block_on(evicting.check_async(&other, dec!(0.1))),
    ] {
        assert!(d.is_blocked(), "{d}");
        assert!(
            d.detail().unwrap_or_default().contains("allkeys-lru"),
            "{d}"
        );
    }
    // Without trusting the CA the handshake fails: a StoreError, no panic.
    let untrusted = RedisStore::builder(&server.url())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(untrusted.ping_blocking().is_err());
}

/// Keys live as long as the ledger's longest window can still count what
/// was written: a daily-only ledger about two days after its last write, a
/// lifetime cap the idle TTL.
#[test]
fn ttl_follows_the_longest_window() {
    let server = RedisServer::start();
    let engine = engine(&server, Duration::from_secs(2));
    let pttl = |ledger: &Ledger| {
        let key = format!(
            "budgetgate:{{ttl:{}:{}}}:meta",
            ledger.resource(),
            ledger.principal()
        );
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &server.port().to_string(), "PTTL", &key])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let daily = Ledger::new("ttl", "daily", "p");
    engine.set_budget(
        &daily,
        Budget::new(dec!(1), budgetgate::Window::daily()).unwrap(),
    );
    assert!(engine.check(&daily, dec!(0.1)).is_allowed());
    let ttl = pttl(&daily);
    assert!(
        (86_400_000..=86_400_000 + 90_000_000).contains(&ttl),
        "daily ttl {ttl}"
    );
    let lifetime = Ledger::new("ttl", "lifetime", "p");
    engine.set_budget(&lifetime, Budget::lifetime(dec!(1)).unwrap());
    assert!(engine.check(&lifetime, dec!(0.1)).is_allowed());
    let ttl = pttl(&lifetime);
    assert!(ttl > 399 * 86_400_000, "lifetime ttl {ttl}");
}
