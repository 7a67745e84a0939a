//! Reservations the service holds between `reserve` and `commit` /
//! `release`, by id — and the answers of settled ones, so the same settle
//! request twice changes nothing and answers the same.
//!
//! The instance that made a reservation holds it here; on Redis it is also
//! recorded in the store, so any replica can settle it (`api/settle.rs`).
//! One left unsettled expires in the store after its TTL; at shutdown open
//! reservations are neither released nor settled — their worst case stays
//! held, and another replica can still settle them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use budgetgate::Reservation;
use serde_json::Value;

/// How long the answer of a settled reservation is kept for retries.
pub const SETTLED_RETENTION: Duration = Duration::from_secs(600);

/// Most settled answers kept in a process: past it the oldest go first
/// (on Redis the store's record still answers a retry until its TTL).
pub const MAX_SETTLED: usize = 100_000;

/// A settled reservation's answer.
#[derive(Debug, Clone)]
pub struct Settled {
    /// `"committed"` or `"released"`.
    pub kind: &'static str,
    /// The actual committed (commits).
    pub actual: Option<rust_decimal::Decimal>,
    /// HTTP status of the answer.
    pub status: u16,
    /// The answer's body.
    pub body: Value,
    at: Instant,
}

enum Slot {
    Open(Box<Reservation<'static>>, Instant),
    /// Being settled by a request now.
    Busy,
    Done(Settled),
}

/// What [`Reservations::take`] found.
pub enum Taken {
    /// The open reservation: settle it, then [`Reservations::finish`].
    Open(Box<Reservation<'static>>),
    /// Settled before: its answer.
    Done(Settled),
    /// Another request is settling it now.
    Busy,
    /// Never made here, or forgotten.
    Unknown,
}

/// The map.
#[derive(Default)]
pub struct Reservations {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Reservations {
    /// Keeps an open reservation; returns its id: the store's reservation
    /// id (32 hex digits) and 16 hex digits of per-reservation randomness,
    /// so no client can guess another's id and settle it.
    pub fn insert(&self, reservation: Reservation<'static>, ttl: Duration) -> String {
        let id = format!(
            "{}{:016x}",
            reservation.id(),
            token(reservation.id().as_u128())
        );
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() % 1024 == 1023 {
            sweep(&mut slots);
        }
        slots.insert(
            id.clone(),
            Slot::Open(Box::new(reservation), Instant::now() + ttl),
        );
        id
    }

    /// Takes the reservation to settle it.
    pub fn take(&self, id: &str) -> Taken {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(id) {
            None => Taken::Unknown,
            Some(Slot::Busy) => Taken::Busy,
            Some(Slot::Done(s)) => Taken::Done(s.clone()),
            Some(Slot::Open(..)) => match slots.insert(id.to_owned(), Slot::Busy) {
                Some(Slot::Open(r, _)) => Taken::Open(r),
                _ => Taken::Unknown,
            },
        }
    }

    /// Puts back a reservation that was taken but not settled.
    pub fn put_back(&self, id: &str, reservation: Box<Reservation<'static>>, ttl: Duration) {
        let id = id.to_owned();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(id, Slot::Open(reservation, Instant::now() + ttl));
    }

    /// Records a settled reservation's answer.
    pub fn finish(
        &self,
        id: &str,
        kind: &'static str,
        actual: Option<rust_decimal::Decimal>,
        status: u16,
        body: Value,
    ) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(
            id.to_owned(),
            Slot::Done(Settled {
                kind,
                actual,
                status,
                body,
                at: Instant::now(),
            }),
        );
    }

    /// Open reservations held.
    pub fn open(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .values()
            .filter(|s| matches!(s, Slot::Open(..)))
            .count()
    }

    /// At shutdown: keeps every open reservation's hold in the store until
    /// its TTL (neither released nor settled). Returns how many.
    pub fn abandon(&self) -> usize {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for (_, slot) in slots.drain() {
            if let Slot::Open(r, _) = slot {
                // Not dropped: a dropped reservation is released.
                std::mem::forget(r);
                n += 1;
            }
        }
        n
    }
}

/// 64 unpredictable bits: SipHash with the process's random keys (a fresh
/// `RandomState` each call) over the id and the time.
fn token(id: u128) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(id);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Forgets expired reservations (their holds expired in the store; dropping
/// releases nothing that still counts) and old answers.
fn sweep(slots: &mut HashMap<String, Slot>) {
    let now = Instant::now();
    slots.retain(|_, slot| match slot {
        Slot::Open(_, expires) => *expires > now,
        Slot::Busy => true,
        Slot::Done(s) => now.duration_since(s.at) < SETTLED_RETENTION,
    });
    let done = slots
        .values()
        .filter(|s| matches!(s, Slot::Done(_)))
        .count();
    if done > MAX_SETTLED {
        let mut ages: Vec<Instant> = slots
            .values()
            .filter_map(|s| match s {
                Slot::Done(d) => Some(d.at),
                _ => None,
            })
            .collect();
        ages.sort_unstable();
        let cutoff = ages[done - MAX_SETTLED];
        slots.retain(|_, slot| !matches!(slot, Slot::Done(d) if d.at < cutoff));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_answers_are_bounded() {
        let mut slots = HashMap::new();
        for i in 0..MAX_SETTLED + 500 {
            slots.insert(
                i.to_string(),
                Slot::Done(Settled {
                    kind: "released",
                    actual: None,
                    status: 200,
                    body: Value::Null,
                    at: Instant::now(),
                }),
            );
        }
        sweep(&mut slots);
        assert!(slots.len() <= MAX_SETTLED, "{}", slots.len());
        assert!(slots.len() >= MAX_SETTLED - 500, "only the oldest go");
    }
}
