//! Password hashing with argon2id, off the async threads, in bounded numbers.
//!
//! One argon2 computation holds about 19 MiB and a core for tens of milliseconds, so a flood of sign-ins
//! (or sign-ups) could exhaust the host's memory or its blocking threads. Every hash and check takes a share
//! of [`SHARE`]: at most twice the cores at once for the whole host, half of that for one academy, and no
//! one waits longer than five seconds (then the caller is told the host is busy).

use crate::fair::{Busy, FairShare};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use std::sync::OnceLock;
use std::time::Duration;

/// Shortest accepted password.
pub const MIN_LEN: usize = 10;
/// Longest accepted password (argon2 would take more, but nobody types this).
pub const MAX_LEN: usize = 200;

/// Check a new password's length, naming the field.
pub fn check_new(field: &str, password: &str) -> Result<(), crate::fields::FieldError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(crate::fields::FieldError::new(
            field,
            format!("must have at least {MIN_LEN} characters"),
        ));
    }
    if n > MAX_LEN {
        return Err(crate::fields::FieldError::new(
            field,
            format!("must have at most {MAX_LEN} characters"),
        ));
    }
    Ok(())
}

/// Hash synchronously (CLI, seeding).
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// The host's share of password hashing (see the module docs).
fn share() -> &'static FairShare {
    static SHARE: OnceLock<FairShare> = OnceLock::new();
    SHARE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        FairShare::new("password checks", cores * 2, cores.max(1), Duration::from_secs(5))
    })
}

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many at once: the host (or the academy's share of it) is busy.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The hashing itself failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<HashError> for crate::error::ApiError {
    fn from(e: HashError) -> crate::error::ApiError {
        match e {
            HashError::Busy(busy) => busy.into(),
            HashError::Failed(e) => crate::error::ApiError::Internal(e),
        }
    }
}

/// Hash on the blocking pool, in `tenant`'s share (the platform's own work uses `""`).
pub async fn hash(tenant: &str, password: String) -> Result<String, HashError> {
    let _permit = share().acquire(tenant).await?;
    Ok(tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(anyhow::Error::from)??)
}

/// Verify on the blocking pool, in `tenant`'s share. A malformed stored hash verifies nothing.
pub async fn verify(tenant: &str, password: String, stored: String) -> Result<bool, Busy> {
    let _permit = share().acquire(tenant).await?;
    Ok(tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false))
}
