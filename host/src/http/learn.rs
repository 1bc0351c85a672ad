//! The learner's side: the catalog they may see, enrolling themselves, their learning, lessons, quizzes and
//! certificates. Every route acts for the signed-in user only.

use super::api::{Api, Op};
use super::common::{Json, Path, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Sql, TenantTx, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::learning::content::{Question, QuestionView, render_markdown};
use crate::learning::enroll::{self, Enrolled, NewEnrollment};
use crate::learning::progress::{self, Attempt};
use crate::learning::records::{
    CERTIFICATE_SELECT, CertificateOut, ENROLLMENT_SELECT, EnrollmentOut, certificate_from_row, enrollment_from_row,
};
use crate::learning::{Source, automation};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

pub fn routes(api: &mut Api) {
    api.tag("learning");
    api.op_out::<Vec<CatalogCourse>>(
        Op::get("/api/v1/catalog", "Published courses offered to you").query(&[
            ("q", "Search titles, codes and summaries"),
            ("language", "Only this language"),
        ]),
        get(catalog),
    );
    api.op_out::<CatalogDetail>(
        Op::get(
            "/api/v1/catalog/{course_id}",
            "A course of the catalog, with its lessons",
        ),
        get(catalog_course),
    );
    api.op_out::<SelfEnrollOut>(
        Op::post(
            "/api/v1/catalog/{course_id}/enroll",
            "Enroll yourself (or ask for approval where the course needs it): 201 enrolled, 202 asked, 200 \
             already enrolled",
        )
        .status(201)
        .also(202)
        .also(200),
        post(self_enroll),
    );
    api.op_out::<Vec<EnrollmentOut>>(
        Op::get("/api/v1/me/enrollments", "Your learning: courses, progress, due dates"),
        get(my_enrollments),
    );
    api.op_out::<MyCourse>(
        Op::get(
            "/api/v1/me/courses/{course_id}",
            "A course you are enrolled in: your enrollment and its lessons, done or not",
        ),
        get(my_course),
    );
    api.op_out::<LessonView>(
        Op::get(
            "/api/v1/me/courses/{course_id}/lessons/{lesson_id}",
            "A lesson of a course you are enrolled in",
        ),
        get(lesson),
    );
    api.op_out::<LessonDone>(
        Op::post(
            "/api/v1/me/courses/{course_id}/lessons/{lesson_id}/complete",
            "Mark a text or media lesson done",
        ),
        post(complete_lesson),
    );
    api.op_io::<AttemptIn, Attempt>(
        Op::post(
            "/api/v1/me/courses/{course_id}/lessons/{lesson_id}/attempts",
            "Answer a quiz; passing it completes the lesson",
        )
        .status(201),
        post(attempt),
    );
    api.op_out::<Vec<CertificateOut>>(
        Op::get("/api/v1/me/certificates", "Your certificates"),
        get(my_certificates),
    );
}

/// ` AND (<course visible to the user $uid>)` for `courses c`: published and offered to the whole academy or
/// to an organization on one of the user's membership paths.
fn push_visible(sql: &mut Sql, user_id: &str) {
    let uid = sql.bind(user_id);
    sql.push(&format!(
        " AND c.status = 'published' AND (c.visibility = 'tenant' OR (c.visibility = 'orgs' AND EXISTS (\
         SELECT 1 FROM course_orgs co JOIN orgs o ON o.id = co.org_id \
         JOIN memberships m ON m.tenant_id = $1 AND m.user_id = {uid} JOIN orgs mo ON mo.id = m.org_id \
         WHERE co.tenant_id = $1 AND co.course_id = c.id AND mo.path LIKE o.path || '%')))"
    ));
}

/// A course in the catalog, with where the learner stands.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CatalogCourse {
    id: String,
    code: String,
    title: String,
    summary: String,
    language: String,
    estimated_minutes: Option<i64>,
    self_enroll: bool,
    approval_required: bool,
    /// Your enrollment's status, if enrolled.
    enrollment_status: Option<String>,
    /// Your progress, if enrolled.
    progress: Option<i64>,
    /// A request of yours waits for approval.
    request_pending: bool,
}

const CATALOG_SELECT: &str = "SELECT c.id, c.code, c.title, c.summary, c.language, c.estimated_minutes, c.self_enroll, \
    c.approval_required, e.status AS enrollment_status, e.progress, \
    (SELECT COUNT(*) FROM enrollment_requests r WHERE r.tenant_id = $1 AND r.course_id = c.id AND r.user_id = $2 AND r.status = 'pending') AS pending \
    FROM courses c LEFT JOIN enrollments e ON e.tenant_id = $1 AND e.course_id = c.id AND e.user_id = $2 WHERE c.tenant_id = $1";

fn catalog_from_row(r: &sqlx::any::AnyRow) -> Result<CatalogCourse, sqlx::Error> {
    Ok(CatalogCourse {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        title: r.try_get("title")?,
        summary: r.try_get("summary")?,
        language: r.try_get("language")?,
        estimated_minutes: r.try_get("estimated_minutes")?,
        self_enroll: r.try_get::<i64, _>("self_enroll")? != 0,
        approval_required: r.try_get::<i64, _>("approval_required")? != 0,
        enrollment_status: r.try_get("enrollment_status")?,
        progress: r.try_get("progress")?,
        request_pending: r.try_get::<i64, _>("pending")? > 0,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogParams {
    q: Option<String>,
    language: Option<String>,
}

async fn catalog(caller: Caller, Query(p): Query<CatalogParams>) -> ApiResult<axum::Json<Vec<CatalogCourse>>> {
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(CATALOG_SELECT);
    // $2 is the user in CATALOG_SELECT.
    let uid = sql.bind(caller.user_id.as_str());
    debug_assert_eq!(uid, "$2");
    push_visible(&mut sql, &caller.user_id);
    if let Some(q) = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let like = format!("%{}%", q.to_lowercase());
        sql.push(" AND (lower(c.title) LIKE ").push_bind(like.clone());
        sql.push(" OR lower(c.code) LIKE ").push_bind(like.clone());
        sql.push(" OR lower(c.summary) LIKE ").push_bind(like).push(")");
    }
    if let Some(lang) = &p.language {
        sql.push(" AND c.language = ").push_bind(lang);
    }
    sql.push(" ORDER BY lower(c.title), c.id LIMIT 1000");
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    Ok(axum::Json(rows.iter().map(catalog_from_row).collect::<Result<_, _>>()?))
}

async fn visible_course(tx: &mut TenantTx, user_id: &str, course_id: &str) -> ApiResult<CatalogCourse> {
    let mut sql = Sql::tenant(CATALOG_SELECT);
    sql.bind(user_id);
    push_visible(&mut sql, user_id);
    sql.push(" AND c.id = ").push_bind(course_id);
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "course" })?;
    Ok(catalog_from_row(&row)?)
}

/// A lesson in a course outline.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OutlineLesson {
    id: String,
    position: i64,
    kind: String,
    title: String,
    required: bool,
    /// You have done it (in this round of the course).
    done: bool,
}

/// A catalog course with its outline.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CatalogDetail {
    #[serde(flatten)]
    course: CatalogCourse,
    lessons: Vec<OutlineLesson>,
}

async fn catalog_course(caller: Caller, Path(course_id): Path<String>) -> ApiResult<axum::Json<CatalogDetail>> {
    let mut tx = caller.db().begin_read().await?;
    let course = visible_course(&mut tx, &caller.user_id, &course_id).await?;
    let lessons = outline(&mut tx, &caller.user_id, &course_id).await?;
    tx.commit().await?;
    Ok(axum::Json(CatalogDetail { course, lessons }))
}

/// A course's lessons in order, each marked done when the user completed it.
async fn outline(tx: &mut TenantTx, user_id: &str, course_id: &str) -> ApiResult<Vec<OutlineLesson>> {
    let rows = tx
        .query(
            "SELECT l.id, l.position, l.kind, l.title, l.required, \
             (SELECT COUNT(*) FROM lesson_progress p JOIN enrollments e ON e.id = p.enrollment_id \
              WHERE p.tenant_id = $1 AND p.lesson_id = l.id AND e.user_id = $3) AS done \
             FROM lessons l WHERE l.tenant_id = $1 AND l.course_id = $2 ORDER BY l.position, l.id",
        )
        .bind(course_id.to_owned())
        .bind(user_id.to_owned())
        .fetch_all(tx.conn())
        .await?;
    let lessons = rows
        .iter()
        .map(|r| {
            Ok(OutlineLesson {
                id: r.try_get("id")?,
                position: r.try_get("position")?,
                kind: r.try_get("kind")?,
                title: r.try_get("title")?,
                required: r.try_get::<i64, _>("required")? != 0,
                done: r.try_get::<i64, _>("done")? > 0,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(lessons)
}

/// A course you are enrolled in: your enrollment and the course's lessons.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MyCourse {
    enrollment: EnrollmentOut,
    lessons: Vec<OutlineLesson>,
}

/// Works whether or not the catalog still offers the course to the learner (archived, or offered to other
/// organizations since): being enrolled is what counts.
async fn my_course(caller: Caller, Path(course_id): Path<String>) -> ApiResult<axum::Json<MyCourse>> {
    let mut tx = caller.db().begin_read().await?;
    let enrollment = progress::active_enrollment(&mut tx, &caller.user_id, &course_id).await?;
    let mut sql = Sql::tenant(ENROLLMENT_SELECT);
    sql.push(" AND e.id = ").push_bind(enrollment.id.as_str());
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "enrollment" })?;
    let lessons = outline(&mut tx, &caller.user_id, &course_id).await?;
    tx.commit().await?;
    Ok(axum::Json(MyCourse {
        enrollment: enrollment_from_row(&row)?,
        lessons,
    }))
}

/// What enrolling yourself did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SelfEnrollOut {
    /// enrolled (new or again), already_enrolled, or pending_approval.
    outcome: String,
    enrollment: Option<EnrollmentOut>,
    /// The approval request, when the course needs one.
    request_id: Option<String>,
}

async fn self_enroll(
    caller: Caller,
    Path(course_id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<SelfEnrollOut>)> {
    let mut tx = caller.db().begin().await?;
    let course = visible_course(&mut tx, &caller.user_id, &course_id).await?;
    if let Some(existing) = progress::enrollment_of(&mut tx, &caller.user_id, &course_id).await?
        && existing.status != "dropped"
    {
        let mut sql = Sql::tenant(ENROLLMENT_SELECT);
        sql.push(" AND e.id = ").push_bind(existing.id.as_str());
        let row = tx
            .fetch_optional_sql(&sql)
            .await?
            .ok_or(ApiError::NotFound { what: "enrollment" })?;
        tx.commit().await?;
        return Ok((
            StatusCode::OK,
            axum::Json(SelfEnrollOut {
                outcome: "already_enrolled".into(),
                enrollment: Some(enrollment_from_row(&row)?),
                request_id: None,
            }),
        ));
    }
    if !course.self_enroll {
        return Err(ApiError::rule(
            "self_enroll_closed",
            None,
            "this course takes enrollments from managers only",
        ));
    }
    if course.approval_required {
        // One pending request per learner and course; asking again answers with the same request.
        let now = now_ms();
        tx.query(
            "INSERT INTO enrollment_requests (id, tenant_id, user_id, course_id, status, created_at) \
             VALUES ($2, $1, $3, $4, 'pending', $5) ON CONFLICT DO NOTHING",
        )
        .bind(new_id())
        .bind(caller.user_id.clone())
        .bind(course_id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?;
        let id: String = tx
            .query("SELECT id FROM enrollment_requests WHERE tenant_id = $1 AND user_id = $2 AND course_id = $3 AND status = 'pending'")
            .bind(caller.user_id.clone())
            .bind(course_id.clone())
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        record(
            &mut tx,
            &caller.actor(),
            Change::created(
                "enrollment_request.create",
                "enrollment_request",
                &id,
                json!({ "course_id": course_id }),
            ),
        )
        .await?;
        tx.commit().await?;
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(SelfEnrollOut {
                outcome: "pending_approval".into(),
                enrollment: None,
                request_id: Some(id),
            }),
        ));
    }
    let item = NewEnrollment {
        user_id: caller.user_id.clone(),
        course_id: course_id.clone(),
        due_at: None,
    };
    let result = enroll::enroll_many(&mut tx, &[item], &Source::person(&caller.actor()), "self")
        .await?
        .remove(0);
    let mut sql = Sql::tenant(ENROLLMENT_SELECT);
    sql.push(" AND e.id = ").push_bind(result.id());
    let out = enrollment_from_row(
        &tx.fetch_optional_sql(&sql)
            .await?
            .ok_or(ApiError::NotFound { what: "enrollment" })?,
    )?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("enrollment.self", "enrollment", result.id(), json!(out)),
    )
    .await?;
    tx.commit().await?;
    let status = if matches!(result, Enrolled::Existing(_)) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        axum::Json(SelfEnrollOut {
            outcome: "enrolled".into(),
            enrollment: Some(out),
            request_id: None,
        }),
    ))
}

async fn my_enrollments(caller: Caller) -> ApiResult<axum::Json<Vec<EnrollmentOut>>> {
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(ENROLLMENT_SELECT);
    sql.push(" AND e.user_id = ").push_bind(caller.user_id.as_str());
    sql.push(" AND e.status <> 'dropped' ORDER BY CASE WHEN e.due_at IS NULL THEN 1 ELSE 0 END, e.due_at, e.id");
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(enrollment_from_row).collect::<Result<_, _>>()?,
    ))
}

/// A lesson as the learner sees it (quiz answers are not included).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LessonView {
    id: String,
    course_id: String,
    position: i64,
    kind: String,
    title: String,
    /// The text, rendered from Markdown and sanitized.
    body_html: String,
    media_url: Option<String>,
    required: bool,
    questions: Vec<QuestionView>,
    pass_percent: Option<i64>,
    max_attempts: Option<i64>,
    /// Attempts used in this round.
    attempts_used: i64,
    done: bool,
}

async fn lesson(
    caller: Caller,
    Path((course_id, lesson_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<LessonView>> {
    let mut tx = caller.db().begin_read().await?;
    let enrollment = progress::active_enrollment(&mut tx, &caller.user_id, &course_id).await?;
    let row = tx
        .query(
            "SELECT id, course_id, position, kind, title, body, media_url, required, questions, pass_percent, max_attempts, \
             (SELECT COUNT(*) FROM lesson_progress p WHERE p.tenant_id = $1 AND p.enrollment_id = $4 AND p.lesson_id = lessons.id) AS done, \
             (SELECT COUNT(*) FROM quiz_attempts a WHERE a.tenant_id = $1 AND a.enrollment_id = $4 AND a.lesson_id = lessons.id AND a.cycle = $5) AS used \
             FROM lessons WHERE tenant_id = $1 AND course_id = $2 AND id = $3",
        )
        .bind(course_id.clone())
        .bind(lesson_id.clone())
        .bind(enrollment.id.clone())
        .bind(enrollment.cycle)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "lesson" })?;
    tx.commit().await?;
    let questions: Vec<Question> = serde_json::from_str(&row.try_get::<String, _>("questions")?).unwrap_or_default();
    let kind: String = row.try_get("kind")?;
    Ok(axum::Json(LessonView {
        id: row.try_get("id")?,
        course_id: row.try_get("course_id")?,
        position: row.try_get("position")?,
        body_html: render_markdown(&row.try_get::<String, _>("body")?),
        media_url: row.try_get("media_url")?,
        required: row.try_get::<i64, _>("required")? != 0,
        questions: questions.iter().map(Question::view).collect(),
        pass_percent: if kind == "quiz" {
            Some(row.try_get::<Option<i64>, _>("pass_percent")?.unwrap_or(80))
        } else {
            None
        },
        max_attempts: row.try_get("max_attempts")?,
        attempts_used: row.try_get("used")?,
        done: row.try_get::<i64, _>("done")? > 0,
        title: row.try_get("title")?,
        kind,
    }))
}

/// Where the learner stands after finishing a lesson.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LessonDone {
    progress: i64,
    status: String,
    /// The certificate's verification code, when this completed the course.
    certificate_code: Option<String>,
}

async fn complete_lesson(
    State(state): State<AppState>,
    caller: Caller,
    Path((course_id, lesson_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<LessonDone>> {
    let mut tx = caller.db().begin().await?;
    let enrollment = progress::active_enrollment(&mut tx, &caller.user_id, &course_id).await?;
    let lesson = progress::lesson(&mut tx, &course_id, &lesson_id).await?;
    if lesson.kind == "quiz" {
        return Err(ApiError::rule(
            "quiz_needs_attempt",
            None,
            "a quiz is done by passing it: post your answers to …/attempts",
        ));
    }
    let source = Source::person(&caller.actor());
    let step = progress::complete_lesson(&mut tx, &enrollment, &lesson, None, &source).await?;
    let pending = automation::run_rules(
        &mut tx,
        step.completed.into_iter().collect(),
        super::common::rules_context(&caller),
    )
    .await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok(axum::Json(LessonDone {
        progress: step.progress,
        status: step.status,
        certificate_code: step.certificate_code,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AttemptIn {
    /// For each question, in order, the indexes of the choices picked.
    answers: Vec<Vec<usize>>,
}

async fn attempt(
    State(state): State<AppState>,
    caller: Caller,
    Path((course_id, lesson_id)): Path<(String, String)>,
    Json(req): Json<AttemptIn>,
) -> ApiResult<(StatusCode, axum::Json<Attempt>)> {
    let mut tx = caller.db().begin().await?;
    let enrollment = progress::active_enrollment(&mut tx, &caller.user_id, &course_id).await?;
    let lesson = progress::lesson(&mut tx, &course_id, &lesson_id).await?;
    let source = Source::person(&caller.actor());
    let mut result = progress::attempt_quiz(&mut tx, &enrollment, &lesson, &req.answers, &source).await?;
    let pending = automation::run_rules(
        &mut tx,
        result.completed.take().into_iter().collect(),
        super::common::rules_context(&caller),
    )
    .await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok((StatusCode::CREATED, axum::Json(result)))
}

async fn my_certificates(caller: Caller) -> ApiResult<axum::Json<Vec<CertificateOut>>> {
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    sql.push(" AND ct.user_id = ").push_bind(caller.user_id.as_str());
    sql.push(" ORDER BY ct.issued_at DESC, ct.id");
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(certificate_from_row).collect::<Result<_, _>>()?,
    ))
}
