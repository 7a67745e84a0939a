//! A streamed LLM completion under a budget (`budgetgate::stream`).
//!
//! A producer task plays the part of a streaming HTTP response (Anthropic
//! Messages events, one every few milliseconds). Three streams share one
//! user's budget:
//!
//! 1. read to the end: the final usage's cost is committed;
//! 2. dropped by the caller after a few events: what it had consumed so far
//!    is committed — not the estimate, and never nothing;
//! 3. with the cutoff: the stream stops itself when its running cost
//!    reaches its reservation, and says so.
//!
//! ```sh
//! cargo run --example streaming
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use budgetgate::stream::{Stream, UsageMeter};
use budgetgate::{dec, Budget, Engine, Ledger};
use serde_json::{json, Value};

const MODEL: &str = "claude-sonnet-4-5";

/// What an SSE client would hand over: one JSON event at a time.
struct Events(tokio::sync::mpsc::Receiver<Value>);

impl Stream for Events {
    type Item = Value;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        self.0.poll_recv(cx)
    }
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// A model "answering": 2,000 prompt tokens, then 50 output tokens an event.
fn completion(events: usize) -> Events {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "content": [], "model": MODEL, "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 2000, "output_tokens": 1}}});
        if tx.send(start).await.is_err() {
            return;
        }
        for i in 1..=events as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let delta = json!({"type": "message_delta", "delta": {"stop_reason": null,
                "stop_sequence": null}, "usage": {"output_tokens": i * 50}});
            if tx.send(delta).await.is_err() {
                println!("    (producer: the client hung up after {i} events)");
                return;
            }
        }
        let _ = tx.send(json!({"type": "message_stop"})).await;
    });
    Events(rx)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::in_memory();
    let user = Ledger::new("anthropic", MODEL, "user:7");
    engine.set_budget(&user, Budget::lifetime(dec!(0.10))?);
    let estimate = dec!(0.015); // the prompt and a 600-token output limit
    println!("budget 0.10, each stream reserves {estimate}");

    // 1. Read to the end.
    let held = engine.reserve_async(&user, estimate).await?;
    let mut stream = held.guard_stream(completion(8), UsageMeter::anthropic(MODEL));
    let mut events = 0;
    while next(&mut stream).await.is_some() {
        events += 1;
    }
    let commit = stream
        .outcome()
        .expect("ended")
        .as_ref()
        .expect("committed");
    println!(
        "1. {events} events, committed {} (reserved {})",
        commit.actual(),
        commit.estimate()
    );

    // 2. The caller stops reading after 4 events.
    let held = engine.reserve_async(&user, estimate).await?;
    let mut stream = held.guard_stream(completion(8), UsageMeter::anthropic(MODEL));
    for _ in 0..4 {
        next(&mut stream).await;
    }
    println!(
        "2. dropped after 4 events, having consumed {}",
        stream.consumed()
    );
    drop(stream); // committed in the background, never blocking this thread
    engine.wait_settled(Duration::from_secs(5));

    // 3. The cutoff: 600 output tokens fit the reservation, the 12th event would pass it.
    let held = engine.reserve_async(&user, estimate).await?;
    let mut stream = held
        .guard_stream(completion(20), UsageMeter::anthropic(MODEL))
        .with_cutoff();
    let mut events = 0;
    while let Some(item) = next(&mut stream).await {
        match item {
            Ok(_) => events += 1,
            Err(cut) => println!("3. after {events} events: {cut}"),
        }
    }

    let status = engine.status(&user)?;
    println!(
        "user:7 committed {}, reserved {}, remaining {}",
        status.committed(),
        status.reserved(),
        status.remaining()
    );
    Ok(())
}
