//! SCIM tokens: an academy admin makes one for each identity provider or HR system that provisions people
//! over SCIM (`/scim/v2`). The token is shown once, in the answer that creates it.

use super::api::{Api, Op};
use super::common::{Json, Path, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::identity::scim::tokens::{self, CreatedToken, TokenOut};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;

pub fn routes(api: &mut Api) {
    api.tag("scim");
    api.op_out::<Vec<TokenOut>>(
        Op::get(
            "/api/v1/scim-tokens",
            "The academy's SCIM tokens (without their secrets)",
        )
        .permission("tenant.manage"),
        get(list),
    );
    api.op_io::<NewScimToken, CreatedToken>(
        Op::post(
            "/api/v1/scim-tokens",
            "Create a SCIM token carrying your authority; it is shown only in this answer",
        )
        .permission("tenant.manage")
        .status(201),
        post(create),
    );
    api.op(
        Op::delete("/api/v1/scim-tokens/{id}", "Revoke a SCIM token").permission("tenant.manage"),
        delete(revoke),
    );
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewScimToken {
    /// Which client it is for (e.g. "Entra ID").
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    /// Days until it expires: 1–730, default 365.
    #[schemars(range(min = 1, max = 730))]
    expires_in_days: Option<i64>,
}

async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<TokenOut>>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let found = tokens::list(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(found))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewScimToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    // The token acts with its creator's authority: without users.write over the whole academy it could do nothing.
    caller.require_tenant_wide(Permission::UsersWrite)?;
    let name = text("name", &req.name, 100)?;
    let days = req.expires_in_days.unwrap_or(365);
    if !(1..=730).contains(&days) {
        return Err(ApiError::invalid("expires_in_days", "must be between 1 and 730"));
    }
    let mut tx = caller.db().begin().await?;
    let (token, info) = tokens::issue(&mut tx, &caller.user_id, &name, days).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("scim_token.create", "scim_token", &info.id, json!(info)),
    )
    .await?;
    tx.commit().await?;
    let endpoint = format!("{}/scim/v2", crate::tenancy::academy_url(&state.config, &caller.tenant));
    Ok((StatusCode::CREATED, axum::Json(CreatedToken { token, endpoint, info })))
}

async fn revoke(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin().await?;
    let before = tokens::revoke(&mut tx, &id)
        .await?
        .ok_or(ApiError::NotFound { what: "SCIM token" })?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("scim_token.revoke", "scim_token", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
