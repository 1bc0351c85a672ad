//! The one door into plugins for the rest of the host: find the active plugins of a kind, call a hook, and
//! record what the call did (log lines, faults, disabling a plugin after repeated faults, with an audit entry
//! and a notice to the academy's plugin admins written in the same transaction).
//!
//! Typed calls per kind, with the host's own types on both sides, are in [`super::hooks`].

use super::host_api::View;
use super::manifest::{Kind, Manifest};
use super::runtime::{CallStats, HookCall, HookError, HookOutput, Loaded, Runtime, VersionSource};
use super::store::{object, parse_caps};
use crate::audit::{Change, record};
use crate::auth::Actor;
use crate::db::{Db, TenantDb, TenantTx, new_id, now_ms};
use crate::error::ApiError;
use crate::fair::FairShare;
use serde_json::json;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

/// The plugin runtime with the database it records into.
pub struct PluginHost {
    runtime: Arc<Runtime>,
    db: Db,
    /// Compiling a component takes seconds of CPU: half the cores at most, one per academy at once.
    compiles: FairShare,
}

/// What a call did.
pub struct Called {
    /// The hook's answer, or why there is none; the caller applies the hook's failure policy.
    pub result: Result<HookOutput, HookError>,
    /// What the call used.
    pub stats: CallStats,
    /// This call's fault was one too many: the plugin is now disabled (its admins have been told).
    pub disabled: bool,
}

/// Why an active version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The plugin has no active version, or is disabled.
    #[error("{0}")]
    Inactive(String),
    /// The stored version cannot be prepared (its manifest or component is unreadable).
    #[error("{0}")]
    Broken(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> ApiError {
        match e {
            LoadError::Inactive(message) => ApiError::rule("plugin_inactive", None, message),
            LoadError::Broken(message) => ApiError::Internal(anyhow::anyhow!(message)),
            LoadError::Db(e) => e.into(),
        }
    }
}

impl PluginHost {
    /// The door for a runtime and the database it records into.
    pub fn new(runtime: Arc<Runtime>, db: Db) -> PluginHost {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PluginHost {
            runtime,
            db,
            compiles: FairShare::new("plugin compilations", (cores / 2).max(1), 1, Duration::from_secs(30)),
        }
    }

    /// A compilation slot for an academy (see [`super::store::compile`]).
    pub async fn compile_slot(&self, tenant_id: &str) -> Result<crate::fair::Permit, crate::fair::Busy> {
        self.compiles.acquire(tenant_id).await
    }

    /// The runtime (engine, limits, caches).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Load a plugin's active version (from the in-process cache when its revision is current).
    pub async fn load_active(&self, tenant: &TenantDb, plugin_id: &str) -> Result<Arc<Loaded>, LoadError> {
        let runtime = &self.runtime;
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
            .ok_or_else(|| LoadError::Inactive("the plugin has no active version".into()))?;
        let status: String = row.try_get("status")?;
        if status != "active" {
            return Err(LoadError::Inactive(format!(
                "the plugin is {status}; activate it to run it"
            )));
        }
        let revision: i64 = row.try_get("revision")?;
        if let Some(loaded) = runtime.cached(plugin_id, revision) {
            return Ok(loaded);
        }
        let hash: String = row.try_get("hash")?;
        let manifest: Manifest = serde_json::from_str(&row.try_get::<String, _>("manifest")?)
            .map_err(|e| LoadError::Broken(format!("stored manifest unreadable: {e}")))?;
        let component = match runtime.cached_component(&hash) {
            Some(component) => component,
            None => {
                let component = self.component_for(&mut tx, &hash).await?;
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
                .map_err(|e| LoadError::Broken(format!("preparing plugin {plugin_id}: {e:#}")))?,
        );
        runtime.keep(loaded.clone());
        Ok(loaded)
    }

    /// The compiled component of a blob: from the artifact store when this engine compiled it before,
    /// otherwise compiled now from the tenant's blob and stored.
    async fn component_for(&self, tx: &mut TenantTx, hash: &str) -> Result<wasmtime::component::Component, LoadError> {
        let runtime = &self.runtime;
        let db = &self.db;
        let engine_key = runtime.engine().key().to_owned();
        let mut platform = db.platform().begin().await?;
        let artifact: Option<Vec<u8>> =
            sqlx::query("SELECT bytes FROM plugin_artifacts WHERE hash = $1 AND engine = $2")
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
        // Compiling takes seconds of a core: in the academy's compile share, off the async threads.
        let _slot = self
            .compiles
            .acquire(tx.tenant_id())
            .await
            .map_err(|busy| LoadError::Broken(busy.to_string()))?;
        let compiling = runtime.clone();
        let (component, artifact, _) = tokio::task::spawn_blocking(move || compiling.compile(&bytes))
            .await
            .map_err(|e| LoadError::Broken(format!("compiling stored component {hash}: {e}")))?
            .map_err(|e| LoadError::Broken(format!("compiling stored component {hash}: {e:#}")))?;
        self.store_artifact(hash, &engine_key, &artifact).await?;
        Ok(component)
    }

    /// Keep a compiled artifact (the first writer wins; all writers write the same bytes).
    pub async fn store_artifact(&self, hash: &str, engine: &str, artifact: &[u8]) -> Result<(), sqlx::Error> {
        let mut platform = self.db.platform().begin().await?;
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
    pub async fn active(&self, tenant: &TenantDb, kind: Kind) -> Result<Vec<Arc<Loaded>>, sqlx::Error> {
        let runtime = &self.runtime;
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
            match self.load_active(tenant, &id).await {
                Ok(loaded) => out.push(loaded),
                Err(e) => tracing::error!(plugin = %id, error = %e, "an active plugin could not be loaded"),
            }
        }
        Ok(out)
    }

    /// Run a hook and record what happened: log lines, and on a fault the fault (disabling the plugin after
    /// the configured number in a row).
    pub async fn call(&self, tenant: &TenantDb, loaded: &Loaded, view: View, hook: HookCall) -> Called {
        let name = hook.name();
        let (result, stats) = self.runtime.invoke(tenant, loaded, view, hook).await;
        let disabled = match self.record_outcome(tenant, loaded, name, &result, &stats).await {
            Ok(disabled) => disabled,
            Err(e) => {
                tracing::error!(plugin = %loaded.plugin_id, error = %e, "recording a plugin call failed");
                false
            }
        };
        Called {
            result,
            stats,
            disabled,
        }
    }

    /// Persist a call's log lines and its fault, if any.
    async fn record_outcome(
        &self,
        tenant: &TenantDb,
        loaded: &Loaded,
        hook: &str,
        result: &Result<HookOutput, HookError>,
        stats: &CallStats,
    ) -> Result<bool, sqlx::Error> {
        let fault = match result {
            Err(HookError::Fault { kind, message, counted }) => Some((kind.as_str(), message.as_str(), *counted)),
            _ => None,
        };
        if matches!(result, Err(HookError::Busy(_))) {
            // Nothing ran: nothing to record, and the plugin's record stands.
            return Ok(false);
        }
        let had_faults = stats.faults_before > 0 || fault.is_some();
        if stats.log.is_empty() && stats.log_dropped == 0 && fault.is_none() && !had_faults {
            return Ok(false);
        }
        let mut disabled = false;
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
            Some((kind, message, counted)) => {
                tx.query(
                "INSERT INTO plugin_faults (id, tenant_id, plugin_id, version_id, at, hook, kind, message, elapsed_ms, \
                 counted) VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(new_id())
            .bind(loaded.plugin_id.clone())
            .bind(loaded.version_id.clone())
            .bind(now)
            .bind(hook.to_owned())
            .bind(kind)
            .bind(message.to_owned())
            .bind(stats.elapsed.as_millis() as i64)
            .bind(i64::from(counted))
            .execute(tx.conn())
            .await?;
                tx.query("UPDATE plugin_versions SET faults = faults + 1 WHERE tenant_id = $1 AND id = $2")
                    .bind(loaded.version_id.clone())
                    .execute(tx.conn())
                    .await?;
                if !counted {
                    tx.commit().await?;
                    return Ok(false);
                }
                let count: i64 = tx
                    .query(
                        "UPDATE plugins SET consecutive_faults = consecutive_faults + 1 \
                     WHERE tenant_id = $1 AND id = $2 RETURNING consecutive_faults",
                    )
                    .bind(loaded.plugin_id.clone())
                    .fetch_one(tx.conn())
                    .await?
                    .try_get(0)?;
                if count >= i64::from(self.runtime.settings().fault_limit) {
                    disabled = disable(&mut tx, loaded, count, kind, message).await?;
                    self.runtime.forget(&loaded.plugin_id);
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
        tx.commit().await?;
        Ok(disabled)
    }
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
async fn disable(
    tx: &mut TenantTx,
    loaded: &Loaded,
    count: i64,
    kind: &str,
    message: &str,
) -> Result<bool, sqlx::Error> {
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
        return Ok(false);
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
    Ok(true)
}
