//! A fleet on one Redis: operator budgets set through one service instance
//! are enforced by a second instance and by a plain library `Engine` within
//! a second; two instances with 8 concurrent clients each never overspend.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use budgetgate::store::redis::RedisStore;
use budgetgate::{dec, Engine, Ledger};
use common::*;
use testkit::redis_server::RedisServer;

static REDIS: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

fn engine(prefix: &str) -> Engine {
    let store = RedisStore::builder(&REDIS.url())
        .prefix(prefix.to_owned())
        .build()
        .expect("store");
    Engine::builder()
        .store(store)
        .shared_budgets_every(Duration::from_millis(100))
        .build()
}

#[test]
fn a_budget_set_through_the_api_applies_everywhere_within_a_second() {
    let prefix = unique("fleet");
    let a = Service::start(Some((&REDIS.url(), &prefix)), "");
    let b = Service::start(Some((&REDIS.url(), &prefix)), "");
    let lib = engine(&prefix);
    let ns = unique("ns");
    let l = ledger(&ns, "chat", "user:7");
    let check = |s: &Service, amount: &str| {
        post(
            s,
            "/v1/check",
            SPEND,
            &format!(r#"{{"ledger":{l},"amount":"{amount}"}}"#),
        )
    };
    let lib_ledger = Ledger::new(ns.as_str(), "chat", "user:7");
    assert_eq!(check(&b, "0.1").1["reason"], "NO_BUDGET", "no budget yet");
    assert!(lib.check(&lib_ledger, dec!(0.1)).is_blocked());

    set_budget(
        &a,
        &ns,
        "chat",
        "user:*",
        r#"[{"max_spend":"1","window":"daily"}]"#,
    );
    let seen_by_b = within(Duration::from_secs(1), || check(&b, "0").0 == 200);
    assert!(
        seen_by_b.is_some(),
        "instance B applies the budget within 1 s"
    );
    let seen_by_lib = within(Duration::from_secs(1), || {
        lib.budget_for(&lib_ledger).map(|b| b.max_spend()) == Some(dec!(1))
    });
    assert!(
        seen_by_lib.is_some(),
        "a library engine applies it within 1 s"
    );
    // Enforced, across all three, on one ledger.
    assert_eq!(check(&b, "0.6").0, 200);
    assert!(lib.check(&lib_ledger, dec!(0.3)).is_allowed());
    assert_eq!(check(&a, "0.2").0, 402, "0.9 + 0.2 > 1");
    assert!(lib.check(&lib_ledger, dec!(0.2)).is_blocked());
    assert_eq!(check(&a, "0.1").0, 200, "equality allows");

    // A change (lower cap) applies within a second too; removal hands back.
    set_budget(
        &a,
        &ns,
        "chat",
        "user:7",
        r#"[{"max_spend":"5","window":"daily"}]"#,
    );
    assert!(
        within(Duration::from_secs(1), || check(&b, "3").0 == 200).is_some(),
        "the exact ledger's budget (5) beats the pattern's (1)"
    );
    assert!(within(Duration::from_secs(1), || {
        lib.budget_for(&lib_ledger).map(|b| b.max_spend()) == Some(dec!(5))
    })
    .is_some());
    eprintln!("seen by B after {seen_by_b:?}, by the engine after {seen_by_lib:?}");
}

#[test]
fn two_instances_eight_clients_each_never_overspend() {
    let prefix = unique("race");
    let a = Arc::new(Service::start(Some((&REDIS.url(), &prefix)), ""));
    let b = Arc::new(Service::start(Some((&REDIS.url(), &prefix)), ""));
    let ns = unique("ns");
    set_budget(
        &a,
        &ns,
        "llm",
        "team",
        r#"[{"max_spend":"10","window":"unbounded"}]"#,
    );
    assert!(within(Duration::from_secs(1), || {
        status(&b, &ns, "llm", "team").0 == 200
    })
    .is_some());
    let l = ledger(&ns, "llm", "team");
    let allowed = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (l, allowed) = (l.clone(), allowed.clone());
        threads.push(std::thread::spawn(move || loop {
            if i % 4 < 2 {
                let (code, d) = post(
                    &s,
                    "/v1/check",
                    SPEND,
                    &format!(r#"{{"ledger":{l},"amount":"0.1"}}"#),
                );
                match code {
                    200 => allowed.fetch_add(1, Ordering::Relaxed),
                    402 => return,
                    other => panic!("{other}: {d}"),
                };
            } else {
                let (code, r) = post(
                    &s,
                    "/v1/reserve",
                    SPEND,
                    &format!(r#"{{"ledger":{l},"amount":"0.2"}}"#),
                );
                match code {
                    200 => {}
                    402 => return,
                    other => panic!("{other}: {r}"),
                }
                let id = r["reservation_id"].as_str().unwrap();
                let (code, c) = post(
                    &s,
                    "/v1/commit",
                    SPEND,
                    &format!(r#"{{"reservation_id":"{id}","actual":"0.1"}}"#),
                );
                assert_eq!(code, 200, "{c}");
                allowed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in threads {
        t.join().expect("a client failed");
    }
    // Every client stopped at a refusal; whatever remains is < 0.2 (a
    // reservation's worst case) — and nothing was overspent.
    let (_, st) = status(&a, &ns, "llm", "team");
    let committed: rust_decimal::Decimal = st["committed"].as_str().unwrap().parse().unwrap();
    let n = allowed.load(Ordering::Relaxed);
    assert_eq!(
        committed,
        rust_decimal::Decimal::new(n as i64, 1),
        "totals exact: {st}"
    );
    assert!(committed <= dec!(10), "no overspend: {committed}");
    assert!(
        committed >= dec!(9.9),
        "only stopped when (nearly) full: {committed}"
    );
    assert_eq!(st["reserved"], "0", "{st}");
    // The last 0.1 fits a check, on either instance — then nothing does.
    let rest = (dec!(10) - committed) / dec!(0.1);
    for _ in 0..rest.to_string().parse::<u32>().unwrap() {
        assert_eq!(
            post(
                &b,
                "/v1/check",
                SPEND,
                &format!(r#"{{"ledger":{l},"amount":"0.1"}}"#)
            )
            .0,
            200
        );
    }
    assert_eq!(
        post(
            &a,
            "/v1/check",
            SPEND,
            &format!(r#"{{"ledger":{l},"amount":"0.1"}}"#)
        )
        .0,
        402
    );
    let (_, st) = status(&b, &ns, "llm", "team");
    assert_eq!(st["committed"], "10", "{st}");
}

#[test]
fn a_reservation_settles_on_any_replica_once() {
    let prefix = unique("anyrep");
    let a = Service::start(Some((&REDIS.url(), &prefix)), "");
    let b = Service::start(Some((&REDIS.url(), &prefix)), "");
    let ns = unique("ns");
    set_budget(
        &a,
        &ns,
        "llm",
        "u",
        r#"[{"max_spend":"10","window":"daily"}]"#,
    );
    assert!(
        within(Duration::from_secs(1), || status(&b, &ns, "llm", "u").0
            == 200)
        .is_some()
    );
    let l = ledger(&ns, "llm", "u");
    let reserve = |s: &Service, amount: &str| {
        let (code, r) = post(
            s,
            "/v1/reserve",
            SPEND,
            &format!(r#"{{"ledger":{l},"amount":"{amount}"}}"#),
        );
        assert_eq!(code, 200, "{r}");
        r["reservation_id"].as_str().unwrap().to_owned()
    };
    let id = reserve(&a, "0.5");
    let commit = format!(r#"{{"reservation_id":"{id}","actual":"0.2"}}"#);
    let on_b = post(&b, "/v1/commit", SPEND, &commit);
    assert_eq!(
        (on_b.0, on_b.1["state"].as_str()),
        (200, Some("committed")),
        "{}",
        on_b.1
    );
    assert_eq!(
        post(&b, "/v1/commit", SPEND, &commit),
        on_b,
        "again on B: the same answer"
    );
    assert_eq!(
        post(&a, "/v1/commit", SPEND, &commit),
        on_b,
        "on A, which made it: the same answer"
    );
    let other = format!(r#"{{"reservation_id":"{id}","actual":"0.3"}}"#);
    assert_eq!(post(&a, "/v1/commit", SPEND, &other).0, 409);
    assert_eq!(
        post(
            &b,
            "/v1/release",
            SPEND,
            &format!(r#"{{"reservation_id":"{id}"}}"#)
        )
        .0,
        409
    );
    let (_, st) = status(&a, &ns, "llm", "u");
    assert_eq!(
        (st["committed"].as_str(), st["reserved"].as_str()),
        (Some("0.2"), Some("0")),
        "charged once: {st}"
    );

    let id = reserve(&a, "0.3");
    let release = format!(r#"{{"reservation_id":"{id}"}}"#);
    let on_b = post(&b, "/v1/release", SPEND, &release);
    assert_eq!(
        (on_b.0, on_b.1["held"].as_bool()),
        (200, Some(true)),
        "{}",
        on_b.1
    );
    assert_eq!(post(&a, "/v1/release", SPEND, &release), on_b);
    let (_, st) = status(&b, &ns, "llm", "u");
    assert_eq!(
        (st["committed"].as_str(), st["reserved"].as_str()),
        (Some("0.2"), Some("0")),
        "{st}"
    );
    // An id no replica made: 404 everywhere.
    let fake = format!(r#"{{"reservation_id":"{}"}}"#, "ab".repeat(24));
    assert_eq!(post(&b, "/v1/release", SPEND, &fake).0, 404);
}

#[test]
fn open_reservations_outlive_the_replica_that_made_them() {
    let prefix = unique("outlive");
    let mut a = Service::start(Some((&REDIS.url(), &prefix)), "");
    let b = Service::start(Some((&REDIS.url(), &prefix)), "");
    let ns = unique("ns");
    set_budget(
        &a,
        &ns,
        "llm",
        "u",
        r#"[{"max_spend":"1","window":"unbounded"}]"#,
    );
    assert!(
        within(Duration::from_secs(1), || status(&b, &ns, "llm", "u").0
            == 200)
        .is_some()
    );
    let l = ledger(&ns, "llm", "u");
    let (_, r) = post(
        &a,
        "/v1/reserve",
        SPEND,
        &format!(r#"{{"ledger":{l},"amount":"0.8"}}"#),
    );
    let id = r["reservation_id"].as_str().unwrap().to_owned();
    assert!(a.terminate().success());
    // Still held after A stopped: fail-closed, nothing was released.
    let (_, st) = status(&b, &ns, "llm", "u");
    assert_eq!(st["reserved"], "0.8", "{st}");
    assert_eq!(
        post(
            &b,
            "/v1/check",
            SPEND,
            &format!(r#"{{"ledger":{l},"amount":"0.3"}}"#)
        )
        .0,
        402
    );
    let (code, c) = post(
        &b,
        "/v1/commit",
        SPEND,
        &format!(r#"{{"reservation_id":"{id}","actual":"0.5"}}"#),
    );
    assert_eq!((code, c["late"].as_bool()), (200, Some(false)), "{c}");
    let (_, st) = status(&b, &ns, "llm", "u");
    assert_eq!(
        (st["committed"].as_str(), st["reserved"].as_str()),
        (Some("0.5"), Some("0")),
        "{st}"
    );
}
