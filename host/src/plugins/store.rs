//! Plugins in the database: the plugin rows as the API shows them, upload (compiled once, the artifact kept),
//! activation, grants and settings. Running them is [`super::host::PluginHost`]'s part.

use super::engine::content_hash;
use super::host::PluginHost;
use super::inspect::Inspection;
use super::manifest::{CapSet, Capability, Manifest};
use crate::audit::{Change, record};
use crate::auth::Actor;
use crate::db::{TenantDb, TenantTx, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value, json};
use sqlx::Row;

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

pub(crate) fn object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
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

/// A refused component, with every reason (`422 component_refused`, `details.problems`): the one shape of
/// every refusal of an upload or a check.
pub fn refused(problems: Vec<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "component_refused",
        message: format!("the component cannot run as this plugin: {}", problems.join("; ")),
        field: Some("component".into()),
        details: Some(json!({ "problems": problems })),
    }
}

/// Why a component did not compile, in words a plugin developer can act on.
fn compile_problem(bytes: &[u8], error: &anyhow::Error, max_memory_mib: u32) -> String {
    let text = format!("{error:#}");
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return "the file is not WebAssembly (it does not start with the \\0asm header)".into();
    }
    // A core module has version 1 in its header; a component has its own layer and version.
    if bytes[4..8] == [1, 0, 0, 0] {
        return "the file is a core WebAssembly module, not a component: build it for wasm32-wasip2 with the \
                Aula SDK (cargo build --target wasm32-wasip2)"
            .into();
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("memory") && (lower.contains("pool") || lower.contains("exceed") || lower.contains("maximum")) {
        return format!(
            "the component asks for more linear memory than a plugin may have (at most {max_memory_mib} MiB)"
        );
    }
    format!("the component is not valid: {}", text.lines().next().unwrap_or(&text))
}

/// Compile a component (once per content hash per process), in the academy's share of the host's
/// compilation slots, off the threads that serve requests. Empty, oversized and invalid components are
/// refused with [`refused`].
pub async fn compile(
    host: &PluginHost,
    tenant: &TenantDb,
    bytes: Vec<u8>,
) -> ApiResult<(wasmtime::component::Component, Option<Vec<u8>>, Inspection)> {
    let runtime = host.runtime();
    let max = runtime.settings().max_component_bytes;
    if bytes.is_empty() {
        return Err(refused(vec!["the component is empty".into()]));
    }
    if bytes.len() > max {
        return Err(refused(vec![format!(
            "the component is {} bytes; the limit is {max} bytes",
            bytes.len()
        )]));
    }
    let hash = content_hash(&bytes);
    if let Some(component) = runtime.cached_component(&hash) {
        let inspection = Inspection::of(runtime.engine().engine(), &component);
        return Ok((component, None, inspection));
    }
    // Compiling takes from milliseconds to seconds of CPU: a bounded number at once, each academy one.
    let _slot = host.compile_slot(tenant.tenant_id()).await?;
    let compiler = runtime.clone();
    let input = bytes.clone();
    let compiled = tokio::task::spawn_blocking(move || compiler.compile(&input))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    match compiled {
        Ok((component, artifact, inspection)) => Ok((component, Some(artifact), inspection)),
        Err(e) => Err(refused(vec![compile_problem(
            &bytes,
            &e,
            runtime.settings().limits.max_memory_mib(),
        )])),
    }
}

/// Validate and store a new plugin version (and the plugin itself when the name is new). The component
/// is compiled here, once; the artifact is kept for every later load.
pub async fn upload(
    host: &PluginHost,
    tenant: &TenantDb,
    actor: &Actor,
    manifest: Manifest,
    bytes: Vec<u8>,
    grant: Option<CapSet>,
) -> ApiResult<Uploaded> {
    let runtime = host.runtime();
    let hash = content_hash(&bytes);
    let (component, artifact, inspection) = compile(host, tenant, bytes.clone()).await?;
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
        return Err(refused(problems));
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
        host.store_artifact(&hash, runtime.engine().key(), &artifact).await?;
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
    host: &PluginHost,
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
    let uploaded = upload(host, tenant, actor, manifest, bytes, Some(requested)).await?;
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
    host.runtime().forget(&uploaded.plugin.id);
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
