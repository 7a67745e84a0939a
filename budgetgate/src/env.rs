//! Configuration from the environment: what `BUDGETGATE_*` variables say,
//! for the settings an [`EngineBuilder`](crate::EngineBuilder) was not
//! given (see [`crate::global`] for the table), and the errors of a
//! configuration that cannot be used.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::budget::{Budget, Window};
use crate::store::Store;

/// [`install`](crate::install) was called after the global engine was installed or first used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the global budgetgate engine was already installed or used")]
pub struct AlreadyInstalled;

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
    pub(crate) default_budget: Option<Budget>,
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
        default_budget: None,
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
                Ok(Window::Rolling(d)) => settings.reservation_ttl = Some(d),
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
                Ok(b) => settings.default_budget = Some(b),
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
