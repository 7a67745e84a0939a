//! The response cache (`budgetgate::cache`): an agent asks the same
//! questions again; the repeats are answered from the cache — the model is
//! not called and nothing is charged — and the cache reports the money it
//! saved. Once in process (`ResponseCache`), once in the engine's store
//! (`SharedCache`, which a Redis store shares between processes), and once
//! on the attribute (`#[guard_bounded(cache = …, cache_key = …)]`).
//!
//! ```sh
//! cargo run --example response_cache
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use budgetgate::cache::{ResponseCache, SharedCache};
use budgetgate::pricing::{self, Usage};
use budgetgate::{dec, guard_bounded, Budget, BudgetExceeded, Engine, Ledger};

const MODEL: &str = "gpt-4o-mini";

static MODEL_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Stands in for the model: an answer and its token usage.
async fn complete(prompt: &str) -> Result<(String, Usage), BudgetExceeded> {
    MODEL_CALLS.fetch_add(1, Ordering::SeqCst);
    let usage = Usage::new(40 * prompt.len() as u64, 300);
    Ok((format!("an answer to {prompt:?}"), usage))
}

/// The attribute's cache: prompts to answers.
static ANSWERS: LazyLock<ResponseCache<String, (String, Usage)>> =
    LazyLock::new(|| ResponseCache::new(Duration::from_secs(3600)));

/// The model call, guarded and cached by its attribute: a hit runs nothing
/// and charges nothing; a miss reserves 0.01 and commits the priced usage.
#[guard_bounded(ledger = ("openai", MODEL, agent), estimate = "0.01",
                actual = |(_, usage)| pricing::cost(MODEL, usage).unwrap_or(dec!(0.01)),
                cache = &*ANSWERS, cache_key = prompt.to_string(), engine = engine)]
async fn ask(
    engine: &Engine,
    agent: &str,
    prompt: &str,
) -> Result<(String, Usage), BudgetExceeded> {
    complete(prompt).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::in_memory();
    let ledger = Ledger::new("openai", MODEL, "agent:7");
    engine.set_budget(&ledger, Budget::lifetime(dec!(1))?);
    let cache: ResponseCache<(&str, String), (String, Usage)> =
        ResponseCache::new(Duration::from_secs(3600));

    let questions = [
        "capital of France?",
        "2 + 2?",
        "capital of France?",
        "2 + 2?",
        "capital of France?",
    ];
    for q in questions {
        let answer = cache
            .call(
                &engine,
                &ledger,
                (MODEL, q.to_string()),
                dec!(0.01),
                |(_, usage): &(String, Usage)| pricing::cost(MODEL, usage).unwrap_or(dec!(0.01)),
                || complete(q),
            )
            .await?;
        let how = if answer.is_hit() {
            "cache hit, charged nothing"
        } else {
            "model call"
        };
        println!("{q:<20} {how:<28} (cost when made: {})", answer.cost());
    }
    let stats = cache.stats();
    println!(
        "model calls {}, hits {}, misses {}, saved {}; agent:7 committed {}",
        MODEL_CALLS.load(Ordering::SeqCst),
        stats.hits(),
        stats.misses(),
        stats.saved(),
        engine.status(&ledger)?.committed()
    );

    // The same through the engine's store: with a Redis store
    // (`Engine::new(RedisStore::connect(url)?)`) every process shares it.
    let shared: SharedCache<(String, String), (String, Usage)> =
        SharedCache::new("answers", Duration::from_secs(3600))?;
    let other = Ledger::new("openai", MODEL, "agent:8");
    engine.set_budget(&other, Budget::lifetime(dec!(1))?);
    for q in questions {
        let request = (MODEL.to_string(), q.to_string());
        let answer = shared
            .call(
                &engine,
                &other,
                &request,
                dec!(0.01),
                |(_, usage): &(String, Usage)| pricing::cost(MODEL, usage).unwrap_or(dec!(0.01)),
                || complete(q),
            )
            .await?;
        let how = if answer.is_hit() {
            "shared hit"
        } else {
            "model call"
        };
        println!("{q:<20} {how:<28} (cost when made: {})", answer.cost());
    }
    let stats = shared.stats();
    println!(
        "shared cache: hits {}, misses {}, saved {}; agent:8 committed {}",
        stats.hits(),
        stats.misses(),
        stats.saved(),
        engine.status(&other)?.committed()
    );
    assert_eq!((stats.hits(), stats.misses()), (3, 2));

    // The same on the attribute.
    let third = Ledger::new("openai", MODEL, "agent:9");
    engine.set_budget(&third, Budget::lifetime(dec!(1))?);
    for q in questions {
        let (text, _) = ask(&engine, "agent:9", q).await?;
        println!("{q:<20} {text}");
    }
    let stats = ANSWERS.stats();
    println!(
        "attribute cache: hits {}, misses {}, saved {}; agent:9 committed {}",
        stats.hits(),
        stats.misses(),
        stats.saved(),
        engine.status(&third)?.committed()
    );
    assert_eq!((stats.hits(), stats.misses()), (3, 2));
    Ok(())
}
