//! Authenticated callers, reused for a moment so a burst of requests with one credential costs one
//! credential lookup.
//!
//! A successful change made through this process forgets the callers of its academy at once (see
//! `http::forget_callers_on_write`), and those met on the platform's host; other academies' callers stay.
//! Changes made by another replica (a revoked token, a changed grant) take effect here within the TTL, which
//! is why it is short (`auth_cache_ms`, default 2 s; 0 turns the cache off).

use super::Caller;
use crate::cache::AcademyCache;

/// Callers by the host's academy (its tenant id; empty for the platform's host) and credential hash.
pub type CallerCache = AcademyCache<String, Caller>;

/// Most callers kept.
pub const MAX_CALLERS: usize = 20_000;
