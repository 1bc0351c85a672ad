//! Sessions: a 256-bit random id in an HttpOnly cookie, only its SHA-256 stored, ended by sign-out, by a new
//! password, or when the account stops being active.

use super::{SESSION_COOKIE, random_secret, secret_hash};
use crate::config::Config;
use crate::db::{TenantTx, now_ms};

/// Start a session for a user inside `tx`; returns the `Set-Cookie` value that hands it to the browser.
pub async fn open(tx: &mut TenantTx, config: &Config, user_id: &str, now: i64) -> Result<String, sqlx::Error> {
    let session = random_secret();
    let expires = now + config.session_hours * 3_600_000;
    tx.query(
        "INSERT INTO sessions (id_hash, tenant_id, user_id, created_at, expires_at, last_seen_at) VALUES ($2, $1, $3, $4, $5, $4)",
    )
    .bind(secret_hash(&session))
    .bind(user_id.to_owned())
    .bind(now)
    .bind(expires)
    .execute(tx.conn())
    .await?;
    Ok(format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        config.session_hours * 3600,
        if config.cookie_secure { "; Secure" } else { "" }
    ))
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub const CLEAR_COOKIE: &str = "aula_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0";

/// End one session (sign-out).
pub async fn end(tx: &mut TenantTx, id_hash: &str) -> Result<(), sqlx::Error> {
    tx.query("DELETE FROM sessions WHERE tenant_id = $1 AND id_hash = $2")
        .bind(id_hash.to_owned())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// End every session of a user except the one with `keep` (its hash), if given.
pub async fn end_others(tx: &mut TenantTx, user_id: &str, keep: Option<&str>) -> Result<(), sqlx::Error> {
    tx.query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND id_hash <> $3")
        .bind(user_id.to_owned())
        .bind(keep.unwrap_or_default().to_owned())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// End every session and revoke every API token of a user: a new password set for them, or an account that
/// is no longer active.
pub async fn end_all(tx: &mut TenantTx, user_id: &str) -> Result<(), sqlx::Error> {
    tx.query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
        .bind(user_id.to_owned())
        .execute(tx.conn())
        .await?;
    revoke_tokens(tx, user_id).await
}

/// Revoke every API token of a user.
pub async fn revoke_tokens(tx: &mut TenantTx, user_id: &str) -> Result<(), sqlx::Error> {
    tx.query("UPDATE api_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL")
        .bind(user_id.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    Ok(())
}
