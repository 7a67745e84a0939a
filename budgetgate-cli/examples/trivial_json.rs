//! The benchmarks' baseline (`benches/service.sh`): an axum endpoint that
//! parses a JSON body like `/v1/check`'s and answers a small JSON object —
//! everything the service does except the budget. With `--redis URL` it
//! also sends two `PING`s per request through budgetgate's Redis client:
//! the floor of a check on Redis (one round trip for the script, one more
//! for the network's share of the decision).
//!
//! `cargo run --release -p budgetgate-cli --example trivial_json -- 127.0.0.1:8090 [--redis URL]`

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use budgetgate::store::redis::RedisStore;
use serde_json::{json, Value};

async fn check(
    State(redis): State<Option<Arc<RedisStore>>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if let Some(r) = &redis {
        let _ = r.ping().await;
        let _ = r.ping().await;
    }
    Json(json!({"status": "ALLOW", "requested": body["amount"], "reason": null}))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let redis = args
        .iter()
        .position(|a| a == "--redis")
        .and_then(|i| args.get(i + 1))
        .map(|url| Arc::new(RedisStore::connect(url).expect("redis")));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let app = Router::new()
            .route("/v1/check", post(check))
            .with_state(redis);
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!(
            "trivial listening on http://{}",
            listener.local_addr().expect("addr")
        );
        axum::serve(listener, app).await.expect("serve");
    });
}
