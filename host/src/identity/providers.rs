//! An academy's identity providers: what an admin configures, checked, and stored per academy. The client
//! secret is written, never read back: answers say only whether one is set.

use crate::db::{TenantTx, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::fields::{FieldError, text};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// Most providers one academy may configure.
pub const MAX_PROVIDERS: i64 = 20;

/// How the claims of a provider's accounts become the academy's organizations, tags, profile fields,
/// language and manager. The mapping owns what it sets: a later sign-in changes that and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    /// Organizations from a claim (a text or a list of texts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orgs: Option<OrgMapping>,
    /// Tags from a claim (a text or a list of tag names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagMapping>,
    /// Profile fields: the field's key → the claim holding its value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Take the language from the `locale` claim, when it is one of the academy's languages (`de-DE` counts
    /// as `de`).
    pub locale: bool,
    /// The claim holding the e-mail address of the person's manager (an account of this academy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
}

/// Organizations from a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgMapping {
    /// The claim.
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    pub claim: String,
    /// How a value names an organization: `path` (names from the top, joined by `/`: `Sales/EMEA`) or
    /// `external_id`.
    pub by: OrgMatch,
    /// Create the organizations a path names that do not exist yet (`path` only).
    #[serde(default)]
    pub create: bool,
}

/// How a claim's value names an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgMatch {
    /// Names from the top, joined by `/`.
    Path,
    /// The organization's external id.
    ExternalId,
}

/// Tags from a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagMapping {
    /// The claim.
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    pub claim: String,
    /// Create tags that do not exist yet (else names without a tag are passed over).
    #[serde(default)]
    pub create: bool,
}

/// A provider as stored.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub email_domains: Vec<String>,
    pub password_signin: bool,
    pub create_users: bool,
    pub mapping: Mapping,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Provider {
    /// Does this provider sign in addresses of `email`'s domain (any, when it names no domains)?
    pub fn serves(&self, email: &str) -> bool {
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        self.email_domains.is_empty() || self.email_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    fn from_row(row: &AnyRow) -> Result<Provider, sqlx::Error> {
        let json = |column: &str| -> Result<Value, sqlx::Error> {
            let text: String = row.try_get(column)?;
            serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(e.into()))
        };
        let list = |column: &str| -> Result<Vec<String>, sqlx::Error> {
            serde_json::from_value(json(column)?).map_err(|e| sqlx::Error::Decode(e.into()))
        };
        Ok(Provider {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            issuer: row.try_get("issuer")?,
            client_id: row.try_get("client_id")?,
            client_secret: row.try_get("client_secret")?,
            scopes: list("scopes")?,
            email_domains: list("email_domains")?,
            password_signin: row.try_get::<i64, _>("password_signin")? != 0,
            create_users: row.try_get::<i64, _>("create_users")? != 0,
            // A mapping this version cannot read maps nothing rather than failing every sign-in.
            mapping: serde_json::from_value(json("mapping")?).unwrap_or_default(),
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// As the API shows it: the secret only as whether it is set; `redirect_uris` are the addresses to
    /// register at the provider (one per host of the academy).
    pub fn out(&self, redirect_uris: Vec<String>) -> ProviderOut {
        ProviderOut {
            id: self.id.clone(),
            name: self.name.clone(),
            protocol: "oidc",
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret_set: !self.client_secret.is_empty(),
            scopes: self.scopes.clone(),
            email_domains: self.email_domains.clone(),
            password_signin: self.password_signin,
            create_users: self.create_users,
            mapping: self.mapping.clone(),
            enabled: self.enabled,
            redirect_uris,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

/// An identity provider, as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProviderOut {
    pub id: String,
    /// Shown on the sign-in page's button.
    pub name: String,
    /// `oidc` (OpenID Connect).
    pub protocol: &'static str,
    /// The issuer: its discovery document is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Whether a client secret is set (it is never shown).
    pub client_secret_set: bool,
    /// Scopes asked for besides `openid`, `email` and `profile`.
    pub scopes: Vec<String>,
    /// E-mail domains it signs in (none: any).
    pub email_domains: Vec<String>,
    /// Whether people of those domains may still sign in with a password.
    pub password_signin: bool,
    /// Whether a first sign-in creates an account.
    pub create_users: bool,
    pub mapping: Mapping,
    pub enabled: bool,
    /// Register these as redirect URIs at the provider: one per address of the academy.
    pub redirect_uris: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new identity provider.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    /// Shown on the sign-in button ("Acme staff").
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    pub name: String,
    /// The issuer URL (`https://login.example.com/realms/acme`); the host reads its discovery document.
    #[schemars(
        length(min = 1, max = 500),
        regex(pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f-\x9f?#]+$")
    )]
    pub issuer: String,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    pub client_id: String,
    /// Kept as a secret: never shown back.
    #[schemars(length(min = 1, max = 500), regex(pattern = crate::fields::pattern::TEXT))]
    pub client_secret: String,
    /// Scopes to ask for besides `openid`, `email` and `profile` (at most 20).
    #[serde(default)]
    #[schemars(
        length(max = 20),
        inner(length(min = 1, max = 100), regex(pattern = r"^[\x21\x23-\x5b\x5d-\x7e]+$"))
    )]
    pub scopes: Vec<String>,
    /// E-mail domains this provider signs in (at most 50); none: any address it vouches for.
    #[serde(default)]
    #[schemars(
        length(max = 50),
        inner(length(min = 3, max = 253), regex(pattern = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"))
    )]
    pub email_domains: Vec<String>,
    /// Whether people of `email_domains` may still sign in with a password. Default true.
    pub password_signin: Option<bool>,
    /// Whether a first sign-in creates an account. Default true.
    pub create_users: Option<bool>,
    #[serde(default)]
    pub mapping: Mapping,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A change to a provider; absent fields stay as they are.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    pub name: Option<String>,
    #[schemars(
        length(min = 1, max = 500),
        regex(pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f-\x9f?#]+$")
    )]
    pub issuer: Option<String>,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    pub client_id: Option<String>,
    /// A new secret.
    #[schemars(length(min = 1, max = 500), regex(pattern = crate::fields::pattern::TEXT))]
    pub client_secret: Option<String>,
    #[schemars(
        length(max = 20),
        inner(length(min = 1, max = 100), regex(pattern = r"^[\x21\x23-\x5b\x5d-\x7e]+$"))
    )]
    pub scopes: Option<Vec<String>>,
    #[schemars(
        length(max = 50),
        inner(length(min = 3, max = 253), regex(pattern = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"))
    )]
    pub email_domains: Option<Vec<String>>,
    pub password_signin: Option<bool>,
    pub create_users: Option<bool>,
    /// Replaces the mapping as a whole.
    pub mapping: Option<Mapping>,
    pub enabled: Option<bool>,
}

/// Check an issuer URL: http(s), a host, no query or fragment; a loopback, private or link-local address
/// only when `allow_private`. Returns it without a trailing `/` (as providers name themselves).
pub fn check_issuer(value: &str, allow_private: bool) -> Result<String, FieldError> {
    let v = text("issuer", value, 500)?;
    let url = url::Url::parse(&v).map_err(|_| FieldError::new("issuer", "must be an http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new("issuer", "must be an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(
            "issuer",
            "must not carry a query, a fragment or credentials",
        ));
    }
    if !allow_private && super::oidc::names_private_address(&url) {
        return Err(FieldError::new(
            "issuer",
            "names a loopback, private or link-local address, which this host does not call",
        ));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

fn check_scopes(scopes: &[String]) -> Result<Vec<String>, FieldError> {
    if scopes.len() > 20 {
        return Err(FieldError::new("scopes", "may list at most 20 scopes"));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, s) in scopes.iter().enumerate() {
        let field = format!("scopes[{i}]");
        let s = text(&field, s, 100)?;
        if !s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\') {
            return Err(FieldError::new(
                field,
                "must be a scope token (printable ASCII, no spaces)",
            ));
        }
        if !["openid", "email", "profile"].contains(&s.as_str()) && !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn check_domains(domains: &[String]) -> Result<Vec<String>, FieldError> {
    if domains.len() > 50 {
        return Err(FieldError::new("email_domains", "may list at most 50 domains"));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, d) in domains.iter().enumerate() {
        let field = format!("email_domains[{i}]");
        let d = text(&field, d, 253)?.to_ascii_lowercase();
        let ok = d.contains('.')
            && d.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            return Err(FieldError::new(field, "must be a mail domain such as example.com"));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Check a mapping against the academy: its profile fields must exist.
async fn check_mapping(tx: &mut TenantTx, mapping: &Mapping) -> ApiResult<()> {
    let claim = |field: &str, value: &str| text(field, value, 100).map(|_| ());
    if let Some(orgs) = &mapping.orgs {
        claim("mapping.orgs.claim", &orgs.claim)?;
        if orgs.create && orgs.by != OrgMatch::Path {
            return Err(ApiError::invalid(
                "mapping.orgs.create",
                "only organizations named by path can be created",
            ));
        }
    }
    if let Some(tags) = &mapping.tags {
        claim("mapping.tags.claim", &tags.claim)?;
    }
    if let Some(manager) = &mapping.manager {
        claim("mapping.manager", manager)?;
    }
    if mapping.fields.len() > 50 {
        return Err(ApiError::invalid("mapping.fields", "may map at most 50 fields"));
    }
    let known = crate::directory::profile::field_types(tx).await?;
    for (key, source) in &mapping.fields {
        if !known.contains_key(key) {
            return Err(ApiError::invalid(
                format!("mapping.fields.{key}"),
                "the academy has no such profile field",
            ));
        }
        claim(&format!("mapping.fields.{key}"), source)?;
    }
    Ok(())
}

const COLUMNS: &str = "id, name, issuer, client_id, client_secret, scopes, email_domains, password_signin, create_users, \
                       mapping, enabled, created_at, updated_at";

/// Every provider of the academy, by name.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Provider>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM identity_providers WHERE tenant_id = $1 ORDER BY name");
    tx.query(&sql)
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(Provider::from_row)
        .collect()
}

/// One provider of the academy.
pub async fn find(tx: &mut TenantTx, id: &str) -> Result<Option<Provider>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM identity_providers WHERE tenant_id = $1 AND id = $2");
    tx.query(&sql)
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .as_ref()
        .map(Provider::from_row)
        .transpose()
}

fn duplicate_name(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(_) => ApiError::duplicate("name", "a provider with this name already exists"),
        None => e.into(),
    }
}

/// Add a provider.
pub async fn create(tx: &mut TenantTx, req: &NewProvider, allow_private: bool) -> ApiResult<Provider> {
    let name = text("name", &req.name, 100)?;
    let issuer = check_issuer(&req.issuer, allow_private)?;
    let client_id = text("client_id", &req.client_id, 200)?;
    let client_secret = text("client_secret", &req.client_secret, 500)?;
    let scopes = check_scopes(&req.scopes)?;
    let domains = check_domains(&req.email_domains)?;
    check_mapping(tx, &req.mapping).await?;
    let count: i64 = tx
        .query("SELECT COUNT(*) FROM identity_providers WHERE tenant_id = $1")
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if count >= MAX_PROVIDERS {
        return Err(ApiError::rule(
            "too_many_providers",
            None,
            format!("an academy may have at most {MAX_PROVIDERS} identity providers"),
        ));
    }
    let id = new_id();
    let now = now_ms();
    tx.query(
        "INSERT INTO identity_providers (id, tenant_id, name, issuer, client_id, client_secret, scopes, email_domains, \
         password_signin, create_users, mapping, enabled, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(id.clone())
    .bind(name)
    .bind(issuer)
    .bind(client_id)
    .bind(client_secret)
    .bind(serde_json::to_string(&scopes).unwrap_or_else(|_| "[]".into()))
    .bind(serde_json::to_string(&domains).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(req.password_signin.unwrap_or(true)))
    .bind(i64::from(req.create_users.unwrap_or(true)))
    .bind(serde_json::to_string(&req.mapping).unwrap_or_else(|_| "{}".into()))
    .bind(i64::from(req.enabled.unwrap_or(true)))
    .bind(now)
    .execute(tx.conn())
    .await
    .map_err(duplicate_name)?;
    find(tx, &id).await?.ok_or(ApiError::NotFound {
        what: "identity provider",
    })
}

/// Change a provider; returns it before and after.
pub async fn update(
    tx: &mut TenantTx,
    id: &str,
    req: &ProviderPatch,
    allow_private: bool,
) -> ApiResult<(Provider, Provider)> {
    let before = find(tx, id).await?.ok_or(ApiError::NotFound {
        what: "identity provider",
    })?;
    let mut after = before.clone();
    if let Some(n) = &req.name {
        after.name = text("name", n, 100)?;
    }
    if let Some(i) = &req.issuer {
        after.issuer = check_issuer(i, allow_private)?;
    }
    if let Some(c) = &req.client_id {
        after.client_id = text("client_id", c, 200)?;
    }
    if let Some(s) = &req.client_secret {
        after.client_secret = text("client_secret", s, 500)?;
    }
    if let Some(s) = &req.scopes {
        after.scopes = check_scopes(s)?;
    }
    if let Some(d) = &req.email_domains {
        after.email_domains = check_domains(d)?;
    }
    if let Some(m) = &req.mapping {
        check_mapping(tx, m).await?;
        after.mapping = m.clone();
    }
    after.password_signin = req.password_signin.unwrap_or(after.password_signin);
    after.create_users = req.create_users.unwrap_or(after.create_users);
    after.enabled = req.enabled.unwrap_or(after.enabled);
    after.updated_at = now_ms();
    tx.query(
        "UPDATE identity_providers SET name = $3, issuer = $4, client_id = $5, client_secret = $6, scopes = $7, \
         email_domains = $8, password_signin = $9, create_users = $10, mapping = $11, enabled = $12, updated_at = $13 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.to_owned())
    .bind(after.name.clone())
    .bind(after.issuer.clone())
    .bind(after.client_id.clone())
    .bind(after.client_secret.clone())
    .bind(serde_json::to_string(&after.scopes).unwrap_or_else(|_| "[]".into()))
    .bind(serde_json::to_string(&after.email_domains).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(after.password_signin))
    .bind(i64::from(after.create_users))
    .bind(serde_json::to_string(&after.mapping).unwrap_or_else(|_| "{}".into()))
    .bind(i64::from(after.enabled))
    .bind(after.updated_at)
    .execute(tx.conn())
    .await
    .map_err(duplicate_name)?;
    if after.issuer != before.issuer || after.client_id != before.client_id {
        // Sign-ins under way were started with the old provider: they cannot finish.
        tx.query("DELETE FROM sso_requests WHERE tenant_id = $1 AND provider_id = $2")
            .bind(id.to_owned())
            .execute(tx.conn())
            .await?;
    }
    Ok((before, after))
}

/// Remove a provider, the sign-ins under way with it and its links to accounts (the accounts stay).
pub async fn delete(tx: &mut TenantTx, id: &str) -> ApiResult<Provider> {
    let before = find(tx, id).await?.ok_or(ApiError::NotFound {
        what: "identity provider",
    })?;
    for table in ["sso_requests", "user_identities"] {
        tx.query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND provider_id = $2"
        ))
        .bind(id.to_owned())
        .execute(tx.conn())
        .await?;
    }
    tx.query("DELETE FROM identity_providers WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .execute(tx.conn())
        .await?;
    Ok(before)
}

/// The enabled provider that requires `email` to sign in through it (its domain listed, password sign-in
/// off), if any.
pub async fn required_for(tx: &mut TenantTx, email: &str) -> Result<Option<Provider>, sqlx::Error> {
    Ok(list(tx)
        .await?
        .into_iter()
        .find(|p| p.enabled && !p.password_signin && !p.email_domains.is_empty() && p.serves(email)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_are_http_urls_outside_the_hosts_network() {
        assert_eq!(
            check_issuer("https://login.example.com/realms/acme/", false).unwrap(),
            "https://login.example.com/realms/acme"
        );
        for bad in [
            "ftp://login.example.com",
            "https://",
            "https://login.example.com/?a=1",
            "https://user:pw@login.example.com",
            "login.example.com",
        ] {
            assert!(check_issuer(bad, true).is_err(), "{bad}");
        }
        for private in [
            "http://127.0.0.1:8080",
            "http://[::1]/",
            "http://10.1.2.3",
            "http://169.254.169.254/latest",
            "http://192.168.0.1",
            "http://localhost:9000",
        ] {
            assert!(check_issuer(private, false).is_err(), "{private}");
            assert!(check_issuer(private, true).is_ok(), "{private}");
        }
    }

    #[test]
    fn scopes_and_domains_are_checked_and_deduplicated() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_scopes(&s(&["openid", "groups", "groups"])).unwrap(),
            s(&["groups"])
        );
        assert_eq!(check_scopes(&s(&["a b"])).unwrap_err().field, "scopes[0]");
        assert_eq!(
            check_domains(&s(&["Acme.Test", "acme.test"])).unwrap(),
            s(&["acme.test"])
        );
        assert_eq!(
            check_domains(&s(&["ok.test", "-bad.test"])).unwrap_err().field,
            "email_domains[1]"
        );
    }
}
