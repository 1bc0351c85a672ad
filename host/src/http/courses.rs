//! Courses and their lessons: the academy's content, managed by whoever holds `courses.write` for the whole
//! academy (content is shared by every organization, so an organization-scoped right to it would mean nothing).
//!
//! Lessons keep a `position` 1..n within their course; every change that adds, removes or reorders lessons
//! rewrites the positions in the same transaction, with the course row locked on PostgreSQL so that two
//! concurrent additions cannot take the same place.

use super::api::{Api, Op};
use super::common::{Json, Path, Query, double_option, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Backend, Sql, TenantTx, foreign_key_violation, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::learning::content::{Question, check_questions, render_markdown};
use crate::scope::Permission;
use crate::tenancy::valid_locale;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::{BTreeMap, HashSet};

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
    api.op_out::<Vec<LessonOut>>(
        Op::get(
            "/api/v1/courses/{id}/lessons",
            "A course's lessons in order, with content and quiz answers",
        )
        .permission("courses.read"),
        get(list_lessons),
    );
    api.op_io::<NewLesson, LessonOut>(
        Op::post("/api/v1/courses/{id}/lessons", "Add a lesson to a course")
            .permission("courses.write")
            .status(201),
        post(create_lesson),
    );
    api.op_io::<LessonOrder, Vec<LessonSummary>>(
        Op::put(
            "/api/v1/courses/{id}/lessons/order",
            "Put a course's lessons in a new order (list every lesson once)",
        )
        .permission("courses.write"),
        put(reorder_lessons),
    );
    api.op_io::<LessonPatch, LessonOut>(
        Op::patch("/api/v1/courses/{id}/lessons/{lesson_id}", "Change a lesson").permission("courses.write"),
        patch(update_lesson),
    );
    api.op(
        Op::delete(
            "/api/v1/courses/{id}/lessons/{lesson_id}",
            "Delete a lesson nobody has made progress in",
        )
        .permission("courses.write"),
        delete(remove_lesson),
    );
}

/// A closed set of words stored as text, with the same spelling in JSON and in the database.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub(crate) enum $name { $($variant,)* }

        impl $name {
            /// The stored word.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word,)* }
            }

            /// Read the stored word.
            pub(crate) fn parse(word: &str) -> Result<$name, sqlx::Error> {
                match word {
                    $($word => Ok($name::$variant),)*
                    other => Err(sqlx::Error::Protocol(format!(
                        "unexpected {} {other:?} in the database", stringify!($name)
                    ))),
                }
            }
        }
    };
}

word_enum!(
    /// Whether a course (or program) is being written, offered, or retired.
    ContentStatus { Draft = "draft", Published = "published", Archived = "archived" }
);
word_enum!(
    /// Who finds a course in the catalog: everyone, members of some organizations (and their
    /// sub-organizations), or nobody (enrollment by a manager, a rule or a program only).
    Visibility { Tenant = "tenant", Orgs = "orgs", Hidden = "hidden" }
);
word_enum!(
    /// What a lesson holds.
    LessonKind { Text = "text", Media = "media", Quiz = "quiz" }
);

/// A course.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct CourseOut {
    pub(crate) id: String,
    /// Unique in the academy (compared without case).
    pub(crate) code: String,
    pub(crate) title: String,
    pub(crate) summary: String,
    /// Language tag of the content.
    pub(crate) language: String,
    pub(crate) status: ContentStatus,
    pub(crate) estimated_minutes: Option<i64>,
    pub(crate) visibility: Visibility,
    /// With visibility `orgs`: the organizations (and their sub-organizations) that see it in the catalog.
    pub(crate) org_ids: Vec<String>,
    /// Learners who see it may enroll themselves.
    pub(crate) self_enroll: bool,
    /// Self-enrollment waits for a manager's approval.
    pub(crate) approval_required: bool,
    /// New enrollments are due this many days after they start.
    pub(crate) due_days: Option<i64>,
    /// Certificates expire after this many days, and learners must complete the course again.
    pub(crate) certificate_valid_days: Option<i64>,
    pub(crate) issues_certificate: bool,
    pub(crate) lesson_count: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// A course with a summary of its lessons.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct CourseDetail {
    #[serde(flatten)]
    pub(crate) course: CourseOut,
    /// In order.
    pub(crate) lessons: Vec<LessonSummary>,
}

/// A lesson, in brief.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct LessonSummary {
    pub(crate) id: String,
    /// 1..n within the course.
    pub(crate) position: i64,
    pub(crate) kind: LessonKind,
    pub(crate) title: String,
    /// Completing the course needs it.
    pub(crate) required: bool,
    /// Quizzes: how many questions.
    pub(crate) question_count: usize,
}

/// A lesson with its content, quiz answers included.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct LessonOut {
    pub(crate) id: String,
    pub(crate) course_id: String,
    /// 1..n within the course.
    pub(crate) position: i64,
    pub(crate) kind: LessonKind,
    pub(crate) title: String,
    /// Markdown.
    pub(crate) body: String,
    /// The body rendered to HTML that is safe to show (no raw HTML, no script, http(s)/mailto links only).
    pub(crate) body_html: String,
    /// Media lessons: what to play or show.
    pub(crate) media_url: Option<String>,
    /// Completing the course needs it.
    pub(crate) required: bool,
    /// Quizzes: the questions with their right answers.
    pub(crate) questions: Vec<Question>,
    /// Quizzes: the score (percent) that passes.
    pub(crate) pass_percent: Option<i64>,
    /// Quizzes: how many attempts a learner has per enrollment cycle (none: unlimited).
    pub(crate) max_attempts: Option<i64>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

const COURSE_COLUMNS: &str = "c.id, c.code, c.title, c.summary, c.language, c.status, c.estimated_minutes, \
    c.visibility, c.self_enroll, c.approval_required, c.due_days, c.certificate_valid_days, c.issues_certificate, \
    c.created_at, c.updated_at, \
    (SELECT COUNT(*) FROM lessons l WHERE l.tenant_id = $1 AND l.course_id = c.id) AS lesson_count";

fn course_from_row(row: &AnyRow, org_ids: Vec<String>) -> Result<CourseOut, sqlx::Error> {
    Ok(CourseOut {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        title: row.try_get("title")?,
        summary: row.try_get("summary")?,
        language: row.try_get("language")?,
        status: ContentStatus::parse(&row.try_get::<String, _>("status")?)?,
        estimated_minutes: row.try_get("estimated_minutes")?,
        visibility: Visibility::parse(&row.try_get::<String, _>("visibility")?)?,
        org_ids,
        self_enroll: row.try_get::<i64, _>("self_enroll")? != 0,
        approval_required: row.try_get::<i64, _>("approval_required")? != 0,
        due_days: row.try_get("due_days")?,
        certificate_valid_days: row.try_get("certificate_valid_days")?,
        issues_certificate: row.try_get::<i64, _>("issues_certificate")? != 0,
        lesson_count: row.try_get("lesson_count")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// A course of the caller's tenant, or 404.
pub(crate) async fn find_course(tx: &mut TenantTx, id: &str) -> ApiResult<CourseOut> {
    let mut sql = Sql::tenant(&format!(
        "SELECT {COURSE_COLUMNS} FROM courses c WHERE c.tenant_id = $1 AND c.id = "
    ));
    sql.push_bind(id);
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "course" })?;
    let org_ids = tx
        .query("SELECT org_id FROM course_orgs WHERE tenant_id = $1 AND course_id = $2 ORDER BY org_id")
        .bind(id.to_owned())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(course_from_row(&row, org_ids)?)
}

/// Like [`find_course`], holding the course row until the transaction ends (PostgreSQL; SQLite writers already
/// hold the database), so lesson positions and the in-use checks cannot race another writer.
async fn find_course_for_update(tx: &mut TenantTx, id: &str) -> ApiResult<CourseOut> {
    if tx.backend() == Backend::Postgres {
        tx.query("SELECT id FROM courses WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
            .bind(id.to_owned())
            .fetch_optional(tx.conn())
            .await?;
    }
    find_course(tx, id).await
}

async fn load_detail(tx: &mut TenantTx, id: &str) -> ApiResult<CourseDetail> {
    let course = find_course(tx, id).await?;
    let lessons = course_lessons(tx, id).await?.iter().map(LessonOut::summary).collect();
    Ok(CourseDetail { course, lessons })
}

const LESSON_COLUMNS: &str = "id, course_id, position, kind, title, body, media_url, required, questions, \
    pass_percent, max_attempts, created_at, updated_at";

fn lesson_from_row(row: &AnyRow) -> Result<LessonOut, sqlx::Error> {
    let body: String = row.try_get("body")?;
    let questions: String = row.try_get("questions")?;
    Ok(LessonOut {
        id: row.try_get("id")?,
        course_id: row.try_get("course_id")?,
        position: row.try_get("position")?,
        kind: LessonKind::parse(&row.try_get::<String, _>("kind")?)?,
        title: row.try_get("title")?,
        body_html: render_markdown(&body),
        body,
        media_url: row.try_get("media_url")?,
        required: row.try_get::<i64, _>("required")? != 0,
        questions: serde_json::from_str(&questions).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        pass_percent: row.try_get("pass_percent")?,
        max_attempts: row.try_get("max_attempts")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

impl LessonOut {
    fn summary(&self) -> LessonSummary {
        LessonSummary {
            id: self.id.clone(),
            position: self.position,
            kind: self.kind,
            title: self.title.clone(),
            required: self.required,
            question_count: self.questions.len(),
        }
    }

    /// What the audit log keeps: the rendered HTML follows from the body and would only double the entry.
    fn audit_value(&self) -> Value {
        let mut v = json!(self);
        if let Some(o) = v.as_object_mut() {
            o.remove("body_html");
        }
        v
    }
}

/// A course's lessons in order.
pub(crate) async fn course_lessons(tx: &mut TenantTx, course_id: &str) -> ApiResult<Vec<LessonOut>> {
    let sql =
        format!("SELECT {LESSON_COLUMNS} FROM lessons WHERE tenant_id = $1 AND course_id = $2 ORDER BY position, id");
    let rows = tx.query(&sql).bind(course_id.to_owned()).fetch_all(tx.conn()).await?;
    Ok(rows.iter().map(lesson_from_row).collect::<Result<_, _>>()?)
}

async fn find_lesson(tx: &mut TenantTx, course_id: &str, id: &str) -> ApiResult<LessonOut> {
    let sql = format!("SELECT {LESSON_COLUMNS} FROM lessons WHERE tenant_id = $1 AND course_id = $2 AND id = $3");
    let row = tx
        .query(&sql)
        .bind(course_id.to_owned())
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "lesson" })?;
    Ok(lesson_from_row(&row)?)
}

// ---------------------------------------------------------------------------------------------------------
// Field checks

/// Codes: ASCII letters, digits, `-` and `_`, up to 50 characters. ASCII only because codes are unique without
/// case, and SQLite's `lower()` folds ASCII only: a wider alphabet would be unique on one backend and not on
/// the other.
pub(crate) fn code(field: &str, value: &str) -> ApiResult<String> {
    let v = text(field, value, 50)?;
    if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ApiError::invalid(field, "may hold letters, digits, - and _ only"));
    }
    Ok(v)
}

/// Text that may span lines (a summary, a Markdown body): line breaks and tabs are fine, other control
/// characters are not. Empty is allowed.
pub(crate) fn long_text(field: &str, value: Option<&str>, max: usize) -> ApiResult<String> {
    let v = value.unwrap_or("");
    if v.trim().is_empty() {
        return Ok(String::new());
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(field, format!("must have at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(v.trim_end().to_owned())
}

fn language(value: &str) -> ApiResult<String> {
    let v = value.trim();
    if !valid_locale(v) {
        return Err(ApiError::invalid(
            "language",
            "must be a language tag such as en or de-CH",
        ));
    }
    Ok(v.to_owned())
}

fn in_range(field: &str, value: Option<i64>, min: i64, max: i64) -> ApiResult<Option<i64>> {
    match value {
        Some(n) if !(min..=max).contains(&n) => {
            Err(ApiError::invalid(field, format!("must be between {min} and {max}")))
        }
        other => Ok(other),
    }
}

fn course_conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(k) if k.contains("courses_code_key") => {
            ApiError::duplicate("code", "a course with this code already exists")
        }
        _ => e.into(),
    }
}

/// Check a list of organization ids: each names an organization of this tenant, once.
async fn check_orgs(tx: &mut TenantTx, org_ids: &[String]) -> ApiResult<Vec<String>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(org_ids.len());
    for (i, raw) in org_ids.iter().enumerate() {
        let field = format!("org_ids[{i}]");
        let id = raw.trim();
        if !seen.insert(id.to_owned()) {
            return Err(ApiError::invalid(field, "names an organization twice"));
        }
        if crate::directory::orgs::find(tx, id).await?.is_none() {
            return Err(ApiError::invalid(field, "no such organization"));
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

/// What a course's catalog placement will be, checked as a whole. `given` is the list the request named (if
/// any); a list left from before is dropped when the course stops being offered by organization.
fn placement(visibility: Visibility, given: Option<Vec<String>>, before: Vec<String>) -> ApiResult<Vec<String>> {
    match (visibility, given) {
        (Visibility::Orgs, given) => {
            let ids = given.unwrap_or(before);
            if ids.is_empty() {
                return Err(ApiError::invalid(
                    "org_ids",
                    "name at least one organization when visibility is orgs",
                ));
            }
            Ok(ids)
        }
        (_, Some(ids)) if !ids.is_empty() => Err(ApiError::invalid(
            "org_ids",
            "only a course with visibility orgs is offered to organizations",
        )),
        _ => Ok(Vec::new()),
    }
}

async fn write_orgs(tx: &mut TenantTx, course_id: &str, org_ids: &[String]) -> ApiResult<()> {
    tx.query("DELETE FROM course_orgs WHERE tenant_id = $1 AND course_id = $2")
        .bind(course_id.to_owned())
        .execute(tx.conn())
        .await?;
    let now = now_ms();
    for org_id in org_ids {
        tx.query("INSERT INTO course_orgs (tenant_id, course_id, org_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(course_id.to_owned())
            .bind(org_id.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Courses

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
    code: String,
    title: String,
    summary: Option<String>,
    /// Language tag; the academy's default locale when left out.
    language: Option<String>,
    /// Default `draft`.
    status: Option<ContentStatus>,
    /// 0–100000.
    estimated_minutes: Option<i64>,
    /// Default `tenant`.
    visibility: Option<Visibility>,
    /// Required (non-empty) with visibility `orgs`.
    org_ids: Option<Vec<String>>,
    /// Default true.
    self_enroll: Option<bool>,
    /// Default false.
    approval_required: Option<bool>,
    /// 1–3650: new enrollments are due this many days after they start.
    due_days: Option<i64>,
    /// 1–3650: certificates expire after this many days.
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
    code: Option<String>,
    title: Option<String>,
    /// An empty text clears it.
    summary: Option<String>,
    language: Option<String>,
    status: Option<ContentStatus>,
    #[serde(default, deserialize_with = "double_option")]
    estimated_minutes: Option<Option<i64>>,
    /// Leaving visibility `orgs` drops the organizations.
    visibility: Option<Visibility>,
    /// Replaces the organizations (visibility `orgs` only).
    org_ids: Option<Vec<String>>,
    self_enroll: Option<bool>,
    approval_required: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    due_days: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
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

async fn count(tx: &mut TenantTx, sql: &str, id: &str) -> ApiResult<i64> {
    Ok(tx
        .query(sql)
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?)
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

// ---------------------------------------------------------------------------------------------------------
// Lessons

async fn list_lessons(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<Vec<LessonOut>>> {
    caller.require(Permission::CoursesRead)?;
    let mut tx = caller.db().begin_read().await?;
    find_course(&mut tx, &id).await?;
    let lessons = course_lessons(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(lessons))
}

/// Most characters of a lesson body.
const MAX_BODY: usize = 200_000;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewLesson {
    kind: LessonKind,
    title: String,
    /// Markdown, up to 200000 characters (any kind; the content of a text lesson).
    body: Option<String>,
    /// Media lessons (required there): an http(s) URL.
    media_url: Option<String>,
    /// Default true.
    required: Option<bool>,
    /// Quizzes (required there).
    questions: Option<Vec<Question>>,
    /// Quizzes: 0–100, default 80.
    pass_percent: Option<i64>,
    /// Quizzes: 1–100 attempts per enrollment cycle; unlimited when left out.
    max_attempts: Option<i64>,
    /// 1..n+1; default: after the last lesson.
    position: Option<i64>,
}

fn media_url(value: &str) -> ApiResult<String> {
    let v = value.trim();
    let ok = v.chars().count() <= 2000
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && v.parse::<axum::http::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty()));
    if !ok {
        return Err(ApiError::invalid(
            "media_url",
            "must be an http(s) URL of at most 2000 characters",
        ));
    }
    Ok(v.to_owned())
}

/// Check a quiz's questions (trimmed), returning them as stored.
fn questions(mut qs: Vec<Question>) -> ApiResult<(Vec<Question>, String)> {
    for q in &mut qs {
        q.prompt = q.prompt.trim().to_owned();
        for c in &mut q.choices {
            *c = c.trim().to_owned();
        }
    }
    check_questions(&qs).map_err(|(field, message)| ApiError::invalid(field, message))?;
    let stored = serde_json::to_string(&qs).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((qs, stored))
}

/// Fields that belong to one kind of lesson, given for another, are refused rather than ignored: the client
/// believes it set something.
fn refuse_for_kind(kind: LessonKind, field: &str, given: bool, belongs_to: LessonKind) -> ApiResult<()> {
    if given && kind != belongs_to {
        return Err(ApiError::invalid(
            field,
            format!("only {} lessons have this", belongs_to.as_str()),
        ));
    }
    Ok(())
}

async fn create_lesson(
    caller: Caller,
    Path(course_id): Path<String>,
    Json(req): Json<NewLesson>,
) -> ApiResult<(StatusCode, axum::Json<LessonOut>)> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let kind = req.kind;
    let title = text("title", &req.title, 200)?;
    let body = long_text("body", req.body.as_deref(), MAX_BODY)?;
    refuse_for_kind(kind, "media_url", req.media_url.is_some(), LessonKind::Media)?;
    refuse_for_kind(
        kind,
        "questions",
        req.questions.as_ref().is_some_and(|q| !q.is_empty()),
        LessonKind::Quiz,
    )?;
    refuse_for_kind(kind, "pass_percent", req.pass_percent.is_some(), LessonKind::Quiz)?;
    refuse_for_kind(kind, "max_attempts", req.max_attempts.is_some(), LessonKind::Quiz)?;
    let media = match (kind, &req.media_url) {
        (LessonKind::Media, Some(url)) => Some(media_url(url)?),
        (LessonKind::Media, None) => {
            return Err(ApiError::invalid("media_url", "a media lesson needs a media URL"));
        }
        _ => None,
    };
    let (stored_questions, pass_percent, max_attempts) = if kind == LessonKind::Quiz {
        let Some(qs) = req.questions else {
            return Err(ApiError::invalid("questions", "a quiz needs questions"));
        };
        let (_, stored) = questions(qs)?;
        (
            stored,
            Some(in_range("pass_percent", req.pass_percent, 0, 100)?.unwrap_or(80)),
            in_range("max_attempts", req.max_attempts, 1, 100)?,
        )
    } else {
        ("[]".to_owned(), None, None)
    };
    let mut tx = caller.db().begin().await?;
    let course = find_course_for_update(&mut tx, &course_id).await?;
    let last = course.lesson_count;
    let position = match req.position {
        None => last + 1,
        Some(p) if (1..=last + 1).contains(&p) => p,
        Some(_) => {
            return Err(ApiError::invalid(
                "position",
                format!("must be between 1 and {}", last + 1),
            ));
        }
    };
    tx.query("UPDATE lessons SET position = position + 1 WHERE tenant_id = $1 AND course_id = $2 AND position >= $3")
        .bind(course_id.clone())
        .bind(position)
        .execute(tx.conn())
        .await?;
    let id = new_id();
    let now = now_ms();
    tx.query(
        "INSERT INTO lessons (id, tenant_id, course_id, position, kind, title, body, media_url, required, questions, \
         pass_percent, max_attempts, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(id.clone())
    .bind(course_id.clone())
    .bind(position)
    .bind(kind.as_str())
    .bind(title)
    .bind(body)
    .bind(media)
    .bind(i64::from(req.required.unwrap_or(true)))
    .bind(stored_questions)
    .bind(pass_percent)
    .bind(max_attempts)
    .bind(now)
    .execute(tx.conn())
    .await?;
    touch_course(&mut tx, &course_id).await?;
    let out = find_lesson(&mut tx, &course_id, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("lesson.create", "lesson", &id, out.audit_value()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// A lesson change is a change of the course's content.
async fn touch_course(tx: &mut TenantTx, course_id: &str) -> ApiResult<()> {
    tx.query("UPDATE courses SET updated_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(course_id.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LessonPatch {
    title: Option<String>,
    /// Markdown; an empty text clears it.
    body: Option<String>,
    /// Media lessons.
    media_url: Option<String>,
    required: Option<bool>,
    /// Quizzes: replaces every question.
    questions: Option<Vec<Question>>,
    /// Quizzes.
    pass_percent: Option<i64>,
    /// Quizzes; `null`: unlimited.
    #[serde(default, deserialize_with = "double_option")]
    max_attempts: Option<Option<i64>>,
}

async fn update_lesson(
    caller: Caller,
    Path((course_id, lesson_id)): Path<(String, String)>,
    Json(req): Json<LessonPatch>,
) -> ApiResult<axum::Json<LessonOut>> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let mut tx = caller.db().begin().await?;
    find_course_for_update(&mut tx, &course_id).await?;
    let before = find_lesson(&mut tx, &course_id, &lesson_id).await?;
    let kind = before.kind;
    refuse_for_kind(kind, "media_url", req.media_url.is_some(), LessonKind::Media)?;
    refuse_for_kind(kind, "questions", req.questions.is_some(), LessonKind::Quiz)?;
    refuse_for_kind(kind, "pass_percent", req.pass_percent.is_some(), LessonKind::Quiz)?;
    refuse_for_kind(kind, "max_attempts", req.max_attempts.is_some(), LessonKind::Quiz)?;
    let title = match &req.title {
        Some(t) => text("title", t, 200)?,
        None => before.title.clone(),
    };
    let body = match &req.body {
        Some(b) => long_text("body", Some(b), MAX_BODY)?,
        None => before.body.clone(),
    };
    let media = match &req.media_url {
        Some(url) => Some(media_url(url)?),
        None => before.media_url.clone(),
    };
    let stored_questions = match req.questions {
        Some(qs) => questions(qs)?.1,
        None => serde_json::to_string(&before.questions).map_err(|e| ApiError::Internal(e.into()))?,
    };
    let pass_percent = match req.pass_percent {
        Some(p) => in_range("pass_percent", Some(p), 0, 100)?,
        None => before.pass_percent,
    };
    let max_attempts = match req.max_attempts {
        Some(m) => in_range("max_attempts", m, 1, 100)?,
        None => before.max_attempts,
    };
    tx.query(
        "UPDATE lessons SET title = $4, body = $5, media_url = $6, required = $7, questions = $8, pass_percent = $9, \
         max_attempts = $10, updated_at = $11 WHERE tenant_id = $1 AND course_id = $2 AND id = $3",
    )
    .bind(course_id.clone())
    .bind(lesson_id.clone())
    .bind(title)
    .bind(body)
    .bind(media)
    .bind(i64::from(req.required.unwrap_or(before.required)))
    .bind(stored_questions)
    .bind(pass_percent)
    .bind(max_attempts)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    touch_course(&mut tx, &course_id).await?;
    let after = find_lesson(&mut tx, &course_id, &lesson_id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "lesson.update",
            "lesson",
            &lesson_id,
            before.audit_value(),
            after.audit_value(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

fn lesson_in_use(progress: i64, attempts: i64) -> ApiError {
    ApiError::Unprocessable {
        code: "lesson_in_use",
        message: "learners have progress or quiz attempts in this lesson; make it optional (required false) \
                  instead, so their history stays readable"
            .to_owned(),
        field: None,
        details: Some(json!({"lesson_progress": progress, "quiz_attempts": attempts})),
    }
}

async fn remove_lesson(caller: Caller, Path((course_id, lesson_id)): Path<(String, String)>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let mut tx = caller.db().begin().await?;
    find_course_for_update(&mut tx, &course_id).await?;
    let before = find_lesson(&mut tx, &course_id, &lesson_id).await?;
    let progress = count(
        &mut tx,
        "SELECT COUNT(*) FROM lesson_progress WHERE tenant_id = $1 AND lesson_id = $2",
        &lesson_id,
    )
    .await?;
    let attempts = count(
        &mut tx,
        "SELECT COUNT(*) FROM quiz_attempts WHERE tenant_id = $1 AND lesson_id = $2",
        &lesson_id,
    )
    .await?;
    if progress > 0 || attempts > 0 {
        return Err(lesson_in_use(progress, attempts));
    }
    tx.query("DELETE FROM lessons WHERE tenant_id = $1 AND course_id = $2 AND id = $3")
        .bind(course_id.clone())
        .bind(lesson_id.clone())
        .execute(tx.conn())
        .await
        .map_err(|e| {
            if foreign_key_violation(&e) {
                lesson_in_use(progress, attempts)
            } else {
                e.into()
            }
        })?;
    // Close the gap, so positions stay 1..n.
    tx.query("UPDATE lessons SET position = position - 1 WHERE tenant_id = $1 AND course_id = $2 AND position > $3")
        .bind(course_id.clone())
        .bind(before.position)
        .execute(tx.conn())
        .await?;
    touch_course(&mut tx, &course_id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("lesson.delete", "lesson", &lesson_id, before.audit_value()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LessonOrder {
    /// Every lesson of the course, each once, in the new order.
    lesson_ids: Vec<String>,
}

async fn reorder_lessons(
    caller: Caller,
    Path(course_id): Path<String>,
    Json(req): Json<LessonOrder>,
) -> ApiResult<axum::Json<Vec<LessonSummary>>> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let mut tx = caller.db().begin().await?;
    find_course_for_update(&mut tx, &course_id).await?;
    let lessons = course_lessons(&mut tx, &course_id).await?;
    let existing: HashSet<&str> = lessons.iter().map(|l| l.id.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, id) in req.lesson_ids.iter().enumerate() {
        if !existing.contains(id.as_str()) {
            return Err(ApiError::invalid(
                format!("lesson_ids[{i}]"),
                "is not a lesson of this course",
            ));
        }
        if !seen.insert(id.as_str()) {
            return Err(ApiError::invalid(format!("lesson_ids[{i}]"), "lists a lesson twice"));
        }
    }
    if let Some(missing) = lessons.iter().find(|l| !seen.contains(l.id.as_str())) {
        return Err(ApiError::invalid(
            "lesson_ids",
            format!(
                "list every lesson of the course; {} ({:?}) is missing",
                missing.id, missing.title
            ),
        ));
    }
    let before: Vec<&str> = lessons.iter().map(|l| l.id.as_str()).collect();
    if before != req.lesson_ids {
        for (i, id) in req.lesson_ids.iter().enumerate() {
            tx.query("UPDATE lessons SET position = $4 WHERE tenant_id = $1 AND course_id = $2 AND id = $3")
                .bind(course_id.clone())
                .bind(id.clone())
                .bind(i as i64 + 1)
                .execute(tx.conn())
                .await?;
        }
        touch_course(&mut tx, &course_id).await?;
        record(
            &mut tx,
            &caller.actor(),
            Change::updated(
                "course.lessons_reorder",
                "course",
                &course_id,
                json!({ "lesson_ids": before }),
                json!({ "lesson_ids": req.lesson_ids }),
            ),
        )
        .await?;
    }
    let after = course_lessons(&mut tx, &course_id).await?;
    tx.commit().await?;
    Ok(axum::Json(after.iter().map(LessonOut::summary).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ascii_words() {
        assert_eq!(code("code", " SAFE-101_a ").unwrap(), "SAFE-101_a");
        assert_eq!(
            code("code", "Matrix probe").unwrap_err().to_string(),
            "may hold letters, digits, - and _ only"
        );
        assert!(code("code", "Küche").is_err());
        assert!(code("code", &"x".repeat(51)).is_err());
        assert!(code("code", "").is_err());
    }

    #[test]
    fn media_urls_are_http() {
        assert!(media_url("https://video.example.com/v/1?t=3").is_ok());
        assert!(media_url("http://example.com").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://example.com/x",
            "/relative",
            "https://",
            "https://a b.com",
        ] {
            assert!(media_url(bad).is_err(), "{bad}");
        }
        assert!(media_url(&format!("https://example.com/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn org_placement_is_checked_as_a_whole() {
        let ids = || vec!["o1".to_owned()];
        assert_eq!(placement(Visibility::Orgs, Some(ids()), Vec::new()).unwrap(), ids());
        assert_eq!(placement(Visibility::Orgs, None, ids()).unwrap(), ids());
        assert!(placement(Visibility::Orgs, None, Vec::new()).is_err());
        assert!(placement(Visibility::Orgs, Some(Vec::new()), ids()).is_err());
        assert!(placement(Visibility::Tenant, Some(ids()), Vec::new()).is_err());
        // Leaving `orgs` drops the list that was there.
        assert!(placement(Visibility::Hidden, None, ids()).unwrap().is_empty());
        assert!(
            placement(Visibility::Tenant, Some(Vec::new()), ids())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn long_text_keeps_lines_and_refuses_other_controls() {
        assert_eq!(long_text("body", Some("# T\n\n\tx\n\n"), 100).unwrap(), "# T\n\n\tx");
        assert_eq!(long_text("body", Some("  \n"), 100).unwrap(), "");
        assert!(long_text("body", Some("a\u{0}b"), 100).is_err());
        assert!(long_text("body", Some("abc"), 2).is_err());
    }
}
