//! A plugin's versions: list, activate one, roll back to the one before, deactivate.

use super::super::common::{Json, Path};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Sql, TenantTx, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::plugins::inspect::capability_of;
use crate::plugins::manifest::{CapSet, Manifest};
use crate::plugins::store::{self, PluginOut, plugin_out};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row;

/// One uploaded version.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct VersionOut {
    id: String,
    version: String,
    active: bool,
    hash: String,
    size: i64,
    imports: Vec<String>,
    manifest: Value,
    faults: i64,
    created_at: String,
}

pub(super) async fn versions(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<Vec<VersionOut>>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin_read().await?;
    let active = plugin_out(&mut tx, &id).await?.active_version_id;
    let rows = tx
        .query(
            "SELECT id, version, hash, size, imports, manifest, faults, created_at FROM plugin_versions \
             WHERE tenant_id = $1 AND plugin_id = $2 ORDER BY created_at DESC, id DESC",
        )
        .bind(id)
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let out = rows
        .iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            Ok(VersionOut {
                active: active.as_deref() == Some(id.as_str()),
                id,
                version: r.try_get("version")?,
                hash: r.try_get("hash")?,
                size: r.try_get("size")?,
                imports: serde_json::from_str(&r.try_get::<String, _>("imports")?).unwrap_or_default(),
                manifest: serde_json::from_str(&r.try_get::<String, _>("manifest")?).unwrap_or_default(),
                faults: r.try_get("faults")?,
                created_at: rfc3339(r.try_get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(out))
}

/// Which version to activate.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ActivateRequest {
    /// A semantic version of this plugin; the newest upload when absent.
    #[serde(default)]
    version: Option<String>,
}

pub(super) struct VersionRow {
    pub(super) id: String,
    pub(super) version: String,
    pub(super) manifest: Manifest,
    pub(super) imports: Vec<String>,
}

pub(super) async fn version_row(tx: &mut TenantTx, plugin_id: &str, version: Option<&str>) -> ApiResult<VersionRow> {
    let mut sql =
        Sql::tenant("SELECT id, version, manifest, imports FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = ");
    sql.push_bind(plugin_id);
    if let Some(v) = version {
        sql.push(" AND version = ").push_bind(v);
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT 1");
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "plugin version" })?;
    Ok(VersionRow {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        manifest: serde_json::from_str(&row.try_get::<String, _>("manifest")?)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored manifest: {e}")))?,
        imports: serde_json::from_str(&row.try_get::<String, _>("imports")?).unwrap_or_default(),
    })
}

/// Imports of a version whose capability is not in `granted`.
pub(super) fn ungranted(version: &VersionRow, granted: CapSet) -> Vec<String> {
    version
        .imports
        .iter()
        .filter(|name| capability_of(name).is_some_and(|cap| !granted.has(cap)))
        .cloned()
        .collect()
}

pub(super) async fn switch_to(
    state: &AppState,
    caller: &Caller,
    id: &str,
    version: Option<&str>,
    action: &str,
) -> ApiResult<PluginOut> {
    let mut tx = caller.db().begin().await?;
    let before = plugin_out(&mut tx, id).await?;
    let target = version_row(&mut tx, id, version).await?;
    let missing = ungranted(&target, CapSet::from_list(&before.capabilities));
    if !missing.is_empty() {
        return Err(ApiError::rule(
            "capability_not_granted",
            Some("capabilities"),
            format!(
                "version {} imports {}, whose capabilities are not granted",
                target.version,
                missing.join(", ")
            ),
        ));
    }
    let required = target
        .manifest
        .missing_required(&before.settings, &secrets_of(&mut tx, id).await?);
    if !required.is_empty() {
        return Err(ApiError::rule(
            "settings_required",
            Some("settings"),
            format!("set {} before activating", required.join(", ")),
        ));
    }
    store::activate(&mut tx, id, &target.id).await?;
    let after = plugin_out(&mut tx, id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(action, "plugin", id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    state.plugins.runtime().forget(id);
    // Load the new version now so the first call does not pay for it; calls holding the old one finish on it.
    if let Err(e) = state.plugins.load_active(caller.db(), id).await {
        tracing::warn!(plugin = %id, error = %e, "activated plugin could not be preloaded");
    }
    Ok(after)
}

pub(super) async fn secrets_of(tx: &mut TenantTx, id: &str) -> ApiResult<Map<String, Value>> {
    let text: String = tx
        .query("SELECT secrets FROM plugins WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

pub(super) async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<ActivateRequest>,
) -> ApiResult<axum::Json<PluginOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    Ok(axum::Json(
        switch_to(&state, &caller, &id, req.version.as_deref(), "plugin.activate").await?,
    ))
}

pub(super) async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PluginOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin_read().await?;
    let plugin = plugin_out(&mut tx, &id).await?;
    let Some(active) = plugin.active_version_id.clone() else {
        return Err(ApiError::rule(
            "plugin_inactive",
            None,
            "the plugin has no active version to roll back from",
        ));
    };
    let previous = tx
        .query(
            "SELECT p.version FROM plugin_versions p JOIN plugin_versions a ON a.id = $3 AND a.tenant_id = $1 \
             WHERE p.tenant_id = $1 AND p.plugin_id = $2 AND (p.created_at < a.created_at OR (p.created_at = a.created_at AND p.id < a.id)) \
             ORDER BY p.created_at DESC, p.id DESC LIMIT 1",
        )
        .bind(id.clone())
        .bind(active)
        .fetch_optional(tx.conn())
        .await?;
    tx.commit().await?;
    let Some(previous) = previous else {
        return Err(ApiError::rule(
            "no_previous_version",
            None,
            "there is no version before the active one",
        ));
    };
    let version: String = previous.try_get(0)?;
    Ok(axum::Json(
        switch_to(&state, &caller, &id, Some(&version), "plugin.rollback").await?,
    ))
}

pub(super) async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PluginOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin().await?;
    let before = plugin_out(&mut tx, &id).await?;
    tx.query("UPDATE plugins SET status = 'inactive', revision = revision + 1, updated_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    let after = plugin_out(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("plugin.deactivate", "plugin", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    state.plugins.runtime().forget(&id);
    Ok(axum::Json(after))
}
