//! [`MemoryStore`]: the embedded default store.
//!
//! - **Exact**: integer nano-units, no floats.
//! - **Per-ledger locking**: ledgers live in 64 shards behind read-mostly
//!   locks; each ledger has its own mutex, so callers of different ledgers do
//!   not wait for each other and no lock is global.
//! - **Amortized O(1)**: each window keeps a running total plus a queue of
//!   entries ordered by time. An operation pops what left the window from the
//!   front and pushes at the back, so its cost does not depend on how many
//!   spends the window holds. Reservation expiry keeps only a lower bound of
//!   the earliest expiry; when time passes it, one scan of the *open*
//!   reservations removes the expired ones and finds the next bound (in a
//!   steady stream of short calls that is about one scan per TTL). Settled
//!   reservations leave nothing behind.
//! - **Reservations expire** after their TTL: their headroom returns, and a
//!   late commit still records the actual (at the commit's time).
//!
//! - **Reclaimed**: a ledger with no open reservation and nothing counting
//!   in any window is dropped when its shard is next swept (each time the
//!   shard doubles), so one-off principals do not accumulate. Open
//!   reservations expire through a heap by expiry: many abandoned holds
//!   expiring one by one cost O(log n) each.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::budget::{Limit, Window};
use crate::clock::{Clock, SystemClock};
use crate::ledger::{Ledger, Prehashed};
use crate::pause::PauseScope;
use crate::rate::{gcra, Policy, RateOutcome, RateReason, RateRequest};

use super::{
    ChargeOutcome, ChargeRequest, ManyOutcome, Nanos, ReservationIdKey, SettleOutcome,
    SettleRequest, Store, StoreError, WindowUsage,
};

const SHARD_BITS: u32 = 6;

/// One shard, padded to its own cache lines: threads locking neighbouring
/// shards must not write the same line.
#[repr(align(128))]
struct Shard<T>(
    RwLock<HashMap<Ledger, Arc<Padded<T>>, Prehashed>>,
    /// Sweep for reclaimable entries when the map reaches this size.
    std::sync::atomic::AtomicUsize,
);

/// State that may be dropped when it no longer holds anything.
trait Reclaim {
    /// Whether dropping it at `now` changes nothing.
    fn reclaimable(&self, now: i64) -> bool;
}

impl Reclaim for LedgerState {
    fn reclaimable(&self, now: i64) -> bool {
        self.is_empty_at(now)
    }
}

impl Reclaim for GateState {
    /// Gates are kept: whether a gate's log, cooldown or bucket still
    /// matters depends on its policy, which only callers know.
    fn reclaimable(&self, _now: i64) -> bool {
        false
    }
}

/// The first size at which a shard is swept.
const FIRST_SWEEP: usize = 1024;

/// One ledger's (or gate's) lock and state on cache lines of its own: two
/// entries allocated one after the other must not share a line, or threads
/// on unrelated ledgers would contend.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(Mutex<T>);

impl<T> std::ops::Deref for Padded<T> {
    type Target = Mutex<T>;
    fn deref(&self) -> &Mutex<T> {
        &self.0
    }
}

impl<T> Default for Shard<T> {
    fn default() -> Self {
        Shard(
            RwLock::new(HashMap::default()),
            std::sync::atomic::AtomicUsize::new(FIRST_SWEEP),
        )
    }
}

fn shards<T>() -> Box<[Shard<T>]> {
    (0..1 << SHARD_BITS).map(|_| Shard::default()).collect()
}

/// Runs `f` on the entry of `key` under its own lock (created on first use).
fn with_entry<T: Default + Reclaim, R>(
    shards: &[Shard<T>],
    key: &Ledger,
    now: i64,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let shard = &shards[(key.cached_hash() >> (64 - SHARD_BITS)) as usize];
    // A poisoned lock means a panic inside this module while holding it; the
    // state it guards is consistent at every step we take, so keep serving.
    {
        let map = shard.0.read().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = map.get(key) {
            let mut entry = entry.lock().unwrap_or_else(|e| e.into_inner());
            return f(&mut entry);
        }
    }
    let entry = entry_arc(shards, key, now);
    let mut entry = entry.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut entry)
}

/// The entry of `key` (created on first use), to lock several at once.
///
/// A shard that grew to twice its size after its last sweep is swept as an
/// entry is added: entries nobody is using (only the map holds them) whose
/// state holds nothing are dropped — one-off principals do not accumulate.
/// The sweep visits the shard once per doubling: O(1) amortized per entry.
fn entry_arc<T: Default + Reclaim>(shards: &[Shard<T>], key: &Ledger, now: i64) -> Arc<Padded<T>> {
    let shard = &shards[(key.cached_hash() >> (64 - SHARD_BITS)) as usize];
    if let Some(entry) = shard.0.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return entry.clone();
    }
    let mut map = shard.0.write().unwrap_or_else(|e| e.into_inner());
    if map.len() >= shard.1.load(Ordering::Relaxed) {
        // Under the write lock nobody can reach an entry through the map;
        // a count of one means nobody holds it either.
        map.retain(|_, entry| {
            Arc::strong_count(entry) > 1
                || !entry
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .reclaimable(now)
        });
        shard
            .1
            .store((2 * map.len()).max(FIRST_SWEEP), Ordering::Relaxed);
    }
    map.entry(key.clone()).or_default().clone()
}

/// The in-memory store. Cheap to share (`Arc`); see the module docs.
///
/// ```
/// use budgetgate::{Budget, Engine, Ledger, MemoryStore};
/// use budgetgate::clock::ManualClock;
/// use budgetgate::dec;
/// use std::time::Duration;
///
/// let clock = ManualClock::new(0);
/// let engine = Engine::builder().store(MemoryStore::with_clock(clock.clone())).build();
/// let ledger = Ledger::new("api", "search", "user:7");
/// engine.set_budget(&ledger, Budget::rolling(dec!(1), Duration::from_secs(60))?);
/// assert!(engine.check(&ledger, dec!(1)).is_allowed());
/// assert!(engine.check(&ledger, dec!(1)).is_blocked());
/// clock.advance(Duration::from_secs(61)); // no sleeping in tests
/// assert!(engine.check(&ledger, dec!(1)).is_allowed());
/// # Ok::<(), budgetgate::BudgetError>(())
/// ```
pub struct MemoryStore {
    shards: Box<[Shard<LedgerState>]>,
    gates: Box<[Shard<GateState>]>,
    clock: Arc<dyn Clock>,
    /// Paused scopes; `any_paused` lets charges skip the set when empty.
    paused: Mutex<HashSet<PauseScope>>,
    any_paused: AtomicBool,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ledgers: usize = self
            .shards
            .iter()
            .map(|s| s.0.read().map_or(0, |m| m.len()))
            .sum();
        let gates: usize = self
            .gates
            .iter()
            .map(|s| s.0.read().map_or(0, |m| m.len()))
            .sum();
        f.debug_struct("MemoryStore")
            .field("ledgers", &ledgers)
            .field("gates", &gates)
            .field("clock", &self.clock)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// A store on the given clock (a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn with_clock(clock: impl Clock) -> Self {
        MemoryStore {
            shards: shards(),
            gates: shards(),
            clock: Arc::new(clock),
            paused: Mutex::new(HashSet::new()),
            any_paused: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the ledger's state under its own lock.
    fn with_ledger<R>(
        &self,
        ledger: &Ledger,
        now: i64,
        f: impl FnOnce(&mut LedgerState) -> R,
    ) -> R {
        with_entry(&self.shards, ledger, now, f)
    }

    fn now(&self) -> i64 {
        self.clock.now_micros()
    }

    fn is_paused(&self, ledger: &Ledger) -> bool {
        self.any_paused.load(Ordering::Acquire)
            && self
                .paused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|scope| scope.covers(ledger))
    }
}

/// One window's running total and (rolling windows) its time-ordered entries.
#[derive(Debug)]
struct Track {
    window: Window,
    committed: Nanos,
    reserved: Nanos,
    /// Rolling windows only: what still counts, oldest first.
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`; entry `s` lives at `s - head_seq`.
    head_seq: u64,
    /// Calendar windows: the start of the current period (µs).
    period: i64,
    /// Soft-limit thresholds reported in this window: `(threshold, when)`
    /// — the period's start (calendar) or the report's time (rolling,
    /// unbounded). Each threshold is reported once per window.
    warned: Vec<(Nanos, i64)>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: i64,
    nanos: Nanos,
    held: bool,
}

/// An open reservation.
#[derive(Debug)]
struct Held {
    amount: Nanos,
    expires: i64,
    /// Per track (by index, tracks existing at reservation time): the entry's
    /// sequence number (unused for unbounded tracks). Track 0's is inline so
    /// the common single-window ledger allocates nothing.
    first_slot: Option<u64>,
    more_slots: Vec<u64>,
}

impl Held {
    fn slot(&self, track: usize) -> Option<u64> {
        match track {
            0 => self.first_slot,
            n => self.more_slots.get(n - 1).copied(),
        }
    }
}

#[derive(Debug)]
struct LedgerState {
    last_at: i64,
    tracks: Vec<Track>,
    held: HashMap<ReservationIdKey, Held, Prehashed>,
    /// No open reservation expires before this (`i64::MAX`: none open).
    next_expiry: i64,
    /// Open reservations by expiry, earliest first (holds made with one TTL
    /// arrive in expiry order: pushed at the back in O(1)); settled ones are
    /// left in and skipped when they come up, and the queue is compacted
    /// once it holds twice the open ones — so expiring many abandoned holds
    /// one by one costs O(1) each, not a scan of all of them.
    expiries: VecDeque<(i64, u128)>,
}

impl Default for LedgerState {
    fn default() -> Self {
        LedgerState {
            last_at: i64::MIN,
            tracks: Vec::new(),
            held: HashMap::default(),
            next_expiry: i64::MAX,
            expiries: VecDeque::new(),
        }
    }
}

impl Track {
    fn new(window: Window) -> Self {
        Track {
            window,
            committed: 0,
            reserved: 0,
            entries: VecDeque::new(),
            head_seq: 0,
            period: i64::MIN,
            warned: Vec::new(),
        }
    }

    /// Whether threshold `warn`, crossed at `now`, is reported: not if it
    /// was already reported in this calendar period, within the last window
    /// length (rolling) or ever (unbounded). Remembers the report.
    fn first_warning(&mut self, warn: Nanos, now: i64) -> bool {
        let mark = match self.window {
            Window::Daily { .. } | Window::Monthly { .. } => self.period,
            Window::Rolling(_) | Window::Unbounded => now,
        };
        let slot = self.warned.iter().position(|(w, _)| *w == warn);
        let fresh = match (slot, self.window) {
            (None, _) => true,
            (Some(_), Window::Unbounded) => false,
            (Some(i), Window::Rolling(_)) => {
                let length = self.window.rolling_micros().unwrap_or(i64::MAX);
                now.saturating_sub(self.warned[i].1) >= length
            }
            (Some(i), _) => self.warned[i].1 != self.period,
        };
        if fresh {
            match slot {
                Some(i) => self.warned[i].1 = mark,
                None => self.warned.push((warn, mark)),
            }
        }
        fresh
    }

    fn spent(&self) -> Nanos {
        self.committed + self.reserved
    }

    fn next_seq(&self) -> u64 {
        self.head_seq + self.entries.len() as u64
    }

    /// What a hold made now remembers to find itself again: the entry's
    /// sequence number (rolling), the period's start (calendar), nothing
    /// needed (unbounded).
    fn slot_now(&self) -> u64 {
        match self.window {
            Window::Rolling(_) => self.next_seq(),
            Window::Daily { .. } | Window::Monthly { .. } => self.period as u64,
            Window::Unbounded => 0,
        }
    }

    /// If the hold at `slot` still counts in this window, replaces it by
    /// `actual` (commit) or removes it (`None`: release/expiry) and returns
    /// true. A hold that left the window (rolling), belongs to an earlier
    /// period (calendar) or predates the track returns false.
    fn take_hold(&mut self, slot: Option<u64>, amount: Nanos, actual: Option<Nanos>) -> bool {
        let Some(slot) = slot else { return false };
        let counts = match self.window {
            Window::Unbounded => true,
            Window::Daily { .. } | Window::Monthly { .. } => slot == self.period as u64,
            Window::Rolling(_) => match self.entry_mut(slot) {
                Some(entry) if entry.held => {
                    entry.nanos = actual.unwrap_or(0);
                    entry.held = false;
                    true
                }
                _ => false,
            },
        };
        if counts {
            self.reserved -= amount;
            self.committed += actual.unwrap_or(0);
        }
        counts
    }

    fn entry_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let index = seq.checked_sub(self.head_seq)?;
        self.entries.get_mut(usize::try_from(index).ok()?)
    }

    /// Appends an amount at time `at` (its seq is `next_seq()` before the call).
    fn push(&mut self, at: i64, nanos: Nanos, held: bool) {
        if held {
            self.reserved += nanos;
        } else {
            self.committed += nanos;
        }
        if let Window::Rolling(_) = self.window {
            self.entries.push_back(Entry { at, nanos, held });
        }
    }

    fn prune(&mut self, now: i64) {
        if let Some(start) = self.window.period_start(now) {
            // A new calendar period: spend and holds of the last one stop
            // counting, exactly at the boundary.
            if start != self.period {
                self.period = start;
                self.committed = 0;
                self.reserved = 0;
            }
            return;
        }
        let Some(length) = self.window.rolling_micros() else {
            return;
        };
        let cutoff = now.saturating_sub(length);
        while let Some(front) = self.entries.front() {
            if front.at >= cutoff {
                break;
            }
            if front.held {
                self.reserved -= front.nanos;
            } else {
                self.committed -= front.nanos;
            }
            self.entries.pop_front();
            self.head_seq += 1;
        }
    }
}

impl LedgerState {
    /// Monotonic time for this ledger, pruned windows and expired reservations.
    fn advance(&mut self, now: i64) -> i64 {
        let now = now.max(self.last_at);
        self.last_at = now;
        for track in &mut self.tracks {
            track.prune(now);
        }
        if now >= self.next_expiry {
            self.expire(now);
        }
        now
    }

    /// Removes every reservation whose TTL passed and finds the next bound.
    fn expire(&mut self, now: i64) {
        while let Some(&(expires, raw)) = self.expiries.front() {
            if expires > now {
                break;
            }
            self.expiries.pop_front();
            let key = ReservationIdKey(super::ReservationId::from_u128(raw));
            // Skipped if settled since.
            if self.held.get(&key).is_some_and(|h| h.expires == expires) {
                if let Some(held) = self.held.remove(&key) {
                    self.drop_hold(&held);
                }
            }
        }
        self.next_expiry = self.expiries.front().map_or(i64::MAX, |(at, _)| *at);
    }

    /// Remembers a new hold's expiry (see `expiries`).
    fn schedule_expiry(&mut self, key: ReservationIdKey, expires: i64) {
        if self.expiries.len() >= 2 * self.held.len() + 64 {
            let held = &self.held;
            self.expiries.retain(|(at, raw)| {
                held.get(&ReservationIdKey(super::ReservationId::from_u128(*raw)))
                    .is_some_and(|h| h.expires == *at)
            });
        }
        let entry = (expires, key.0.as_u128());
        match self.expiries.back() {
            Some(&(last, _)) if last > expires => {
                // Another TTL (engines sharing the store): keep the order.
                let at = self.expiries.partition_point(|&(t, _)| t <= expires);
                self.expiries.insert(at, entry);
            }
            _ => self.expiries.push_back(entry),
        }
        self.next_expiry = self.next_expiry.min(expires);
    }

    /// Whether dropping this ledger's state changes nothing: no open
    /// reservation, and nothing that counts in any window at `now`.
    fn is_empty_at(&self, now: i64) -> bool {
        self.held.is_empty()
            && self.tracks.iter().all(|t| {
                let counts = t.committed != 0 || t.reserved != 0;
                match t.window {
                    Window::Unbounded => !counts,
                    Window::Daily { .. } | Window::Monthly { .. } => {
                        !counts || t.window.period_start(now) != Some(t.period)
                    }
                    Window::Rolling(_) => {
                        let length = t.window.rolling_micros().unwrap_or(i64::MAX);
                        !counts
                            || t.entries
                                .back()
                                .is_none_or(|e| e.at < now.saturating_sub(length))
                    }
                }
            })
    }

    /// Index of the track for `window`, creating it if needed.
    fn track_index(&mut self, window: Window, now: i64) -> usize {
        if let Some(i) = self.tracks.iter().position(|t| t.window == window) {
            return i;
        }
        let mut track = Track::new(window);
        track.prune(now); // a calendar window starts in the current period
        self.tracks.push(track);
        self.tracks.len() - 1
    }

    /// Removes a hold's amount from every window it still counts in.
    /// Returns whether it still counted in all of them.
    fn drop_hold(&mut self, held: &Held) -> bool {
        let mut everywhere = true;
        for (i, track) in self.tracks.iter_mut().enumerate() {
            everywhere &= track.take_hold(held.slot(i), held.amount, None);
        }
        everywhere
    }

    /// Decides a charge and, if admitted and `record`, records it.
    fn charge(
        &mut self,
        now: i64,
        request: &ChargeRequest<'_>,
        record: bool,
    ) -> Result<ChargeOutcome, StoreError> {
        let at = self.advance(now);
        // The cap with the least room: the one that blocks (if any does),
        // or the binding one.
        let mut binding: Option<(usize, Nanos, Nanos)> = None; // (limit, spent, room)
        for (n, limit) in request.limits.iter().enumerate() {
            let i = self.track_index(limit.window(), at);
            let spent = self.tracks[i].spent();
            let room = limit.max_nanos() - spent;
            if binding.is_none_or(|(_, _, best)| room < best) {
                binding = Some((n, spent, room));
            }
        }
        let (limit_index, spent_before, room) = binding
            .ok_or_else(|| StoreError::Backend("a charge needs at least one limit".to_owned()))?;
        if request.amount > room {
            return Ok(ChargeOutcome {
                admitted: false,
                paused: false,
                limit_index,
                spent_before,
                at,
                warnings: 0,
            });
        }
        // Soft-limit crossings, decided under the ledger's lock (and
        // remembered only when the charge is recorded).
        let mut warnings = 0u64;
        if record {
            for (n, limit) in request.limits.iter().enumerate() {
                if !limit.warns() {
                    continue;
                }
                let i = self.track_index(limit.window(), at);
                let before = self.tracks[i].spent();
                for (slot, warn) in limit.warn_thresholds() {
                    if before < warn
                        && before + request.amount >= warn
                        && self.tracks[i].first_warning(warn, at)
                    {
                        warnings |= super::warning_bit(n, slot).unwrap_or(0);
                    }
                }
            }
        }

        let admitted = ChargeOutcome {
            admitted: true,
            paused: false,
            limit_index,
            spent_before,
            at,
            warnings,
        };
        if !record {
            return Ok(admitted);
        }
        // Refused before anything is recorded (ids are random, so this only
        // guards against a misbehaving caller).
        if let Some(hold) = request.hold {
            if self.held.contains_key(&ReservationIdKey(hold.id)) {
                return Err(StoreError::Backend(format!(
                    "reservation id {} is already in use",
                    hold.id
                )));
            }
        }
        let held = request.hold.is_some();
        let first_slot = self.tracks.first().map(Track::slot_now);
        let more_slots = if held {
            self.tracks.iter().skip(1).map(Track::slot_now).collect()
        } else {
            Vec::new()
        };
        for track in &mut self.tracks {
            track.push(at, request.amount, held);
        }
        if let Some(hold) = request.hold {
            let ttl = i64::try_from(hold.ttl.as_micros()).unwrap_or(i64::MAX);
            let expires = at.saturating_add(ttl);
            self.held.insert(
                ReservationIdKey(hold.id),
                Held {
                    amount: request.amount,
                    expires,
                    first_slot,
                    more_slots,
                },
            );
            self.schedule_expiry(ReservationIdKey(hold.id), expires);
        }
        Ok(admitted)
    }

    fn settle(&mut self, now: i64, request: &SettleRequest<'_>) -> SettleOutcome {
        let at = self.advance(now);
        for limit in request.limits {
            self.track_index(limit.window(), at);
        }
        let held = self.held.remove(&ReservationIdKey(request.id));
        let Some(actual) = request.actual else {
            return match held {
                Some(held) => {
                    self.drop_hold(&held);
                    SettleOutcome::Released
                }
                None => SettleOutcome::Unknown,
            };
        };
        match held {
            Some(held) if held.amount == request.reserved => {
                let mut late = false;
                for (i, track) in self.tracks.iter_mut().enumerate() {
                    if !track.take_hold(held.slot(i), held.amount, Some(actual)) {
                        // The hold left this window (or predates it): the
                        // money was still spent, so it counts from now.
                        track.push(at, actual, false);
                        late = true;
                    }
                }
                if late {
                    SettleOutcome::CommittedLate
                } else {
                    SettleOutcome::Committed
                }
            }
            Some(held) => {
                // Same id, other amount: not this caller's reservation. Put it back.
                self.held.insert(ReservationIdKey(request.id), held);
                SettleOutcome::Unknown
            }
            None if request.record_if_missing => {
                for track in &mut self.tracks {
                    track.push(at, actual, false);
                }
                SettleOutcome::CommittedLate
            }
            None => SettleOutcome::Unknown,
        }
    }
}

/// A gate's state: the sliding log of admitted calls, the last call, and
/// the token bucket's theoretical arrival time (× its refill tokens).
#[derive(Debug, Default)]
struct GateState {
    last_at: i64,
    log: VecDeque<i64>,
    last_call: Option<i64>,
    tat: Option<i128>,
}

impl GateState {
    fn check(&mut self, now: i64, policy: &Policy, record: bool) -> RateOutcome {
        let now = now.max(self.last_at);
        self.last_at = now;
        let mut blocked: Option<(RateReason, i64)> = None;
        let mut block = |reason, wait: i64| {
            if blocked.is_none_or(|(_, w)| wait > w) {
                blocked = Some((blocked.map_or(reason, |(r, _)| r), wait));
            }
        };
        if let Some((max, window)) = policy.max_calls_limit() {
            let window = micros(window);
            let cutoff = now.saturating_sub(window);
            while self.log.front().is_some_and(|&t| t < cutoff) {
                self.log.pop_front();
            }
            if self.log.len() as u64 >= max {
                // The oldest call stops counting 1 µs after it is `window` old.
                let oldest = self.log.front().copied().unwrap_or(now);
                block(
                    RateReason::TooManyCalls,
                    oldest
                        .saturating_add(window)
                        .saturating_add(1)
                        .saturating_sub(now),
                );
            }
        }
        if let (Some(cooldown), Some(last)) = (policy.cooldown_limit(), self.last_call) {
            let cooldown = micros(cooldown);
            if now.saturating_sub(last) < cooldown {
                block(
                    RateReason::Cooldown,
                    last.saturating_add(cooldown).saturating_sub(now),
                );
            }
        }
        let mut next_tat = None;
        if let Some(b) = policy.bucket_limit() {
            match gcra::step(self.tat, now, b.capacity, b.tokens, micros(b.period)) {
                Ok(tat) => next_tat = Some(tat),
                Err(wait) => block(RateReason::BucketEmpty, wait),
            }
        }
        let since_last_us = self.last_call.map(|last| now - last);
        if let Some((reason, wait)) = blocked {
            return RateOutcome {
                admitted: false,
                reason: Some(reason),
                calls_in_window: self.log.len() as u64,
                since_last_us,
                retry_after_us: Some(wait.max(1)),
            };
        }
        if !record {
            return RateOutcome {
                admitted: true,
                reason: None,
                calls_in_window: self.log.len() as u64,
                since_last_us,
                retry_after_us: None,
            };
        }
        if policy.max_calls_limit().is_some() {
            self.log.push_back(now);
        }
        self.last_call = Some(now);
        if next_tat.is_some() {
            self.tat = next_tat;
        }
        RateOutcome {
            admitted: true,
            reason: None,
            calls_in_window: self.log.len() as u64,
            since_last_us,
            retry_after_us: None,
        }
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The refusal of a charge on a paused ledger.
fn paused_outcome(at: i64) -> ChargeOutcome {
    ChargeOutcome {
        admitted: false,
        paused: true,
        limit_index: 0,
        spent_before: 0,
        at,
        warnings: 0,
    }
}

impl Store for MemoryStore {
    fn rate(&self, request: &RateRequest<'_>) -> Result<RateOutcome, StoreError> {
        let now = self.now();
        Ok(with_entry(&self.gates, request.gate.key(), now, |gate| {
            gate.check(now, request.policy, request.record)
        }))
    }

    fn charge(&self, request: &ChargeRequest<'_>) -> Result<ChargeOutcome, StoreError> {
        let now = self.now();
        if self.is_paused(request.ledger) {
            return Ok(paused_outcome(now));
        }
        self.with_ledger(request.ledger, now, |state| {
            state.charge(now, request, true)
        })
    }

    fn settle(&self, request: &SettleRequest<'_>) -> Result<SettleOutcome, StoreError> {
        let now = self.now();
        Ok(self.with_ledger(request.ledger, now, |state| state.settle(now, request)))
    }

    /// Atomic across the ledgers: all are locked (in one global order, so
    /// concurrent hierarchies cannot deadlock), all are checked, then all are
    /// recorded — or none.
    fn charge_many(&self, requests: &[ChargeRequest<'_>]) -> Result<ManyOutcome, StoreError> {
        let now = self.now();
        let entries: Vec<Arc<Padded<LedgerState>>> = requests
            .iter()
            .map(|r| entry_arc(&self.shards, r.ledger, now))
            .collect();
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&i| Arc::as_ptr(&entries[i]) as usize);
        if order
            .windows(2)
            .any(|w| Arc::ptr_eq(&entries[w[0]], &entries[w[1]]))
        {
            return Err(StoreError::Backend(
                "a ledger is listed twice in one charge".into(),
            ));
        }
        let mut guards: Vec<Option<std::sync::MutexGuard<'_, LedgerState>>> =
            (0..requests.len()).map(|_| None).collect();
        for &i in &order {
            guards[i] = Some(entries[i].lock().unwrap_or_else(|e| e.into_inner()));
        }
        let mut states: Vec<std::sync::MutexGuard<'_, LedgerState>> =
            guards.into_iter().flatten().collect();
        for (i, request) in requests.iter().enumerate() {
            if self.is_paused(request.ledger) {
                return Ok(ManyOutcome::Refused {
                    index: i,
                    outcome: paused_outcome(now),
                });
            }
            let outcome = states[i].charge(now, request, false)?;
            if !outcome.admitted {
                return Ok(ManyOutcome::Refused { index: i, outcome });
            }
        }
        let outcomes = requests
            .iter()
            .zip(states.iter_mut())
            .map(|(request, state)| state.charge(now, request, true))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ManyOutcome::Admitted(outcomes))
    }

    fn ledgers(&self, limit: usize) -> Result<Vec<Ledger>, StoreError> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.0.read().unwrap_or_else(|e| e.into_inner());
            out.extend(map.keys().take(limit - out.len().min(limit)).cloned());
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn set_paused(&self, scope: &PauseScope, paused: bool) -> Result<(), StoreError> {
        let mut set = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        if paused {
            set.insert(scope.clone());
        } else {
            set.remove(scope);
        }
        self.any_paused.store(!set.is_empty(), Ordering::Release);
        Ok(())
    }

    fn paused(&self) -> Result<Vec<PauseScope>, StoreError> {
        Ok(self
            .paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect())
    }

    fn status(&self, ledger: &Ledger, limits: &[Limit]) -> Result<Vec<WindowUsage>, StoreError> {
        let now = self.now();
        Ok(self.with_ledger(ledger, now, |state| {
            let at = state.advance(now);
            limits
                .iter()
                .map(|limit| {
                    let (committed, reserved) = state
                        .tracks
                        .iter()
                        .find(|t| t.window == limit.window())
                        .map_or((0, 0), |t| (t.committed, t.reserved));
                    WindowUsage {
                        committed,
                        reserved,
                        at,
                    }
                })
                .collect()
        }))
    }
}
