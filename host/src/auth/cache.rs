//! Authenticated callers, reused for a moment so a burst of requests with one credential costs one
//! credential lookup.
//!
//! Any successful change made through this process clears it at once (see `http::forget_callers_on_write`);
//! changes made by another replica (a revoked token, a changed grant) take effect here within the TTL,
//! which is why it is short (`auth_cache_ms`, default 2 s; 0 turns the cache off).

use super::Caller;
use crate::cache::TtlCache;

/// Callers by (host tenant id, credential hash).
pub type CallerCache = TtlCache<(String, String), Caller>;

/// Most callers kept.
pub const MAX_CALLERS: usize = 20_000;
