//! A budget in front of an HTTP service (`budgetgate::tower`): an axum
//! server whose `/search` route costs 0.01 per request, budgeted per user
//! (the `x-user` header) at 0.03 — and the requests a plain HTTP/1.1
//! client sends it over a real socket. The fourth request of a user is
//! answered `402` with the decision's JSON, and the handler never runs.
//!
//! ```sh
//! cargo run --example tower_layer
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use budgetgate::tower::BudgetLayer;
use budgetgate::{dec, Budget, Engine, Ledger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request on a fresh connection; the status line and body.
async fn http_get(addr: std::net::SocketAddr, user: &str) -> std::io::Result<(String, String)> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET /search HTTP/1.1\r\nHost: {addr}\r\nx-user: {user}\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, body))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::in_memory();
    engine.set_budget_per_principal("api", "search", Budget::lifetime(dec!(0.03))?);

    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let layer = BudgetLayer::fixed(
        engine.clone(),
        |req: &Request<Body>| {
            let user = req.headers().get("x-user").and_then(|v| v.to_str().ok());
            Ledger::new("api", "search", user.unwrap_or("anonymous"))
        },
        |_: &Request<Body>| dec!(0.01),
    );
    let app = Router::new()
        .route(
            "/search",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "results" }
            }),
        )
        .layer(layer);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}");

    for user in ["alice", "alice", "alice", "alice", "bob"] {
        let (status, body) = http_get(addr, user).await?;
        println!("{user:>5}: {status}  {body}");
    }
    println!(
        "the handler ran {} times for 5 requests",
        served.load(Ordering::SeqCst)
    );
    let alice = engine.status(&Ledger::new("api", "search", "alice"))?;
    println!("alice committed {} of 0.03", alice.committed());
    Ok(())
}
