//! The service over real HTTP: the real `budgetgate serve` process on a
//! free port, on the memory store and on a real redis-server (testkit).

mod common;

use std::sync::LazyLock;

use common::*;
use serde_json::Value;
use testkit::redis_server::RedisServer;

static REDIS: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

fn on_redis() -> Service {
    Service::start(Some((&REDIS.url(), &unique("svc"))), "")
}

fn on_memory() -> Service {
    Service::start(None, "")
}

fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

/// Every /v1 endpoint, in the order a client uses them.
fn every_endpoint(s: &Service) {
    let ns = unique("ns");
    let user = ledger(&ns, "chat", "user:1");
    set_budget(
        s,
        &ns,
        "chat",
        "user:*",
        r#"[{"max_spend":"1","window":"daily"}]"#,
    );
    let (code, budgets) = get(s, "/v1/admin/budgets", READ);
    assert_eq!(code, 200);
    assert!(budgets
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["namespace"] == ns.as_str()));

    // check: allowed (200) then refused (402), nothing recorded by the refusal.
    let (code, d) = post(
        s,
        "/v1/check",
        SPEND,
        &format!(r#"{{"ledger":{user},"amount":"0.4"}}"#),
    );
    assert_eq!((code, d["status"].as_str()), (200, Some("ALLOW")), "{d}");
    assert_eq!(d["schema_version"], 1);
    assert_eq!(dec(&d["spent_in_window"]), "0.4".parse().unwrap());
    let (code, d) = post(
        s,
        "/v1/check",
        SPEND,
        &format!(r#"{{"ledger":{user},"amount":0.7}}"#),
    );
    assert_eq!(
        (code, d["reason"].as_str()),
        (402, Some("BUDGET_EXCEEDED")),
        "{d}"
    );

    // reserve → commit (twice: same answer, charged once) ; reserve → release (twice).
    let (code, r) = post(
        s,
        "/v1/reserve",
        SPEND,
        &format!(r#"{{"ledger":{user},"amount":"0.5"}}"#),
    );
    assert_eq!(code, 200, "{r}");
    let id = r["reservation_id"].as_str().unwrap().to_owned();
    let (_, st) = status(s, &ns, "chat", "user:1");
    assert_eq!(dec(&st["reserved"]), "0.5".parse().unwrap());
    let commit = format!(r#"{{"reservation_id":"{id}","actual":"0.1"}}"#);
    let first = post(s, "/v1/commit", SPEND, &commit);
    let second = post(s, "/v1/commit", SPEND, &commit);
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first, second, "a repeated commit answers the same");
    let (code, conflict) = post(
        s,
        "/v1/commit",
        SPEND,
        &format!(r#"{{"reservation_id":"{id}","actual":"0.2"}}"#),
    );
    assert_eq!(code, 409, "{conflict}");
    let (_, st) = status(s, &ns, "chat", "user:1");
    assert_eq!(
        dec(&st["committed"]),
        "0.5".parse().unwrap(),
        "0.4 + 0.1, once: {st}"
    );
    assert_eq!(dec(&st["reserved"]), rust_decimal::Decimal::ZERO);

    let (_, r) = post(
        s,
        "/v1/reserve",
        SPEND,
        &format!(r#"{{"ledger":{user},"amount":"0.3"}}"#),
    );
    let id = r["reservation_id"].as_str().unwrap().to_owned();
    let release = format!(r#"{{"reservation_id":"{id}"}}"#);
    let first = post(s, "/v1/release", SPEND, &release);
    assert_eq!(
        (first.0, first.1["state"].as_str()),
        (200, Some("released"))
    );
    assert_eq!(first, post(s, "/v1/release", SPEND, &release));
    assert_eq!(
        post(
            s,
            "/v1/commit",
            SPEND,
            &format!(r#"{{"reservation_id":"{id}","actual":"0"}}"#)
        )
        .0,
        409
    );
    let (_, st) = status(s, &ns, "chat", "user:1");
    assert_eq!(dec(&st["spent_in_window"]), "0.5".parse().unwrap());

    // A reservation that does not fit: 402, no id.
    let (code, r) = post(
        s,
        "/v1/reserve",
        SPEND,
        &format!(r#"{{"ledger":{user},"amount":"0.6"}}"#),
    );
    assert_eq!((code, &r["reservation_id"]), (402, &Value::Null), "{r}");

    // Hierarchy: all or nothing.
    let org = ledger(&ns, "chat", "org");
    set_budget(
        s,
        &ns,
        "chat",
        "org",
        r#"[{"max_spend":"0.7","window":"unbounded"}]"#,
    );
    let both = format!(r#"{{"ledgers":[{user},{org}],"amount":"0.3"}}"#);
    let (code, d) = post(s, "/v1/check", SPEND, &both);
    assert_eq!(code, 200, "{d}");
    let (code, d) = post(
        s,
        "/v1/check",
        SPEND,
        &format!(r#"{{"ledgers":[{user},{org}],"amount":"0.3"}}"#),
    );
    assert_eq!(code, 402, "user 0.8 + 0.3 > 1: {d}");
    let (_, st) = status(s, &ns, "chat", "org");
    assert_eq!(
        dec(&st["committed"]),
        "0.3".parse().unwrap(),
        "the refused hierarchy charged nothing"
    );

    // ledgers: most utilised first.
    let (code, rows) = get(s, "/v1/ledgers?limit=1000", READ);
    assert_eq!(code, 200);
    let mine: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ledger"]["namespace"] == ns.as_str())
        .collect();
    assert_eq!(mine.len(), 2, "{rows}");
    assert_eq!(
        mine[0]["ledger"]["principal"], "user:1",
        "0.8 of 1 before 0.3 of 0.7"
    );

    // Rate gate: 2 calls per minute, the third is 429 with Retry-After.
    let rate = format!(
        r#"{{"gate":{{"namespace":"{ns}","action":"search","principal":"u"}},"max_calls":2,"window":"1m"}}"#
    );
    assert_eq!(post(s, "/v1/rate", SPEND, &rate).0, 200);
    assert_eq!(post(s, "/v1/rate", SPEND, &rate).0, 200);
    let (code, d) = post(s, "/v1/rate", SPEND, &rate);
    assert_eq!(
        (code, d["reason"].as_str()),
        (429, Some("TOO_MANY_CALLS")),
        "{d}"
    );

    // Pause (423), listed, resume.
    let (code, _) = post(
        s,
        "/v1/admin/pause",
        ADMIN,
        &format!(r#"{{"namespace":"{ns}"}}"#),
    );
    assert_eq!(code, 200);
    let (code, d) = post(
        s,
        "/v1/check",
        SPEND,
        &format!(r#"{{"ledger":{user},"amount":"0"}}"#),
    );
    assert_eq!((code, d["reason"].as_str()), (423, Some("PAUSED")), "{d}");
    let (_, paused) = get(s, "/v1/admin/paused", READ);
    assert!(paused
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["namespace"] == ns.as_str()));
    assert_eq!(
        post(
            s,
            "/v1/admin/resume",
            ADMIN,
            &format!(r#"{{"namespace":"{ns}"}}"#)
        )
        .0,
        200
    );
    assert_eq!(
        post(
            s,
            "/v1/check",
            SPEND,
            &format!(r#"{{"ledger":{user},"amount":"0"}}"#)
        )
        .0,
        200
    );

    // Reset: audited with the key's name and the amount forgotten.
    let (code, r) = post(
        s,
        "/v1/admin/reset",
        ADMIN,
        &format!(r#"{{"ledger":{user}}}"#),
    );
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["reset_by"], "ops");
    assert_eq!(dec(&r["committed"]), "0.8".parse().unwrap());
    let (_, st) = status(s, &ns, "chat", "user:1");
    assert_eq!(
        dec(&st["spent_in_window"]),
        rust_decimal::Decimal::ZERO,
        "{st}"
    );

    // Budget removed: the ledger has none left (404 on status, 402 NO_BUDGET on check).
    let (code, _) = call(
        "DELETE",
        &s.url(&format!(
            "/v1/admin/budgets?namespace={ns}&resource=chat&principal=user:*"
        )),
        Some(ADMIN),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(status(s, &ns, "chat", "user:1").0, 404);
    let (code, d) = post(
        s,
        "/v1/check",
        SPEND,
        &format!(r#"{{"ledger":{user},"amount":"0.1"}}"#),
    );
    assert_eq!((code, d["reason"].as_str()), (402, Some("NO_BUDGET")));

    // Health and metrics (no key needed).
    let (code, h) = call("GET", &s.url("/health"), None, None);
    assert_eq!((code, h["status"].as_str()), (200, Some("healthy")), "{h}");
    let (code, m) = call("GET", &s.url("/metrics"), None, None);
    let m = m.as_str().unwrap_or_default().to_owned();
    assert_eq!(code, 200);
    let value = |series: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{m}"))
    };
    // This process made exactly these: 5 allowed (3 checks, 2 reserves), 3
    // refused on budget (a check, a reserve, a hierarchy), 1 paused.
    assert_eq!(
        value("budgetgate_decisions_total{status=\"BLOCK\",reason=\"BUDGET_EXCEEDED\"}"),
        3.0
    );
    assert_eq!(
        value("budgetgate_decisions_total{status=\"BLOCK\",reason=\"PAUSED\"}"),
        1.0
    );
    assert_eq!(
        value("budgetgate_decisions_total{status=\"ALLOW\",reason=\"none\"}"),
        5.0
    );
    // 0.4 + 0.1 (commit) + 0.3 (hierarchy) + 0 + 0: fixed costs and commits, in nano-units.
    assert_eq!(
        value("budgetgate_spend_committed_nanos_total"),
        800_000_000.0
    );
    assert_eq!(value("budgetgate_resets_total"), 1.0);
    assert_eq!(value("budgetgate_overruns_total"), 0.0);
    assert!(
        m.contains("budgetgate_store_seconds_bucket{op=\"check\""),
        "{m}"
    );
}

#[test]
fn every_endpoint_on_memory() {
    every_endpoint(&on_memory());
}

#[test]
fn every_endpoint_on_redis() {
    let s = on_redis();
    every_endpoint(&s);
    let (_, h) = call("GET", &s.url("/health"), None, None);
    assert_eq!(h["redis"], "connected", "{h}");
    assert!(h["latency_ms"].as_f64().is_some());
}

#[test]
fn security_matrix() {
    let s = on_memory();
    let ns = unique("sec");
    set_budget(&s, &ns, "r", "p", r#"[{"max_spend":"5"}]"#);
    let check = format!(r#"{{"ledger":{},"amount":"1"}}"#, ledger(&ns, "r", "p"));
    let url = s.url("/v1/check");
    assert_eq!(call("POST", &url, None, Some(&check)).0, 401, "no key");
    assert_eq!(
        call("POST", &url, Some("not-a-key"), Some(&check)).0,
        401,
        "wrong key"
    );
    assert_eq!(
        call("POST", &url, Some(READ), Some(&check)).0,
        403,
        "read key on a spend route"
    );
    assert_eq!(call("POST", &url, Some(SPEND), Some(&check)).0, 200);
    let pause = s.url("/v1/admin/pause");
    assert_eq!(
        call("POST", &pause, Some(SPEND), Some(r#"{"all":true}"#)).0,
        403,
        "admin needs admin"
    );
    assert_eq!(
        call("POST", &pause, Some(READ), Some(r#"{"all":true}"#)).0,
        403
    );
    let put = s.url("/v1/admin/budgets");
    let b = format!(
        r#"{{"namespace":"{ns}","resource":"r","principal":"p","budgets":[{{"max_spend":"50"}}]}}"#
    );
    assert_eq!(call("PUT", &put, Some(SPEND), Some(&b)).0, 403);
    assert_eq!(call("GET", &s.url("/v1/admin/budgets"), None, None).0, 401);
    assert_eq!(
        call("POST", &s.url("/v1/admin/reset"), Some(SPEND), Some("{}")).0,
        403
    );
    assert_eq!(status(&s, &ns, "r", "p").0, 200, "read may read");
    // X-Api-Key works too; the 401 body names the problem but not the key.
    let mut r = agent()
        .get(s.url("/v1/ledgers"))
        .header("x-api-key", READ)
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.body_mut().read_to_string();
    let (_, body) = call("POST", &url, Some("leaked-secret"), Some(&check));
    assert!(!body.to_string().contains("leaked-secret"));
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    for secret in [ADMIN, SPEND, READ, "leaked-secret"] {
        assert!(!log.contains(secret), "a key is in the log");
    }
}

#[test]
fn malformed_requests_are_4xx_and_change_nothing() {
    let s = on_memory();
    let ns = unique("bad");
    set_budget(&s, &ns, "r", "p", r#"[{"max_spend":"5"}]"#);
    let l = ledger(&ns, "r", "p");
    let (_, r) = post(
        &s,
        "/v1/reserve",
        SPEND,
        &format!(r#"{{"ledger":{l},"amount":"1"}}"#),
    );
    let id = r["reservation_id"].as_str().unwrap().to_owned();
    let huge = format!(
        r#"{{"ledger":{l},"amount":"1","pad":"{}"}}"#,
        "x".repeat(200_000)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("/v1/check", "{not json".into(), "invalid JSON"),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":"1","extra":true}}"#),
            "unknown field",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":"-1"}}"#),
            "negative",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":"0.0000000001"}}"#),
            "9 decimal",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":1e-12}}"#),
            "9 decimal",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":"ten"}}"#),
            "not a decimal",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l}}}"#),
            "missing field `amount`",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"ledgers":[{l}],"amount":"1"}}"#),
            "exactly one",
        ),
        ("/v1/check", String::new(), "empty"),
        ("/v1/check", huge, "larger"),
        (
            "/v1/reserve",
            format!(r#"{{"ledger":{l},"amount":"1.0000000001"}}"#),
            "9 decimal",
        ),
        (
            "/v1/commit",
            format!(r#"{{"reservation_id":"{id}","actual":"-0.5"}}"#),
            "negative",
        ),
        (
            "/v1/commit",
            r#"{"reservation_id":"nope","actual":"1"}"#.into(),
            "not a reservation id",
        ),
        (
            "/v1/commit",
            format!(r#"{{"reservation_id":"{}","actual":"1"}}"#, "0".repeat(48)),
            "unknown reservation",
        ),
        (
            "/v1/release",
            format!(r#"{{"reservation_id":"{}"}}"#, "a".repeat(48)),
            "unknown reservation",
        ),
        (
            "/v1/admin/pause",
            r#"{"all":true,"namespace":"x"}"#.into(),
            "exactly one scope",
        ),
        (
            "/v1/rate",
            format!(
                r#"{{"gate":{{"namespace":"{ns}","action":"a","principal":"p"}},"max_calls":1}}"#
            ),
            "go together",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":1e999999999}}"#),
            "amount",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":"99999999999999999999999999999"}}"#),
            "amount",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":[1]}}"#),
            "expected an amount",
        ),
        (
            "/v1/check",
            format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
            "invalid JSON",
        ),
        (
            "/v1/check",
            format!(r#"{{"ledger":{l},"amount":"1"}} trailing"#),
            "trailing",
        ),
    ];
    for (path, body, needle) in &cases {
        let (code, answer) = post(&s, path, ADMIN, body);
        assert!(
            (400..500).contains(&code),
            "{path} {body:.80}: {code} {answer}"
        );
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{path} {body:.80}: the message should say {needle:?}: {answer}"
        );
    }
    let (_, st) = status(&s, &ns, "r", "p");
    assert_eq!(dec(&st["committed"]), rust_decimal::Decimal::ZERO, "{st}");
    assert_eq!(
        dec(&st["reserved"]),
        rust_decimal::Decimal::ONE,
        "only the one good reservation: {st}"
    );
    // The reservation is still open and settles normally.
    let (code, _) = post(
        &s,
        "/v1/commit",
        SPEND,
        &format!(r#"{{"reservation_id":"{id}","actual":"0.5"}}"#),
    );
    assert_eq!(code, 200);
}

#[test]
fn coreason_routes_answer_as_documented() {
    let s = Service::start(
        Some((&REDIS.url(), &unique("core"))),
        "[compat]\nnamespace = \"coreason\"\nresource = \"usd\"\ndaily_user_limit = \"1\"\ndaily_project_limit = \"500\"\ndaily_global_limit = \"5000\"\nrequire_key = false\n",
    );
    let user = unique("user_");
    let (code, body) = call(
        "POST",
        &s.url("/check"),
        None,
        Some(&format!(r#"{{"user_id":"{user}","estimated_cost":0.05}}"#)),
    );
    assert_eq!(
        (code, body.clone()),
        (200, serde_json::json!({"status": "allowed"}))
    );
    let (code, body) = call(
        "POST",
        &s.url("/spend"),
        None,
        Some(&format!(
            r#"{{"user_id":"{user}","cost":0.95,"project_id":"proj_alpha","model":"gpt-4"}}"#
        )),
    );
    assert_eq!(
        (code, body),
        (200, serde_json::json!({"status": "recorded"}))
    );
    let (code, body) = call(
        "POST",
        &s.url("/check"),
        None,
        Some(&format!(r#"{{"user_id":"{user}","estimated_cost":0.06}}"#)),
    );
    assert_eq!(code, 429, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("Budget exceeded for User {user}")),
        "{detail}"
    );
    assert_eq!(body.as_object().unwrap().len(), 1, "only detail: {body}");
    // Exactly 0.05 still fits (0.95 + 0.05 = 1).
    let (code, _) = call(
        "POST",
        &s.url("/check"),
        None,
        Some(&format!(
            r#"{{"user_id":"{user}","estimated_cost":"0.05"}}"#
        )),
    );
    assert_eq!(code, 200);
    // The spend landed on the project and the global ledgers too, exactly.
    let (_, st) = status(&s, "coreason", "usd", "project:proj_alpha");
    assert_eq!(dec(&st["committed"]), "0.95".parse().unwrap(), "{st}");
    let (_, h) = call("GET", &s.url("/health"), None, None);
    assert_eq!(
        (h["status"].as_str(), h["redis"].as_str()),
        (Some("healthy"), Some("connected"))
    );
    // Malformed: 4xx and nothing recorded.
    let (code, _) = call(
        "POST",
        &s.url("/spend"),
        None,
        Some(&format!(r#"{{"user_id":"{user}","cost":-1}}"#)),
    );
    assert_eq!(code, 400);
    let (_, st) = status(&s, "coreason", "usd", &format!("user:{user}"));
    assert_eq!(dec(&st["committed"]), "0.95".parse().unwrap());
}
