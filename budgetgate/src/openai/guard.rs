//! [`ChatGuard`]: reserve a request's worst case, run the call, commit its
//! usage's cost; streams and the fit-to-remaining policy.

use std::future::Future;
use std::sync::Arc;

use async_openai::types::chat::{
    ChatCompletionStreamOptions, CreateChatCompletionRequest, CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
};
use rust_decimal::Decimal;

use super::estimate::{self, Assume, Estimate, OutputLimit};
use super::{table_or_global, EstimateError};
use crate::pricing::{PriceTable, PricingError, Region};
use crate::stream::{GuardedStream, Meter, Reading, Stream};
use crate::{BudgetExceeded, Commit, CommitError, Engine, Ledger, Reservation};

/// Why a guarded call did not run (or, for [`GuardError::Call`], failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError<E> {
    /// The request could not be estimated; nothing was reserved or sent.
    #[error("the request could not be estimated: {0}")]
    Estimate(#[from] EstimateError),
    /// The budget refused the reservation (its decision says why and by
    /// how much); nothing was sent.
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
    /// Fit to remaining: not even the minimum output fits what the ledger
    /// has left; nothing was reserved or sent.
    #[error(
        "not even {min_output_tokens} output tokens fit: {remaining} remaining, the prompt alone \
         costs up to {prompt_cost}, with {min_output_tokens} output tokens up to {min_cost}"
    )]
    NothingFits {
        /// What the ledger had left.
        remaining: Decimal,
        /// The worst case of the prompt with no output at all.
        prompt_cost: Decimal,
        /// The minimum output asked for ([`ChatGuard::fit_to_remaining`]).
        min_output_tokens: u32,
        /// The worst case with that minimum.
        min_cost: Decimal,
    },
    /// The call itself failed; its reservation was released.
    #[error("the call failed: {0}")]
    Call(E),
}

/// A completed guarded call: the response, and what was charged for it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Completion {
    /// The response, as the call returned it.
    pub response: CreateChatCompletionResponse,
    /// The worst case that was reserved (lowered if fit to remaining).
    pub estimate: Estimate,
    /// What was committed: the usage's cost, or the estimate when the usage
    /// could not be priced ([`Completion::usage_error`]).
    pub charged: Decimal,
    /// Why the usage could not be priced, if it could not.
    pub usage_error: Option<PricingError>,
    /// The commit's outcome (a commit the store did not confirm in time
    /// is retried in the background: see [`CommitError`]).
    pub commit: Result<Commit, CommitError>,
}

/// Guards async-openai chat completion calls on one ledger: see the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct ChatGuard {
    engine: Engine,
    ledger: Ledger,
    fit: Option<u32>,
    region: Option<Region>,
    table: Option<Arc<PriceTable>>,
}

impl ChatGuard {
    /// Calls charged to `ledger` on `engine`, priced by the process-wide
    /// table, refused when their worst case does not fit.
    pub fn new(engine: &Engine, ledger: Ledger) -> ChatGuard {
        ChatGuard {
            engine: engine.clone(),
            ledger,
            fit: None,
            region: None,
            table: None,
        }
    }

    /// Opt in to fit to remaining: a request whose worst case does not fit
    /// is sent with its output limit lowered to the most that fits, unless
    /// fewer than `min_output_tokens` would (then it is refused with
    /// [`GuardError::NothingFits`]; a minimum of 0 is taken as 1, the
    /// least a request may ask for). Each choice gets the lowered limit.
    ///
    /// ```
    /// use async_openai::types::chat::{
    ///     ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
    /// };
    /// use budgetgate::openai::{ChatGuard, GuardError};
    /// use budgetgate::{dec, Budget, Engine, Ledger};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = Engine::in_memory();
    /// let user = Ledger::new("openai", "gpt-4o-mini", "user:7");
    /// engine.set_budget(&user, Budget::lifetime(dec!(0.001))?);
    /// let guard = ChatGuard::new(&engine, user).fit_to_remaining(16);
    /// let request = CreateChatCompletionRequestArgs::default()
    ///     .model("gpt-4o-mini")
    ///     .messages([ChatCompletionRequestUserMessage::from("hello").into()])
    ///     .build()?; // no limit: up to 16,384 output tokens, more than 0.001 buys
    /// let sent = std::sync::Mutex::new(None);
    /// let sent_to = &sent;
    /// let result = guard
    ///     .create(request, |r: CreateChatCompletionRequest| async move {
    ///         *sent_to.lock().unwrap() = r.max_completion_tokens;
    ///         Err::<async_openai::types::chat::CreateChatCompletionResponse, _>("no server here")
    ///     })
    ///     .await;
    /// assert!(matches!(result, Err(GuardError::Call(_))));
    /// // At the dearest prices (priority 0.25 / 1.00 per million, FedRAMP's
    /// // 1.1 times), 8 prompt tokens and 907 output tokens are at most 0.001.
    /// assert_eq!(*sent.lock().unwrap(), Some(907));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn fit_to_remaining(mut self, min_output_tokens: u32) -> Self {
        self.fit = Some(min_output_tokens.max(1));
        self
    }

    /// Calls are processed in `region` (data residency): the estimate
    /// counts that region's multiplier only, and the actual is priced
    /// there. Unset, the estimate takes the dearest region the model has
    /// and the actual is priced as [`Region::Global`].
    ///
    /// ```
    /// use async_openai::types::chat::CreateChatCompletionRequest;
    /// use budgetgate::openai::ChatGuard;
    /// use budgetgate::pricing::Region;
    /// use budgetgate::{dec, Engine, Ledger};
    /// let request: CreateChatCompletionRequest = serde_json::from_value(serde_json::json!({
    ///     "model": "gpt-4o-mini", "service_tier": "default", "max_completion_tokens": 100,
    ///     "messages": [{"role": "user", "content": "hello"}]}))?;
    /// let guard = ChatGuard::new(&Engine::in_memory(), Ledger::new("openai", "chat", "u"));
    /// // Any region: FedRAMP's 1.1 times counted.
    /// assert_eq!(guard.estimate(&request)?.cost, dec!(0.00006732));
    /// let global = guard.region(Region::Global);
    /// assert_eq!(global.estimate(&request)?.cost, dec!(0.0000612)); // 8 × 0.15/M + 100 × 0.60/M
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn region(mut self, region: Region) -> Self {
        self.region = Some(region);
        self
    }

    /// Prices with `table` instead of the process-wide one.
    pub fn price_table(mut self, table: Arc<PriceTable>) -> Self {
        self.table = Some(table);
        self
    }

    /// The ledger calls are charged to.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The worst case of `request` as this guard prices it.
    pub fn estimate(
        &self,
        request: &CreateChatCompletionRequest,
    ) -> Result<Estimate, EstimateError> {
        estimate::estimate_in(
            &table_or_global(&self.table),
            request,
            Assume {
                region: self.region,
            },
        )
    }

    /// Reserves the worst case of `request` (fitting it to what is left if
    /// opted in), then runs `call` with the request (its output limit
    /// lowered, if fitted) and commits the response's usage's cost. A
    /// failed call releases the reservation ([`GuardError::Call`]), and so
    /// does a cancelled one (the future dropped before the response), as
    /// for `#[guard_bounded]`. See the [module docs](super) for an example.
    pub async fn create<F, Fut, E>(
        &self,
        request: CreateChatCompletionRequest,
        call: F,
    ) -> Result<Completion, GuardError<E>>
    where
        F: FnOnce(CreateChatCompletionRequest) -> Fut,
        Fut: Future<Output = Result<CreateChatCompletionResponse, E>>,
    {
        let table = table_or_global(&self.table);
        let (request, estimate, reservation) = self.admit(&table, request).await?;
        let response = call(request).await.map_err(GuardError::Call)?;
        let priced = estimate::cost_in(&table, &estimate.model, &response, self.region);
        let (charged, usage_error) = match priced {
            Ok(cost) => (cost, None),
            Err(error) => {
                tracing::warn!(ledger = %self.ledger, model = %estimate.model, %error,
                    "the response's usage could not be priced; committing the estimate");
                (estimate.cost, Some(error))
            }
        };
        let commit = reservation.commit_async(charged).await;
        Ok(Completion {
            response,
            estimate,
            charged,
            usage_error,
            commit,
        })
    }

    /// [`ChatGuard::create`] for a streamed call: sets `stream: true` and
    /// `stream_options.include_usage: true`, reserves, runs `call`, and
    /// returns its stream holding the reservation, metered by
    /// [`ChunkMeter`]: the last chunk's usage is committed when the stream
    /// ends, what it consumed (the estimate, until that chunk) when it is
    /// dropped. A failed call releases the reservation.
    ///
    /// ```
    /// use async_openai::types::chat::{
    ///     ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs, CreateChatCompletionStreamResponse,
    /// };
    /// use budgetgate::openai::ChatGuard;
    /// use budgetgate::stream::Stream;
    /// use budgetgate::{dec, Budget, Engine, Ledger};
    /// # struct Iter<I>(I);
    /// # impl<I: Iterator + Unpin> Stream for Iter<I> {
    /// #     type Item = I::Item;
    /// #     fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>)
    /// #         -> std::task::Poll<Option<I::Item>> { std::task::Poll::Ready(self.0.next()) }
    /// # }
    /// # async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    /// #     std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let engine = Engine::in_memory();
    /// let user = Ledger::new("openai", "gpt-4o-mini", "user:7");
    /// engine.set_budget(&user, Budget::daily(dec!(1))?);
    /// let request = CreateChatCompletionRequestArgs::default()
    ///     .model("gpt-4o-mini")
    ///     .messages([ChatCompletionRequestUserMessage::from("hello").into()])
    ///     .max_completion_tokens(50u32)
    ///     .build()?;
    /// let chunk = |v| serde_json::from_value::<CreateChatCompletionStreamResponse>(v).unwrap();
    /// let mut stream = ChatGuard::new(&engine, user.clone())
    ///     .create_stream(request, |r| async move {
    ///         assert_eq!(r.stream_options.unwrap().include_usage, Some(true));
    ///         // client.chat().create_stream(r).await, with your client
    ///         Ok::<_, std::convert::Infallible>(Iter(vec![
    ///             Ok::<_, std::convert::Infallible>(chunk(serde_json::json!({"id": "c", "object": "chat.completion.chunk",
    ///                 "created": 1, "model": "gpt-4o-mini", "choices": [{"index": 0,
    ///                 "delta": {"content": "Hi"}}]}))),
    ///             Ok(chunk(serde_json::json!({"id": "c", "object": "chat.completion.chunk",
    ///                 "created": 1, "model": "gpt-4o-mini", "choices": [],
    ///                 "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}}))),
    ///         ].into_iter()))
    ///     })
    ///     .await?;
    /// while next(&mut stream).await.is_some() {}
    /// assert_eq!(engine.status(&user)?.committed(), dec!(0.0000024)); // 8 × 0.15/M + 2 × 0.60/M
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn create_stream<F, Fut, S, E>(
        &self,
        mut request: CreateChatCompletionRequest,
        call: F,
    ) -> Result<GuardedStream<S, ChunkMeter>, GuardError<E>>
    where
        F: FnOnce(CreateChatCompletionRequest) -> Fut,
        Fut: Future<Output = Result<S, E>>,
        S: Stream,
        ChunkMeter: Meter<S::Item>,
    {
        request.stream = Some(true);
        let options = request
            .stream_options
            .get_or_insert_with(ChatCompletionStreamOptions::default);
        options.include_usage = Some(true);
        let table = table_or_global(&self.table);
        let (request, estimate, reservation) = self.admit(&table, request).await?;
        let stream = call(request).await.map_err(GuardError::Call)?;
        let meter = ChunkMeter {
            model: estimate.model,
            table,
            region: self.region,
        };
        Ok(reservation.guard_stream(stream, meter))
    }

    /// Estimates and reserves (fitting to what is left if opted in): the
    /// request to send, its worst case, and the reservation.
    async fn admit<E>(
        &self,
        table: &PriceTable,
        mut request: CreateChatCompletionRequest,
    ) -> Result<(CreateChatCompletionRequest, Estimate, Reservation<'_>), GuardError<E>> {
        let mut estimate = estimate::estimate_in(
            table,
            &request,
            Assume {
                region: self.region,
            },
        )?;
        if let Some(min_output_tokens) = self.fit {
            // No status (no registered budget, a store error): the
            // reservation below decides as it would without the policy.
            if let Ok(status) = self.engine.status_async(&self.ledger).await {
                let remaining = status.remaining();
                if estimate.cost > remaining {
                    let pricing = |e: PricingError| GuardError::Estimate(e.into());
                    let fitted = estimate.fit(table, remaining).map_err(pricing)?;
                    match fitted {
                        Some((tokens, cost)) if tokens >= u64::from(min_output_tokens) => {
                            let limit = u32::try_from(tokens).unwrap_or(u32::MAX);
                            tracing::info!(ledger = %self.ledger, model = %estimate.model,
                                from = estimate.max_output_tokens, to = limit, %remaining,
                                "lowering the output limit to fit the remaining budget");
                            #[allow(deprecated)]
                            match estimate.output_limit {
                                OutputLimit::MaxTokens => request.max_tokens = Some(limit),
                                _ => request.max_completion_tokens = Some(limit),
                            }
                            estimate.fitted_from = Some(estimate.max_output_tokens);
                            estimate.max_output_tokens = u64::from(limit);
                            estimate.cost = cost;
                        }
                        _ => {
                            return Err(GuardError::NothingFits {
                                remaining,
                                prompt_cost: estimate.cost_with(table, 0).map_err(pricing)?,
                                min_output_tokens,
                                min_cost: estimate
                                    .cost_with(table, u64::from(min_output_tokens))
                                    .map_err(pricing)?,
                            })
                        }
                    }
                }
            }
        }
        let reservation = self
            .engine
            .reserve_async(&self.ledger, estimate.cost)
            .await?;
        Ok((request, estimate, reservation))
    }
}

/// The [`Meter`] of a guarded chat completion stream: the cost of the usage
/// its last chunk carries (`stream_options.include_usage`), at the service
/// tier the chunk reports, priced as the request's model. Usage that
/// cannot be priced is [`Reading::Unknown`] (the stream then commits at
/// least its estimate); stream errors say nothing.
#[derive(Debug, Clone)]
pub struct ChunkMeter {
    model: String,
    table: Arc<PriceTable>,
    region: Option<Region>,
}

impl ChunkMeter {
    /// Chunks priced as `model` on the process-wide table, as
    /// [`Region::Global`] (what [`ChatGuard::create_stream`] uses, for a
    /// stream guarded by hand with [`Reservation::guard_stream`]).
    ///
    /// ```
    /// use async_openai::types::chat::CreateChatCompletionStreamResponse;
    /// use budgetgate::openai::ChunkMeter;
    /// use budgetgate::stream::{Meter, Reading};
    /// use budgetgate::dec;
    /// let mut meter = ChunkMeter::new("gpt-4o-mini");
    /// let last: CreateChatCompletionStreamResponse = serde_json::from_value(serde_json::json!({
    ///     "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
    ///     "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}}))?;
    /// assert_eq!(meter.read(&last), Reading::SoFar(dec!(0.0000024)));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn new(model: impl Into<String>) -> ChunkMeter {
        ChunkMeter {
            model: model.into(),
            table: crate::pricing::table(),
            region: None,
        }
    }
}

impl Meter<CreateChatCompletionStreamResponse> for ChunkMeter {
    fn read(&mut self, chunk: &CreateChatCompletionStreamResponse) -> Reading {
        let Some(usage) = chunk.usage.as_ref() else {
            return Reading::Unchanged;
        };
        let priced = estimate::usage_of(Some(usage), chunk.service_tier.as_ref(), self.region)
            .and_then(|u| self.table.cost(&self.model, &u));
        match priced {
            Ok(cost) => Reading::SoFar(cost),
            Err(error) => {
                tracing::warn!(model = %self.model, %error,
                    "stream usage could not be priced; the stream commits at least its estimate");
                Reading::Unknown
            }
        }
    }
}

impl<E> Meter<Result<CreateChatCompletionStreamResponse, E>> for ChunkMeter {
    fn read(&mut self, item: &Result<CreateChatCompletionStreamResponse, E>) -> Reading {
        match item {
            Ok(chunk) => self.read(chunk),
            Err(_) => Reading::Unchanged,
        }
    }
}
