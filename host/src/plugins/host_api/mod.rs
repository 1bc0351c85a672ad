//! What a plugin can call: the store's data ([`HostState`]) and the host side of the `aula:plugin`
//! interfaces. Nothing here takes a tenant: the tenant, the plugin and the view (whole academy, or what the
//! triggering user may see) are fixed in the store before the plugin runs, and every query goes through the
//! tenant-bound [`TenantDb`] and the view's filters.

mod config;
mod directory;
mod kv;
mod log;
mod records;
pub mod users;

use super::manifest::{CapSet, Capability};
use super::output::{LogSink, encoded_size};
use crate::config::plugins::Limits;
use crate::db::{Backend, Sql, TenantDb, TenantTx};
use crate::plugins::bindings::types;
use crate::scope::Reach;
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;
use users::{field_types, load_users, org_from_row};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Largest page a plugin may ask for.
pub const MAX_PAGE: u32 = 500;
/// Most orgs or courses one list returns.
pub const MAX_LIST: i64 = 1000;
/// Key-value limits.
pub const KV_MAX_KEY: usize = 256;
/// Largest value in the key-value store.
pub const KV_MAX_VALUE: usize = 64 * 1024;
/// Most keys one plugin may keep.
pub const KV_MAX_KEYS: i64 = 10_000;

/// Whose eyes a plugin call sees through.
#[derive(Debug, Clone)]
pub enum View {
    /// The academy itself (rules, schedules): every row of the tenant.
    Tenant,
    /// A user triggered the call: what `reach` covers, plus the user themselves and the organizations on
    /// their own membership paths.
    User {
        /// The triggering user.
        user_id: String,
        /// What that user reaches with the permission the hook runs under.
        reach: Reach,
    },
    /// Someone not signed in (a portal page): organizations, tags and courses, but no people.
    Anonymous,
    /// A report run for someone: exactly what their reach covers, nothing more (not themselves, not the
    /// organizations above their own), so a report never holds a row outside their scope.
    Reach(Reach),
}

impl View {
    fn everything(&self) -> bool {
        match self {
            View::Tenant => true,
            View::User { reach, .. } | View::Reach(reach) => reach.all,
            View::Anonymous => false,
        }
    }

    /// ` AND (<visible users>)` for `users u`.
    fn push_users(&self, sql: &mut Sql, backend: Backend) {
        match self {
            View::Tenant => {}
            View::Anonymous => {
                sql.push(" AND 1 = 0");
            }
            View::Reach(reach) => reach.push_user_filter(sql, backend),
            View::User { user_id, reach } => {
                if reach.all {
                    return;
                }
                sql.push(" AND (u.id = ").push_bind(user_id.as_str()).push(" OR (1 = 1");
                reach.push_user_filter(sql, backend);
                sql.push("))");
            }
        }
    }

    /// ` AND (<visible orgs>)` for `orgs o`.
    fn push_orgs(&self, sql: &mut Sql) {
        match self {
            View::Tenant | View::Anonymous => {}
            View::Reach(reach) => reach.push_org_filter(sql),
            View::User { user_id, reach } => {
                if reach.all {
                    return;
                }
                sql.push(
                    " AND (EXISTS (SELECT 1 FROM memberships vm JOIN orgs vo ON vo.id = vm.org_id \
                     WHERE vm.tenant_id = $1 AND vm.user_id = ",
                )
                .push_bind(user_id.as_str())
                .push(" AND vo.path LIKE o.path || '%') OR (1 = 1");
                reach.push_org_filter(sql);
                sql.push("))");
            }
        }
    }

    /// ` AND (<visible segments>)` for `segments s`.
    fn push_segments(&self, sql: &mut Sql) {
        if self.everything() {
            return;
        }
        match self {
            View::User { reach, .. } | View::Reach(reach) if !reach.segments.is_empty() => {
                sql.push(" AND s.id IN (");
                for (i, (id, _)) in reach.segments.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.push_bind(id.as_str());
                }
                sql.push(")");
            }
            _ => {
                sql.push(" AND 1 = 0");
            }
        }
    }
}

/// Caps linear memory and tables, and remembers the peak and whether the cap was hit.
pub struct MemoryLimiter {
    memory: usize,
    peak: usize,
    hit: bool,
}

/// Most table elements an instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} MiB reached",
                self.memory / (1024 * 1024)
            )));
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::msg("table limit reached"));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        32
    }
    fn tables(&self) -> usize {
        16
    }
    fn memories(&self) -> usize {
        4
    }
}

/// Why a call was stopped by the host rather than by the plugin's own code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The plugin pulled more data through host calls than its kind allows.
    HostData(usize),
    /// The plugin called an interface whose capability is not granted (any more).
    NotGranted(Capability),
    /// The plugin's files went past its academy's quota, or it made a symbolic link (what was wrong).
    Files(String),
    /// The host failed (database); not the plugin's fault.
    Host(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::HostData(limit) => write!(f, "host data limit exceeded ({} KiB per call)", limit / 1024),
            Stop::NotGranted(cap) => write!(f, "the {cap} capability is not granted"),
            Stop::Files(message) => f.write_str(message),
            Stop::Host(message) => write!(f, "host error: {message}"),
        }
    }
}

impl std::error::Error for Stop {}

/// The per-plugin settings a call reads (effective values: the admin's, else the manifest's defaults).
#[derive(Debug, Default)]
pub struct PluginSettingsView {
    /// Setting key → JSON value.
    pub settings: HashMap<String, String>,
    /// Secret key → value.
    pub secrets: HashMap<String, String>,
}

impl PluginSettingsView {
    /// Build from the manifest schema and the stored values.
    pub fn new(
        manifest: &super::manifest::Manifest,
        settings: &Map<String, Value>,
        secrets: &Map<String, Value>,
    ) -> PluginSettingsView {
        let settings = manifest
            .config
            .keys()
            .filter_map(|key| manifest.effective(settings, key).map(|v| (key.clone(), v.to_string())))
            .collect();
        let secrets = secrets
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect();
        PluginSettingsView { settings, secrets }
    }
}

/// Everything one call's store holds.
pub struct HostState {
    pub(crate) db: TenantDb,
    pub(crate) plugin_id: String,
    pub(crate) view: View,
    pub(crate) granted: CapSet,
    pub(crate) settings: Arc<PluginSettingsView>,
    pub(crate) limits: Limits,
    pub(crate) data_used: usize,
    pub(crate) log: LogSink,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) stop: Option<Stop>,
    pub(crate) meter: super::meter::Meter,
    field_types: Option<HashMap<String, String>>,
}

impl HostState {
    /// The state of a new call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: TenantDb,
        plugin_id: String,
        view: View,
        granted: CapSet,
        settings: Arc<PluginSettingsView>,
        limits: Limits,
        log: LogSink,
        wasi: WasiCtx,
        meter: super::meter::Meter,
    ) -> HostState {
        let limiter = MemoryLimiter {
            memory: limits.memory_bytes(),
            peak: 0,
            hit: false,
        };
        HostState {
            db,
            plugin_id,
            view,
            granted,
            settings,
            limits,
            data_used: 0,
            log,
            limiter,
            wasi,
            table: ResourceTable::new(),
            stop: None,
            meter,
            field_types: None,
        }
    }

    /// WASI's monotonic clock with this call's meter, which charges sleeps to the call's fuel.
    pub(crate) fn metered_clock(&mut self) -> super::meter::MeteredClockView<'_> {
        super::meter::MeteredClockView {
            clocks: wasmtime_wasi::clocks::WasiClocksCtxView {
                ctx: self.wasi.clocks(),
                table: &mut self.table,
            },
            meter: &mut self.meter,
        }
    }

    /// The store's resource limiter.
    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    /// The largest linear memory the instance reached.
    pub(crate) fn peak_memory(&self) -> usize {
        self.limiter.peak
    }

    /// Did the instance try to grow past its memory limit?
    pub(crate) fn memory_limit_hit(&self) -> bool {
        self.limiter.hit
    }

    fn halt(&mut self, stop: Stop) -> wasmtime::Error {
        self.stop = Some(stop.clone());
        wasmtime::Error::new(stop)
    }

    fn require(&mut self, cap: Capability) -> wasmtime::Result<()> {
        if self.granted.has(cap) {
            Ok(())
        } else {
            Err(self.halt(Stop::NotGranted(cap)))
        }
    }

    /// Count data crossing into or out of the plugin against the call's budget.
    fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.data_used = self.data_used.saturating_add(bytes);
        if self.data_used > self.limits.host_data_bytes() {
            let limit = self.limits.host_data_bytes();
            return Err(self.halt(Stop::HostData(limit)));
        }
        Ok(())
    }

    fn charge_value<T: serde::Serialize>(&mut self, value: &T) -> wasmtime::Result<()> {
        let size = encoded_size(value);
        self.charge(size)
    }

    fn db_error(&mut self, e: sqlx::Error) -> wasmtime::Error {
        tracing::error!(plugin = %self.plugin_id, error = %e, "plugin host call failed");
        self.halt(Stop::Host("the database did not answer".into()))
    }

    async fn read(&mut self) -> wasmtime::Result<TenantTx> {
        match self.db.begin_read().await {
            Ok(tx) => Ok(tx),
            Err(e) => Err(self.db_error(e)),
        }
    }

    async fn field_types(&mut self, tx: &mut TenantTx) -> Result<HashMap<String, String>, sqlx::Error> {
        if let Some(types) = &self.field_types {
            return Ok(types.clone());
        }
        let types = field_types(tx).await?;
        self.field_types = Some(types.clone());
        Ok(types)
    }

    async fn users(&mut self, sql: Sql) -> wasmtime::Result<Vec<types::User>> {
        let result = async {
            let mut tx = self.db.begin_read().await?;
            let rows = tx.fetch_all_sql(&sql).await?;
            let types = self.field_types(&mut tx).await?;
            let users = load_users(&mut tx, rows, &types).await;
            tx.commit().await?;
            users
        }
        .await;
        let users = result.map_err(|e| self.db_error(e))?;
        self.charge_value(&users)?;
        Ok(users)
    }

    async fn orgs(&mut self, sql: Sql) -> wasmtime::Result<Vec<types::Org>> {
        let mut tx = self.read().await?;
        let rows = match tx.fetch_all_sql(&sql).await {
            Ok(rows) => rows,
            Err(e) => return Err(self.db_error(e)),
        };
        let orgs = rows.iter().map(org_from_row).collect::<Result<Vec<_>, _>>();
        let orgs = orgs.map_err(|e| self.db_error(e))?;
        self.charge_value(&orgs)?;
        Ok(orgs)
    }

    /// The path of an org the view can see.
    async fn visible_org_path(&mut self, id: &str) -> wasmtime::Result<Option<String>> {
        let mut sql = Sql::tenant("SELECT o.path FROM orgs o WHERE o.tenant_id = $1 AND o.id = ");
        sql.push_bind(id);
        self.view.push_orgs(&mut sql);
        let mut tx = self.read().await?;
        match tx.fetch_optional_sql(&sql).await {
            Ok(row) => Ok(row.and_then(|r| r.try_get::<String, _>(0).ok())),
            Err(e) => Err(self.db_error(e)),
        }
    }

    fn user_select(&self) -> Sql {
        let mut sql = Sql::tenant(
            "SELECT u.id, u.email, u.name, u.locale, u.status, u.external_id, u.manager_id, u.profile \
             FROM users u WHERE u.tenant_id = $1",
        );
        self.view.push_users(&mut sql, self.db.backend());
        sql
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for HostState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

/// A page size a plugin asked for, within bounds.
pub(super) fn page_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_PAGE))
}

impl types::Host for HostState {}
