//! Plugins: upload (multipart: `manifest` TOML and `component` wasm), versions, activation and rollback,
//! grants, settings and secrets, logs and faults, a dry run of any hook, the reports plugins offer, and
//! the notices the runtime leaves for admins.

use super::api::{Api, Op};
use super::common::{Json, Page, PageParams, Path, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::config::plugins::MAX_UPLOAD_BYTES;
use crate::db::{Sql, TenantTx, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::plugins::host_api::View;
use crate::plugins::inspect::capability_of;
use crate::plugins::manifest::{CapSet, Capability, Kind, Manifest};
use crate::plugins::runtime::{CallStats, HookCall, HookError, HookOutput};
use crate::plugins::store::{self, PluginOut, Uploaded, caps_text, plugin_out};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, OriginalUri, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
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

struct UploadForm {
    manifest: Manifest,
    component: Vec<u8>,
    grant: Option<CapSet>,
}

/// The upload form of a caller who may manage plugins. A refused caller's body is read to its end first, so
/// the connection stays usable for their next request (the body is bounded by the route's limit).
async fn authorized_form(caller: &Caller, form: Result<Multipart, MultipartRejection>) -> ApiResult<UploadForm> {
    if let Err(refusal) = caller.require_tenant_wide(Permission::PluginsManage) {
        if let Ok(mut form) = form {
            while let Ok(Some(field)) = form.next_field().await {
                let _ = field.bytes().await;
            }
        }
        return Err(refusal);
    }
    read_form(form).await
}

async fn read_form(form: Result<Multipart, MultipartRejection>) -> ApiResult<UploadForm> {
    let mut form = form.map_err(|e| ApiError::invalid("body", format!("must be multipart/form-data: {e}")))?;
    let mut manifest = None;
    let mut component = None;
    let mut grant_text = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::invalid("body", format!("is not valid multipart form data: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::invalid(&name, format!("could not be read: {e}")))?;
        match name.as_str() {
            "manifest" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::invalid("manifest", "is not UTF-8 text"))?;
                manifest = Some(text);
            }
            "component" => component = Some(bytes.to_vec()),
            "grant" => grant_text = Some(String::from_utf8_lossy(&bytes).into_owned()),
            other => {
                return Err(ApiError::invalid(
                    other,
                    "is not a field of a plugin upload (manifest, component, grant)",
                ));
            }
        }
    }
    let manifest = manifest.ok_or_else(|| ApiError::invalid("manifest", "is missing"))?;
    let manifest =
        Manifest::from_toml(&manifest).map_err(|e| ApiError::invalid(format!("manifest.{}", e.field), e.message))?;
    let component = component.ok_or_else(|| ApiError::invalid("component", "is missing"))?;
    let grant = match grant_text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("requested") => Some(manifest.requested()),
        Some(list) => Some(parse_cap_list("grant", list.split(',').map(str::trim))?),
    };
    Ok(UploadForm {
        manifest,
        component,
        grant,
    })
}

fn parse_cap_list<'a>(field: &str, names: impl Iterator<Item = &'a str>) -> ApiResult<CapSet> {
    let mut set = CapSet::default();
    for name in names {
        let cap = Capability::parse(name).ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{name} is not a capability (log, config, kv, directory, records, files)"),
            )
        })?;
        set = set.with(cap);
    }
    Ok(set)
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

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<Uploaded>)> {
    let form = authorized_form(&caller, form).await?;
    let uploaded = store::upload(
        &state.plugins,
        &state.db,
        caller.db(),
        &caller.actor(),
        form.manifest,
        form.component,
        form.grant,
    )
    .await?;
    state.plugins.forget(&uploaded.plugin.id);
    Ok((StatusCode::CREATED, axum::Json(uploaded)))
}

async fn check(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<axum::Json<Value>> {
    let form = authorized_form(&caller, form).await?;
    let runtime = state.plugins.clone();
    let bytes = form.component;
    let (_, _, inspection) = tokio::task::spawn_blocking(move || runtime.compile(&bytes))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::invalid("component", format!("is not a valid WebAssembly component: {e:#}")))?;
    let granted = form.grant.unwrap_or_default();
    let problems = inspection.problems(form.manifest.kind, form.manifest.requested(), granted);
    Ok(axum::Json(json!({
        "manifest": form.manifest,
        "inspection": inspection,
        "needs": inspection.needs().list(),
        "problems_with_grant": problems,
    })))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<PluginOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let mut tx = caller.db().begin_read().await?;
    let out = plugin_out(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

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

async fn versions(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<Vec<VersionOut>>> {
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
struct ActivateRequest {
    /// A semantic version of this plugin; the newest upload when absent.
    #[serde(default)]
    version: Option<String>,
}

struct VersionRow {
    id: String,
    version: String,
    manifest: Manifest,
    imports: Vec<String>,
}

async fn version_row(tx: &mut TenantTx, plugin_id: &str, version: Option<&str>) -> ApiResult<VersionRow> {
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
fn ungranted(version: &VersionRow, granted: CapSet) -> Vec<String> {
    version
        .imports
        .iter()
        .filter(|name| capability_of(name).is_some_and(|cap| !granted.has(cap)))
        .cloned()
        .collect()
}

async fn switch_to(
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
    state.plugins.forget(id);
    // Load the new version now so the first call does not pay for it; calls holding the old one finish on it.
    if let Err(e) = store::load_active(&state.plugins, &state.db, caller.db(), id).await {
        tracing::warn!(plugin = %id, error = %e, "activated plugin could not be preloaded");
    }
    Ok(after)
}

async fn secrets_of(tx: &mut TenantTx, id: &str) -> ApiResult<Map<String, Value>> {
    let text: String = tx
        .query("SELECT secrets FROM plugins WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

async fn activate(
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

async fn rollback(
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

async fn deactivate(
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
    state.plugins.forget(&id);
    Ok(axum::Json(after))
}

/// The capabilities to grant.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct GrantsRequest {
    /// Capability names: log, config, kv, directory, records, files.
    capabilities: Vec<String>,
}

/// What any stored version of the plugin asks for: all of it may be granted (a new upload may ask for
/// more than the active version).
async fn requested_by_any_version(tx: &mut TenantTx, id: &str) -> ApiResult<CapSet> {
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

async fn write_grants(
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
    state.plugins.forget(id);
    Ok(after)
}

async fn set_grants(
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

async fn revoke(
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
struct SettingsRequest {
    settings: Map<String, Value>,
}

async fn latest_manifest(tx: &mut TenantTx, id: &str) -> ApiResult<Manifest> {
    let plugin = plugin_out(tx, id).await?;
    let row = version_row(tx, id, plugin.active_version.as_deref()).await?;
    Ok(row.manifest)
}

async fn set_settings(
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
    state.plugins.forget(&id);
    Ok(axum::Json(after))
}

/// Secrets to set (a string) or clear (null).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SecretsRequest {
    secrets: Map<String, Value>,
}

async fn set_secrets(
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
    state.plugins.forget(&id);
    Ok(axum::Json(after))
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
    state.plugins.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// One log line.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogOut {
    id: String,
    at: String,
    version_id: String,
    level: String,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// One page of a plugin's history table (`plugin_logs`, `plugin_faults`), newest first, each row decoded
/// by `decode`.
async fn history<T>(
    caller: &Caller,
    uri: &axum::http::Uri,
    id: &str,
    select: &str,
    p: ListParams,
    decode: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
    key: impl Fn(&T) -> String,
) -> ApiResult<axum::Json<Page<T>>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    plugin_out(&mut tx, id).await?;
    let mut sql = Sql::tenant(select);
    sql.push(" WHERE tenant_id = $1 AND plugin_id = ").push_bind(id);
    if let Some(c) = &p.cursor {
        sql.push(" AND id < ").push_bind(c.as_str());
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let items = rows.iter().map(decode).collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(Page::from_rows(items, limit, uri, key)))
}

async fn logs(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<LogOut>>> {
    let select = "SELECT id, at, version_id, level, message FROM plugin_logs";
    let decode = |r: &sqlx::any::AnyRow| {
        Ok(LogOut {
            id: r.try_get("id")?,
            at: rfc3339(r.try_get("at")?),
            version_id: r.try_get("version_id")?,
            level: r.try_get("level")?,
            message: r.try_get("message")?,
        })
    };
    history(&caller, &uri, &id, select, p, decode, |l| l.id.clone()).await
}

/// One recorded fault.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FaultOut {
    id: String,
    at: String,
    version_id: String,
    hook: String,
    kind: String,
    message: String,
    elapsed_ms: i64,
}

async fn faults(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<FaultOut>>> {
    let select = "SELECT id, at, version_id, hook, kind, message, elapsed_ms FROM plugin_faults";
    let decode = |r: &sqlx::any::AnyRow| {
        Ok(FaultOut {
            id: r.try_get("id")?,
            at: rfc3339(r.try_get("at")?),
            version_id: r.try_get("version_id")?,
            hook: r.try_get("hook")?,
            kind: r.try_get("kind")?,
            message: r.try_get("message")?,
            elapsed_ms: r.try_get("elapsed_ms")?,
        })
    };
    history(&caller, &uri, &id, select, p, decode, |f| f.id.clone()).await
}

/// A hook to run and its input (JSON shaped like the WIT records, fields in snake_case).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct InvokeRequest {
    /// `brand`, `on-signup`, `on-events`, `on-notice`, `on-tick`, `list-reports` or `run-report`.
    hook: String,
    /// The hook's input.
    #[serde(default)]
    input: Value,
}

/// What a hook answered, with measurements.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct InvokeOut {
    /// `ok`, `plugin_error`, `fault` or `unavailable`.
    outcome: String,
    /// The hook's output when `ok`.
    output: Option<Value>,
    /// The error or fault.
    error: Option<String>,
    /// The fault kind.
    fault: Option<String>,
    elapsed_us: u64,
    peak_memory_bytes: usize,
    host_data_bytes: usize,
    output_bytes: usize,
    log: Vec<Value>,
}

fn invoke_out(result: Result<HookOutput, HookError>, stats: CallStats) -> InvokeOut {
    let (outcome, output, error, fault) = match result {
        Ok(output) => ("ok", serde_json::to_value(&output).ok(), None, None),
        Err(HookError::Plugin(m)) => ("plugin_error", None, Some(m), None),
        Err(HookError::Fault { kind, message }) => ("fault", None, Some(message), Some(kind.as_str().to_owned())),
        Err(HookError::Unavailable(m)) => ("unavailable", None, Some(m), None),
    };
    InvokeOut {
        outcome: outcome.into(),
        output,
        error,
        fault,
        elapsed_us: stats.elapsed.as_micros() as u64,
        peak_memory_bytes: stats.peak_memory,
        host_data_bytes: stats.host_data,
        output_bytes: stats.output,
        log: stats
            .log
            .iter()
            .map(|l| json!({ "level": l.level, "message": l.message }))
            .collect(),
    }
}

fn caller_view(caller: &Caller, perm: Permission) -> View {
    View::User {
        user_id: caller.user_id.clone(),
        reach: caller.grants.reach(perm),
    }
}

async fn invoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<InvokeRequest>,
) -> ApiResult<axum::Json<InvokeOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let call = HookCall::from_json(&req.hook, req.input).map_err(|m| ApiError::invalid("input", m))?;
    let loaded = store::load_active(&state.plugins, &state.db, caller.db(), &id).await?;
    if call.kind() != loaded.kind {
        return Err(ApiError::invalid(
            "hook",
            format!(
                "{} is not a hook of a {} plugin (its hooks: {})",
                req.hook,
                loaded.kind,
                loaded.kind.hooks().join(", ")
            ),
        ));
    }
    let view = caller_view(&caller, Permission::ReportsRead);
    let (result, stats) = store::call(&state.plugins, caller.db(), &loaded, view, call).await;
    Ok(axum::Json(invoke_out(result, stats)))
}

/// A report offered by a plugin.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct PluginReport {
    plugin_id: String,
    plugin: String,
    key: String,
    title: String,
    description: String,
    columns: Vec<Value>,
}

async fn plugin_reports(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Vec<PluginReport>>> {
    caller.require(Permission::ReportsRead)?;
    let mut out = Vec::new();
    for loaded in store::active_of_kind(&state.plugins, &state.db, caller.db(), Kind::Reports).await? {
        let view = caller_view(&caller, Permission::ReportsRead);
        // Fails open: a faulting plugin's reports are left out of the list.
        if let (Ok(HookOutput::ListReports(reports)), _) =
            store::call(&state.plugins, caller.db(), &loaded, view, HookCall::ListReports).await
        {
            for report in reports {
                out.push(PluginReport {
                    plugin_id: loaded.plugin_id.clone(),
                    plugin: loaded.name.clone(),
                    key: report.key,
                    title: report.title,
                    description: report.description,
                    columns: report
                        .columns
                        .iter()
                        .filter_map(|c| serde_json::to_value(c).ok())
                        .collect(),
                });
            }
        }
    }
    Ok(axum::Json(out))
}

/// Parameters of a report run.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunReportRequest {
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    cursor: Option<String>,
}

async fn run_plugin_report(
    State(state): State<AppState>,
    caller: Caller,
    Path((plugin_id, key)): Path<(String, String)>,
    Json(req): Json<RunReportRequest>,
) -> ApiResult<axum::Json<Value>> {
    caller.require(Permission::ReportsRead)?;
    let loaded = store::active_of_kind(&state.plugins, &state.db, caller.db(), Kind::Reports)
        .await?
        .into_iter()
        .find(|l| l.plugin_id == plugin_id)
        .ok_or(ApiError::NotFound { what: "report plugin" })?;
    let params = req
        .params
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let view = caller_view(&caller, Permission::ReportsRead);
    let call = HookCall::RunReport {
        key,
        params,
        cursor: req.cursor,
    };
    // Fails closed: no partial report.
    match store::call(&state.plugins, caller.db(), &loaded, view, call).await {
        (Ok(HookOutput::RunReport(rows)), _) => Ok(axum::Json(json!({ "rows": rows.rows, "next": rows.next }))),
        (Ok(_), _) => Err(ApiError::Internal(anyhow::anyhow!(
            "run-report answered with another hook's output"
        ))),
        (Err(HookError::Plugin(message)), _) => Err(ApiError::rule("report_failed", None, message)),
        (Err(e), _) => Err(ApiError::rule("report_failed", None, e.to_string())),
    }
}

/// A notice for the academy's admins.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct NoticeOut {
    id: String,
    kind: String,
    subject: String,
    body: String,
    target_type: Option<String>,
    target_id: Option<String>,
    created_at: String,
    read_at: Option<String>,
}

async fn notices(caller: Caller) -> ApiResult<axum::Json<Vec<NoticeOut>>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query(
            "SELECT id, kind, subject, body, target_type, target_id, created_at, read_at FROM notices \
             WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 200",
        )
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(NoticeOut {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                body: r.try_get("body")?,
                target_type: r.try_get("target_type")?,
                target_id: r.try_get("target_id")?,
                created_at: rfc3339(r.try_get("created_at")?),
                read_at: r.try_get::<Option<i64>, _>("read_at")?.map(rfc3339),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(out))
}

async fn read_notice(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin().await?;
    let changed = tx
        .query("UPDATE notices SET read_at = coalesce(read_at, $3) WHERE tenant_id = $1 AND id = $2")
        .bind(id)
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(ApiError::NotFound { what: "notice" });
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
