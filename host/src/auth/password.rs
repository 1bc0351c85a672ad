//! Password hashing with argon2id, off the async threads.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};

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

/// Hash on the blocking pool.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
}

/// Verify on the blocking pool. A malformed stored hash verifies nothing.
pub async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}
