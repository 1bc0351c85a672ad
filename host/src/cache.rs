//! A small in-process cache whose entries expire: host → tenant, credential → caller, branding. Nothing in it
//! is the only copy of anything; it only saves lookups, and every user of it says how stale an answer may be.
//!
//! Backed by moka: bounded in entries, evicting the least useful ones when full (a flood of new keys, such as
//! random `Host` headers, pushes out old entries instead of emptying the cache), without one lock for every
//! read. [`AcademyCache`] adds forgetting one academy's entries without touching the others'.

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

/// A [`TtlCache`] whose entries each belong to one academy, and can be forgotten one academy at a time: a
/// change in one academy leaves every other academy's cached answers in place (one busy academy's writes
/// cannot keep emptying the caches the others' requests depend on).
///
/// Each academy has a version, and entries are kept under the version current when their answer was read.
/// Forgetting an academy moves its version on, so its older entries are never answered again (they age out
/// or are pushed out). Read the version *before* reading what is to be cached: a change that lands meanwhile
/// then leaves the entry unreachable instead of stale.
pub struct AcademyCache<K, V> {
    entries: TtlCache<(String, u64, K), V>,
    versions: Versions,
}

/// Versions of academies (and of everything, for [`AcademyCache::clear`]).
#[derive(Default)]
struct Versions {
    all: std::sync::atomic::AtomicU64,
    each: std::sync::RwLock<std::collections::HashMap<String, u64>>,
}

impl<K, V> AcademyCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache: entries kept for at most `ttl`, `max` at most.
    pub fn new(ttl: Duration, max: usize) -> Self {
        AcademyCache {
            entries: TtlCache::new(ttl, max),
            versions: Versions::default(),
        }
    }

    /// The academy's version now, to read before the answer that will be put.
    pub fn version(&self, academy: &str) -> u64 {
        let own = self
            .versions
            .each
            .read()
            .map(|each| each.get(academy).copied().unwrap_or(0))
            .unwrap_or(0);
        self.versions.all.load(std::sync::atomic::Ordering::Acquire) + own
    }

    /// The academy's entry for `key`, if it is current and has not expired.
    pub fn get(&self, academy: &str, key: &K) -> Option<V> {
        self.entries
            .get(&(academy.to_owned(), self.version(academy), key.clone()))
    }

    /// Keep an answer read at `version` (see [`AcademyCache::version`]) for the TTL, or for `valid_for` if
    /// that is shorter.
    pub fn put(&self, academy: &str, version: u64, key: K, value: V, valid_for: Duration) {
        self.entries.put((academy.to_owned(), version, key), value, valid_for);
    }

    /// Forget one academy's entries.
    pub fn forget(&self, academy: &str) {
        if let Ok(mut each) = self.versions.each.write() {
            *each.entry(academy.to_owned()).or_default() += 1;
        }
    }

    /// Forget everything.
    pub fn clear(&self) {
        self.versions.all.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::{AcademyCache, TtlCache};
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

    #[test]
    fn forgetting_one_academy_leaves_the_others() {
        let cache: AcademyCache<String, u32> = AcademyCache::new(Duration::from_secs(60), 100);
        let long = Duration::from_secs(60);
        let (a, b) = (cache.version("acme"), cache.version("globex"));
        cache.put("acme", a, "k".into(), 1, long);
        cache.put("globex", b, "k".into(), 2, long);
        cache.forget("globex");
        assert_eq!(
            cache.get("acme", &"k".into()),
            Some(1),
            "another academy's change leaves acme's entry"
        );
        assert_eq!(cache.get("globex", &"k".into()), None);
        // An answer read before a change and put after it is never answered.
        let before = cache.version("acme");
        cache.forget("acme");
        cache.put("acme", before, "late".into(), 3, long);
        assert_eq!(cache.get("acme", &"late".into()), None);
        let now = cache.version("acme");
        cache.put("acme", now, "k".into(), 4, long);
        assert_eq!(cache.get("acme", &"k".into()), Some(4));
        cache.clear();
        assert_eq!(cache.get("acme", &"k".into()), None);
    }
}
