//! `[sso]`: how the host talks to academies' identity providers.

use serde::{Deserialize, Serialize};

/// Single sign-on settings (`[sso]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SsoSettings {
    /// Let identity providers live at loopback, private or link-local addresses. Off (the default), an
    /// academy admin cannot make the host call into the network it runs in; turn on for a provider inside
    /// the operator's own network.
    pub allow_private_addresses: bool,
    /// Time allowed for one call to a provider (discovery, keys, token), in milliseconds.
    pub timeout_ms: u64,
    /// Calls to providers one academy may have in flight at once; more are answered `503`.
    pub calls_per_academy: u32,
    /// How long a provider's discovered configuration and keys are reused, in seconds (a token signed
    /// with a key not among them makes the host look again, at most once a minute).
    pub metadata_ttl_secs: u64,
    /// How long a sign-in may take at the provider, from leaving the academy to coming back, in seconds.
    pub login_window_secs: i64,
}

impl Default for SsoSettings {
    fn default() -> Self {
        SsoSettings {
            allow_private_addresses: false,
            timeout_ms: 10_000,
            calls_per_academy: 8,
            metadata_ttl_secs: 3600,
            login_window_secs: 600,
        }
    }
}

impl SsoSettings {
    /// Check the settings, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_ms == 0 || self.calls_per_academy == 0 {
            return Err("sso.timeout_ms and sso.calls_per_academy must be above 0".into());
        }
        if self.login_window_secs < 30 {
            return Err("sso.login_window_secs must be at least 30".into());
        }
        Ok(())
    }
}
