//! Fair shares of a shared resource: plugin call slots, password hashing, plugin compilation, background
//! jobs. Each academy may hold at most its share of the resource at once, the whole host at most its total,
//! and nobody waits longer than the resource's wait bound: past it the caller is told the host is busy
//! ([`Busy`], a 503 with `Retry-After`) instead of waiting without end. So one academy's flood queues behind
//! its own share and never takes the slots its neighbours need.
//!
//! A leaf: it knows nothing of the host but the error shape its refusals take.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A resource shared by every academy.
pub struct FairShare {
    name: &'static str,
    total: Arc<Semaphore>,
    per_tenant: usize,
    wait: Duration,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A held share; dropping it gives it back.
#[derive(Debug)]
pub struct Permit {
    _tenant: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

/// The resource stayed taken for longer than its wait bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the host is busy ({resource}); try again in {} s", retry_after.as_secs().max(1))]
pub struct Busy {
    /// What was busy (`plugin calls`, `password checks`, …).
    pub resource: &'static str,
    /// When to try again.
    pub retry_after: Duration,
    /// Whether the academy's own share was what was full (its own flood), rather than the host's total.
    pub own_share: bool,
}

impl From<Busy> for crate::error::ApiError {
    fn from(b: Busy) -> crate::error::ApiError {
        let retry_after_secs = b.retry_after.as_secs().max(1);
        if b.own_share {
            crate::error::ApiError::TooManyRequests {
                message: format!(
                    "this academy has as many {} running as it may; try again shortly",
                    b.resource
                ),
                retry_after_secs,
            }
        } else {
            crate::error::ApiError::Unavailable {
                message: b.to_string(),
                retry_after_secs,
            }
        }
    }
}

impl FairShare {
    /// `total` at once for the whole host, `per_tenant` at once for one academy, waiting at most `wait`.
    pub fn new(name: &'static str, total: usize, per_tenant: usize, wait: Duration) -> FairShare {
        let total = total.max(1);
        FairShare {
            name,
            total: Arc::new(Semaphore::new(total)),
            per_tenant: per_tenant.clamp(1, total),
            wait,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// What this resource is called in messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Take one share for `tenant` (an academy's id; the platform's own work uses `""`).
    pub async fn acquire(&self, tenant: &str) -> Result<Permit, Busy> {
        self.acquire_within(tenant, self.wait).await
    }

    /// Take one share, waiting at most `wait`.
    pub async fn acquire_within(&self, tenant: &str, wait: Duration) -> Result<Permit, Busy> {
        let own = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        let busy = |own_share| Busy {
            resource: self.name,
            retry_after: wait.max(Duration::from_secs(1)),
            own_share,
        };
        let deadline = tokio::time::Instant::now() + wait;
        // The academy's own share first: a flood waits behind itself without holding host-wide slots.
        let tenant_permit = tokio::time::timeout_at(deadline, own.acquire_owned())
            .await
            .map_err(|_| busy(true))?
            .map_err(|_| busy(true))?;
        let total_permit = tokio::time::timeout_at(deadline, self.total.clone().acquire_owned())
            .await
            .map_err(|_| busy(false))?
            .map_err(|_| busy(false))?;
        Ok(Permit {
            _tenant: tenant_permit,
            _total: total_permit,
        })
    }

    /// Shares in use for one academy now (for metrics and tests).
    pub fn in_use(&self, tenant: &str) -> usize {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants
            .get(tenant)
            .map_or(0, |s| self.per_tenant - s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_academy_cannot_take_another_academys_share() {
        let share = FairShare::new("test", 4, 2, Duration::from_millis(50));
        let a1 = share.acquire("a").await.unwrap();
        let _a2 = share.acquire("a").await.unwrap();
        let refused = share.acquire("a").await.unwrap_err();
        assert!(
            refused.own_share,
            "a's third call waits on a's own share, then is told the host is busy"
        );
        // b still gets in at once: a holds two of four.
        let _b1 = share.acquire("b").await.unwrap();
        let _b2 = share.acquire("b").await.unwrap();
        // Now the host is full: c waits for the total and is refused after the bound.
        let refused = share.acquire("c").await.unwrap_err();
        assert!(!refused.own_share);
        drop(a1);
        assert!(share.acquire("c").await.is_ok(), "a slot given back is taken at once");
        assert_eq!(share.in_use("a"), 1);
    }
}
