//! Sign-in, sign-out, the current user, and password change.

use super::api::{Api, Auth, Op};
use super::common::Json;
use crate::auth::{Caller, CallerVia, RequestHost, password};
use crate::db::{new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::net::SocketAddr;

pub fn routes(api: &mut Api) {
    api.tag("auth");
    api.op_io::<LoginRequest, Me>(
        Op::post(
            "/api/v1/auth/login",
            "Sign in with e-mail and password; sets the session cookie",
        )
        .auth(Auth::Public),
        post(login),
    );
    api.op(
        Op::post("/api/v1/auth/logout", "End the current session").status(204),
        post(logout),
    );
    api.op_out::<Me>(
        Op::get("/api/v1/me", "The signed-in user, their tenant and permissions"),
        get(me),
    );
    api.op_in::<PasswordChange>(
        Op::post("/api/v1/me/password", "Change your password (ends your other sessions)").status(204),
        post(change_password),
    );
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    #[schemars(length(min = 1, max = 254), regex(pattern = r"\S"))]
    email: String,
    #[schemars(length(max = 256))]
    password: String,
}

/// The signed-in user.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Me {
    id: String,
    email: String,
    name: String,
    tenant: String,
    tenant_name: String,
    permissions: Vec<&'static str>,
    /// Your language; `null`: your organization's or the academy's default applies.
    locale: Option<String>,
}

/// The client's address: the connection's, or, behind a proxy the settings trust (`trust_forwarded_host`),
/// the one the proxy appended last to `X-Forwarded-For` (earlier entries are whatever the client claimed).
fn client_address(peer: SocketAddr, headers: &HeaderMap, trust_proxy: bool) -> String {
    let forwarded = trust_proxy
        .then(|| headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|list| list.rsplit(',').next())
        .map(str::trim)
        .filter(|a| a.parse::<std::net::IpAddr>().is_ok());
    forwarded.map_or_else(|| peer.ip().to_string(), str::to_owned)
}

/// How many failed sign-ins within the window refuse the next attempt: for one e-mail from one address (the
/// configured limit), from one address for any e-mail (four times it), and for one e-mail from everywhere
/// (twenty times it: a guesser spread over many addresses is stopped, while one address cannot lock an
/// account out for everyone).
struct Throttle {
    email_from_address: i64,
    address: i64,
    email: i64,
}

/// Failed sign-ins since `since` that match `filter` (over `$2`, `$3`, … bound from `keys`).
async fn count_failures(
    tx: &mut crate::db::TenantTx,
    filter: &str,
    keys: &[&String],
    since: i64,
) -> Result<i64, sqlx::Error> {
    let sql = format!(
        "SELECT COUNT(*) FROM login_failures WHERE tenant_id = $1 AND {filter} AND at > ${}",
        keys.len() + 2
    );
    let mut query = tx.query(&sql);
    for key in keys {
        query = query.bind((*key).clone());
    }
    query.bind(since).fetch_one(tx.conn()).await?.try_get(0)
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RequestHost(host): RequestHost,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let tenant = super::common::public_academy(host, "sign in")?;
    let email = req.email.trim().to_lowercase();
    if email.is_empty() || email.len() > 254 {
        return Err(ApiError::invalid("email", "must be an e-mail address"));
    }
    if req.password.len() > 1024 {
        return Err(ApiError::invalid("password", "is too long"));
    }
    let ip = client_address(peer, &headers, state.config.trust_forwarded_host);
    let db = state.db.tenant(&tenant.id);
    // An address whose domain an identity provider signs in, with password sign-in off, signs in there only.
    let mut read = db.begin_read().await?;
    let required = crate::identity::providers::required_for(&mut read, &email).await?;
    read.commit().await?;
    if let Some(provider) = required {
        return Err(ApiError::Forbidden {
            code: "sso_required",
            message: format!("addresses of this domain sign in through {}", provider.name),
        });
    }
    let now = now_ms();
    let window_start = now - state.config.login_window_secs * 1000;
    let limits = Throttle {
        email_from_address: state.config.login_max_failures,
        address: state.config.login_max_failures * 4,
        email: state.config.login_max_failures * 20,
    };

    // The attempt counts as a failure before the password is checked, in the same transaction as the
    // counting: parallel attempts queue on it (SQLite's write lock; on PostgreSQL a lock on the e-mail), so
    // however many arrive at once, no more than the limit are ever checked. A right password takes its
    // failure back.
    let attempt = new_id();
    let mut tx = db.begin().await?;
    if tx.backend() == crate::db::Backend::Postgres {
        tx.query(
            "SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(7302, hashtext($1 || ':' || $2))) AS sign_in_lock",
        )
        .bind(email.clone())
        .execute(tx.conn())
        .await?;
    }
    let from_here = count_failures(&mut tx, "email = $2 AND ip = $3", &[&email, &ip], window_start).await?;
    let by_ip = count_failures(&mut tx, "ip = $2", &[&ip], window_start).await?;
    let by_email = count_failures(&mut tx, "email = $2", &[&email], window_start).await?;
    if from_here >= limits.email_from_address || by_ip >= limits.address || by_email >= limits.email {
        tx.commit().await?;
        return Err(ApiError::TooManyRequests {
            message: "too many failed sign-ins; wait a while and try again".into(),
            retry_after_secs: state.config.login_window_secs as u64,
        });
    }
    tx.query("INSERT INTO login_failures (id, tenant_id, email, ip, at) VALUES ($2, $1, $3, $4, $5)")
        .bind(attempt.clone())
        .bind(email.clone())
        .bind(ip.clone())
        .bind(now)
        .execute(tx.conn())
        .await?;
    let user = tx
        .query("SELECT id, name, status, password_hash, locale FROM users WHERE tenant_id = $1 AND lower(email) = $2")
        .bind(email.clone())
        .fetch_optional(tx.conn())
        .await?;
    tx.commit().await?;

    let stored = user
        .as_ref()
        .and_then(|u| u.try_get::<Option<String>, _>("password_hash").ok().flatten());
    // Verify against a dummy hash when there is no user, so timing does not tell who has an account.
    let ok = password::verify(
        &tenant.id,
        req.password,
        stored.clone().unwrap_or_else(|| (*state.dummy_hash).clone()),
    )
    .await?
        && stored.is_some();
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::Unauthenticated {
            code: "invalid_credentials",
            message: "the e-mail or password is not right".into(),
        });
    };
    let mut tx = db.begin().await?;
    let status: String = user.try_get("status")?;
    if status != "active" {
        return Err(ApiError::Forbidden {
            code: "account_inactive",
            message: if status == "pending" {
                "this account awaits an administrator's approval".to_owned()
            } else {
                format!("this account is {status}")
            },
        });
    }
    let user_id: String = user.try_get("id")?;
    // A right password: this attempt was no failure, and the e-mail's earlier failures from this address are
    // forgiven; old ones of anybody are dropped.
    tx.query("DELETE FROM login_failures WHERE tenant_id = $1 AND (id = $2 OR (email = $3 AND ip = $4) OR at < $5)")
        .bind(attempt)
        .bind(email.clone())
        .bind(ip)
        .bind(window_start)
        .execute(tx.conn())
        .await?;
    let cookie = crate::identity::provision::open_session(&mut tx, &state.config, &tenant, &user_id, now).await?;
    let grants = crate::auth::load_grants(&mut tx, &user_id).await?;
    tx.commit().await?;

    let body = Me {
        id: user_id,
        email,
        name: user.try_get("name")?,
        tenant: tenant.slug.clone(),
        tenant_name: tenant.name.clone(),
        permissions: grants.permission_names(),
        locale: user.try_get("locale")?,
    };
    let mut response = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

async fn logout(caller: Caller) -> ApiResult<(StatusCode, HeaderMap)> {
    let mut tx = caller.db().begin().await?;
    match &caller.via {
        CallerVia::Session(hash) => crate::auth::session::end(&mut tx, hash).await?,
        CallerVia::Token(_) => {
            return Err(ApiError::rule(
                "not_a_session",
                None,
                "API tokens are revoked with DELETE /api/v1/tokens/{id}",
            ));
        }
    }
    tx.commit().await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static(crate::auth::session::CLEAR_COOKIE),
    );
    Ok((StatusCode::NO_CONTENT, headers))
}

impl Me {
    /// The signed-in caller as `GET /api/v1/me` shows them.
    pub(super) fn of(caller: &Caller, locale: Option<String>) -> Me {
        Me {
            locale,
            id: caller.user_id.clone(),
            email: caller.email.clone(),
            name: caller.name.clone(),
            tenant: caller.tenant.slug.clone(),
            tenant_name: caller.tenant.name.clone(),
            permissions: caller.grants.permission_names(),
        }
    }
}

async fn me(caller: Caller) -> ApiResult<axum::Json<Me>> {
    let mut tx = caller.db().begin_read().await?;
    let locale: Option<String> = tx
        .query("SELECT locale FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(caller.user_id.clone())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(axum::Json(Me::of(&caller, locale)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    #[schemars(length(max = 256))]
    current_password: String,
    #[schemars(length(min = 10, max = 200))]
    new_password: String,
}

async fn change_password(caller: Caller, Json(req): Json<PasswordChange>) -> ApiResult<StatusCode> {
    password::check_new("new_password", &req.new_password)?;
    let mut tx = caller.db().begin_read().await?;
    let stored: Option<String> = tx
        .query("SELECT password_hash FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(caller.user_id.clone())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    tx.commit().await?;
    let ok = match stored {
        Some(h) => password::verify(&caller.tenant.id, req.current_password, h).await?,
        None => false,
    };
    if !ok {
        return Err(ApiError::BadRequest {
            code: "wrong_password",
            message: "the current password is not right".into(),
            field: Some("current_password".into()),
        });
    }
    let hash = password::hash(&caller.tenant.id, req.new_password).await?;
    let mut tx = caller.db().begin().await?;
    tx.query("UPDATE users SET password_hash = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(caller.user_id.clone())
        .bind(hash)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    // Every other session ends, and every API token: whoever learnt the old password may have made one. The
    // session in use stays.
    let keep = match &caller.via {
        CallerVia::Session(h) => Some(h.as_str()),
        CallerVia::Token(_) => None,
    };
    crate::auth::session::end_others(&mut tx, &caller.user_id, keep).await?;
    crate::auth::session::revoke_tokens(&mut tx, &caller.user_id).await?;
    crate::audit::record(
        &mut tx,
        &caller.actor(),
        crate::audit::Change {
            action: "user.password_change",
            target_type: "user",
            target_id: Some(&caller.user_id),
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
