//! Lessons of a course: text, media and quizzes, in an order the course's editors set.

use super::api::{Api, Op};
use super::common::{Json, Path, double_option, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{TenantTx, foreign_key_violation, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::learning::content::{Question, check_questions};
use crate::scope::Permission;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;

use crate::learning::courses::*;

pub fn routes(api: &mut Api) {
    api.tag("courses");
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
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    title: String,
    /// Markdown, up to 200000 characters (any kind; the content of a text lesson).
    #[schemars(length(max = 200000), regex(pattern = crate::fields::pattern::LONG_TEXT))]
    body: Option<String>,
    /// Media lessons (required there): an http(s) URL.
    #[schemars(
        length(max = 2000),
        regex(pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f-\x9f/?#]+[^\s\x00-\x1f\x7f-\x9f]*$")
    )]
    media_url: Option<String>,
    /// Default true.
    required: Option<bool>,
    /// Quizzes (required there).
    questions: Option<Vec<Question>>,
    /// Quizzes: 0–100, default 80.
    #[schemars(range(min = 0, max = 100))]
    pass_percent: Option<i64>,
    /// Quizzes: 1–100 attempts per enrollment cycle; unlimited when left out.
    #[schemars(range(min = 1, max = 100))]
    max_attempts: Option<i64>,
    /// 1..n+1; default: after the last lesson.
    #[schemars(range(min = 1))]
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
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    title: Option<String>,
    /// Markdown; an empty text clears it.
    #[schemars(length(max = 200000), regex(pattern = crate::fields::pattern::LONG_TEXT))]
    body: Option<String>,
    /// Media lessons.
    #[schemars(
        length(max = 2000),
        regex(pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f-\x9f/?#]+[^\s\x00-\x1f\x7f-\x9f]*$")
    )]
    media_url: Option<String>,
    required: Option<bool>,
    /// Quizzes: replaces every question.
    questions: Option<Vec<Question>>,
    /// Quizzes.
    #[schemars(range(min = 0, max = 100))]
    pass_percent: Option<i64>,
    /// Quizzes; `null`: unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(range(min = 1, max = 100))]
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
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
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
