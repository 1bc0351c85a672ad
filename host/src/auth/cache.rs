//! A short-lived cache of authenticated callers, so a burst of requests with one credential costs one
//! credential lookup.
//!
//! Any successful change made through this process clears it at once (see `http::forget_callers_on_write`);
//! changes made by another replica (a revoked token, a changed grant) take effect here within the TTL,
//! which is why it is short (`auth_cache_ms`, default 2 s; 0 turns the cache off).

use super::Caller;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Callers by (host tenant, credential hash).
pub struct CallerCache {
    ttl: Duration,
    entries: Mutex<HashMap<(String, String), (Instant, Caller)>>,
}

impl CallerCache {
    /// Most entries kept; past it the cache starts over.
    const MAX_ENTRIES: usize = 20_000;

    /// A cache keeping callers for `ttl`.
    pub fn new(ttl: Duration) -> CallerCache {
        CallerCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The caller for this credential on this host, if still fresh.
    pub fn get(&self, host: &str, credential: &str) -> Option<Caller> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (deadline, caller) = entries.get(&(host.to_owned(), credential.to_owned()))?;
        (Instant::now() < *deadline).then(|| caller.clone())
    }

    /// Remember a caller until the TTL ends or its credential expires, whichever is first.
    pub fn put(&self, host: String, credential: String, caller: Caller, credential_valid_for: Duration) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::MAX_ENTRIES {
                entries.clear();
            }
            let deadline = Instant::now() + self.ttl.min(credential_valid_for);
            entries.insert((host, credential), (deadline, caller));
        }
    }

    /// Forget everything.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
