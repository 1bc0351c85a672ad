//! The demo academies' courses and lessons.

use crate::db::{new_id, now_ms};
use sqlx::Row;

/// The demo's courses per academy (slug, name, courses).
/// A demo course: code, title, language.
pub(super) type DemoCourse = (&'static str, &'static str, &'static str);

pub(super) const DEMO_COURSES: &[(&str, &str, &[DemoCourse])] = &[
    (
        "acme",
        "Acme Academy",
        &[
            ("ONBOARD-100", "Welcome to Acme", "en"),
            ("SAFE-101", "Workplace safety", "en"),
            ("SALES-201", "Consultative selling", "en"),
            ("SEC-110", "Security basics", "de"),
        ],
    ),
    (
        "globex",
        "Globex Partner Training",
        &[
            ("PARTNER-101", "Partner onboarding", "en"),
            ("CERT-300", "Globex certified installer", "en"),
            ("PROD-120", "Présentation des produits", "fr"),
        ],
    ),
];

/// Every demo course gets a reading, a video and a short quiz; the second course certifies for a year and is
/// due a month after enrolling.
pub(super) async fn seed_lessons(tx: &mut crate::db::TenantTx, courses: &[String], now: i64) -> anyhow::Result<()> {
    let quiz = serde_json::json!([
        {"prompt": "Who can see your academy's data?", "choices": ["Anyone", "Your academy only"], "correct": [1]},
        {"prompt": "Which of these are safe habits?", "choices": ["Locking your screen", "Sharing passwords", "Reporting incidents"], "correct": [0, 2]}
    ]);
    for course in courses {
        let lessons = [
            (
                "text",
                "Read me first",
                "## Welcome\n\nThis course takes about **ten minutes**. Work through each lesson, then take the quiz.",
                None,
            ),
            (
                "media",
                "Watch: the short version",
                "",
                Some("https://www.example.com/videos/intro"),
            ),
            ("quiz", "Check what you know", "", None),
        ];
        for (position, (kind, title, body, url)) in lessons.into_iter().enumerate() {
            tx.query(
                "INSERT INTO lessons (id, tenant_id, course_id, position, kind, title, body, media_url, questions, pass_percent, max_attempts, created_at, updated_at) \
                 VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
            )
            .bind(new_id())
            .bind(course.clone())
            .bind(position as i64 + 1)
            .bind(kind)
            .bind(title)
            .bind(body)
            .bind(url)
            .bind(if kind == "quiz" { quiz.to_string() } else { "[]".into() })
            .bind(if kind == "quiz" { Some(100i64) } else { None })
            .bind(if kind == "quiz" { Some(3i64) } else { None })
            .bind(now)
            .execute(tx.conn())
            .await?;
        }
    }
    if let Some(second) = courses.get(1) {
        tx.query("UPDATE courses SET certificate_valid_days = 365, due_days = 30 WHERE tenant_id = $1 AND id = $2")
            .bind(second.clone())
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

pub(super) async fn seed_courses(tenant: &crate::db::TenantDb, courses: &[(&str, &str, &str)]) -> anyhow::Result<()> {
    let mut tx = tenant.begin().await?;
    let any = tx
        .query("SELECT 1 FROM courses WHERE tenant_id = $1 LIMIT 1")
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    if any {
        return Ok(());
    }
    let now = now_ms();
    let mut ids = Vec::new();
    for (code, title, language) in courses {
        let id = new_id();
        tx.query(
            "INSERT INTO courses (id, tenant_id, code, title, language, status, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, 'published', $6, $6)",
        )
        .bind(id.clone())
        .bind(*code)
        .bind(*title)
        .bind(*language)
        .bind(now)
        .execute(tx.conn())
        .await?;
        ids.push(id);
    }
    seed_lessons(&mut tx, &ids, now).await?;
    // New people are enrolled in the first course by a built-in rule, due in two weeks.
    tx.query(
        "INSERT INTO rules (id, tenant_id, name, definition, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, $5)",
    )
    .bind(new_id())
    .bind("Everyone new takes the first course")
    .bind(
        serde_json::json!({"on": ["user_created"], "then": [{"type": "enroll", "course_id": ids[0], "due_in_days": 14}]})
            .to_string(),
    )
    .bind(now)
    .execute(tx.conn())
    .await?;
    // Every learner is enrolled in the first course; every third completed it, every other one is in progress.
    let users = tx
        .query("SELECT id FROM users WHERE tenant_id = $1 ORDER BY email")
        .fetch_all(tx.conn())
        .await?;
    for (i, row) in users.iter().enumerate() {
        let user: String = row.try_get(0)?;
        let (status, progress, completed) = match i % 3 {
            0 => ("completed", 100, Some(now - 86_400_000 * (i as i64 % 20 + 1))),
            1 => ("in_progress", 40, None),
            _ => ("enrolled", 0, None),
        };
        tx.query(
            "INSERT INTO enrollments (id, tenant_id, user_id, course_id, status, progress, due_at, completed_at, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(new_id())
        .bind(user)
        .bind(ids[0].clone())
        .bind(status)
        .bind(progress as i64)
        .bind(now + 86_400_000 * 14)
        .bind(completed)
        .bind(now)
        .execute(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
