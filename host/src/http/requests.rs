//! Requests to join a course that needs approval: the queue, approving and rejecting.

use super::api::{Api, Op};
use super::common::{Json, Path, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::Timestamp;
use crate::db::{Sql, TenantTx, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::learning::Source;
use crate::learning::enroll::{self, NewEnrollment};
use crate::learning::records::*;
use crate::scope::{Permission, Reach};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::FromRow;

pub fn routes(api: &mut Api) {
    api.tag("enrollments");
    api.op_out::<Vec<RequestOut>>(
        Op::get(
            "/api/v1/enrollment-requests",
            "Requests waiting for approval, of users within your scope",
        )
        .permission("enrollments.write")
        .query(&[("status", "pending (default), approved, rejected or withdrawn")])
        .query_schema(
            "status",
            serde_json::json!({"type": "string", "enum": ["pending", "approved", "rejected", "withdrawn"]}),
        ),
        get(requests),
    );
    api.op_io::<Decision, RequestOut>(
        Op::post(
            "/api/v1/enrollment-requests/{id}/approve",
            "Approve a request: the user is enrolled",
        )
        .permission("enrollments.write"),
        post(approve),
    );
    api.op_io::<Decision, RequestOut>(
        Op::post("/api/v1/enrollment-requests/{id}/reject", "Reject a request").permission("enrollments.write"),
        post(reject),
    );
}

/// The automation context of a person's request: plugin actions stay within what they may change.
/// A request to join a course.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct RequestOut {
    id: String,
    user_id: String,
    #[sqlx(rename = "email")]
    user_email: String,
    course_id: String,
    #[sqlx(rename = "title")]
    course_title: String,
    /// pending, approved, rejected or withdrawn.
    status: String,
    note: Option<String>,
    decided_at: Option<Timestamp>,
    created_at: Timestamp,
}

const REQUEST_SELECT: &str = "SELECT r.id, r.user_id, u.email, r.course_id, c.title, r.status, r.note, r.decided_at, r.created_at \
    FROM enrollment_requests r JOIN users u ON u.id = r.user_id JOIN courses c ON c.id = r.course_id WHERE r.tenant_id = $1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestParams {
    status: Option<String>,
}

async fn requests(caller: Caller, Query(p): Query<RequestParams>) -> ApiResult<axum::Json<Vec<RequestOut>>> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let status = p.status.unwrap_or_else(|| "pending".into());
    if !["pending", "approved", "rejected", "withdrawn"].contains(&status.as_str()) {
        return Err(ApiError::invalid(
            "status",
            "must be pending, approved, rejected or withdrawn",
        ));
    }
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(REQUEST_SELECT);
    sql.push(" AND r.status = ").push_bind(status);
    reach.push_user_filter(&mut sql, tx.backend());
    sql.push(" ORDER BY r.created_at, r.id LIMIT 500");
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(RequestOut::from_row).collect::<Result<_, _>>()?,
    ))
}

#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    /// Shown to the learner.
    #[schemars(length(max = 1000), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    note: Option<String>,
}

async fn request_by_id(tx: &mut TenantTx, id: &str) -> ApiResult<RequestOut> {
    let mut sql = Sql::tenant(REQUEST_SELECT);
    sql.push(" AND r.id = ").push_bind(id);
    let row = tx.fetch_optional_sql(&sql).await?.ok_or(ApiError::NotFound {
        what: "enrollment request",
    })?;
    Ok(RequestOut::from_row(&row)?)
}

async fn pending_request(tx: &mut TenantTx, reach: &Reach, id: &str) -> ApiResult<RequestOut> {
    let mut sql = Sql::tenant(REQUEST_SELECT);
    sql.push(" AND r.id = ").push_bind(id);
    reach.push_user_filter(&mut sql, tx.backend());
    let row = tx.fetch_optional_sql(&sql).await?.ok_or(ApiError::NotFound {
        what: "enrollment request",
    })?;
    let request = RequestOut::from_row(&row)?;
    if request.status != "pending" {
        return Err(ApiError::rule(
            "request_decided",
            None,
            format!("this request is already {}", request.status),
        ));
    }
    Ok(request)
}

async fn decide(tx: &mut TenantTx, caller: &Caller, id: &str, status: &str, note: Option<String>) -> ApiResult<()> {
    let note = super::common::opt_text("note", note.as_deref(), 1000)?;
    tx.query("UPDATE enrollment_requests SET status = $3, note = $4, decided_by = $5, decided_at = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .bind(status.to_owned())
        .bind(note)
        .bind(caller.user_id.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    Ok(())
}

async fn approve(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Decision>,
) -> ApiResult<axum::Json<RequestOut>> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let mut tx = caller.db().begin().await?;
    let request = pending_request(&mut tx, &reach, &id).await?;
    course_for_reach(&mut tx, &reach, &request.course_id, "course_id").await?;
    decide(&mut tx, &caller, &id, "approved", req.note).await?;
    let item = NewEnrollment {
        user_id: request.user_id.clone(),
        course_id: request.course_id.clone(),
        due_at: None,
    };
    let enrolled = enroll::enroll_many(&mut tx, &[item], &Source::person(&caller.actor()), "approval").await?;
    if let Some(enrollment) = enrolled.first().filter(|e| e.changed()) {
        let event = crate::outbox::Event::enrollment(
            crate::outbox::Kind::Approved,
            &request.user_id,
            &request.course_id,
            enrollment.id(),
        )
        .by(Some(&caller.user_id));
        crate::outbox::emit(&mut tx, &[event]).await?;
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "enrollment_request.approve",
            "enrollment_request",
            &id,
            json!(request),
            json!({"status": "approved"}),
        ),
    )
    .await?;
    let out = request_by_id(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn reject(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Decision>,
) -> ApiResult<axum::Json<RequestOut>> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let mut tx = caller.db().begin().await?;
    let request = pending_request(&mut tx, &reach, &id).await?;
    decide(&mut tx, &caller, &id, "rejected", req.note).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "enrollment_request.reject",
            "enrollment_request",
            &id,
            json!(request),
            json!({"status": "rejected"}),
        ),
    )
    .await?;
    let out = request_by_id(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}
