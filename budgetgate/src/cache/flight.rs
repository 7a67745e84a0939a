//! Single-flight: identical requests that miss at the same time share one
//! call. The first becomes the leader and runs it; the others wait until
//! the leader is done — its answer cached, its body failed, or its future
//! dropped — and then look again: a hit, or (the leader failed or was
//! cancelled) one of them leads the next try. Waiting costs nothing of the
//! budget: a follower reserves nothing until it leads.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::watch;

/// The calls in flight, by key.
pub(super) struct Flights<K> {
    map: Mutex<HashMap<K, watch::Receiver<()>>>,
}

/// What a caller that missed does next.
pub(super) enum Turn<'a, K: Hash + Eq> {
    /// Run the call; the others wait until this is dropped.
    Lead(Leader<'a, K>),
    /// Wait for the leader ([`wait`]), then look again.
    Follow(watch::Receiver<()>),
}

/// The right to run a key's call; dropping it (done, failed or cancelled)
/// wakes the followers.
pub(super) struct Leader<'a, K: Hash + Eq> {
    flights: &'a Flights<K>,
    key: K,
    done: watch::Sender<()>,
}

impl<K> Default for Flights<K> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Flights<K> {
    /// Leads `key`'s call, or follows the one in flight.
    pub(super) fn turn(&self, key: &K) -> Turn<'_, K> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = map.get(key) {
            // A leader whose sender is gone has finished: lead anew.
            if rx.has_changed().is_ok() {
                return Turn::Follow(rx.clone());
            }
        }
        let (done, rx) = watch::channel(());
        map.insert(key.clone(), rx);
        Turn::Lead(Leader {
            flights: self,
            key: key.clone(),
            done,
        })
    }
}

/// Waits until the leader followed by `rx` is done.
pub(super) async fn wait(mut rx: watch::Receiver<()>) {
    // The leader never sends: `changed` ends when its sender is dropped.
    while rx.changed().await.is_ok() {}
}

impl<K: Hash + Eq> Drop for Leader<'_, K> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|e| e.into_inner());
        // Only this leader's entry (a later leader's stays).
        if map
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.done.subscribe()))
        {
            map.remove(&self.key);
        }
    }
}
