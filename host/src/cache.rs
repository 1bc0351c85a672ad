//! A small in-process cache whose entries expire: host → tenant, credential → caller, branding. Nothing in it
//! is the only copy of anything; it only saves lookups, and every user of it says how stale an answer may be.
//!
//! Backed by moka: bounded in entries, evicting the least useful ones when full (a flood of new keys, such as
//! random `Host` headers, pushes out old entries instead of emptying the cache), without one lock for every
//! read.

use moka::Expiry;
use std::borrow::Borrow;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Entries kept for at most `ttl` each (0 keeps nothing), `max` entries at most.
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: moka::sync::Cache<K, (V, Duration)>,
}

/// Each entry lives as long as it was put for.
struct PerEntry;

impl<K, V> Expiry<K, (V, Duration)> for PerEntry {
    fn expire_after_create(&self, _key: &K, value: &(V, Duration), _created_at: Instant) -> Option<Duration> {
        Some(value.1)
    }
}

impl<K, V> TtlCache<K, V>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache.
    pub fn new(ttl: Duration, max: usize) -> Self {
        TtlCache {
            ttl,
            entries: moka::sync::Cache::builder()
                .max_capacity(max as u64)
                .expire_after(PerEntry)
                .build(),
        }
    }

    /// The value, if it has not expired.
    pub fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Keep a value for the TTL, or for `valid_for` if that is shorter.
    pub fn put(&self, key: K, value: V, valid_for: Duration) {
        if self.ttl.is_zero() || valid_for.is_zero() {
            return;
        }
        self.entries.insert(key, (value, self.ttl.min(valid_for)));
    }

    /// Forget everything.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::TtlCache;
    use std::time::Duration;

    #[test]
    fn entries_expire_and_clear() {
        let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60), 100);
        cache.put("a".into(), 1, Duration::from_secs(60));
        cache.put("b".into(), 2, Duration::from_millis(1));
        assert_eq!(cache.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(cache.get("b"), None, "an entry lives no longer than it was put for");
        cache.clear();
        assert_eq!(cache.get("a"), None);
        let off: TtlCache<String, u32> = TtlCache::new(Duration::ZERO, 100);
        off.put("a".into(), 1, Duration::from_secs(60));
        assert_eq!(off.get("a"), None, "a TTL of zero keeps nothing");
    }

    #[test]
    fn a_flood_of_new_keys_does_not_empty_the_cache() {
        let cache: TtlCache<u32, u32> = TtlCache::new(Duration::from_secs(60), 1000);
        cache.put(0, 0, Duration::from_secs(60));
        // The kept entry is read often, as a live academy's host is.
        for i in 1..20_000 {
            cache.put(i, i, Duration::from_secs(60));
            if i % 10 == 0 {
                assert_eq!(cache.get(&0), Some(0));
            }
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.entry_count() <= 1000);
        assert_eq!(cache.get(&0), Some(0), "the entry in use survives the flood");
    }
}
