//! Enrollments as managers and admins see them: enroll (one user, or an organization subtree or segment in
//! bulk, as a job to poll), unenroll, due dates, completion. Requests to join a course are in `requests.rs`,
//! certificates in `certificates.rs`, program enrollments in `program_enrollments.rs`.

use super::api::{Api, Op};
use super::common::{Json, Page, PageParams, Path, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Sql, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::learning::Source;
use crate::learning::automation;
use crate::learning::enroll::{self, Enrolled, NewEnrollment};
use crate::learning::jobs::{JobOut, job_out, read_job};
use crate::learning::records::*;
use crate::learning::{jobs, progress};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

pub fn routes(api: &mut Api) {
    api.tag("enrollments");
    api.op_out::<Page<EnrollmentOut>>(
        Op::get("/api/v1/enrollments", "List enrollments of users within your scope")
            .permission("progress.read")
            .query(&[
                ("user_id", "Only this user"),
                ("course_id", "Only this course"),
                ("org_id", "Only users in this organization or below"),
                ("status", "enrolled, in_progress, completed, dropped or overdue"),
                ("limit", "1–500, default 50"),
                ("cursor", "From the previous page"),
            ])
            .query_schema("status", serde_json::json!({"type": "string", "enum": ["enrolled", "in_progress", "completed", "dropped", "overdue"]})),
        get(list),
    );
    api.op_io::<NewEnrollmentIn, EnrollmentOut>(
        Op::post(
            "/api/v1/enrollments",
            "Enroll a user in a course (idempotent: 200 when already enrolled)",
        )
        .permission("enrollments.write")
        .status(201)
        .also(200),
        post(create),
    );
    api.op_io::<BulkIn, JobOut>(
        Op::post(
            "/api/v1/enrollments/bulk",
            "Enroll every user of an organization subtree or a segment (a job)",
        )
        .permission("enrollments.write")
        .status(202),
        post(bulk),
    );
    api.op_out::<EnrollmentDetail>(
        Op::get("/api/v1/enrollments/{id}", "Read an enrollment with its full history").permission("progress.read"),
        get(read),
    );
    api.op_io::<EnrollmentPatch, EnrollmentOut>(
        Op::patch("/api/v1/enrollments/{id}", "Change an enrollment's due date").permission("enrollments.write"),
        axum::routing::patch(update),
    );
    api.op(
        Op::delete(
            "/api/v1/enrollments/{id}",
            "Unenroll (the enrollment is kept as dropped, with its history)",
        )
        .permission("enrollments.write")
        .status(204),
        axum::routing::delete(unenroll),
    );
    api.op_out::<EnrollmentOut>(
        Op::post(
            "/api/v1/enrollments/{id}/complete",
            "Record the course as completed (training done elsewhere)",
        )
        .permission("gradebook.write"),
        post(mark_complete),
    );
    api.op_out::<JobOut>(
        Op::get("/api/v1/jobs/{id}", "A job you started (or any, for academy admins)"),
        get(job),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    user_id: Option<String>,
    course_id: Option<String>,
    org_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<EnrollmentOut>>> {
    let reach = caller.require(Permission::ProgressRead)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(ENROLLMENT_SELECT);
    reach.push_user_filter(&mut sql, tx.backend());
    if let Some(user) = &p.user_id {
        sql.push(" AND e.user_id = ").push_bind(user);
    }
    if let Some(course) = &p.course_id {
        sql.push(" AND e.course_id = ").push_bind(course);
    }
    if let Some(org) = &p.org_id {
        let path = crate::directory::orgs::find(&mut tx, org)
            .await?
            .ok_or_else(|| ApiError::invalid("org_id", "no such organization"))?
            .path;
        sql.push(
            " AND EXISTS (SELECT 1 FROM memberships fm JOIN orgs fo ON fo.id = fm.org_id \
             WHERE fm.tenant_id = $1 AND fm.user_id = e.user_id AND fo.path LIKE ",
        )
        .push_bind(format!("{path}%"))
        .push(")");
    }
    match p.status.as_deref() {
        None => {}
        Some("overdue") => {
            sql.push(" AND e.status IN ('enrolled', 'in_progress') AND e.due_at < ")
                .push_bind(now_ms());
        }
        Some(s @ ("enrolled" | "in_progress" | "completed" | "dropped")) => {
            sql.push(" AND e.status = ").push_bind(s);
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "must be enrolled, in_progress, completed, dropped or overdue",
            ));
        }
    }
    if let Some(cursor) = &p.cursor {
        sql.push(" AND e.id > ").push_bind(cursor.as_str());
    }
    sql.push(" ORDER BY e.id LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let items = rows.iter().map(enrollment_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |e| e.id.clone())))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewEnrollmentIn {
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    user_id: String,
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    course_id: String,
    /// RFC 3339; the course's default when left out.
    #[schemars(regex(pattern = crate::fields::pattern::TIME))]
    due_at: Option<String>,
}

async fn create(
    caller: Caller,
    Json(req): Json<NewEnrollmentIn>,
) -> ApiResult<(StatusCode, axum::Json<EnrollmentOut>)> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let due_at = crate::fields::opt_time_field("due_at", req.due_at.as_deref())?;
    let mut tx = caller.db().begin().await?;
    user_in_reach(&mut tx, &reach, &req.user_id, "user_id").await?;
    course_for_reach(&mut tx, &reach, &req.course_id, "course_id").await?;
    let source = Source::person(&caller.actor());
    let item = NewEnrollment {
        user_id: req.user_id.clone(),
        course_id: req.course_id.clone(),
        due_at,
    };
    let result = enroll::enroll_many(&mut tx, &[item], &source, "manual")
        .await?
        .remove(0);
    let out = load(&mut tx, result.id()).await?;
    if result.changed() {
        record(
            &mut tx,
            &caller.actor(),
            Change::created("enrollment.create", "enrollment", result.id(), json!(out)),
        )
        .await?;
    }
    tx.commit().await?;
    let status = match result {
        Enrolled::Existing(_) => StatusCode::OK,
        _ => StatusCode::CREATED,
    };
    Ok((status, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct BulkIn {
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    course_id: String,
    /// Every member of this organization and the ones below it.
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    org_id: Option<String>,
    /// Every user the segment matches.
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    segment_id: Option<String>,
    /// RFC 3339; the course's default when left out.
    #[schemars(regex(pattern = crate::fields::pattern::TIME))]
    due_at: Option<String>,
}

async fn bulk(caller: Caller, Json(req): Json<BulkIn>) -> ApiResult<(StatusCode, axum::Json<JobOut>)> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let due_at = crate::fields::opt_time_field("due_at", req.due_at.as_deref())?;
    let mut tx = caller.db().begin_read().await?;
    course_for_reach(&mut tx, &reach, &req.course_id, "course_id").await?;
    // Who: the subtree or segment, always intersected with the caller's own reach.
    let mut who = Sql::tenant("SELECT u.id FROM users u WHERE u.tenant_id = $1 AND u.status IN ('active', 'pending')");
    match (&req.org_id, &req.segment_id) {
        (Some(org), None) => {
            let org = crate::directory::orgs::find(&mut tx, org)
                .await?
                .filter(|o| reach.covers_org_path(&o.path))
                .ok_or_else(|| ApiError::invalid("org_id", "no such organization within your scope"))?;
            who.push(
                " AND EXISTS (SELECT 1 FROM memberships bm JOIN orgs bo ON bo.id = bm.org_id \
                 WHERE bm.tenant_id = $1 AND bm.user_id = u.id AND bo.path LIKE ",
            )
            .push_bind(format!("{}%", org.path))
            .push(")");
        }
        (None, Some(segment)) => {
            let def = crate::directory::segments::load_def(&mut tx, segment)
                .await?
                .ok_or_else(|| ApiError::invalid("segment_id", "no such segment"))?;
            who.push(" AND (");
            def.push_condition(&mut who, tx.backend());
            who.push(")");
        }
        _ => return Err(ApiError::invalid("org_id", "name either org_id or segment_id")),
    }
    reach.push_user_filter(&mut who, tx.backend());
    tx.commit().await?;
    let params =
        json!({ "course_id": req.course_id, "org_id": req.org_id, "segment_id": req.segment_id, "due_at": req.due_at });
    let db = caller.db().clone();
    let actor = caller.actor();
    let course_id = req.course_id.clone();
    let job_params = params.clone();
    let id = jobs::start(
        caller.db(),
        "bulk_enroll",
        params,
        Some(caller.user_id.clone()),
        async move {
            // Who, read once; then enrolled in batches of their own short transactions.
            let mut tx = db.begin_read().await?;
            let users: Vec<String> = tx
                .fetch_all_sql(&who)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?;
            tx.commit().await?;
            let source = Source::person(&actor);
            let (mut created, mut reopened) = (0, 0);
            for batch in users.chunks(jobs::BATCH) {
                let items: Vec<NewEnrollment> = batch
                    .iter()
                    .map(|u| NewEnrollment {
                        user_id: u.clone(),
                        course_id: course_id.clone(),
                        due_at,
                    })
                    .collect();
                let mut tx = db.begin().await?;
                let results = enroll::enroll_many(&mut tx, &items, &source, "bulk").await?;
                tx.commit().await?;
                created += results.iter().filter(|r| matches!(r, Enrolled::Created(_))).count();
                reopened += results.iter().filter(|r| matches!(r, Enrolled::Reopened(_))).count();
            }
            let already = users.len() - created - reopened;
            let report =
                json!({ "users": users.len(), "enrolled": created, "reopened": reopened, "already_enrolled": already });
            let mut tx = db.begin().await?;
            record(
                &mut tx,
                &actor,
                Change::created(
                    "enrollment.bulk",
                    "course",
                    &course_id,
                    json!({ "params": job_params, "result": report }),
                ),
            )
            .await?;
            tx.commit().await?;
            Ok(report)
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(read_job(caller.db(), &id).await?)))
}

async fn job(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<JobOut>> {
    let mut tx = caller.db().begin_read().await?;
    let (out, created_by) = job_out(&mut tx, &id).await?;
    tx.commit().await?;
    let admin = caller.grants.reach(Permission::TenantManage).all;
    if created_by.as_deref() != Some(caller.user_id.as_str()) && !admin {
        return Err(ApiError::NotFound { what: "job" });
    }
    Ok(axum::Json(out))
}

/// One step in an enrollment's life.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HistoryEntry {
    at: String,
    /// enrolled, started, lesson_completed, quiz_attempted, completed, certified, dropped, reenrolled, due_changed, recertification.
    action: String,
    /// The enrollment's status after it.
    status: String,
    detail: Option<String>,
    /// Who or what caused it: user:<id>, rule:<id>, plugin:<id>@<version>, program:<id>, system:<what>.
    cause: String,
}

/// An enrollment with its history.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EnrollmentDetail {
    #[serde(flatten)]
    enrollment: EnrollmentOut,
    history: Vec<HistoryEntry>,
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<EnrollmentDetail>> {
    let reach = caller.require(Permission::ProgressRead)?;
    let mut tx = caller.db().begin_read().await?;
    let enrollment = load_in_reach(&mut tx, &reach, &id).await?;
    let rows = tx
        .query("SELECT at, action, status, detail, cause FROM enrollment_history WHERE tenant_id = $1 AND enrollment_id = $2 ORDER BY at, id")
        .bind(id.clone())
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let history = rows
        .iter()
        .map(|r| {
            Ok(HistoryEntry {
                at: rfc3339(r.try_get("at")?),
                action: r.try_get("action")?,
                status: r.try_get("status")?,
                detail: r.try_get("detail")?,
                cause: r.try_get("cause")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(EnrollmentDetail { enrollment, history }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EnrollmentPatch {
    /// RFC 3339, or null for no due date.
    #[serde(default, deserialize_with = "super::common::double_option")]
    #[schemars(regex(pattern = crate::fields::pattern::TIME))]
    due_at: Option<Option<String>>,
}

async fn update(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<EnrollmentPatch>,
) -> ApiResult<axum::Json<EnrollmentOut>> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = load_in_reach(&mut tx, &reach, &id).await?;
    if let Some(due_at) = &req.due_at {
        let due_at = crate::fields::opt_time_field("due_at", due_at.as_deref())?;
        tx.query("UPDATE enrollments SET due_at = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(id.clone())
            .bind(due_at)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        let detail = due_at.map(rfc3339).unwrap_or_else(|| "none".into());
        enroll::record(
            &mut tx,
            &id,
            "due_changed",
            &before.status,
            Some(&detail),
            &Source::person(&caller.actor()),
        )
        .await?;
    }
    let after = load(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("enrollment.update", "enrollment", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn unenroll(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = load_in_reach(&mut tx, &reach, &id).await?;
    if enroll::drop_enrollment(&mut tx, &id, &Source::person(&caller.actor())).await? {
        let after = load(&mut tx, &id).await?;
        record(
            &mut tx,
            &caller.actor(),
            Change::updated("enrollment.drop", "enrollment", &id, json!(before), json!(after)),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn mark_complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EnrollmentOut>> {
    let reach = caller.require(Permission::GradebookWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = load_in_reach(&mut tx, &reach, &id).await?;
    if before.status == "dropped" {
        return Err(ApiError::rule(
            "enrollment_dropped",
            None,
            "this enrollment was dropped; enroll the user again first",
        ));
    }
    let row = progress::enrollment_of(&mut tx, &before.user_id, &before.course_id)
        .await?
        .ok_or(ApiError::NotFound { what: "enrollment" })?;
    let step = progress::complete(&mut tx, &row, &Source::person(&caller.actor())).await?;
    let after = load(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("enrollment.complete", "enrollment", &id, json!(before), json!(after)),
    )
    .await?;
    let pending = automation::run_rules(
        &mut tx,
        step.completed.into_iter().collect(),
        super::common::rules_context(&caller),
    )
    .await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok(axum::Json(after))
}
