//! Configuration from the environment, as a newcomer uses it: the examples'
//! pattern — `Engine::builder()…install_global()` — with nothing but
//! `BUDGETGATE_REDIS_URL` set, in real OS processes sharing one Redis.
//!
//! The agents are this test binary run again with `BUDGETGATE_TEST_ROLE`.

use std::process::{Command, Stdio};

use budgetgate::{dec, guard, Budget, BudgetExceeded, Decimal, Engine, Ledger};
use testkit::redis_server::RedisServer;

#[derive(Debug)]
#[allow(dead_code)]
enum ToolError {
    Budget(BudgetExceeded),
}

impl From<BudgetExceeded> for ToolError {
    fn from(e: BudgetExceeded) -> Self {
        ToolError::Budget(e)
    }
}

/// A tool on the global engine, priced 0.01 a call.
#[guard(ledger = ("search", "web", format!("user:{user}")), cost = "0.01")]
fn web_search(user: &str) -> Result<(), ToolError> {
    Ok(())
}

/// The agent: installs its engine with the builder (a daily 0.50 per user,
/// as the examples do), then searches until blocked. Prints `SPENT <sum>`.
#[test]
fn agent() {
    if std::env::var("BUDGETGATE_TEST_ROLE").as_deref() != Ok("agent") {
        return;
    }
    let user = std::env::var("BUDGETGATE_TEST_USER").expect("user");
    Engine::builder()
        .budget(
            &Ledger::new("search", "web", format!("user:{user}")),
            Budget::daily(dec!(0.50)).unwrap(),
        )
        .install_global()
        .expect("first install");
    let mut spent = Decimal::ZERO;
    for _ in 0..100 {
        match web_search(&user) {
            Ok(()) => spent += dec!(0.01),
            Err(ToolError::Budget(e)) => {
                assert_eq!(
                    e.reason(),
                    Some(budgetgate::BlockReason::BudgetExceeded),
                    "{e}"
                );
            }
        }
    }
    println!("SPENT {spent}");
}

fn agent_process(url: &str, user: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "agent", "--nocapture", "--test-threads=1"])
        .env("BUDGETGATE_TEST_ROLE", "agent")
        .env("BUDGETGATE_TEST_USER", user)
        .env("BUDGETGATE_REDIS_URL", url)
        .env_remove("BUDGETGATE_REDIS_PREFIX")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn agent")
}

/// Two agents configured only by `BUDGETGATE_REDIS_URL`, each installing
/// its engine with the builder, share one daily budget exactly: together
/// they spend 0.50, not 0.50 each, and the ledger lives in Redis.
#[test]
fn builder_engines_share_one_budget_through_the_environment() {
    if std::env::var("BUDGETGATE_TEST_ROLE").is_ok() {
        return;
    }
    let server = RedisServer::start();
    let user = format!("u{}", std::process::id());
    let agents: Vec<_> = (0..2)
        .map(|_| agent_process(&server.url(), &user))
        .collect();
    let mut total = Decimal::ZERO;
    for agent in agents {
        let out = agent.wait_with_output().expect("agent output");
        assert!(out.status.success(), "agent failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let spent: Decimal = text
            .split("SPENT ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no SPENT in {text}"))
            .parse()
            .unwrap();
        assert!(spent <= dec!(0.50), "one agent spent {spent}");
        total += spent;
    }
    assert_eq!(total, dec!(0.50), "the two agents together");
    let keys = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "--scan", "--pattern", "*"])
        .output()
        .expect("redis-cli");
    let keys = String::from_utf8_lossy(&keys.stdout);
    assert!(
        keys.lines().any(|k| k.contains(&user)),
        "the ledger is in Redis: {keys}"
    );
}

/// An unusable variable is refused at start-up by `try_build` /
/// `try_from_env`, with the variable's name, and without the password.
#[test]
fn try_build_refuses_unusable_variables() {
    if std::env::var("BUDGETGATE_TEST_ROLE").is_ok() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "checker", "--nocapture", "--test-threads=1"])
        .env("BUDGETGATE_TEST_ROLE", "checker")
        .env("BUDGETGATE_REDIS_URL", "http://:hunter2@127.0.0.1:1/0")
        .output()
        .expect("spawn checker");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "checker failed: {text}");
    assert!(text.contains("CHECKED"), "{text}");
}

#[test]
fn checker() {
    if std::env::var("BUDGETGATE_TEST_ROLE").as_deref() != Ok("checker") {
        return;
    }
    let error = Engine::builder().try_build().unwrap_err();
    let message = error.to_string();
    assert!(message.contains("BUDGETGATE_REDIS_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(budgetgate::global::try_from_env().is_err());
    // The infallible build fails closed: every call is blocked as a store
    // error, rate checks included (not "not implemented").
    let engine = Engine::builder().build();
    let ledger = Ledger::new("a", "b", "c");
    let d = engine.check_with(
        &ledger,
        Some(&Budget::lifetime(dec!(1)).unwrap()),
        dec!(0.1),
    );
    assert!(d.is_blocked());
    assert_eq!(d.reason(), Some(budgetgate::BlockReason::StoreError));
    assert!(!d.message().contains("hunter2"), "{}", d.message());
    let r = engine.rate_check(
        &budgetgate::Gate::new("a", "b", "c"),
        &budgetgate::Policy::new().max_calls(1, std::time::Duration::from_secs(1)),
    );
    assert_eq!(r.reason(), Some(budgetgate::rate::RateReason::StoreError));
    assert!(
        r.detail().unwrap().contains("BUDGETGATE_REDIS_URL"),
        "{:?}",
        r.detail()
    );
    assert!(r.retry_after().is_some_and(|d| !d.is_zero()));
    // An explicit store wins over the environment.
    let engine = Engine::builder()
        .store(budgetgate::MemoryStore::new())
        .try_build()
        .expect("explicit store: the URL is not read");
    let d = engine.check_with(
        &ledger,
        Some(&Budget::lifetime(dec!(1)).unwrap()),
        dec!(0.1),
    );
    assert!(d.is_allowed(), "{d}");
    println!("CHECKED");
}
