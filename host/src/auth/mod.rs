//! Authentication: passwords, sessions, API tokens, and the extractors that turn a request into a
//! [`Caller`] (a tenant user with grants) or an [`Operator`].

mod cache;
mod extract;
pub mod password;

pub use cache::CallerCache;
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
