//! Courses and their lessons as stored: the types the API shows, finding them, the course's organizations (its
//! catalog visibility), and the checks their fields pass.
//!
//! Lessons keep a `position` 1..n within their course; every change that adds, removes or reorders lessons
//! rewrites the positions in the same transaction, with the course row locked on PostgreSQL so that two
//! concurrent additions cannot take the same place.

use crate::db::{Backend, Sql, TenantTx, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::fields::text;
use crate::learning::content::{Question, render_markdown};
use crate::tenancy::valid_locale;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashSet;

/// A closed set of words stored as text, with the same spelling in JSON and in the database.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant,)* }

        impl $name {
            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word,)* }
            }

            /// Read the stored word.
            pub fn parse(word: &str) -> Result<$name, sqlx::Error> {
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
pub struct CourseOut {
    pub id: String,
    /// Unique in the academy (compared without case).
    pub code: String,
    pub title: String,
    pub summary: String,
    /// Language tag of the content.
    pub language: String,
    pub status: ContentStatus,
    pub estimated_minutes: Option<i64>,
    pub visibility: Visibility,
    /// With visibility `orgs`: the organizations (and their sub-organizations) that see it in the catalog.
    pub org_ids: Vec<String>,
    /// Learners who see it may enroll themselves.
    pub self_enroll: bool,
    /// Self-enrollment waits for a manager's approval.
    pub approval_required: bool,
    /// New enrollments are due this many days after they start.
    pub due_days: Option<i64>,
    /// Certificates expire after this many days, and learners must complete the course again.
    pub certificate_valid_days: Option<i64>,
    pub issues_certificate: bool,
    pub lesson_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A course with a summary of its lessons.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CourseDetail {
    #[serde(flatten)]
    pub course: CourseOut,
    /// In order.
    pub lessons: Vec<LessonSummary>,
}

/// A lesson, in brief.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LessonSummary {
    pub id: String,
    /// 1..n within the course.
    pub position: i64,
    pub kind: LessonKind,
    pub title: String,
    /// Completing the course needs it.
    pub required: bool,
    /// Quizzes: how many questions.
    pub question_count: usize,
}

/// A lesson with its content, quiz answers included.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LessonOut {
    pub id: String,
    pub course_id: String,
    /// 1..n within the course.
    pub position: i64,
    pub kind: LessonKind,
    pub title: String,
    /// Markdown.
    pub body: String,
    /// The body rendered to HTML that is safe to show (no raw HTML, no script, http(s)/mailto links only).
    pub body_html: String,
    /// Media lessons: what to play or show.
    pub media_url: Option<String>,
    /// Completing the course needs it.
    pub required: bool,
    /// Quizzes: the questions with their right answers.
    pub questions: Vec<Question>,
    /// Quizzes: the score (percent) that passes.
    pub pass_percent: Option<i64>,
    /// Quizzes: how many attempts a learner has per enrollment cycle (none: unlimited).
    pub max_attempts: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

pub const COURSE_COLUMNS: &str = "c.id, c.code, c.title, c.summary, c.language, c.status, c.estimated_minutes, \
    c.visibility, c.self_enroll, c.approval_required, c.due_days, c.certificate_valid_days, c.issues_certificate, \
    c.created_at, c.updated_at, \
    (SELECT COUNT(*) FROM lessons l WHERE l.tenant_id = $1 AND l.course_id = c.id) AS lesson_count";

pub fn course_from_row(row: &AnyRow, org_ids: Vec<String>) -> Result<CourseOut, sqlx::Error> {
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
pub async fn find_course(tx: &mut TenantTx, id: &str) -> ApiResult<CourseOut> {
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
pub async fn find_course_for_update(tx: &mut TenantTx, id: &str) -> ApiResult<CourseOut> {
    if tx.backend() == Backend::Postgres {
        tx.query("SELECT id FROM courses WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
            .bind(id.to_owned())
            .fetch_optional(tx.conn())
            .await?;
    }
    find_course(tx, id).await
}

pub async fn load_detail(tx: &mut TenantTx, id: &str) -> ApiResult<CourseDetail> {
    let course = find_course(tx, id).await?;
    let lessons = course_lessons(tx, id).await?.iter().map(LessonOut::summary).collect();
    Ok(CourseDetail { course, lessons })
}

pub const LESSON_COLUMNS: &str = "id, course_id, position, kind, title, body, media_url, required, questions, \
    pass_percent, max_attempts, created_at, updated_at";

pub fn lesson_from_row(row: &AnyRow) -> Result<LessonOut, sqlx::Error> {
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
    pub fn summary(&self) -> LessonSummary {
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
    pub fn audit_value(&self) -> Value {
        let mut v = json!(self);
        if let Some(o) = v.as_object_mut() {
            o.remove("body_html");
        }
        v
    }
}

/// A course's lessons in order.
pub async fn course_lessons(tx: &mut TenantTx, course_id: &str) -> ApiResult<Vec<LessonOut>> {
    let sql =
        format!("SELECT {LESSON_COLUMNS} FROM lessons WHERE tenant_id = $1 AND course_id = $2 ORDER BY position, id");
    let rows = tx.query(&sql).bind(course_id.to_owned()).fetch_all(tx.conn()).await?;
    Ok(rows.iter().map(lesson_from_row).collect::<Result<_, _>>()?)
}

pub async fn find_lesson(tx: &mut TenantTx, course_id: &str, id: &str) -> ApiResult<LessonOut> {
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
pub fn code(field: &str, value: &str) -> ApiResult<String> {
    let v = text(field, value, 50)?;
    if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ApiError::invalid(field, "may hold letters, digits, - and _ only"));
    }
    Ok(v)
}

/// Text that may span lines (a summary, a Markdown body); see [`crate::fields::long_text`].
pub fn long_text(field: &str, value: Option<&str>, max: usize) -> ApiResult<String> {
    Ok(crate::fields::long_text(field, value, max)?)
}

pub fn language(value: &str) -> ApiResult<String> {
    let v = value.trim();
    if !valid_locale(v) {
        return Err(ApiError::invalid(
            "language",
            "must be a language tag such as en or de-CH",
        ));
    }
    Ok(v.to_owned())
}

pub fn in_range(field: &str, value: Option<i64>, min: i64, max: i64) -> ApiResult<Option<i64>> {
    match value {
        Some(n) if !(min..=max).contains(&n) => {
            Err(ApiError::invalid(field, format!("must be between {min} and {max}")))
        }
        other => Ok(other),
    }
}

pub fn course_conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(k) if k.contains("courses_code_key") => {
            ApiError::duplicate("code", "a course with this code already exists")
        }
        _ => e.into(),
    }
}

/// Check a list of organization ids: each names an organization of this tenant, once.
pub async fn check_orgs(tx: &mut TenantTx, org_ids: &[String]) -> ApiResult<Vec<String>> {
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
pub fn placement(visibility: Visibility, given: Option<Vec<String>>, before: Vec<String>) -> ApiResult<Vec<String>> {
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

pub async fn write_orgs(tx: &mut TenantTx, course_id: &str, org_ids: &[String]) -> ApiResult<()> {
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

/// A count by a statement of one parameter (`$2`, the id).
pub async fn count(tx: &mut TenantTx, sql: &str, id: &str) -> ApiResult<i64> {
    Ok(tx
        .query(sql)
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?)
}
