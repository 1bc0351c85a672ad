//! Authentication: passwords, sessions, API tokens, and the extractors that turn a request into a
//! [`Caller`] (a tenant user with grants) or an [`Operator`].

mod cache;
pub(crate) mod extract;
pub mod password;
pub mod session;

pub use cache::{CallerCache, MAX_CALLERS};
pub use extract::RequestHost;
pub use extract::{Caller, CallerVia, Operator, load_grants};

use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "aula_session";
/// Prefix of tenant API tokens.
pub const TOKEN_PREFIX: &str = "aula_";
/// Prefix of operator tokens.
pub const OPERATOR_TOKEN_PREFIX: &str = "aulaop_";

/// A new random secret (256 bits, URL-safe).
pub fn random_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How secrets (session ids, tokens) are stored: their SHA-256, never themselves.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh API token; only its hash is stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token's id.
    pub id: String,
    /// The token (`aula_…`), shown once.
    pub token: String,
    /// The first characters, stored to recognise it.
    pub prefix: String,
    /// Expiry, unix milliseconds.
    pub expires_at: i64,
}

/// Issue an API token for a user of the transaction's tenant, valid for `days`. The API, the CLI and the
/// benchmark seeder all make tokens here.
pub async fn issue_token(
    tx: &mut crate::db::TenantTx,
    user_id: &str,
    name: &str,
    days: i64,
) -> Result<IssuedToken, sqlx::Error> {
    let token = format!("{TOKEN_PREFIX}{}", random_secret());
    let id = crate::db::new_id();
    let now = crate::db::now_ms();
    let expires_at = now + days * 86_400_000;
    let prefix: String = token.chars().take(12).collect();
    tx.query(
        "INSERT INTO api_tokens (id, tenant_id, user_id, name, prefix, token_hash, created_at, expires_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.clone())
    .bind(user_id.to_owned())
    .bind(name.to_owned())
    .bind(prefix.clone())
    .bind(secret_hash(&token))
    .bind(now)
    .bind(expires_at)
    .execute(tx.conn())
    .await?;
    Ok(IssuedToken {
        id,
        token,
        prefix,
        expires_at,
    })
}

/// Who did something, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user`, `operator` or `system`.
    pub kind: &'static str,
    /// The user's or operator's id.
    pub id: Option<String>,
    /// E-mail or name, kept in case the actor is deleted later.
    pub label: String,
    /// The request that made the change.
    pub request_id: Option<String>,
}

impl Actor {
    /// The system itself (CLI, demo seed, start-up).
    pub fn system(label: &str) -> Actor {
        Actor {
            kind: "system",
            id: None,
            label: label.to_owned(),
            request_id: None,
        }
    }
}
