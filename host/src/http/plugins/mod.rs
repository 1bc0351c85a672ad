//! Plugins: upload (multipart: `manifest` TOML and `component` wasm), versions, activation and rollback,
//! grants, settings and secrets, logs and faults, a dry run of any hook, the reports plugins offer, and
//! the notices the runtime leaves for admins.

mod history;
mod runs;
mod settings;
mod upload;
mod versions;

use history::*;
use runs::*;
use settings::*;
use upload::*;
use versions::*;

use super::api::{Api, Op};
use super::common::{Page, Path};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::config::plugins::MAX_UPLOAD_BYTES;
use crate::error::ApiResult;
use crate::plugins::store::{self, PluginOut, Uploaded, plugin_out};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};
use sqlx::Row;

pub fn routes(api: &mut Api) {
    api.tag("plugins");
    api.op_out::<Vec<PluginOut>>(
        Op::get("/api/v1/plugins", "List the academy's plugins").permission("plugins.manage"),
        get(list),
    );
    api.op_out::<Uploaded>(
        Op::post(
            "/api/v1/plugins",
            "Upload a plugin version (multipart: `manifest` = aula-plugin.toml, `component` = the wasm component, \
             optional `grant` = comma-separated capabilities to grant, or `requested`)",
        )
        .permission("plugins.manage")
        .request_body_type("multipart/form-data")
        .status(201),
        post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
    );
    api.op_out::<Value>(
        Op::post(
            "/api/v1/plugins/check",
            "Check a component and manifest without storing anything (same multipart fields as upload)",
        )
        .permission("plugins.manage")
        .request_body_type("multipart/form-data"),
        post(check).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
    );
    api.op_out::<PluginOut>(
        Op::get("/api/v1/plugins/{id}", "Read a plugin").permission("plugins.manage"),
        get(read),
    );
    api.op(
        Op::delete(
            "/api/v1/plugins/{id}",
            "Delete a plugin with its versions, settings, data, logs and faults",
        )
        .permission("plugins.manage"),
        delete(remove),
    );
    api.op_out::<Vec<VersionOut>>(
        Op::get(
            "/api/v1/plugins/{id}/versions",
            "List a plugin's versions, newest first",
        )
        .permission("plugins.manage"),
        get(versions),
    );
    api.op_io::<ActivateRequest, PluginOut>(
        Op::post(
            "/api/v1/plugins/{id}/activate",
            "Activate a version (the newest when none is named); calls in flight finish on the old one",
        )
        .permission("plugins.manage"),
        post(activate),
    );
    api.op_out::<PluginOut>(
        Op::post("/api/v1/plugins/{id}/deactivate", "Stop running a plugin").permission("plugins.manage"),
        post(deactivate),
    );
    api.op_out::<PluginOut>(
        Op::post(
            "/api/v1/plugins/{id}/rollback",
            "Activate the version uploaded before the active one",
        )
        .permission("plugins.manage"),
        post(rollback),
    );
    api.op_io::<GrantsRequest, PluginOut>(
        Op::put(
            "/api/v1/plugins/{id}/grants",
            "Set the granted capabilities (each must be requested by the plugin's manifest)",
        )
        .permission("plugins.manage"),
        put(set_grants),
    );
    api.op(
        Op::delete("/api/v1/plugins/{id}/grants/{capability}", "Revoke one capability").permission("plugins.manage"),
        delete(revoke),
    );
    api.op_io::<SettingsRequest, PluginOut>(
        Op::put(
            "/api/v1/plugins/{id}/settings",
            "Replace the plugin's settings (checked against its config schema)",
        )
        .permission("plugins.manage"),
        put(set_settings),
    );
    api.op_io::<SecretsRequest, PluginOut>(
        Op::put(
            "/api/v1/plugins/{id}/secrets",
            "Set or clear secrets (null clears); secrets are never shown back",
        )
        .permission("plugins.manage"),
        put(set_secrets),
    );
    api.op_out::<Page<LogOut>>(
        Op::get("/api/v1/plugins/{id}/logs", "The plugin's log, newest first")
            .permission("plugins.manage")
            .query(&[
                ("limit", "page size, 1–500 (default 50)"),
                ("cursor", "from next_cursor"),
            ]),
        get(logs),
    );
    api.op_out::<Page<FaultOut>>(
        Op::get(
            "/api/v1/plugins/{id}/faults",
            "The plugin's fault history, newest first",
        )
        .permission("plugins.manage")
        .query(&[
            ("limit", "page size, 1–500 (default 50)"),
            ("cursor", "from next_cursor"),
        ]),
        get(faults),
    );
    api.op_io::<InvokeRequest, InvokeOut>(
        Op::post(
            "/api/v1/plugins/{id}/invoke",
            "Run one hook of the active version now, seeing what you may see; faults count as in real use",
        )
        .permission("plugins.manage"),
        post(invoke),
    );
    api.op_out::<Vec<PluginReport>>(
        Op::get(
            "/api/v1/plugin-reports",
            "Reports offered by the academy's active report plugins",
        )
        .permission("reports.read"),
        get(plugin_reports),
    );
    api.op_io::<RunReportRequest, Value>(
        Op::post(
            "/api/v1/plugin-reports/{plugin_id}/{key}",
            "Run a plugin report over what you may see; one page of rows per call",
        )
        .permission("reports.read"),
        post(run_plugin_report),
    );
    api.tag("notices");
    api.op_out::<Vec<NoticeOut>>(
        Op::get("/api/v1/notices", "Notices for the academy's admins, newest first").permission("tenant.manage"),
        get(notices),
    );
    api.op(
        Op::post("/api/v1/notices/{id}/read", "Mark a notice read")
            .permission("tenant.manage")
            .status(204),
        post(read_notice),
    );
}

async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<PluginOut>>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query(
            "SELECT p.id, p.name, p.kind, p.status, p.active_version_id, v.version, p.capabilities, p.settings, \
             p.secrets, p.consecutive_faults, p.disabled_reason, p.created_at, p.updated_at \
             FROM plugins p LEFT JOIN plugin_versions v ON v.id = p.active_version_id AND v.tenant_id = $1 \
             WHERE p.tenant_id = $1 ORDER BY lower(p.name)",
        )
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(store::plugin_from_row).collect::<ApiResult<_>>()?,
    ))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<PluginOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin_read().await?;
    let out = plugin_out(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn remove(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin().await?;
    let before = plugin_out(&mut tx, &id).await?;
    let hashes: Vec<String> = tx
        .query("SELECT DISTINCT hash FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2")
        .bind(id.clone())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for sql in [
        "DELETE FROM plugin_logs WHERE tenant_id = $1 AND plugin_id = $2",
        "DELETE FROM plugin_faults WHERE tenant_id = $1 AND plugin_id = $2",
        "DELETE FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2",
        "DELETE FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2",
        "DELETE FROM plugins WHERE tenant_id = $1 AND id = $2",
    ] {
        tx.query(sql).bind(id.clone()).execute(tx.conn()).await?;
    }
    for hash in hashes {
        tx.query(
            "DELETE FROM plugin_blobs WHERE tenant_id = $1 AND hash = $2 \
             AND NOT EXISTS (SELECT 1 FROM plugin_versions v WHERE v.tenant_id = $1 AND v.hash = $2)",
        )
        .bind(hash)
        .execute(tx.conn())
        .await?;
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("plugin.delete", "plugin", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    state.plugins.runtime().forget(&id);
    if let Err(e) = state.plugins.runtime().remove_files(caller.db().tenant_id(), Some(&id)) {
        tracing::warn!(plugin = %id, error = %format!("{e:#}"), "the deleted plugin's files stay");
    }
    Ok(StatusCode::NO_CONTENT)
}
