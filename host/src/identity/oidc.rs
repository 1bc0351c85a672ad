//! The OpenID Connect relying party: the authorization code flow with PKCE, state and nonce, and the ID
//! token's signature, issuer, audience and expiry checked (`openidconnect`). A sign-in under way is a row
//! of the database (found by a hash of its `state`, used once), so any replica can finish it.
//!
//! The host calls providers that academy admins name, so every call is bounded: at most
//! `[sso] calls_per_academy` at once per academy, `timeout_ms` each, no redirects followed, answers of at most
//! [`MAX_ANSWER`] bytes, and (unless `allow_private_addresses`) never to a loopback, private or link-local
//! address, whether the URL names one or its name resolves to one.

use super::providers::{self, Provider};
use crate::config::sso::SsoSettings;
use crate::db::{TenantDb, now_ms};
use crate::fair::FairShare;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IdTokenFields, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The largest answer read from a provider (a discovery document, a key set, a token response).
pub const MAX_ANSWER: usize = 1024 * 1024;
/// Sign-ins under way at once in one academy; past it a new one is answered "busy" until some finish or
/// expire, so anonymous visitors cannot fill the database with them.
pub const MAX_PENDING: i64 = 10_000;

/// Claims a provider sends beyond the standard ones (departments, groups, employee numbers), by name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraClaims(pub Map<String, Value>);
impl AdditionalClaims for ExtraClaims {}

type TokenFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type OidcTokenResponse = StandardTokenResponse<TokenFields, CoreTokenType>;
type OidcClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    OidcTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What the provider said about the person, from a checked ID token.
#[derive(Debug, Clone)]
pub struct Claims {
    /// The provider's id of the person (`sub`).
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub locale: Option<String>,
    /// Every claim by name (standard and other), for the mapping.
    pub all: Map<String, Value>,
}

/// Why a sign-in through a provider did not happen. Each says what the person is told; none creates anything.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("this sign-in link is not known or was used already; start again")]
    UnknownState,
    #[error("the sign-in took too long; start again")]
    Expired,
    #[error("this identity provider is not available")]
    ProviderGone,
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error("the answer came from another issuer than the one this sign-in started with")]
    IssuerMismatch,
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider's token was not accepted: {0}")]
    BadToken(String),
    #[error("the identity provider gave no e-mail address")]
    NoEmail,
    #[error("the identity provider has not verified the e-mail address {0}")]
    Unverified(String),
    #[error("{0} may not sign in through this identity provider")]
    DomainNotAllowed(String),
    #[error("there is no account for {0} in this academy")]
    NoAccount(String),
    #[error("this account is {0}")]
    Inactive(String),
    #[error("{0}")]
    Refusal(String),
    #[error("too many sign-ins are under way; try again in a minute")]
    Busy(u64),
    #[error("the sign-in failed; try again")]
    Internal(#[from] anyhow::Error),
}

impl SsoError {
    /// A short word for the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            SsoError::UnknownState => "unknown_state",
            SsoError::Expired => "expired",
            SsoError::ProviderGone => "provider_gone",
            SsoError::Refused(_) => "provider_refused",
            SsoError::IssuerMismatch => "issuer_mismatch",
            SsoError::Unreachable(_) => "provider_unreachable",
            SsoError::BadToken(_) => "bad_token",
            SsoError::NoEmail => "no_email",
            SsoError::Unverified(_) => "email_unverified",
            SsoError::DomainNotAllowed(_) => "domain_not_allowed",
            SsoError::NoAccount(_) => "no_account",
            SsoError::Inactive(_) => "account_inactive",
            SsoError::Refusal(_) => "refused",
            SsoError::Busy(_) => "busy",
            SsoError::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for SsoError {
    fn from(e: sqlx::Error) -> SsoError {
        SsoError::Internal(e.into())
    }
}

impl From<crate::fair::Busy> for SsoError {
    fn from(b: crate::fair::Busy) -> SsoError {
        SsoError::Busy(b.retry_after.as_secs().max(1))
    }
}

/// A call to a provider that could not be made or answered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallError(String);

/// The relying party: one HTTP client for every academy, shares per academy, discovered configurations.
pub struct Sso {
    http: Guarded,
    settings: SsoSettings,
    shares: FairShare,
    /// Discovered configuration and keys, by provider id and issuer.
    metadata: moka::sync::Cache<String, Arc<CoreProviderMetadata>>,
    /// Providers whose keys were looked up again within the last minute (for a token signed with a new key).
    refreshed: moka::sync::Cache<String, ()>,
}

impl Sso {
    /// The relying party for these settings.
    pub fn new(settings: SsoSettings) -> anyhow::Result<Sso> {
        let mut builder = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms));
        if !settings.allow_private_addresses {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let http = Guarded {
            http: builder.build()?,
            allow_private: settings.allow_private_addresses,
        };
        let shares = FairShare::new(
            "identity provider calls",
            (settings.calls_per_academy as usize).saturating_mul(16).max(64),
            settings.calls_per_academy as usize,
            Duration::from_millis(settings.timeout_ms.min(2000)),
        );
        Ok(Sso {
            http,
            shares,
            metadata: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(settings.metadata_ttl_secs.max(1)))
                .build(),
            refreshed: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            settings,
        })
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &SsoSettings {
        &self.settings
    }

    /// Forget what was discovered about a provider (its issuer or keys changed).
    pub fn forget(&self, provider_id: &str) {
        self.metadata
            .invalidate_entries_if({
                let prefix = format!("{provider_id} ");
                move |k, _| k.starts_with(&prefix)
            })
            .ok();
    }

    /// The provider's discovered configuration and keys (`fresh`: look again even if known).
    async fn discover(&self, provider: &Provider, fresh: bool) -> Result<Arc<CoreProviderMetadata>, SsoError> {
        let key = format!("{} {}", provider.id, provider.issuer);
        if !fresh && let Some(found) = self.metadata.get(&key) {
            return Ok(found);
        }
        let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(|e| SsoError::Unreachable(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SsoError::Unreachable(error_chain(&e)))?;
        let metadata = Arc::new(metadata);
        self.metadata.insert(key, metadata.clone());
        Ok(metadata)
    }

    fn client(
        &self,
        provider: &Provider,
        metadata: &CoreProviderMetadata,
        redirect_uri: &str,
    ) -> Result<OidcClient, SsoError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| SsoError::Internal(e.into()))?;
        Ok(OidcClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(provider.client_id.clone()),
            Some(ClientSecret::new(provider.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Start a sign-in: remember it, and answer the provider's authorization URL to send the person to.
    /// `next` is where they go once signed in.
    pub async fn begin(
        &self,
        db: &TenantDb,
        provider: &Provider,
        redirect_uri: &str,
        next: &str,
    ) -> Result<String, SsoError> {
        let now = now_ms();
        let mut tx = db.begin().await?;
        tx.query("DELETE FROM sso_requests WHERE tenant_id = $1 AND expires_at < $2")
            .bind(now)
            .execute(tx.conn())
            .await?;
        let pending: i64 = tx
            .query("SELECT COUNT(*) FROM sso_requests WHERE tenant_id = $1")
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        tx.commit().await?;
        if pending >= MAX_PENDING {
            return Err(SsoError::Busy(60));
        }
        let metadata = {
            let _share = self.shares.acquire(db.tenant_id()).await?;
            self.discover(provider, false).await?
        };
        let client = self.client(provider, &metadata, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()));
        for scope in &provider.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let mut tx = db.begin().await?;
        tx.query(
            "INSERT INTO sso_requests (state_hash, tenant_id, provider_id, nonce, pkce_verifier, redirect_uri, next, \
             created_at, expires_at) VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(crate::auth::secret_hash(state.secret()))
        .bind(provider.id.clone())
        .bind(nonce.secret().clone())
        .bind(verifier.secret().clone())
        .bind(redirect_uri.to_owned())
        .bind(next.to_owned())
        .bind(now)
        .bind(now + self.settings.login_window_secs * 1000)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(url.to_string())
    }

    /// Finish a sign-in the provider sent back: the remembered request is spent whatever comes of it; the
    /// code is exchanged (with the PKCE verifier) and the ID token checked (signature, issuer, audience,
    /// expiry, nonce). Answers the provider, the claims and where to go next.
    pub async fn finish(&self, db: &TenantDb, callback: &Callback) -> Result<(Provider, Claims, String), SsoError> {
        let mut tx = db.begin().await?;
        let row = tx
            .query(
                "DELETE FROM sso_requests WHERE tenant_id = $1 AND state_hash = $2 \
                 RETURNING provider_id, nonce, pkce_verifier, redirect_uri, next, expires_at",
            )
            .bind(crate::auth::secret_hash(&callback.state))
            .fetch_optional(tx.conn())
            .await?
            .ok_or(SsoError::UnknownState)?;
        let provider_id: String = row.try_get("provider_id")?;
        let provider = providers::find(&mut tx, &provider_id).await?;
        tx.commit().await?;
        if row.try_get::<i64, _>("expires_at")? < now_ms() {
            return Err(SsoError::Expired);
        }
        let provider = provider.filter(|p| p.enabled).ok_or(SsoError::ProviderGone)?;
        let next: String = row.try_get("next")?;
        if let Some(error) = &callback.error {
            let detail = callback.error_description.as_deref().unwrap_or(error);
            return Err(SsoError::Refused(detail.chars().take(200).collect()));
        }
        // RFC 9207: a provider that names itself must be the one this sign-in went to.
        if let Some(iss) = &callback.iss
            && iss.trim_end_matches('/') != provider.issuer.trim_end_matches('/')
        {
            return Err(SsoError::IssuerMismatch);
        }
        let code = callback
            .code
            .clone()
            .ok_or_else(|| SsoError::Refused("no authorization code".into()))?;
        let nonce = Nonce::new(row.try_get("nonce")?);
        let redirect_uri: String = row.try_get("redirect_uri")?;
        let _share = self.shares.acquire(db.tenant_id()).await?;
        let metadata = self.discover(&provider, false).await?;
        let client = self.client(&provider, &metadata, &redirect_uri)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| SsoError::Unreachable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(row.try_get("pkce_verifier")?))
            .request_async(&self.http)
            .await
            .map_err(|e| SsoError::Refused(error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| SsoError::BadToken("the answer holds no ID token".into()))?;
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(claims) => claims.clone(),
            // A key the host has not seen: the provider may have rotated its keys. Look once more (at most
            // once a minute per provider), then check again.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_))
                if self.refreshed.get(&provider.id).is_none() =>
            {
                self.refreshed.insert(provider.id.clone(), ());
                let metadata = self.discover(&provider, true).await?;
                let client = self.client(&provider, &metadata, &redirect_uri)?;
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map_err(|e| SsoError::BadToken(error_chain(&e)))?
                    .clone()
            }
            Err(e) => return Err(SsoError::BadToken(error_chain(&e))),
        };
        let mut all = claims.additional_claims().0.clone();
        let email = claims.email().map(|e| e.as_str().to_owned());
        let name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned());
        let locale = claims.locale().map(|l| l.as_str().to_owned());
        all.insert("sub".into(), Value::String(claims.subject().as_str().to_owned()));
        for (key, value) in [("email", &email), ("name", &name), ("locale", &locale)] {
            if let Some(v) = value {
                all.insert(key.into(), Value::String(v.clone()));
            }
        }
        Ok((
            provider,
            Claims {
                subject: claims.subject().as_str().to_owned(),
                email_verified: claims.email_verified().unwrap_or(false),
                email,
                name,
                locale,
                all,
            },
            next,
        ))
    }
}

/// The HTTP client every call to a provider goes through (see the module's bounds).
#[derive(Clone)]
struct Guarded {
    http: openidconnect::reqwest::Client,
    allow_private: bool,
}

impl Guarded {
    /// One call to a provider, within the bounds above.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, CallError> {
        let url = url::Url::parse(&request.uri().to_string()).map_err(|e| CallError(format!("bad URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CallError(format!("{url} is not an http(s) URL")));
        }
        if !self.allow_private && names_private_address(&url) {
            return Err(CallError(format!(
                "{} is a loopback, private or link-local address",
                url.host_str().unwrap_or_default()
            )));
        }
        let (parts, body) = request.into_parts();
        let mut response = self
            .http
            .request(parts.method, url.clone())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| CallError(format!("{}: {}", url.host_str().unwrap_or_default(), plain(&e))))?;
        let mut out = openidconnect::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            out = out.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| CallError(format!("reading the answer: {}", plain(&e))))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(CallError(format!("the answer is larger than {MAX_ANSWER} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        out.body(body).map_err(|e| CallError(e.to_string()))
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Guarded {
    type Error = CallError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpResponse, CallError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// What a provider sends back to `/sso/callback`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Callback {
    #[serde(default)]
    pub state: String,
    pub code: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A resolver that answers only public addresses.
struct PublicOnly;

impl openidconnect::reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: openidconnect::reqwest::dns::Name) -> openidconnect::reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves only to loopback, private or link-local addresses").into());
            }
            Ok(Box::new(addrs.into_iter()) as openidconnect::reqwest::dns::Addrs)
        })
    }
}

/// Does this URL name a loopback, private or link-local address (or `localhost`) outright?
pub fn names_private_address(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => true,
    }
}

/// Loopback, private, shared, link-local, unspecified or broadcast: addresses of the host's own network.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out.chars().take(300).collect()
}

fn plain(e: &openidconnect::reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        error_chain(e)
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_the_hosts_network_are_private() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.3.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
