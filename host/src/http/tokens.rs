//! API tokens: shown once, stored as a hash, bound to one tenant and one user's grants, expiring, revocable.

use super::api::{Api, Op};
use super::common::Path;
use super::common::{Json, Query, text};
use crate::audit::{Change, record};
use crate::auth::{Caller, IssuedToken, issue_token};
use crate::db::Timestamp;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::scope::Permission;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::FromRow;

pub fn routes(api: &mut Api) {
    api.tag("tokens");
    api.op_out::<Vec<TokenOut>>(
        Op::get("/api/v1/tokens", "List your API tokens (tokens.manage: everyone's)")
            .query(&[("all", "`true`: every user's tokens")]),
        get(list),
    );
    api.op_io::<NewToken, CreatedToken>(
        Op::post(
            "/api/v1/tokens",
            "Create an API token for yourself; the token is shown only in this answer",
        )
        .status(201),
        post(create),
    );
    api.op(Op::delete("/api/v1/tokens/{id}", "Revoke a token"), delete(revoke));
}

/// A token, without its secret.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct TokenOut {
    id: String,
    user_id: String,
    name: String,
    /// The first characters, to recognise it.
    prefix: String,
    created_at: Timestamp,
    expires_at: Timestamp,
    revoked_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CreatedToken {
    token: String,
    #[serde(flatten)]
    info: TokenOut,
}

const COLUMNS: &str = "id, user_id, name, prefix, created_at, expires_at, revoked_at, last_used_at";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    all: Option<bool>,
}

async fn list(caller: Caller, Query(p): Query<ListParams>) -> ApiResult<axum::Json<Vec<TokenOut>>> {
    let mut tx = caller.db().begin_read().await?;
    let rows = if p.all == Some(true) {
        caller.require_tenant_wide(Permission::TokensManage)?;
        tx.query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE tenant_id = $1 ORDER BY id"
        ))
        .fetch_all(tx.conn())
        .await?
    } else {
        tx.query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE tenant_id = $1 AND user_id = $2 ORDER BY id"
        ))
        .bind(caller.user_id.clone())
        .fetch_all(tx.conn())
        .await?
    };
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(TokenOut::from_row).collect::<Result<_, _>>()?,
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    /// Days until it expires: 1–365, default 90.
    #[schemars(range(min = 1, max = 365))]
    expires_in_days: Option<i64>,
}

async fn create(caller: Caller, Json(req): Json<NewToken>) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let name = text("name", &req.name, 100)?;
    let days = req.expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid("expires_in_days", "must be between 1 and 365"));
    }
    let mut tx = caller.db().begin().await?;
    let IssuedToken { id, token, .. } = issue_token(&mut tx, &caller.user_id, &name, days).await?;
    let row = tx
        .query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(id.clone())
        .fetch_one(tx.conn())
        .await?;
    let info = TokenOut::from_row(&row)?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("token.create", "token", &id, json!(info)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedToken { token, info })))
}

async fn revoke(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let manage_all = caller.grants.reach(Permission::TokensManage).all;
    let mut tx = caller.db().begin().await?;
    let row = tx
        .query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(id.clone())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "token" })?;
    let before = TokenOut::from_row(&row)?;
    if before.user_id != caller.user_id && !manage_all {
        return Err(ApiError::NotFound { what: "token" });
    }
    tx.query("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("token.revoke", "token", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
