//! What a plugin may do and knows: its grants, its settings and its secrets.

use super::super::common::{Json, Path};
use super::upload::parse_cap_list;
use super::versions::{secrets_of, version_row};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{TenantTx, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::plugins::manifest::{CapSet, Capability, Manifest};
use crate::plugins::store::{self, PluginOut, caps_text, plugin_out};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::Row;

/// The capabilities to grant.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantsRequest {
    /// Capability names: log, config, kv, directory, records, files.
    capabilities: Vec<String>,
}

/// What any stored version of the plugin asks for: all of it may be granted (a new upload may ask for
/// more than the active version).
pub(super) async fn requested_by_any_version(tx: &mut TenantTx, id: &str) -> ApiResult<CapSet> {
    let rows = tx
        .query("SELECT manifest FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2")
        .bind(id.to_owned())
        .fetch_all(tx.conn())
        .await?;
    let mut requested = CapSet::default();
    for row in rows {
        if let Ok(m) = serde_json::from_str::<Manifest>(&row.try_get::<String, _>(0)?) {
            requested = CapSet(requested.0 | m.requested().0);
        }
    }
    Ok(requested)
}

pub(super) async fn write_grants(
    state: &AppState,
    caller: &Caller,
    id: &str,
    granted: CapSet,
    action: &str,
) -> ApiResult<PluginOut> {
    let mut tx = caller.db().begin().await?;
    let before = plugin_out(&mut tx, id).await?;
    let requested = requested_by_any_version(&mut tx, id).await?;
    let beyond = granted.beyond(requested);
    if !beyond.is_empty() {
        return Err(ApiError::invalid(
            "capabilities",
            format!("no version of this plugin requests {}", beyond.join(", ")),
        ));
    }
    tx.query("UPDATE plugins SET capabilities = $3, revision = revision + 1, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .bind(caps_text(granted))
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    let after = plugin_out(&mut tx, id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            action,
            "plugin",
            id,
            json!({ "capabilities": before.capabilities }),
            json!({ "capabilities": after.capabilities }),
        ),
    )
    .await?;
    tx.commit().await?;
    state.plugins.runtime().forget(id);
    Ok(after)
}

pub(super) async fn set_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<GrantsRequest>,
) -> ApiResult<axum::Json<PluginOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let granted = parse_cap_list("capabilities", req.capabilities.iter().map(String::as_str))?;
    Ok(axum::Json(
        write_grants(&state, &caller, &id, granted, "plugin.grant").await?,
    ))
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, capability)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin_read().await?;
    let current = CapSet::from_list(&plugin_out(&mut tx, &id).await?.capabilities);
    tx.commit().await?;
    let cap = Capability::parse(&capability).ok_or_else(|| {
        ApiError::invalid(
            "capability",
            "is not a capability (log, config, kv, directory, records, files)",
        )
    })?;
    write_grants(&state, &caller, &id, current.without(cap), "plugin.revoke").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The plugin's settings (every key must be declared in its manifest; secrets go elsewhere).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsRequest {
    settings: Map<String, Value>,
}

pub(super) async fn latest_manifest(tx: &mut TenantTx, id: &str) -> ApiResult<Manifest> {
    let plugin = plugin_out(tx, id).await?;
    let row = version_row(tx, id, plugin.active_version.as_deref()).await?;
    Ok(row.manifest)
}

pub(super) async fn set_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<SettingsRequest>,
) -> ApiResult<axum::Json<PluginOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin().await?;
    let manifest = latest_manifest(&mut tx, &id).await?;
    manifest
        .check_settings(&req.settings)
        .map_err(|e| ApiError::invalid(format!("settings.{}", e.field.trim_start_matches("config.")), e.message))?;
    let before = plugin_out(&mut tx, &id).await?;
    store::set_settings(&mut tx, &id, &req.settings).await?;
    let after = plugin_out(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "plugin.configure",
            "plugin",
            &id,
            json!({ "settings": before.settings }),
            json!({ "settings": after.settings }),
        ),
    )
    .await?;
    tx.commit().await?;
    state.plugins.runtime().forget(&id);
    Ok(axum::Json(after))
}

/// Secrets to set (a string) or clear (null).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretsRequest {
    secrets: Map<String, Value>,
}

pub(super) async fn set_secrets(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<SecretsRequest>,
) -> ApiResult<axum::Json<PluginOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin().await?;
    let manifest = latest_manifest(&mut tx, &id).await?;
    manifest
        .check_secrets(req.secrets.keys())
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let mut secrets = secrets_of(&mut tx, &id).await?;
    for (key, value) in &req.secrets {
        match value {
            Value::Null => {
                secrets.remove(key);
            }
            Value::String(s) if s.len() <= 4096 => {
                secrets.insert(key.clone(), Value::String(s.clone()));
            }
            _ => {
                return Err(ApiError::invalid(
                    format!("secrets.{key}"),
                    "must be a string of at most 4096 bytes, or null",
                ));
            }
        }
    }
    tx.query(
        "UPDATE plugins SET secrets = $3, revision = revision + 1, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.clone())
    .bind(Value::Object(secrets).to_string())
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    let keys: Vec<&String> = req.secrets.keys().collect();
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("plugin.secrets", "plugin", &id, json!({}), json!({ "changed": keys })),
    )
    .await?;
    let after = plugin_out(&mut tx, &id).await?;
    tx.commit().await?;
    state.plugins.runtime().forget(&id);
    Ok(axum::Json(after))
}
