//! One ledger's state in the memory store: its windows (running totals and
//! time-ordered entries), its open reservations and their expiry queue, and
//! the charge / settle arithmetic under the ledger's lock.

use super::*;

/// One window's running total and (rolling windows) its time-ordered entries.
#[derive(Debug)]
pub(super) struct Track {
    pub(super) window: Window,
    pub(super) committed: Nanos,
    pub(super) reserved: Nanos,
    /// Rolling windows only: what still counts, oldest first.
    pub(super) entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`; entry `s` lives at `s - head_seq`.
    pub(super) head_seq: u64,
    /// Calendar windows: the start of the current period (µs).
    pub(super) period: i64,
    /// Soft-limit thresholds reported in this window: `(threshold, when)`
    /// — the period's start (calendar) or the report's time (rolling,
    /// unbounded). Each threshold is reported once per window.
    pub(super) warned: Vec<(Nanos, i64)>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) at: i64,
    pub(super) nanos: Nanos,
    pub(super) held: bool,
}

/// An open reservation.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) amount: Nanos,
    pub(super) expires: i64,
    /// Per track (by index, tracks existing at reservation time): the entry's
    /// sequence number (unused for unbounded tracks). Track 0's is inline so
    /// the common single-window ledger allocates nothing.
    pub(super) first_slot: Option<u64>,
    pub(super) more_slots: Vec<u64>,
}

impl Held {
    pub(super) fn slot(&self, track: usize) -> Option<u64> {
        match track {
            0 => self.first_slot,
            n => self.more_slots.get(n - 1).copied(),
        }
    }
}

#[derive(Debug)]
pub(super) struct LedgerState {
    pub(super) last_at: i64,
    pub(super) tracks: Vec<Track>,
    pub(super) held: HashMap<ReservationIdKey, Held, Prehashed>,
    /// No open reservation expires before this (`i64::MAX`: none open).
    pub(super) next_expiry: i64,
    /// Open reservations by expiry, earliest first (holds made with one TTL
    /// arrive in expiry order: pushed at the back in O(1)); settled ones are
    /// left in and skipped when they come up, and the queue is compacted
    /// once it holds twice the open ones — so expiring many abandoned holds
    /// one by one costs O(1) each, not a scan of all of them.
    pub(super) expiries: VecDeque<(i64, u128)>,
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
    pub(super) fn new(window: Window) -> Self {
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
    pub(super) fn first_warning(&mut self, warn: Nanos, now: i64) -> bool {
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

    pub(super) fn spent(&self) -> Nanos {
        self.committed + self.reserved
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.head_seq + self.entries.len() as u64
    }

    /// What a hold made now remembers to find itself again: the entry's
    /// sequence number (rolling), the period's start (calendar), nothing
    /// needed (unbounded).
    pub(super) fn slot_now(&self) -> u64 {
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
    pub(super) fn take_hold(
        &mut self,
        slot: Option<u64>,
        amount: Nanos,
        actual: Option<Nanos>,
    ) -> bool {
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

    pub(super) fn entry_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let index = seq.checked_sub(self.head_seq)?;
        self.entries.get_mut(usize::try_from(index).ok()?)
    }

    /// Appends an amount at time `at` (its seq is `next_seq()` before the call).
    pub(super) fn push(&mut self, at: i64, nanos: Nanos, held: bool) {
        if held {
            self.reserved += nanos;
        } else {
            self.committed += nanos;
        }
        if let Window::Rolling(_) = self.window {
            self.entries.push_back(Entry { at, nanos, held });
        }
    }

    pub(super) fn prune(&mut self, now: i64) {
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
    pub(super) fn advance(&mut self, now: i64) -> i64 {
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
    pub(super) fn expire(&mut self, now: i64) {
        while let Some(&(expires, raw)) = self.expiries.front() {
            if expires > now {
                break;
            }
            self.expiries.pop_front();
            let key = ReservationIdKey(crate::store::ReservationId::from_u128(raw));
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
    pub(super) fn schedule_expiry(&mut self, key: ReservationIdKey, expires: i64) {
        if self.expiries.len() >= 2 * self.held.len() + 64 {
            let held = &self.held;
            self.expiries.retain(|(at, raw)| {
                held.get(&ReservationIdKey(crate::store::ReservationId::from_u128(
                    *raw,
                )))
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
    pub(super) fn is_empty_at(&self, now: i64) -> bool {
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
    pub(super) fn track_index(&mut self, window: Window, now: i64) -> usize {
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
    pub(super) fn drop_hold(&mut self, held: &Held) -> bool {
        let mut everywhere = true;
        for (i, track) in self.tracks.iter_mut().enumerate() {
            everywhere &= track.take_hold(held.slot(i), held.amount, None);
        }
        everywhere
    }

    /// Decides a charge and, if admitted and `record`, records it.
    pub(super) fn charge(
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
                        warnings |= crate::store::warning_bit(n, slot).unwrap_or(0);
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

    pub(super) fn settle(&mut self, now: i64, request: &SettleRequest<'_>) -> SettleOutcome {
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

impl Reclaim for LedgerState {
    fn reclaimable(&self, now: i64) -> bool {
        self.is_empty_at(now)
    }
}
