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
    email: String,
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

fn client_ip(parts_ip: Option<SocketAddr>) -> String {
    parts_ip.map(|a| a.ip().to_string()).unwrap_or_default()
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RequestHost(host): RequestHost,
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
    let ip = client_ip(Some(peer));
    let db = state.db.tenant(&tenant.id);
    let now = now_ms();
    let window_start = now - state.config.login_window_secs * 1000;

    // Throttle: failures are counted in the database so every replica sees them.
    let mut tx = db.begin_read().await?;
    let by_email: i64 = tx
        .query("SELECT COUNT(*) FROM login_failures WHERE tenant_id = $1 AND email = $2 AND at > $3")
        .bind(email.clone())
        .bind(window_start)
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    let by_ip: i64 = tx
        .query("SELECT COUNT(*) FROM login_failures WHERE tenant_id = $1 AND ip = $2 AND at > $3")
        .bind(ip.clone())
        .bind(window_start)
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    let user = tx
        .query("SELECT id, name, status, password_hash, locale FROM users WHERE tenant_id = $1 AND lower(email) = $2")
        .bind(email.clone())
        .fetch_optional(tx.conn())
        .await?;
    tx.commit().await?;
    if by_email >= state.config.login_max_failures || by_ip >= state.config.login_max_failures * 4 {
        return Err(ApiError::TooManyRequests {
            message: "too many failed sign-ins; wait a while and try again".into(),
            retry_after_secs: state.config.login_window_secs as u64,
        });
    }

    let stored = user
        .as_ref()
        .and_then(|u| u.try_get::<Option<String>, _>("password_hash").ok().flatten());
    // Verify against a dummy hash when there is no user, so timing does not tell who has an account.
    let ok = password::verify(
        req.password,
        stored.clone().unwrap_or_else(|| (*state.dummy_hash).clone()),
    )
    .await
        && stored.is_some();
    let mut tx = db.begin().await?;
    let Some(user) = user.filter(|_| ok) else {
        tx.query("INSERT INTO login_failures (id, tenant_id, email, ip, at) VALUES ($2, $1, $3, $4, $5)")
            .bind(new_id())
            .bind(email)
            .bind(ip)
            .bind(now)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        return Err(ApiError::Unauthenticated {
            code: "invalid_credentials",
            message: "the e-mail or password is not right".into(),
        });
    };
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
    // A licence seat is taken at a user's first sign-in; this transaction writes, so concurrent first
    // sign-ins queue for the count (see `claim_seat`).
    crate::learning::signup::seats::claim(&mut tx, tenant.settings.seat_limit, &user_id).await?;
    tx.query("DELETE FROM login_failures WHERE tenant_id = $1 AND (email = $2 OR at < $3)")
        .bind(email.clone())
        .bind(window_start)
        .execute(tx.conn())
        .await?;
    let cookie = crate::auth::session::open(&mut tx, &state.config, &user_id, now).await?;
    // A licence seat is counted at first login.
    tx.query("UPDATE users SET first_login_at = coalesce(first_login_at, $3), last_login_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?;
    // Every successful sign-in, for the activity report (written with the session, so both or neither).
    tx.query("INSERT INTO login_events (id, tenant_id, user_id, at) VALUES ($2, $1, $3, $4)")
        .bind(new_id())
        .bind(user_id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?;
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
    current_password: String,
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
        Some(h) => password::verify(req.current_password, h).await,
        None => false,
    };
    if !ok {
        return Err(ApiError::BadRequest {
            code: "wrong_password",
            message: "the current password is not right".into(),
            field: Some("current_password".into()),
        });
    }
    let hash = password::hash(req.new_password).await?;
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
