//! One rate gate's state in the memory store: the sliding log, the last
//! call and the token bucket, checked and recorded under the gate's lock.

use super::*;

/// A gate's state: the sliding log of admitted calls, the last call, and
/// the token bucket's theoretical arrival time (× its refill tokens).
#[derive(Debug, Default)]
pub(super) struct GateState {
    pub(super) last_at: i64,
    pub(super) log: VecDeque<i64>,
    pub(super) last_call: Option<i64>,
    pub(super) tat: Option<i128>,
}

impl GateState {
    pub(super) fn check(&mut self, now: i64, policy: &Policy, record: bool) -> RateOutcome {
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

pub(super) fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Reclaim for GateState {
    /// Gates are kept: whether a gate's log, cooldown or bucket still
    /// matters depends on its policy, which only callers know.
    fn reclaimable(&self, _now: i64) -> bool {
        false
    }
}
