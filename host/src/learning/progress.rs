//! Progress: lessons completed, quiz attempts, course and program completion, certificates and their
//! renewal.

use super::automation::Event;
use super::content::{Question, grade};
use super::enroll::record;
use super::{DAY_MS, Source};
use crate::db::{TenantTx, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use rand::Rng;
use sqlx::Row;

/// An enrollment as progress needs it.
#[derive(Debug, Clone)]
pub struct EnrollmentRow {
    /// Id.
    pub id: String,
    /// Learner.
    pub user_id: String,
    /// Course.
    pub course_id: String,
    /// Status.
    pub status: String,
    /// Percent of required lessons done.
    pub progress: i64,
    /// Which round of the course this is (recertification starts a new one).
    pub cycle: i64,
}

/// The enrollment of `user_id` in `course_id`, if any.
pub async fn enrollment_of(
    tx: &mut TenantTx,
    user_id: &str,
    course_id: &str,
) -> Result<Option<EnrollmentRow>, sqlx::Error> {
    let row = tx
        .query(
            "SELECT id, user_id, course_id, status, progress, cycle FROM enrollments \
             WHERE tenant_id = $1 AND user_id = $2 AND course_id = $3",
        )
        .bind(user_id.to_owned())
        .bind(course_id.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    row.map(|r| {
        Ok(EnrollmentRow {
            id: r.try_get("id")?,
            user_id: r.try_get("user_id")?,
            course_id: r.try_get("course_id")?,
            status: r.try_get("status")?,
            progress: r.try_get("progress")?,
            cycle: r.try_get("cycle")?,
        })
    })
    .transpose()
}

/// The enrollment a learner must have to work on a course: enrolled and not dropped.
pub async fn active_enrollment(tx: &mut TenantTx, user_id: &str, course_id: &str) -> ApiResult<EnrollmentRow> {
    match enrollment_of(tx, user_id, course_id).await? {
        Some(e) if e.status != "dropped" => Ok(e),
        _ => Err(ApiError::rule(
            "not_enrolled",
            None,
            "you are not enrolled in this course; enroll from the catalog first",
        )),
    }
}

/// What a step of progress led to.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Percent of required lessons done.
    pub progress: i64,
    /// The enrollment's status now.
    pub status: String,
    /// The course was completed by this step (the event for the rules and plugins).
    pub completed: Option<Event>,
    /// The certificate issued, if any.
    pub certificate_code: Option<String>,
}

/// A lesson of a course.
#[derive(Debug, Clone)]
pub struct LessonRow {
    /// Id.
    pub id: String,
    /// text, media or quiz.
    pub kind: String,
    /// Counts toward completion.
    pub required: bool,
    /// Quiz questions.
    pub questions: Vec<Question>,
    /// Pass mark.
    pub pass_percent: i64,
    /// Attempts allowed per round.
    pub max_attempts: Option<i64>,
}

/// A lesson of `course_id`, or 404.
pub async fn lesson(tx: &mut TenantTx, course_id: &str, lesson_id: &str) -> ApiResult<LessonRow> {
    let row = tx
        .query(
            "SELECT id, kind, required, questions, pass_percent, max_attempts FROM lessons \
             WHERE tenant_id = $1 AND course_id = $2 AND id = $3",
        )
        .bind(course_id.to_owned())
        .bind(lesson_id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "lesson" })?;
    let questions: String = row.try_get("questions")?;
    Ok(LessonRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        required: row.try_get::<i64, _>("required")? != 0,
        questions: serde_json::from_str(&questions).unwrap_or_default(),
        pass_percent: row.try_get::<Option<i64>, _>("pass_percent")?.unwrap_or(80),
        max_attempts: row.try_get("max_attempts")?,
    })
}

/// Mark a lesson done (idempotent) and bring the enrollment's progress up to date. A quiz is done only by
/// passing it ([`attempt_quiz`]).
pub async fn complete_lesson(
    tx: &mut TenantTx,
    enrollment: &EnrollmentRow,
    lesson: &LessonRow,
    score: Option<i64>,
    source: &Source,
) -> ApiResult<Step> {
    let now = now_ms();
    let inserted = tx
        .query(
            "INSERT INTO lesson_progress (tenant_id, enrollment_id, lesson_id, completed_at, score) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(enrollment.id.clone())
        .bind(lesson.id.clone())
        .bind(now)
        .bind(score)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if inserted > 0 {
        record(
            tx,
            &enrollment.id,
            "lesson_completed",
            &enrollment.status,
            Some(&lesson.id),
            source,
        )
        .await?;
    }
    refresh(tx, enrollment, source).await
}

/// Recompute progress from the lessons done; complete the course when every required lesson is.
async fn refresh(tx: &mut TenantTx, enrollment: &EnrollmentRow, source: &Source) -> ApiResult<Step> {
    let row = tx
        .query(
            "SELECT (SELECT COUNT(*) FROM lessons l WHERE l.tenant_id = $1 AND l.course_id = $2 AND l.required = 1) AS required, \
             (SELECT COUNT(*) FROM lesson_progress p JOIN lessons l ON l.id = p.lesson_id \
              WHERE p.tenant_id = $1 AND p.enrollment_id = $3 AND l.required = 1) AS done",
        )
        .bind(enrollment.course_id.clone())
        .bind(enrollment.id.clone())
        .fetch_one(tx.conn())
        .await?;
    let required: i64 = row.try_get("required")?;
    let done: i64 = row.try_get("done")?;
    let progress = if required == 0 { 0 } else { done * 100 / required };
    if enrollment.status == "completed" {
        return Ok(Step {
            progress: enrollment.progress,
            status: "completed".into(),
            ..Step::default()
        });
    }
    if required > 0 && done >= required {
        return complete(tx, enrollment, source).await;
    }
    let status = if done > 0 {
        "in_progress"
    } else {
        enrollment.status.as_str()
    };
    tx.query(
        "UPDATE enrollments SET progress = $3, status = $4, started_at = coalesce(started_at, $5), updated_at = $5 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(enrollment.id.clone())
    .bind(progress)
    .bind(status.to_owned())
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    if status != enrollment.status {
        record(tx, &enrollment.id, "started", status, None, source).await?;
    }
    Ok(Step {
        progress,
        status: status.to_owned(),
        ..Step::default()
    })
}

/// Complete the course: status, certificate where the course issues one, programs that are now complete.
/// Returns the `course_completed` event for the rules and plugins.
pub async fn complete(tx: &mut TenantTx, enrollment: &EnrollmentRow, source: &Source) -> ApiResult<Step> {
    let now = now_ms();
    let n = tx
        .query(
            "UPDATE enrollments SET status = 'completed', progress = 100, completed_at = $3, \
             started_at = coalesce(started_at, $3), updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND status <> 'completed'",
        )
        .bind(enrollment.id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Ok(Step {
            progress: 100,
            status: "completed".into(),
            ..Step::default()
        });
    }
    record(tx, &enrollment.id, "completed", "completed", None, source).await?;
    let told = |kind| {
        crate::outbox::Event::enrollment(kind, &enrollment.user_id, &enrollment.course_id, &enrollment.id)
            .by(source.person_id())
    };
    crate::outbox::emit(tx, &[told(crate::outbox::Kind::Completed)]).await?;
    let course = tx
        .query("SELECT issues_certificate, certificate_valid_days FROM courses WHERE tenant_id = $1 AND id = $2")
        .bind(enrollment.course_id.clone())
        .fetch_one(tx.conn())
        .await?;
    let mut certificate_code = None;
    if course.try_get::<i64, _>("issues_certificate")? != 0 {
        let valid_days: Option<i64> = course.try_get("certificate_valid_days")?;
        let code = certificate_code_new();
        tx.query(
            "INSERT INTO certificates (id, tenant_id, user_id, course_id, enrollment_id, code, issued_at, expires_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(enrollment.user_id.clone())
        .bind(enrollment.course_id.clone())
        .bind(enrollment.id.clone())
        .bind(code.clone())
        .bind(now)
        .bind(valid_days.map(|d| now + d * DAY_MS))
        .execute(tx.conn())
        .await?;
        record(tx, &enrollment.id, "certified", "completed", Some(&code), source).await?;
        crate::outbox::emit(
            tx,
            &[told(crate::outbox::Kind::CertificateIssued).with("certificate_code", code.clone())],
        )
        .await?;
        certificate_code = Some(code);
    }
    complete_programs(tx, &enrollment.user_id, &enrollment.course_id).await?;
    Ok(Step {
        progress: 100,
        status: "completed".into(),
        completed: Some(Event::completed(&enrollment.user_id, &enrollment.course_id)),
        certificate_code,
    })
}

/// Programs containing `course_id` in which the user is enrolled and has now completed every course.
async fn complete_programs(tx: &mut TenantTx, user_id: &str, course_id: &str) -> Result<(), sqlx::Error> {
    tx.query(
        "UPDATE program_enrollments SET status = 'completed', completed_at = $4, updated_at = $4 \
         WHERE tenant_id = $1 AND user_id = $2 AND status = 'enrolled' \
         AND program_id IN (SELECT program_id FROM program_courses WHERE tenant_id = $1 AND course_id = $3) \
         AND NOT EXISTS (SELECT 1 FROM program_courses pc WHERE pc.tenant_id = $1 AND pc.program_id = program_enrollments.program_id \
             AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.tenant_id = $1 AND e.user_id = $2 \
                 AND e.course_id = pc.course_id AND e.status = 'completed'))",
    )
    .bind(user_id.to_owned())
    .bind(course_id.to_owned())
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A verification code: 12 characters from an alphabet without look-alikes, grouped for reading aloud.
fn certificate_code_new() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let raw: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12])
}

/// The result of one quiz attempt.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Attempt {
    /// Percent of questions answered right.
    pub score: i64,
    /// At or above the pass mark.
    pub passed: bool,
    /// The pass mark.
    pub pass_percent: i64,
    /// Attempts left in this round, when limited.
    pub attempts_left: Option<i64>,
    /// Progress after the attempt.
    pub progress: i64,
    /// The enrollment's status after the attempt.
    pub status: String,
    /// Certificate issued by this attempt, if it completed the course.
    pub certificate_code: Option<String>,
    #[serde(skip)]
    #[schemars(skip)]
    /// The completion event, for the rules and plugins.
    pub completed: Option<Event>,
}

/// Grade and record a quiz attempt; passing completes the lesson.
pub async fn attempt_quiz(
    tx: &mut TenantTx,
    enrollment: &EnrollmentRow,
    lesson: &LessonRow,
    answers: &[Vec<usize>],
    source: &Source,
) -> ApiResult<Attempt> {
    if lesson.kind != "quiz" {
        return Err(ApiError::rule("not_a_quiz", None, "this lesson is not a quiz"));
    }
    let used: i64 = tx
        .query("SELECT COUNT(*) FROM quiz_attempts WHERE tenant_id = $1 AND enrollment_id = $2 AND lesson_id = $3 AND cycle = $4")
        .bind(enrollment.id.clone())
        .bind(lesson.id.clone())
        .bind(enrollment.cycle)
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if let Some(max) = lesson.max_attempts
        && used >= max
    {
        return Err(ApiError::rule(
            "attempts_exhausted",
            None,
            format!("this quiz allows {max} attempt(s) and you have used them"),
        ));
    }
    let score = grade(&lesson.questions, answers).map_err(|(field, message)| ApiError::invalid(field, message))?;
    let passed = score >= lesson.pass_percent;
    tx.query(
        "INSERT INTO quiz_attempts (id, tenant_id, enrollment_id, lesson_id, cycle, answers, score, passed, at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(enrollment.id.clone())
    .bind(lesson.id.clone())
    .bind(enrollment.cycle)
    .bind(serde_json::to_string(answers).unwrap_or_default())
    .bind(score)
    .bind(i64::from(passed))
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    let detail = format!("{}: {score}%", lesson.id);
    record(
        tx,
        &enrollment.id,
        "quiz_attempted",
        &enrollment.status,
        Some(&detail),
        source,
    )
    .await?;
    let step = if passed {
        complete_lesson(tx, enrollment, lesson, Some(score), source).await?
    } else {
        refresh(tx, enrollment, source).await?
    };
    Ok(Attempt {
        score,
        passed,
        pass_percent: lesson.pass_percent,
        attempts_left: lesson.max_attempts.map(|m| (m - used - 1).max(0)),
        progress: step.progress,
        status: step.status,
        certificate_code: step.certificate_code,
        completed: step.completed,
    })
}

/// Recertification: every certificate of this tenant that has expired starts a new round of its course
/// (the enrollment is reopened with its lessons to do again, due by the course's default). Safe to run on
/// several replicas at once: the certificate is claimed by the update that marks it renewed.
pub async fn renew_expired(tx: &mut TenantTx, now: i64) -> Result<usize, sqlx::Error> {
    let rows = tx
        .query(
            "SELECT c.id, c.enrollment_id, co.due_days FROM certificates c JOIN courses co ON co.id = c.course_id \
             WHERE c.tenant_id = $1 AND c.expires_at IS NOT NULL AND c.expires_at <= $2 \
             AND c.renewed_at IS NULL AND c.revoked_at IS NULL LIMIT 1000",
        )
        .bind(now)
        .fetch_all(tx.conn())
        .await?;
    let mut renewed = 0;
    let source = Source::System("recertification".into());
    for row in rows {
        let id: String = row.try_get(0)?;
        let enrollment: String = row.try_get(1)?;
        let due_days: Option<i64> = row.try_get(2)?;
        let claimed = tx
            .query("UPDATE certificates SET renewed_at = $3 WHERE tenant_id = $1 AND id = $2 AND renewed_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(tx.conn())
            .await?
            .rows_affected();
        if claimed == 0 {
            continue;
        }
        tx.query("DELETE FROM lesson_progress WHERE tenant_id = $1 AND enrollment_id = $2")
            .bind(enrollment.clone())
            .execute(tx.conn())
            .await?;
        tx.query(
            "UPDATE enrollments SET status = 'enrolled', progress = 0, completed_at = NULL, cycle = cycle + 1, \
             due_at = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(enrollment.clone())
        .bind(Some(now + due_days.unwrap_or(30) * DAY_MS))
        .bind(now)
        .execute(tx.conn())
        .await?;
        record(tx, &enrollment, "recertification", "enrolled", None, &source).await?;
        renewed += 1;
    }
    Ok(renewed)
}
