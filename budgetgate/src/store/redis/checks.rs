//! What a connection checks about the server before it is used: a Redis
//! that can forget must not grant a second budget.
//!
//! Made in the handshake of every new connection, sync and async, in the
//! same round trip as `AUTH`/`SELECT` (on `rediss://`, right after redis-rs
//! connects):
//!
//! - **Eviction**: `maxmemory-policy` must be `noeviction`. Any other policy
//!   lets Redis delete a ledger's keys under memory pressure (budgetgate's
//!   keys carry TTLs, so under `volatile-*` they are the *only* candidates),
//!   which would grant its budget again. Such a server is refused — every
//!   operation fails with a store error naming the policy — unless the
//!   builder accepted it ([`RedisStoreBuilder::accept_eviction`](super::RedisStoreBuilder::accept_eviction)).
//! - **Persistence**: with `appendonly no` and no `save` schedule a restart
//!   loses everything; warned once (the reset check below catches it).
//! - **The store's epoch**: a random value under `prefix:epoch`, written
//!   once (`SET NX`, no TTL) by the first connection and read by every
//!   later one. If a later connection finds it missing or different, the
//!   data was lost while this process ran — a restart without persistence,
//!   a failover to an empty replica, `FLUSHALL` — and the store fails
//!   closed from then on, instead of counting from zero again. (A process
//!   started after the loss cannot know; the loss is caught by those that
//!   were running.) The check runs on new connections — every restart or
//!   failover breaks the old ones — and, on live connections (sync and
//!   async), again at least once a second, ahead of a request in the same
//!   write, so a `FLUSHALL` is caught too.
//! - **The key layout's version**: [`LAYOUT_VERSION`] under `prefix:layout`
//!   (written once, `SET NX`, no TTL). Keys written by a library with
//!   another layout would be misread — spend not counted, or counted
//!   twice — so a server whose prefix holds another version is refused,
//!   naming both, until the data is migrated or another prefix is used.
//!
//! A managed Redis may refuse `CONFIG`: then the policy and persistence
//! cannot be checked, which is warned once; the epoch is checked anyway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::resp::{ConnError, Handshake, Reply, Request};

/// The version of the key layout and of what the scripts store in it
/// (`keys.rs`, `lua/common.lua`). Raised with any change an older library
/// would misread. 2: the operator budgets' keys share a hash tag.
pub(super) const LAYOUT_VERSION: &str = "2";

/// The checks of one store, shared by all its connections.
#[derive(Debug)]
pub(super) struct ServerChecks {
    accept_eviction: bool,
    epoch_key: String,
    layout_key: String,
    /// The epoch this store saw first (and the one it proposes before that).
    epoch: Mutex<(String, bool)>,
    /// Set when a reset was found: the store refuses to operate.
    reset: Mutex<Option<String>>,
    warned_persistence: AtomicBool,
    warned_config: AtomicBool,
}

impl ServerChecks {
    /// The checks' commands (what a handshake sends; [`Handshake::verify`]
    /// judges their replies).
    pub(super) fn commands(&self) -> Vec<Vec<String>> {
        let (proposed, adopted) = self.epoch.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let config = |name: &str| vec!["CONFIG".into(), "GET".into(), name.to_owned()];
        let mut commands = vec![
            config("maxmemory-policy"),
            config("appendonly"),
            config("save"),
            vec![
                "SET".into(),
                self.layout_key.clone(),
                LAYOUT_VERSION.into(),
                "NX".into(),
            ],
            vec!["GET".into(), self.layout_key.clone()],
        ];
        // Until it knows the epoch, a store proposes one; after that it only
        // reads it (writing it again would hide a reset).
        if !adopted {
            commands.push(vec![
                "SET".into(),
                self.epoch_key.clone(),
                proposed,
                "NX".into(),
            ]);
        }
        commands.push(vec!["GET".into(), self.epoch_key.clone()]);
        commands
    }

    /// The key of the store's epoch.
    pub(super) fn epoch_key(&self) -> &str {
        &self.epoch_key
    }

    pub(super) fn new(prefix: &str, accept_eviction: bool) -> Self {
        let proposed = crate::store::ReservationId::new().to_string();
        ServerChecks {
            accept_eviction,
            epoch_key: format!("{prefix}:epoch"),
            layout_key: format!("{prefix}:layout"),
            epoch: Mutex::new((proposed, false)),
            reset: Mutex::new(None),
            warned_persistence: AtomicBool::new(false),
            warned_config: AtomicBool::new(false),
        }
    }

    /// Why the store refuses to operate (a reset was detected), if it does.
    pub(super) fn refusal(&self) -> Option<String> {
        self.reset.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Accepts the server's data as it is now (after an operator restored
    /// it, or decided to start over): the next connection adopts the
    /// current epoch.
    pub(super) fn accept_reset(&self) {
        *self.reset.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let mut epoch = self.epoch.lock().unwrap_or_else(|e| e.into_inner());
        epoch.0 = crate::store::ReservationId::new().to_string();
        epoch.1 = false;
    }
}

impl Handshake for ServerChecks {
    /// Appends the checks' commands to a handshake.
    fn add_to(&self, request: &mut Request) {
        for command in self.commands() {
            request.command(command.len());
            for arg in &command {
                request.arg(arg);
            }
        }
    }

    /// Judges the checks' replies (what [`ServerChecks::add_to`] added).
    fn verify(&self, replies: &[Reply]) -> Result<(), ConnError> {
        if let Some(why) = self.refusal() {
            return Err(ConnError::Refused(why));
        }
        let (Some((epoch, rest)), true) = (replies.split_last(), replies.len() >= 6) else {
            return Err(ConnError::Protocol(
                "the server answered the handshake's checks with too few replies".into(),
            ));
        };
        let [policy, appendonly, save, _, layout, ..] = rest else {
            return Err(ConnError::Protocol(
                "the server answered the handshake's checks with too few replies".into(),
            ));
        };
        match layout {
            Reply::Data(version) if version == LAYOUT_VERSION.as_bytes() => {}
            Reply::Data(version) => {
                return Err(ConnError::Refused(format!(
                    "the keys under {} were written with key layout version {}, and this library uses version {LAYOUT_VERSION}: \
                     it would misread them. Migrate the data, or give this store another prefix (RedisStoreBuilder::prefix)",
                    self.layout_key,
                    String::from_utf8_lossy(version)
                )))
            }
            other => {
                return Err(ConnError::Protocol(format!(
                    "could not read the key layout's version: {other:?}"
                )))
            }
        }
        match (
            config_value(policy),
            config_value(appendonly),
            config_value(save),
        ) {
            (Some(policy), Some(appendonly), Some(save)) => {
                if policy != "noeviction" && !self.accept_eviction {
                    return Err(ConnError::Refused(format!(
                        "the Redis server's maxmemory-policy is {policy:?}: it may evict budget ledgers and grant their money again. \
                         Set `maxmemory-policy noeviction` (CONFIG SET maxmemory-policy noeviction, and in redis.conf), \
                         or accept the risk with RedisStoreBuilder::accept_eviction()"
                    )));
                }
                if appendonly == "no"
                    && save.trim().is_empty()
                    && !self.warned_persistence.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        "the Redis server persists nothing (appendonly no, no save schedule): a restart loses every \
                         budget; running processes detect it and fail closed, processes started after it count from zero"
                    );
                }
            }
            _ => {
                if !self.warned_config.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the Redis server refuses CONFIG GET (a managed Redis?): its eviction policy and persistence \
                         cannot be checked; make sure maxmemory-policy is noeviction"
                    );
                }
            }
        }
        self.verify_epoch(epoch)
    }
}

impl ServerChecks {
    /// `GET` of the epoch key, to send before a request on a connection
    /// whose last check is old (a `FLUSHALL` does not break connections).
    pub(super) fn epoch_probe(&self) -> Request {
        let mut request = Request::new();
        request.command(2).arg("GET").arg(&self.epoch_key);
        request
    }

    /// Judges the epoch key's value (see the module docs).
    pub(super) fn verify_epoch(&self, epoch: &Reply) -> Result<(), ConnError> {
        if let Some(why) = self.refusal() {
            return Err(ConnError::Refused(why));
        }
        let current = match epoch {
            Reply::Data(value) => String::from_utf8_lossy(value).into_owned(),
            Reply::Nil => String::new(),
            Reply::Error(message) => {
                return Err(ConnError::Protocol(format!(
                    "could not read the store's epoch: {message}"
                )))
            }
            other => {
                return Err(ConnError::Protocol(format!(
                    "unexpected reply for the store's epoch: {other:?}"
                )))
            }
        };
        let mut known = self.epoch.lock().unwrap_or_else(|e| e.into_inner());
        if !known.1 {
            // The first connection: adopt whatever the server holds (ours,
            // or another process's).
            *known = (current, true);
            return Ok(());
        }
        if current == known.0 {
            return Ok(());
        }
        let why = format!(
            "the Redis server lost budgetgate's data while this process ran (its epoch key {} is {}): \
             a restart without persistence, a failover to an empty replica or FLUSHALL. Refusing to count \
             budgets from zero again: restore the data and call RedisStore::accept_reset(), or restart the program",
            self.epoch_key,
            if current.is_empty() { "gone" } else { "different" }
        );
        tracing::error!(reason = %why, "budget store reset detected; failing closed");
        *self.reset.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
        Err(ConnError::Refused(why))
    }
}

/// The value of a `CONFIG GET name` reply (`[name, value]`), `None` if the
/// server refused it.
fn config_value(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Array(items) => match items.as_slice() {
            [_, Reply::Data(value)] => Some(String::from_utf8_lossy(value).into_owned()),
            _ => None,
        },
        _ => None,
    }
}
