//! The settings the academy's admin gave this plugin (needs the `config` capability).
//!
//! Settings are declared in the plugin's `aula-plugin.toml` with a type and usually a default; the host
//! validates what the admin enters against that declaration and hands each value over as JSON text.
//! Secrets are kept apart: they are never shown back to admins nor written to logs.
//!
//! ```no_run
//! use aula_sdk::config;
//! use std::collections::BTreeMap;
//!
//! let due_in_days: u32 = config::get("due_in_days").unwrap_or(14);
//! let domains: BTreeMap<String, String> = config::get("domains").unwrap_or_default();
//! let api_key = config::secret("api_key");
//! ```

use serde::de::DeserializeOwned;

use crate::sys;

/// The setting `key` decoded as `T`, or `None` when it is unset or does not decode as `T`.
///
/// Use [`try_get`] when a value of the wrong shape should be reported rather than treated as unset.
pub fn get<T: DeserializeOwned>(key: &str) -> Option<T> {
    try_get(key).ok().flatten()
}

/// The setting `key` decoded as `T`: `Ok(None)` when it is unset, an error naming the key when it does not
/// decode as `T`.
pub fn try_get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, String> {
    match raw(key) {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| format!("setting `{key}`: {e}")),
    }
}

/// The setting `key` as the JSON text the host holds (a string setting arrives quoted: `"Sales"`).
pub fn raw(key: &str) -> Option<String> {
    sys::config_get(key)
}

/// The secret `key` (an API key, a password), as entered by the admin.
pub fn secret(key: &str) -> Option<String> {
    sys::config_secret(key)
}
