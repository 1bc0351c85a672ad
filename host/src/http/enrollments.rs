//! Enrollments as managers and admins see them: enroll (one user, or an organization subtree or segment in
//! bulk), unenroll, due dates, completion, the approval queue, certificates, and jobs to poll.

use super::api::{Api, Auth, Op};
use super::common::{Json, Page, PageParams, Path, Query, time_field};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Sql, TenantTx, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::learning::Source;
use crate::learning::automation;
use crate::learning::enroll::{self, Enrolled, NewEnrollment};
use crate::learning::{jobs, progress};
use crate::scope::{Permission, Reach};
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

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
            ]),
        get(list),
    );
    api.op_io::<NewEnrollmentIn, EnrollmentOut>(
        Op::post(
            "/api/v1/enrollments",
            "Enroll a user in a course (idempotent: 200 when already enrolled)",
        )
        .permission("enrollments.write")
        .status(201),
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
    api.op_out::<Vec<RequestOut>>(
        Op::get(
            "/api/v1/enrollment-requests",
            "Requests waiting for approval, of users within your scope",
        )
        .permission("enrollments.write")
        .query(&[("status", "pending (default), approved, rejected or withdrawn")]),
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
    api.op_io::<ProgramEnrollmentIn, ProgramEnrollmentOut>(
        Op::post(
            "/api/v1/program-enrollments",
            "Enroll a user in a program: every course of it, completed as one",
        )
        .permission("enrollments.write")
        .status(201),
        post(enroll_program),
    );
    api.op_out::<Vec<CertificateOut>>(
        Op::get("/api/v1/certificates", "Certificates of users within your scope")
            .permission("progress.read")
            .query(&[("user_id", "Only this user"), ("course_id", "Only this course")]),
        get(certificates),
    );
    api.op_out::<CertificateOut>(
        Op::post("/api/v1/certificates/{id}/revoke", "Revoke a certificate").permission("certificates.manage"),
        post(revoke_certificate),
    );
    api.op_out::<Verification>(
        Op::get(
            "/api/v1/certificates/verify/{code}",
            "Check a certificate by its verification code (anyone, on the academy's host)",
        )
        .auth(Auth::Public),
        get(verify),
    );
    api.op_out::<JobOut>(
        Op::get("/api/v1/jobs/{id}", "A job you started (or any, for academy admins)"),
        get(job),
    );
}

/// An enrollment.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EnrollmentOut {
    id: String,
    user_id: String,
    user_email: String,
    user_name: String,
    course_id: String,
    course_code: String,
    course_title: String,
    /// enrolled, in_progress, completed or dropped.
    status: String,
    /// Past its due date and not completed.
    overdue: bool,
    /// Percent of required lessons done.
    progress: i64,
    due_at: Option<String>,
    started_at: Option<String>,
    completed_at: Option<String>,
    /// How it came about: manual, self, bulk, rule, plugin, program, approval.
    source: String,
    created_at: String,
    updated_at: String,
}

pub(crate) const ENROLLMENT_SELECT: &str = "SELECT e.id, e.user_id, u.email AS user_email, u.name AS user_name, e.course_id, \
    c.code AS course_code, c.title AS course_title, e.status, e.progress, e.due_at, e.started_at, e.completed_at, \
    e.source, e.created_at, e.updated_at FROM enrollments e JOIN users u ON u.id = e.user_id \
    JOIN courses c ON c.id = e.course_id WHERE e.tenant_id = $1";

pub(crate) fn enrollment_from_row(row: &AnyRow) -> Result<EnrollmentOut, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let due_at: Option<i64> = row.try_get("due_at")?;
    Ok(EnrollmentOut {
        overdue: due_at.is_some_and(|d| d < now_ms()) && status != "completed" && status != "dropped",
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        user_name: row.try_get("user_name")?,
        course_id: row.try_get("course_id")?,
        course_code: row.try_get("course_code")?,
        course_title: row.try_get("course_title")?,
        status,
        progress: row.try_get("progress")?,
        due_at: due_at.map(rfc3339),
        started_at: row.try_get::<Option<i64>, _>("started_at")?.map(rfc3339),
        completed_at: row.try_get::<Option<i64>, _>("completed_at")?.map(rfc3339),
        source: row.try_get("source")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

async fn load(tx: &mut TenantTx, id: &str) -> ApiResult<EnrollmentOut> {
    let mut sql = Sql::tenant(ENROLLMENT_SELECT);
    sql.push(" AND e.id = ").push_bind(id);
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "enrollment" })?;
    Ok(enrollment_from_row(&row)?)
}

/// An enrollment whose user is within `reach`, or 404 (exactly as if it did not exist).
async fn load_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> ApiResult<EnrollmentOut> {
    let mut sql = Sql::tenant(ENROLLMENT_SELECT);
    sql.push(" AND e.id = ").push_bind(id);
    reach.push_user_filter(&mut sql, tx.backend());
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "enrollment" })?;
    Ok(enrollment_from_row(&row)?)
}

/// 404 unless the user exists and is within `reach`.
pub(crate) async fn user_in_reach(tx: &mut TenantTx, reach: &Reach, user_id: &str, field: &str) -> ApiResult<()> {
    let mut sql = Sql::tenant("SELECT u.id FROM users u WHERE u.tenant_id = $1 AND u.id = ");
    sql.push_bind(user_id);
    reach.push_user_filter(&mut sql, tx.backend());
    if tx.fetch_optional_sql(&sql).await?.is_none() {
        return Err(ApiError::invalid(field, "no such user within your scope"));
    }
    Ok(())
}

/// A course someone with `reach` may enroll people in: it exists and is not archived; outside the whole
/// academy, it must also be published and offered to (part of) the caller's organizations.
pub(crate) async fn course_for_reach(tx: &mut TenantTx, reach: &Reach, course_id: &str, field: &str) -> ApiResult<()> {
    let row = tx
        .query("SELECT status, visibility FROM courses WHERE tenant_id = $1 AND id = $2")
        .bind(course_id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApiError::invalid(field, "no such course"))?;
    let status: String = row.try_get(0)?;
    let visibility: String = row.try_get(1)?;
    if status == "archived" {
        return Err(ApiError::rule("course_archived", Some(field), "the course is archived"));
    }
    if reach.all {
        return Ok(());
    }
    let not_visible = || {
        ApiError::rule(
            "course_not_visible",
            Some(field),
            "this course is not offered to the part of the academy you manage",
        )
    };
    if status != "published" {
        return Err(not_visible());
    }
    match visibility.as_str() {
        "tenant" => Ok(()),
        "orgs" => {
            // Offered to an organization above the caller's subtree, or to one inside it.
            let rows = tx
                .query("SELECT o.path FROM course_orgs co JOIN orgs o ON o.id = co.org_id WHERE co.tenant_id = $1 AND co.course_id = $2")
                .bind(course_id.to_owned())
                .fetch_all(tx.conn())
                .await?;
            for row in rows {
                let path: String = row.try_get(0)?;
                if reach
                    .org_paths
                    .iter()
                    .any(|p| p.starts_with(path.as_str()) || path.starts_with(p.as_str()))
                {
                    return Ok(());
                }
            }
            Err(not_visible())
        }
        _ => Err(not_visible()),
    }
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
    user_id: String,
    course_id: String,
    /// RFC 3339; the course's default when left out.
    due_at: Option<String>,
}

fn due(field: &str, due_at: Option<&str>) -> ApiResult<Option<i64>> {
    Ok(due_at.map(|d| time_field(field, d)).transpose()?)
}

async fn create(
    caller: Caller,
    Json(req): Json<NewEnrollmentIn>,
) -> ApiResult<(StatusCode, axum::Json<EnrollmentOut>)> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let due_at = due("due_at", req.due_at.as_deref())?;
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
    course_id: String,
    /// Every member of this organization and the ones below it.
    org_id: Option<String>,
    /// Every user the segment matches.
    segment_id: Option<String>,
    /// RFC 3339; the course's default when left out.
    due_at: Option<String>,
}

/// A job.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JobOut {
    id: String,
    kind: String,
    /// running, done or failed.
    status: String,
    params: Value,
    /// What it did, once done.
    result: Option<Value>,
    error: Option<String>,
    created_at: String,
    finished_at: Option<String>,
}

async fn job_out(tx: &mut TenantTx, id: &str) -> ApiResult<(JobOut, Option<String>)> {
    let row = tx
        .query("SELECT id, kind, status, params, result, error, created_by, created_at, finished_at FROM jobs WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "job" })?;
    let params: String = row.try_get("params")?;
    let result: Option<String> = row.try_get("result")?;
    Ok((
        JobOut {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            status: row.try_get("status")?,
            params: serde_json::from_str(&params).unwrap_or(Value::Null),
            result: result.and_then(|r| serde_json::from_str(&r).ok()),
            error: row.try_get("error")?,
            created_at: rfc3339(row.try_get("created_at")?),
            finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(rfc3339),
        },
        row.try_get("created_by")?,
    ))
}

async fn bulk(caller: Caller, Json(req): Json<BulkIn>) -> ApiResult<(StatusCode, axum::Json<JobOut>)> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let due_at = due("due_at", req.due_at.as_deref())?;
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
            // One transaction: the job did all of what it reports, or nothing.
            let mut tx = db.begin().await?;
            let users: Vec<String> = tx
                .fetch_all_sql(&who)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?;
            let items: Vec<NewEnrollment> = users
                .iter()
                .map(|u| NewEnrollment {
                    user_id: u.clone(),
                    course_id: course_id.clone(),
                    due_at,
                })
                .collect();
            let source = Source::person(&actor);
            let results = enroll::enroll_many(&mut tx, &items, &source, "bulk").await?;
            let created = results.iter().filter(|r| matches!(r, Enrolled::Created(_))).count();
            let reopened = results.iter().filter(|r| matches!(r, Enrolled::Reopened(_))).count();
            let already = results.len() - created - reopened;
            let report =
                json!({ "users": users.len(), "enrolled": created, "reopened": reopened, "already_enrolled": already });
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

/// A job as clients read it.
pub(crate) async fn read_job(db: &crate::db::TenantDb, id: &str) -> ApiResult<JobOut> {
    let mut tx = db.begin_read().await?;
    let (out, _) = job_out(&mut tx, id).await?;
    tx.commit().await?;
    Ok(out)
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
        let due_at = due("due_at", due_at.as_deref())?;
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

/// The automation context of a person's request: plugin actions stay within what they may change.
/// A request to join a course.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RequestOut {
    id: String,
    user_id: String,
    user_email: String,
    course_id: String,
    course_title: String,
    /// pending, approved, rejected or withdrawn.
    status: String,
    note: Option<String>,
    decided_at: Option<String>,
    created_at: String,
}

const REQUEST_SELECT: &str = "SELECT r.id, r.user_id, u.email, r.course_id, c.title, r.status, r.note, r.decided_at, r.created_at \
    FROM enrollment_requests r JOIN users u ON u.id = r.user_id JOIN courses c ON c.id = r.course_id WHERE r.tenant_id = $1";

fn request_from_row(r: &AnyRow) -> Result<RequestOut, sqlx::Error> {
    Ok(RequestOut {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        user_email: r.try_get("email")?,
        course_id: r.try_get("course_id")?,
        course_title: r.try_get("title")?,
        status: r.try_get("status")?,
        note: r.try_get("note")?,
        decided_at: r.try_get::<Option<i64>, _>("decided_at")?.map(rfc3339),
        created_at: rfc3339(r.try_get("created_at")?),
    })
}

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
    Ok(axum::Json(rows.iter().map(request_from_row).collect::<Result<_, _>>()?))
}

#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    /// Shown to the learner.
    note: Option<String>,
}

async fn request_by_id(tx: &mut TenantTx, id: &str) -> ApiResult<RequestOut> {
    let mut sql = Sql::tenant(REQUEST_SELECT);
    sql.push(" AND r.id = ").push_bind(id);
    let row = tx.fetch_optional_sql(&sql).await?.ok_or(ApiError::NotFound {
        what: "enrollment request",
    })?;
    Ok(request_from_row(&row)?)
}

async fn pending_request(tx: &mut TenantTx, reach: &Reach, id: &str) -> ApiResult<RequestOut> {
    let mut sql = Sql::tenant(REQUEST_SELECT);
    sql.push(" AND r.id = ").push_bind(id);
    reach.push_user_filter(&mut sql, tx.backend());
    let row = tx.fetch_optional_sql(&sql).await?.ok_or(ApiError::NotFound {
        what: "enrollment request",
    })?;
    let request = request_from_row(&row)?;
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProgramEnrollmentIn {
    user_id: String,
    program_id: String,
    /// RFC 3339: the program and each of its courses are due then; the courses' defaults when left out.
    due_at: Option<String>,
}

/// A program enrollment and what it did to the courses.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProgramEnrollmentOut {
    id: String,
    user_id: String,
    program_id: String,
    status: String,
    /// The course enrollments, in program order.
    courses: Vec<EnrollmentOut>,
}

async fn enroll_program(
    caller: Caller,
    Json(req): Json<ProgramEnrollmentIn>,
) -> ApiResult<(StatusCode, axum::Json<ProgramEnrollmentOut>)> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let due_at = due("due_at", req.due_at.as_deref())?;
    let mut tx = caller.db().begin().await?;
    user_in_reach(&mut tx, &reach, &req.user_id, "user_id").await?;
    let status: String = tx
        .query("SELECT status FROM programs WHERE tenant_id = $1 AND id = $2")
        .bind(req.program_id.clone())
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApiError::invalid("program_id", "no such program"))?
        .try_get(0)?;
    if status == "archived" || (status != "published" && !reach.all) {
        return Err(ApiError::rule(
            "program_not_available",
            Some("program_id"),
            "the program is not published",
        ));
    }
    let courses: Vec<String> = tx
        .query("SELECT course_id FROM program_courses WHERE tenant_id = $1 AND program_id = $2 ORDER BY position")
        .bind(req.program_id.clone())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for course in &courses {
        course_for_reach(&mut tx, &reach, course, "program_id").await?;
    }
    let now = now_ms();
    let id = crate::db::new_id();
    tx.query(
        "INSERT INTO program_enrollments (id, tenant_id, user_id, program_id, status, due_at, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, 'enrolled', $5, $6, $6) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(req.user_id.clone())
    .bind(req.program_id.clone())
    .bind(due_at)
    .bind(now)
    .execute(tx.conn())
    .await?;
    let row = tx
        .query("SELECT id, status FROM program_enrollments WHERE tenant_id = $1 AND user_id = $2 AND program_id = $3")
        .bind(req.user_id.clone())
        .bind(req.program_id.clone())
        .fetch_one(tx.conn())
        .await?;
    let program_enrollment: String = row.try_get(0)?;
    let items: Vec<NewEnrollment> = courses
        .iter()
        .map(|c| NewEnrollment {
            user_id: req.user_id.clone(),
            course_id: c.clone(),
            due_at,
        })
        .collect();
    let results = enroll::enroll_many(
        &mut tx,
        &items,
        &Source::Program {
            id: req.program_id.clone(),
        },
        "program",
    )
    .await?;
    let mut course_out = Vec::with_capacity(results.len());
    for r in &results {
        course_out.push(load(&mut tx, r.id()).await?);
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::created(
            "program_enrollment.create",
            "program_enrollment",
            &program_enrollment,
            json!({ "user_id": req.user_id, "program_id": req.program_id }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ProgramEnrollmentOut {
            id: program_enrollment,
            user_id: req.user_id,
            program_id: req.program_id,
            status: row.try_get(1)?,
            courses: course_out,
        }),
    ))
}

/// A certificate.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CertificateOut {
    id: String,
    user_id: String,
    user_name: String,
    course_id: String,
    course_title: String,
    /// Anyone can check it at /api/v1/certificates/verify/{code} on the academy's host.
    code: String,
    issued_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    /// valid, expired or revoked.
    state: String,
}

pub(crate) const CERTIFICATE_SELECT: &str = "SELECT ct.id, ct.user_id, u.name AS user_name, ct.course_id, c.title AS course_title, ct.code, \
    ct.issued_at, ct.expires_at, ct.revoked_at FROM certificates ct JOIN users u ON u.id = ct.user_id \
    JOIN courses c ON c.id = ct.course_id WHERE ct.tenant_id = $1";

pub(crate) fn certificate_from_row(r: &AnyRow) -> Result<CertificateOut, sqlx::Error> {
    let expires_at: Option<i64> = r.try_get("expires_at")?;
    let revoked_at: Option<i64> = r.try_get("revoked_at")?;
    let state = if revoked_at.is_some() {
        "revoked"
    } else if expires_at.is_some_and(|e| e <= now_ms()) {
        "expired"
    } else {
        "valid"
    };
    Ok(CertificateOut {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        user_name: r.try_get("user_name")?,
        course_id: r.try_get("course_id")?,
        course_title: r.try_get("course_title")?,
        code: r.try_get("code")?,
        issued_at: rfc3339(r.try_get("issued_at")?),
        expires_at: expires_at.map(rfc3339),
        revoked_at: revoked_at.map(rfc3339),
        state: state.into(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateParams {
    user_id: Option<String>,
    course_id: Option<String>,
}

async fn certificates(
    caller: Caller,
    Query(p): Query<CertificateParams>,
) -> ApiResult<axum::Json<Vec<CertificateOut>>> {
    let reach = caller.require(Permission::ProgressRead)?;
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    if let Some(u) = &p.user_id {
        sql.push(" AND ct.user_id = ").push_bind(u);
    }
    if let Some(c) = &p.course_id {
        sql.push(" AND ct.course_id = ").push_bind(c);
    }
    reach.push_user_filter(&mut sql, tx.backend());
    sql.push(" ORDER BY ct.issued_at DESC, ct.id LIMIT 1000");
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(certificate_from_row).collect::<Result<_, _>>()?,
    ))
}

async fn revoke_certificate(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<CertificateOut>> {
    let reach = caller.require(Permission::CertificatesManage)?;
    let mut tx = caller.db().begin().await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    sql.push(" AND ct.id = ").push_bind(id.as_str());
    reach.push_user_filter(&mut sql, tx.backend());
    let before = certificate_from_row(
        &tx.fetch_optional_sql(&sql)
            .await?
            .ok_or(ApiError::NotFound { what: "certificate" })?,
    )?;
    tx.query("UPDATE certificates SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    sql.push(" AND ct.id = ").push_bind(id.as_str());
    let after = certificate_from_row(
        &tx.fetch_optional_sql(&sql)
            .await?
            .ok_or(ApiError::NotFound { what: "certificate" })?,
    )?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("certificate.revoke", "certificate", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

/// What anyone may learn from a verification code: whose, which course, and whether it holds.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Verification {
    code: String,
    /// valid, expired or revoked.
    state: String,
    holder: String,
    course: String,
    academy: String,
    issued_at: String,
    expires_at: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
    crate::auth::RequestHost(host): crate::auth::RequestHost,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Verification>> {
    let crate::tenancy::HostTenant::Tenant(tenant) = host else {
        return Err(ApiError::NotFound { what: "certificate" });
    };
    let db = state.db.tenant(&tenant.id);
    let mut tx = db.begin_read().await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    sql.push(" AND ct.code = ").push_bind(code.trim().to_uppercase());
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "certificate" })?;
    tx.commit().await?;
    let c = certificate_from_row(&row)?;
    Ok(axum::Json(Verification {
        code: c.code,
        state: c.state,
        holder: c.user_name,
        course: c.course_title,
        academy: tenant.name,
        issued_at: c.issued_at,
        expires_at: c.expires_at,
    }))
}
