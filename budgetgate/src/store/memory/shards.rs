//! Where the memory store keeps its entries: 64 shards of read-mostly maps,
//! each entry behind its own padded mutex, swept for reclaimable state as a
//! shard grows.

use super::*;

pub(super) const SHARD_BITS: u32 = 6;

/// One shard, padded to its own cache lines: threads locking neighbouring
/// shards must not write the same line.
#[repr(align(128))]
pub(super) struct Shard<T>(
    pub(super) RwLock<HashMap<Ledger, Arc<Padded<T>>, Prehashed>>,
    /// Sweep for reclaimable entries when the map reaches this size.
    std::sync::atomic::AtomicUsize,
);

/// State that may be dropped when it no longer holds anything.
pub(super) trait Reclaim {
    /// Whether dropping it at `now` changes nothing.
    fn reclaimable(&self, now: i64) -> bool;
}

/// The first size at which a shard is swept.
pub(super) const FIRST_SWEEP: usize = 1024;

/// One ledger's (or gate's) lock and state on cache lines of its own: two
/// entries allocated one after the other must not share a line, or threads
/// on unrelated ledgers would contend.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct Padded<T>(Mutex<T>);

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

pub(super) fn shards<T>() -> Box<[Shard<T>]> {
    (0..1 << SHARD_BITS).map(|_| Shard::default()).collect()
}

/// Runs `f` on the entry of `key` under its own lock (created on first use).
pub(super) fn with_entry<T: Default + Reclaim, R>(
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
pub(super) fn entry_arc<T: Default + Reclaim>(
    shards: &[Shard<T>],
    key: &Ledger,
    now: i64,
) -> Arc<Padded<T>> {
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
