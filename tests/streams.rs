//! Guarded streams (`budgetgate::stream`, #17) on both stores — memory, and
//! a real `redis-server` this binary starts: a stream consumed fully commits
//! its final usage's cost; dropped after k chunks it commits what it
//! consumed; an erroring stream commits what it consumed; the cutoff stops
//! at the reservation. Chunks come through a real channel from a producer
//! task, as a streamed HTTP body would.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use budgetgate::store::redis::RedisStore;
use budgetgate::stream::{CutOff, Stream, UsageMeter};
use budgetgate::{dec, Budget, Decimal, Engine, Ledger};
use serde_json::{json, Value};
use testkit::redis_server::RedisServer;

/// The receiving end of a channel, as a stream.
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

/// Sends `items` one at a time (a channel of one: the producer waits for
/// the consumer); counts what the consumer took, and stops when the stream
/// is dropped.
fn produce<T: Send + 'static>(
    items: Vec<T>,
) -> (Chan<T>, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = sent.clone();
    let task = tokio::spawn(async move {
        for item in items {
            if tx.send(item).await.is_err() {
                return; // the stream was dropped: the "connection" closes
            }
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    (Chan(rx), sent, task)
}

fn openai_chunks(prompt: u64, completion: u64) -> Vec<Value> {
    let mut chunks: Vec<Value> = ["Hel", "lo", " world"]
        .iter()
        .map(|text| {
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                   "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": text},
                   "finish_reason": null}], "usage": null})
        })
        .collect();
    chunks.push(
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion}}),
    );
    chunks
}

/// message_start (1000 input tokens, 1 output), then a text delta and a
/// cumulative usage delta per 100 output tokens, up to `steps` × 100.
fn anthropic_events(steps: u64) -> Vec<Value> {
    let mut events = vec![json!({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [],
        "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 1000, "output_tokens": 1}}})];
    for step in 1..=steps {
        events.push(json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "more"}}));
        events.push(json!({"type": "message_delta",
            "delta": {"stop_reason": null, "stop_sequence": null},
            "usage": {"output_tokens": step * 100}}));
    }
    events.push(json!({"type": "message_stop"}));
    events
}

/// claude-sonnet-4-5: 3 per million input tokens, 15 per million output.
fn sonnet(input: u64, output: u64) -> Decimal {
    Decimal::from(input) * dec!(0.000003) + Decimal::from(output) * dec!(0.000015)
}

fn ledger(name: &str) -> Ledger {
    Ledger::new("llm", "stream", name)
}

fn settled(engine: &Engine) {
    assert!(
        engine.wait_settled(Duration::from_secs(10)),
        "background commits did not land"
    );
}

// ----- the tests, written once, run on both stores ---------------------------

async fn consumed_fully_commits_final_usage(engine: Engine) {
    let user = ledger("full");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let held = engine.reserve_async(&user, dec!(0.01)).await.unwrap();
    let (chunks, _, _) = produce(openai_chunks(1000, 500));
    let mut stream = held.guard_stream(chunks, UsageMeter::openai("gpt-4o-mini"));
    let mut n = 0;
    while next(&mut stream).await.is_some() {
        n += 1;
    }
    assert_eq!(n, 4);
    // 1000 × 0.15/M + 500 × 0.60/M, committed before the stream said "end".
    let commit = stream
        .outcome()
        .expect("settled")
        .as_ref()
        .expect("committed");
    assert_eq!(commit.actual(), dec!(0.00045));
    let status = engine.status(&user).unwrap();
    assert_eq!(status.committed(), dec!(0.00045));
    assert_eq!(status.reserved(), dec!(0));
}

async fn stream_without_usage_commits_estimate(engine: Engine) {
    let user = ledger("no-usage");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let mut chunks = openai_chunks(1, 1);
    chunks.pop(); // include_usage was not set: no usage chunk
    let (chunks, _, _) = produce(chunks);
    let mut stream = engine
        .reserve_stream(&user, dec!(0.01), chunks, UsageMeter::openai("gpt-4o-mini"))
        .await
        .unwrap();
    while next(&mut stream).await.is_some() {}
    // Never priced at zero: the worst case declared is what is committed.
    assert_eq!(engine.status(&user).unwrap().committed(), dec!(0.01));
}

async fn dropped_after_k_chunks_commits_consumed(engine: Engine) {
    let user = ledger("dropped");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let held = engine.reserve_async(&user, dec!(0.05)).await.unwrap();
    let (events, sent, producer) = produce(anthropic_events(10));
    let mut stream = held.guard_stream(events, UsageMeter::anthropic("claude-sonnet-4-5"));
    // k = 5: message_start, then two (text, usage) pairs — 200 output tokens.
    for _ in 0..5 {
        next(&mut stream).await.expect("an event");
    }
    assert_eq!(stream.cost_read(), Some(sonnet(1000, 200)));
    drop(stream);
    producer.await.unwrap();
    assert!(
        sent.load(Ordering::SeqCst) < 22,
        "the producer saw the stream go"
    );
    settled(&engine);
    let status = engine.status(&user).unwrap();
    assert_eq!(status.committed(), sonnet(1000, 200)); // 0.006, not the 0.05 held
    assert_eq!(status.reserved(), dec!(0)); // not released either
}

async fn dropped_without_usage_commits_estimate(engine: Engine) {
    let user = ledger("dropped-openai");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let held = engine.reserve_async(&user, dec!(0.02)).await.unwrap();
    let (chunks, _, _) = produce(openai_chunks(1000, 500));
    let mut stream = held.guard_stream(chunks, UsageMeter::openai("gpt-4o-mini"));
    next(&mut stream).await.unwrap();
    drop(stream); // OpenAI says nothing until the end: the estimate is billed
    settled(&engine);
    let status = engine.status(&user).unwrap();
    assert_eq!(status.committed(), dec!(0.02));
    assert_eq!(status.reserved(), dec!(0));
}

async fn erroring_stream_commits_consumed(engine: Engine) {
    let user = ledger("error");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let mut items: Vec<Result<Value, String>> =
        anthropic_events(10).into_iter().take(7).map(Ok).collect(); // 300 output tokens
    items.push(Err("connection reset".into()));
    let (items, _, _) = produce(items);
    let held = engine.reserve_async(&user, dec!(0.05)).await.unwrap();
    let mut stream = held.guard_stream(items, UsageMeter::anthropic("claude-sonnet-4-5"));
    let mut errors = 0;
    while let Some(item) = next(&mut stream).await {
        errors += usize::from(item.is_err());
    }
    assert_eq!(errors, 1);
    assert_eq!(
        stream.outcome().unwrap().as_ref().unwrap().actual(),
        sonnet(1000, 300)
    );
    assert_eq!(engine.status(&user).unwrap().committed(), sonnet(1000, 300));
}

async fn caller_drops_on_error_commits_consumed(engine: Engine) {
    let user = ledger("error-drop");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let mut items: Vec<Result<Value, String>> =
        anthropic_events(10).into_iter().take(3).map(Ok).collect(); // 100 output tokens
    items.push(Err("bad gateway".into()));
    items.extend(anthropic_events(10).into_iter().skip(3).map(Ok));
    let (items, _, _) = produce(items);
    let held = engine.reserve_async(&user, dec!(0.05)).await.unwrap();
    let mut stream = held.guard_stream(items, UsageMeter::anthropic("claude-sonnet-4-5"));
    // The usual `?` on the first error: the stream is dropped there.
    let result: Result<(), String> = async {
        while let Some(item) = next(&mut stream).await {
            item?;
        }
        Ok(())
    }
    .await;
    assert_eq!(result, Err("bad gateway".to_string()));
    drop(stream);
    settled(&engine);
    assert_eq!(engine.status(&user).unwrap().committed(), sonnet(1000, 100));
    assert_eq!(engine.status(&user).unwrap().reserved(), dec!(0));
}

async fn cutoff_stops_at_reservation(engine: Engine) {
    let user = ledger("cutoff");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    // 0.003 for the prompt + 0.0015 per 100 output tokens: 0.0075 is reached
    // at 300 output tokens, the 7th event.
    let reserved = sonnet(1000, 300);
    let held = engine.reserve_async(&user, reserved).await.unwrap();
    let (events, sent, producer) = produce(anthropic_events(10));
    let mut stream = held
        .guard_stream(events, UsageMeter::anthropic("claude-sonnet-4-5"))
        .with_cutoff();
    let mut ok = 0;
    let mut cut = None;
    while let Some(item) = next(&mut stream).await {
        match item {
            Ok(_) => ok += 1,
            Err(c) => {
                assert!(cut.is_none(), "one cutoff");
                cut = Some(c);
            }
        }
    }
    assert_eq!(ok, 7);
    assert_eq!(
        cut,
        Some(CutOff {
            consumed: reserved,
            reserved
        })
    );
    // The cutoff is yielded after its commit landed.
    assert_eq!(engine.status(&user).unwrap().committed(), reserved);
    assert_eq!(engine.status(&user).unwrap().reserved(), dec!(0));
    producer.await.unwrap();
    assert!(
        sent.load(Ordering::SeqCst) <= 8,
        "the inner stream was dropped at the cutoff"
    );
}

async fn cutoff_not_reached_ends_normally(engine: Engine) {
    let user = ledger("under");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let held = engine.reserve_async(&user, dec!(0.5)).await.unwrap();
    let (events, _, _) = produce(anthropic_events(3));
    let mut stream = held
        .guard_stream(events, UsageMeter::anthropic("claude-sonnet-4-5"))
        .with_cutoff();
    let mut ok = 0;
    while let Some(item) = next(&mut stream).await {
        item.expect("no cutoff");
        ok += 1;
    }
    assert_eq!(ok, 8);
    assert_eq!(engine.status(&user).unwrap().committed(), sonnet(1000, 300));
}

async fn hierarchy_stream_commits_every_ledger(engine: Engine) {
    let (user, org) = (ledger("h-user"), ledger("h-org"));
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    engine.set_budget(&org, Budget::lifetime(dec!(1)).unwrap());
    let held = engine
        .reserve_all_async(&[user.clone(), org.clone()], dec!(0.05))
        .await
        .unwrap();
    let (events, _, _) = produce(anthropic_events(4));
    let mut stream = held.guard_stream(events, UsageMeter::anthropic("claude-sonnet-4-5"));
    next(&mut stream).await.unwrap();
    next(&mut stream).await.unwrap();
    next(&mut stream).await.unwrap(); // 100 output tokens
    drop(stream);
    settled(&engine);
    for l in [&user, &org] {
        assert_eq!(engine.status(l).unwrap().committed(), sonnet(1000, 100));
        assert_eq!(engine.status(l).unwrap().reserved(), dec!(0));
    }
}

async fn closure_meter_prices_chunks(engine: Engine) {
    let user = ledger("closure");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    // Chunks that carry their own token counts; priced 0.001 per token.
    let (chunks, _, _) = produce(vec![3u64, 4, 5]);
    let mut tokens = 0u64;
    let meter = move |chunk: &u64| {
        tokens += chunk;
        Some(Decimal::from(tokens) * dec!(0.001))
    };
    let mut stream = engine
        .reserve_stream(&user, dec!(0.1), chunks, meter)
        .await
        .unwrap();
    while next(&mut stream).await.is_some() {}
    assert_eq!(engine.status(&user).unwrap().committed(), dec!(0.012));
}

testkit::async_on_both_stores!(
    "streams":
    consumed_fully_commits_final_usage,
    stream_without_usage_commits_estimate,
    dropped_after_k_chunks_commits_consumed,
    dropped_without_usage_commits_estimate,
    erroring_stream_commits_consumed,
    caller_drops_on_error_commits_consumed,
    cutoff_stops_at_reservation,
    cutoff_not_reached_ends_normally,
    hierarchy_stream_commits_every_ledger,
    closure_meter_prices_chunks,
);

/// The stream ends, its final commit is sent to a Redis server that does
/// not answer (frozen), and the stream is dropped before the reply: the
/// settler makes sure of the commit by id when the server is back — the
/// consumed cost is recorded exactly once, and nothing stays held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_while_its_final_commit_is_in_flight_commits_once() {
    let server = RedisServer::start(); // its own: this test freezes it
    let store = RedisStore::builder(&server.url())
        .prefix("inflight")
        .timeout(Duration::from_secs(2))
        .build()
        .expect("redis store");
    let engine = Engine::new(store);
    let user = ledger("in-flight");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let held = engine.reserve_async(&user, dec!(0.05)).await.unwrap();
    let items: Vec<Value> = anthropic_events(2); // 200 output tokens
    let n = items.len();
    let (events, _, _) = produce(items);
    let mut stream = held.guard_stream(events, UsageMeter::anthropic("claude-sonnet-4-5"));
    for _ in 0..n {
        next(&mut stream).await.expect("an event");
    }
    // The channel is closed once the producer sent everything.
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.freeze();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(
        Pin::new(&mut stream).poll_next(&mut cx).is_pending(),
        "the end was seen and the commit sent to a frozen server"
    );
    assert!(stream.outcome().is_none());
    drop(stream);
    server.thaw();
    settled(&engine);
    let status = engine.status(&user).unwrap();
    assert_eq!(status.committed(), sonnet(1000, 200));
    assert_eq!(status.reserved(), dec!(0));
}

/// The final commit never got to the store (its future is dropped with the
/// stream before sending): the stream hands it to the settler, which
/// records it — exactly the consumed cost, nothing left held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_before_its_final_commit_was_sent_still_commits() {
    let store = Arc::new(testkit::stalling::StallingSettles::default());
    let engine = Engine::builder()
        .shared_store(store.clone())
        .default_policy(budgetgate::DefaultPolicy::Deny)
        .build();
    let user = ledger("unsent");
    engine.set_budget(&user, Budget::lifetime(dec!(1)).unwrap());
    let held = engine.reserve_async(&user, dec!(0.05)).await.unwrap();
    let items = anthropic_events(2);
    let n = items.len();
    let (events, _, producer) = produce(items);
    let mut stream = held.guard_stream(events, UsageMeter::anthropic("claude-sonnet-4-5"));
    for _ in 0..n {
        next(&mut stream).await.expect("an event");
    }
    producer.await.unwrap(); // the channel is closed: the next poll is the end
    store.stall.store(true, Ordering::SeqCst);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
    assert_eq!(engine.status(&user).unwrap().reserved(), dec!(0.05)); // not sent
    drop(stream);
    settled(&engine);
    let status = engine.status(&user).unwrap();
    assert_eq!(status.committed(), sonnet(1000, 200));
    assert_eq!(status.reserved(), dec!(0));
}

// ----- #[guard_bounded(stream = …)] -----------------------------------------

mod attribute {
    use super::*;
    use budgetgate::guard_bounded;
    use testkit::Blocked;

    #[derive(Debug)]
    #[allow(dead_code)] // the fields are for Debug
    pub enum CallError {
        Budget(Blocked),
        Http(&'static str),
    }
    impl From<budgetgate::BudgetExceeded> for CallError {
        fn from(e: budgetgate::BudgetExceeded) -> Self {
            CallError::Budget(Blocked(e))
        }
    }

    /// A streamed call: the estimate is reserved before the body (which
    /// would send the request), the stream it returns holds it.
    #[guard_bounded(
        ledger = ("llm", "stream-attr", user),
        estimate = "0.05",
        stream = UsageMeter::anthropic("claude-sonnet-4-5"),
        max_spend = "0.1",
        engine = engine,
    )]
    async fn chat(
        engine: &Engine,
        user: &str,
        steps: u64,
        fail: bool,
    ) -> Result<impl Stream<Item = Value>, CallError> {
        if fail {
            return Err(CallError::Http("502 from the provider"));
        }
        let (events, _, _) = produce(anthropic_events(steps));
        Ok(events)
    }

    /// The sync form, with an error that costs the estimate.
    #[guard_bounded(
        ledger = ("llm", "stream-attr", user),
        estimate = "0.05",
        stream = |chunk: &u64| Some(Decimal::from(*chunk) * dec!(0.001)),
        on_error = estimate,
        max_spend = "0.1",
        engine = engine,
    )]
    fn tokens(
        engine: &Engine,
        user: &str,
        fail: bool,
    ) -> Result<impl Stream<Item = u64> + Unpin, CallError> {
        if fail {
            return Err(CallError::Http("timeout after the request was sent"));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        for n in [3u64, 7, 12] {
            tx.try_send(n).unwrap();
        }
        Ok(Chan(rx))
    }

    fn committed(engine: &Engine, user: &str) -> Decimal {
        engine
            .status_with(
                &Ledger::new("llm", "stream-attr", user),
                &Budget::lifetime(dec!(0.1)).unwrap(),
            )
            .unwrap()
            .committed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_attributed_stream_commits_what_it_consumed() {
        let engine = testkit::engines::memory();
        let mut stream = std::pin::pin!(chat(&engine, "a", 3, false).await.unwrap());
        while std::future::poll_fn(|cx| stream.as_mut().poll_next(cx))
            .await
            .is_some()
        {}
        assert_eq!(committed(&engine, "a"), sonnet(1000, 300));

        // Dropped after message_start and one usage delta: 100 output tokens.
        let mut stream = Box::pin(chat(&engine, "b", 5, false).await.unwrap());
        for _ in 0..3 {
            std::future::poll_fn(|cx| stream.as_mut().poll_next(cx))
                .await
                .unwrap();
        }
        drop(stream);
        settled(&engine);
        assert_eq!(committed(&engine, "b"), sonnet(1000, 100));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_attributed_stream_is_blocked_before_its_body_and_released_on_error() {
        let engine = testkit::engines::memory();
        // 0.05 + 0.05 fit the 0.1 cap; the third is blocked before its body.
        let first = chat(&engine, "c", 3, false).await.unwrap();
        let second = chat(&engine, "c", 3, false).await.unwrap();
        assert!(matches!(
            chat(&engine, "c", 3, false).await,
            Err(CallError::Budget(_))
        ));
        // Dropped unread: no chunk said what they cost, so each commits its
        // estimate (the request was sent; it is billed).
        drop((first, second));
        settled(&engine);
        assert_eq!(committed(&engine, "c"), dec!(0.1));
        // The body's error releases by default.
        assert!(matches!(
            chat(&engine, "d", 3, true).await,
            Err(CallError::Http(_))
        ));
        settled(&engine);
        assert_eq!(committed(&engine, "d"), dec!(0));
        let status = engine
            .status_with(
                &Ledger::new("llm", "stream-attr", "d"),
                &Budget::lifetime(dec!(0.1)).unwrap(),
            )
            .unwrap();
        assert_eq!(status.reserved(), dec!(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sync_form_guards_its_stream_and_charges_errors_as_asked() {
        let engine = testkit::engines::memory();
        let mut stream = tokens(&engine, "e", false).unwrap();
        let mut n = 0;
        while next(&mut stream).await.is_some() {
            n += 1;
            if n == 3 {
                break; // the channel's sender is gone; stop at the last chunk
            }
        }
        drop(stream);
        settled(&engine);
        assert_eq!(committed(&engine, "e"), dec!(0.012));
        assert!(tokens(&engine, "f", true).is_err());
        assert_eq!(committed(&engine, "f"), dec!(0.05)); // on_error = estimate
    }
}
