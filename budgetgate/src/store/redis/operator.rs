//! What operators and the service keep in Redis beside the ledgers: a
//! ledger's reset, the operator budgets (`PREFIX:{budgets}`, a hash, and
//! `PREFIX:{budgets}:version`, a counter, written together in one script,
//! so they share a hash tag) and small records with a TTL
//! (`PREFIX:rec:<key>`). None of these keys is in a ledger's hash slot.

use std::time::Duration;

use super::keys::glob_escape;
use super::replies::{shown, strings};
use super::resp::Reply;
use super::RedisStore;
use crate::ledger::Ledger;
use crate::store::StoreError;

impl RedisStore {
    /// The operator budgets' hash and version keys (never expire; shared
    /// by every engine on this prefix).
    fn shared_keys(&self) -> (String, String) {
        (
            format!("{}:{{budgets}}", self.prefix),
            format!("{}:{{budgets}}:version", self.prefix),
        )
    }

    /// `SCAN`s the ledger's keys (one hash slot) and deletes its totals,
    /// window logs and soft-limit marks in one `DEL`; the `:d:` records of
    /// settled reservations stay.
    pub(super) fn reset_ledger(&self, ledger: &Ledger) -> Result<(), StoreError> {
        let base = self.base(ledger);
        let pattern = format!("{}:*", glob_escape(&base));
        let deadline = std::time::Instant::now() + self.timeout;
        let mut doomed = vec![format!("{base}:meta")];
        let mut cursor = "0".to_owned();
        loop {
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::Timeout(self.timeout));
            }
            let reply =
                self.command_blocking(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])?;
            let Reply::Array(mut parts) = reply else {
                return Err(StoreError::Backend("unexpected SCAN reply".to_owned()));
            };
            let (Some(Reply::Array(keys)), Some(Reply::Data(next))) = (parts.pop(), parts.pop())
            else {
                return Err(StoreError::Backend("unexpected SCAN reply".to_owned()));
            };
            for key in keys {
                let Reply::Data(key) = key else { continue };
                let key = String::from_utf8_lossy(&key).into_owned();
                let suffix = &key[base.len().min(key.len())..];
                if suffix.starts_with(":e:") || suffix.starts_with(":w:") {
                    doomed.push(key);
                }
            }
            if next == b"0" {
                break;
            }
            cursor = String::from_utf8_lossy(&next).into_owned();
        }
        let mut args: Vec<&str> = vec!["DEL"];
        args.extend(doomed.iter().map(String::as_str));
        self.command_blocking(&args).map(|_| ())
    }

    /// `SET prefix:rec:<key> value PX ttl` (never part of a ledger's slot).
    pub(super) fn record_put(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = format!("{}:rec:{key}", self.prefix);
        let ms = ttl.as_millis().max(1).to_string();
        self.command_blocking(&["SET", &key, value, "PX", &ms])
            .map(|_| ())
    }

    pub(super) fn record_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}:rec:{key}", self.prefix);
        record_reply(self.command_blocking(&["GET", &key])?)
    }

    /// [`RedisStore::record_put`] on the async connection.
    pub(super) async fn record_put_async(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = format!("{}:rec:{key}", self.prefix);
        let ms = ttl.as_millis().max(1).to_string();
        let value = value.to_owned();
        let con = self.async_con.clone();
        let op = async move {
            let mut replies = con
                .exchange(|pipe| {
                    pipe.cmd("SET").arg(&key).arg(&value).arg("PX").arg(&ms);
                })
                .await?;
            match replies.pop() {
                Some(Reply::Error(message)) => Err(StoreError::Backend(message)),
                Some(_) => Ok(()),
                None => Err(StoreError::Backend("no reply to SET".into())),
            }
        };
        self.run_async(op).await
    }

    /// [`RedisStore::record_get`] on the async connection.
    pub(super) async fn record_get_async(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}:rec:{key}", self.prefix);
        let con = self.async_con.clone();
        let op = async move {
            let mut replies = con
                .exchange(|pipe| {
                    pipe.cmd("GET").arg(&key);
                })
                .await?;
            record_reply(replies.pop().unwrap_or(Reply::Nil))
        };
        self.run_async(op).await
    }

    pub(super) fn budgets_version(&self) -> Result<u64, StoreError> {
        let (_, key) = self.shared_keys();
        match self.command_blocking(&["GET", &key])? {
            Reply::Nil => Ok(0),
            Reply::Data(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::Backend("the budgets' version is not a number".into())),
            other => Err(StoreError::Backend(format!(
                "unexpected GET reply: {}",
                shown(&other)
            ))),
        }
    }

    pub(super) fn budgets_all(&self) -> Result<(u64, Vec<String>), StoreError> {
        let (hash, version) = self.shared_keys();
        let reply = self.command_blocking(&[
            "EVAL",
            "return {redis.call('GET', KEYS[2]) or '0', redis.call('HVALS', KEYS[1])}",
            "2",
            &hash,
            &version,
        ])?;
        let Reply::Array(mut parts) = reply else {
            return Err(StoreError::Backend("unexpected budgets reply".to_owned()));
        };
        let (Some(values), Some(Reply::Data(v))) = (parts.pop(), parts.pop()) else {
            return Err(StoreError::Backend("unexpected budgets reply".to_owned()));
        };
        let v = std::str::from_utf8(&v)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Backend("the budgets' version is not a number".into()))?;
        Ok((v, strings(values)?))
    }

    pub(super) fn budgets_put(&self, key: &str, value: Option<&str>) -> Result<u64, StoreError> {
        let (hash, version) = self.shared_keys();
        let reply = match value {
            Some(value) => self.command_blocking(&[
                "EVAL",
                "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return redis.call('INCR', KEYS[2])",
                "2",
                &hash,
                &version,
                key,
                value,
            ])?,
            None => self.command_blocking(&[
                "EVAL",
                "redis.call('HDEL', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])",
                "2",
                &hash,
                &version,
                key,
            ])?,
        };
        match reply {
            Reply::Int(v) => Ok(u64::try_from(v).unwrap_or(0)),
            other => Err(StoreError::Backend(format!(
                "unexpected budgets reply: {}",
                shown(&other)
            ))),
        }
    }
}

/// A record's `GET` reply.
fn record_reply(reply: Reply) -> Result<Option<String>, StoreError> {
    match reply {
        Reply::Nil => Ok(None),
        Reply::Data(v) => String::from_utf8(v)
            .map(Some)
            .map_err(|_| StoreError::Backend("a record is not UTF-8".into())),
        Reply::Error(message) => Err(StoreError::Backend(message)),
        other => Err(StoreError::Backend(format!(
            "unexpected GET reply: {}",
            shown(&other)
        ))),
    }
}
