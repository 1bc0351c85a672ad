//! `[notifications]`: the outbox, delivery and the scheduler.

use serde::{Deserialize, Serialize};

/// The host's notification settings (`[notifications]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Run the outbox, delivery and the scheduler in this process (turn off on replicas that only serve).
    pub enabled: bool,
    /// How often the outbox and the delivery queue are looked at, in milliseconds.
    pub poll_ms: u64,
    /// How often the scheduler runs (reminders, digests, plugin ticks, scheduled reports), in milliseconds.
    pub schedule_ms: u64,
    /// The first retry's delay after a temporary failure; each further one doubles it (up to an hour).
    pub retry_base_ms: u64,
    /// Attempts before a message is given up as failed.
    pub max_attempts: u32,
    /// How long a replica may hold a message it is sending before another takes it back, in milliseconds.
    pub lease_ms: u64,
    /// Messages sent per round (over one SMTP connection).
    pub batch: u32,
    /// The port in links to the academies, when they are not served on the scheme's default port.
    pub link_port: Option<u16>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            enabled: true,
            poll_ms: 1000,
            schedule_ms: 60_000,
            retry_base_ms: 30_000,
            max_attempts: 8,
            lease_ms: 120_000,
            batch: 100,
            link_port: None,
        }
    }
}

impl NotifySettings {
    /// Check the settings, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.poll_ms == 0 || self.schedule_ms == 0 {
            return Err("notifications.poll_ms and notifications.schedule_ms must be above 0".into());
        }
        if self.max_attempts == 0 {
            return Err("notifications.max_attempts must be at least 1".into());
        }
        if self.lease_ms < 1000 {
            return Err("notifications.lease_ms must be at least 1000".into());
        }
        if self.batch == 0 {
            return Err("notifications.batch must be at least 1".into());
        }
        Ok(())
    }

    /// The delay before attempt `attempt + 1` after `attempt` attempts failed temporarily.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        self.retry_base_ms.saturating_mul(factor).min(3_600_000) as i64
    }
}
