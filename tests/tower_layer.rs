//! The tower layer (`budgetgate::tower`, #17) in a real axum server on a
//! real socket, called by a real HTTP client (hyper-util): a blocked
//! request never reaches the inner service (its calls are counted), a
//! bounded request commits the cost its response reports, and the refusal
//! is the decision's JSON (or what the user shapes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use budgetgate::tower::BudgetLayer;
use budgetgate::{dec, Budget, Decimal, Engine, Ledger};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn user_ledger(resource: &'static str) -> impl Fn(&Request<Body>) -> Ledger + Clone {
    move |req: &Request<Body>| {
        let user = req
            .headers()
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anonymous");
        Ledger::new("api", resource, user)
    }
}

/// Serves `app` on 127.0.0.1 (a free port) and returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get_as(client: &HttpClient, url: &str, user: &str) -> (StatusCode, String) {
    let request = Request::get(url)
        .header("x-user", user)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = client.request(request).await.expect("the server answers");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The cost a response reports in `x-cost`; none: the estimate, 0.05.
fn reported_cost(res: &Response<Body>) -> Decimal {
    res.headers()
        .get("x-cost")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Decimal>().ok())
        .unwrap_or(dec!(0.05))
}

fn counting_app(path: &str, calls: &Arc<AtomicUsize>) -> Router {
    let calls = calls.clone();
    Router::new().route(
        path,
        get(move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Response::builder()
                    .header("x-cost", "0.003")
                    .body(Body::from("served"))
                    .unwrap()
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_request_never_reaches_the_inner_service() {
    let engine = Engine::in_memory();
    engine.set_budget_per_principal("api", "search", Budget::lifetime(dec!(0.02)).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = BudgetLayer::fixed(
        engine.clone(),
        user_ledger("search"),
        |_: &Request<Body>| dec!(0.01),
    );
    let url = serve(counting_app("/search", &calls).layer(layer)).await + "/search";
    let client = client();

    assert_eq!(
        get_as(&client, &url, "u1").await,
        (StatusCode::OK, "served".into())
    );
    assert_eq!(get_as(&client, &url, "u1").await.0, StatusCode::OK);
    let (status, body) = get_as(&client, &url, "u1").await; // 0.03 > 0.02
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED); // a lifetime cap
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "BLOCK");
    assert_eq!(json["reason"], "BUDGET_EXCEEDED", "{json}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the refused request was not served"
    );
    // Another user has their own ledger.
    assert_eq!(get_as(&client, &url, "u2").await.0, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let u1 = Ledger::new("api", "search", "u1");
    assert_eq!(engine.status(&u1).unwrap().committed(), dec!(0.02));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_budget_is_refused_unserved() {
    let engine = Engine::in_memory(); // no budget at all: denied
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = BudgetLayer::fixed(engine, user_ledger("search"), |_: &Request<Body>| {
        dec!(0.01)
    });
    let url = serve(counting_app("/search", &calls).layer(layer)).await + "/search";
    let (status, body) = get_as(&client(), &url, "u1").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert!(body.contains("NO_BUDGET"), "{body}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_budget_refuses_with_429_and_a_shaped_refusal_is_used() {
    let engine = Engine::in_memory();
    engine.set_budget_per_principal(
        "api",
        "chat",
        Budget::rolling(dec!(0.01), std::time::Duration::from_secs(3600)).unwrap(),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let default = BudgetLayer::fixed(engine.clone(), user_ledger("chat"), |_: &Request<Body>| {
        dec!(0.01)
    });
    let url = serve(counting_app("/chat", &calls).layer(default)).await + "/chat";
    let client = client();
    assert_eq!(get_as(&client, &url, "w").await.0, StatusCode::OK);
    assert_eq!(
        get_as(&client, &url, "w").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    let shaped = BudgetLayer::fixed(engine, user_ledger("chat"), |_: &Request<Body>| dec!(0.01))
        .refuse_with(|decision| {
            Response::builder()
                .status(StatusCode::IM_A_TEAPOT)
                .body(Body::from(format!("no: {} left", decision.remaining())))
                .unwrap()
        });
    let url = serve(counting_app("/chat", &calls).layer(shaped)).await + "/chat";
    assert_eq!(
        get_as(&client, &url, "w").await,
        (StatusCode::IM_A_TEAPOT, "no: 0 left".into())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_request_commits_the_cost_its_response_reports() {
    let engine = Engine::in_memory();
    engine.set_budget_per_principal("api", "llm", Budget::lifetime(dec!(0.06)).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = BudgetLayer::bounded(
        engine.clone(),
        user_ledger("llm"),
        |_: &Request<Body>| dec!(0.05),
        reported_cost,
    );
    let url = serve(counting_app("/llm", &calls).layer(layer)).await + "/llm";
    let client = client();
    // Each reserves 0.05 and commits 0.003: 0.009 + 0.05 fits, 0.012 + 0.05 does not.
    for _ in 0..4 {
        assert_eq!(get_as(&client, &url, "b").await.0, StatusCode::OK);
    }
    let (status, _) = get_as(&client, &url, "b").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let status = engine.status(&Ledger::new("api", "llm", "b")).unwrap();
    assert_eq!(status.committed(), dec!(0.012));
    assert_eq!(status.reserved(), dec!(0));
}

/// A served request whose future is dropped while its commit is on the way
/// to the store (the client went away; here: an async settle that never
/// answers): the cost is still recorded, by the settler, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_during_its_commit_still_commits() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Context;
    use tower_layer::Layer;
    use tower_service::Service;

    let store = Arc::new(testkit::stalling::StallingSettles::default());
    let engine = Engine::builder().shared_store(store.clone()).build();
    engine.set_budget_per_principal("api", "llm", Budget::lifetime(dec!(1)).unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let inner = tower_service_fn(move |_req: Request<String>| {
        counter.fetch_add(1, Ordering::SeqCst);
        Response::builder()
            .header("x-cost", "0.004")
            .body(String::new())
            .unwrap()
    });
    let layer = BudgetLayer::bounded(
        engine.clone(),
        |_: &Request<String>| Ledger::new("api", "llm", "dropper"),
        |_: &Request<String>| dec!(0.05),
        |res: &Response<String>| res.headers()["x-cost"].to_str().unwrap().parse().unwrap(),
    );
    let mut service = layer.layer(inner);
    store.stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut call = service.call(Request::new(String::new()));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(
        Pin::new(&mut call).poll(&mut cx).is_pending(),
        "stuck in the commit"
    );
    assert_eq!(served.load(Ordering::SeqCst), 1, "the inner service ran");
    drop(call);
    assert!(engine.wait_settled(std::time::Duration::from_secs(10)));
    let status = engine
        .status(&Ledger::new("api", "llm", "dropper"))
        .unwrap();
    assert_eq!(status.committed(), dec!(0.004));
    assert_eq!(status.reserved(), dec!(0));
}

#[derive(Clone)]
struct ServiceFn<F>(F);

fn tower_service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn(f)
}

impl<F> tower_service::Service<Request<String>> for ServiceFn<F>
where
    F: FnMut(Request<String>) -> Response<String>,
{
    type Response = Response<String>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<String>, std::convert::Infallible>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<String>) -> Self::Future {
        std::future::ready(Ok((self.0)(req)))
    }
}

/// A hierarchy (`and_ledgers`): each request is charged to its user and to
/// the organisation, all or nothing. When the organisation's cap is
/// reached, a user with room is refused too, unserved, and charged nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hierarchy_refuses_when_any_ledger_is_full() {
    let engine = Engine::in_memory();
    engine.set_budget_per_principal("api", "llm", Budget::lifetime(dec!(1)).unwrap());
    let org = Ledger::new("api", "llm-org", "acme");
    engine.set_budget(&org, Budget::lifetime(dec!(0.02)).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let org_of = org.clone();
    let fixed = BudgetLayer::fixed(engine.clone(), user_ledger("llm"), |_: &Request<Body>| {
        dec!(0.01)
    })
    .and_ledgers(move |_: &Request<Body>| vec![org_of.clone()]);
    let url = serve(counting_app("/llm", &calls).layer(fixed)).await + "/llm";
    let client = client();
    assert_eq!(get_as(&client, &url, "a").await.0, StatusCode::OK);
    assert_eq!(get_as(&client, &url, "b").await.0, StatusCode::OK);
    let (status, body) = get_as(&client, &url, "c").await; // the org: 0.03 > 0.02
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert!(
        body.contains("llm-org"),
        "the decision names the org: {body}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the refused request was not served"
    );
    let committed = |l: &Ledger| engine.status(l).unwrap().committed();
    assert_eq!(committed(&org), dec!(0.02));
    assert_eq!(
        committed(&Ledger::new("api", "llm", "c")),
        dec!(0),
        "all or nothing"
    );

    // Bounded: the estimate is held on both, the reported cost committed on both.
    let team = Ledger::new("api", "llm-team", "t1");
    engine.set_budget(&team, Budget::lifetime(dec!(0.06)).unwrap());
    let team_of = team.clone();
    let bounded = BudgetLayer::bounded(
        engine.clone(),
        user_ledger("llm"),
        |_: &Request<Body>| dec!(0.05),
        reported_cost,
    )
    .and_ledgers(move |_: &Request<Body>| vec![team_of.clone()]);
    let url = serve(counting_app("/b", &calls).layer(bounded)).await + "/b";
    for _ in 0..4 {
        assert_eq!(get_as(&client, &url, "d").await.0, StatusCode::OK);
    }
    assert_eq!(
        get_as(&client, &url, "d").await.0,
        StatusCode::PAYMENT_REQUIRED
    );
    for l in [&team, &Ledger::new("api", "llm", "d")] {
        let status = engine.status(l).unwrap();
        assert_eq!(
            (status.committed(), status.reserved()),
            (dec!(0.012), dec!(0)),
            "{l}"
        );
    }
}
