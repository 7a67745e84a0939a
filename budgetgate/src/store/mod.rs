//! The [`Store`] contract: where spend state lives.
//!
//! A store does the decision arithmetic atomically, one call per operation
//! (one round trip for a networked store):
//!
//! - [`Store::charge`] — prune what left each window, compare
//!   `spent + amount` against every [`Limit`], and either refuse or record the
//!   amount (as spend, or as a reservation held under a client-chosen id);
//! - [`Store::settle`] — commit a reservation (replace the hold by the actual
//!   cost) or release it;
//! - [`Store::status`] — what is spent and held per window.
//!
//! Amounts are integer nano-units ([`crate::amount`]), times microseconds since
//! the Unix epoch taken from the store's own clock. A ledger keeps one running
//! total per [`Window`](crate::Window) it is used with; every charge is
//! recorded in all of them and checked against the limits passed.
//!
//! Every implementation must pass the conformance suite (`src/conformance.rs`
//! in the repository, run by `tests/conformance_*.rs`).

mod in_order;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::sync::LazyLock;

use crate::budget::Limit;
use crate::ledger::Ledger;
use crate::pause::PauseScope;

pub use in_order::{charge_in_order, charge_in_order_async};
pub use memory::MemoryStore;

/// An amount in nano-units (10⁻⁹ of a currency unit).
pub type Nanos = i128;

/// A boxed future returned by the async store methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A reservation's identity, chosen by the client before anything is sent, so
/// that a request whose answer was lost can still be settled by id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(u128);

static ID_PREFIX: LazyLock<u64> = LazyLock::new(|| {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_i64(crate::clock::Clock::now_micros(&crate::clock::SystemClock));
    h.finish()
});
static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);

std::thread_local! {
    /// (thread number, counter): ids are made without touching shared memory.
    static THREAD_IDS: std::cell::Cell<(u64, u64)> = std::cell::Cell::new((
        NEXT_THREAD.fetch_add(1, Ordering::Relaxed),
        0,
    ));
}

impl ReservationId {
    /// A new id, unique across processes and hosts: a random per-process
    /// prefix, the thread's number and a per-thread counter.
    pub fn new() -> Self {
        let (thread, n) = THREAD_IDS.with(|c| {
            let (thread, n) = c.get();
            c.set((thread, n.wrapping_add(1)));
            (thread, n)
        });
        // 24 bits of thread number, 40 of counter, mixed so the low bits
        // (what hash maps use) spread well; the mix is a bijection.
        let low = ((thread << 40) ^ (n & ((1 << 40) - 1))).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ReservationId((u128::from(*ID_PREFIX) << 64) | u128::from(low))
    }

    /// The raw value.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// Rebuilds an id from its raw value.
    pub fn from_u128(raw: u128) -> Self {
        ReservationId(raw)
    }
}

impl Default for ReservationId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::hash::Hash for ReservationIdKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0 .0 as u64);
    }
}

/// `ReservationId` as a key of prehashed maps (its low 64 bits are already mixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReservationIdKey(pub(crate) ReservationId);

impl ReservationId {
    /// The id as 32 lowercase hex digits (its `Display`), without the
    /// formatting machinery: stores send it on every call.
    pub(crate) fn hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, digit) in out.iter_mut().enumerate() {
            let nibble = (self.0 >> (124 - 4 * i)) & 0xf;
            *digit = DIGITS[nibble as usize];
        }
        out
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        // Always ASCII hex digits.
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl fmt::Debug for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReservationId({self})")
    }
}

/// Hold the charged amount as a reservation instead of recording it as spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The reservation's id.
    pub id: ReservationId,
    /// How long the store keeps the reservation if nobody settles it.
    pub ttl: Duration,
}

/// A request to admit `amount` on a ledger.
#[derive(Debug, Clone, Copy)]
pub struct ChargeRequest<'a> {
    /// The ledger.
    pub ledger: &'a Ledger,
    /// Every limit that must hold (all must pass). Never empty.
    pub limits: &'a [Limit],
    /// The amount, in nano-units (≥ 0).
    pub amount: Nanos,
    /// `None`: record as spend (fixed cost). `Some`: hold as a reservation.
    pub hold: Option<Hold>,
    /// A fixed cost's id (ignored with a hold, which carries its own).
    /// A store whose writes can arrive late (a networked store) remembers
    /// it for its settled retention, so a charge whose answer was lost can
    /// be settled by id: [`SettleRequest::cancel`] takes it back (the call
    /// did not run), a commit with [`SettleRequest::record_if_missing`]
    /// confirms it without counting it twice (the call ran); a copy of the
    /// charge that arrives after either is refused. `None`: nobody will
    /// settle it.
    pub id: Option<ReservationId>,
}

/// What a charge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeOutcome {
    /// Whether the amount fitted every limit and was recorded.
    pub admitted: bool,
    /// Refused because the ledger is paused (nothing was checked or recorded).
    pub paused: bool,
    /// The limit the decision reports: the first that blocked, or (admitted)
    /// the one with the least room left.
    pub limit_index: usize,
    /// Spend counted in that limit's window before this request.
    pub spent_before: Nanos,
    /// The store's time of the operation (µs since the epoch).
    pub at: i64,
    /// Soft-limit reports: bit [`warning_bit`]`(i, slot)` set when this
    /// charge took limit `i`'s window across its threshold `slot` (from
    /// below to at or above) and that threshold had not yet been reported
    /// in this window.
    pub warnings: u64,
}

impl ChargeOutcome {
    /// The refusal of a charge on a paused ledger (nothing checked or
    /// recorded), at the store's time `at`.
    pub(crate) fn paused(at: i64) -> ChargeOutcome {
        ChargeOutcome {
            admitted: false,
            paused: true,
            limit_index: 0,
            spent_before: 0,
            at,
            warnings: 0,
        }
    }
}

/// The bit of [`ChargeOutcome::warnings`] for limit `limit`'s threshold
/// `slot` (see [`Limit::warn_thresholds`]); `None` past the 16th limit,
/// whose thresholds are not reported.
pub const fn warning_bit(limit: usize, slot: usize) -> Option<u64> {
    if limit < 16 && slot < crate::budget::MAX_WARN_THRESHOLDS {
        Some(1 << (limit * crate::budget::MAX_WARN_THRESHOLDS + slot))
    } else {
        None
    }
}

/// What a charge across several ledgers did ([`Store::charge_many`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManyOutcome {
    /// Every request fitted and was recorded; one outcome per request.
    Admitted(Vec<ChargeOutcome>),
    /// Request `index` was refused (`outcome` says why); nothing was
    /// recorded anywhere.
    Refused {
        /// Which request.
        index: usize,
        /// Its outcome.
        outcome: ChargeOutcome,
    },
}

/// A request to commit or release a reservation.
#[derive(Debug, Clone, Copy)]
pub struct SettleRequest<'a> {
    /// The ledger the reservation was made on.
    pub ledger: &'a Ledger,
    /// The limits it was made under (their windows receive the actual).
    pub limits: &'a [Limit],
    /// The reservation.
    pub id: ReservationId,
    /// The amount that was reserved.
    pub reserved: Nanos,
    /// `Some(actual)`: commit that cost. `None`: release.
    pub actual: Option<Nanos>,
    /// Commit even if the store no longer holds the reservation (it expired,
    /// or was never made because the store failed under fail-open): the money
    /// was spent. Set only by the owner of the reservation, which guarantees it
    /// settles once.
    pub record_if_missing: bool,
    /// A release that also refuses, from now on, a hold with this id: the
    /// reservation's outcome was unknown (a timeout, a dropped future) and
    /// its request may still arrive. For the id of a fixed cost
    /// ([`ChargeRequest::id`]) that was recorded, the charge is taken back
    /// (answered [`SettleOutcome::Released`]). Stores whose writes cannot
    /// arrive late (the in-memory store) treat it as a plain release.
    pub cancel: bool,
}

/// What a settle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// The hold was replaced by the actual, at the reservation's time.
    Committed,
    /// The hold was gone (TTL expiry, window passed, never made); the actual
    /// was recorded at the commit's time.
    CommittedLate,
    /// The hold was removed; nothing is charged.
    Released,
    /// The store holds no such reservation (settled before, expired, or never
    /// made) and nothing was changed.
    Unknown,
}

/// Spend in one window of a ledger, as seen by [`Store::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUsage {
    /// Committed spend in the window.
    pub committed: Nanos,
    /// Active reservations in the window.
    pub reserved: Nanos,
    /// The store's time of the reading.
    pub at: i64,
}

/// A store failure: unreachable, timed out, or erroring.
///
/// Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The operation did not complete within the store's timeout.
    #[error("store operation timed out after {0:?}")]
    Timeout(Duration),
    /// The store answered with an error or an unexpected reply.
    #[error("store error: {0}")]
    Backend(String),
    /// Nothing was sent: the store could not be reached (the connection
    /// was refused or its handshake failed), so the write certainly did not
    /// happen and needs no settling.
    #[error("store unreachable, nothing was sent: {0}")]
    NotSent(String),
}

impl StoreError {
    /// Whether the request may have reached the store (and so may have
    /// been applied): false only for [`StoreError::NotSent`].
    pub fn may_have_applied(&self) -> bool {
        !matches!(self, StoreError::NotSent(_))
    }
}

/// What a store is asked to check and record for one call.
#[derive(Debug, Clone, Copy)]
pub struct RateRequest<'a> {
    /// The gate.
    pub gate: &'a crate::rate::Gate,
    /// The policy (validated).
    pub policy: &'a crate::rate::Policy,
    /// A unique id for this call (the sliding log's member).
    pub call_id: ReservationId,
    /// Record an admitted call (`false`: only say whether one would be
    /// admitted now, changing nothing — [`Engine::rate_status`](crate::Engine::rate_status)).
    pub record: bool,
}

/// What a store decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateOutcome {
    /// Whether the call was admitted (and recorded).
    pub admitted: bool,
    /// Why not.
    pub reason: Option<crate::rate::RateReason>,
    /// Calls in the window after this check.
    pub calls_in_window: u64,
    /// µs since the previous admitted call.
    pub since_last_us: Option<i64>,
    /// µs until a call can be admitted (when blocked).
    pub retry_after_us: Option<i64>,
}

/// Where spend state lives. See the module docs for the contract.
///
/// The async methods default to the sync ones, which suits stores that never
/// block (the in-memory store); networked stores override both.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Prunes, checks every limit and, if all pass, records or holds the amount
    /// — atomically for all callers of the ledger.
    fn charge(&self, request: &ChargeRequest<'_>) -> Result<ChargeOutcome, StoreError>;

    /// Charges several ledgers all or nothing (a hierarchy: user, project,
    /// global). Every request must be admitted for any to be recorded.
    ///
    /// The default charges one ledger at a time, in a fixed order, as a hold,
    /// and releases the holds already made when one is refused; fixed-cost
    /// requests become spend once all are admitted. No ledger can be
    /// overspent (each step is atomic) and a refused call leaves no hold,
    /// but others may briefly see the holds of a call that is then refused.
    /// Stores that can lock several ledgers at once override it.
    fn charge_many(&self, requests: &[ChargeRequest<'_>]) -> Result<ManyOutcome, StoreError> {
        charge_in_order(self, requests)
    }

    /// Commits or releases a reservation, atomically.
    fn settle(&self, request: &SettleRequest<'_>) -> Result<SettleOutcome, StoreError>;

    /// Async [`Store::charge_many`]. The default runs the sync one, which
    /// suits stores that never block.
    fn charge_many_async<'a>(
        &'a self,
        requests: Vec<ChargeRequest<'a>>,
    ) -> StoreFuture<'a, ManyOutcome> {
        Box::pin(std::future::ready(self.charge_many(&requests)))
    }

    /// Async [`Store::settle_many`]. The default runs the sync one.
    fn settle_many_async<'a>(
        &'a self,
        requests: Vec<SettleRequest<'a>>,
    ) -> StoreFuture<'a, Vec<SettleOutcome>> {
        Box::pin(std::future::ready(self.settle_many(&requests)))
    }

    /// Settles several reservations (a hierarchy's); one outcome each. The
    /// default settles them one by one; networked stores batch them.
    fn settle_many(
        &self,
        requests: &[SettleRequest<'_>],
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        requests.iter().map(|r| self.settle(r)).collect()
    }

    /// Spend and holds per limit window, after pruning; one entry per limit.
    fn status(&self, ledger: &Ledger, limits: &[Limit]) -> Result<Vec<WindowUsage>, StoreError>;

    /// Async [`Store::charge`].
    fn charge_async<'a>(&'a self, request: ChargeRequest<'a>) -> StoreFuture<'a, ChargeOutcome> {
        Box::pin(std::future::ready(self.charge(&request)))
    }

    /// Async [`Store::settle`].
    fn settle_async<'a>(&'a self, request: SettleRequest<'a>) -> StoreFuture<'a, SettleOutcome> {
        Box::pin(std::future::ready(self.settle(&request)))
    }

    /// Async [`Store::status`].
    fn status_async<'a>(
        &'a self,
        ledger: &'a Ledger,
        limits: &'a [Limit],
    ) -> StoreFuture<'a, Vec<WindowUsage>> {
        Box::pin(std::future::ready(self.status(ledger, limits)))
    }

    /// Up to `limit` ledgers the store holds state for (in no particular
    /// order). The default lists none.
    fn ledgers(&self, limit: usize) -> Result<Vec<Ledger>, StoreError> {
        let _ = limit;
        Ok(Vec::new())
    }

    /// Pauses (`true`) or resumes (`false`) a scope; charges covered by a
    /// pause are refused with `paused: true`. The default refuses.
    fn set_paused(&self, scope: &PauseScope, paused: bool) -> Result<(), StoreError> {
        let _ = paused;
        Err(StoreError::Backend(format!(
            "this store cannot pause ({scope})"
        )))
    }

    /// Every paused scope.
    fn paused(&self) -> Result<Vec<PauseScope>, StoreError> {
        Ok(Vec::new())
    }

    /// Checks a call against a rate [`Policy`](crate::rate::Policy) and, if
    /// every limit passes, records it — atomically for all callers of the
    /// gate. The default refuses (stores without rate limits fail closed).
    fn rate(&self, request: &RateRequest<'_>) -> Result<RateOutcome, StoreError> {
        Err(StoreError::Backend(format!(
            "this store does not implement rate limits (gate {})",
            request.gate
        )))
    }

    /// Async [`Store::rate`].
    fn rate_async<'a>(&'a self, request: RateRequest<'a>) -> StoreFuture<'a, RateOutcome> {
        Box::pin(std::future::ready(self.rate(&request)))
    }

    /// Forgets everything recorded on `ledger`: committed spend in every
    /// window and open reservations (their commits then record late, at the
    /// commit's time). Settled-reservation records are kept, so a retried
    /// commit is still never charged twice. The default refuses.
    fn reset(&self, ledger: &Ledger) -> Result<(), StoreError> {
        Err(StoreError::Backend(format!(
            "this store cannot reset a ledger ({ledger})"
        )))
    }

    /// The version of the operator-stored budgets ([`crate::shared`]): it
    /// changes whenever one is stored or removed. 0: none was ever stored.
    /// Read often (about twice a second per engine), so it must be cheap.
    fn shared_budgets_version(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Every operator-stored budget (opaque JSON texts, see
    /// [`crate::shared`]) with the version they form, read atomically.
    fn shared_budgets(&self) -> Result<(u64, Vec<String>), StoreError> {
        Ok((0, Vec::new()))
    }

    /// Stores (`Some`) or removes (`None`) the operator budget under `key`
    /// and bumps the version, atomically; returns the new version. The
    /// default refuses.
    fn put_shared_budget(&self, key: &str, value: Option<&str>) -> Result<u64, StoreError> {
        let _ = value;
        Err(StoreError::Backend(format!(
            "this store cannot hold shared budgets ({key})"
        )))
    }

    /// Keeps a small text record under `key` for `ttl` (replacing one
    /// there): state that must outlive one process, such as the service's
    /// open reservations, which any replica may settle. The default refuses.
    fn put_record(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let _ = (value, ttl);
        Err(StoreError::Backend(format!(
            "this store cannot keep records ({key})"
        )))
    }

    /// The record under `key`, if it is there and has not expired.
    fn get_record(&self, key: &str) -> Result<Option<String>, StoreError> {
        let _ = key;
        Ok(None)
    }

    /// Async [`Store::put_record`]; the default calls the sync one.
    fn put_record_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(self.put_record(key, value, ttl)))
    }

    /// Async [`Store::get_record`]; the default calls the sync one.
    fn get_record_async<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(std::future::ready(self.get_record(key)))
    }

    /// Releases a reservation from a destructor (a `Reservation` dropped
    /// without commit). Must not block an async runtime: a networked store
    /// sends it in the background. The default settles synchronously.
    fn release_in_background(&self, request: &SettleRequest<'_>) {
        if let Err(error) = self.settle(request) {
            tracing::warn!(ledger = %request.ledger, id = %request.id, %error,
                "could not release a dropped reservation; its headroom returns when it expires");
        }
    }
}

/// A store that fails every operation with the same error (a configuration
/// that cannot work must fail closed, not fall back to per-process counting).
#[derive(Debug)]
pub(crate) struct Unusable(pub(crate) String);

impl Store for Unusable {
    fn charge(&self, _: &ChargeRequest<'_>) -> Result<ChargeOutcome, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn settle(&self, _: &SettleRequest<'_>) -> Result<SettleOutcome, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn status(&self, _: &Ledger, _: &[Limit]) -> Result<Vec<WindowUsage>, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn rate(&self, _: &RateRequest<'_>) -> Result<RateOutcome, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn set_paused(&self, _: &PauseScope, _: bool) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn paused(&self) -> Result<Vec<PauseScope>, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn ledgers(&self, _: usize) -> Result<Vec<Ledger>, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn reset(&self, _: &Ledger) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn shared_budgets_version(&self) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn shared_budgets(&self) -> Result<(u64, Vec<String>), StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn put_shared_budget(&self, _: &str, _: Option<&str>) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn put_record(&self, _: &str, _: &str, _: Duration) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
    fn get_record(&self, _: &str) -> Result<Option<String>, StoreError> {
        Err(StoreError::Unavailable(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::ReservationId;

    #[test]
    fn reservation_ids_show_as_32_hex_digits() {
        for raw in [0, 1, 0xabc, u128::MAX, u128::MAX / 3, 1 << 127] {
            let id = ReservationId::from_u128(raw);
            assert_eq!(id.to_string(), format!("{raw:032x}"));
        }
        let id = ReservationId::new();
        assert_eq!(id.to_string(), format!("{:032x}", id.as_u128()));
    }
}
