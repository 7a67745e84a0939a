//! The operator CLI as a real process, on a real redis-server (testkit),
//! directly on the store and through a running service.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use budgetgate::store::redis::RedisStore;
use budgetgate::{dec, Engine, Ledger};
use common::*;
use serde_json::Value;
use testkit::redis_server::RedisServer;

static REDIS: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

fn direct(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BUDGETGATE_REDIS_URL", REDIS.url()),
        ("BUDGETGATE_REDIS_PREFIX", prefix.to_owned()),
    ]
}

fn run(args: &[&str], env: &[(&'static str, String)]) -> (i32, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cli(args, &env)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn pause_through_the_cli_is_seen_by_the_service_on_its_next_request() {
    let prefix = unique("clipause");
    let s = Service::start(Some((&REDIS.url(), &prefix)), "");
    let ns = unique("ns");
    set_budget(&s, &ns, "chat", "*", r#"[{"max_spend":"5"}]"#);
    let check = format!(r#"{{"ledger":{},"amount":"1"}}"#, ledger(&ns, "chat", "u"));
    assert_eq!(post(&s, "/v1/check", SPEND, &check).0, 200);
    let (code, out, err) = run(&["pause", &ns], &direct(&prefix));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("paused namespace {ns}")), "{out}");
    let (code, d) = post(&s, "/v1/check", SPEND, &check);
    assert_eq!(
        (code, d["reason"].as_str()),
        (423, Some("PAUSED")),
        "the very next request: {d}"
    );
    let (code, out, _) = run(&["--json", "paused"], &direct(&prefix));
    assert_eq!(code, 0);
    assert_eq!(json(&out), serde_json::json!([{"namespace": ns}]));
    assert_eq!(run(&["resume", &ns], &direct(&prefix)).0, 0);
    assert_eq!(post(&s, "/v1/check", SPEND, &check).0, 200);
}

#[test]
fn commands_print_tables_and_json_directly_on_the_store() {
    let prefix = unique("clidirect");
    let env = direct(&prefix);
    let ns = unique("ns");
    let target = format!("{ns}:chat@user:*");
    let (code, out, err) = run(
        &[
            "budgets",
            "set",
            &target,
            "--cap",
            "2/daily",
            "--cap",
            "10/monthly",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("stored {target} = 2/daily, 10/monthly")),
        "{out}"
    );
    let (code, out, _) = run(&["--json", "budgets", "list"], &env);
    assert_eq!(code, 0);
    let list = json(&out);
    assert_eq!(list[0]["principal"], "user:*");
    assert_eq!(list[0]["budgets"][1]["max_spend"], "10");
    let (_, out, _) = run(&["budgets", "list"], &env);
    assert!(out.starts_with("TARGET") && out.contains(&target), "{out}");

    // A library engine on the same store spends under the operator's budget.
    let store = RedisStore::builder(&REDIS.url())
        .prefix(prefix.clone())
        .build()
        .unwrap();
    let engine = Engine::builder().store(store).shared_budgets(true).build();
    let (u1, u2) = (
        Ledger::new(ns.as_str(), "chat", "user:1"),
        Ledger::new(ns.as_str(), "chat", "user:2"),
    );
    assert!(engine.check(&u1, dec!(1.5)).is_allowed());
    assert!(engine.check(&u2, dec!(0.5)).is_allowed());
    assert!(
        engine.check(&u1, dec!(0.6)).is_blocked(),
        "the daily cap of 2"
    );

    let (code, out, _) = run(&["status", &format!("{ns}:chat@user:1")], &env);
    assert_eq!(code, 0);
    assert!(
        out.contains("remaining  0.5") && out.contains("CAP"),
        "{out}"
    );
    let (_, out, _) = run(&["--json", "status", &format!("{ns}:chat@user:1")], &env);
    let st = json(&out);
    assert_eq!(
        (st["spent_in_window"].as_str(), st["remaining"].as_str()),
        (Some("1.5"), Some("0.5"))
    );

    let (code, out, _) = run(&["--json", "ledgers", "--limit", "10000"], &env);
    assert_eq!(code, 0);
    let rows: Vec<Value> = json(&out)
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ledger"]["namespace"] == ns.as_str())
        .cloned()
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0]["ledger"]["principal"], "user:1",
        "most utilised first"
    );
    let (_, out, _) = run(&["ledgers"], &env);
    assert!(
        out.starts_with("LEDGER") && out.contains("75%") && out.contains("25%"),
        "{out}"
    );

    let (code, out, _) = run(&["reset", &format!("{ns}:chat@user:1")], &env);
    assert_eq!(code, 0);
    assert!(out.contains("forgot 1.5 committed"), "{out}");
    assert!(
        engine.check(&u1, dec!(2)).is_allowed(),
        "reset: the whole cap is back"
    );

    let (_, out, _) = run(
        &["--json", "watch", "--count", "2", "--interval", "0.1"],
        &env,
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(json(out.lines().next().unwrap())["ledgers"].is_array());
    let (code, out, _) = run(&["watch", "--count", "1"], &env);
    assert_eq!(code, 0);
    assert!(
        out.contains("budgetgate watch") && out.contains("LEDGER") && out.contains("RESETS"),
        "{out}"
    );

    assert_eq!(run(&["budgets", "rm", &target], &env).0, 0);
    assert!(
        within(Duration::from_secs(1), || engine
            .check(&u2, dec!(0.1))
            .is_blocked())
        .is_some(),
        "removed: no budget left (deny)"
    );
    // Exit codes.
    assert_eq!(
        run(&["status", &format!("{ns}:chat@user:1")], &env).0,
        3,
        "no budget applies: not found"
    );
    assert_eq!(run(&["budgets", "rm", &target], &env).0, 3);
    assert_eq!(run(&["status", "no-at-sign"], &env).0, 2);
    assert_eq!(run(&["ledgers"], &[]).0, 2, "no store named");
    assert_eq!(
        run(
            &["budgets", "set", &target, "--cap", "1.0000000001/daily"],
            &env
        )
        .0,
        2
    );
}

#[test]
fn commands_through_a_running_service() {
    let prefix = unique("cliremote");
    let s = Service::start(Some((&REDIS.url(), &prefix)), "");
    let ns = unique("ns");
    let server = |key: &str| {
        vec![
            ("BUDGETGATE_SERVER", s.base.clone()),
            ("BUDGETGATE_API_KEY", key.to_owned()),
        ]
    };
    let target = format!("{ns}:chat@org");
    let (code, out, err) = run(
        &["budgets", "set", &target, "--cap", "3/unbounded"],
        &server(ADMIN),
    );
    assert_eq!(code, 0, "{out}{err}");
    let check = format!(
        r#"{{"ledger":{},"amount":"1"}}"#,
        ledger(&ns, "chat", "org")
    );
    assert_eq!(post(&s, "/v1/check", SPEND, &check).0, 200);
    let (code, out, _) = run(&["--json", "status", &target], &server(READ));
    assert_eq!(code, 0);
    assert_eq!(json(&out)["remaining"], "2");
    let (_, out, _) = run(&["status"], &server(READ));
    assert!(
        out.contains("LEDGER") && out.contains("nothing is paused"),
        "{out}"
    );
    assert_eq!(
        run(&["pause", &target], &server(READ)).0,
        4,
        "read key: refused"
    );
    assert_eq!(
        run(&["ledgers"], &server("wrong")).0,
        4,
        "wrong key: refused"
    );
    assert_eq!(run(&["pause", &target], &server(ADMIN)).0, 0);
    assert_eq!(post(&s, "/v1/check", SPEND, &check).0, 423);
    assert_eq!(run(&["resume", &target], &server(ADMIN)).0, 0);
    let (code, out, _) = run(&["--json", "reset", &target], &server(ADMIN));
    assert_eq!(code, 0);
    let r = json(&out);
    assert_eq!(
        (r["reset_by"].as_str(), r["committed"].as_str()),
        (Some("ops"), Some("1"))
    );
    assert_eq!(run(&["--json", "budgets", "list"], &server(READ)).0, 0);
    assert_eq!(run(&["budgets", "rm", &target], &server(ADMIN)).0, 0);
}

#[test]
fn doctor_reports_an_evicting_redis() {
    let lru = RedisServer::start_with_args(&["--maxmemory-policy", "allkeys-lru"]);
    let (code, out, _) = cli(&["doctor", "--redis-url", &lru.url()], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("CHECK"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("maxmemory-policy"))
        .unwrap();
    assert!(
        line.contains("FAIL") && line.contains("allkeys-lru"),
        "{out}"
    );
    let (_, out, _) = cli(&["--json", "doctor", "--redis-url", &lru.url()], &[]);
    let report = json(&out);
    assert_eq!(report["ok"], false);

    let (code, out, _) = cli(&["--json", "doctor", "--redis-url", &REDIS.url()], &[]);
    let report = json(&out);
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["ok"], true);
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "reachable",
            "version",
            "maxmemory-policy",
            "persistence",
            "latency"
        ]
    );
    let (code, _, _) = cli(&["doctor", "--redis-url", "redis://127.0.0.1:1"], &[]);
    assert_eq!(code, 1, "unreachable");
}

#[test]
fn help_everywhere() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["status", "--help"],
        vec!["ledgers", "--help"],
        vec!["budgets", "--help"],
        vec!["budgets", "set", "--help"],
        vec!["pause", "--help"],
        vec!["resume", "--help"],
        vec!["reset", "--help"],
        vec!["watch", "--help"],
        vec!["doctor", "--help"],
    ] {
        let (code, out, _) = cli(&args, &[]);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage: budgetgate"), "{args:?}: {out}");
    }
    assert_eq!(cli(&["no-such-command"], &[]).0, 2);
}
