//! Plugins in the database: upload, activation, grants, settings, loading an active version for a call,
//! and recording what a call did (log lines, faults, disabling after repeated faults).

use super::engine::content_hash;
use super::host_api::View;
use super::inspect::Inspection;
use super::manifest::{CapSet, Capability, Kind, Manifest};
use super::runtime::{CallStats, HookCall, HookError, HookOutput, Loaded, Runtime, VersionSource};
use crate::audit::{Change, record};
use crate::auth::Actor;
use crate::db::{Db, TenantDb, TenantTx, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value, json};
use sqlx::Row;
use std::sync::Arc;

/// The capabilities stored as a JSON list.
pub fn parse_caps(text: &str) -> CapSet {
    let names: Vec<String> = serde_json::from_str(text).unwrap_or_default();
    names
        .iter()
        .filter_map(|n| Capability::parse(n))
        .fold(CapSet::default(), CapSet::with)
}

/// The capabilities as stored.
pub fn caps_text(caps: CapSet) -> String {
    serde_json::to_string(&caps.list()).unwrap_or_else(|_| "[]".into())
}

fn object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Load a plugin's active version (from the in-process cache when its revision is current).
pub async fn load_active(runtime: &Runtime, db: &Db, tenant: &TenantDb, plugin_id: &str) -> ApiResult<Arc<Loaded>> {
    let mut tx = tenant.begin_read().await?;
    let row = tx
        .query(
            "SELECT p.name, p.status, p.capabilities, p.settings, p.secrets, p.revision, p.consecutive_faults, \
             v.id AS version_id, v.version, v.manifest, v.hash \
             FROM plugins p JOIN plugin_versions v ON v.id = p.active_version_id AND v.tenant_id = $1 \
             WHERE p.tenant_id = $1 AND p.id = $2",
        )
        .bind(plugin_id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApiError::rule("plugin_inactive", None, "the plugin has no active version"))?;
    let status: String = row.try_get("status")?;
    if status != "active" {
        return Err(ApiError::rule(
            "plugin_inactive",
            None,
            format!("the plugin is {status}; activate it to run it"),
        ));
    }
    let revision: i64 = row.try_get("revision")?;
    if let Some(loaded) = runtime.cached(plugin_id, revision) {
        return Ok(loaded);
    }
    let hash: String = row.try_get("hash")?;
    let manifest: Manifest = serde_json::from_str(&row.try_get::<String, _>("manifest")?)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored manifest unreadable: {e}")))?;
    let component = match runtime.cached_component(&hash) {
        Some(component) => component,
        None => {
            let component = component_for(runtime, db, &mut tx, &hash).await?;
            runtime.keep_component(&hash, component.clone());
            component
        }
    };
    tx.commit().await?;
    let source = VersionSource {
        tenant_id: tenant.tenant_id().to_owned(),
        plugin_id: plugin_id.to_owned(),
        name: row.try_get("name")?,
        version_id: row.try_get("version_id")?,
        version: row.try_get("version")?,
        manifest,
        granted: parse_caps(&row.try_get::<String, _>("capabilities")?),
        settings: object(&row.try_get::<String, _>("settings")?),
        secrets: object(&row.try_get::<String, _>("secrets")?),
        revision,
        consecutive_faults: row.try_get::<i64, _>("consecutive_faults")?.max(0) as u32,
    };
    let loaded = Arc::new(
        runtime
            .prepare(source, &component)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("preparing plugin {plugin_id}: {e:#}")))?,
    );
    runtime.keep(loaded.clone());
    Ok(loaded)
}

/// The compiled component of a blob: from the artifact store when this engine compiled it before,
/// otherwise compiled now from the tenant's blob and stored.
async fn component_for(
    runtime: &Runtime,
    db: &Db,
    tx: &mut TenantTx,
    hash: &str,
) -> ApiResult<wasmtime::component::Component> {
    let engine_key = runtime.engine().key().to_owned();
    let mut platform = db.platform().begin().await?;
    let artifact: Option<Vec<u8>> = sqlx::query("SELECT bytes FROM plugin_artifacts WHERE hash = $1 AND engine = $2")
        .bind(hash.to_owned())
        .bind(engine_key.clone())
        .fetch_optional(platform.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    platform.commit().await?;
    if let Some(artifact) = artifact
        && let Ok(component) = runtime.engine().load(&artifact)
    {
        return Ok(component);
    }
    let bytes: Vec<u8> = tx
        .query("SELECT bytes FROM plugin_blobs WHERE tenant_id = $1 AND hash = $2")
        .bind(hash.to_owned())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    let (component, artifact, _) = runtime
        .compile(&bytes)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("compiling stored component {hash}: {e:#}")))?;
    store_artifact(db, hash, &engine_key, &artifact).await?;
    Ok(component)
}

/// Keep a compiled artifact (the first writer wins; all writers write the same bytes).
pub async fn store_artifact(db: &Db, hash: &str, engine: &str, artifact: &[u8]) -> Result<(), sqlx::Error> {
    let mut platform = db.platform().begin().await?;
    sqlx::query(
        "INSERT INTO plugin_artifacts (hash, engine, bytes, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (hash, engine) DO NOTHING",
    )
    .bind(hash.to_owned())
    .bind(engine.to_owned())
    .bind(artifact.to_vec())
    .bind(now_ms())
    .execute(platform.conn())
    .await?;
    platform.commit().await
}

/// The active plugins of one kind for a tenant, ready to run, in name order.
pub async fn active_of_kind(runtime: &Runtime, db: &Db, tenant: &TenantDb, kind: Kind) -> ApiResult<Vec<Arc<Loaded>>> {
    let mut tx = tenant.begin_read().await?;
    let rows = tx
        .query(
            "SELECT id, revision FROM plugins WHERE tenant_id = $1 AND kind = $2 AND status = 'active' \
             AND active_version_id IS NOT NULL ORDER BY lower(name)",
        )
        .bind(kind.as_str())
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0)?;
        // The revision just read is current: a cached version at it needs no second look.
        if let Some(loaded) = runtime.cached(&id, row.try_get(1)?) {
            out.push(loaded);
            continue;
        }
        match load_active(runtime, db, tenant, &id).await {
            Ok(loaded) => out.push(loaded),
            Err(e) => tracing::error!(plugin = %id, error = %e, "an active plugin could not be loaded"),
        }
    }
    Ok(out)
}

/// Run a hook and record what happened: log lines, and on a fault the fault (disabling the plugin after
/// the configured number in a row).
pub async fn call(
    runtime: &Runtime,
    tenant: &TenantDb,
    loaded: &Loaded,
    view: View,
    hook: HookCall,
) -> (Result<HookOutput, HookError>, CallStats) {
    let name = hook.name();
    let (result, stats) = runtime.invoke(tenant, loaded, view, hook).await;
    if let Err(e) = record_outcome(runtime, tenant, loaded, name, &result, &stats).await {
        tracing::error!(plugin = %loaded.plugin_id, error = %e, "recording a plugin call failed");
    }
    (result, stats)
}

/// Persist a call's log lines and its fault, if any.
pub async fn record_outcome(
    runtime: &Runtime,
    tenant: &TenantDb,
    loaded: &Loaded,
    hook: &str,
    result: &Result<HookOutput, HookError>,
    stats: &CallStats,
) -> Result<(), sqlx::Error> {
    let fault = match result {
        Err(HookError::Fault { kind, message }) => Some((kind.as_str(), message.as_str())),
        _ => None,
    };
    let had_faults = stats.faults_before > 0 || fault.is_some();
    if stats.log.is_empty() && stats.log_dropped == 0 && fault.is_none() && !had_faults {
        return Ok(());
    }
    let mut tx = tenant.begin().await?;
    let now = now_ms();
    for line in &stats.log {
        insert_log(&mut tx, loaded, now, line.level, &line.message).await?;
    }
    if stats.log_dropped > 0 {
        let message = format!(
            "{} more log lines of this call were dropped (over the log limit)",
            stats.log_dropped
        );
        insert_log(&mut tx, loaded, now, "warn", &message).await?;
    }
    if let Err(HookError::Plugin(message)) = result {
        insert_log(
            &mut tx,
            loaded,
            now,
            "error",
            &format!("{hook} answered with an error: {message}"),
        )
        .await?;
    }
    match fault {
        Some((kind, message)) => {
            tx.query(
                "INSERT INTO plugin_faults (id, tenant_id, plugin_id, version_id, at, hook, kind, message, elapsed_ms) \
                 VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(new_id())
            .bind(loaded.plugin_id.clone())
            .bind(loaded.version_id.clone())
            .bind(now)
            .bind(hook.to_owned())
            .bind(kind)
            .bind(message.to_owned())
            .bind(stats.elapsed.as_millis() as i64)
            .execute(tx.conn())
            .await?;
            tx.query("UPDATE plugin_versions SET faults = faults + 1 WHERE tenant_id = $1 AND id = $2")
                .bind(loaded.version_id.clone())
                .execute(tx.conn())
                .await?;
            let count: i64 = tx
                .query(
                    "UPDATE plugins SET consecutive_faults = consecutive_faults + 1 \
                     WHERE tenant_id = $1 AND id = $2 RETURNING consecutive_faults",
                )
                .bind(loaded.plugin_id.clone())
                .fetch_one(tx.conn())
                .await?
                .try_get(0)?;
            if count >= i64::from(runtime.settings().fault_limit) {
                disable(&mut tx, loaded, count, kind, message).await?;
                runtime.forget(&loaded.plugin_id);
            }
        }
        None => {
            tx.query(
                "UPDATE plugins SET consecutive_faults = 0 WHERE tenant_id = $1 AND id = $2 AND consecutive_faults > 0",
            )
            .bind(loaded.plugin_id.clone())
            .execute(tx.conn())
            .await?;
        }
    }
    tx.commit().await
}

async fn insert_log(
    tx: &mut TenantTx,
    loaded: &Loaded,
    at: i64,
    level: &str,
    message: &str,
) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO plugin_logs (id, tenant_id, plugin_id, version_id, at, level, message) \
         VALUES ($2, $1, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(loaded.plugin_id.clone())
    .bind(loaded.version_id.clone())
    .bind(at)
    .bind(level.to_owned())
    .bind(message.to_owned())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Disable a plugin after repeated faults: audited, and a notice for the tenant's admins.
async fn disable(tx: &mut TenantTx, loaded: &Loaded, count: i64, kind: &str, message: &str) -> Result<(), sqlx::Error> {
    let reason = format!("{count} faults in a row; the last: {kind}: {message}");
    let changed = tx
        .query(
            "UPDATE plugins SET status = 'disabled', disabled_reason = $3, revision = revision + 1, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2 AND status = 'active'",
        )
        .bind(loaded.plugin_id.clone())
        .bind(reason.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if changed == 0 {
        return Ok(());
    }
    record(
        tx,
        &Actor::system("plugin runtime"),
        Change::updated(
            "plugin.disable",
            "plugin",
            &loaded.plugin_id,
            json!({ "status": "active" }),
            json!({ "status": "disabled", "version": loaded.version, "reason": reason }),
        ),
    )
    .await?;
    tx.query(
        "INSERT INTO notices (id, tenant_id, kind, subject, body, target_type, target_id, created_at) \
         VALUES ($2, $1, 'plugin_disabled', $3, $4, 'plugin', $5, $6)",
    )
    .bind(new_id())
    .bind(format!("Plugin {} was disabled", loaded.name))
    .bind(format!(
        "Version {} of the plugin {} failed {count} times in a row and was disabled. The last fault: {kind}: \
         {message}. Its fault history is on the plugin's page; activate it again once it is fixed.",
        loaded.version, loaded.name
    ))
    .bind(loaded.plugin_id.clone())
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    let event = crate::outbox::Event::academy(crate::outbox::Kind::PluginDisabled).with(
        "plugin",
        json!({ "name": loaded.name, "version": loaded.version, "reason": reason }),
    );
    crate::outbox::emit(tx, &[event]).await?;
    Ok(())
}

/// A plugin row as the API shows it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PluginOut {
    /// Id.
    pub id: String,
    /// Name (unique in the tenant).
    pub name: String,
    /// Kind.
    pub kind: String,
    /// `inactive`, `active` or `disabled`.
    pub status: String,
    /// The active version's id.
    pub active_version_id: Option<String>,
    /// The active version's semantic version.
    pub active_version: Option<String>,
    /// Granted capabilities.
    pub capabilities: Vec<Capability>,
    /// Settings the admin set (secrets are never shown; see `secrets_set`).
    pub settings: Map<String, Value>,
    /// Keys of the secrets that are set.
    pub secrets_set: Vec<String>,
    /// Faults in a row so far.
    pub consecutive_faults: i64,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

/// Read one plugin for the API.
pub async fn plugin_out(tx: &mut TenantTx, id: &str) -> ApiResult<PluginOut> {
    let row = tx
        .query(
            "SELECT p.id, p.name, p.kind, p.status, p.active_version_id, v.version, p.capabilities, p.settings, \
             p.secrets, p.consecutive_faults, p.disabled_reason, p.created_at, p.updated_at \
             FROM plugins p LEFT JOIN plugin_versions v ON v.id = p.active_version_id AND v.tenant_id = $1 \
             WHERE p.tenant_id = $1 AND p.id = $2",
        )
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "plugin" })?;
    plugin_from_row(&row)
}

/// Decode a plugin row selected as in [`plugin_out`].
pub fn plugin_from_row(row: &sqlx::any::AnyRow) -> ApiResult<PluginOut> {
    let secrets = object(&row.try_get::<String, _>("secrets")?);
    Ok(PluginOut {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        status: row.try_get("status")?,
        active_version_id: row.try_get("active_version_id")?,
        active_version: row.try_get("version")?,
        capabilities: parse_caps(&row.try_get::<String, _>("capabilities")?).list(),
        settings: object(&row.try_get::<String, _>("settings")?),
        secrets_set: secrets.keys().cloned().collect(),
        consecutive_faults: row.try_get("consecutive_faults")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: crate::db::rfc3339(row.try_get("created_at")?),
        updated_at: crate::db::rfc3339(row.try_get("updated_at")?),
    })
}

/// What an upload stored.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Uploaded {
    /// The plugin (new, or the existing one of that name).
    pub plugin: PluginOut,
    /// The new version's id.
    pub version_id: String,
    /// Its imports.
    pub inspection: Inspection,
}

/// Validate and store a new plugin version (and the plugin itself when the name is new). The component
/// is compiled here, once; the artifact is kept for every later load.
pub async fn upload(
    runtime: &Arc<Runtime>,
    db: &Db,
    tenant: &TenantDb,
    actor: &Actor,
    manifest: Manifest,
    bytes: Vec<u8>,
    grant: Option<CapSet>,
) -> ApiResult<Uploaded> {
    let max = runtime.settings().max_component_bytes;
    if bytes.len() > max {
        return Err(ApiError::invalid(
            "component",
            format!("is {} bytes; the limit is {max} bytes", bytes.len()),
        ));
    }
    if bytes.is_empty() {
        return Err(ApiError::invalid("component", "is empty"));
    }
    let hash = content_hash(&bytes);
    let (component, artifact, inspection) = match runtime.cached_component(&hash) {
        Some(component) => {
            let inspection = Inspection::of(runtime.engine().engine(), &component);
            (component, None, inspection)
        }
        None => {
            // Compiling takes from milliseconds to seconds of CPU: not on the threads that serve requests.
            let compiler = runtime.clone();
            let input = bytes.clone();
            let (component, artifact, inspection) = tokio::task::spawn_blocking(move || compiler.compile(&input))
                .await
                .map_err(|e| ApiError::Internal(e.into()))?
                .map_err(|e| ApiError::invalid("component", format!("is not a valid WebAssembly component: {e:#}")))?;
            (component, Some(artifact), inspection)
        }
    };
    let mut tx = tenant.begin().await?;
    let existing = tx
        .query("SELECT id, kind, capabilities FROM plugins WHERE tenant_id = $1 AND lower(name) = lower($2)")
        .bind(manifest.name.clone())
        .fetch_optional(tx.conn())
        .await?;
    let (plugin_id, granted, is_new) = match &existing {
        Some(row) => {
            let kind: String = row.try_get("kind")?;
            if kind != manifest.kind.as_str() {
                return Err(ApiError::rule(
                    "plugin_kind",
                    Some("manifest.kind"),
                    format!(
                        "the plugin {} is a {kind} plugin; a new version cannot change its kind",
                        manifest.name
                    ),
                ));
            }
            let stored = parse_caps(&row.try_get::<String, _>("capabilities")?);
            (row.try_get::<String, _>("id")?, stored, false)
        }
        None => (new_id(), CapSet::default(), true),
    };
    let granted = match grant {
        Some(extra) => CapSet(granted.0 | extra.0),
        None => granted,
    };
    let requested = manifest.requested();
    if let Some(grant) = grant {
        let beyond = grant.beyond(requested);
        if !beyond.is_empty() {
            return Err(ApiError::invalid(
                "grant",
                format!("grants {} which the manifest does not request", beyond.join(", ")),
            ));
        }
    }
    let problems = inspection.problems(manifest.kind, requested, granted);
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "component_refused",
            message: format!("the component cannot run as this plugin: {}", problems.join("; ")),
            field: Some("component".into()),
            details: Some(json!({ "problems": problems })),
        });
    }
    let now = now_ms();
    if is_new {
        tx.query(
            "INSERT INTO plugins (id, tenant_id, name, kind, status, capabilities, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, 'inactive', $5, $6, $6)",
        )
        .bind(plugin_id.clone())
        .bind(manifest.name.clone())
        .bind(manifest.kind.as_str())
        .bind(caps_text(granted))
        .bind(now)
        .execute(tx.conn())
        .await
        .map_err(|e| match crate::db::unique_violation(&e) {
            Some(_) => ApiError::duplicate("manifest.name", "a plugin of this name was uploaded at the same time"),
            None => e.into(),
        })?;
    } else if grant.is_some() {
        tx.query("UPDATE plugins SET capabilities = $3, revision = revision + 1, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(plugin_id.clone())
            .bind(caps_text(granted))
            .bind(now)
            .execute(tx.conn())
            .await?;
    }
    tx.query(
        "INSERT INTO plugin_blobs (hash, tenant_id, bytes, size, created_at) VALUES ($2, $1, $3, $4, $5) \
         ON CONFLICT (tenant_id, hash) DO NOTHING",
    )
    .bind(hash.clone())
    .bind(bytes.clone())
    .bind(bytes.len() as i64)
    .bind(now)
    .execute(tx.conn())
    .await?;
    let version_id = new_id();
    let imports: Vec<&str> = inspection.imports.iter().map(|i| i.name.as_str()).collect();
    tx.query(
        "INSERT INTO plugin_versions (id, tenant_id, plugin_id, version, manifest, hash, size, imports, created_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(version_id.clone())
    .bind(plugin_id.clone())
    .bind(manifest.version.clone())
    .bind(serde_json::to_string(&manifest).unwrap_or_default())
    .bind(hash.clone())
    .bind(bytes.len() as i64)
    .bind(serde_json::to_string(&imports).unwrap_or_default())
    .bind(now)
    .execute(tx.conn())
    .await
    .map_err(|e| match crate::db::unique_violation(&e) {
        Some(_) => ApiError::duplicate(
            "manifest.version",
            format!(
                "version {} of {} was uploaded before; raise the version",
                manifest.version, manifest.name
            ),
        ),
        None => e.into(),
    })?;
    record(
        &mut tx,
        actor,
        Change::created(
            "plugin.upload",
            "plugin",
            &plugin_id,
            json!({ "name": manifest.name, "version": manifest.version, "kind": manifest.kind, "hash": hash,
                    "size": bytes.len(), "capabilities": granted.list() }),
        ),
    )
    .await?;
    let plugin = plugin_out(&mut tx, &plugin_id).await?;
    tx.commit().await?;
    if let Some(artifact) = artifact {
        store_artifact(db, &hash, runtime.engine().key(), &artifact).await?;
    }
    runtime.keep_component(&hash, component);
    Ok(Uploaded {
        plugin,
        version_id,
        inspection,
    })
}

/// Upload a component, grant what it asks for, apply settings and activate it: the one-step deployment
/// the demo and `aula plugin test` use (the API does the same in separate, separately audited steps).
pub async fn deploy(
    runtime: &Arc<Runtime>,
    db: &Db,
    tenant: &TenantDb,
    actor: &Actor,
    manifest: Manifest,
    bytes: Vec<u8>,
    settings: Map<String, Value>,
) -> ApiResult<Uploaded> {
    manifest
        .check_settings(&settings)
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let requested = manifest.requested();
    let uploaded = upload(runtime, db, tenant, actor, manifest, bytes, Some(requested)).await?;
    let mut tx = tenant.begin().await?;
    set_settings(&mut tx, &uploaded.plugin.id, &settings).await?;
    activate(&mut tx, &uploaded.plugin.id, &uploaded.version_id).await?;
    record(
        &mut tx,
        actor,
        Change::updated(
            "plugin.activate",
            "plugin",
            &uploaded.plugin.id,
            json!({ "status": uploaded.plugin.status }),
            json!({ "status": "active", "version_id": uploaded.version_id, "settings": settings }),
        ),
    )
    .await?;
    tx.commit().await?;
    runtime.forget(&uploaded.plugin.id);
    Ok(uploaded)
}

/// Make `version_id` the plugin's running version: active again, its run of faults forgotten. Every cache
/// keyed by the revision reloads; calls already running finish on the version they hold.
pub async fn activate(tx: &mut TenantTx, plugin_id: &str, version_id: &str) -> Result<(), sqlx::Error> {
    tx.query(
        "UPDATE plugins SET status = 'active', active_version_id = $3, consecutive_faults = 0, disabled_reason = NULL, \
         revision = revision + 1, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(plugin_id.to_owned())
    .bind(version_id.to_owned())
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Store a plugin's settings (already checked against its manifest).
pub async fn set_settings(
    tx: &mut TenantTx,
    plugin_id: &str,
    settings: &Map<String, Value>,
) -> Result<(), sqlx::Error> {
    tx.query(
        "UPDATE plugins SET settings = $3, revision = revision + 1, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(plugin_id.to_owned())
    .bind(Value::Object(settings.clone()).to_string())
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(())
}
