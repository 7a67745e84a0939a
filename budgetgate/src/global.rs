//! The process-wide default [`Engine`], used by every attribute that does not
//! name another one with `engine = …`, and the environment variables every
//! engine reads for what its builder was not told.
//!
//! Install it once at start-up with [`EngineBuilder::install_global`]
//! (or [`install`]). If nothing was installed, the first use of [`global()`]
//! builds it from the environment. Either way — and for any
//! [`Engine::builder()`] — a setting the builder was not given comes from
//! these variables:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `BUDGETGATE_REDIS_URL` | use the Redis store at this URL (shared across processes) | in-memory store |
//! | `BUDGETGATE_REDIS_PREFIX` | key prefix of that store | `budgetgate` |
//! | `BUDGETGATE_REDIS_TIMEOUT_MS` | bound on every Redis operation | `500` |
//! | `BUDGETGATE_DEFAULT_MAX_SPEND` | budget for ledgers that have none (decimal) | none: such ledgers are denied |
//! | `BUDGETGATE_DEFAULT_WINDOW` | window of that budget (`"1h"`, `"daily"`, `"unbounded"`) | `unbounded` |
//! | `BUDGETGATE_RESERVATION_TTL` | how long an unsettled reservation is held (`"10m"`) | 10 minutes |
//!
//! So the same program shares its budgets across processes when
//! `BUDGETGATE_REDIS_URL` is set, with no code change:
//!
//! ```no_run
//! use budgetgate::{dec, Budget, Engine, Ledger};
//! // BUDGETGATE_REDIS_URL=redis://127.0.0.1:6379 ./agent   → Redis
//! // ./agent                                               → in memory
//! Engine::builder()
//!     .budget(&Ledger::new("llm", "chat", "org"), Budget::daily(dec!(50))?)
//!     .try_install_global()?; // refuses a variable it cannot use
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`EngineBuilder::try_build`] / [`try_install_global`](EngineBuilder::try_install_global)
//! (and [`try_from_env`]) refuse a variable they cannot use with a
//! [`ConfigError`] naming it — call them at start-up. The infallible
//! [`EngineBuilder::build`] (and `global()`) log the error (`tracing` error)
//! and make the safe choice instead: no default budget (deny), the default
//! TTL, and — for a Redis URL that cannot be used — a store that fails
//! every operation, so budgets fail closed rather than count per process.
//! An explicit setting on the builder ([`EngineBuilder::store`],
//! [`EngineBuilder::default_policy`], [`EngineBuilder::reservation_ttl`])
//! always wins over the environment; [`Engine::in_memory`] reads nothing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rust_decimal::Decimal;

use crate::budget::{Budget, Window};
use crate::engine::{DefaultPolicy, Engine, EngineBuilder};
use crate::store::Store;

static GLOBAL: OnceLock<Engine> = OnceLock::new();

/// The process-wide engine (see the module docs).
pub fn global() -> &'static Engine {
    GLOBAL.get_or_init(|| Engine::builder().build())
}

/// [`install`] was called after the global engine was installed or first used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the global budgetgate engine was already installed or used")]
pub struct AlreadyInstalled;

/// Installs `engine` as [`global()`]. Fails if it was already installed or used.
pub fn install(engine: Engine) -> Result<&'static Engine, AlreadyInstalled> {
    GLOBAL.set(engine).map_err(|_| AlreadyInstalled)?;
    GLOBAL.get().ok_or(AlreadyInstalled)
}

/// A configuration that cannot be used: an environment variable with a
/// value that does not parse, or a store that cannot be built. Redis URLs
/// are shown without their password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable's value cannot be used.
    #[error("{name}={value:?} cannot be used: {reason}")]
    InvalidVar {
        /// The variable.
        name: &'static str,
        /// Its value (a URL without its password).
        value: String,
        /// Why.
        reason: String,
    },
    /// The global engine was already installed or used.
    #[error(transparent)]
    AlreadyInstalled(#[from] AlreadyInstalled),
}

/// What the environment says, for the settings a builder was not given.
pub(crate) struct EnvSettings {
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) default_policy: Option<DefaultPolicy>,
    pub(crate) reservation_ttl: Option<Duration>,
}

/// Which settings to read.
#[derive(Clone, Copy)]
pub(crate) struct Wanted {
    pub(crate) store: bool,
    pub(crate) default_policy: bool,
    pub(crate) reservation_ttl: bool,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn invalid(name: &'static str, value: &str, reason: impl ToString) -> ConfigError {
    ConfigError::InvalidVar {
        name,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads the wanted settings. `strict`: the first unusable variable is an
/// error; otherwise it is logged and the safe choice made.
pub(crate) fn read_env(wanted: Wanted, strict: bool) -> Result<EnvSettings, ConfigError> {
    let mut settings = EnvSettings {
        store: None,
        default_policy: None,
        reservation_ttl: None,
    };
    let lenient = |error: ConfigError| -> Result<(), ConfigError> {
        if strict {
            Err(error)
        } else {
            tracing::error!(%error, "budgetgate configuration; making the safe choice");
            Ok(())
        }
    };
    if wanted.reservation_ttl {
        if let Some(ttl) = var("BUDGETGATE_RESERVATION_TTL") {
            match ttl.parse::<Window>() {
                Ok(Window::Rolling(d)) => {
                    settings.reservation_ttl = Some(crate::budget::clamp_duration(
                        d,
                        crate::engine::MIN_RESERVATION_TTL,
                    ))
                }
                _ => lenient(invalid(
                    "BUDGETGATE_RESERVATION_TTL",
                    &ttl,
                    "expected a duration such as \"10m\" (the default TTL is used)",
                ))?,
            }
        }
    }
    if wanted.default_policy {
        if let Some(max) = var("BUDGETGATE_DEFAULT_MAX_SPEND") {
            let window = var("BUDGETGATE_DEFAULT_WINDOW").unwrap_or_else(|| "unbounded".into());
            let budget = match (max.trim().parse::<Decimal>(), window.parse::<Window>()) {
                (Err(e), _) => Err(invalid("BUDGETGATE_DEFAULT_MAX_SPEND", &max, e)),
                (_, Err(e)) => Err(invalid("BUDGETGATE_DEFAULT_WINDOW", &window, e)),
                (Ok(m), Ok(w)) => {
                    Budget::new(m, w).map_err(|e| invalid("BUDGETGATE_DEFAULT_MAX_SPEND", &max, e))
                }
            };
            match budget {
                Ok(b) => settings.default_policy = Some(DefaultPolicy::Budget(b)),
                Err(e) => lenient(e)?, // ledgers without a budget are denied
            }
        }
    }
    if wanted.store {
        if let Some(url) = var("BUDGETGATE_REDIS_URL") {
            match redis_from_env(&url) {
                Ok(store) => settings.store = Some(store),
                Err(error) => {
                    let message = error.to_string();
                    lenient(error)?;
                    settings.store = Some(Arc::new(crate::store::Unusable(message)));
                }
            }
        }
    }
    Ok(settings)
}

/// A builder holding what the environment says (see the module docs); an
/// unusable variable is logged and the safe choice made. Any
/// [`Engine::builder()`] does the same when built, for what it was not
/// told, so this is mostly useful to inspect.
pub fn from_env() -> EngineBuilder {
    Engine::builder().with_env(false).unwrap_or_default()
}

/// [`from_env`], refusing a variable it cannot use: call it at start-up so
/// a typo in `BUDGETGATE_REDIS_URL` stops the program instead of blocking
/// every call later.
///
/// ```
/// std::env::set_var("BUDGETGATE_DEFAULT_MAX_SPEND", "ten");
/// let error = budgetgate::global::try_from_env().unwrap_err();
/// assert!(error.to_string().contains("BUDGETGATE_DEFAULT_MAX_SPEND"));
/// std::env::remove_var("BUDGETGATE_DEFAULT_MAX_SPEND");
/// ```
pub fn try_from_env() -> Result<EngineBuilder, ConfigError> {
    Engine::builder().with_env(true)
}

/// The Redis store `BUDGETGATE_REDIS_URL` names, with `BUDGETGATE_REDIS_PREFIX`
/// and `BUDGETGATE_REDIS_TIMEOUT_MS` (see [`crate::global`]).
#[cfg(feature = "redis")]
fn redis_from_env(url: &str) -> Result<Arc<dyn Store>, ConfigError> {
    let mut store = crate::store::redis::RedisStore::builder(url);
    if let Ok(prefix) = std::env::var("BUDGETGATE_REDIS_PREFIX") {
        store = store.prefix(prefix);
    }
    if let Ok(ms) = std::env::var("BUDGETGATE_REDIS_TIMEOUT_MS") {
        match ms.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => store = store.timeout(std::time::Duration::from_millis(ms)),
            _ => {
                return Err(ConfigError::InvalidVar {
                    name: "BUDGETGATE_REDIS_TIMEOUT_MS",
                    value: ms,
                    reason: "expected a positive number of milliseconds".into(),
                })
            }
        }
    }
    match store.build() {
        Ok(store) => Ok(Arc::new(store)),
        Err(error) => Err(ConfigError::InvalidVar {
            name: "BUDGETGATE_REDIS_URL",
            value: crate::store::redis::redact(url),
            reason: error.to_string(),
        }),
    }
}

/// Without the `redis` feature a set URL cannot be used.
#[cfg(not(feature = "redis"))]
fn redis_from_env(_url: &str) -> Result<Arc<dyn Store>, ConfigError> {
    Err(ConfigError::InvalidVar {
        name: "BUDGETGATE_REDIS_URL",
        value: "(not shown)".into(),
        reason: "budgetgate was built without the `redis` feature".into(),
    })
}
