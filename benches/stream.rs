//! Guarded-stream benchmarks (issue #17). Run: `cargo bench --bench stream`.
//!
//! Per-chunk overhead: the same 1,000 chunks polled through a bare stream
//! and through a `GuardedStream`, in the same run. The reservation is made
//! in the (untimed) setup and the stream is dropped after the timing, so
//! the timed part is the polling alone; `per_stream/*` times what a stream
//! adds once (reserve, and the final commit through the settler).

use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use budgetgate::stream::{Stream, UsageMeter};
use budgetgate::{dec, Budget, Decimal, Engine, Ledger, MemoryStore};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};

const CHUNKS: usize = 1_000;

/// A stream over a vector, always ready.
struct Chunks<T>(std::vec::IntoIter<T>);

impl<T> Stream for Chunks<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
        Poll::Ready(self.0.next())
    }
}
impl<T> Unpin for Chunks<T> {}

/// Polls `n` items out of an always-ready stream.
fn take<S: Stream + Unpin>(stream: &mut S, n: usize) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        match Pin::new(&mut *stream).poll_next(&mut cx) {
            Poll::Ready(Some(item)) => {
                black_box(item);
            }
            _ => unreachable!("the bench stream has {CHUNKS} chunks"),
        }
    }
}

fn openai_chunk(i: usize) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
           "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": format!("t{i}")},
           "finish_reason": null}], "usage": null})
}

fn per_chunk(c: &mut Criterion) {
    let engine = Engine::new(MemoryStore::new());
    let ledger = Ledger::new("llm", "bench", "user:1");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1000000000)).unwrap());
    let mut g = c.benchmark_group("stream_per_chunk");
    g.throughput(Throughput::Elements(CHUNKS as u64));

    let tokens = || (0..CHUNKS as u64).collect::<Vec<u64>>();
    g.bench_function("unguarded/u64", |b| {
        b.iter_batched(
            || Chunks(tokens().into_iter()),
            |mut s| {
                take(&mut s, CHUNKS);
                s
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("guarded/u64_closure_meter", |b| {
        b.iter_batched(
            || {
                let held = engine.reserve(&ledger, dec!(1)).unwrap();
                let mut n = 0u64;
                let meter = move |t: &u64| {
                    n += t;
                    Some(Decimal::new(n as i64, 9))
                };
                held.guard_stream(Chunks(tokens().into_iter()), meter)
            },
            |mut s| {
                take(&mut s, CHUNKS);
                s // dropped untimed (its commit goes to the settler)
            },
            BatchSize::SmallInput,
        )
    });

    let chunks: Vec<Value> = (0..CHUNKS).map(openai_chunk).collect();
    g.bench_function("unguarded/openai_json", |b| {
        b.iter_batched(
            || Chunks(chunks.clone().into_iter()),
            |mut s| {
                take(&mut s, CHUNKS);
                s
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("guarded/openai_json_usage_meter", |b| {
        b.iter_batched(
            || {
                let held = engine.reserve(&ledger, dec!(1)).unwrap();
                held.guard_stream(
                    Chunks(chunks.clone().into_iter()),
                    UsageMeter::openai("gpt-4o-mini"),
                )
            },
            |mut s| {
                take(&mut s, CHUNKS);
                s
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    engine.wait_settled(std::time::Duration::from_secs(60));
}

fn per_stream(c: &mut Criterion) {
    let engine = Engine::new(MemoryStore::new());
    let ledger = Ledger::new("llm", "bench", "user:2");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1000000000)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("stream_per_stream");
    g.bench_function("reserve_commit_async/baseline", |b| {
        b.iter(|| {
            rt.block_on(async {
                let held = engine.reserve_async(&ledger, dec!(1)).await.unwrap();
                held.commit_async(dec!(0.5)).await.unwrap()
            })
        })
    });
    g.bench_function("guarded_one_chunk_to_end", |b| {
        b.iter(|| {
            rt.block_on(async {
                let held = engine.reserve_async(&ledger, dec!(1)).await.unwrap();
                let mut s =
                    held.guard_stream(Chunks(vec![1u64].into_iter()), |_: &u64| Some(dec!(0.5)));
                while std::future::poll_fn(|cx| Pin::new(&mut s).poll_next(cx))
                    .await
                    .is_some()
                {}
                black_box(s.outcome().is_some())
            })
        })
    });
    g.finish();
}

criterion_group!(benches, per_chunk, per_stream);
criterion_main!(benches);
