//! The Lua scripts and the calls that run them: each budget script is the
//! shared prelude (`lua/common.lua`) plus its own body, optionally behind a
//! fast path; a [`Call`] is one script's keys and packed arguments, sent as
//! `EVALSHA` and again as `EVAL` when the server lost the script.

use std::sync::LazyLock;

use ::redis::Script;

use super::aio;
use super::keys::limbs;
use super::kill_switch::PauseRead;
use super::replies::strings;
use super::resp::{Reply, Request};
use crate::store::{Nanos, StoreError};

pub(super) static CHARGE: LazyLock<Lua> = LazyLock::new(|| {
    script(
        include_str!("lua/fast_charge.lua"),
        include_str!("lua/charge.lua"),
    )
});
pub(super) static SETTLE: LazyLock<Lua> = LazyLock::new(|| {
    settle_script(script(
        include_str!("lua/fast_settle.lua"),
        include_str!("lua/settle.lua"),
    ))
});
// The same without their fast paths: the equivalence tests compare the two.
pub(super) static CHARGE_GENERAL: LazyLock<Lua> =
    LazyLock::new(|| script(NO_FAST_PATH, include_str!("lua/charge.lua")));
pub(super) static SETTLE_GENERAL: LazyLock<Lua> =
    LazyLock::new(|| settle_script(script(NO_FAST_PATH, include_str!("lua/settle.lua"))));
pub(super) static STATUS: LazyLock<Lua> =
    LazyLock::new(|| settle_script(script(NO_FAST_PATH, include_str!("lua/status.lua"))));
pub(super) static CHARGE_MANY: LazyLock<Lua> =
    LazyLock::new(|| script(NO_FAST_PATH, include_str!("lua/charge_many.lua")));
pub(super) static RATE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(format!(
        "{}\n{}",
        include_str!("lua/now.lua"),
        include_str!("lua/rate.lua")
    ))
});

/// A script: redis-rs's handle (its hash, the async calls) and its text,
/// which the sync connections send with `EVAL` when the server lost it.
pub(super) struct Lua {
    pub(super) script: Script,
    pub(super) code: String,
}

impl Lua {
    pub(super) fn new(code: String) -> Lua {
        Lua {
            script: Script::new(&code),
            code,
        }
    }
}

/// A settle script may write when Redis is out of memory (`noeviction` at
/// `maxmemory`): money already spent must be recorded and holds released
/// — both shrink what new calls may reserve, and new reservations (the
/// charge scripts, without the flag) are refused with Redis's OOM error.
/// Status reads may too (they prune). The flag needs the script's first
/// line (Redis 7's shebang), hence Redis 7.0 or newer.
pub(super) fn settle_script(lua: Lua) -> Lua {
    Lua::new(format!("#!lua flags=allow-oom\n{}", lua.code))
}

/// A script without a fast path.
pub(super) const NO_FAST_PATH: &str = "";

/// A budget script: the time, its fast path (before the shared code, so a
/// call that takes it creates none of the shared functions), the shared
/// code, then its general body.
pub(super) fn script(fast: &str, body: &str) -> Lua {
    Lua::new(format!(
        "{}\n{fast}\n{}\n{body}",
        include_str!("lua/now.lua"),
        include_str!("lua/common.lua"),
    ))
}

/// An operation ready to send: owned, so it can move to the store's runtime.
pub(super) struct Call {
    pub(super) script: &'static Lua,
    pub(super) keys: Vec<String>,
    pub(super) args: Vec<Vec<u8>>,
    /// It records spend (a commit, a fixed cost): with
    /// `RedisStoreBuilder::wait_for_replicas`, confirmed only once replicated.
    pub(super) records_spend: bool,
}

/// A script's numbers in one argument: little-endian i64s, which the
/// scripts read with Lua's `struct` (exact: every value is below 2⁵³).
/// Separate decimal arguments cost the server about 1.3k instructions
/// each to set up and as much again to convert.
pub(super) struct Packed(pub(super) Vec<u8>);

impl Packed {
    /// Room for `n` numbers.
    pub(super) fn with_room(n: usize) -> Self {
        Packed(Vec::with_capacity(8 * n))
    }

    pub(super) fn push(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(super) fn amount(&mut self, nanos: Nanos) -> &mut Self {
        let (units, rest) = limbs(nanos);
        self.push(units).push(rest)
    }
}

impl Call {
    /// Appends this call: `EVALSHA hash …`, or `EVAL text …` with `full`.
    pub(super) fn pack(&self, request: &mut Request, full: bool) {
        request.command(3 + self.keys.len() + self.args.len());
        if full {
            request.arg("EVAL").arg(&self.script.code);
        } else {
            request.arg("EVALSHA").arg(self.script.script.get_hash());
        }
        request.arg_usize(self.keys.len());
        for key in &self.keys {
            request.arg(key);
        }
        for arg in &self.args {
            request.arg(arg);
        }
    }
}

/// `calls` packed with `EVALSHA`, or only those at `lost`, with `EVAL`.
pub(super) fn pack_calls(calls: &[Call], lost: Option<&[usize]>) -> Request {
    let mut request = Request::new();
    match lost {
        None => calls.iter().for_each(|c| c.pack(&mut request, false)),
        Some(lost) => lost
            .iter()
            .filter_map(|&i| calls.get(i))
            .for_each(|c| c.pack(&mut request, true)),
    }
    request
}

/// The calls the server answered `NOSCRIPT` (it restarted or was flushed):
/// they did not run, and are sent again with the script's text (`EVAL`,
/// which also caches it); the others ran and are not repeated.
pub(super) fn lost_scripts(replies: &[Reply]) -> Vec<usize> {
    replies
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Reply::Error(e) if e.starts_with("NOSCRIPT")))
        .map(|(i, _)| i)
        .collect()
}

/// Puts the replies of the calls sent again in their places.
pub(super) fn restore(replies: &mut [Reply], lost: &[usize], again: Vec<Reply>) {
    for (&i, reply) in lost.iter().zip(again) {
        if let Some(slot) = replies.get_mut(i) {
            *slot = reply;
        }
    }
}

/// Script calls in one pipelined round trip on the async connection
/// (`eval_pipeline_blocking`'s twin): `EVALSHA`, and `EVAL` again for the
/// calls the server answered `NOSCRIPT`.
pub(super) async fn eval_async(
    con: &aio::AsyncPool,
    calls: &[Call],
    wait: Option<&Wait>,
) -> Result<Vec<Vec<String>>, StoreError> {
    Ok(eval_async_with(con, calls, wait, None).await?.0)
}

/// [`eval_async`], with the kill switch read after the calls (its reply
/// comes back beside theirs).
pub(super) async fn eval_async_with(
    con: &aio::AsyncPool,
    calls: &[Call],
    wait: Option<&Wait>,
    pause: Option<&PauseRead>,
) -> Result<(Vec<Vec<String>>, Option<Reply>), StoreError> {
    let build = |pipe: &mut ::redis::Pipeline, lost: Option<&[usize]>| {
        add_calls(pipe, calls, lost);
        if let (None, Some(pause)) = (lost, pause) {
            pause.add(pipe);
        }
        if let Some(wait) = wait {
            pipe.cmd("WAIT").arg(&wait.0).arg(&wait.1);
        }
    };
    let mut replies = con.exchange(|pipe| build(pipe, None)).await?;
    if let Some(wait) = wait {
        replicated(replies.pop(), wait)?;
    }
    let paused = match pause {
        Some(_) => Some(replies.pop().ok_or_else(|| {
            StoreError::Backend("no reply to the kill switch's HMGET".to_owned())
        })?),
        None => None,
    };
    let lost = lost_scripts(&replies);
    if !lost.is_empty() {
        let mut again = con.exchange(|pipe| build(pipe, Some(&lost))).await?;
        if let Some(wait) = wait {
            replicated(again.pop(), wait)?;
        }
        restore(&mut replies, &lost, again);
    }
    let replies = replies.into_iter().map(strings).collect::<Result<_, _>>()?;
    Ok((replies, paused))
}

/// `WAIT`'s arguments: how many replicas, how many milliseconds.
pub(super) type Wait = (String, String);

/// Appends `WAIT` to a packed request.
pub(super) fn pack_wait(request: &mut Request, wait: &Wait) {
    request.command(3).arg("WAIT").arg(&wait.0).arg(&wait.1);
}

/// Judges `WAIT`'s reply: fewer replicas than asked is an error whose
/// outcome is unknown (the write is on the primary, maybe not beyond).
pub(super) fn replicated(reply: Option<Reply>, wait: &Wait) -> Result<(), StoreError> {
    let wanted: i64 = wait.0.parse().unwrap_or(i64::MAX);
    match reply {
        Some(Reply::Int(acked)) if acked >= wanted => Ok(()),
        Some(Reply::Int(acked)) => Err(StoreError::Unavailable(format!(
            "the write was acknowledged by {acked} of {wanted} replicas within {} ms: \
             it is on the primary, and counts as recorded once the replicas have it",
            wait.1
        ))),
        Some(Reply::Error(message)) => Err(StoreError::Backend(format!("WAIT failed: {message}"))),
        other => Err(StoreError::Backend(format!(
            "unexpected reply to WAIT: {other:?}"
        ))),
    }
}

/// Adds `calls` to a pipeline with `EVALSHA`, or only those at `lost`,
/// with `EVAL` (each script stays atomic on its own).
fn add_calls(pipe: &mut ::redis::Pipeline, calls: &[Call], lost: Option<&[usize]>) {
    let mut add = |call: &Call, full: bool| {
        if full {
            pipe.cmd("EVAL").arg(&call.script.code);
        } else {
            pipe.cmd("EVALSHA").arg(call.script.script.get_hash());
        }
        pipe.arg(call.keys.len()).arg(&call.keys);
        for arg in &call.args {
            pipe.arg(arg.as_slice());
        }
    };
    match lost {
        None => calls.iter().for_each(|c| add(c, false)),
        Some(lost) => lost
            .iter()
            .filter_map(|&i| calls.get(i))
            .for_each(|c| add(c, true)),
    }
}
