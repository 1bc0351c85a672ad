//! The plugin's own key-value store, kept per academy (needs the `kv` capability).
//!
//! Keys are at most 256 bytes and values at most 64 KiB; the store as a whole is capped by the host.
//!
//! ```no_run
//! use aula_sdk::kv;
//!
//! let count: u64 = kv::get_string("count").and_then(|s| s.parse().ok()).unwrap_or(0);
//! kv::set("count", (count + 1).to_string())?;
//! # Ok::<(), String>(())
//! ```

use crate::sys;

/// The value stored under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    sys::kv_get(key)
}

/// The value stored under `key` as text; `None` when absent or not UTF-8.
pub fn get_string(key: &str) -> Option<String> {
    get(key).and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Stores `value` under `key`, replacing what was there. Fails when the key or value is too large or the
/// store is full.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), String> {
    sys::kv_set(key, value.as_ref())
}

/// Removes `key`; nothing happens when it is absent.
pub fn delete(key: &str) {
    sys::kv_delete(key)
}

/// Keys starting with `prefix`, in order, at most `limit`.
pub fn keys(prefix: &str, limit: u32) -> Vec<String> {
    sys::kv_keys(prefix, limit)
}
