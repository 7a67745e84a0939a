//! `#[guard_bounded(cache = …, cache_key = …)]`: an async guarded function
//! answered from a response cache, both backends (`ResponseCache` in
//! process, `SharedCache` in the store), with the calls charged on the
//! memory store and on a real `redis-server`. A second identical call runs
//! no body and charges nothing (the saving counted); a different key
//! misses; a blocked call runs and caches nothing; a body error caches
//! nothing and settles per `on_error`; the call-site budget holds on a
//! miss; a hierarchy and a run budget are charged on a miss only; a
//! panicking body caches nothing; 8 concurrent identical calls run the body
//! once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use budgetgate::cache::{CacheStats, ResponseCache, SharedCache};
use budgetgate::{dec, guard_bounded, Budget, BudgetExceeded, Decimal, Engine, Ledger};
use serde::{Deserialize, Serialize};

#[derive(Debug)]
enum ChatError {
    Budget(BudgetExceeded),
    Model(&'static str),
}

impl From<BudgetExceeded> for ChatError {
    fn from(e: BudgetExceeded) -> Self {
        ChatError::Budget(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Completion {
    text: String,
    tokens: u64,
}

impl Completion {
    /// 0.001 a token.
    fn cost(&self) -> Decimal {
        Decimal::from(self.tokens) * dec!(0.001)
    }
}

type Key = (String, String);

/// The "model": counts its runs, fails on the prompt "fail" (panics on
/// "panic"), takes a moment (so concurrent calls overlap).
async fn complete(runs: &AtomicUsize, prompt: &str) -> Result<Completion, ChatError> {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    if prompt == "fail" {
        return Err(ChatError::Model("the model is down"));
    }
    if prompt == "panic" {
        panic!("the client crashed");
    }
    Ok(Completion {
        text: prompt.to_uppercase(),
        tokens: prompt.len() as u64,
    })
}

#[guard_bounded(ledger = ("llm", "chat", user), estimate = "0.05", actual = |c| c.cost(),
                cache = cache, cache_key = (model.to_string(), prompt.to_string()), engine = engine)]
async fn chat_local(
    engine: &Engine,
    cache: &ResponseCache<Key, Completion>,
    runs: &AtomicUsize,
    user: &str,
    model: &str,
    prompt: &str,
) -> Result<Completion, ChatError> {
    complete(runs, prompt).await
}

#[guard_bounded(ledger = ("llm", "chat", user), estimate = "0.05", actual = |c| c.cost(),
                cache = cache, cache_key = (model.to_string(), prompt.to_string()), engine = engine)]
async fn chat_shared(
    engine: &Engine,
    cache: &SharedCache<Key, Completion>,
    runs: &AtomicUsize,
    user: &str,
    model: &str,
    prompt: &str,
) -> Result<Completion, ChatError> {
    complete(runs, prompt).await
}

/// Keyed by the prompt alone.
#[guard_bounded(ledger = ("llm", "chat", user), estimate = "0.05", actual = |c| c.cost(),
                cache = cache, cache_key = prompt.to_string(), engine = engine)]
async fn chat_local_key(
    engine: &Engine,
    cache: &ResponseCache<String, Completion>,
    runs: &AtomicUsize,
    user: &str,
    prompt: &str,
) -> Result<Completion, ChatError> {
    complete(runs, prompt).await
}

/// An error costs the estimate.
#[guard_bounded(ledger = ("llm", "chat", user), estimate = "0.05", actual = |c| c.cost(),
                on_error = estimate, cache = cache, cache_key = prompt.to_string(), engine = engine)]
async fn chat_errors_cost(
    engine: &Engine,
    cache: &ResponseCache<String, Completion>,
    runs: &AtomicUsize,
    user: &str,
    prompt: &str,
) -> Result<Completion, ChatError> {
    complete(runs, prompt).await
}

/// An error costs what the closure says.
#[guard_bounded(ledger = ("llm", "chat", user), estimate = "0.05", actual = |c| c.cost(),
                on_error = |_: &ChatError| dec!(0.002), cache = cache, cache_key = prompt.to_string(),
                engine = engine)]
async fn chat_errors_priced(
    engine: &Engine,
    cache: &ResponseCache<String, Completion>,
    runs: &AtomicUsize,
    user: &str,
    prompt: &str,
) -> Result<Completion, ChatError> {
    complete(runs, prompt).await
}

/// A call-site budget below the estimate: every miss is blocked.
#[guard_bounded(ledger = ("llm", "chat", user), estimate = "0.05", actual = |c| c.cost(),
                max_spend = "0.04", cache = cache, cache_key = prompt.to_string(), engine = engine)]
async fn chat_capped(
    engine: &Engine,
    cache: &ResponseCache<String, Completion>,
    runs: &AtomicUsize,
    user: &str,
    prompt: &str,
) -> Result<Completion, ChatError> {
    complete(runs, prompt).await
}

/// A hierarchy: the user and the team, all or nothing.
#[guard_bounded(ledgers = [("llm", "chat", user), ("llm", "chat", "team:a")], estimate = "0.05",
                actual = |c| c.cost(), cache = cache, cache_key = prompt.to_string(), engine = engine)]
async fn chat_team(
    engine: &Engine,
    cache: &ResponseCache<String, Completion>,
    runs: &AtomicUsize,
    user: &str,
    prompt: &str,
) -> Result<Completion, ChatError> {
    complete(runs, prompt).await
}

/// One of the two backends, behind the same questions.
enum Backend {
    Local(ResponseCache<Key, Completion>),
    Shared(SharedCache<Key, Completion>),
}

impl Backend {
    fn both() -> [Backend; 2] {
        [
            Backend::Local(ResponseCache::new(Duration::from_secs(600))),
            Backend::Shared(SharedCache::new("attr-chat", Duration::from_secs(600)).unwrap()),
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Local(_) => "local",
            Backend::Shared(_) => "shared",
        }
    }

    async fn ask(
        &self,
        engine: &Engine,
        runs: &AtomicUsize,
        user: &str,
        model: &str,
        prompt: &str,
    ) -> Result<Completion, ChatError> {
        match self {
            Backend::Local(c) => chat_local(engine, c, runs, user, model, prompt).await,
            Backend::Shared(c) => chat_shared(engine, c, runs, user, model, prompt).await,
        }
    }

    fn stats(&self) -> CacheStats {
        match self {
            Backend::Local(c) => c.stats(),
            Backend::Shared(c) => c.stats(),
        }
    }
}

/// A user with a lifetime budget of `cap` on `llm:chat`.
fn user(engine: &Engine, name: &str, cap: Decimal) -> Ledger {
    let ledger = Ledger::new("llm", "chat", name);
    engine.set_budget(&ledger, Budget::lifetime(cap).unwrap());
    ledger
}

/// Blocked by the budget (the reason says so).
fn is_blocked(result: &Result<Completion, ChatError>) -> bool {
    matches!(result, Err(ChatError::Budget(e)) if !e.to_string().is_empty())
}

/// The body's own error.
fn is_model_error(result: &Result<Completion, ChatError>) -> bool {
    matches!(result, Err(ChatError::Model(m)) if m.contains("down"))
}

fn committed(engine: &Engine, ledger: &Ledger) -> Decimal {
    engine.status(ledger).unwrap().committed()
}

fn reserved(engine: &Engine, ledger: &Ledger) -> Decimal {
    engine.status(ledger).unwrap().reserved()
}

async fn a_second_identical_call_runs_no_body_and_charges_nothing(engine: Engine) {
    for backend in Backend::both() {
        let name = format!("user:{}", backend.name());
        let ledger = user(&engine, &name, dec!(1));
        let runs = AtomicUsize::new(0);
        let first = backend
            .ask(&engine, &runs, &name, "gpt-4o-mini", "hello world")
            .await
            .unwrap();
        assert_eq!(first.text, "HELLO WORLD");
        assert_eq!(committed(&engine, &ledger), dec!(0.011));
        let second = backend
            .ask(&engine, &runs, &name, "gpt-4o-mini", "hello world")
            .await
            .unwrap();
        assert_eq!(second, first);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "{}: the body ran once",
            backend.name()
        );
        assert_eq!(
            committed(&engine, &ledger),
            dec!(0.011),
            "{}: charged once",
            backend.name()
        );
        assert_eq!(reserved(&engine, &ledger), dec!(0));
        let stats = backend.stats();
        assert_eq!((stats.hits(), stats.misses()), (1, 1), "{}", backend.name());
        assert_eq!(stats.saved(), dec!(0.011), "{}", backend.name());

        // A different key — another prompt, or the same prompt on another
        // model — misses, runs and is charged.
        backend
            .ask(&engine, &runs, &name, "gpt-4o-mini", "hello there")
            .await
            .unwrap();
        backend
            .ask(&engine, &runs, &name, "gpt-4o", "hello world")
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3, "{}", backend.name());
        assert_eq!(
            committed(&engine, &ledger),
            dec!(0.033),
            "{}",
            backend.name()
        );
        assert_eq!(backend.stats().misses(), 3, "{}", backend.name());
    }
}

async fn a_blocked_call_runs_nothing_and_caches_nothing(engine: Engine) {
    for backend in Backend::both() {
        let name = format!("broke:{}", backend.name());
        // Less than the estimate: the reservation is refused.
        let ledger = user(&engine, &name, dec!(0.01));
        let runs = AtomicUsize::new(0);
        for _ in 0..2 {
            let blocked = backend
                .ask(&engine, &runs, &name, "gpt-4o-mini", "hi")
                .await;
            assert!(is_blocked(&blocked), "{}: {blocked:?}", backend.name());
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "{}: no body ran",
            backend.name()
        );
        assert_eq!(committed(&engine, &ledger), dec!(0));
        assert_eq!(reserved(&engine, &ledger), dec!(0));
        let stats = backend.stats();
        assert_eq!(
            (stats.hits(), stats.misses()),
            (0, 2),
            "{}: nothing cached",
            backend.name()
        );
    }
}

async fn a_body_error_caches_nothing_and_releases(engine: Engine) {
    for backend in Backend::both() {
        let name = format!("failing:{}", backend.name());
        let ledger = user(&engine, &name, dec!(1));
        let runs = AtomicUsize::new(0);
        for _ in 0..2 {
            let failed = backend
                .ask(&engine, &runs, &name, "gpt-4o-mini", "fail")
                .await;
            assert!(is_model_error(&failed), "{}: {failed:?}", backend.name());
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "{}: not cached, ran again",
            backend.name()
        );
        assert_eq!(
            committed(&engine, &ledger),
            dec!(0),
            "{}: released",
            backend.name()
        );
        assert_eq!(reserved(&engine, &ledger), dec!(0));
        assert_eq!(backend.stats().hits(), 0);
    }
}

async fn a_body_error_settles_per_on_error(engine: Engine) {
    let ledger = user(&engine, "errors", dec!(1));
    let cache = ResponseCache::new(Duration::from_secs(600));
    let runs = AtomicUsize::new(0);
    for _ in 0..2 {
        let failed = chat_errors_cost(&engine, &cache, &runs, "errors", "fail").await;
        assert!(is_model_error(&failed));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "an error is not cached");
    assert_eq!(
        committed(&engine, &ledger),
        dec!(0.1),
        "each error cost the estimate"
    );

    let ledger = user(&engine, "priced", dec!(1));
    let cache = ResponseCache::new(Duration::from_secs(600));
    let failed = chat_errors_priced(&engine, &cache, &runs, "priced", "fail").await;
    assert!(is_model_error(&failed));
    assert_eq!(
        committed(&engine, &ledger),
        dec!(0.002),
        "the closure's price"
    );
    assert_eq!(reserved(&engine, &ledger), dec!(0));
    assert_eq!(cache.stats().entries(), 0);
}

async fn the_call_site_budget_holds_on_a_miss(engine: Engine) {
    // The engine would allow it; `max_spend = "0.04"` (below the 0.05
    // estimate) wins.
    let ledger = user(&engine, "capped", dec!(10));
    let cache = ResponseCache::new(Duration::from_secs(600));
    let runs = AtomicUsize::new(0);
    let blocked = chat_capped(&engine, &cache, &runs, "capped", "hi").await;
    assert!(is_blocked(&blocked), "{blocked:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(committed(&engine, &ledger), dec!(0));
    assert_eq!(cache.stats().entries(), 0);

    // A hit charges nothing, so the budget does not stand in its way.
    let answer = Completion {
        text: "HI".into(),
        tokens: 2,
    };
    cache.insert("hi".to_string(), answer.clone(), answer.cost());
    let hit = chat_capped(&engine, &cache, &runs, "capped", "hi")
        .await
        .unwrap();
    assert_eq!(hit, answer);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(committed(&engine, &ledger), dec!(0));
    assert_eq!(cache.stats().saved(), dec!(0.002));
}

async fn a_hierarchy_is_charged_on_a_miss_only(engine: Engine) {
    let member = user(&engine, "member", dec!(1));
    let team = user(&engine, "team:a", dec!(1));
    let cache = ResponseCache::new(Duration::from_secs(600));
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let answer = chat_team(&engine, &cache, &runs, "member", "abc")
            .await
            .unwrap();
        assert_eq!(answer.text, "ABC");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(committed(&engine, &member), dec!(0.003));
    assert_eq!(committed(&engine, &team), dec!(0.003));
    assert_eq!(cache.stats().hits(), 2);

    // The team out of money: a miss is blocked on every ledger.
    engine.set_budget(&team, Budget::lifetime(dec!(0.01)).unwrap());
    let blocked = chat_team(&engine, &cache, &runs, "member", "other").await;
    assert!(is_blocked(&blocked), "{blocked:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(committed(&engine, &member), dec!(0.003));
    assert_eq!(reserved(&engine, &member), dec!(0));
}

async fn a_run_budget_is_charged_on_a_miss_and_blocks_it(engine: Engine) {
    let ledger = user(&engine, "runner", dec!(1));
    let cache = ResponseCache::new(Duration::from_secs(600));
    let runs = AtomicUsize::new(0);
    let run = budgetgate::run::Run::new(
        Ledger::new("agent", "run", "r1"),
        Budget::lifetime(dec!(0.058)).unwrap(),
    );
    let spent = budgetgate::run::scope(run.clone(), async {
        // A miss (0.005 committed to the user and the run), then hits.
        for _ in 0..3 {
            chat_local_key(&engine, &cache, &runs, "runner", "hello")
                .await
                .unwrap();
        }
        // Of the run's 0.058, 0.053 is left: a second 0.05 estimate fits;
        // after its 0.005, a third does not.
        chat_local_key(&engine, &cache, &runs, "runner", "again")
            .await
            .unwrap();
        chat_local_key(&engine, &cache, &runs, "runner", "third").await
    })
    .await;
    assert!(is_blocked(&spent), "{spent:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(run.status(&engine).unwrap().committed(), dec!(0.01));
    assert_eq!(committed(&engine, &ledger), dec!(0.01));
    assert_eq!(cache.stats().hits(), 2);
}

async fn a_panicking_body_caches_nothing_and_releases(engine: Engine) {
    let ledger = user(&engine, "panicky", dec!(1));
    let cache = Arc::new(ResponseCache::new(Duration::from_secs(600)));
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (engine, cache, runs) = (engine.clone(), cache.clone(), runs.clone());
        let joined = tokio::spawn(async move {
            chat_local_key(&engine, &cache, &runs, "panicky", "panic").await
        })
        .await;
        assert!(joined.unwrap_err().is_panic());
    }
    // Not cached, and the single-flight let go: the second call ran too.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().entries(), 0);
    assert_eq!(committed(&engine, &ledger), dec!(0), "released");
    // The release of a dropped reservation is made in the background.
    for _ in 0..100 {
        if reserved(&engine, &ledger) == dec!(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(reserved(&engine, &ledger), dec!(0));
}

async fn eight_concurrent_identical_calls_run_the_body_once(engine: Engine) {
    for backend in Backend::both() {
        let name = format!("crowd:{}", backend.name());
        let ledger = user(&engine, &name, dec!(10));
        let backend = Arc::new(backend);
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (backend, engine, runs, name) =
                (backend.clone(), engine.clone(), runs.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                backend
                    .ask(&engine, &runs, &name, "gpt-4o-mini", "same")
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().text, "SAME");
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "{}: one body ran",
            backend.name()
        );
        let stats = backend.stats();
        assert_eq!((stats.hits(), stats.misses()), (7, 1), "{}", backend.name());
        assert_eq!(
            committed(&engine, &ledger),
            dec!(0.004),
            "{}: one charge",
            backend.name()
        );
        assert_eq!(stats.saved(), dec!(0.028), "{}", backend.name());
    }
}

// ----- an #[async_trait] method ------------------------------------------------------

#[async_trait::async_trait]
trait Assistant {
    async fn answer(&self, prompt: &str) -> Result<Completion, ChatError>;
}

struct Cached {
    engine: Engine,
    cache: ResponseCache<String, Completion>,
    runs: AtomicUsize,
}

#[async_trait::async_trait]
impl Assistant for Cached {
    #[guard_bounded(ledger = ("llm", "chat", "trait"), estimate = "0.05", actual = |c| c.cost(),
                    cache = &self.cache, cache_key = prompt.to_string(), engine = &self.engine)]
    async fn answer(&self, prompt: &str) -> Result<Completion, ChatError> {
        complete(&self.runs, prompt).await
    }
}

/// A `&mut self` method: the cache in an `Arc`, given by a clone.
struct Agent {
    engine: Engine,
    cache: Arc<SharedCache<String, Completion>>,
    runs: AtomicUsize,
    asked: u32,
}

impl Agent {
    #[guard_bounded(ledger = ("llm", "chat", "agent"), estimate = "0.05", actual = |c| c.cost(),
                    cache = self.cache.clone(), cache_key = prompt.to_string(), engine = self.engine.clone())]
    async fn ask(&mut self, prompt: &str) -> Result<Completion, ChatError> {
        self.asked += 1;
        complete(&self.runs, prompt).await
    }
}

#[tokio::test]
async fn a_mut_self_method_takes_an_arc_of_the_cache() {
    let engine = testkit::engines::memory();
    let ledger = user(&engine, "agent", dec!(1));
    let mut agent = Agent {
        engine: engine.clone(),
        cache: Arc::new(SharedCache::new("agent", Duration::from_secs(600)).unwrap()),
        runs: AtomicUsize::new(0),
        asked: 0,
    };
    for _ in 0..3 {
        assert_eq!(agent.ask("seven").await.unwrap().tokens, 5);
    }
    assert_eq!((agent.asked, agent.runs.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(committed(&engine, &ledger), dec!(0.005));
    assert_eq!(agent.cache.stats().hits(), 2);
}

#[tokio::test]
async fn an_async_trait_method_is_answered_from_the_cache() {
    let engine = testkit::engines::memory();
    let ledger = user(&engine, "trait", dec!(1));
    let assistant: Box<dyn Assistant + Send + Sync> = Box::new(Cached {
        engine: engine.clone(),
        cache: ResponseCache::new(Duration::from_secs(600)),
        runs: AtomicUsize::new(0),
    });
    for _ in 0..3 {
        assert_eq!(assistant.answer("four").await.unwrap().tokens, 4);
    }
    assert_eq!(committed(&engine, &ledger), dec!(0.004), "charged once");
}

testkit::async_on_both_stores!("attrcache":
    a_second_identical_call_runs_no_body_and_charges_nothing,
    a_blocked_call_runs_nothing_and_caches_nothing,
    a_body_error_caches_nothing_and_releases,
    a_body_error_settles_per_on_error,
    the_call_site_budget_holds_on_a_miss,
    a_hierarchy_is_charged_on_a_miss_only,
    a_run_budget_is_charged_on_a_miss_and_blocks_it,
    a_panicking_body_caches_nothing_and_releases,
    eight_concurrent_identical_calls_run_the_body_once,
);
