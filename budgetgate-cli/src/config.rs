//! The service's configuration: a TOML file (`--config`), then
//! `BUDGETGATE_*` variables, then command-line flags (later wins).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! redis_url = "redis://:secret@10.0.0.5:6379"   # or BUDGETGATE_REDIS_URL; none: memory
//! redis_prefix = "budgetgate"
//! max_body_bytes = 65536
//! request_timeout_ms = 5000
//! reservation_ttl = "10m"
//! shared_budgets_poll_ms = 250
//!
//! [[keys]]                       # or BUDGETGATE_API_KEYS="name:role:sha256hex,…"
//! name = "ops"
//! role = "admin"                 # read | spend | admin
//! sha256 = "9f86d08…"            # sha256 of the key: `budgetgate hash-key`
//!
//! [compat]                       # the coreason-budget routes
//! namespace = "coreason"
//! resource = "usd"
//! daily_user_limit = "10"
//! daily_project_limit = "500"
//! daily_global_limit = "5000"
//! require_key = true
//! ```

use std::time::Duration;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::auth::{ApiKey, Role};

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid configuration file {path}: {error}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// A setting is not valid.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The coreason-budget compatible routes' settings: a user's, a project's
/// and the global daily limits become budgets of the ledgers
/// `namespace:resource@user:<id>`, `…@project:<id>` and `…@global`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatConfig {
    /// The ledgers' namespace.
    pub namespace: String,
    /// The ledgers' resource.
    pub resource: String,
    /// Daily limit of each user (`COREASON_BUDGET_DAILY_USER_LIMIT_USD`).
    pub daily_user_limit: Decimal,
    /// Daily limit of each project.
    pub daily_project_limit: Decimal,
    /// Daily limit of everything.
    pub daily_global_limit: Decimal,
    /// Whether the routes need a `spend` key (coreason's have none).
    pub require_key: bool,
}

impl Default for CompatConfig {
    fn default() -> Self {
        CompatConfig {
            namespace: "coreason".into(),
            resource: "usd".into(),
            daily_user_limit: Decimal::new(10, 0),
            daily_project_limit: Decimal::new(500, 0),
            daily_global_limit: Decimal::new(5000, 0),
            require_key: true,
        }
    }
}

/// The service's settings. `Debug` shows the Redis URL without its password
/// and the keys without their hashes.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:0`: any free port).
    pub listen: String,
    /// Redis URL; `None`: the in-memory store (one node).
    pub redis_url: Option<String>,
    /// Redis key prefix.
    pub redis_prefix: Option<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 408.
    pub request_timeout_ms: u64,
    /// How long a reservation is held if nobody settles it (`"10m"`).
    pub reservation_ttl: Option<String>,
    /// How often operator-stored budgets are polled.
    pub shared_budgets_poll_ms: u64,
    /// API keys.
    pub keys: Vec<ApiKey>,
    /// Run without keys (every request has every role). Never in production.
    pub insecure_no_auth: bool,
    /// The coreason-budget routes.
    pub compat: CompatConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field(
                "redis_url",
                &self
                    .redis_url
                    .as_deref()
                    .map(budgetgate::store::redis::redact),
            )
            .field("redis_prefix", &self.redis_prefix)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("keys", &self.keys)
            .field("insecure_no_auth", &self.insecure_no_auth)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            redis_url: None,
            redis_prefix: None,
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 5_000,
            reservation_ttl: None,
            shared_budgets_poll_ms: 250,
            keys: Vec::new(),
            insecure_no_auth: false,
            compat: CompatConfig::default(),
        }
    }
}

impl Config {
    /// Reads `path` (if any), then the environment.
    pub fn load(path: Option<&str>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    path: path.into(),
                    error,
                })?;
                toml::from_str::<Config>(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    error: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        if let Some(url) = env("BUDGETGATE_REDIS_URL") {
            config.redis_url = Some(url);
        }
        if let Some(prefix) = env("BUDGETGATE_REDIS_PREFIX") {
            config.redis_prefix = Some(prefix);
        }
        if let Some(listen) = env("BUDGETGATE_LISTEN") {
            config.listen = listen;
        }
        if let Some(keys) = env("BUDGETGATE_API_KEYS") {
            config.keys.extend(parse_keys(&keys)?);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for key in &self.keys {
            if crate::auth::parse_hash(&key.sha256).is_none() {
                return Err(ConfigError::Invalid {
                    name: format!("keys.{}.sha256", key.name),
                    reason: "expected 64 hexadecimal digits (the SHA-256 of the key)".into(),
                });
            }
        }
        if self.keys.is_empty() && !self.insecure_no_auth {
            return Err(ConfigError::Invalid {
                name: "keys".into(),
                reason: "no API key is configured (set [[keys]] or BUDGETGATE_API_KEYS, or insecure_no_auth = true for a local test)".into(),
            });
        }
        if self.max_body_bytes == 0 || self.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                name: "max_body_bytes / request_timeout_ms".into(),
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `name:role:sha256hex` separated by commas.
pub fn parse_keys(text: &str) -> Result<Vec<ApiKey>, ConfigError> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|entry| {
            let parts: Vec<&str> = entry.trim().split(':').collect();
            let [name, role, hash] = parts.as_slice() else {
                return Err(ConfigError::Invalid {
                    name: "BUDGETGATE_API_KEYS".into(),
                    reason: "expected name:role:sha256hex entries separated by commas".into(),
                });
            };
            let role = role
                .parse::<Role>()
                .map_err(|reason| ConfigError::Invalid {
                    name: "BUDGETGATE_API_KEYS".into(),
                    reason,
                })?;
            Ok(ApiKey {
                name: (*name).to_owned(),
                role,
                sha256: (*hash).to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_redis_password_and_key_hashes() {
        let config = Config {
            redis_url: Some("redis://:hunter2@10.0.0.5:6379".into()),
            keys: parse_keys(&format!("ops:admin:{}", "ab".repeat(32))).unwrap(),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("abab"),
            "{shown}"
        );
        assert!(
            shown.contains("10.0.0.5") && shown.contains("ops"),
            "{shown}"
        );
    }

    #[test]
    fn keys_from_the_environment_form() {
        assert!(parse_keys("ops:root:00").is_err());
        assert!(parse_keys("just-a-name").is_err());
        let keys = parse_keys(&format!("a:read:{0},b:spend:{0}", "00".repeat(32))).unwrap();
        assert_eq!(keys.len(), 2);
    }
}
