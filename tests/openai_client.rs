//! `budgetgate::openai` (#17) with the real async-openai client against a
//! local OpenAI-compatible server that this binary starts (axum on
//! 127.0.0.1:0), replaying recorded OpenAI exchanges
//! (`fixtures/openai/`, see its README): JSON responses and SSE streams with
//! the final usage chunk. On both stores (memory, and a real redis-server):
//!
//! - every recorded exchange's estimate is at least its bill, and the bill
//!   (the price of the response's usage) is what the store committed;
//! - a stream read to the end commits its final usage's cost; a stream
//!   dropped midway commits what it consumed (its estimate), never nothing;
//! - fit to remaining sends the request with its output limit lowered to
//!   what fits, and the ledger never passes its budget, alone or with
//!   concurrent callers;
//! - a refusal (nothing fits, the budget, an uncountable request) happens
//!   before any HTTP request reaches the server;
//! - a failed call releases its reservation.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::CreateChatCompletionRequest;
use async_openai::Client;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use budgetgate::openai::{ChatGuard, EstimateError, GuardError};
use budgetgate::pricing::{self, Usage};
use budgetgate::stream::Stream;
use budgetgate::{dec, Budget, Decimal, Engine, Ledger};
use serde_json::{json, Value};

// ----- the recorded exchanges -------------------------------------------------

/// One recorded request and what OpenAI answered: a JSON body or an SSE
/// stream.
struct Exchange {
    name: String,
    request: Value,
    response: Option<Value>,
    sse: Option<String>,
}

impl Exchange {
    fn model(&self) -> &str {
        self.request["model"].as_str().unwrap()
    }

    fn request(&self) -> CreateChatCompletionRequest {
        serde_json::from_value(self.request.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// The SSE events (`data: …` lines, `[DONE]` last).
    fn events(&self) -> Vec<String> {
        let sse = self.sse.as_deref().unwrap();
        sse.split("\n\n")
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The usage chunk of a stream, or the response, with its service tier.
    fn billed(&self) -> (Value, Option<String>) {
        let body = match &self.response {
            Some(r) => r.clone(),
            None => self
                .events()
                .iter()
                .filter_map(|e| e.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find(|c| !c["usage"].is_null())
                .expect("a usage chunk"),
        };
        let tier = body["service_tier"].as_str().map(str::to_owned);
        (body["usage"].clone(), tier)
    }

    /// The bill, priced from the recorded JSON by the JSON usage reader
    /// (not through async-openai's types, as the guard does).
    fn bill(&self) -> Decimal {
        let (usage, tier) = self.billed();
        let mut u = Usage::from_openai_json(&usage).unwrap();
        if let Some(tier) = tier {
            u.service_tier = tier.parse().unwrap();
        }
        pricing::cost(self.model(), &u).unwrap()
    }
}

fn exchanges() -> Vec<Exchange> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/openai");
    let mut out: Vec<Exchange> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            Exchange {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                request: v["request"].clone(),
                response: v.get("response").cloned(),
                sse: v.get("sse").and_then(Value::as_str).map(str::to_owned),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn exchange(name: &str) -> Exchange {
    exchanges().into_iter().find(|e| e.name == name).unwrap()
}

// ----- the replay server --------------------------------------------------------

enum Reply {
    Json(Value),
    /// SSE events, one every `pause`.
    Sse(Vec<String>, Duration),
    Error(StatusCode, Value),
}

#[derive(Default)]
struct Replay {
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Value>>,
    requests: AtomicUsize,
    events_sent: AtomicUsize,
}

/// The receiving end of a channel, as a stream (an SSE body).
struct Chan<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> Stream for Chan<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

async fn chat_completions(State(replay): State<Arc<Replay>>, body: Bytes) -> Response {
    replay.requests.fetch_add(1, Ordering::SeqCst);
    replay
        .received
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let reply = replay.replies.lock().unwrap().pop_front();
    match reply {
        None => (StatusCode::INTERNAL_SERVER_ERROR, "no reply queued").into_response(),
        Some(Reply::Json(v)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Some(Reply::Error(status, v)) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Some(Reply::Sse(events, pause)) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(1);
            let replay = replay.clone();
            tokio::spawn(async move {
                for event in events {
                    tokio::time::sleep(pause).await;
                    if tx
                        .send(Ok(Bytes::from(format!("{event}\n\n"))))
                        .await
                        .is_err()
                    {
                        return; // the client hung up
                    }
                    replay.events_sent.fetch_add(1, Ordering::SeqCst);
                }
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(Chan(rx)))
                .unwrap()
        }
    }
}

struct Server {
    replay: Arc<Replay>,
    base: String,
}

impl Server {
    async fn start() -> Server {
        // reqwest's rustls needs a crypto provider: ring, already built for rediss://.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let replay = Arc::new(Replay::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(replay.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            replay,
            base: format!("http://{addr}/v1"),
        }
    }

    fn client(&self) -> Client<OpenAIConfig> {
        Client::with_config(
            OpenAIConfig::new()
                .with_api_key("sk-test")
                .with_api_base(&self.base),
        )
    }

    fn push(&self, reply: Reply) {
        self.replay.replies.lock().unwrap().push_back(reply);
    }

    fn requests(&self) -> usize {
        self.replay.requests.load(Ordering::SeqCst)
    }

    fn last_received(&self) -> Value {
        self.replay
            .received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap()
    }
}

fn ledger(engine_test: &str, name: &str) -> Ledger {
    Ledger::new("openai", engine_test, format!("fixture:{name}"))
}

/// Waits (without blocking the runtime) until nothing is held on `ledger`.
async fn settled(engine: &Engine, ledger: &Ledger) -> budgetgate::LedgerStatus {
    for _ in 0..500 {
        let status = engine.status(ledger).unwrap();
        if status.reserved().is_zero() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{ledger}: still reserved after 5 s");
}

// ----- the tests ------------------------------------------------------------------

async fn every_recorded_exchange_is_estimated_at_or_above_its_bill(engine: Engine) {
    let server = Server::start().await;
    let client = server.client();
    let mut checked = 0;
    for ex in exchanges().iter().filter(|e| e.response.is_some()) {
        let ledger = ledger("exchanges", &ex.name);
        engine.set_budget(&ledger, Budget::lifetime(dec!(1000)).unwrap());
        let request = ex.request();
        server.push(Reply::Json(ex.response.clone().unwrap()));
        let done = ChatGuard::new(&engine, ledger.clone())
            .create(request.clone(), |r| async { client.chat().create(r).await })
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ex.name));
        let bill = ex.bill();
        let (usage, _) = ex.billed();
        assert_eq!(done.charged, bill, "{}", ex.name);
        assert!(done.usage_error.is_none(), "{}", ex.name);
        assert_eq!(done.commit.as_ref().unwrap().actual(), bill, "{}", ex.name);
        let status = engine.status(&ledger).unwrap();
        assert_eq!(
            (status.committed(), status.reserved()),
            (bill, Decimal::ZERO),
            "{}",
            ex.name
        );
        let e = &done.estimate;
        assert!(
            e.cost >= bill,
            "{}: estimate {} < bill {bill}",
            ex.name,
            e.cost
        );
        assert!(
            e.prompt_tokens >= usage["prompt_tokens"].as_u64().unwrap(),
            "{}: counted {} prompt tokens, billed {}",
            ex.name,
            e.prompt_tokens,
            usage["prompt_tokens"]
        );
        assert!(
            e.max_billed_output_tokens() >= usage["completion_tokens"].as_u64().unwrap(),
            "{}",
            ex.name
        );
        // The server got the request as given (nothing fitted, nothing added).
        let received: CreateChatCompletionRequest =
            serde_json::from_value(server.last_received()).unwrap();
        assert_eq!(received, request, "{}", ex.name);
        println!(
            "{:<58} {:<12} prompt {:>5} counted / {:>5} billed, output ≤ {:>6} / {:>5} billed, \
             estimate {} / bill {} = {:.1}×",
            ex.name,
            ex.model(),
            e.prompt_tokens,
            usage["prompt_tokens"],
            e.max_billed_output_tokens(),
            usage["completion_tokens"],
            e.cost,
            bill,
            e.cost / bill
        );
        checked += 1;
    }
    assert_eq!(checked, 33);
    assert_eq!(server.requests(), 33);
}

async fn a_stream_read_to_the_end_commits_its_final_usage(engine: Engine) {
    let server = Server::start().await;
    let client = server.client();
    let mut checked = 0;
    for ex in exchanges().iter().filter(|e| e.sse.is_some()) {
        let ledger = ledger("streams", &ex.name);
        engine.set_budget(&ledger, Budget::lifetime(dec!(10)).unwrap());
        // Without stream options: the guard asks for the usage chunk itself.
        let mut request = ex.request();
        (request.stream, request.stream_options) = (None, None);
        let events = ex.events();
        let chunks = events.len() - 1; // and [DONE]
        server.push(Reply::Sse(events, Duration::ZERO));
        let mut stream = ChatGuard::new(&engine, ledger.clone())
            .create_stream(request, |r| async { client.chat().create_stream(r).await })
            .await
            .unwrap();
        let sent = server.last_received();
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["stream_options"]["include_usage"], true);
        let mut read = 0;
        while let Some(chunk) = next(&mut stream).await {
            chunk.unwrap();
            read += 1;
        }
        assert_eq!(read, chunks, "{}", ex.name);
        let bill = ex.bill();
        assert!(stream.estimate() >= bill, "{}", ex.name);
        assert_eq!(stream.cost_read(), Some(bill));
        assert_eq!(stream.outcome().unwrap().as_ref().unwrap().actual(), bill);
        let status = engine.status(&ledger).unwrap();
        assert_eq!(
            (status.committed(), status.reserved()),
            (bill, Decimal::ZERO)
        );
        println!(
            "{:<58} stream, estimate {} / bill {bill} = {:.1}×",
            ex.name,
            stream.estimate(),
            stream.estimate() / bill
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}

async fn a_stream_dropped_midway_commits_what_it_consumed(engine: Engine) {
    let server = Server::start().await;
    let client = server.client();
    let ex = exchange("run_stream_sync_streams_real_model_1");
    let ledger = ledger("dropped", &ex.name);
    engine.set_budget(&ledger, Budget::lifetime(dec!(10)).unwrap());
    let events = ex.events();
    let all = events.len();
    server.push(Reply::Sse(events, Duration::from_millis(20)));
    let mut stream = ChatGuard::new(&engine, ledger.clone())
        .create_stream(ex.request(), |r| async {
            client.chat().create_stream(r).await
        })
        .await
        .unwrap();
    let estimate = stream.estimate();
    for _ in 0..3 {
        next(&mut stream).await.unwrap().unwrap();
    }
    assert_eq!(engine.status(&ledger).unwrap().reserved(), estimate);
    drop(stream); // before the usage chunk
    let status = settled(&engine, &ledger).await;
    // The usage never arrived: what it consumed is its worst case, committed.
    assert_eq!(status.committed(), estimate);
    assert!(estimate > ex.bill());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = server.replay.events_sent.load(Ordering::SeqCst);
    assert!(sent < all, "the server sent all {all} events");
}

/// gpt-4o-mini, "hello" (8 prompt tokens as counted, 8 billed), recorded
/// with `max_completion_tokens: 100` and 9 completion tokens.
const FIT: &str = "max_completion_tokens_gpt_4o_mini_0";

async fn fit_to_remaining_lowers_the_output_limit_to_what_fits(engine: Engine) {
    let server = Server::start().await;
    let client = server.client();
    let ex = exchange(FIT);
    let ledger = ledger("fit", FIT);
    let budget = dec!(0.00008);
    engine.set_budget(&ledger, Budget::lifetime(budget).unwrap());
    let guard = ChatGuard::new(&engine, ledger.clone()).fit_to_remaining(16);
    let full = guard.estimate(&ex.request()).unwrap();
    assert_eq!(full.max_output_tokens, 100);
    assert!(full.cost > budget);
    let mut calls = 0;
    let mut limits = Vec::new();
    let refused = loop {
        let before = server.requests();
        let remaining = engine.status(&ledger).unwrap().remaining();
        server.push(Reply::Json(ex.response.clone().unwrap()));
        match guard
            .create(ex.request(), |r| async { client.chat().create(r).await })
            .await
        {
            Ok(done) => {
                calls += 1;
                let sent = server.last_received()["max_completion_tokens"]
                    .as_u64()
                    .unwrap();
                assert_eq!(sent, done.estimate.max_output_tokens);
                assert_eq!(done.estimate.fitted_from, Some(100));
                assert!((16..100).contains(&sent), "{sent}");
                // It was the most that fit: one token more would not have.
                assert!(done.estimate.cost <= remaining);
                let mut more = ex.request();
                more.max_completion_tokens = Some(sent as u32 + 1);
                assert!(guard.estimate(&more).unwrap().cost > remaining);
                let status = engine.status(&ledger).unwrap();
                assert!(status.spent_in_window() <= budget);
                assert_eq!(done.charged, ex.bill());
                limits.push(sent);
            }
            Err(e) => {
                // Refused before sending: the server saw nothing more.
                assert_eq!(server.requests(), before);
                server.replay.replies.lock().unwrap().clear();
                break e;
            }
        }
    };
    let GuardError::NothingFits {
        remaining,
        prompt_cost,
        min_output_tokens,
        min_cost,
    } = refused
    else {
        panic!("{refused}");
    };
    assert_eq!(min_output_tokens, 16);
    assert!(min_cost > remaining && prompt_cost < min_cost);
    let status = engine.status(&ledger).unwrap();
    assert_eq!(status.committed(), ex.bill() * Decimal::from(calls));
    assert!(status.committed() <= budget);
    assert_eq!(remaining, budget - status.committed());
    // Each fitted limit is the most the remaining bought, so they shrink.
    assert!(limits.windows(2).all(|w| w[0] > w[1]), "{limits:?}");
    // The first: at the dearest prices (priority 0.25 / 1.00 per million,
    // FedRAMP 1.1×), 0.00008 buys 8 prompt tokens and
    // (0.00008 / 1.1 − 8 × 0.25/M) / (1.00/M) = 70.7 output tokens.
    assert_eq!(limits[0], 70);
    println!(
        "fit to remaining: {calls} calls, limits {limits:?}, then {refused_msg}",
        refused_msg = GuardError::<Infallible>::NothingFits {
            remaining,
            prompt_cost,
            min_output_tokens,
            min_cost
        }
    );
}

async fn a_deprecated_max_tokens_is_the_limit_lowered(engine: Engine) {
    let server = Server::start().await;
    let client = server.client();
    let ex = exchange(FIT);
    let ledger = ledger("fit-max-tokens", FIT);
    engine.set_budget(&ledger, Budget::lifetime(dec!(0.00008)).unwrap());
    let mut request = ex.request();
    #[allow(deprecated)]
    {
        (request.max_completion_tokens, request.max_tokens) = (None, Some(100));
    }
    server.push(Reply::Json(ex.response.clone().unwrap()));
    let done = ChatGuard::new(&engine, ledger.clone())
        .fit_to_remaining(16)
        .create(request, |r| async { client.chat().create(r).await })
        .await
        .unwrap();
    let sent = server.last_received();
    assert_eq!(sent["max_tokens"], 70);
    assert!(sent.get("max_completion_tokens").is_none());
    assert_eq!(done.estimate.max_output_tokens, 70);
}

async fn refusals_happen_before_any_request(engine: Engine) {
    let server = Server::start().await;
    let client = server.client();
    let ex = exchange(FIT);
    let ledger = ledger("refusals", FIT);
    // Less than the prompt alone can cost (8 tokens at up to 0.275 per million).
    engine.set_budget(&ledger, Budget::lifetime(dec!(0.000001)).unwrap());
    server.push(Reply::Json(ex.response.clone().unwrap()));
    let call = |r| async { client.chat().create(r).await };

    let fitted = ChatGuard::new(&engine, ledger.clone()).fit_to_remaining(1);
    match fitted.create(ex.request(), call).await {
        Err(GuardError::NothingFits {
            remaining,
            prompt_cost,
            ..
        }) => {
            assert_eq!(remaining, dec!(0.000001));
            assert_eq!(prompt_cost, dec!(0.0000022));
        }
        other => panic!("{:?}", other.map(|d| d.charged)),
    }
    let plain = ChatGuard::new(&engine, ledger.clone());
    match plain.create(ex.request(), call).await {
        Err(GuardError::Budget(blocked)) => {
            assert_eq!(
                blocked.decision().requested(),
                plain.estimate(&ex.request()).unwrap().cost
            );
        }
        other => panic!("{:?}", other.map(|d| d.charged)),
    }
    // A request whose tokens cannot be counted before it is sent.
    let image: CreateChatCompletionRequest = serde_json::from_value(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]}]
    }))
    .unwrap();
    match plain.create(image, call).await {
        Err(GuardError::Estimate(EstimateError::Uncountable { what, message })) => {
            assert_eq!((what, message), ("an image_url content part", Some(0)));
        }
        other => panic!("{:?}", other.map(|d| d.charged)),
    }
    assert_eq!(server.requests(), 0);
    assert_eq!(
        engine.status(&ledger).unwrap().spent_in_window(),
        Decimal::ZERO
    );
}

async fn concurrent_fitted_calls_never_pass_the_budget(engine: Engine) {
    let server = Server::start().await;
    let ex = Arc::new(exchange(FIT));
    let ledger = ledger("concurrent", FIT);
    let budget = dec!(0.0003);
    engine.set_budget(&ledger, Budget::lifetime(budget).unwrap());
    for _ in 0..200 {
        server.push(Reply::Json(ex.response.clone().unwrap()));
    }
    let guard = ChatGuard::new(&engine, ledger.clone()).fit_to_remaining(16);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (guard, client, ex) = (guard.clone(), server.client(), ex.clone());
            tokio::spawn(async move {
                let (mut ok, mut refused) = (0u32, 0u32);
                for _ in 0..25 {
                    match guard
                        .create(ex.request(), |r| async { client.chat().create(r).await })
                        .await
                    {
                        Ok(_) => ok += 1,
                        Err(GuardError::Budget(_) | GuardError::NothingFits { .. }) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let (o, r) = task.await.unwrap();
        (ok, refused) = (ok + o, refused + r);
    }
    let status = settled(&engine, &ledger).await;
    assert_eq!(status.committed(), ex.bill() * Decimal::from(ok));
    assert!(status.committed() <= budget);
    assert!(refused > 0 && ok > 0, "{ok} ok, {refused} refused");
    assert_eq!(server.requests(), ok as usize);
}

async fn a_failed_call_releases_its_reservation(engine: Engine) {
    let server = Server::start().await;
    let client = server.client();
    let ex = exchange(FIT);
    let ledger = ledger("failed", FIT);
    engine.set_budget(&ledger, Budget::lifetime(dec!(1)).unwrap());
    server.push(Reply::Error(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": "Invalid model", "type": "invalid_request_error",
                         "param": "model", "code": null}}),
    ));
    let result = ChatGuard::new(&engine, ledger.clone())
        .create(ex.request(), |r| async { client.chat().create(r).await })
        .await;
    assert!(matches!(result, Err(GuardError::Call(_))), "{result:?}");
    let status = settled(&engine, &ledger).await;
    assert_eq!(status.committed(), Decimal::ZERO);
    assert_eq!(server.requests(), 1);
}

testkit::async_on_both_stores!("openai":
    every_recorded_exchange_is_estimated_at_or_above_its_bill,
    a_stream_read_to_the_end_commits_its_final_usage,
    a_stream_dropped_midway_commits_what_it_consumed,
    fit_to_remaining_lowers_the_output_limit_to_what_fits,
    a_deprecated_max_tokens_is_the_limit_lowered,
    refusals_happen_before_any_request,
    concurrent_fitted_calls_never_pass_the_budget,
    a_failed_call_releases_its_reservation,
);
