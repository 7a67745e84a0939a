//! The service's limits and lifecycle, on the real binary: a request in
//! flight at SIGTERM is answered, one slower than the time limit is 408
//! and changes nothing, and the Redis password is never printed.

mod common;

use std::time::Duration;

use common::*;
use testkit::redis_server::RedisServer;

fn on_memory() -> Service {
    Service::start(None, "")
}

#[test]
fn graceful_shutdown_finishes_the_request_in_flight() {
    use std::io::{Read, Write};
    let mut s = on_memory();
    let ns = unique("stop");
    set_budget(&s, &ns, "r", "p", r#"[{"max_spend":"5"}]"#);
    let body = format!(r#"{{"ledger":{},"amount":"1"}}"#, ledger(&ns, "r", "p"));
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/check HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {SPEND}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(300));
    tcp.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the request in flight was answered: {answer}"
    );
    assert!(answer.contains("\"ALLOW\""));
    let status = s.terminate();
    assert!(status.success(), "exit {status:?}");
    // New connections are refused once it stopped.
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

#[test]
fn a_request_slower_than_the_time_limit_is_408_and_changes_nothing() {
    use std::io::{Read, Write};
    let s = Service::start(None, "request_timeout_ms = 300\n");
    let ns = unique("slow");
    set_budget(&s, &ns, "r", "p", r#"[{"max_spend":"5"}]"#);
    let body = format!(r#"{{"ledger":{},"amount":"1"}}"#, ledger(&ns, "r", "p"));
    let mut tcp = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    let head = format!(
        "POST /v1/check HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {SPEND}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(&body.as_bytes()[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let _ = tcp.write_all(&body.as_bytes()[5..]);
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (_, st) = status(&s, &ns, "r", "p");
    assert_eq!(st["committed"], "0", "{st}");
}

#[test]
fn the_redis_password_is_never_printed() {
    let secret = "s3cret-redis-pw";
    let redis = RedisServer::start_with_password(Some(secret));
    let s = Service::start(Some((&redis.url(), &unique("pw"))), "");
    assert!(
        s.banner.contains("127.0.0.1") && !s.banner.contains(secret),
        "{}",
        s.banner
    );
    let (code, h) = call("GET", &s.url("/health"), None, None);
    assert_eq!((code, h["redis"].as_str()), (200, Some("connected")), "{h}");
    // A wrong password: health fails closed, and says so without either password.
    let wrong = redis.url().replace(secret, "wrong-pw-123");
    let bad = Service::start(Some((&wrong, &unique("pw"))), "");
    let (code, h) = call("GET", &bad.url("/health"), None, None);
    assert_eq!(code, 503, "{h}");
    let ns = unique("pw");
    let (code, d) = post(
        &bad,
        "/v1/check",
        SPEND,
        &format!(r#"{{"ledger":{},"amount":"1"}}"#, ledger(&ns, "r", "p")),
    );
    assert!(code >= 400, "{d}");
    std::thread::sleep(Duration::from_millis(300));
    for (what, text) in [
        ("health", h.to_string()),
        ("check", d.to_string()),
        ("banner", bad.banner.clone()),
        ("log", std::fs::read_to_string(&bad.log).unwrap_or_default()),
        ("log", std::fs::read_to_string(&s.log).unwrap_or_default()),
    ] {
        assert!(
            !text.contains(secret) && !text.contains("wrong-pw-123"),
            "a password in the {what}: {text}"
        );
    }
}
