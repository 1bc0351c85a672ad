//! What a plugin can call: the store's data ([`HostState`]) and the host side of the `aula:plugin`
//! interfaces. Nothing here takes a tenant: the tenant, the plugin and the view (whole academy, or what the
//! triggering user may see) are fixed in the store before the plugin runs, and every query goes through the
//! tenant-bound [`TenantDb`] and the view's filters.

use super::bindings::{config, directory, kv, log, records, types};
use super::manifest::{CapSet, Capability};
use super::output::{LogSink, encoded_size};
use crate::config::plugins::Limits;
use crate::db::{Backend, Sql, TenantDb, TenantTx, now_ms, rfc3339};
use crate::scope::Reach;
use crate::scope::segment::SegmentDef;
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;
use std::sync::Arc;
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
    /// The host failed (database); not the plugin's fault.
    Host(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::HostData(limit) => write!(f, "host data limit exceeded ({} KiB per call)", limit / 1024),
            Stop::NotGranted(cap) => write!(f, "the {cap} capability is not granted"),
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
            field_types: None,
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

/// The tenant's profile fields and their types.
pub(crate) async fn field_types(tx: &mut TenantTx) -> Result<HashMap<String, String>, sqlx::Error> {
    let rows = tx
        .query("SELECT key, field_type FROM profile_fields WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await?;
    let mut types = HashMap::new();
    for row in rows {
        types.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
    }
    Ok(types)
}

/// Users as plugins see them, from rows of `users u` (with their organizations and tags).
pub(crate) async fn load_users(
    tx: &mut TenantTx,
    rows: Vec<AnyRow>,
    field_types: &HashMap<String, String>,
) -> Result<Vec<types::User>, sqlx::Error> {
    let mut users = Vec::with_capacity(rows.len());
    for row in &rows {
        let profile: String = row.try_get("profile")?;
        let status: String = row.try_get("status")?;
        users.push(types::User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            locale: row.try_get("locale")?,
            status: match status.as_str() {
                "pending" => types::UserStatus::Pending,
                "suspended" => types::UserStatus::Suspended,
                "terminated" => types::UserStatus::Terminated,
                _ => types::UserStatus::Active,
            },
            external_id: row.try_get("external_id")?,
            manager_id: row.try_get("manager_id")?,
            org_ids: Vec::new(),
            tags: Vec::new(),
            profile: profile_fields(&profile, field_types),
        });
    }
    if users.is_empty() {
        return Ok(users);
    }
    let index: HashMap<String, usize> = users.iter().enumerate().map(|(i, u)| (u.id.clone(), i)).collect();
    let mut sql = Sql::tenant("SELECT user_id, org_id FROM memberships WHERE tenant_id = $1 AND user_id IN (");
    sql.push_list(users.iter().map(|u| u.id.as_str()));
    sql.push(") ORDER BY user_id, org_id");
    for row in tx.fetch_all_sql(&sql).await? {
        let user: String = row.try_get(0)?;
        if let Some(&i) = index.get(&user) {
            users[i].org_ids.push(row.try_get(1)?);
        }
    }
    let mut sql = Sql::tenant(
        "SELECT ut.user_id, t.name FROM user_tags ut JOIN tags t ON t.id = ut.tag_id \
         WHERE ut.tenant_id = $1 AND ut.user_id IN (",
    );
    sql.push_list(users.iter().map(|u| u.id.as_str()));
    sql.push(") ORDER BY ut.user_id, t.name");
    for row in tx.fetch_all_sql(&sql).await? {
        let user: String = row.try_get(0)?;
        if let Some(&i) = index.get(&user) {
            users[i].tags.push(row.try_get(1)?);
        }
    }
    Ok(users)
}

fn profile_fields(profile: &str, field_types: &HashMap<String, String>) -> Vec<types::ProfileField> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(profile) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(key, value)| {
            let value = match (field_types.get(&key).map(String::as_str), value) {
                (_, Value::Number(n)) => types::FieldValue::Number(n.as_f64()?),
                (Some("date"), Value::String(s)) => types::FieldValue::Date(s),
                (Some("choice"), Value::String(s)) => types::FieldValue::Choice(s),
                (_, Value::String(s)) => types::FieldValue::Text(s),
                (_, Value::Bool(b)) => types::FieldValue::Text(b.to_string()),
                _ => return None,
            };
            Some(types::ProfileField { key, value })
        })
        .collect()
}

const ORG_SELECT: &str =
    "SELECT o.id, o.parent_id, o.name, o.path, o.external_id, o.member_limit FROM orgs o WHERE o.tenant_id = $1";

fn org_from_row(row: &AnyRow) -> Result<types::Org, sqlx::Error> {
    let path: String = row.try_get("path")?;
    let limit: Option<i64> = row.try_get("member_limit")?;
    Ok(types::Org {
        id: row.try_get("id")?,
        parent_id: row.try_get("parent_id")?,
        name: row.try_get("name")?,
        path: path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        external_id: row.try_get("external_id")?,
        member_limit: limit.and_then(|l| u32::try_from(l).ok()),
    })
}

fn course_from_row(row: &AnyRow) -> Result<types::Course, sqlx::Error> {
    Ok(types::Course {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        title: row.try_get("title")?,
        language: row.try_get("language")?,
    })
}

fn page_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_PAGE))
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.require(Capability::Log)?;
        let level = match level {
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        self.log.line(level, &message);
        Ok(())
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require(Capability::Config)?;
        let value = self.settings.settings.get(&key).cloned();
        self.charge(key.len() + value.as_ref().map_or(0, String::len))?;
        Ok(value)
    }

    async fn secret(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require(Capability::Config)?;
        let value = self.settings.secrets.get(&key).cloned();
        self.charge(key.len() + value.as_ref().map_or(0, String::len))?;
        Ok(value)
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.require(Capability::Kv)?;
        self.charge(key.len())?;
        let mut tx = self.read().await?;
        let row = tx
            .query("SELECT value FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2 AND key = $3")
            .bind(self.plugin_id.clone())
            .bind(key)
            .fetch_optional(tx.conn())
            .await;
        let value = match row {
            Ok(row) => row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose(),
            Err(e) => Err(e),
        };
        let value = value.map_err(|e| self.db_error(e))?;
        self.charge(value.as_ref().map_or(0, Vec::len))?;
        Ok(value)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.require(Capability::Kv)?;
        self.charge(key.len() + value.len())?;
        if key.is_empty() || key.len() > KV_MAX_KEY {
            return Ok(Err(format!("keys are 1–{KV_MAX_KEY} bytes")));
        }
        if value.len() > KV_MAX_VALUE {
            return Ok(Err(format!("values are at most {} KiB", KV_MAX_VALUE / 1024)));
        }
        let result: Result<Result<(), String>, sqlx::Error> = async {
            let mut tx = self.db.begin().await?;
            let exists = tx
                .query("SELECT 1 FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2 AND key = $3")
                .bind(self.plugin_id.clone())
                .bind(key.clone())
                .fetch_optional(tx.conn())
                .await?
                .is_some();
            if !exists {
                let count: i64 = tx
                    .query("SELECT count(*) FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2")
                    .bind(self.plugin_id.clone())
                    .fetch_one(tx.conn())
                    .await?
                    .try_get(0)?;
                if count >= KV_MAX_KEYS {
                    return Ok(Err(format!("the store is full ({KV_MAX_KEYS} keys)")));
                }
            }
            tx.query(
                "INSERT INTO plugin_kv (tenant_id, plugin_id, key, value, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (plugin_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(self.plugin_id.clone())
            .bind(key)
            .bind(value)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
            tx.commit().await?;
            Ok(Ok(()))
        }
        .await;
        result.map_err(|e| self.db_error(e))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.require(Capability::Kv)?;
        self.charge(key.len())?;
        let result = async {
            let mut tx = self.db.begin().await?;
            tx.query("DELETE FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2 AND key = $3")
                .bind(self.plugin_id.clone())
                .bind(key)
                .execute(tx.conn())
                .await?;
            tx.commit().await
        }
        .await;
        result.map_err(|e| self.db_error(e))
    }

    async fn keys(&mut self, prefix: String, limit: u32) -> wasmtime::Result<Vec<String>> {
        self.require(Capability::Kv)?;
        self.charge(prefix.len())?;
        let mut sql = Sql::tenant("SELECT key FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = ");
        sql.push_bind(self.plugin_id.as_str());
        if !prefix.is_empty() {
            sql.push(" AND substr(key, 1, ")
                .push_bind(prefix.chars().count() as i64)
                .push(") = ")
                .push_bind(prefix.as_str());
        }
        sql.push(" ORDER BY key LIMIT ").push_bind(i64::from(limit.min(1000)));
        let mut tx = self.read().await?;
        let keys = match tx.fetch_all_sql(&sql).await {
            Ok(rows) => rows
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e),
        };
        let keys = keys.map_err(|e| self.db_error(e))?;
        self.charge_value(&keys)?;
        Ok(keys)
    }
}

impl directory::Host for HostState {
    async fn get_user(&mut self, id: String) -> wasmtime::Result<Option<types::User>> {
        self.require(Capability::Directory)?;
        self.charge(id.len())?;
        let mut sql = self.user_select();
        sql.push(" AND u.id = ").push_bind(id);
        Ok(self.users(sql).await?.pop())
    }

    async fn find_user_by_email(&mut self, email: String) -> wasmtime::Result<Option<types::User>> {
        self.require(Capability::Directory)?;
        self.charge(email.len())?;
        let mut sql = self.user_select();
        sql.push(" AND lower(u.email) = ").push_bind(email.to_lowercase());
        Ok(self.users(sql).await?.pop())
    }

    async fn list_users(&mut self, query: directory::UserQuery) -> wasmtime::Result<directory::UserPage> {
        self.require(Capability::Directory)?;
        self.charge_value(&query)?;
        let limit = page_limit(query.limit);
        let mut sql = self.user_select();
        if let Some(org) = &query.org_id {
            let Some(path) = self.visible_org_path(org).await? else {
                return Ok(directory::UserPage {
                    users: Vec::new(),
                    next: None,
                });
            };
            sql.push(
                " AND EXISTS (SELECT 1 FROM memberships fm JOIN orgs fo ON fo.id = fm.org_id \
                 WHERE fm.tenant_id = $1 AND fm.user_id = u.id AND fo.path LIKE ",
            )
            .push_bind(format!("{path}%"))
            .push(")");
        }
        if let Some(tag) = &query.tag {
            sql.push(
                " AND EXISTS (SELECT 1 FROM user_tags ft JOIN tags t ON t.id = ft.tag_id \
                 WHERE ft.tenant_id = $1 AND ft.user_id = u.id AND lower(t.name) = ",
            )
            .push_bind(tag.to_lowercase())
            .push(")");
        }
        if let Some(segment) = &query.segment_id {
            let Some(def) = self.visible_segment(segment).await? else {
                return Ok(directory::UserPage {
                    users: Vec::new(),
                    next: None,
                });
            };
            sql.push(" AND (");
            def.push_condition(&mut sql, self.db.backend());
            sql.push(")");
        }
        if let Some(search) = query.search.as_deref().filter(|s| !s.is_empty()) {
            let like = format!("%{}%", search.to_lowercase());
            sql.push(" AND (lower(u.email) LIKE ")
                .push_bind(like.clone())
                .push(" OR lower(u.name) LIKE ")
                .push_bind(like)
                .push(")");
        }
        if let Some(cursor) = &query.cursor {
            sql.push(" AND u.id > ").push_bind(cursor.as_str());
        }
        sql.push(" ORDER BY u.id LIMIT ").push_bind(limit + 1);
        let mut users = self.users(sql).await?;
        let next = if users.len() as i64 > limit {
            users.truncate(limit as usize);
            users.last().map(|u| u.id.clone())
        } else {
            None
        };
        Ok(directory::UserPage { users, next })
    }

    async fn get_org(&mut self, id: String) -> wasmtime::Result<Option<types::Org>> {
        self.require(Capability::Directory)?;
        self.charge(id.len())?;
        let mut sql = Sql::tenant(ORG_SELECT);
        sql.push(" AND o.id = ").push_bind(id);
        self.view.push_orgs(&mut sql);
        Ok(self.orgs(sql).await?.pop())
    }

    async fn list_orgs(&mut self, parent: Option<String>) -> wasmtime::Result<Vec<types::Org>> {
        self.require(Capability::Directory)?;
        self.charge(parent.as_ref().map_or(0, String::len))?;
        let mut sql = Sql::tenant(ORG_SELECT);
        match (parent, &self.view) {
            (Some(parent), _) => {
                sql.push(" AND o.parent_id = ").push_bind(parent);
            }
            // A report run for a manager starts at the top of what they reach: the roots of their subtrees.
            (None, View::Reach(reach)) if !reach.all => {
                let roots: Vec<&String> = reach
                    .org_ids
                    .iter()
                    .zip(&reach.org_paths)
                    .filter(|(_, path)| {
                        !reach
                            .org_paths
                            .iter()
                            .any(|p| p != *path && path.starts_with(p.as_str()))
                    })
                    .map(|(id, _)| id)
                    .collect();
                if roots.is_empty() {
                    sql.push(" AND 1 = 0");
                } else {
                    sql.push(" AND o.id IN (");
                    for (i, id) in roots.into_iter().enumerate() {
                        if i > 0 {
                            sql.push(", ");
                        }
                        sql.push_bind(id.clone());
                    }
                    sql.push(")");
                }
            }
            (None, _) => {
                sql.push(" AND o.parent_id IS NULL");
            }
        }
        self.view.push_orgs(&mut sql);
        sql.push(" ORDER BY lower(o.name), o.id LIMIT ").push_bind(MAX_LIST);
        self.orgs(sql).await
    }

    async fn find_orgs(&mut self, key: String) -> wasmtime::Result<Vec<types::Org>> {
        self.require(Capability::Directory)?;
        self.charge(key.len())?;
        let mut sql = Sql::tenant(ORG_SELECT);
        let key = key.to_lowercase();
        sql.push(" AND (lower(o.name) = ")
            .push_bind(key.as_str())
            .push(" OR lower(o.external_id) = ")
            .push_bind(key.as_str())
            .push(")");
        self.view.push_orgs(&mut sql);
        sql.push(" ORDER BY o.path LIMIT ").push_bind(MAX_LIST);
        self.orgs(sql).await
    }

    async fn list_tags(&mut self) -> wasmtime::Result<Vec<types::Tag>> {
        self.require(Capability::Directory)?;
        let mut tx = self.read().await?;
        let rows = tx
            .query("SELECT id, name FROM tags WHERE tenant_id = $1 ORDER BY lower(name) LIMIT 10000")
            .fetch_all(tx.conn())
            .await;
        let tags = match rows {
            Ok(rows) => rows
                .iter()
                .map(|r| {
                    Ok(types::Tag {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>(),
            Err(e) => Err(e),
        };
        let tags = tags.map_err(|e| self.db_error(e))?;
        self.charge_value(&tags)?;
        Ok(tags)
    }

    async fn list_segments(&mut self) -> wasmtime::Result<Vec<types::Segment>> {
        self.require(Capability::Directory)?;
        let mut sql = Sql::tenant("SELECT s.id, s.name FROM segments s WHERE s.tenant_id = $1");
        self.view.push_segments(&mut sql);
        sql.push(" ORDER BY lower(s.name) LIMIT 10000");
        let mut tx = self.read().await?;
        let segments = match tx.fetch_all_sql(&sql).await {
            Ok(rows) => rows
                .iter()
                .map(|r| {
                    Ok(types::Segment {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>(),
            Err(e) => Err(e),
        };
        let segments = segments.map_err(|e| self.db_error(e))?;
        self.charge_value(&segments)?;
        Ok(segments)
    }

    async fn in_segment(&mut self, user_id: String, segment_id: String) -> wasmtime::Result<bool> {
        self.require(Capability::Directory)?;
        self.charge(user_id.len() + segment_id.len())?;
        let Some(def) = self.visible_segment(&segment_id).await? else {
            return Ok(false);
        };
        let mut sql = Sql::tenant("SELECT 1 FROM users u WHERE u.tenant_id = $1 AND u.id = ");
        sql.push_bind(user_id);
        self.view.push_users(&mut sql, self.db.backend());
        sql.push(" AND (");
        def.push_condition(&mut sql, self.db.backend());
        sql.push(")");
        let mut tx = self.read().await?;
        match tx.fetch_optional_sql(&sql).await {
            Ok(row) => Ok(row.is_some()),
            Err(e) => Err(self.db_error(e)),
        }
    }

    async fn get_course(&mut self, id: String) -> wasmtime::Result<Option<types::Course>> {
        self.require(Capability::Directory)?;
        self.charge(id.len())?;
        let mut tx = self.read().await?;
        let row = tx
            .query("SELECT id, code, title, language FROM courses WHERE tenant_id = $1 AND id = $2")
            .bind(id)
            .fetch_optional(tx.conn())
            .await;
        let course = match row {
            Ok(row) => row.as_ref().map(course_from_row).transpose(),
            Err(e) => Err(e),
        };
        let course = course.map_err(|e| self.db_error(e))?;
        self.charge_value(&course)?;
        Ok(course)
    }

    async fn list_courses(&mut self) -> wasmtime::Result<Vec<types::Course>> {
        self.require(Capability::Directory)?;
        let mut tx = self.read().await?;
        let rows = tx
            .query("SELECT id, code, title, language FROM courses WHERE tenant_id = $1 ORDER BY lower(code) LIMIT $2")
            .bind(MAX_LIST)
            .fetch_all(tx.conn())
            .await;
        let courses = match rows {
            Ok(rows) => rows.iter().map(course_from_row).collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e),
        };
        let courses = courses.map_err(|e| self.db_error(e))?;
        self.charge_value(&courses)?;
        Ok(courses)
    }
}

impl HostState {
    async fn visible_segment(&mut self, id: &str) -> wasmtime::Result<Option<SegmentDef>> {
        let mut sql = Sql::tenant("SELECT s.definition FROM segments s WHERE s.tenant_id = $1 AND s.id = ");
        sql.push_bind(id);
        self.view.push_segments(&mut sql);
        let mut tx = self.read().await?;
        match tx.fetch_optional_sql(&sql).await {
            Ok(row) => Ok(row
                .and_then(|r| r.try_get::<String, _>(0).ok())
                .map(|text| SegmentDef::parse_stored(&text))),
            Err(e) => Err(self.db_error(e)),
        }
    }
}

impl records::Host for HostState {
    async fn list_enrollments(&mut self, query: records::EnrollmentQuery) -> wasmtime::Result<records::EnrollmentPage> {
        self.require(Capability::Records)?;
        self.charge_value(&query)?;
        let limit = page_limit(query.limit);
        let mut sql = Sql::tenant(
            "SELECT e.user_id, e.course_id, e.status, e.due_at, e.completed_at, e.progress \
             FROM enrollments e WHERE e.tenant_id = $1 \
             AND EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = $1 AND u.id = e.user_id",
        );
        self.view.push_users(&mut sql, self.db.backend());
        sql.push(")");
        if let Some(user) = &query.user_id {
            sql.push(" AND e.user_id = ").push_bind(user.as_str());
        }
        if let Some(course) = &query.course_id {
            sql.push(" AND e.course_id = ").push_bind(course.as_str());
        }
        if let Some(org) = &query.org_id {
            let Some(path) = self.visible_org_path(org).await? else {
                return Ok(records::EnrollmentPage {
                    enrollments: Vec::new(),
                    next: None,
                });
            };
            sql.push(
                " AND EXISTS (SELECT 1 FROM memberships fm JOIN orgs fo ON fo.id = fm.org_id \
                 WHERE fm.tenant_id = $1 AND fm.user_id = e.user_id AND fo.path LIKE ",
            )
            .push_bind(format!("{path}%"))
            .push(")");
        }
        if let Some((user, course)) = query.cursor.as_deref().and_then(|c| c.split_once(' ')) {
            sql.push(" AND (e.user_id > ")
                .push_bind(user)
                .push(" OR (e.user_id = ")
                .push_bind(user)
                .push(" AND e.course_id > ")
                .push_bind(course)
                .push("))");
        }
        sql.push(" ORDER BY e.user_id, e.course_id LIMIT ").push_bind(limit + 1);
        let mut tx = self.read().await?;
        let rows = match tx.fetch_all_sql(&sql).await {
            Ok(rows) => rows,
            Err(e) => return Err(self.db_error(e)),
        };
        let enrollments = rows
            .iter()
            .map(|r| {
                let status: String = r.try_get(2)?;
                let due: Option<i64> = r.try_get(3)?;
                let completed: Option<i64> = r.try_get(4)?;
                let progress: i64 = r.try_get(5)?;
                Ok(types::Enrollment {
                    user_id: r.try_get(0)?,
                    course_id: r.try_get(1)?,
                    status: match status.as_str() {
                        "in_progress" => types::EnrollmentStatus::InProgress,
                        "completed" => types::EnrollmentStatus::Completed,
                        "dropped" => types::EnrollmentStatus::Dropped,
                        _ => types::EnrollmentStatus::Enrolled,
                    },
                    due_at: due.map(rfc3339),
                    completed_at: completed.map(rfc3339),
                    progress_percent: progress.clamp(0, 100) as u8,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>();
        let mut enrollments = enrollments.map_err(|e| self.db_error(e))?;
        let next = if enrollments.len() as i64 > limit {
            enrollments.truncate(limit as usize);
            enrollments.last().map(|e| format!("{} {}", e.user_id, e.course_id))
        } else {
            None
        };
        self.charge_value(&enrollments)?;
        Ok(records::EnrollmentPage { enrollments, next })
    }
}
