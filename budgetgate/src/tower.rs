//! A [`tower`](https://docs.rs/tower) layer for HTTP services (axum, tonic,
//! hyper): every request is admitted against a budget *before* it reaches
//! the inner service.
//!
//! - the **ledger** comes from the request (a closure: a header, the
//!   authenticated user, the route), and optionally more ledgers charged
//!   with it all or nothing (a team, an organisation:
//!   [`BudgetLayer::and_ledgers`]);
//! - the **cost** is fixed per request ([`BudgetLayer::fixed`], checked and
//!   recorded in one step), or bounded ([`BudgetLayer::bounded`]: an
//!   estimate from the request is reserved, and the actual read from the
//!   response is committed — made sure of by the engine's settler if the
//!   request future is dropped while the store answers; an inner service
//!   error, or a request future dropped before the inner service answered,
//!   releases the hold);
//! - a refused request **never reaches the inner service**: it is answered
//!   by the refusal, which the user can shape ([`BudgetLayer::refuse_with`]).
//!   The default answers the decision's JSON ([`Decision::to_json`]) with
//!   `429 Too Many Requests` when the budget has a window (it will have room
//!   again), `402 Payment Required` when it is a lifetime cap or no budget
//!   applies, `503 Service Unavailable` when the store failed (fail-closed)
//!   or spending is paused, `500` for an invalid amount.
//!
//! The layer implements `tower_layer::Layer` and the service
//! `tower_service::Service` — the traits tower 0.5 re-exports, so it goes in
//! a `tower::ServiceBuilder` or `axum::Router::layer` as is.
//!
//! ```
//! use budgetgate::{dec, Budget, Engine, Ledger};
//! use budgetgate::tower::BudgetLayer;
//! use http::{Request, Response};
//! use tower_layer::Layer;
//! use tower_service::Service;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let engine = Engine::in_memory();
//! engine.set_budget_per_principal("api", "search", Budget::lifetime(dec!(0.02))?);
//!
//! let layer = BudgetLayer::fixed(
//!     engine.clone(),
//!     |req: &Request<String>| {
//!         let user = req.headers().get("x-user").and_then(|v| v.to_str().ok()).unwrap_or("anonymous");
//!         Ledger::new("api", "search", user)
//!     },
//!     |_: &Request<String>| dec!(0.01),
//! );
//! let inner = tower_service_fn(|_req: Request<String>| Response::new("results".to_string()));
//! let mut service = layer.layer(inner);
//!
//! let request = || Request::builder().header("x-user", "u1").body(String::new()).unwrap();
//! assert_eq!(service.call(request()).await?.status(), 200);
//! assert_eq!(service.call(request()).await?.status(), 200);
//! let refused = service.call(request()).await?; // 0.03 > 0.02
//! assert_eq!(refused.status(), 402);
//! assert!(refused.body().contains("\"status\":\"BLOCK\""));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! # #[derive(Clone)]
//! # struct Fn_<F>(F);
//! # fn tower_service_fn<F>(f: F) -> Fn_<F> { Fn_(f) }
//! # impl<F: FnMut(Request<String>) -> Response<String>> Service<Request<String>> for Fn_<F> {
//! #     type Response = Response<String>;
//! #     type Error = std::convert::Infallible;
//! #     type Future = std::future::Ready<Result<Response<String>, std::convert::Infallible>>;
//! #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
//! #         std::task::Poll::Ready(Ok(()))
//! #     }
//! #     fn call(&mut self, req: Request<String>) -> Self::Future { std::future::ready(Ok((self.0)(req))) }
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response, StatusCode};
use rust_decimal::Decimal;

use crate::{BlockReason, Decision, Engine, Ledger, Window};

type LedgerFn<B> = dyn Fn(&Request<B>) -> Ledger + Send + Sync;
type LedgersFn<B> = dyn Fn(&Request<B>) -> Vec<Ledger> + Send + Sync;
type RequestCostFn<B> = dyn Fn(&Request<B>) -> Decimal + Send + Sync;
type ResponseCostFn<B> = dyn Fn(&Response<B>) -> Decimal + Send + Sync;
type RefuseFn<B> = dyn Fn(&Decision) -> Response<B> + Send + Sync;

/// How a request is priced.
enum Cost<ReqB, ResB> {
    /// Checked and recorded before the inner service runs.
    Fixed(Arc<RequestCostFn<ReqB>>),
    /// The estimate reserved before; the actual committed from the response.
    Bounded {
        estimate: Arc<RequestCostFn<ReqB>>,
        actual: Arc<ResponseCostFn<ResB>>,
    },
}

impl<ReqB, ResB> Clone for Cost<ReqB, ResB> {
    fn clone(&self) -> Self {
        match self {
            Cost::Fixed(c) => Cost::Fixed(c.clone()),
            Cost::Bounded { estimate, actual } => Cost::Bounded {
                estimate: estimate.clone(),
                actual: actual.clone(),
            },
        }
    }
}

struct Config<ReqB, ResB> {
    engine: Engine,
    ledger: Arc<LedgerFn<ReqB>>,
    /// A hierarchy's other ledgers ([`BudgetLayer::and_ledgers`]).
    others: Option<Arc<LedgersFn<ReqB>>>,
    cost: Cost<ReqB, ResB>,
    refuse: Arc<RefuseFn<ResB>>,
}

// By hand: a derive would ask the body types to be `Clone`.
impl<ReqB, ResB> Clone for Config<ReqB, ResB> {
    fn clone(&self) -> Self {
        Config {
            engine: self.engine.clone(),
            ledger: self.ledger.clone(),
            others: self.others.clone(),
            cost: self.cost.clone(),
            refuse: self.refuse.clone(),
        }
    }
}

/// A tower layer that admits every request against a budget before the
/// inner service sees it (see the [module docs](self)).
pub struct BudgetLayer<ReqB, ResB> {
    config: Arc<Config<ReqB, ResB>>,
}

impl<ReqB, ResB> Clone for BudgetLayer<ReqB, ResB> {
    fn clone(&self) -> Self {
        BudgetLayer {
            config: self.config.clone(),
        }
    }
}

impl<ReqB, ResB> std::fmt::Debug for BudgetLayer<ReqB, ResB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cost = match self.config.cost {
            Cost::Fixed(_) => "fixed",
            Cost::Bounded { .. } => "bounded",
        };
        f.debug_struct("BudgetLayer").field("cost", &cost).finish()
    }
}

/// The default refusal: the decision's JSON, with the status the [module
/// docs](self) list.
pub fn default_refusal<B: From<String>>(decision: &Decision) -> Response<B> {
    let status = match decision.reason() {
        Some(BlockReason::BudgetExceeded) => match decision.budget().map(|b| b.window()) {
            Some(Window::Unbounded) | None => StatusCode::PAYMENT_REQUIRED,
            Some(_) => StatusCode::TOO_MANY_REQUESTS,
        },
        Some(BlockReason::NoBudget) => StatusCode::PAYMENT_REQUIRED,
        Some(BlockReason::StoreError) | Some(BlockReason::Paused) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Some(BlockReason::InvalidAmount) | None => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = Response::new(B::from(decision.to_json().to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl<ReqB: 'static, ResB: From<String> + 'static> BudgetLayer<ReqB, ResB> {
    /// A fixed cost per request (`cost` may read the request: a route, a
    /// model parameter), checked and recorded in one atomic step before the
    /// inner service runs; it is charged whatever the inner service answers.
    pub fn fixed(
        engine: Engine,
        ledger: impl Fn(&Request<ReqB>) -> Ledger + Send + Sync + 'static,
        cost: impl Fn(&Request<ReqB>) -> Decimal + Send + Sync + 'static,
    ) -> Self {
        Self::with(engine, Arc::new(ledger), Cost::Fixed(Arc::new(cost)))
    }

    /// A bounded cost: `estimate` (from the request) is reserved before the
    /// inner service runs, and `actual` (from its response, e.g. a usage
    /// header) is committed when it answers. An inner service error, or the
    /// request's future dropped before the answer, releases the hold.
    pub fn bounded(
        engine: Engine,
        ledger: impl Fn(&Request<ReqB>) -> Ledger + Send + Sync + 'static,
        estimate: impl Fn(&Request<ReqB>) -> Decimal + Send + Sync + 'static,
        actual: impl Fn(&Response<ResB>) -> Decimal + Send + Sync + 'static,
    ) -> Self {
        let cost = Cost::Bounded {
            estimate: Arc::new(estimate),
            actual: Arc::new(actual),
        };
        Self::with(engine, Arc::new(ledger), cost)
    }

    fn with(engine: Engine, ledger: Arc<LedgerFn<ReqB>>, cost: Cost<ReqB, ResB>) -> Self {
        BudgetLayer {
            config: Arc::new(Config {
                engine,
                ledger,
                others: None,
                cost,
                refuse: Arc::new(default_refusal::<ResB>),
            }),
        }
    }
}

impl<ReqB, ResB> BudgetLayer<ReqB, ResB> {
    /// Answers refused requests with `refuse` instead of the
    /// [`default_refusal`].
    pub fn refuse_with(
        self,
        refuse: impl Fn(&Decision) -> Response<ResB> + Send + Sync + 'static,
    ) -> Self {
        self.with_config(|c| c.refuse = Arc::new(refuse))
    }

    /// Charges every request to a hierarchy: the ledger the layer was built
    /// with and those `others` returns for the request (a team, an
    /// organisation), all or nothing — a request that does not fit one of
    /// them is refused before the inner service sees it, and charges none.
    ///
    /// ```
    /// use budgetgate::{dec, Engine, Ledger};
    /// use budgetgate::tower::BudgetLayer;
    /// use http::Request;
    /// let layer = BudgetLayer::<String, String>::fixed(
    ///     Engine::in_memory(),
    ///     |_: &Request<String>| Ledger::new("api", "search", "user:1"),
    ///     |_: &Request<String>| dec!(0.01),
    /// )
    /// .and_ledgers(|_: &Request<String>| vec![Ledger::new("api", "search", "org")]);
    /// ```
    pub fn and_ledgers(
        self,
        others: impl Fn(&Request<ReqB>) -> Vec<Ledger> + Send + Sync + 'static,
    ) -> Self {
        self.with_config(|c| c.others = Some(Arc::new(others)))
    }

    /// This layer with its configuration changed by `change`.
    fn with_config(&self, change: impl FnOnce(&mut Config<ReqB, ResB>)) -> Self {
        let mut config = Config::clone(&self.config);
        change(&mut config);
        BudgetLayer {
            config: Arc::new(config),
        }
    }
}

impl<S, ReqB, ResB> tower_layer::Layer<S> for BudgetLayer<ReqB, ResB> {
    type Service = BudgetService<S, ReqB, ResB>;

    fn layer(&self, inner: S) -> Self::Service {
        BudgetService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`BudgetLayer`] wraps around an inner service.
pub struct BudgetService<S, ReqB, ResB> {
    inner: S,
    config: Arc<Config<ReqB, ResB>>,
}

impl<S: Clone, ReqB, ResB> Clone for BudgetService<S, ReqB, ResB> {
    fn clone(&self) -> Self {
        BudgetService {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: std::fmt::Debug, ReqB, ResB> std::fmt::Debug for BudgetService<S, ReqB, ResB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The future of a [`BudgetService`] call.
pub type BudgetFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqB, ResB> tower_service::Service<Request<ReqB>> for BudgetService<S, ReqB, ResB>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    ReqB: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BudgetFuture<Response<ResB>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The instance that was polled ready serves this request; a clone
        // stays for the next one.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let config = self.config.clone();
        Box::pin(async move {
            let ledger = (config.ledger)(&request);
            let ledgers: Option<Vec<Ledger>> = config.others.as_ref().map(|others| {
                let mut all = vec![ledger.clone()];
                all.extend(others(&request));
                all
            });
            match &config.cost {
                Cost::Fixed(cost) => {
                    let cost = cost(&request);
                    let decision = match &ledgers {
                        Some(all) => config.engine.check_all_async(all, cost).await,
                        None => config.engine.check_async(&ledger, cost).await,
                    };
                    if decision.is_blocked() {
                        return Ok((config.refuse)(&decision));
                    }
                    inner.call(request).await
                }
                Cost::Bounded { estimate, actual } => {
                    let estimate = estimate(&request);
                    let reserved = match &ledgers {
                        Some(all) => config.engine.reserve_all_async(all, estimate).await,
                        None => config.engine.reserve_async(&ledger, estimate).await,
                    };
                    let held = match reserved {
                        Ok(held) => held,
                        Err(blocked) => return Ok((config.refuse)(blocked.decision())),
                    };
                    // Dropped here (an error, a cancelled request): released.
                    let response = inner.call(request).await?;
                    let cost = actual(&response);
                    // Served: the cost is committed even if this future is
                    // dropped while the store answers (the settler makes
                    // sure of it, by id).
                    if let Err(error) = held.commit_async(cost).await {
                        tracing::error!(%ledger, %cost, %error,
                            "the cost of a served request was not committed as asked");
                    }
                    Ok(response)
                }
            }
        })
    }
}
