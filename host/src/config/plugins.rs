//! `[plugins]`: what the plugin runtime may use, and the limits of one call of each kind.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What one call of a plugin of some kind may use. Every call gets a fresh store with these limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory of the instance, in MiB.
    pub memory_mib: u32,
    /// Wall time of the call, in milliseconds (host calls included): the backstop behind `fuel_millions`.
    pub timeout_ms: u32,
    /// The call's compute budget, in millions of fuel units (about one WebAssembly instruction each). Sleeping
    /// is charged at the same rate as computing for the same share of `timeout_ms`, and every host call costs
    /// a little; the budget counts only what the plugin itself does, so other academies' load cannot change
    /// when it runs out.
    pub fuel_millions: u32,
    /// Data the plugin may pull from the host in one call (arguments and results of host calls), in KiB.
    pub host_data_kib: u32,
    /// Size of the call's output, in KiB.
    pub output_kib: u32,
    /// Log text (log lines, stdout and stderr) kept from one call, in KiB.
    pub log_kib: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::ENROLLMENT
    }
}

impl Limits {
    /// Branding runs while a page renders: small and quick.
    pub const BRANDING: Limits = Limits {
        memory_mib: 16,
        timeout_ms: 100,
        fuel_millions: 500,
        host_data_kib: 1024,
        output_kib: 256,
        log_kib: 16,
    };
    /// Enrollment may answer a bulk import in one call.
    pub const ENROLLMENT: Limits = Limits {
        memory_mib: 64,
        timeout_ms: 2000,
        fuel_millions: 10_000,
        host_data_kib: 16 * 1024,
        output_kib: 4 * 1024,
        log_kib: 64,
    };
    /// Notifications rewrite the drafts of one event.
    pub const NOTIFICATIONS: Limits = Limits {
        memory_mib: 32,
        timeout_ms: 1000,
        fuel_millions: 5_000,
        host_data_kib: 8 * 1024,
        output_kib: 2 * 1024,
        log_kib: 64,
    };
    /// Reports walk the academy's data for one page of rows.
    pub const REPORTS: Limits = Limits {
        memory_mib: 64,
        timeout_ms: 10_000,
        fuel_millions: 50_000,
        host_data_kib: 64 * 1024,
        output_kib: 8 * 1024,
        log_kib: 64,
    };

    /// Memory in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory_mib as usize * 1024 * 1024
    }
    /// The call's wall-time budget.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.into())
    }
    /// The compute budget in fuel units.
    pub fn fuel(&self) -> u64 {
        u64::from(self.fuel_millions) * 1_000_000
    }
    /// What a millisecond of sleeping costs: the fuel of the same share of the wall-time limit.
    pub fn fuel_per_ms(&self) -> u64 {
        (self.fuel() / u64::from(self.timeout_ms.max(1))).max(1)
    }
    /// Host-call data budget in bytes.
    pub fn host_data_bytes(&self) -> usize {
        self.host_data_kib as usize * 1024
    }
    /// Output cap in bytes.
    pub fn output_bytes(&self) -> usize {
        self.output_kib as usize * 1024
    }
    /// Log cap in bytes.
    pub fn log_bytes(&self) -> usize {
        self.log_kib as usize * 1024
    }

    /// Refuse nonsense (zero or beyond what the engine's pool can hold); `kind` names the section.
    pub fn validate(&self, kind: &str, max_memory_mib: u32) -> Result<(), String> {
        if self.memory_mib == 0 || self.memory_mib > max_memory_mib {
            return Err(format!("plugins.limits.{kind}.memory_mib must be 1–{max_memory_mib}"));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 600_000 {
            return Err(format!("plugins.limits.{kind}.timeout_ms must be 1–600000"));
        }
        if self.fuel_millions == 0 || self.fuel_millions > 1_000_000 {
            return Err(format!("plugins.limits.{kind}.fuel_millions must be 1–1000000"));
        }
        if self.host_data_kib == 0 || self.output_kib == 0 || self.log_kib == 0 {
            return Err(format!("plugins.limits.{kind}: every limit must be above zero"));
        }
        Ok(())
    }
}

/// Limits for every kind, as configured (`[plugins.limits.<kind>]`). A key left out of a section keeps that
/// kind's default, not another kind's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "KindLimitsPatch")]
pub struct KindLimits {
    /// Branding calls.
    pub branding: Limits,
    /// Enrollment calls.
    pub enrollment: Limits,
    /// Notification calls.
    pub notifications: Limits,
    /// Report calls.
    pub reports: Limits,
}

impl Default for KindLimits {
    fn default() -> Self {
        KindLimits {
            branding: Limits::BRANDING,
            enrollment: Limits::ENROLLMENT,
            notifications: Limits::NOTIFICATIONS,
            reports: Limits::REPORTS,
        }
    }
}

/// `[plugins.limits]` as written: any section, any key of it.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct KindLimitsPatch {
    branding: LimitsPatch,
    enrollment: LimitsPatch,
    notifications: LimitsPatch,
    reports: LimitsPatch,
}

/// One `[plugins.limits.<kind>]` section as written.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct LimitsPatch {
    memory_mib: Option<u32>,
    timeout_ms: Option<u32>,
    fuel_millions: Option<u32>,
    host_data_kib: Option<u32>,
    output_kib: Option<u32>,
    log_kib: Option<u32>,
}

impl LimitsPatch {
    fn over(self, base: Limits) -> Limits {
        Limits {
            memory_mib: self.memory_mib.unwrap_or(base.memory_mib),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            fuel_millions: self.fuel_millions.unwrap_or(base.fuel_millions),
            host_data_kib: self.host_data_kib.unwrap_or(base.host_data_kib),
            output_kib: self.output_kib.unwrap_or(base.output_kib),
            log_kib: self.log_kib.unwrap_or(base.log_kib),
        }
    }
}

impl From<KindLimitsPatch> for KindLimits {
    fn from(p: KindLimitsPatch) -> KindLimits {
        KindLimits {
            branding: p.branding.over(Limits::BRANDING),
            enrollment: p.enrollment.over(Limits::ENROLLMENT),
            notifications: p.notifications.over(Limits::NOTIFICATIONS),
            reports: p.reports.over(Limits::REPORTS),
        }
    }
}

impl KindLimits {
    /// Each kind's section name with its limits.
    pub fn all(&self) -> [(&'static str, Limits); 4] {
        [
            ("branding", self.branding),
            ("enrollment", self.enrollment),
            ("notifications", self.notifications),
            ("reports", self.reports),
        ]
    }

    /// The largest memory any kind may use (the pool's slot size).
    pub fn max_memory_mib(&self) -> u32 {
        self.all().iter().map(|(_, l)| l.memory_mib).max().unwrap_or(64)
    }
}

/// Plugin settings of the host (`[plugins]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Largest accepted component, in bytes.
    pub max_component_bytes: usize,
    /// Consecutive faults after which a plugin is disabled.
    pub fault_limit: u32,
    /// Calls running at once across all tenants (each holds one pooled instance). A quarter of them is kept
    /// for branding calls, which pages wait for.
    pub max_concurrent_calls: u32,
    /// Calls of one academy running at once (branding calls have their own, a quarter of it); more wait
    /// their turn, at most `call_wait_ms`.
    pub max_calls_per_academy: u32,
    /// How long a call waits for a slot before it is refused as busy (`429` when its academy's share is
    /// full, `503` when the host's is). Branding calls wait at most a tenth of it: a page does not wait for
    /// its plugin longer than that, it renders with the static theme.
    pub call_wait_ms: u32,
    /// Where the `files` capability keeps each tenant's and plugin's directory.
    pub files_dir: String,
    /// What all the `files` directories of one academy's plugins may hold together, in MiB.
    pub files_quota_mib: u32,
    /// How many files and folders they may hold together.
    pub files_max_entries: u32,
    /// Per-kind limits.
    pub limits: KindLimits,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            max_component_bytes: 16 * 1024 * 1024,
            fault_limit: 5,
            max_concurrent_calls: 256,
            max_calls_per_academy: 24,
            call_wait_ms: 5000,
            files_dir: "aula-files".into(),
            files_quota_mib: 256,
            files_max_entries: 10_000,
            limits: KindLimits::default(),
        }
    }
}

/// Hard ceiling on `max_component_bytes`, and the body limit of the upload routes (a manifest fits in the
/// margin above the component).
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Hard ceiling on a kind's memory limit: the pool reserves this much per slot.
pub const MAX_MEMORY_MIB: u32 = 1024;

impl PluginSettings {
    /// The files quota of one academy in bytes.
    pub fn files_quota_bytes(&self) -> u64 {
        u64::from(self.files_quota_mib) * 1024 * 1024
    }

    /// Check every limit.
    pub fn validate(&self) -> Result<(), String> {
        for (kind, limits) in self.limits.all() {
            limits.validate(kind, MAX_MEMORY_MIB)?;
        }
        if self.max_component_bytes == 0 || self.max_component_bytes > MAX_UPLOAD_BYTES - 1024 * 1024 {
            return Err(format!(
                "plugins.max_component_bytes must be 1–{} bytes",
                MAX_UPLOAD_BYTES - 1024 * 1024
            ));
        }
        if self.fault_limit == 0 {
            return Err("plugins.fault_limit must be at least 1".into());
        }
        if self.max_concurrent_calls == 0 || self.max_concurrent_calls > 10_000 {
            return Err("plugins.max_concurrent_calls must be 1–10000".into());
        }
        if self.max_calls_per_academy == 0 {
            return Err(
                "plugins.max_calls_per_academy must be at least 1 (it is capped at max_concurrent_calls)".into(),
            );
        }
        if self.call_wait_ms == 0 || self.call_wait_ms > 60_000 {
            return Err("plugins.call_wait_ms must be 1–60000".into());
        }
        if self.files_quota_mib == 0 || self.files_quota_mib > 1_048_576 {
            return Err("plugins.files_quota_mib must be 1–1048576".into());
        }
        if self.files_max_entries == 0 || self.files_max_entries > 1_000_000 {
            return Err("plugins.files_max_entries must be 1–1000000".into());
        }
        Ok(())
    }
}
