//! Courses: the academy's content, managed by whoever holds `courses.write` for the whole academy (content is
//! shared by every organization, so an organization-scoped right to it would mean nothing). Lessons are in
//! `lessons.rs`; the types and checks both use are `learning::courses`.

use super::api::{Api, Op};
use super::common::{Json, Path, Query, double_option, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Sql, foreign_key_violation, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::scope::Permission;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::BTreeMap;

use crate::learning::courses::*;

pub fn routes(api: &mut Api) {
    api.tag("courses");
    api.op_out::<Vec<CourseOut>>(
        Op::get("/api/v1/courses", "List courses, drafts and archived ones included")
            .permission("courses.read")
            .query(&[
                ("status", "draft, published or archived"),
                ("q", "part of the title or code"),
                ("language", "language tag, e.g. en"),
            ]),
        get(list),
    );
    api.op_io::<NewCourse, CourseDetail>(
        Op::post("/api/v1/courses", "Create a course")
            .permission("courses.write")
            .status(201),
        post(create),
    );
    api.op_out::<CourseDetail>(
        Op::get("/api/v1/courses/{id}", "Read a course with a summary of its lessons").permission("courses.read"),
        get(read),
    );
    api.op_io::<CoursePatch, CourseDetail>(
        Op::patch("/api/v1/courses/{id}", "Change a course").permission("courses.write"),
        patch(update),
    );
    api.op(
        Op::delete(
            "/api/v1/courses/{id}",
            "Delete a course that nobody is enrolled in and no program uses (archive it otherwise)",
        )
        .permission("courses.write"),
        delete(remove),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<ContentStatus>,
    q: Option<String>,
    language: Option<String>,
}

async fn list(caller: Caller, Query(p): Query<ListParams>) -> ApiResult<axum::Json<Vec<CourseOut>>> {
    caller.require(Permission::CoursesRead)?;
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(&format!(
        "SELECT {COURSE_COLUMNS} FROM courses c WHERE c.tenant_id = $1"
    ));
    if let Some(status) = p.status {
        sql.push(" AND c.status = ").push_bind(status.as_str());
    }
    if let Some(language) = p.language.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        sql.push(" AND lower(c.language) = ").push_bind(language.to_lowercase());
    }
    if let Some(q) = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = sql.bind(format!("%{}%", q.to_lowercase()));
        sql.push(&format!(
            " AND (lower(c.title) LIKE {pattern} OR lower(c.code) LIKE {pattern})"
        ));
    }
    sql.push(" ORDER BY c.title, c.id");
    let rows = tx.fetch_all_sql(&sql).await?;
    let mut orgs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !rows.is_empty() {
        for row in tx
            .query("SELECT course_id, org_id FROM course_orgs WHERE tenant_id = $1 ORDER BY org_id")
            .fetch_all(tx.conn())
            .await?
        {
            orgs.entry(row.try_get("course_id")?)
                .or_default()
                .push(row.try_get("org_id")?);
        }
    }
    tx.commit().await?;
    let courses = rows
        .iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            course_from_row(r, orgs.remove(&id).unwrap_or_default())
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(axum::Json(courses))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<CourseDetail>> {
    caller.require(Permission::CoursesRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = load_detail(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewCourse {
    /// Letters, digits, - and _; unique in the academy.
    #[schemars(length(min = 1, max = 50), regex(pattern = crate::fields::pattern::CODE))]
    code: String,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    title: String,
    #[schemars(length(max = 5000), regex(pattern = crate::fields::pattern::LONG_TEXT))]
    summary: Option<String>,
    /// Language tag; the academy's default locale when left out.
    #[schemars(length(max = 20), regex(pattern = crate::fields::pattern::LOCALE))]
    language: Option<String>,
    /// Default `draft`.
    status: Option<ContentStatus>,
    /// 0–100000.
    #[schemars(range(min = 0, max = 100000))]
    estimated_minutes: Option<i64>,
    /// Default `tenant`.
    visibility: Option<Visibility>,
    /// Required (non-empty) with visibility `orgs`.
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    org_ids: Option<Vec<String>>,
    /// Default true.
    self_enroll: Option<bool>,
    /// Default false.
    approval_required: Option<bool>,
    /// 1–3650: new enrollments are due this many days after they start.
    #[schemars(range(min = 1, max = 3650))]
    due_days: Option<i64>,
    /// 1–3650: certificates expire after this many days.
    #[schemars(range(min = 1, max = 3650))]
    certificate_valid_days: Option<i64>,
    /// Default true.
    issues_certificate: Option<bool>,
}

const MAX_SUMMARY: usize = 5000;

async fn create(caller: Caller, Json(req): Json<NewCourse>) -> ApiResult<(StatusCode, axum::Json<CourseDetail>)> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let code = code("code", &req.code)?;
    let title = text("title", &req.title, 200)?;
    let summary = long_text("summary", req.summary.as_deref(), MAX_SUMMARY)?;
    let language = match &req.language {
        Some(l) => language(l)?,
        None => caller.tenant.settings.default_locale.clone(),
    };
    let estimated_minutes = in_range("estimated_minutes", req.estimated_minutes, 0, 100_000)?;
    let due_days = in_range("due_days", req.due_days, 1, 3650)?;
    let certificate_valid_days = in_range("certificate_valid_days", req.certificate_valid_days, 1, 3650)?;
    let visibility = req.visibility.unwrap_or(Visibility::Tenant);
    let org_ids = placement(visibility, req.org_ids, Vec::new())?;
    let mut tx = caller.db().begin().await?;
    let org_ids = check_orgs(&mut tx, &org_ids).await?;
    let id = new_id();
    let now = now_ms();
    tx.query(
        "INSERT INTO courses (id, tenant_id, code, title, summary, language, status, estimated_minutes, visibility, \
         self_enroll, approval_required, due_days, certificate_valid_days, issues_certificate, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)",
    )
    .bind(id.clone())
    .bind(code)
    .bind(title)
    .bind(summary)
    .bind(language)
    .bind(req.status.unwrap_or(ContentStatus::Draft).as_str())
    .bind(estimated_minutes)
    .bind(visibility.as_str())
    .bind(i64::from(req.self_enroll.unwrap_or(true)))
    .bind(i64::from(req.approval_required.unwrap_or(false)))
    .bind(due_days)
    .bind(certificate_valid_days)
    .bind(i64::from(req.issues_certificate.unwrap_or(true)))
    .bind(now)
    .execute(tx.conn())
    .await
    .map_err(course_conflict)?;
    write_orgs(&mut tx, &id, &org_ids).await?;
    let out = load_detail(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("course.create", "course", &id, json!(out.course)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CoursePatch {
    #[schemars(length(min = 1, max = 50), regex(pattern = crate::fields::pattern::CODE))]
    code: Option<String>,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    title: Option<String>,
    /// An empty text clears it.
    #[schemars(length(max = 5000), regex(pattern = crate::fields::pattern::LONG_TEXT))]
    summary: Option<String>,
    #[schemars(length(max = 20), regex(pattern = crate::fields::pattern::LOCALE))]
    language: Option<String>,
    status: Option<ContentStatus>,
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(range(min = 0, max = 100000))]
    estimated_minutes: Option<Option<i64>>,
    /// Leaving visibility `orgs` drops the organizations.
    visibility: Option<Visibility>,
    /// Replaces the organizations (visibility `orgs` only).
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    org_ids: Option<Vec<String>>,
    self_enroll: Option<bool>,
    approval_required: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(range(min = 1, max = 3650))]
    due_days: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(range(min = 1, max = 3650))]
    certificate_valid_days: Option<Option<i64>>,
    issues_certificate: Option<bool>,
}

async fn update(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<CoursePatch>,
) -> ApiResult<axum::Json<CourseDetail>> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find_course_for_update(&mut tx, &id).await?;
    let code = match &req.code {
        Some(c) => code("code", c)?,
        None => before.code.clone(),
    };
    let title = match &req.title {
        Some(t) => text("title", t, 200)?,
        None => before.title.clone(),
    };
    let summary = match &req.summary {
        Some(s) => long_text("summary", Some(s), MAX_SUMMARY)?,
        None => before.summary.clone(),
    };
    let language = match &req.language {
        Some(l) => language(l)?,
        None => before.language.clone(),
    };
    let estimated_minutes = match req.estimated_minutes {
        Some(v) => in_range("estimated_minutes", v, 0, 100_000)?,
        None => before.estimated_minutes,
    };
    let due_days = match req.due_days {
        Some(v) => in_range("due_days", v, 1, 3650)?,
        None => before.due_days,
    };
    let certificate_valid_days = match req.certificate_valid_days {
        Some(v) => in_range("certificate_valid_days", v, 1, 3650)?,
        None => before.certificate_valid_days,
    };
    let visibility = req.visibility.unwrap_or(before.visibility);
    let orgs_given = req.org_ids.is_some();
    let org_ids = placement(visibility, req.org_ids, before.org_ids.clone())?;
    let org_ids = if orgs_given {
        check_orgs(&mut tx, &org_ids).await?
    } else {
        org_ids
    };
    tx.query(
        "UPDATE courses SET code = $3, title = $4, summary = $5, language = $6, status = $7, estimated_minutes = $8, \
         visibility = $9, self_enroll = $10, approval_required = $11, due_days = $12, certificate_valid_days = $13, \
         issues_certificate = $14, updated_at = $15 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.clone())
    .bind(code)
    .bind(title)
    .bind(summary)
    .bind(language)
    .bind(req.status.unwrap_or(before.status).as_str())
    .bind(estimated_minutes)
    .bind(visibility.as_str())
    .bind(i64::from(req.self_enroll.unwrap_or(before.self_enroll)))
    .bind(i64::from(req.approval_required.unwrap_or(before.approval_required)))
    .bind(due_days)
    .bind(certificate_valid_days)
    .bind(i64::from(req.issues_certificate.unwrap_or(before.issues_certificate)))
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .map_err(course_conflict)?;
    if org_ids != before.org_ids {
        write_orgs(&mut tx, &id, &org_ids).await?;
    }
    let after = load_detail(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("course.update", "course", &id, json!(before), json!(after.course)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

fn course_in_use(details: Value, reasons: &[String]) -> ApiError {
    ApiError::Unprocessable {
        code: "course_in_use",
        message: format!(
            "this course {}; archive it instead (status archived), which takes it out of the catalog and keeps \
             the learners' history",
            reasons.join(" and ")
        ),
        field: None,
        details: Some(details),
    }
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find_course_for_update(&mut tx, &id).await?;
    let enrollments = count(
        &mut tx,
        "SELECT COUNT(*) FROM enrollments WHERE tenant_id = $1 AND course_id = $2",
        &id,
    )
    .await?;
    // Requests and certificates are people's history with the course even when no enrollment is left.
    let requests = count(
        &mut tx,
        "SELECT COUNT(*) FROM enrollment_requests WHERE tenant_id = $1 AND course_id = $2",
        &id,
    )
    .await?;
    let certificates = count(
        &mut tx,
        "SELECT COUNT(*) FROM certificates WHERE tenant_id = $1 AND course_id = $2",
        &id,
    )
    .await?;
    let programs: Vec<String> = tx
        .query(
            "SELECT p.code FROM program_courses pc JOIN programs p ON p.id = pc.program_id \
             WHERE pc.tenant_id = $1 AND p.tenant_id = $1 AND pc.course_id = $2 ORDER BY p.code",
        )
        .bind(id.clone())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut reasons = Vec::new();
    if enrollments > 0 {
        reasons.push(format!("has {enrollments} enrollment(s)"));
    }
    if requests > 0 {
        reasons.push(format!("has {requests} enrollment request(s)"));
    }
    if certificates > 0 {
        reasons.push(format!("has issued {certificates} certificate(s)"));
    }
    if !programs.is_empty() {
        reasons.push(format!("is part of the program(s) {}", programs.join(", ")));
    }
    let details = json!({
        "enrollments": enrollments,
        "enrollment_requests": requests,
        "certificates": certificates,
        "programs": programs,
    });
    if !reasons.is_empty() {
        return Err(course_in_use(details, &reasons));
    }
    for sql in [
        "DELETE FROM lessons WHERE tenant_id = $1 AND course_id = $2",
        "DELETE FROM course_orgs WHERE tenant_id = $1 AND course_id = $2",
        "DELETE FROM courses WHERE tenant_id = $1 AND id = $2",
    ] {
        tx.query(sql).bind(id.clone()).execute(tx.conn()).await.map_err(|e| {
            // A table the checks above do not know of still names the course: refuse rather than answer 500.
            if foreign_key_violation(&e) {
                course_in_use(details.clone(), &["is still referenced".to_owned()])
            } else {
                e.into()
            }
        })?;
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("course.delete", "course", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
