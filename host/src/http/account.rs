//! A person's own account: a password reset by e-mailed link, their name and language, and how they want
//! to be notified.

use super::api::{Api, Auth, Op};
use super::auth::Me;
use super::common::{Json, Path, double_option, email, text};
use crate::audit::{Change, record};
use crate::auth::{Actor, Caller, RequestHost, password, random_secret, secret_hash};
use crate::db::{Backend, TenantTx, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::mail::Outgoing;
use crate::state::AppState;
use crate::tenancy::Tenant;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch, post, put};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};
use sqlx::Row;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// How long a reset link works.
const RESET_LINK_MS: i64 = 3_600_000;
/// At most this many reset mails go to one address within [`RESET_WINDOW_MS`]; further requests are
/// answered the same way and send nothing.
const RESET_MAILS_PER_WINDOW: i64 = 5;
/// The window of that throttle.
const RESET_WINDOW_MS: i64 = 3_600_000;

/// The notifications a person can tune, with what each is about. This is the one list: the API's schema,
/// the checks and the defaults all come from it.
pub const NOTIFICATION_KINDS: &[(&str, &str)] = &[
    ("enrolled", "you were enrolled in a course or program"),
    ("due_soon", "a course of yours is due soon"),
    ("overdue", "a course of yours is overdue"),
    ("completed", "you completed a course"),
    ("certificate_issued", "a certificate was issued to you"),
    (
        "approval",
        "an enrollment request awaits your decision, or your own request was decided",
    ),
];

pub fn routes(api: &mut Api) {
    api.tag("account");
    api.op_io::<ResetRequest, ResetAccepted>(
        Op::post(
            "/api/v1/auth/password-reset",
            "Ask for a password reset link by e-mail (the answer is the same whether or not the account exists)",
        )
        .auth(Auth::Public)
        .status(202),
        post(request_reset),
    );
    api.op_in::<NewPassword>(
        Op::post(
            "/api/v1/auth/password-reset/{token}",
            "Set a new password with a reset link (ends every session and API token of the account)",
        )
        .auth(Auth::Public)
        .status(204),
        post(reset_password),
    );
    api.op_io::<MePatch, Me>(
        Op::patch("/api/v1/me", "Change your own name and language"),
        patch(update_me),
    );
    api.op_out::<Preferences>(
        Op::get(
            "/api/v1/me/notification-preferences",
            "How you want each kind of notification",
        ),
        get(preferences),
    );
    api.op_io::<Preferences, Preferences>(
        Op::put(
            "/api/v1/me/notification-preferences",
            "Change how you want some kinds of notification (the others keep theirs)",
        ),
        put(set_preferences),
    );
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    /// The e-mail address of the account.
    #[schemars(length(max = 254), regex(pattern = crate::fields::pattern::EMAIL))]
    email: String,
}

/// The answer to a reset request: always the same.
#[derive(Serialize, schemars::JsonSchema)]
struct ResetAccepted {
    message: &'static str,
}

const RESET_ACCEPTED: &str = "if an active account with this e-mail address exists in this academy, a link to set a new password is on its way; it works once, for one hour";

async fn request_reset(
    State(state): State<AppState>,
    RequestHost(host): RequestHost,
    headers: HeaderMap,
    Json(req): Json<ResetRequest>,
) -> ApiResult<(StatusCode, axum::Json<ResetAccepted>)> {
    let tenant = super::common::public_academy(host, "reset your password")?;
    let address = email("email", &req.email)?;
    let now = now_ms();
    let mut tx = state.db.tenant(&tenant.id).begin().await?;
    // Links past their end that no longer count for the throttle serve nothing any more.
    tx.query("DELETE FROM password_resets WHERE tenant_id = $1 AND expires_at < $2 AND created_at < $2")
        .bind(now - RESET_WINDOW_MS)
        .execute(tx.conn())
        .await?;
    // On PostgreSQL the account's row is held until commit, so concurrent requests count one another
    // (SQLite writers already hold the database).
    let find_user = match tx.backend() {
        Backend::Postgres => {
            "SELECT id, name, locale FROM users WHERE tenant_id = $1 AND lower(email) = $2 AND status = 'active' FOR UPDATE"
        }
        Backend::Sqlite => {
            "SELECT id, name, locale FROM users WHERE tenant_id = $1 AND lower(email) = $2 AND status = 'active'"
        }
    };
    let user = tx
        .query(find_user)
        .bind(address.clone())
        .fetch_optional(tx.conn())
        .await?;
    let mut mail = None;
    if let Some(user) = user {
        let sent: i64 = tx
            .query("SELECT COUNT(*) FROM password_resets WHERE tenant_id = $1 AND email = $2 AND created_at > $3")
            .bind(address.clone())
            .bind(now - RESET_WINDOW_MS)
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        if sent < RESET_MAILS_PER_WINDOW {
            let user_id: String = user.try_get("id")?;
            let token = random_secret();
            tx.query(
                "INSERT INTO password_resets (id, tenant_id, user_id, email, secret_hash, created_at, expires_at) \
                 VALUES ($2, $1, $3, $4, $5, $6, $7)",
            )
            .bind(new_id())
            .bind(user_id.clone())
            .bind(address.clone())
            .bind(secret_hash(&token))
            .bind(now)
            .bind(now + RESET_LINK_MS)
            .execute(tx.conn())
            .await?;
            // Whoever asked is not known to be the account's owner: the entry names no actor.
            let actor = Actor {
                request_id: crate::auth::extract::request_id(&headers),
                ..Actor::system("password reset request")
            };
            record(
                &mut tx,
                &actor,
                Change::created("user.password_reset_link", "user", &user_id, json!({"email": address})),
            )
            .await?;
            let scheme = if state.config.cookie_secure { "https" } else { "http" };
            let host = crate::auth::extract::link_host(&headers, &state.config, &tenant);
            let locale: Option<String> = user.try_get("locale")?;
            mail = Some(reset_mail(
                &tenant,
                &address,
                user.try_get("name")?,
                locale.as_deref().unwrap_or(&tenant.settings.default_locale),
                &format!("{scheme}://{host}/password-reset/{token}"),
            ));
        } else {
            tracing::info!(tenant = %tenant.slug, "password reset mails to this address are throttled");
        }
    }
    tx.commit().await?;
    if let Some(mail) = mail {
        // Sent in the background: how long the answer takes tells nothing about the account, and a slow
        // mail server does not hold the request.
        let mailer = state.mailer.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(mail).await {
                tracing::warn!(error = %e, "a password reset mail was not sent");
            }
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ResetAccepted {
            message: RESET_ACCEPTED,
        }),
    ))
}

/// The reset mail, in German for a German locale and in English otherwise.
fn reset_mail(tenant: &Tenant, to: &str, name: String, locale: &str, link: &str) -> Outgoing {
    let academy = &tenant.name;
    let german = locale == "de" || locale.starts_with("de-");
    let (subject, text) = if german {
        (
            format!("Neues Passwort für {academy}"),
            format!(
                "Hallo {name},\n\n\
                 für Ihr Konto bei {academy} ({to}) wurde ein neues Passwort angefordert. Über diesen Link legen Sie \
                 es fest; er gilt eine Stunde lang und nur einmal:\n\n{link}\n\n\
                 Wenn Sie das nicht angefordert haben, ignorieren Sie diese Nachricht: Ihr Passwort bleibt, wie es ist.\n\n\
                 {academy}\n"
            ),
        )
    } else {
        (
            format!("Reset your password for {academy}"),
            format!(
                "Hello {name},\n\n\
                 someone asked to reset the password of your {academy} account ({to}). Use this link to choose a new \
                 one; it works once, within the next hour:\n\n{link}\n\n\
                 If you did not ask for this, ignore this message: your password stays as it is.\n\n\
                 {academy}\n"
            ),
        )
    };
    Outgoing {
        to: to.to_owned(),
        to_name: Some(name),
        from_name: academy.clone(),
        subject,
        text,
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    /// At least 10 characters.
    #[schemars(length(min = 10, max = 200))]
    new_password: String,
}

fn link_invalid() -> ApiError {
    ApiError::BadRequest {
        code: "reset_link_invalid",
        message: "this password reset link is not valid: it was used already, has expired, or belongs to another \
                  address; ask for a new one"
            .into(),
        field: None,
    }
}

/// The account a reset link can still reset: unused, not expired, and the account active with the address
/// the link was sent to.
const USABLE_LINK: &str = "SELECT r.user_id, u.email FROM password_resets r JOIN users u ON u.id = r.user_id AND u.tenant_id = $1 \
     WHERE r.tenant_id = $1 AND r.secret_hash = $2 AND r.used_at IS NULL AND r.expires_at > $3 \
     AND u.status = 'active' AND lower(u.email) = r.email";

async fn reset_password(
    State(state): State<AppState>,
    RequestHost(host): RequestHost,
    headers: HeaderMap,
    Path(token): Path<String>,
    Json(req): Json<NewPassword>,
) -> ApiResult<StatusCode> {
    let tenant = super::common::public_academy(host, "reset your password")?;
    password::check_new("new_password", &req.new_password)?;
    let db = state.db.tenant(&tenant.id);
    let link = secret_hash(&token);
    // A cheap look first, so a wrong link costs no password hashing (which runs outside any transaction).
    let mut tx = db.begin_read().await?;
    let usable = tx
        .query(USABLE_LINK)
        .bind(link.clone())
        .bind(now_ms())
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    tx.commit().await?;
    if !usable {
        return Err(link_invalid());
    }
    let hash = password::hash(&tenant.id, req.new_password).await?;

    let now = now_ms();
    let mut tx = db.begin().await?;
    let row = tx
        .query(USABLE_LINK)
        .bind(link.clone())
        .bind(now)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(link_invalid)?;
    let user_id: String = row.try_get("user_id")?;
    let user_email: String = row.try_get("email")?;
    // Claim the link; of two uses at the same moment only one gets it.
    let claimed = tx
        .query("UPDATE password_resets SET used_at = $3 WHERE tenant_id = $1 AND secret_hash = $2 AND used_at IS NULL")
        .bind(link)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if claimed != 1 {
        return Err(link_invalid());
    }
    tx.query("UPDATE users SET password_hash = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.clone())
        .bind(hash)
        .bind(now)
        .execute(tx.conn())
        .await?;
    // A new password ends everything the old one opened: other reset links, sessions and API tokens. Failed
    // sign-ins are forgotten too (the mailbox proved who this is).
    for sql in [
        "UPDATE password_resets SET used_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL",
        "UPDATE api_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    ] {
        tx.query(sql).bind(user_id.clone()).bind(now).execute(tx.conn()).await?;
    }
    tx.query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
        .bind(user_id.clone())
        .execute(tx.conn())
        .await?;
    tx.query("DELETE FROM login_failures WHERE tenant_id = $1 AND email = $2")
        .bind(user_email.to_lowercase())
        .execute(tx.conn())
        .await?;
    let actor = Actor {
        kind: "user",
        id: Some(user_id.clone()),
        label: user_email,
        request_id: crate::auth::extract::request_id(&headers),
    };
    record(
        &mut tx,
        &actor,
        Change {
            action: "user.password_reset",
            target_type: "user",
            target_id: Some(&user_id),
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MePatch {
    /// Your name.
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    /// Your language: one of the academy's `allowed_locales`; `null` clears it, so the academy's default (or
    /// your browser's language) applies.
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(length(max = 20), regex(pattern = crate::fields::pattern::LOCALE))]
    locale: Option<Option<String>>,
}

/// The signed-in user, as `GET /api/v1/me` shows them, with their language.
async fn update_me(mut caller: Caller, Json(req): Json<MePatch>) -> ApiResult<axum::Json<Me>> {
    let name = req.name.as_deref().map(|n| text("name", n, 200)).transpose()?;
    if let Some(Some(locale)) = &req.locale {
        let allowed = &caller.tenant.settings.allowed_locales;
        if !allowed.contains(locale) {
            return Err(ApiError::invalid(
                "locale",
                format!("must be one of this academy's languages: {}", allowed.join(", ")),
            ));
        }
    }
    let mut tx = caller.db().begin().await?;
    let row = tx
        .query("SELECT name, locale FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(caller.user_id.clone())
        .fetch_one(tx.conn())
        .await?;
    let before_name: String = row.try_get("name")?;
    let before_locale: Option<String> = row.try_get("locale")?;
    let name = name.unwrap_or_else(|| before_name.clone());
    let locale = req.locale.unwrap_or_else(|| before_locale.clone());
    // Neither the name nor the language is something rules look at, so no rule runs on this change.
    tx.query("UPDATE users SET name = $3, locale = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2")
        .bind(caller.user_id.clone())
        .bind(name.clone())
        .bind(locale.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "user.update_own",
            "user",
            &caller.user_id,
            json!({"name": before_name, "locale": before_locale}),
            json!({"name": name, "locale": locale}),
        ),
    )
    .await?;
    tx.commit().await?;
    caller.name = name;
    Ok(axum::Json(Me::of(&caller, locale)))
}

/// How a notification reaches its person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// By itself, as soon as it happens (the default).
    Immediately,
    /// Gathered into a periodic digest.
    Digest,
    /// Not at all.
    Never,
}

impl DeliveryMode {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Immediately => "immediately",
            DeliveryMode::Digest => "digest",
            DeliveryMode::Never => "never",
        }
    }

    fn parse(word: &str) -> Option<DeliveryMode> {
        match word {
            "immediately" => Some(DeliveryMode::Immediately),
            "digest" => Some(DeliveryMode::Digest),
            "never" => Some(DeliveryMode::Never),
            _ => None,
        }
    }
}

/// Read from a string, so that anything else (`null` included) is refused naming the kind it was given for.
impl<'de> Deserialize<'de> for DeliveryMode {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let word = String::deserialize(de)?;
        DeliveryMode::parse(&word).ok_or_else(|| serde::de::Error::custom("must be immediately, digest or never"))
    }
}

/// A delivery mode per notification kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Preferences(BTreeMap<String, DeliveryMode>);

impl JsonSchema for Preferences {
    fn schema_name() -> Cow<'static, str> {
        "NotificationPreferences".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut properties = Map::new();
        for (kind, about) in NOTIFICATION_KINDS {
            let mut mode = generator.subschema_for::<DeliveryMode>();
            mode.insert("description".into(), json!(format!("When {about}.")));
            properties.insert((*kind).to_owned(), mode.to_value());
        }
        schemars::json_schema!({
            "type": "object",
            "description": "A delivery mode per notification kind; a kind never set is delivered immediately.",
            "properties": properties,
            "additionalProperties": false,
        })
    }
}

/// A person's preferences, every kind filled in (stored, or the default).
async fn load_preferences(tx: &mut TenantTx, user_id: &str) -> ApiResult<Preferences> {
    let rows = tx
        .query("SELECT kind, mode FROM notification_preferences WHERE tenant_id = $1 AND user_id = $2")
        .bind(user_id.to_owned())
        .fetch_all(tx.conn())
        .await?;
    let mut out: BTreeMap<String, DeliveryMode> = NOTIFICATION_KINDS
        .iter()
        .map(|(kind, _)| ((*kind).to_owned(), DeliveryMode::Immediately))
        .collect();
    for row in rows {
        let kind: String = row.try_get("kind")?;
        let mode: String = row.try_get("mode")?;
        // A kind that is no longer offered is left out.
        if let (Some(slot), Some(mode)) = (out.get_mut(&kind), DeliveryMode::parse(&mode)) {
            *slot = mode;
        }
    }
    Ok(Preferences(out))
}

async fn preferences(caller: Caller) -> ApiResult<axum::Json<Preferences>> {
    let mut tx = caller.db().begin_read().await?;
    let out = load_preferences(&mut tx, &caller.user_id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn set_preferences(caller: Caller, Json(req): Json<Preferences>) -> ApiResult<axum::Json<Preferences>> {
    if let Some(unknown) = req
        .0
        .keys()
        .find(|k| !NOTIFICATION_KINDS.iter().any(|(kind, _)| kind == k))
    {
        let kinds: Vec<&str> = NOTIFICATION_KINDS.iter().map(|(kind, _)| *kind).collect();
        return Err(ApiError::BadRequest {
            code: "unknown_field",
            message: format!(
                "there is no notification kind {unknown:?}; the kinds are {}",
                kinds.join(", ")
            ),
            field: Some(unknown.clone()),
        });
    }
    let mut tx = caller.db().begin().await?;
    let before = load_preferences(&mut tx, &caller.user_id).await?;
    let now = now_ms();
    for (kind, mode) in &req.0 {
        tx.query(
            "INSERT INTO notification_preferences (tenant_id, user_id, kind, mode, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, user_id, kind) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at",
        )
        .bind(caller.user_id.clone())
        .bind(kind.clone())
        .bind(mode.as_str())
        .bind(now)
        .execute(tx.conn())
        .await?;
    }
    let after = load_preferences(&mut tx, &caller.user_id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "user.notification_preferences",
            "user",
            &caller.user_id,
            json!(before),
            json!(after),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant {
            id: "t".into(),
            slug: "acme".into(),
            name: "Acme Academy".into(),
            status: "active".into(),
            settings: Default::default(),
            domains: Vec::new(),
            created_at: String::new(),
        }
    }

    #[test]
    fn reset_mails_speak_the_account_language() {
        let link = "https://acme.example.com/password-reset/abc";
        let de = reset_mail(&tenant(), "olga@acme.test", "Olga".into(), "de-CH", link);
        assert!(de.subject.contains("Passwort"), "{}", de.subject);
        assert!(de.text.contains("Hallo Olga") && de.text.contains(link), "{}", de.text);
        let en = reset_mail(&tenant(), "ada@acme.test", "Ada".into(), "dk", link);
        assert!(en.subject.starts_with("Reset your password"), "{}", en.subject);
        assert!(en.text.contains("Hello Ada") && en.text.contains(link), "{}", en.text);
        assert_eq!(en.from_name, "Acme Academy");
    }

    #[test]
    fn every_kind_is_in_the_schema_and_nothing_else() {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        let schema = Preferences::json_schema(&mut generator).to_value();
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.len(), NOTIFICATION_KINDS.len());
        assert_eq!(schema["additionalProperties"], json!(false));
        for mode in ["immediately", "digest", "never"] {
            assert_eq!(DeliveryMode::parse(mode).map(DeliveryMode::as_str), Some(mode));
        }
    }
}
