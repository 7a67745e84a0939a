//! An agent's chat completions under a budget (`budgetgate::openai`), with
//! the real async-openai client against a local server this example starts
//! (no network): it replays answers OpenAI gave to these very requests
//! (recorded by pydantic-ai's tests, `tests/fixtures/openai/`).
//!
//! The agent has $0.05 for its run:
//!
//! 1. it asks gpt-4o with two tools and no output limit: the worst case
//!    (16,384 output tokens at the dearest tier) does not fit, so fit to
//!    remaining sends it with `max_completion_tokens` lowered to what $0.05
//!    buys; the model calls `get_user_country`, the agent runs it;
//! 2. it sends the tool's answer back (fitted again) and gets the final
//!    answer;
//! 3. it streams a gpt-4o-mini answer: the usage chunk's cost is committed;
//! 4. it tries to send a long document: the prompt alone costs more than
//!    what is left, so the call is refused before anything is sent.
//!
//! ```sh
//! cargo run --example openai_agent --features openai
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestMessage, ChatCompletionRequestToolMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest,
};
use async_openai::Client;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use budgetgate::openai::{ChatGuard, GuardError};
use budgetgate::stream::Stream;
use budgetgate::{dec, Budget, Engine, Ledger};
use serde_json::Value;

/// A recorded exchange: the request sent, and OpenAI's answer (a JSON body
/// or an SSE stream).
fn recorded(json: &str) -> (CreateChatCompletionRequest, Value) {
    let v: Value = serde_json::from_str(json).expect("fixture");
    let request = serde_json::from_value(v["request"].clone()).expect("a request");
    let answer = v
        .get("response")
        .or(v.get("sse"))
        .expect("an answer")
        .clone();
    (request, answer)
}

const TOOL_TURN: &str = include_str!("../tests/fixtures/openai/openai_tool_output_0.json");
const ANSWER_TURN: &str = include_str!("../tests/fixtures/openai/openai_tool_output_1.json");
const STREAM_TURN: &str =
    include_str!("../tests/fixtures/openai/run_stream_sync_streams_real_model_1.json");

// ----- the local OpenAI-compatible server ------------------------------------

#[derive(Default)]
struct Replay {
    answers: Mutex<VecDeque<Value>>,
    requests: AtomicUsize,
    limits: Mutex<Vec<Option<u64>>>,
}

/// An SSE body, event by event.
struct Events(std::vec::IntoIter<String>);

impl Stream for Events {
    type Item = Result<Bytes, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(
            self.0
                .next()
                .map(|e| Ok(Bytes::from(format!("{}\n\n", e.trim())))),
        )
    }
}

async fn chat_completions(State(replay): State<Arc<Replay>>, body: Bytes) -> Response {
    replay.requests.fetch_add(1, Ordering::SeqCst);
    let sent: Value = serde_json::from_slice(&body).unwrap_or_default();
    replay
        .limits
        .lock()
        .unwrap()
        .push(sent["max_completion_tokens"].as_u64());
    let answer = replay.answers.lock().unwrap().pop_front();
    match answer {
        Some(Value::String(sse)) => {
            let events: Vec<String> = sse.split("\n\n").map(str::to_owned).collect();
            let events = events.into_iter().filter(|e| !e.trim().is_empty());
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(Events(
                    events.collect::<Vec<_>>().into_iter(),
                )))
                .expect("a response")
        }
        Some(json) => (
            [(header::CONTENT_TYPE, "application/json")],
            json.to_string(),
        )
            .into_response(),
        None => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "nothing recorded",
        )
            .into_response(),
    }
}

async fn start_server(replay: Arc<Replay>) -> std::io::Result<String> {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .with_state(replay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/v1"))
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reqwest's rustls needs a crypto provider: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let replay = Arc::new(Replay::default());
    let base = start_server(replay.clone()).await?;
    let client = Client::with_config(
        OpenAIConfig::new()
            .with_api_key("sk-local")
            .with_api_base(base),
    );

    let engine = Engine::in_memory();
    let run = Ledger::new("openai", "chat", "agent-run:1");
    engine.set_budget(&run, Budget::lifetime(dec!(0.05))?);
    let guard = ChatGuard::new(&engine, run.clone()).fit_to_remaining(256);
    println!("agent run budget 0.05; the local server replays recorded OpenAI answers");

    // 1. The first turn: the model picks a tool.
    let (mut request, answer) = recorded(TOOL_TURN);
    replay.answers.lock().unwrap().push_back(answer);
    let worst = guard.estimate(&request)?;
    println!(
        "1. {} with {} tools: worst case {} ({} prompt tokens counted, up to {} output tokens)",
        request.model,
        request.tools.as_ref().map_or(0, Vec::len),
        worst.cost,
        worst.prompt_tokens,
        worst.max_output_tokens
    );
    let done = guard
        .create(request.clone(), |r| async { client.chat().create(r).await })
        .await?;
    println!(
        "   sent with max_completion_tokens {}, reserved {}, charged {} (usage {:?})",
        done.estimate.max_output_tokens,
        done.estimate.cost,
        done.charged,
        done.response
            .usage
            .as_ref()
            .map(|u| (u.prompt_tokens, u.completion_tokens))
    );
    let message = &done.response.choices[0].message;
    let calls = message.tool_calls.clone().unwrap_or_default();
    // The agent runs the tools the model called.
    let mut results = Vec::new();
    for call in &calls {
        if let ChatCompletionMessageToolCalls::Function(call) = call {
            let output = match call.function.name.as_str() {
                "get_user_country" => "Mexico",
                _ => "unknown tool",
            };
            println!(
                "   tool {}({}) -> {output}",
                call.function.name, call.function.arguments
            );
            results.push(ChatCompletionRequestMessage::Tool(
                ChatCompletionRequestToolMessage {
                    content: output.into(),
                    tool_call_id: call.id.clone(),
                },
            ));
        }
    }

    // 2. The tool's answer goes back; the model answers.
    request
        .messages
        .push(ChatCompletionRequestMessage::Assistant(
            ChatCompletionRequestAssistantMessage {
                tool_calls: Some(calls),
                ..Default::default()
            },
        ));
    request.messages.extend(results);
    let (_, answer) = recorded(ANSWER_TURN);
    replay.answers.lock().unwrap().push_back(answer);
    let done = guard
        .create(request, |r| async { client.chat().create(r).await })
        .await?;
    let answer = match &done.response.choices[0].message.tool_calls {
        Some(calls) => match &calls[0] {
            ChatCompletionMessageToolCalls::Function(c) => c.function.arguments.clone(),
            ChatCompletionMessageToolCalls::Custom(c) => c.custom_tool.input.clone(),
        },
        None => done.response.choices[0]
            .message
            .content
            .clone()
            .unwrap_or_default(),
    };
    println!(
        "2. answer {answer}: sent with max_completion_tokens {}, reserved {}, charged {}",
        done.estimate.max_output_tokens, done.estimate.cost, done.charged
    );

    // 3. A streamed turn: the guard asks for the usage chunk and commits it.
    let (mut request, sse) = recorded(STREAM_TURN);
    request.stream_options = None;
    replay.answers.lock().unwrap().push_back(sse);
    let mut stream = guard
        .create_stream(request, |r| async { client.chat().create_stream(r).await })
        .await?;
    let mut text = String::new();
    while let Some(chunk) = next(&mut stream).await {
        for choice in chunk?.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or_default());
        }
    }
    println!(
        "3. streamed {text:?}: reserved {}, committed {}",
        stream.estimate(),
        stream
            .outcome()
            .and_then(|o| o.as_ref().ok())
            .map(|c| c.actual())
            .unwrap_or_default()
    );

    // 4. A long document: its prompt alone costs more than what is left.
    let document = "word ".repeat(20_000);
    let long = async_openai::types::chat::CreateChatCompletionRequestArgs::default()
        .model("gpt-4o")
        .messages([ChatCompletionRequestUserMessage::from(format!("Summarize: {document}")).into()])
        .build()?;
    let before = replay.requests.load(Ordering::SeqCst);
    match guard
        .create(long, |r| async { client.chat().create(r).await })
        .await
    {
        Err(refused @ GuardError::NothingFits { .. }) => {
            println!("4. refused before sending: {refused}");
        }
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("the long document should not have been sent".into()),
    }
    assert_eq!(replay.requests.load(Ordering::SeqCst), before);

    let status = engine.status(&run)?;
    println!(
        "the server got {} requests (limits {:?}); the run committed {}, holds {}, has {} left",
        replay.requests.load(Ordering::SeqCst),
        replay.limits.lock().unwrap(),
        status.committed(),
        status.reserved(),
        status.remaining()
    );
    Ok(())
}
