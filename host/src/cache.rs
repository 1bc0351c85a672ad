//! A small in-process cache whose entries expire: host → tenant, credential → caller. Nothing in it is the
//! only copy of anything; it only saves lookups, and every user of it says how stale an answer may be.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept for at most `ttl` each (0 keeps nothing). Past `max` entries it starts over, which bounds
/// memory without bookkeeping.
pub struct TtlCache<K, V> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// An empty cache.
    pub fn new(ttl: Duration, max: usize) -> Self {
        TtlCache {
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value, if it has not expired.
    pub fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let entries = self.entries.lock().ok()?;
        let (deadline, value) = entries.get(key)?;
        (Instant::now() < *deadline).then(|| value.clone())
    }

    /// Keep a value for the TTL, or for `valid_for` if that is shorter.
    pub fn put(&self, key: K, value: V, valid_for: Duration) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max {
                entries.clear();
            }
            entries.insert(key, (Instant::now() + self.ttl.min(valid_for), value));
        }
    }

    /// Forget everything.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
