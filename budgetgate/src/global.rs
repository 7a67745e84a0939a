//! The process-wide default [`Engine`], used by every attribute that does not
//! name another one with `engine = …`.
//!
//! Install it once at start-up with [`EngineBuilder::install_global`]
//! (or [`install`]). If nothing was installed, the first use of [`global()`]
//! builds it from the environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `BUDGETGATE_REDIS_URL` | use the Redis store at this URL (shared across processes) | in-memory store |
//! | `BUDGETGATE_REDIS_PREFIX` | key prefix of that store | `budgetgate` |
//! | `BUDGETGATE_REDIS_TIMEOUT_MS` | bound on every Redis operation | `500` |
//! | `BUDGETGATE_DEFAULT_MAX_SPEND` | budget for ledgers that have none (decimal) | none: such ledgers are denied |
//! | `BUDGETGATE_DEFAULT_WINDOW` | window of that budget (`"1h"`, `"7d"`, `"unbounded"`) | `unbounded` |
//! | `BUDGETGATE_RESERVATION_TTL` | how long an unsettled reservation is held (`"10m"`) | 10 minutes |
//!
//! An invalid value is logged (`tracing` error) and the safe choice is made:
//! no default budget (deny), the default TTL, and — for a Redis URL that
//! cannot be used — a store that fails every operation, so budgets fail closed.

use once_cell::sync::OnceCell;
use rust_decimal::Decimal;

use crate::budget::{Budget, Window};
use crate::engine::{DefaultPolicy, Engine, EngineBuilder};

static GLOBAL: OnceCell<Engine> = OnceCell::new();

/// The process-wide engine (see the module docs).
pub fn global() -> &'static Engine {
    GLOBAL.get_or_init(|| from_env().build())
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

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The builder `global()` uses when nothing was installed.
pub fn from_env() -> EngineBuilder {
    let mut builder = Engine::builder();
    if let Some(ttl) = var("BUDGETGATE_RESERVATION_TTL") {
        match ttl.parse::<Window>() {
            Ok(Window::Rolling(d)) => builder = builder.reservation_ttl(d),
            _ => {
                tracing::error!(value = %ttl, "invalid BUDGETGATE_RESERVATION_TTL; using the default")
            }
        }
    }
    if let Some(max) = var("BUDGETGATE_DEFAULT_MAX_SPEND") {
        let window = var("BUDGETGATE_DEFAULT_WINDOW").unwrap_or_else(|| "unbounded".into());
        let budget = max
            .trim()
            .parse::<Decimal>()
            .map_err(|e| e.to_string())
            .and_then(|m| {
                let w = window.parse::<Window>().map_err(|e| e.to_string())?;
                Budget::new(m, w).map_err(|e| e.to_string())
            });
        match budget {
            Ok(b) => builder = builder.default_policy(DefaultPolicy::Budget(b)),
            Err(error) => tracing::error!(%error,
                "invalid BUDGETGATE_DEFAULT_MAX_SPEND / BUDGETGATE_DEFAULT_WINDOW; ledgers without a budget are denied"),
        }
    }
    if let Some(url) = var("BUDGETGATE_REDIS_URL") {
        builder = crate::store::redis_from_env(builder, &url);
    }
    builder
}
