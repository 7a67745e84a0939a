//! Guarded streams: a reservation that lives as long as a [`Stream`] of
//! chunks (a streamed LLM completion), committed from what the stream says
//! it consumed.
//!
//! Reserve the worst case first, start the streamed call, then wrap its
//! stream with [`Reservation::guard_stream`] and a [`Meter`] that reads the
//! running cost from the chunks (a closure, or [`UsageMeter`] over the
//! pricing stream accumulators):
//!
//! - the stream **ends**: the last cost the meter read is committed (the
//!   estimate when it never read one — a stream without usage is never
//!   priced at zero); the outcome is [`GuardedStream::outcome`];
//! - the stream is **dropped** midway (the caller stopped reading, the task
//!   was cancelled) or yields errors: what it consumed is committed — the
//!   last cost read, else the estimate — **never released**, since streamed
//!   tokens are billed. The commit is handed to the engine's settler thread,
//!   so a destructor never blocks an executor;
//! - with [`GuardedStream::with_cutoff`], the stream stops itself once its
//!   running cost reaches the reservation: it yields `Err(`[`CutOff`]`)`,
//!   drops the inner stream (closing the connection stops the billing) and
//!   ends.
//!
//! A stream dropped while its final commit is in flight hands that commit
//! to the engine's settler, which makes sure of it by id (a commit that
//! landed is never recorded twice).
//!
//! ```
//! use budgetgate::{dec, Budget, Engine, Ledger};
//! use budgetgate::stream::UsageMeter;
//! use serde_json::json;
//! # struct Iter<I>(I);
//! # impl<I: Iterator + Unpin> budgetgate::stream::Stream for Iter<I> {
//! #     type Item = I::Item;
//! #     fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>)
//! #         -> std::task::Poll<Option<I::Item>> { std::task::Poll::Ready(self.0.next()) }
//! # }
//! # async fn next<S: budgetgate::stream::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
//! #     std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let engine = Engine::in_memory();
//! let ledger = Ledger::new("openai", "gpt-4o-mini", "user:1");
//! engine.set_budget(&ledger, Budget::lifetime(dec!(1))?);
//!
//! let held = engine.reserve_async(&ledger, dec!(0.01)).await?; // the worst case
//! // ... start the streamed request (include_usage: true) ...
//! let chunks = Iter(vec![
//!     json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
//!     json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
//!     json!({"object": "chat.completion.chunk", "choices": [],
//!            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}),
//! ].into_iter());
//! let mut stream = held.guard_stream(chunks, UsageMeter::openai("gpt-4o-mini"));
//! while let Some(_chunk) = next(&mut stream).await {}
//! // 1000 × 0.15/M + 500 × 0.60/M
//! assert_eq!(stream.outcome().unwrap().as_ref().unwrap().actual(), dec!(0.00045));
//! assert_eq!(engine.status(&ledger)?.committed(), dec!(0.00045));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## With `#[guard_bounded]`
//!
//! `stream = METER` in place of `actual`: the estimate is reserved before
//! the body runs (before the request is sent), and the stream the body
//! returns holds the reservation. The function returns
//! `Result<impl Stream<Item = …>, E>`; an `Err` from the body releases the
//! reservation (or costs what `on_error` says).
//!
//! ```
//! use budgetgate::{guard_bounded, BudgetExceeded};
//! use budgetgate::stream::{Stream, UsageMeter};
//! use serde_json::Value;
//! # struct Iter<I>(I);
//! # impl<I: Iterator + Unpin> Stream for Iter<I> {
//! #     type Item = I::Item;
//! #     fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>)
//! #         -> std::task::Poll<Option<I::Item>> { std::task::Poll::Ready(self.0.next()) }
//! # }
//! #[derive(Debug)]
//! enum ChatError { Budget(BudgetExceeded) }
//! impl From<BudgetExceeded> for ChatError {
//!     fn from(e: BudgetExceeded) -> Self { ChatError::Budget(e) }
//! }
//!
//! #[guard_bounded(
//!     ledger = ("anthropic", "claude-sonnet-4-5", user),
//!     estimate = "0.02",
//!     stream = UsageMeter::anthropic("claude-sonnet-4-5"),
//!     max_spend = "0.03",
//! )]
//! async fn chat(user: &str, prompt: &str) -> Result<impl Stream<Item = Value>, ChatError> {
//!     // ... send the streamed request ...
//!     Ok(Iter(Vec::<Value>::new().into_iter()))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let first = chat("u1", "hi").await?;               // 0.02 held for the stream's life
//! assert!(matches!(chat("u1", "again").await, Err(ChatError::Budget(_)))); // 0.04 > 0.03
//! # drop(first);
//! # Ok::<(), ChatError>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The `Stream` trait ([`futures_core::Stream`]), re-exported.
pub use futures_core::Stream;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::pricing::{AnthropicStreamUsage, OpenAiStreamUsage, PricingError, Usage};
use crate::reservation::{Commit, CommitError, Reservation};
use crate::{BudgetExceeded, Engine, Ledger};

/// A stream's final commit, boxed to live in the stream.
type CommitFuture = Pin<Box<dyn Future<Output = Result<Commit, CommitError>> + Send>>;

/// What a [`Meter`] read from one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reading {
    /// The item says nothing about cost.
    Unchanged,
    /// The cost consumed so far (cumulative, not an increment).
    SoFar(Decimal),
    /// The cost cannot be known any more (malformed usage, an unpriced
    /// model): the stream commits at least its estimate.
    Unknown,
}

/// Reads the running cost of a stream from its items.
///
/// Any `FnMut(&T) -> Option<Decimal>` is a meter: `Some(cost so far)` when
/// the item tells (cumulative), `None` when it does not.
pub trait Meter<T> {
    /// Reads one item.
    fn read(&mut self, item: &T) -> Reading;
}

impl<T, F: FnMut(&T) -> Option<Decimal>> Meter<T> for F {
    fn read(&mut self, item: &T) -> Reading {
        match self(item) {
            Some(cost) => Reading::SoFar(cost),
            None => Reading::Unchanged,
        }
    }
}

/// A usage accumulator of one provider's stream format.
#[derive(Debug, Clone)]
enum Accumulator {
    OpenAi(OpenAiStreamUsage),
    Anthropic(AnthropicStreamUsage),
}

/// A [`Meter`] over JSON stream events (`serde_json::Value`, or
/// `Result<Value, E>` whose errors say nothing): the usage accumulated by
/// [`OpenAiStreamUsage`] or [`AnthropicStreamUsage`], priced by the
/// process-wide price table ([`pricing::cost`](crate::pricing::cost)).
///
/// OpenAI streams carry usage in their last chunk only (ask for it with
/// `stream_options: {"include_usage": true}`), so a stream dropped before it
/// commits the estimate; Anthropic streams carry the running usage in every
/// `message_delta`, so a dropped stream commits what it consumed so far.
#[derive(Debug, Clone)]
pub struct UsageMeter {
    model: String,
    accumulator: Accumulator,
}

impl UsageMeter {
    /// OpenAI Chat Completions chunks, priced as `model`.
    pub fn openai(model: impl Into<String>) -> Self {
        UsageMeter {
            model: model.into(),
            accumulator: Accumulator::OpenAi(OpenAiStreamUsage::new()),
        }
    }

    /// Anthropic Messages events, priced as `model`.
    pub fn anthropic(model: impl Into<String>) -> Self {
        UsageMeter {
            model: model.into(),
            accumulator: Accumulator::Anthropic(AnthropicStreamUsage::new()),
        }
    }

    fn push(&mut self, event: &Value) -> Result<Option<Usage>, PricingError> {
        match &mut self.accumulator {
            Accumulator::OpenAi(a) => a.push(event),
            Accumulator::Anthropic(a) => a.push(event),
        }
    }
}

impl Meter<Value> for UsageMeter {
    fn read(&mut self, event: &Value) -> Reading {
        let priced = self.push(event).and_then(|usage| {
            usage
                .map(|u| crate::pricing::cost(&self.model, &u))
                .transpose()
        });
        match priced {
            Ok(Some(cost)) => Reading::SoFar(cost),
            Ok(None) => Reading::Unchanged,
            Err(error) => {
                tracing::warn!(model = %self.model, %error,
                    "stream usage could not be priced; the stream commits at least its estimate");
                Reading::Unknown
            }
        }
    }
}

impl<E> Meter<Result<Value, E>> for UsageMeter {
    fn read(&mut self, item: &Result<Value, E>) -> Reading {
        match item {
            Ok(event) => self.read(event),
            Err(_) => Reading::Unchanged,
        }
    }
}

/// A stream stopped because its running cost reached its reservation
/// ([`GuardedStream::with_cutoff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream cut off: it consumed {consumed}, its reservation was {reserved}")]
pub struct CutOff {
    /// What it had consumed when it was stopped (committed).
    pub consumed: Decimal,
    /// What was reserved for it.
    pub reserved: Decimal,
}

/// The money side of a guarded stream: the reservation until it is
/// settled, and what was read so far. Its destructor commits what was
/// consumed (see the module docs).
struct Tab {
    reservation: Option<Reservation<'static>>,
    estimate: Decimal,
    consumed: Option<Decimal>,
    /// A reading was [`Reading::Unknown`]: commit at least the estimate.
    unknown: bool,
    /// The final commit, in flight; dropped before the store answered, it
    /// is handed to the settler (by id: never twice).
    /// The final commit in flight (`commit_async`, which makes sure of
    /// itself if this stream is dropped first).
    committing: Option<CommitFuture>,
    outcome: Option<Result<Commit, CommitError>>,
}

impl std::fmt::Debug for Tab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tab")
            .field("reservation", &self.reservation)
            .field("estimate", &self.estimate)
            .field("consumed", &self.consumed)
            .field("unknown", &self.unknown)
            .field("committing", &self.committing.is_some())
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl Tab {
    /// What the stream consumed, as far as anyone can tell.
    fn consumed(&self) -> Decimal {
        match self.consumed {
            Some(cost) if self.unknown => cost.max(self.estimate),
            Some(cost) => cost,
            None => self.estimate,
        }
    }

    fn read(&mut self, reading: Reading) {
        match reading {
            Reading::Unchanged => {}
            // Not normalized here (a 96-bit division a chunk): when read out.
            Reading::SoFar(cost) => self.consumed = Some(cost),
            Reading::Unknown => self.unknown = true,
        }
    }

    /// Starts the final commit (once).
    fn finish(&mut self, why: &'static str) {
        if let Some(reservation) = self.reservation.take() {
            let actual = self.consumed().normalize();
            if self.consumed.is_none() {
                tracing::warn!(ledger = %reservation.ledger(), estimate = %self.estimate, why,
                    "a guarded stream read no cost; committing its estimate");
            }
            self.committing = Some(Box::pin(reservation.commit_async(actual)));
        }
    }

    /// Drives the final commit; ready once its outcome is known.
    fn poll_commit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(commit) = self.committing.as_mut() {
            match Pin::new(commit).poll(cx) {
                Poll::Ready(outcome) => {
                    if let Err(error) = &outcome {
                        tracing::error!(%error, "the commit of a guarded stream did not go as asked");
                    }
                    self.committing = None;
                    self.outcome = Some(outcome);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            let actual = self.consumed().normalize();
            tracing::info!(ledger = %reservation.ledger(), %actual, estimate = %self.estimate,
                "guarded stream dropped before its end; committing what it consumed");
            reservation.commit_in_background(actual);
        }
        // A `committing` still in flight makes sure of itself when dropped.
    }
}

pin_project_lite::pin_project! {
    /// A stream that holds a reservation for its life and commits what it
    /// consumed when it ends or is dropped (see the [module docs](self)).
    /// Yields the inner stream's items unchanged.
    #[must_use = "streams do nothing unless polled; dropping it commits the estimate"]
    pub struct GuardedStream<S, M> {
        #[pin]
        inner: Option<S>,
        meter: M,
        tab: Tab,
    }
}

pin_project_lite::pin_project! {
    /// A [`GuardedStream`] that stops itself when its running cost reaches
    /// its reservation, yielding `Err(CutOff)` last. Items are `Ok(item)`
    /// until then.
    #[must_use = "streams do nothing unless polled; dropping it commits what it consumed"]
    pub struct CutoffStream<S, M> {
        #[pin]
        guarded: GuardedStream<S, M>,
        cut: Option<CutOff>,
    }
}

impl<S, M> std::fmt::Debug for GuardedStream<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream")
            .field("tab", &self.tab)
            .finish()
    }
}

impl<'e> Reservation<'e> {
    /// Hands this reservation to `stream` for its life: the stream commits
    /// what `meter` reads it consumed when it ends or is dropped (see
    /// [`stream`](crate::stream)).
    pub fn guard_stream<S, M>(self, stream: S, meter: M) -> GuardedStream<S, M>
    where
        S: Stream,
        M: Meter<S::Item>,
    {
        let estimate = self.estimate();
        let reservation = self.into_owned();
        GuardedStream {
            inner: Some(stream),
            meter,
            tab: Tab {
                reservation: Some(reservation),
                estimate,
                consumed: None,
                unknown: false,
                committing: None,
                outcome: None,
            },
        }
    }
}

impl Engine {
    /// Reserves `estimate` on `ledger` and guards `stream` with it
    /// ([`Reservation::guard_stream`]). Prefer reserving before starting
    /// the streamed request when the request itself costs money.
    pub async fn reserve_stream<S, M>(
        &self,
        ledger: &Ledger,
        estimate: Decimal,
        stream: S,
        meter: M,
    ) -> Result<GuardedStream<S, M>, BudgetExceeded>
    where
        S: Stream,
        M: Meter<S::Item>,
    {
        Ok(self
            .reserve_async(ledger, estimate)
            .await?
            .guard_stream(stream, meter))
    }
}

impl<S, M> GuardedStream<S, M> {
    /// What was reserved for the stream.
    pub fn estimate(&self) -> Decimal {
        self.tab.estimate
    }

    /// What the stream consumed so far, as it would be committed now: the
    /// last cost the meter read (at least the estimate after an unknown
    /// reading), else the estimate.
    pub fn consumed(&self) -> Decimal {
        self.tab.consumed().normalize()
    }

    /// The last cost the meter read, if any.
    pub fn cost_read(&self) -> Option<Decimal> {
        self.tab.consumed.map(|c| c.normalize())
    }

    /// The outcome of the final commit, once the stream has ended.
    pub fn outcome(&self) -> Option<&Result<Commit, CommitError>> {
        self.tab.outcome.as_ref()
    }

    /// Stops the stream once its running cost reaches the reservation
    /// (`consumed ≥ estimate`): the item that reached it is yielded, then
    /// `Err(CutOff)`, then the end. Items become `Result<S::Item, CutOff>`.
    pub fn with_cutoff(self) -> CutoffStream<S, M> {
        CutoffStream {
            guarded: self,
            cut: None,
        }
    }
}

impl<S, M> GuardedStream<S, M>
where
    S: Stream,
    M: Meter<S::Item>,
{
    /// Ends the stream early (the cutoff): drops the inner stream and
    /// starts the commit.
    fn stop(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.inner.set(None);
        this.tab.finish("cut off");
    }
}

impl<S, M> Stream for GuardedStream<S, M>
where
    S: Stream,
    M: Meter<S::Item>,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            match inner.poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.tab.read(this.meter.read(&item));
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {
                    this.inner.set(None);
                    this.tab.finish("ended");
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        this.tab.poll_commit(cx).map(|()| None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => (0, Some(0)),
        }
    }
}

impl<S, M> CutoffStream<S, M> {
    /// The guarded stream inside.
    pub fn get_ref(&self) -> &GuardedStream<S, M> {
        &self.guarded
    }
}

impl<S, M> Stream for CutoffStream<S, M>
where
    S: Stream,
    M: Meter<S::Item>,
{
    type Item = Result<S::Item, CutOff>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Some(cut) = this.cut.take() {
            // Yield the cutoff only once its commit is settled, so the
            // caller who sees it sees the store agree.
            let tab = this.guarded.as_mut().project().tab;
            if tab.poll_commit(cx).is_pending() {
                *this.cut = Some(cut);
                return Poll::Pending;
            }
            // `cut` is consumed: later polls see the inner stream gone.
            return Poll::Ready(Some(Err(cut)));
        }
        match this.guarded.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => {
                let reserved = this.guarded.estimate();
                if let Some(consumed) = this.guarded.tab.consumed.filter(|c| *c >= reserved) {
                    let consumed = consumed.normalize();
                    tracing::info!(%consumed, %reserved,
                        "guarded stream reached its reservation; cutting it off");
                    this.guarded.as_mut().stop();
                    *this.cut = Some(CutOff { consumed, reserved });
                }
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
