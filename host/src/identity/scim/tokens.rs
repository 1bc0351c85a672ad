//! SCIM tokens: made by an academy admin for one identity provider or HR system, shown once, kept as a
//! hash, expiring and revocable. A token opens its academy's `/scim/v2` and nothing else, and acts with the
//! authority its creator holds at the time of each request.

use super::{Client, ScimError};
use crate::auth::{Actor, random_secret, secret_hash};
use crate::db::{TenantDb, TenantTx, Timestamp, new_id, now_ms};
use crate::scope::Permission;
use crate::tenancy::Tenant;
use serde::Serialize;
use sqlx::{FromRow, Row};

/// Prefix of SCIM tokens.
pub const PREFIX: &str = "aulascim_";

/// A token, without its secret.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct TokenOut {
    pub id: String,
    pub name: String,
    /// The first characters, to recognise it.
    pub prefix: String,
    /// The admin whose authority it carries.
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CreatedToken {
    /// The bearer token to give the SCIM client.
    pub token: String,
    /// The academy's SCIM endpoint, to give the client with it.
    pub endpoint: String,
    #[serde(flatten)]
    pub info: TokenOut,
}

const COLUMNS: &str = "id, name, prefix, created_by, created_at, expires_at, revoked_at, last_used_at";

/// Issue a token carrying `admin_id`'s authority, valid for `days`.
pub async fn issue(
    tx: &mut TenantTx,
    admin_id: &str,
    name: &str,
    days: i64,
) -> Result<(String, TokenOut), sqlx::Error> {
    let token = format!("{PREFIX}{}", random_secret());
    let id = new_id();
    let now = now_ms();
    tx.query(
        "INSERT INTO scim_tokens (id, tenant_id, name, prefix, token_hash, created_by, created_at, expires_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.clone())
    .bind(name.to_owned())
    .bind(token.chars().take(14).collect::<String>())
    .bind(secret_hash(&token))
    .bind(admin_id.to_owned())
    .bind(now)
    .bind(now + days * 86_400_000)
    .execute(tx.conn())
    .await?;
    let row = tx
        .query(&format!(
            "SELECT {COLUMNS} FROM scim_tokens WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(id)
        .fetch_one(tx.conn())
        .await?;
    Ok((token, TokenOut::from_row(&row)?))
}

/// Every token of the academy, newest first.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<TokenOut>, sqlx::Error> {
    let rows = tx
        .query(&format!(
            "SELECT {COLUMNS} FROM scim_tokens WHERE tenant_id = $1 ORDER BY created_at DESC, id"
        ))
        .fetch_all(tx.conn())
        .await?;
    rows.iter().map(TokenOut::from_row).collect()
}

/// Revoke a token; the token as it was, or `None` when the academy has no such token.
pub async fn revoke(tx: &mut TenantTx, id: &str) -> Result<Option<TokenOut>, sqlx::Error> {
    let before = tx
        .query(&format!(
            "SELECT {COLUMNS} FROM scim_tokens WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|row| TokenOut::from_row(&row))
        .transpose()?;
    if before.is_some() {
        tx.query("UPDATE scim_tokens SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2")
            .bind(id.to_owned())
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
    }
    Ok(before)
}

/// The client a bearer token stands for on `tenant`'s host: a token of another academy is unknown here.
pub async fn authenticate(
    db: &TenantDb,
    tenant: &Tenant,
    bearer: Option<&str>,
    base: String,
    request_id: Option<String>,
) -> Result<Client, ScimError> {
    let invalid = || ScimError::unauthorized("invalid, expired or revoked SCIM token");
    let token = bearer
        .filter(|t| t.starts_with(PREFIX))
        .ok_or_else(|| ScimError::unauthorized("send the academy's SCIM token as a bearer token"))?;
    let now = now_ms();
    let mut tx = db.begin_read().await?;
    let row = tx
        .query(
            "SELECT t.id, t.name, t.created_by, t.expires_at, t.revoked_at, t.last_used_at, u.status \
             FROM scim_tokens t JOIN users u ON u.tenant_id = $1 AND u.id = t.created_by \
             WHERE t.tenant_id = $1 AND t.token_hash = $2",
        )
        .bind(secret_hash(token))
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(invalid)?;
    let expires: i64 = row.try_get("expires_at")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    if revoked.is_some() || expires <= now {
        return Err(invalid());
    }
    let admin_id: String = row.try_get("created_by")?;
    let status: String = row.try_get("status")?;
    if status != "active" {
        return Err(ScimError::forbidden(format!(
            "the admin who created this token is {status}; an admin creates a new token"
        )));
    }
    let grants = crate::auth::load_grants(&mut tx, &admin_id).await?;
    tx.commit().await?;
    let id: String = row.try_get("id")?;
    let last: Option<i64> = row.try_get("last_used_at")?;
    if last.is_none_or(|l| now - l > 60_000) {
        let mut tx = db.begin().await?;
        tx.query("UPDATE scim_tokens SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(id.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
    }
    let name: String = row.try_get("name")?;
    Ok(Client {
        tenant: tenant.clone(),
        db: db.clone(),
        grants,
        admin_id,
        actor: Actor {
            kind: "scim",
            id: Some(id),
            label: format!("SCIM token {name}"),
            request_id,
        },
        base,
    })
}

impl Client {
    /// Refuse unless the token's admin holds `perm` over the whole academy.
    pub fn require(&self, perm: Permission) -> Result<(), ScimError> {
        if self.grants.reach(perm).all {
            Ok(())
        } else {
            Err(ScimError::forbidden(format!(
                "the admin who created this token no longer holds {} over the whole academy",
                perm.as_str()
            )))
        }
    }
}
