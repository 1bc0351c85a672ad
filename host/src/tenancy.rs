//! Tenants: what they are, and which one a request is for.
//!
//! The tenant comes from the request's host: a custom domain mapped to the tenant, or
//! `<slug>.<base domain>`. The base domain itself (and any host that maps to nothing) is the platform host,
//! where only operator endpoints and API tokens (which carry their tenant) work.

use crate::cache::TtlCache;
use crate::db::{Db, PlatformTx, now_ms};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::time::Duration;

/// Settings a tenant admin changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// Locale used when neither the learner nor the browser says otherwise.
    #[schemars(length(max = 20), regex(pattern = crate::fields::pattern::LOCALE))]
    pub default_locale: String,
    /// Locales learners may pick.
    #[schemars(length(min = 1, max = 50), inner(length(max = 20), regex(pattern = crate::fields::pattern::LOCALE)))]
    pub allowed_locales: Vec<String>,
    /// Who may create their own account (`POST /api/v1/signup`):
    /// - `closed`: nobody; accounts come from admins and imports, and invitations are refused too;
    /// - `invitation`: only with a valid invitation link, which places them in its organization;
    /// - `domain`: with an invitation, or with an e-mail address whose domain an organization claimed
    ///   (they land in that organization);
    /// - `open`: anyone; a claimed domain still places them in its organization, others land in none.
    #[schemars(extend("enum" = ["closed", "open", "invitation", "domain"]))]
    pub signup: String,
    /// Whether every sign-up waits for an admin's approval (as `pending`) before the account can be used.
    pub signup_requires_approval: bool,
    /// Licence seats: how many users may ever sign in (a seat is taken at a user's first sign-in); no limit
    /// when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000000))]
    pub seat_limit: Option<u32>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            default_locale: "en".into(),
            allowed_locales: vec!["en".into()],
            signup: "closed".into(),
            signup_requires_approval: false,
            seat_limit: None,
        }
    }
}

impl TenantSettings {
    /// Check the settings, naming the offending field.
    pub fn validate(&self) -> Result<(), crate::error::ApiError> {
        use crate::error::ApiError;
        if !valid_locale(&self.default_locale) {
            return Err(ApiError::invalid(
                "settings.default_locale",
                "must be a language tag such as en or de-CH",
            ));
        }
        if self.allowed_locales.is_empty() || self.allowed_locales.len() > 50 {
            return Err(ApiError::invalid(
                "settings.allowed_locales",
                "must list between 1 and 50 locales",
            ));
        }
        if let Some(bad) = self.allowed_locales.iter().find(|l| !valid_locale(l)) {
            return Err(ApiError::invalid(
                "settings.allowed_locales",
                format!("{bad:?} is not a language tag"),
            ));
        }
        if !self.allowed_locales.contains(&self.default_locale) {
            return Err(ApiError::invalid(
                "settings.default_locale",
                "must be one of allowed_locales",
            ));
        }
        if !["closed", "open", "invitation", "domain"].contains(&self.signup.as_str()) {
            return Err(ApiError::invalid(
                "settings.signup",
                "must be closed, open, invitation or domain",
            ));
        }
        if self.seat_limit.is_some_and(|n| !(1..=10_000_000).contains(&n)) {
            return Err(ApiError::invalid(
                "settings.seat_limit",
                "must be between 1 and 10000000, or left out for no limit",
            ));
        }
        Ok(())
    }
}

/// A language tag such as `en`, `de-CH`, `pt-BR`.
pub fn valid_locale(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or("");
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// A tenant as requests see it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Tenant {
    /// Id.
    pub id: String,
    /// Slug (`<slug>.<base domain>`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Settings.
    pub settings: TenantSettings,
    /// Custom domains.
    pub domains: Vec<String>,
    /// Created, RFC 3339.
    pub created_at: String,
}

impl Tenant {
    /// Is it suspended?
    pub fn suspended(&self) -> bool {
        self.status == "suspended"
    }
}

const TENANT_COLUMNS: &str = "t.id, t.slug, t.name, t.status, t.settings, t.created_at";

async fn load(tx: &mut PlatformTx, row: sqlx::any::AnyRow) -> Result<Tenant, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let settings: String = row.try_get("settings")?;
    let domains: Vec<String> =
        sqlx::query_scalar("SELECT domain FROM tenant_domains WHERE tenant_id = $1 ORDER BY domain")
            .bind(id.clone())
            .fetch_all(tx.conn())
            .await?;
    Ok(Tenant {
        id,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        domains,
        created_at: crate::db::rfc3339(row.try_get("created_at")?),
    })
}

/// Find a tenant by slug.
pub async fn by_slug(tx: &mut PlatformTx, slug: &str) -> Result<Option<Tenant>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants t WHERE lower(t.slug) = lower($1)"
    ))
    .bind(slug.to_owned())
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(row) => Ok(Some(load(tx, row).await?)),
        None => Ok(None),
    }
}

/// Find a tenant by id.
pub async fn by_id(tx: &mut PlatformTx, id: &str) -> Result<Option<Tenant>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants t WHERE t.id = $1"))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    match row {
        Some(row) => Ok(Some(load(tx, row).await?)),
        None => Ok(None),
    }
}

/// Every tenant, by slug.
pub async fn list(tx: &mut PlatformTx) -> Result<Vec<Tenant>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants t ORDER BY t.slug"))
        .fetch_all(tx.conn())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(load(tx, row).await?);
    }
    Ok(out)
}

/// Is this a usable slug? Lower-case letters, digits and hyphens, 2–40 characters, not starting with one.
pub fn valid_slug(slug: &str) -> bool {
    (2..=40).contains(&slug.len())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// Is this a usable custom domain?
pub fn valid_domain(domain: &str) -> bool {
    domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Insert a tenant with the built-in roles. Returns its id.
pub async fn insert(
    tx: &mut PlatformTx,
    slug: &str,
    name: &str,
    settings: &TenantSettings,
) -> Result<String, sqlx::Error> {
    let id = crate::db::new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at) VALUES ($1, $2, $3, 'active', $4, $5, $5)",
    )
    .bind(id.clone())
    .bind(slug.to_owned())
    .bind(name.to_owned())
    .bind(serde_json::to_string(settings).unwrap_or_else(|_| "{}".into()))
    .bind(now)
    .execute(tx.conn())
    .await?;
    for role in crate::scope::BUILTIN_ROLES {
        let perms: Vec<&str> = role.permissions.iter().map(|p| p.as_str()).collect();
        sqlx::query(
            "INSERT INTO roles (id, tenant_id, key, name, permissions, builtin, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
        )
        .bind(crate::db::new_id())
        .bind(id.clone())
        .bind(role.key)
        .bind(role.name)
        .bind(serde_json::to_string(&perms).unwrap_or_default())
        .bind(now)
        .execute(tx.conn())
        .await?;
    }
    Ok(id)
}

/// Which tenant a host names.
#[derive(Debug, Clone)]
pub enum HostTenant {
    /// The platform host (the base domain, an IP address, or a name that maps to no tenant pattern).
    Platform,
    /// A tenant.
    Tenant(Box<Tenant>),
    /// `<slug>.<base>` or a custom-looking domain that names no tenant.
    Unknown,
}

/// Host → tenant, cached for a few seconds. Changes made by this process drop the cache at once; other
/// replicas see them within [`TenantCache::TTL`]. A request takes its academy's turn only once its host is
/// resolved, so the lookups of hosts not in the cache have a bound of their own: a flood of made-up hosts
/// costs at most [`TenantCache::LOOKUPS`] database queries at a time and never the database's connections.
pub struct TenantCache {
    base_domain: String,
    entries: TtlCache<String, HostTenant>,
    lookups: tokio::sync::Semaphore,
}

/// Why a host could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Every lookup slot stayed taken for [`TenantCache::LOOKUP_WAIT`].
    #[error(transparent)]
    Busy(#[from] crate::fair::Busy),
}

impl TenantCache {
    /// How long an answer is reused.
    pub const TTL: Duration = Duration::from_secs(5);
    /// Lookups of hosts not in the cache at once.
    pub const LOOKUPS: usize = 8;
    /// The longest wait for a lookup slot; then the host is busy (503).
    pub const LOOKUP_WAIT: Duration = Duration::from_secs(2);

    /// An empty cache for this base domain.
    pub fn new(base_domain: &str) -> TenantCache {
        TenantCache {
            base_domain: base_domain.to_ascii_lowercase(),
            entries: TtlCache::new(Self::TTL, 10_000),
            lookups: tokio::sync::Semaphore::new(Self::LOOKUPS),
        }
    }

    /// Forget everything (after a tenant or domain changed).
    pub fn clear(&self) {
        self.entries.clear();
    }

    /// Resolve a `Host` header value.
    pub async fn resolve(&self, db: &Db, host: &str) -> Result<HostTenant, ResolveError> {
        let host = normalize_host(host);
        if let Some(known) = self.entries.get(host.as_str()) {
            return Ok(known);
        }
        let busy = || crate::fair::Busy {
            resource: "host lookups",
            retry_after: Duration::from_secs(1),
            own_share: false,
        };
        let _slot = tokio::time::timeout(Self::LOOKUP_WAIT, self.lookups.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        // Looked up by another request while this one waited?
        if let Some(known) = self.entries.get(host.as_str()) {
            return Ok(known);
        }
        let resolved = self.lookup(db, &host).await?;
        self.entries.put(host, resolved.clone(), Self::TTL);
        Ok(resolved)
    }

    async fn lookup(&self, db: &Db, host: &str) -> Result<HostTenant, sqlx::Error> {
        if host.is_empty() || host == self.base_domain || host.parse::<std::net::IpAddr>().is_ok() || host == "[::1]" {
            return Ok(HostTenant::Platform);
        }
        let mut tx = db.platform().begin().await?;
        let found = if let Some(slug) = host.strip_suffix(&format!(".{}", self.base_domain)) {
            by_slug(&mut tx, slug).await?
        } else {
            let id: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM tenant_domains WHERE domain = $1")
                .bind(host.to_owned())
                .fetch_optional(tx.conn())
                .await?;
            match id {
                Some(id) => by_id(&mut tx, &id).await?,
                None => None,
            }
        };
        tx.commit().await?;
        Ok(match found {
            Some(t) => HostTenant::Tenant(Box::new(t)),
            None => HostTenant::Unknown,
        })
    }
}

/// Lower-case, without the port.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        return host.split(']').next().map(|h| format!("{h}]")).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_owned(),
        _ => host,
    }
}

/// The address of an academy for links in messages: its first custom domain, else `<slug>.<base domain>`,
/// with the scheme and port the settings say.
pub fn academy_url(config: &crate::config::Config, tenant: &Tenant) -> String {
    let scheme = if config.cookie_secure { "https" } else { "http" };
    let host = tenant
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{}.{}", tenant.slug, config.base_domain));
    match config.notifications.link_port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document's locale pattern agrees with the check.
    #[test]
    fn the_locale_pattern_agrees_with_the_check() {
        let pattern = regex::Regex::new(crate::fields::pattern::LOCALE).unwrap();
        for (value, ok) in [
            ("en", true),
            ("de-CH", true),
            ("zh-Hant-TW", true),
            ("EN", false),
            ("e", false),
        ] {
            assert_eq!(pattern.is_match(value), ok, "{value:?}");
            assert_eq!(valid_locale(value), ok, "{value:?}");
        }
    }

    /// With every lookup slot taken, a host not in the cache waits LOOKUP_WAIT and is told the host is busy;
    /// a cached host still resolves at once.
    #[tokio::test]
    async fn lookups_of_unknown_hosts_are_bounded() {
        let dir = std::env::temp_dir().join(format!("aula-tenancy-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = Db::connect(&format!("sqlite:{}/t.db", dir.display()), 2)
            .await
            .expect("database");
        let cache = TenantCache::new("localhost");
        assert!(matches!(
            cache.resolve(&db, "known.localhost").await,
            Ok(HostTenant::Unknown)
        ));
        let taken = cache
            .lookups
            .acquire_many(TenantCache::LOOKUPS as u32)
            .await
            .expect("every slot");
        let started = std::time::Instant::now();
        match cache.resolve(&db, "made-up-1.example").await {
            Err(ResolveError::Busy(busy)) => assert!(!busy.own_share, "{busy}"),
            other => panic!("expected busy, got {other:?}"),
        }
        assert!(started.elapsed() >= TenantCache::LOOKUP_WAIT);
        assert!(matches!(
            cache.resolve(&db, "known.localhost").await,
            Ok(HostTenant::Unknown)
        ));
        drop(taken);
        assert!(matches!(
            cache.resolve(&db, "made-up-2.example").await,
            Ok(HostTenant::Unknown)
        ));
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hosts_normalize() {
        assert_eq!(normalize_host("Acme.LocalHost:8080"), "acme.localhost");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("learn.acme.com"), "learn.acme.com");
    }

    #[test]
    fn slugs_and_locales() {
        assert!(valid_slug("acme"));
        assert!(!valid_slug("Acme"));
        assert!(!valid_slug("-a"));
        assert!(valid_locale("de-CH"));
        assert!(!valid_locale("english"));
        assert!(valid_domain("learn.acme.com"));
        assert!(!valid_domain("acme"));
    }
}
