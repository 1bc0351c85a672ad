//! Licence seats: an academy may be licensed for a number of learners, counted at each one's first sign-in.

use super::{Error, Result};
use crate::db::{Backend, TenantTx};
use sqlx::Row;

/// Count a licence seat for a user signing in: the first sign-in of each user takes one, and none is taken
/// once `limit` users have signed in. Call inside the write transaction that records the sign-in; on SQLite
/// that transaction already holds the write lock, on PostgreSQL a transaction-scoped advisory lock on the
/// tenant queues concurrent first sign-ins, so two of them cannot both take the last seat.
pub async fn claim(tx: &mut TenantTx, limit: Option<u32>, user_id: &str) -> Result<()> {
    let Some(limit) = limit else { return Ok(()) };
    let first: Option<i64> = tx
        .query("SELECT first_login_at FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .flatten();
    if first.is_some() {
        return Ok(());
    }
    if tx.backend() == Backend::Postgres {
        // The two-key form keeps this lock apart from single-key advisory locks taken elsewhere.
        tx.query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(7301, hashtext($1))) AS seat_lock")
            .execute(tx.conn())
            .await?;
    }
    let taken: i64 = tx
        .query("SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND first_login_at IS NOT NULL")
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if taken >= i64::from(limit) {
        return Err(Error::SeatsExhausted { limit });
    }
    Ok(())
}
