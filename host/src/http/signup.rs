//! Sign-up: the public sign-up (as the academy's policy allows), and the queue of sign-ups held for approval.
//! The workflow is `learning::signup`; these handlers parse, call it, and answer.

use super::api::{Api, Auth, Op};
use super::common::{Json, Page, PageParams, Path, Query, public_academy};
use crate::audit::{Change, record};
use crate::auth::extract::request_id;
use crate::auth::{Caller, RequestHost};
use crate::error::ApiResult;
use crate::learning::automation;
use crate::learning::signup::approval::{self, SignupRecord};
use crate::learning::signup::workflow::{self, SignupBody, SignupOut};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

pub fn routes(api: &mut Api) {
    api.tag("signup");
    api.op_io::<SignupBody, SignupOut>(
        Op::post(
            "/api/v1/signup",
            "Create your own account, as the academy's sign-up policy allows; signs you in unless it awaits approval. \
             An address whose claimed domain places it must be confirmed first: 202 with status `unverified`, and \
             a link goes to the address",
        )
        .auth(Auth::Public)
        .status(201)
        .also(202),
        post(signup),
    );
    api.op_io::<VerifyBody, SignupOut>(
        Op::post(
            "/api/v1/signup/verify",
            "Confirm the address of a waiting sign-up with the link's token: the account is created as the sign-up \
             asked (and signed in unless it awaits approval); the link works once, for 24 hours",
        )
        .auth(Auth::Public)
        .status(201),
        post(verify),
    );
    api.op_out::<Page<SignupRecord>>(
        Op::get("/api/v1/signups", "Sign-ups within your scope")
            .permission("users.write")
            .query(&[
                ("status", "pending, approved or rejected"),
                ("limit", "page size, 1–500"),
                ("cursor", "from next_cursor"),
            ])
            .query_schema(
                "status",
                serde_json::json!({"type": "string", "enum": ["pending", "approved", "rejected"]}),
            ),
        get(list_signups),
    );
    api.op_out::<SignupRecord>(
        Op::post(
            "/api/v1/signups/{id}/approve",
            "Approve a pending sign-up: the account becomes active",
        )
        .permission("users.write"),
        post(approve),
    );
    api.op_io::<Rejection, SignupRecord>(
        Op::post(
            "/api/v1/signups/{id}/reject",
            "Reject a pending sign-up: the account is removed, the record stays",
        )
        .permission("users.write"),
        post(reject),
    );
}

async fn signup(
    State(state): State<AppState>,
    RequestHost(host): RequestHost,
    headers: HeaderMap,
    Json(req): Json<SignupBody>,
) -> ApiResult<Response> {
    let tenant = public_academy(host, "sign up")?;
    let db = state.db.tenant(&tenant.id);
    let done = match workflow::sign_up(&db, &state.config, &state.plugins, &tenant, req, request_id(&headers)).await? {
        workflow::SignUp::Done(done) => done,
        workflow::SignUp::Verify(waiting) => {
            if let Some(token) = &waiting.token {
                let scheme = if state.config.cookie_secure { "https" } else { "http" };
                let host = crate::auth::extract::link_host(&headers, &state.config, &tenant);
                let link = format!("{scheme}://{host}/signup/verify/{token}");
                let mail = verify_mail(&tenant, &waiting, &link);
                // Sent in the background: the answer is the same whether or not a mail goes.
                let mailer = state.mailer.clone();
                tokio::spawn(async move {
                    if let Err(e) = mailer.send(mail).await {
                        tracing::warn!(error = %e, "a sign-up confirmation mail was not sent");
                    }
                });
            }
            return Ok((StatusCode::ACCEPTED, axum::Json(waiting.out)).into_response());
        }
    };
    Ok(signed_up(StatusCode::CREATED, done))
}

/// The answer to a decided sign-up, with the session cookie when one was started.
fn signed_up(status: StatusCode, done: workflow::SignedUp) -> Response {
    let mut response = (status, axum::Json(done.out)).into_response();
    if let Some(v) = done.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// The token of a confirmation link.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    /// The last part of the link.
    #[schemars(length(min = 1, max = 200))]
    token: String,
}

async fn verify(
    State(state): State<AppState>,
    RequestHost(host): RequestHost,
    headers: HeaderMap,
    Json(req): Json<VerifyBody>,
) -> ApiResult<Response> {
    let tenant = public_academy(host, "confirm a sign-up")?;
    let db = state.db.tenant(&tenant.id);
    let token = crate::fields::text("token", &req.token, 200)?;
    let done = workflow::verify(
        &db,
        &state.config,
        &state.plugins,
        &tenant,
        &token,
        request_id(&headers),
    )
    .await?;
    Ok(signed_up(StatusCode::CREATED, done))
}

/// The confirmation mail, in German for a German locale and in English otherwise.
fn verify_mail(tenant: &crate::tenancy::Tenant, waiting: &workflow::Verification, link: &str) -> crate::mail::Outgoing {
    let academy = &tenant.name;
    let (name, to) = (&waiting.name, &waiting.email);
    let locale = waiting.locale.as_deref().unwrap_or(&tenant.settings.default_locale);
    let german = locale == "de" || locale.starts_with("de-");
    let (subject, text) = if german {
        (
            format!("Bestätigen Sie Ihre E-Mail-Adresse für {academy}"),
            format!(
                "Hallo {name},\n\n\
                 mit dieser Adresse ({to}) wurde ein Konto bei {academy} beantragt. Über diesen Link bestätigen Sie \
                 die Adresse und legen das Konto an; er gilt 24 Stunden lang und nur einmal:\n\n{link}\n\n\
                 Wenn Sie das nicht waren, ignorieren Sie diese Nachricht: ohne Bestätigung entsteht kein Konto.\n\n\
                 {academy}\n"
            ),
        )
    } else {
        (
            format!("Confirm your e-mail address for {academy}"),
            format!(
                "Hello {name},\n\n\
                 someone signed up for {academy} with this address ({to}). Use this link to confirm it and create \
                 the account; it works once, within the next 24 hours:\n\n{link}\n\n\
                 If this was not you, ignore this message: without confirmation no account is created.\n\n\
                 {academy}\n"
            ),
        )
    };
    crate::mail::Outgoing {
        to: to.clone(),
        to_name: Some(name.clone()),
        from_name: academy.clone(),
        subject,
        text,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupParams {
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list_signups(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<SignupParams>,
) -> ApiResult<axum::Json<Page<SignupRecord>>> {
    let reach = caller.require(Permission::UsersWrite)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    let items = approval::list(&mut tx, &reach, p.status.as_deref(), p.cursor.as_deref(), limit).await?;
    tx.commit().await?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |s| s.id.clone())))
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SignupRecord>> {
    let reach = caller.require(Permission::UsersWrite)?;
    let mut tx = caller.db().begin().await?;
    let context = automation::Context::academy(caller.actor());
    let (before, after, _, pending) = approval::approve(&mut tx, &reach, &caller.user_id, context, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("signup.approve", "signup", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    for p in pending {
        automation::after_commit(&state.plugins, caller.db(), p).await;
    }
    Ok(axum::Json(after))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Rejection {
    /// Why, for the record (up to 1000 characters).
    #[schemars(length(max = 1000), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    reason: Option<String>,
}

async fn reject(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Rejection>,
) -> ApiResult<axum::Json<SignupRecord>> {
    let reach = caller.require(Permission::UsersWrite)?;
    let reason = super::common::opt_text("reason", req.reason.as_deref(), 1000)?;
    let mut tx = caller.db().begin().await?;
    let (before, after) = approval::reject(&mut tx, &reach, &caller.user_id, &id, reason).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("signup.reject", "signup", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}
