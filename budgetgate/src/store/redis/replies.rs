//! Reading the scripts' replies — and turning connection failures — into
//! outcomes and [`StoreError`]s (never showing a password).

use std::fmt;

use super::config::scrub;
use super::keys::NANOS;
use super::resp::{self, Reply};
use crate::budget::Limit;
use crate::rate::RateReason;
use crate::store::RateOutcome;
use crate::store::{ChargeOutcome, ManyOutcome, Nanos, SettleOutcome, StoreError, WindowUsage};

/// A failed lean connection as a [`StoreError`] (never showing `secret`).
pub(super) fn conn_error(e: resp::ConnError, secret: Option<&str>) -> StoreError {
    use resp::ConnError;
    match e {
        ConnError::Redis(e) => store_error(&e, secret),
        ConnError::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            StoreError::Unavailable(format!("timed out: {e}"))
        }
        ConnError::Io(e) => StoreError::Unavailable(scrub(&e.to_string(), secret)),
        ConnError::Protocol(message) => StoreError::Backend(scrub(&message, secret)),
        ConnError::Refused(message) => StoreError::NotSent(message),
    }
}

/// A script's reply as its strings (every budgetgate script returns a flat
/// array of strings or integers); an error reply is the script's error.
pub(super) fn strings(reply: Reply) -> Result<Vec<String>, StoreError> {
    match reply {
        Reply::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Reply::Data(bytes) => String::from_utf8(bytes).map_err(|e| {
                    StoreError::Backend(format!("a budgetgate script replied non-UTF-8: {e}"))
                }),
                Reply::Int(i) => Ok(i.to_string()),
                other => Err(unexpected(&other)),
            })
            .collect(),
        Reply::Error(message) => Err(StoreError::Backend(message)),
        other => Err(unexpected(&other)),
    }
}

/// How many packed limits a limit travels as: one per soft-limit threshold,
/// at least one.
pub(super) fn packed_count(limit: &Limit) -> usize {
    limit.warn_thresholds().count().max(1)
}

/// Which limit and threshold each packed limit of a charge stands for.
/// `None` — every limit has at most one threshold, the common case — is
/// the identity: packed limit `k` is limit `k`, threshold 0.
#[derive(Debug, Clone, Default)]
pub(super) struct Packing(Option<Vec<(usize, usize)>>);

impl Packing {
    pub(super) fn of(limits: &[Limit]) -> Self {
        if limits.iter().all(|l| packed_count(l) == 1) {
            return Packing(None);
        }
        let mut map = Vec::new();
        for (i, limit) in limits.iter().enumerate() {
            map.extend((0..packed_count(limit)).map(|slot| (i, slot)));
        }
        Packing(Some(map))
    }

    pub(super) fn get(&self, packed: usize) -> (usize, usize) {
        match &self.0 {
            None => (packed, 0),
            Some(map) => map.get(packed).copied().unwrap_or((packed, 0)),
        }
    }

    /// The script's bitmask (bit k: packed limit k) as
    /// [`ChargeOutcome::warnings`].
    pub(super) fn warnings(&self, packed_bits: u64) -> u64 {
        (0..64)
            .filter(|k| packed_bits & (1 << k) != 0)
            .filter_map(|k| {
                let (limit, slot) = self.get(k);
                crate::store::warning_bit(limit, slot)
            })
            .fold(0, |acc, bit| acc | bit)
    }
}

pub(super) fn parse_charge(
    reply: Vec<String>,
    packing: &Packing,
) -> Result<ChargeOutcome, StoreError> {
    match reply.as_slice() {
        [admitted, index, u, n, at, warnings] => Ok(ChargeOutcome {
            admitted: admitted == "1",
            paused: admitted == "P",
            limit_index: packing.get(parse(index)?).0,
            spent_before: join(u, n)?,
            at: parse(at)?,
            warnings: match warnings.as_str() {
                "0" => 0,
                w => packing.warnings(parse(w)?),
            },
        }),
        _ => Err(unexpected(&reply)),
    }
}

pub(super) fn parse_settle(reply: Vec<String>) -> Result<SettleOutcome, StoreError> {
    match reply.first().map(String::as_str) {
        Some("1") => Ok(SettleOutcome::Committed),
        Some("2") => Ok(SettleOutcome::CommittedLate),
        Some("3") => Ok(SettleOutcome::Released),
        Some("4") => Ok(SettleOutcome::Unknown),
        _ => Err(unexpected(&reply)),
    }
}

pub(super) fn parse_many(
    reply: Vec<String>,
    packings: &[Packing],
) -> Result<ManyOutcome, StoreError> {
    let packing = |i: usize| packings.get(i).cloned().unwrap_or_default();
    match reply.first().map(String::as_str) {
        Some("A") => reply[1..]
            .chunks(6)
            .enumerate()
            .map(|(i, c)| parse_charge(c.to_vec(), &packing(i)))
            .collect::<Result<Vec<_>, _>>()
            .map(ManyOutcome::Admitted),
        Some("R") if reply.len() == 8 => {
            let index: usize = parse(&reply[1])?;
            Ok(ManyOutcome::Refused {
                index,
                outcome: parse_charge(reply[2..].to_vec(), &packing(index))?,
            })
        }
        _ => Err(unexpected(&reply)),
    }
}

pub(super) fn parse_rate(reply: Vec<String>) -> Result<RateOutcome, StoreError> {
    let [admitted, reason, calls, since, wait] = reply.as_slice() else {
        return Err(unexpected(&reply));
    };
    let opt = |s: &str| -> Result<Option<i64>, StoreError> {
        if s.is_empty() {
            Ok(None)
        } else {
            parse(s).map(Some)
        }
    };
    Ok(RateOutcome {
        admitted: admitted == "1",
        reason: match reason.as_str() {
            "" => None,
            "TOO_MANY_CALLS" => Some(RateReason::TooManyCalls),
            "COOLDOWN" => Some(RateReason::Cooldown),
            "BUCKET_EMPTY" => Some(RateReason::BucketEmpty),
            _ => return Err(unexpected(&reply)),
        },
        calls_in_window: parse(calls)?,
        since_last_us: opt(since)?,
        retry_after_us: opt(wait)?,
    })
}

pub(super) fn parse_status(
    reply: Vec<String>,
    limits: usize,
) -> Result<Vec<WindowUsage>, StoreError> {
    if reply.len() != limits * 4 + 1 {
        return Err(unexpected(&reply));
    }
    let at = parse(&reply[limits * 4])?;
    reply[..limits * 4]
        .chunks(4)
        .map(|c| {
            Ok(WindowUsage {
                committed: join(&c[0], &c[1])?,
                reserved: join(&c[2], &c[3])?,
                at,
            })
        })
        .collect()
}

pub(super) fn join(units: &str, nanos: &str) -> Result<Nanos, StoreError> {
    let u: i128 = parse(units)?;
    let n: i128 = parse(nanos)?;
    Ok(u * NANOS + n)
}

pub(super) fn parse<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| {
        StoreError::Backend(format!("unexpected number {s:?} from a budgetgate script"))
    })
}

pub(super) fn unexpected(reply: &dyn fmt::Debug) -> StoreError {
    StoreError::Backend(format!(
        "unexpected reply from a budgetgate script: {}",
        shown(reply)
    ))
}

/// A reply for an error message, cut to 200 bytes.
pub(super) fn shown(reply: &dyn fmt::Debug) -> String {
    let mut text = format!("{reply:?}");
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

pub(super) fn store_error(e: &::redis::RedisError, secret: Option<&str>) -> StoreError {
    let message = scrub(&e.to_string(), secret);
    if e.is_timeout() {
        StoreError::Unavailable(format!("timed out: {message}"))
    } else if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}
