//! Tenant lifecycle: create, change, suspend, domains, export, import, clone and delete — the operator's work,
//! shared by the CLI and the platform API.
//!
//! Each step is one transaction, so an academy is never half-created, half-imported or half-deleted. The
//! writes run in a transaction bound to the affected tenant ([`crate::db::TenantTx`]): on PostgreSQL the
//! row-level security policies then confine even the operator's bulk changes to that one tenant, and the
//! audit entry is written in the same transaction as the change. Only the look-up of a tenant by slug and the
//! list of tenants use platform rights.
//!
//! What export, import, clone and delete walk over is the table registry in [`tables`].

mod accounts;
mod archive;
pub mod snapshot;
pub mod tables;

pub use accounts::{
    LoginLimits, NewAccount, OperatorToken, create_api_token, create_operator, create_user, operator_login,
};
pub use archive::{FORMAT, FORMAT_VERSION, MAX_ARCHIVE_BYTES};
pub use tables::mismatches as registry_mismatches;

use crate::audit::{Change, record};
use crate::auth::Actor;
use crate::db::{Db, TenantTx, new_id, now_ms, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::fields::text;
use crate::tenancy::{Tenant, TenantSettings, valid_domain, valid_slug};
use serde::{Deserialize, Serialize};
use serde_json::json;
use snapshot::RestoreAudit;
use sqlx::Row;

/// Whether an academy is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Open to its users.
    Active,
    /// Closed: nobody signs in, nothing is deleted.
    Suspended,
}

impl TenantStatus {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
}

/// A change to a tenant; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    /// New display name.
    pub name: Option<String>,
    /// New status.
    pub status: Option<TenantStatus>,
    /// New settings (replaced as a whole).
    pub settings: Option<TenantSettings>,
}

/// Slugs that would shadow a platform path or a conventional host name.
const RESERVED_SLUGS: &[&str] = &["www", "api", "app", "admin", "platform", "import", "static", "assets"];

/// Check a slug for a new tenant; returns it trimmed and lower-cased.
pub fn check_slug(field: &str, slug: &str) -> ApiResult<String> {
    let slug = slug.trim().to_ascii_lowercase();
    if !valid_slug(&slug) {
        return Err(ApiError::invalid(
            field,
            "must be 2–40 lower-case letters, digits or hyphens, not starting or ending with a hyphen",
        ));
    }
    if RESERVED_SLUGS.contains(&slug.as_str()) {
        return Err(ApiError::invalid(
            field,
            format!("{slug:?} is reserved; choose another slug"),
        ));
    }
    Ok(slug)
}

/// Check a custom domain; returns it trimmed, lower-cased, without a trailing dot.
pub fn check_domain(field: &str, domain: &str) -> ApiResult<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if !valid_domain(&domain) {
        return Err(ApiError::invalid(
            field,
            "must be a host name such as learn.example.com",
        ));
    }
    Ok(domain)
}

/// Refuse a custom domain inside the base domain: `<slug>.<base>` names are resolved as slugs, so such a
/// mapping would never be used (and the base domain itself is the platform host).
pub fn check_domain_outside_base(field: &str, domain: &str, base_domain: &str) -> ApiResult<()> {
    let base = base_domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if !base.is_empty() && (domain == base || domain.ends_with(&format!(".{base}"))) {
        return Err(ApiError::invalid(
            field,
            format!("{domain} lies inside the base domain {base}; academies are reached there by their slug"),
        ));
    }
    Ok(())
}

fn check_name(field: &str, name: &str) -> ApiResult<String> {
    Ok(text(field, name, 200)?)
}

/// Every tenant, by slug.
pub async fn list_tenants(db: &Db) -> ApiResult<Vec<Tenant>> {
    let mut tx = db.platform().begin().await?;
    let tenants = crate::tenancy::list(&mut tx).await?;
    tx.commit().await?;
    Ok(tenants)
}

/// One tenant by slug, or 404.
pub async fn get_tenant(db: &Db, slug: &str) -> ApiResult<Tenant> {
    let id = tenant_id(db, slug).await?;
    let mut tx = db.tenant(&id).begin_read().await?;
    let tenant = load_tenant(&mut tx).await?;
    tx.commit().await?;
    Ok(tenant)
}

/// Create an academy with the built-in roles and its custom domains.
pub async fn create_tenant(
    db: &Db,
    slug: &str,
    name: &str,
    domains: &[String],
    settings: TenantSettings,
    actor: &Actor,
) -> ApiResult<Tenant> {
    create_tenant_with_admin(db, slug, name, domains, settings, None, actor).await
}

/// Create an academy and, in the same transaction, its first admin (tenant-wide `tenant_admin`).
pub async fn create_tenant_with_admin(
    db: &Db,
    slug: &str,
    name: &str,
    domains: &[String],
    settings: TenantSettings,
    admin: Option<&NewAccount>,
    actor: &Actor,
) -> ApiResult<Tenant> {
    let slug = check_slug("slug", slug)?;
    let name = check_name("name", name)?;
    let domains = check_domains(domains)?;
    settings.validate()?;
    // Hash before the transaction: argon2 is slow on purpose, and nothing should wait on it holding a lock.
    let admin = match admin {
        Some(a) => Some(a.prepare().await?),
        None => None,
    };
    let tenant_id = new_id();
    let mut tx = db.tenant(&tenant_id).begin_operator().await?;
    insert_tenant_row(&mut tx, &slug, &name, "active", &settings).await?;
    insert_builtin_roles(&mut tx).await?;
    for domain in &domains {
        insert_domain(&mut tx, "domains", domain).await?;
    }
    let tenant = load_tenant(&mut tx).await?;
    record(
        &mut tx,
        actor,
        Change::created("tenant.create", "tenant", &tenant_id, json!(tenant)),
    )
    .await?;
    if let Some(admin) = admin {
        accounts::insert_user(&mut tx, &admin, Some("tenant_admin"), actor).await?;
    }
    tx.commit().await?;
    Ok(tenant)
}

fn check_domains(domains: &[String]) -> ApiResult<Vec<String>> {
    if domains.len() > 20 {
        return Err(ApiError::invalid("domains", "at most 20 domains per academy"));
    }
    let mut out: Vec<String> = Vec::with_capacity(domains.len());
    for (i, d) in domains.iter().enumerate() {
        let d = check_domain(&format!("domains[{i}]"), d)?;
        if out.contains(&d) {
            return Err(ApiError::invalid(
                format!("domains[{i}]"),
                format!("{d} is listed twice"),
            ));
        }
        out.push(d);
    }
    Ok(out)
}

/// Change name, status or settings.
pub async fn update_tenant(db: &Db, slug: &str, change: TenantChange, actor: &Actor) -> ApiResult<Tenant> {
    let name = change.name.as_deref().map(|n| check_name("name", n)).transpose()?;
    if let Some(settings) = &change.settings {
        settings.validate()?;
    }
    let id = tenant_id(db, slug).await?;
    let mut tx = db.tenant(&id).begin_operator().await?;
    hold_tenant(&mut tx, false).await?;
    let before = load_tenant(&mut tx).await?;
    let mut after = before.clone();
    if let Some(name) = name {
        after.name = name;
    }
    if let Some(status) = change.status {
        after.status = status.as_str().to_owned();
    }
    if let Some(settings) = change.settings {
        after.settings = settings;
    }
    if after.name == before.name && after.status == before.status && after.settings == before.settings {
        // Nothing changes, so there is nothing to record.
        tx.commit().await?;
        return Ok(before);
    }
    tx.query("UPDATE tenants SET name = $2, status = $3, settings = $4, updated_at = $5 WHERE id = $1")
        .bind(after.name.clone())
        .bind(after.status.clone())
        .bind(settings_json(&after.settings))
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    let action = match (before.status.as_str(), after.status.as_str()) {
        ("active", "suspended") => "tenant.suspend",
        ("suspended", "active") => "tenant.resume",
        _ => "tenant.update",
    };
    record(
        &mut tx,
        actor,
        Change {
            action,
            target_type: "tenant",
            target_id: Some(&id),
            before: Some(json!(before)),
            after: Some(json!(after)),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Suspend or resume an academy. Setting the status it already has changes nothing.
pub async fn set_status(db: &Db, slug: &str, status: TenantStatus, actor: &Actor) -> ApiResult<Tenant> {
    update_tenant(
        db,
        slug,
        TenantChange {
            status: Some(status),
            ..TenantChange::default()
        },
        actor,
    )
    .await
}

/// Map a custom domain to an academy.
pub async fn add_domain(db: &Db, slug: &str, domain: &str, actor: &Actor) -> ApiResult<Tenant> {
    let domain = check_domain("domain", domain)?;
    let id = tenant_id(db, slug).await?;
    let mut tx = db.tenant(&id).begin_operator().await?;
    hold_tenant(&mut tx, false).await?;
    let before = load_tenant(&mut tx).await?;
    if before.domains.contains(&domain) {
        return Err(ApiError::duplicate(
            "domain",
            format!("{domain} is already a domain of this academy"),
        ));
    }
    if before.domains.len() >= 20 {
        return Err(ApiError::rule(
            "too_many_domains",
            Some("domain"),
            "an academy has at most 20 domains",
        ));
    }
    insert_domain(&mut tx, "domain", &domain).await?;
    let after = load_tenant(&mut tx).await?;
    record(
        &mut tx,
        actor,
        Change::updated(
            "tenant.domain_add",
            "tenant",
            &id,
            json!({ "domains": before.domains }),
            json!({ "domains": after.domains, "added": domain }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Unmap a custom domain.
pub async fn remove_domain(db: &Db, slug: &str, domain: &str, actor: &Actor) -> ApiResult<Tenant> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let id = tenant_id(db, slug).await?;
    let mut tx = db.tenant(&id).begin_operator().await?;
    hold_tenant(&mut tx, false).await?;
    let before = load_tenant(&mut tx).await?;
    let removed = tx
        .query("DELETE FROM tenant_domains WHERE tenant_id = $1 AND domain = $2")
        .bind(domain.clone())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(ApiError::NotFound { what: "domain" });
    }
    let after = load_tenant(&mut tx).await?;
    record(
        &mut tx,
        actor,
        Change::updated(
            "tenant.domain_remove",
            "tenant",
            &id,
            json!({ "domains": before.domains }),
            json!({ "domains": after.domains, "removed": domain }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Delete an academy and every row it owns, children first, in one transaction, and answer its id (the
/// caller removes what it kept outside the database: its plugins' files). Nothing is audited: the audit
/// log goes with the tenant (the deletion is logged by the process).
pub async fn delete_tenant(db: &Db, slug: &str) -> ApiResult<String> {
    let id = tenant_id(db, slug).await?;
    let mut tx = db.tenant(&id).begin_operator().await?;
    hold_tenant(&mut tx, true).await?;
    let tenant = load_tenant(&mut tx).await?;
    for table in tables::TABLES.iter().rev() {
        tx.query(&format!("DELETE FROM {} WHERE tenant_id = $1", table.name))
            .execute(tx.conn())
            .await?;
    }
    tx.query("DELETE FROM tenants WHERE id = $1").execute(tx.conn()).await?;
    tx.commit().await?;
    tracing::info!(tenant = %tenant.slug, tenant_id = %tenant.id, "tenant deleted");
    Ok(id)
}

/// Export an academy as one self-contained `tar.gz` (the format is described in `lifecycle/archive.rs`). Credentials are left
/// out. The export itself is recorded in the academy's audit log.
pub async fn export_tenant(db: &Db, slug: &str, actor: &Actor) -> ApiResult<Vec<u8>> {
    let id = tenant_id(db, slug).await?;
    // One snapshot, so every table comes from the same moment.
    let mut tx = db.tenant(&id).begin_snapshot().await?;
    let snap = snapshot::read(&mut tx, |t| t.export).await?;
    let schema_version = schema_version(&mut tx).await?;
    tx.commit().await?;
    let counts = snapshot::counts(&snap);
    let exported_at = now_ms();
    let bytes = tokio::task::spawn_blocking(move || archive::write(&snap, schema_version, exported_at))
        .await
        .map_err(anyhow::Error::from)??;
    let mut tx = db.tenant(&id).begin_operator().await?;
    hold_tenant(&mut tx, false).await?;
    record(
        &mut tx,
        actor,
        Change::created(
            "tenant.export",
            "tenant",
            &id,
            json!({ "rows": counts, "bytes": bytes.len() }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(bytes)
}

/// Import an archive made by [`export_tenant`] as a new academy `new_slug` (named `new_name`, or as in the
/// archive), with new ids for every row. Bad archives are refused with the file and row named, and change
/// nothing.
pub async fn import_tenant(
    db: &Db,
    archive_bytes: &[u8],
    new_slug: &str,
    new_name: Option<&str>,
    actor: &Actor,
) -> ApiResult<Tenant> {
    let slug = check_slug("slug", new_slug)?;
    let name = new_name.map(|n| check_name("name", n)).transpose()?;
    if archive_bytes.len() > MAX_ARCHIVE_BYTES {
        return Err(ApiError::TooLarge);
    }
    let owned = archive_bytes.to_vec();
    let unpacked = tokio::task::spawn_blocking(move || archive::read(&owned))
        .await
        .map_err(anyhow::Error::from)??;
    let mut ptx = db.platform().begin().await?;
    let ours = schema_version_platform(&mut ptx).await?;
    ptx.commit().await?;
    if unpacked.schema_version > ours {
        return Err(ApiError::rule(
            "unsupported_archive",
            Some("manifest.json.schema_version"),
            format!(
                "the archive was made by a newer Aula (schema version {}; this host has {ours}); upgrade first",
                unpacked.schema_version
            ),
        ));
    }
    let snap = unpacked.snapshot;
    let name = match name {
        Some(n) => n,
        None => check_name("manifest.json.tenant.name", &snap.tenant.name)?,
    };
    let status = snap.tenant.status.clone();
    let audit = RestoreAudit {
        action: "tenant.import",
        details: json!({
            "source": { "slug": snap.tenant.slug, "exported_at": unpacked.exported_at }
        }),
    };
    snapshot::restore(db, &snap, &slug, &name, &status, actor, audit).await
}

/// Copy an academy's structure and configuration (organizations, tags, profile fields, segments, roles and
/// settings — no people, grants, domains or history) into a new academy.
pub async fn clone_tenant(
    db: &Db,
    from_slug: &str,
    new_slug: &str,
    new_name: &str,
    actor: &Actor,
) -> ApiResult<Tenant> {
    let slug = check_slug("slug", new_slug)?;
    let name = check_name("name", new_name)?;
    let id = tenant_id(db, from_slug).await?;
    let mut tx = db.tenant(&id).begin_snapshot().await?;
    let snap = snapshot::read(&mut tx, |t| t.clone).await?;
    tx.commit().await?;
    let audit = RestoreAudit {
        action: "tenant.clone",
        // The source is named by slug only: no id of another tenant is written into this one.
        details: json!({ "cloned_from": { "slug": snap.tenant.slug } }),
    };
    snapshot::restore(db, &snap, &slug, &name, TenantStatus::Active.as_str(), actor, audit).await
}

/// The id of the tenant with this slug, or 404.
async fn tenant_id(db: &Db, slug: &str) -> ApiResult<String> {
    let mut tx = db.platform().begin().await?;
    let id: Option<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE lower(slug) = lower($1)")
        .bind(slug.trim().to_owned())
        .fetch_optional(tx.conn())
        .await?;
    tx.commit().await?;
    id.ok_or(ApiError::NotFound { what: "tenant" })
}

/// The tenant of this transaction, or 404 when it no longer exists (deleted since it was looked up).
/// Hold the academy's row to the end of the transaction (on PostgreSQL; SQLite runs one write at a time
/// anyway): a deletion holds it `alone`, other operator changes share it. So no change lands between a
/// deletion's steps (which would leave a row pointing at a deleted academy): it waits for the deletion, then
/// finds the academy gone (404).
async fn hold_tenant(tx: &mut TenantTx, alone: bool) -> ApiResult<()> {
    let lock = match (tx.backend(), alone) {
        (crate::db::Backend::Postgres, true) => " FOR UPDATE",
        (crate::db::Backend::Postgres, false) => " FOR SHARE",
        (crate::db::Backend::Sqlite, _) => "",
    };
    tx.query(&format!("SELECT id FROM tenants WHERE id = $1{lock}"))
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "tenant" })?;
    Ok(())
}

pub(crate) async fn load_tenant(tx: &mut TenantTx) -> ApiResult<Tenant> {
    let row = tx
        .query("SELECT id, slug, name, status, settings, created_at FROM tenants WHERE id = $1")
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "tenant" })?;
    let domains: Vec<String> = tx
        .query("SELECT domain FROM tenant_domains WHERE tenant_id = $1 ORDER BY domain")
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    let settings: String = row.try_get("settings")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        domains,
        created_at: crate::db::rfc3339(row.try_get("created_at")?),
    })
}

fn settings_json(settings: &TenantSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".into())
}

/// Insert the tenants row of this transaction's tenant. A taken slug is a 409 on `slug`.
pub(crate) async fn insert_tenant_row(
    tx: &mut TenantTx,
    slug: &str,
    name: &str,
    status: &str,
    settings: &TenantSettings,
) -> ApiResult<()> {
    let taken = || ApiError::duplicate("slug", format!("an academy with the slug {slug} already exists"));
    let exists = sqlx::query("SELECT 1 FROM tenants WHERE lower(slug) = lower($1)")
        .bind(slug.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    if exists.is_some() {
        return Err(taken());
    }
    let now = now_ms();
    let inserted = tx
        .query(
            "INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(slug.to_owned())
        .bind(name.to_owned())
        .bind(status.to_owned())
        .bind(settings_json(settings))
        .bind(now)
        .execute(tx.conn())
        .await;
    match inserted {
        Ok(_) => Ok(()),
        // Another replica took the slug between the check and the insert.
        Err(e) if unique_violation(&e).is_some() => Err(taken()),
        Err(e) => Err(e.into()),
    }
}

/// The built-in roles every new academy starts with (an import or clone brings its own instead).
async fn insert_builtin_roles(tx: &mut TenantTx) -> ApiResult<()> {
    let now = now_ms();
    for role in crate::scope::BUILTIN_ROLES {
        let perms: Vec<&str> = role.permissions.iter().map(|p| p.as_str()).collect();
        tx.query(
            "INSERT INTO roles (id, tenant_id, key, name, permissions, builtin, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, 1, $6, $6)",
        )
        .bind(new_id())
        .bind(role.key)
        .bind(role.name)
        .bind(serde_json::to_string(&perms).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// Map a domain to this transaction's tenant. A domain of another tenant is a 409 on `field`.
async fn insert_domain(tx: &mut TenantTx, field: &str, domain: &str) -> ApiResult<()> {
    let inserted = tx
        .query("INSERT INTO tenant_domains (domain, tenant_id, created_at) VALUES ($2, $1, $3)")
        .bind(domain.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if unique_violation(&e).is_some() => Err(ApiError::duplicate(
            field,
            format!("the domain {domain} already belongs to an academy"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// How many migrations this database has run: archives record it, and an archive from a newer schema is
/// refused rather than half-understood.
async fn schema_version(tx: &mut TenantTx) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(SCHEMA_VERSION_SQL).fetch_one(tx.conn()).await
}

async fn schema_version_platform(tx: &mut crate::db::PlatformTx) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(SCHEMA_VERSION_SQL).fetch_one(tx.conn()).await
}

const SCHEMA_VERSION_SQL: &str = "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations";

#[cfg(test)]
mod tests;
