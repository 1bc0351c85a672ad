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
            "Create your own account, as the academy's sign-up policy allows; signs you in unless it awaits approval",
        )
        .auth(Auth::Public)
        .status(201),
        post(signup),
    );
    api.op_out::<Page<SignupRecord>>(
        Op::get("/api/v1/signups", "Sign-ups within your scope")
            .permission("users.write")
            .query(&[
                ("status", "pending, approved or rejected"),
                ("limit", "page size, 1–500"),
                ("cursor", "from next_cursor"),
            ]),
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
    let done = workflow::sign_up(&db, &state.config, &state.plugins, &tenant, req, request_id(&headers)).await?;
    let mut response = (StatusCode::CREATED, axum::Json(done.out)).into_response();
    if let Some(v) = done.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
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
