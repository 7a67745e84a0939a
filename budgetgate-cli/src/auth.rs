//! API keys and roles. Keys are configured as SHA-256 hashes (the key itself
//! is never stored), and a presented key is hashed and compared with every
//! configured hash in constant time. Keys travel in `Authorization: Bearer
//! <key>` or `X-Api-Key: <key>`; neither is ever logged.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Status, ledgers, budgets list.
    Read,
    /// Check, reserve, commit, release, rate checks (and read).
    Spend,
    /// Budgets, pause/resume, reset (and everything else).
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim() {
            "read" => Ok(Role::Read),
            "spend" => Ok(Role::Spend),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected read, spend or admin"
            )),
        }
    }
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Spend => "spend",
            Role::Admin => "admin",
        }
    }
}

/// A configured key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Its name (recorded in audit events: who reset a ledger).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// SHA-256 of the key, 64 hex digits.
    pub sha256: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// 64 hex digits into 32 bytes.
pub fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of `key` as 64 lowercase hex digits (what the configuration holds).
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name (`anonymous` without auth).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No key, or a key no configured hash matches: 401.
    Unauthenticated,
    /// A valid key whose role is too low: 403.
    Forbidden {
        /// The role needed.
        needed: Role,
        /// The key's role.
        has: Role,
    },
}

/// The configured keys.
#[derive(Debug, Clone)]
pub struct Keys {
    keys: Vec<(String, Role, [u8; 32])>,
    open: bool,
}

impl Keys {
    /// From the configuration (hashes already validated). `open`: no auth.
    pub fn new(keys: &[ApiKey], open: bool) -> Keys {
        Keys {
            keys: keys
                .iter()
                .filter_map(|k| Some((k.name.clone(), k.role, parse_hash(&k.sha256)?)))
                .collect(),
            open,
        }
    }

    /// Who presented `key` (compares against every hash, in constant time each).
    pub fn identify(&self, key: Option<&str>) -> Result<Caller, AuthError> {
        if self.open {
            return Ok(Caller {
                name: "anonymous".into(),
                role: Role::Admin,
            });
        }
        let key = key.ok_or(AuthError::Unauthenticated)?;
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found: Option<(String, Role)> = None;
        for (name, role, hash) in &self.keys {
            if bool::from(hash.ct_eq(&digest)) && found.is_none() {
                found = Some((name.clone(), *role));
            }
        }
        found
            .map(|(name, role)| Caller { name, role })
            .ok_or(AuthError::Unauthenticated)
    }

    /// [`Keys::identify`], then the role check.
    pub fn authorize(&self, key: Option<&str>, needed: Role) -> Result<Caller, AuthError> {
        let caller = self.identify(key)?;
        if caller.role < needed {
            return Err(AuthError::Forbidden {
                needed,
                has: caller.role,
            });
        }
        Ok(caller)
    }
}

/// The key in a request's headers.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        return v.strip_prefix("Bearer ").map(str::trim);
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}
