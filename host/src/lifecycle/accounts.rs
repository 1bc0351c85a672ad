//! The accounts an operator sets up from outside an academy: operators themselves, a tenant's first users,
//! and API tokens for scripts.

use crate::audit::{Change, record};
use crate::auth::{Actor, IssuedToken, OPERATOR_TOKEN_PREFIX, issue_token, password, random_secret, secret_hash};
use crate::db::{Db, TenantTx, new_id, now_ms, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::fields::{email as check_email, text};
use serde_json::json;
use sqlx::Row;

/// How long an operator token lasts.
pub const OPERATOR_TOKEN_HOURS: i64 = 12;

/// A user to create in an academy.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// E-mail (also the sign-in name).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Initial password; without one the user cannot sign in until one is set.
    pub password: Option<String>,
}

/// A [`NewAccount`] checked and with its password hashed.
pub(crate) struct PreparedAccount {
    email: String,
    name: String,
    password_hash: Option<String>,
}

impl NewAccount {
    /// Check the fields and hash the password (slow on purpose: do it before opening a transaction).
    pub(crate) async fn prepare(&self) -> ApiResult<PreparedAccount> {
        let email = check_email("email", &self.email)?;
        let name = text("name", &self.name, 200)?;
        let password_hash = match &self.password {
            Some(p) => {
                password::check_new("password", p)?;
                Some(password::hash("", p.clone()).await?)
            }
            None => None,
        };
        Ok(PreparedAccount {
            email,
            name,
            password_hash,
        })
    }
}

/// Create a platform operator. Returns the operator's id.
pub async fn create_operator(db: &Db, email: &str, name: &str, password: &str) -> ApiResult<String> {
    let account = NewAccount {
        email: email.to_owned(),
        name: name.to_owned(),
        password: Some(password.to_owned()),
    };
    let account = account.prepare().await?;
    let id = new_id();
    let mut tx = db.platform().begin().await?;
    let taken = || {
        ApiError::duplicate(
            "email",
            format!("an operator with the e-mail {} already exists", account.email),
        )
    };
    let exists = sqlx::query("SELECT 1 FROM operators WHERE lower(email) = $1")
        .bind(account.email.clone())
        .fetch_optional(tx.conn())
        .await?;
    if exists.is_some() {
        return Err(taken());
    }
    let inserted =
        sqlx::query("INSERT INTO operators (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id.clone())
            .bind(account.email.clone())
            .bind(account.name.clone())
            .bind(account.password_hash.clone().unwrap_or_default())
            .bind(now_ms())
            .execute(tx.conn())
            .await;
    match inserted {
        Ok(_) => {}
        Err(e) if unique_violation(&e).is_some() => return Err(taken()),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    tracing::info!(operator = %account.email, "operator created");
    Ok(id)
}

/// A fresh operator token; only its hash is stored.
#[derive(Debug, Clone)]
pub struct OperatorToken {
    /// The token (`aulaop_…`), shown once.
    pub token: String,
    /// Expiry, unix milliseconds.
    pub expires_at: i64,
}

/// Check an operator's credentials and issue a token. A wrong e-mail and a wrong password answer the same,
/// after the same work: `dummy_hash` is verified when there is no such operator.
/// Throttling of failed sign-ins: at most `max_failures` per e-mail within `window_secs`.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures allowed within the window.
    pub max_failures: i64,
    /// The window, in seconds.
    pub window_secs: i64,
}

pub async fn operator_login(
    db: &Db,
    email: &str,
    password_text: &str,
    dummy_hash: &str,
    limits: LoginLimits,
) -> ApiResult<OperatorToken> {
    let refused = || ApiError::Unauthenticated {
        code: "invalid_credentials",
        message: "wrong e-mail or password".into(),
    };
    let email = email.trim().to_lowercase();
    if email.is_empty() || email.len() > 254 || password_text.len() > 1024 {
        return Err(refused());
    }
    let now = now_ms();
    let window_start = now - limits.window_secs * 1000;
    let mut tx = db.platform().begin().await?;
    let failures: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operator_login_failures WHERE email = $1 AND at > $2")
        .bind(email.clone())
        .bind(window_start)
        .fetch_one(tx.conn())
        .await?;
    let row = sqlx::query("SELECT id, password_hash FROM operators WHERE lower(email) = $1")
        .bind(email.clone())
        .fetch_optional(tx.conn())
        .await?;
    tx.commit().await?;
    if failures >= limits.max_failures {
        return Err(ApiError::TooManyRequests {
            message: "too many failed sign-ins; wait a while and try again".into(),
            retry_after_secs: limits.window_secs as u64,
        });
    }
    let (id, stored) = match &row {
        Some(row) => (
            Some(row.try_get::<String, _>("id")?),
            row.try_get::<String, _>("password_hash")?,
        ),
        None => (None, dummy_hash.to_owned()),
    };
    let ok = password::verify("", password_text.to_owned(), stored).await?;
    let Some(id) = id.filter(|_| ok) else {
        tracing::info!(operator = %email, "operator sign-in refused");
        let mut tx = db.platform().begin().await?;
        sqlx::query("INSERT INTO operator_login_failures (id, email, at) VALUES ($1, $2, $3)")
            .bind(crate::db::new_id())
            .bind(email.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        return Err(refused());
    };
    let token = format!("{OPERATOR_TOKEN_PREFIX}{}", random_secret());
    let expires_at = now + OPERATOR_TOKEN_HOURS * 3_600_000;
    let mut tx = db.platform().begin().await?;
    // Expired tokens are of no use to anyone; sweeping them here keeps the table small without a job.
    sqlx::query("DELETE FROM operator_tokens WHERE expires_at <= $1")
        .bind(now)
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM operator_login_failures WHERE email = $1 OR at <= $2")
        .bind(email.clone())
        .bind(window_start)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO operator_tokens (token_hash, operator_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(secret_hash(&token))
    .bind(id)
    .bind(now)
    .bind(expires_at)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(OperatorToken { token, expires_at })
}

/// Create a user in an academy: a learner, plus `role` (a role key) at tenant scope when given.
/// Returns the user's id.
pub async fn create_user(
    db: &Db,
    tenant_slug: &str,
    account: &NewAccount,
    role: Option<&str>,
    actor: &Actor,
) -> ApiResult<String> {
    let prepared = account.prepare().await?;
    let tenant = super::tenant_id(db, tenant_slug).await?;
    let mut tx = db.tenant(&tenant).begin().await?;
    super::load_tenant(&mut tx).await?;
    let id = insert_user(&mut tx, &prepared, role, actor).await?;
    tx.commit().await?;
    Ok(id)
}

/// Insert a user with the learner grant (every user is a learner) and `role` at tenant scope, and audit it.
pub(crate) async fn insert_user(
    tx: &mut TenantTx,
    account: &PreparedAccount,
    role: Option<&str>,
    actor: &Actor,
) -> ApiResult<String> {
    let taken = || {
        ApiError::duplicate(
            "email",
            format!(
                "a user with the e-mail {} already exists in this academy",
                account.email
            ),
        )
    };
    let exists = tx
        .query("SELECT 1 FROM users WHERE tenant_id = $1 AND lower(email) = $2")
        .bind(account.email.clone())
        .fetch_optional(tx.conn())
        .await?;
    if exists.is_some() {
        return Err(taken());
    }
    let mut roles = vec![role_id(tx, "learner").await?.ok_or_else(|| {
        ApiError::rule(
            "no_learner_role",
            None,
            "this academy has no learner role; restore it before adding users",
        )
    })?];
    if let Some(key) = role.map(str::trim).filter(|k| !k.eq_ignore_ascii_case("learner")) {
        let found = role_id(tx, key).await?;
        let Some(found) = found else {
            let keys: Vec<String> = tx
                .query("SELECT key FROM roles WHERE tenant_id = $1 ORDER BY key")
                .fetch_all(tx.conn())
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?;
            return Err(ApiError::invalid(
                "role",
                format!("this academy has no role {key:?} (it has: {})", keys.join(", ")),
            ));
        };
        roles.push(found);
    }
    let id = new_id();
    let now = now_ms();
    let inserted = tx
        .query(
            "INSERT INTO users (id, tenant_id, email, name, status, profile, password_hash, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, 'active', '{}', $5, $6, $6)",
        )
        .bind(id.clone())
        .bind(account.email.clone())
        .bind(account.name.clone())
        .bind(account.password_hash.clone())
        .bind(now)
        .execute(tx.conn())
        .await;
    match inserted {
        Ok(_) => {}
        Err(e) if unique_violation(&e).is_some() => return Err(taken()),
        Err(e) => return Err(e.into()),
    }
    for (role_id, _) in &roles {
        tx.query(
            "INSERT INTO grants (id, tenant_id, user_id, role_id, scope_type, created_at) VALUES ($2, $1, $3, $4, 'tenant', $5)",
        )
        .bind(new_id())
        .bind(id.clone())
        .bind(role_id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?;
    }
    let role_keys: Vec<&str> = roles.iter().map(|(_, key)| key.as_str()).collect();
    record(
        tx,
        actor,
        Change::created(
            "user.create",
            "user",
            &id,
            json!({ "id": id, "email": account.email, "name": account.name, "status": "active", "roles": role_keys }),
        ),
    )
    .await?;
    Ok(id)
}

/// A role's id and key, found by key (case-insensitively).
async fn role_id(tx: &mut TenantTx, key: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = tx
        .query("SELECT id, key FROM roles WHERE tenant_id = $1 AND lower(key) = lower($2)")
        .bind(key.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("key")?))).transpose()
}

/// Issue an API token for the user with this e-mail. `days`: 1–365.
pub async fn create_api_token(
    db: &Db,
    tenant_slug: &str,
    email: &str,
    name: &str,
    days: i64,
    actor: &Actor,
) -> ApiResult<IssuedToken> {
    let name = text("name", name, 100)?;
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid("days", "must be between 1 and 365"));
    }
    let email = email.trim().to_lowercase();
    let tenant = super::tenant_id(db, tenant_slug).await?;
    let mut tx = db.tenant(&tenant).begin().await?;
    let user_id: String = tx
        .query("SELECT id FROM users WHERE tenant_id = $1 AND lower(email) = $2")
        .bind(email.clone())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?
        .try_get("id")?;
    let issued = issue_token(&mut tx, &user_id, &name, days).await?;
    let after = json!({
        "id": issued.id, "user_id": user_id, "name": name, "prefix": issued.prefix,
        "expires_at": crate::db::rfc3339(issued.expires_at)
    });
    record(
        &mut tx,
        actor,
        Change::created("token.create", "token", &issued.id, after),
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}
