//! The caller's own academy: read it, and (tenant admins) change its name and settings.
//! Domains and status belong to the platform operator.

use super::api::{Api, Op};
use super::common::{Json, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::now_ms;
use crate::error::ApiResult;
use crate::scope::Permission;
use crate::state::AppState;
use crate::tenancy::{Tenant, TenantSettings};
use axum::extract::State;
use axum::routing::{get, patch};
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;

pub fn routes(api: &mut Api) {
    api.tag("tenant");
    api.op_out::<Tenant>(Op::get("/api/v1/tenant", "Your academy"), get(read));
    api.op_io::<TenantPatch, Tenant>(
        Op::patch("/api/v1/tenant", "Change your academy's name and settings").permission("tenant.manage"),
        patch(update),
    );
}

async fn read(caller: Caller) -> axum::Json<Tenant> {
    axum::Json(caller.tenant.clone())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    settings: Option<TenantSettings>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<TenantPatch>,
) -> ApiResult<axum::Json<Tenant>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin().await?;
    // Start from the stored row, not the request's cached copy of the tenant: a field left out must keep
    // what another replica may have just written.
    let mut before = caller.tenant.clone();
    let row = tx
        .query("SELECT name, settings FROM tenants WHERE id = $1")
        .fetch_one(tx.conn())
        .await?;
    before.name = row.try_get("name")?;
    let stored: String = row.try_get("settings")?;
    before.settings = serde_json::from_str(&stored).unwrap_or_default();
    let name = match &req.name {
        Some(n) => text("name", n, 200)?,
        None => before.name.clone(),
    };
    let settings = req.settings.clone().unwrap_or_else(|| before.settings.clone());
    settings.validate()?;
    // The tenants row is the root of the tenant; it is addressed by the tenant id bound as $1.
    tx.query("UPDATE tenants SET name = $2, settings = $3, updated_at = $4 WHERE id = $1")
        .bind(name.clone())
        .bind(serde_json::to_string(&settings).unwrap_or_default())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    let mut after = before.clone();
    after.name = name;
    after.settings = settings;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("tenant.update", "tenant", &before.id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    state.tenants.clear();
    Ok(axum::Json(after))
}
