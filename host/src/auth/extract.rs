//! Extractors: `Caller` for tenant endpoints, `Operator` for platform endpoints.

use super::{Actor, OPERATOR_TOKEN_PREFIX, SESSION_COOKIE, TOKEN_PREFIX, secret_hash};
use crate::config::Config;
use crate::db::{TenantDb, now_ms};
use crate::error::ApiError;
use crate::scope::{Grant, GrantScope, Grants, Permission, Reach};
use crate::state::AppState;
use crate::tenancy::{HostTenant, Tenant};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use sqlx::Row;

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum CallerVia {
    /// A session cookie (its hash).
    Session(String),
    /// An API token (its id).
    Token(String),
}

/// A signed-in tenant user, with the tenant and the grants that decide their scope.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant.
    pub tenant: Tenant,
    /// The user's id.
    pub user_id: String,
    /// The user's e-mail.
    pub email: String,
    /// The user's name.
    pub name: String,
    /// The user's grants.
    pub grants: Grants,
    /// How they authenticated.
    pub via: CallerVia,
    /// This request's id.
    pub request_id: Option<String>,
    db: TenantDb,
}

impl Caller {
    /// The tenant's database handle.
    pub fn db(&self) -> &TenantDb {
        &self.db
    }

    /// What the caller reaches with `perm`, or 403.
    pub fn require(&self, perm: Permission) -> Result<Reach, ApiError> {
        self.grants.require(perm)
    }

    /// 403 unless `perm` is held tenant-wide.
    pub fn require_tenant_wide(&self, perm: Permission) -> Result<(), ApiError> {
        self.grants.require_tenant_wide(perm)
    }

    /// The caller as an audit actor.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: "user",
            id: Some(self.user_id.clone()),
            label: self.email.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

/// The request's id (`x-request-id`, set by the middleware when the client sent none).
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The host a request names: `X-Forwarded-Host` behind a proxy that sets it (when trusted), else `Host`.
fn named_host<'a>(headers: &'a HeaderMap, config: &Config) -> Option<&'a str> {
    let forwarded = config
        .trust_forwarded_host
        .then(|| headers.get("x-forwarded-host").and_then(|v| v.to_str().ok()))
        .flatten();
    forwarded.or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
}

pub(crate) fn host(parts: &Parts, state: &AppState) -> String {
    named_host(&parts.headers, &state.config)
        .or_else(|| parts.uri.host())
        .unwrap_or("")
        .to_owned()
}

/// The host the request was made to, for links that lead back to the same academy address. Only characters
/// a host name (with port) can have are kept, so a crafted header cannot smuggle anything into a link; a
/// host that does not pass is replaced by the academy's own address.
pub fn link_host(headers: &HeaderMap, config: &Config, tenant: &Tenant) -> String {
    let host = named_host(headers, config).unwrap_or("").trim().to_ascii_lowercase();
    let clean = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if clean {
        host
    } else {
        tenant
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{}.{}", tenant.slug, config.base_domain))
    }
}

pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A change made with a session cookie must come from the academy's own pages: a browser sends `Origin` (and
/// `Sec-Fetch-Site`) with every cross-site write, and a write whose origin is another site is refused, so a
/// page elsewhere cannot act with a signed-in user's cookie (SameSite=Lax alone leaves top-level posts open).
/// Clients that are not browsers send neither header and are unaffected; API tokens are never sent by a
/// browser on its own.
fn same_site_write(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    use axum::http::Method;
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let refused = || ApiError::Forbidden {
        code: "cross_site_request",
        message: "a change with a session cookie must come from this academy's own pages".into(),
    };
    if let Some(site) = parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site == "cross-site"
    {
        return Err(refused());
    }
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/').to_ascii_lowercase())
        .unwrap_or_default();
    if origin_host == host(parts, state).to_ascii_lowercase() {
        Ok(())
    } else {
        Err(refused())
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::Unauthenticated {
        code: "unauthenticated",
        message: message.to_owned(),
    }
}

/// The tenant a request's host names, or the error for a host that names none.
pub(crate) async fn host_tenant(parts: &Parts, state: &AppState) -> Result<HostTenant, ApiError> {
    match state.tenants.resolve(&state.db, &host(parts, state)).await {
        Ok(found) => Ok(found),
        Err(crate::tenancy::ResolveError::Db(e)) => Err(e.into()),
        Err(crate::tenancy::ResolveError::Busy(busy)) => Err(busy.into()),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let host = host_tenant(parts, state).await?;
        let host_key = match &host {
            HostTenant::Tenant(t) => t.id.clone(),
            HostTenant::Platform => String::new(),
            HostTenant::Unknown => return Err(ApiError::NotFound { what: "academy" }),
        };
        if bearer(parts).is_none() && cookie(parts, SESSION_COOKIE).is_some() {
            same_site_write(parts, state)?;
        }
        let credential = bearer(parts).or_else(|| cookie(parts, SESSION_COOKIE)).map(secret_hash);
        let version = state.callers.version(&host_key);
        if let Some(cached) = credential.as_ref().and_then(|c| state.callers.get(&host_key, c)) {
            return Ok(Caller {
                request_id: request_id(&parts.headers),
                ..cached
            });
        }
        let (caller, valid_ms) = authenticate(parts, state, host).await?;
        if let Some(credential) = credential {
            let valid = std::time::Duration::from_millis(valid_ms.max(0) as u64);
            state.callers.put(&host_key, version, credential, caller.clone(), valid);
        }
        Ok(caller)
    }
}

/// Authenticate from scratch: the credential, its user and their grants. Returns the caller and how many
/// more milliseconds the credential is valid.
async fn authenticate(parts: &Parts, state: &AppState, host: HostTenant) -> Result<(Caller, i64), ApiError> {
    {
        let (tenant, via) = match (bearer(parts), host) {
            (_, HostTenant::Unknown) => return Err(ApiError::NotFound { what: "academy" }),
            (Some(token), host) => {
                if token.starts_with(OPERATOR_TOKEN_PREFIX) || !token.starts_with(TOKEN_PREFIX) {
                    return Err(unauthenticated("this is not a valid API token for an academy"));
                }
                let hash = secret_hash(token);
                let tenant = match host {
                    HostTenant::Tenant(t) => *t,
                    _ => {
                        // The platform host: the token names its tenant.
                        let mut tx = state.db.platform().begin().await?;
                        let tenant_id: Option<String> =
                            sqlx::query_scalar("SELECT tenant_id FROM api_tokens WHERE token_hash = $1")
                                .bind(hash.clone())
                                .fetch_optional(tx.conn())
                                .await?;
                        let tenant = match tenant_id {
                            Some(id) => crate::tenancy::by_id(&mut tx, &id).await?,
                            None => None,
                        };
                        tx.commit().await?;
                        tenant.ok_or_else(|| unauthenticated("invalid, expired or revoked API token"))?
                    }
                };
                (tenant, Via::Token(hash))
            }
            (None, HostTenant::Tenant(t)) => match cookie(parts, SESSION_COOKIE) {
                Some(raw) => (*t, Via::Session(secret_hash(raw))),
                None => return Err(unauthenticated("sign in, or send an API token")),
            },
            (None, HostTenant::Platform) => {
                return Err(unauthenticated("use your academy's address, or send an API token"));
            }
        };
        if tenant.suspended() {
            return Err(ApiError::Forbidden {
                code: "tenant_suspended",
                message: "this academy is suspended".into(),
            });
        }
        let db = state.db.tenant(&tenant.id);
        let mut tx = db.begin_read().await?;
        let now = now_ms();
        let valid_until: i64;
        // Tokens and sessions are looked up within the host's tenant: another tenant's credential is unknown here.
        let (user, via, touch) = match via {
            Via::Token(hash) => {
                let row = tx
                    .query(
                        "SELECT t.id, t.user_id, t.expires_at, t.revoked_at, t.last_used_at, u.email, u.name, u.status \
                         FROM api_tokens t JOIN users u ON u.id = t.user_id AND u.tenant_id = $1 \
                         WHERE t.tenant_id = $1 AND t.token_hash = $2",
                    )
                    .bind(hash)
                    .fetch_optional(tx.conn())
                    .await?
                    .ok_or_else(|| unauthenticated("invalid, expired or revoked API token"))?;
                let expires: i64 = row.try_get("expires_at")?;
                valid_until = expires;
                let revoked: Option<i64> = row.try_get("revoked_at")?;
                if revoked.is_some() || expires <= now {
                    return Err(unauthenticated("invalid, expired or revoked API token"));
                }
                let last: Option<i64> = row.try_get("last_used_at")?;
                let id: String = row.try_get("id")?;
                (row, CallerVia::Token(id), last.is_none_or(|l| now - l > 60_000))
            }
            Via::Session(hash) => {
                let row = tx
                    .query(
                        "SELECT s.user_id, s.expires_at, s.last_seen_at, u.email, u.name, u.status \
                         FROM sessions s JOIN users u ON u.id = s.user_id AND u.tenant_id = $1 \
                         WHERE s.tenant_id = $1 AND s.id_hash = $2",
                    )
                    .bind(hash.clone())
                    .fetch_optional(tx.conn())
                    .await?
                    .ok_or_else(|| unauthenticated("your session has ended; sign in again"))?;
                let expires: i64 = row.try_get("expires_at")?;
                valid_until = expires;
                if expires <= now {
                    return Err(unauthenticated("your session has ended; sign in again"));
                }
                let last: i64 = row.try_get("last_seen_at")?;
                (row, CallerVia::Session(hash), now - last > 60_000)
            }
        };
        let user_id: String = user.try_get("user_id")?;
        let status: String = user.try_get("status")?;
        if status != "active" {
            return Err(ApiError::Forbidden {
                code: "account_inactive",
                message: format!("this account is {status}"),
            });
        }
        let grants = load_grants(&mut tx, &user_id).await?;
        tx.commit().await?;
        if touch {
            touch_credential(&db, &via, now).await?;
        }
        let caller = Caller {
            tenant,
            user_id,
            email: user.try_get("email")?,
            name: user.try_get("name")?,
            grants,
            via,
            request_id: request_id(&parts.headers),
            db,
        };
        Ok((caller, valid_until - now))
    }
}

enum Via {
    Token(String),
    Session(String),
}

/// Record use at most once a minute, so reads stay reads.
async fn touch_credential(db: &TenantDb, via: &CallerVia, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    match via {
        CallerVia::Token(id) => {
            tx.query("UPDATE api_tokens SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(id.clone())
                .bind(now)
                .execute(tx.conn())
                .await?;
        }
        CallerVia::Session(hash) => {
            tx.query("UPDATE sessions SET last_seen_at = $3 WHERE tenant_id = $1 AND id_hash = $2")
                .bind(hash.clone())
                .bind(now)
                .execute(tx.conn())
                .await?;
        }
    }
    tx.commit().await
}

/// Load a user's grants with everything the resolver needs (org paths, segment filters).
pub async fn load_grants(tx: &mut crate::db::TenantTx, user_id: &str) -> Result<Grants, sqlx::Error> {
    let rows = tx
        .query(
            "SELECT r.permissions, g.scope_type, g.org_id, o.path, g.segment_id, s.definition \
             FROM grants g JOIN roles r ON r.id = g.role_id \
             LEFT JOIN orgs o ON o.id = g.org_id LEFT JOIN segments s ON s.id = g.segment_id \
             WHERE g.tenant_id = $1 AND g.user_id = $2",
        )
        .bind(user_id.to_owned())
        .fetch_all(tx.conn())
        .await?;
    let mut grants = Vec::with_capacity(rows.len());
    for row in rows {
        let perms: String = row.try_get("permissions")?;
        let names: Vec<String> = serde_json::from_str(&perms).unwrap_or_default();
        let permissions = names.iter().filter_map(|n| Permission::parse(n)).collect();
        let scope_type: String = row.try_get("scope_type")?;
        let scope = match scope_type.as_str() {
            "tenant" => GrantScope::Tenant,
            "org" => GrantScope::Org {
                id: row.try_get("org_id")?,
                path: row.try_get("path")?,
            },
            _ => {
                let def: String = row.try_get("definition")?;
                GrantScope::Segment {
                    id: row.try_get("segment_id")?,
                    def: crate::scope::segment::SegmentDef::parse_stored(&def),
                }
            }
        };
        grants.push(Grant { permissions, scope });
    }
    Ok(Grants(grants))
}

/// A signed-in platform operator.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Operator id.
    pub id: String,
    /// E-mail.
    pub email: String,
    /// This request's id.
    pub request_id: Option<String>,
}

impl Operator {
    /// The operator as an audit actor.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: "operator",
            id: Some(self.id.clone()),
            label: self.email.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .filter(|t| t.starts_with(OPERATOR_TOKEN_PREFIX))
            .ok_or_else(|| unauthenticated("this needs an operator token"))?;
        let mut tx = state.db.platform().begin().await?;
        let row = sqlx::query(
            "SELECT o.id, o.email FROM operator_tokens t JOIN operators o ON o.id = t.operator_id \
             WHERE t.token_hash = $1 AND t.expires_at > $2",
        )
        .bind(secret_hash(token))
        .bind(now_ms())
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| unauthenticated("invalid or expired operator token"))?;
        tx.commit().await?;
        Ok(Operator {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            request_id: request_id(&parts.headers),
        })
    }
}

/// The tenant named by the request's host, whatever the credentials (for sign-in and public pages).
pub struct RequestHost(pub HostTenant);

impl FromRequestParts<AppState> for RequestHost {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(RequestHost(host_tenant(parts, state).await?))
    }
}
