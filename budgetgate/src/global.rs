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

use std::sync::OnceLock;

use crate::engine::{Engine, EngineBuilder};
pub use crate::env::{AlreadyInstalled, ConfigError};

static GLOBAL: OnceLock<Engine> = OnceLock::new();

/// The process-wide engine (see the module docs).
pub fn global() -> &'static Engine {
    GLOBAL.get_or_init(|| Engine::builder().build())
}

/// Installs `engine` as [`global()`]. Fails if it was already installed or used.
pub fn install(engine: Engine) -> Result<&'static Engine, AlreadyInstalled> {
    GLOBAL.set(engine).map_err(|_| AlreadyInstalled)?;
    GLOBAL.get().ok_or(AlreadyInstalled)
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

impl EngineBuilder {
    /// Builds the engine ([`EngineBuilder::build`]) and installs it as
    /// [`global()`], which every attribute without `engine = …` uses. Fails
    /// if the global engine was already installed or used.
    pub fn install_global(self) -> Result<&'static Engine, AlreadyInstalled> {
        install(self.build())
    }

    /// [`EngineBuilder::try_build`], then installs it as [`global()`].
    pub fn try_install_global(self) -> Result<&'static Engine, ConfigError> {
        Ok(install(self.try_build()?)?)
    }
}
