//! Content management: courses, their lessons and quizzes, and programs, as an academy's admin and instructor
//! build them through the API; and the refusals (bad input, missing rights, another academy's ids, content
//! in use) that must leave everything as it was.

mod common;

use common::{Client, Snapshot, TestApp, scenarios};
use serde_json::{Value, json};

scenarios!(
    a_course_is_built_lesson_by_lesson,
    bad_input_names_the_field_and_changes_nothing,
    only_tenant_wide_writers_change_content,
    another_academys_content_is_not_found,
    visibility_orgs_needs_organizations,
    content_in_use_is_not_deleted,
    programs_keep_their_courses_in_order,
);

/// Every stored row of the content tables the shared snapshot does not cover yet, as text.
async fn content_rows(app: &TestApp) -> Vec<String> {
    let tables: &[(&str, &str)] = &[
        (
            "courses",
            "id, code, title, summary, language, status, estimated_minutes, visibility, self_enroll, approval_required, due_days, certificate_valid_days, issues_certificate, updated_at",
        ),
        ("course_orgs", "course_id, org_id"),
        (
            "lessons",
            "id, course_id, position, kind, title, body, media_url, required, questions, pass_percent, max_attempts, updated_at",
        ),
        ("programs", "id, code, title, summary, status, updated_at"),
        ("program_courses", "program_id, course_id, position"),
    ];
    let mut tx = app.db.platform().begin().await.expect("platform transaction");
    let mut out = Vec::new();
    for (table, columns) in tables {
        let line = columns
            .split(", ")
            .map(|c| format!("coalesce(CAST({c} AS TEXT), '-')"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let sql = format!("SELECT {line} FROM {table}");
        let rows: Vec<String> = sqlx::query_scalar(&sql)
            .fetch_all(tx.conn())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        out.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    tx.commit().await.expect("commit");
    out.sort();
    out
}

/// Everything a refused request must leave alone.
struct Before {
    snapshot: Snapshot,
    content: Vec<String>,
    audit: i64,
}

impl Before {
    async fn take(app: &TestApp) -> Before {
        Before {
            snapshot: app.snapshot().await,
            content: content_rows(app).await,
            audit: app.audit_count().await,
        }
    }

    async fn assert_unchanged(&self, app: &TestApp, context: &str) {
        self.snapshot.assert_unchanged(&app.snapshot().await, context);
        assert_eq!(content_rows(app).await, self.content, "{context}: content changed");
        assert_eq!(app.audit_count().await, self.audit, "{context}: the audit log grew");
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

async fn create_course(client: &Client, body: Value) -> Value {
    let (status, course) = client.post("/api/v1/courses", body.clone()).await;
    assert_eq!(status, 201, "create course {body}: {course}");
    course
}

async fn add_lesson(client: &Client, course_id: &str, body: Value) -> Value {
    let (status, lesson) = client
        .post(&format!("/api/v1/courses/{course_id}/lessons"), body.clone())
        .await;
    assert_eq!(status, 201, "add lesson {body}: {lesson}");
    lesson
}

fn quiz_question() -> Value {
    json!({"prompt": "Which extinguisher for an electrical fire?", "choices": ["Water", "CO2", "Foam"], "correct": [1]})
}

/// Answers an error with this status, code and field.
fn assert_error(status: reqwest::StatusCode, body: &Value, want: u16, code: &str, field: &str, context: &str) {
    assert_eq!(status.as_u16(), want, "{context}: {body}");
    assert_eq!(body["error"]["code"], code, "{context}: {body}");
    if !field.is_empty() {
        assert_eq!(body["error"]["field"], field, "{context}: {body}");
    }
}

fn titles(lessons: &Value) -> Vec<&str> {
    lessons
        .as_array()
        .expect("a list of lessons")
        .iter()
        .map(|l| l["title"].as_str().unwrap_or_default())
        .collect()
}

async fn a_course_is_built_lesson_by_lesson(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let audit_before = app.audit_count().await;
    let (_, doc) = admin.get("/api/openapi.json").await;
    for (path, method, permission) in [
        ("/api/v1/courses", "post", "courses.write"),
        ("/api/v1/courses/{id}", "get", "courses.read"),
        ("/api/v1/courses/{id}/lessons/order", "put", "courses.write"),
        ("/api/v1/courses/{id}/lessons/{lesson_id}", "delete", "courses.write"),
        ("/api/v1/programs/{id}", "patch", "courses.write"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(
            op["x-aula-permission"], permission,
            "{method} {path} in the OpenAPI document: {op}"
        );
    }

    // A course with defaults, then its lessons: text, media, quiz.
    let course = create_course(
        &admin,
        json!({"code": "FIRE-101", "title": "Fire safety", "summary": "Stay safe.\nEvery year.", "estimated_minutes": 45,
               "due_days": 30, "certificate_valid_days": 365}),
    )
    .await;
    let course_id = id(&course);
    assert_eq!(course["status"], "draft");
    assert_eq!(course["visibility"], "tenant");
    assert_eq!(course["language"], "en", "the academy's default locale");
    assert_eq!(course["self_enroll"], true);
    assert_eq!(course["approval_required"], false);
    assert_eq!(course["issues_certificate"], true);
    assert_eq!(course["due_days"], 30);
    assert_eq!(course["certificate_valid_days"], 365);
    assert_eq!(course["summary"], "Stay safe.\nEvery year.");
    assert_eq!(course["lessons"], json!([]));
    assert_eq!(course["org_ids"], json!([]));

    let text = add_lesson(
        &admin,
        &course_id,
        json!({"kind": "text", "title": "Why it matters",
               "body": "# Fire\n\n**Never** ignore an alarm.\n\n<script>alert(1)</script>\n\n[bad](javascript:alert(1)) [good](https://example.com)"}),
    )
    .await;
    assert_eq!(text["position"], 1);
    assert_eq!(text["required"], true);
    let html = text["body_html"].as_str().expect("body_html");
    assert!(
        html.contains("<h1>Fire</h1>") && html.contains("<strong>Never</strong>"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("javascript:"), "{html}");
    assert!(html.contains("https://example.com"), "{html}");
    assert!(
        text["body"].as_str().unwrap().contains("<script>"),
        "the Markdown source is kept as written"
    );

    let media = add_lesson(
        &admin,
        &course_id,
        json!({"kind": "media", "title": "Watch the drill", "media_url": "https://video.example.com/drill.mp4", "required": false}),
    )
    .await;
    assert_eq!(media["position"], 2);
    assert_eq!(media["media_url"], "https://video.example.com/drill.mp4");
    assert_eq!(media["required"], false);

    let quiz = add_lesson(
        &admin,
        &course_id,
        json!({"kind": "quiz", "title": "Check yourself", "questions": [quiz_question(),
               {"prompt": "Pick the exits", "choices": ["Door A", "Window", "Door B"], "correct": [0, 2]}],
               "max_attempts": 3}),
    )
    .await;
    assert_eq!(quiz["position"], 3);
    assert_eq!(quiz["pass_percent"], 80, "the default pass mark");
    assert_eq!(quiz["max_attempts"], 3);
    assert_eq!(quiz["questions"][1]["correct"], json!([0, 2]), "admins see the answers");

    // An introduction put first shifts the others.
    let intro = add_lesson(
        &admin,
        &course_id,
        json!({"kind": "text", "title": "Welcome", "body": "Hello", "position": 1}),
    )
    .await;
    assert_eq!(intro["position"], 1);

    // Read back: the course with its lesson summary, and the full lessons.
    let (status, detail) = admin.get(&format!("/api/v1/courses/{course_id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["lesson_count"], 4);
    assert_eq!(
        titles(&detail["lessons"]),
        ["Welcome", "Why it matters", "Watch the drill", "Check yourself"]
    );
    assert_eq!(detail["lessons"][3]["question_count"], 2);
    assert_eq!(detail["lessons"][3]["kind"], "quiz");
    let (status, lessons) = admin.get(&format!("/api/v1/courses/{course_id}/lessons")).await;
    assert_eq!(status, 200, "{lessons}");
    let positions: Vec<i64> = lessons
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    assert_eq!(lessons[3]["questions"][0]["correct"], json!([1]));
    assert!(!lessons[2]["body_html"].as_str().unwrap().contains("<script"));

    // Reorder: quiz first, then the rest.
    let order = [id(&quiz), id(&intro), id(&text), id(&media)];
    let (status, summary) = admin
        .put(
            &format!("/api/v1/courses/{course_id}/lessons/order"),
            json!({"lesson_ids": order}),
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        titles(&summary),
        ["Check yourself", "Welcome", "Why it matters", "Watch the drill"]
    );
    let (_, lessons) = admin.get(&format!("/api/v1/courses/{course_id}/lessons")).await;
    assert_eq!(
        titles(&lessons),
        ["Check yourself", "Welcome", "Why it matters", "Watch the drill"]
    );
    assert_eq!(lessons[3]["position"], 4);

    // Change a lesson and the course.
    let (status, changed) = admin
        .patch(
            &format!("/api/v1/courses/{course_id}/lessons/{}", id(&quiz)),
            json!({"pass_percent": 100, "max_attempts": null, "questions": [quiz_question()]}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["pass_percent"], 100);
    assert_eq!(changed["max_attempts"], Value::Null);
    assert_eq!(changed["questions"].as_array().unwrap().len(), 1);
    assert_eq!(changed["title"], "Check yourself", "untouched fields stay");
    let (status, changed) = admin
        .patch(
            &format!("/api/v1/courses/{course_id}"),
            json!({"status": "published", "language": "de", "due_days": null, "title": "Fire safety 2026"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["status"], "published");
    assert_eq!(changed["language"], "de");
    assert_eq!(changed["due_days"], Value::Null);
    assert_eq!(changed["certificate_valid_days"], 365, "untouched fields stay");
    assert_eq!(changed["lessons"].as_array().unwrap().len(), 4);

    // Deleting a lesson closes the gap.
    let (status, _) = admin
        .delete(&format!("/api/v1/courses/{course_id}/lessons/{}", id(&intro)))
        .await;
    assert_eq!(status, 204);
    let (_, lessons) = admin.get(&format!("/api/v1/courses/{course_id}/lessons")).await;
    assert_eq!(
        titles(&lessons),
        ["Check yourself", "Why it matters", "Watch the drill"]
    );
    assert_eq!(lessons[2]["position"], 3);

    // The list: drafts included, filters, ordered by title.
    create_course(
        &admin,
        json!({"code": "ACC-1", "title": "Accessibility basics", "language": "en"}),
    )
    .await;
    let (status, all) = admin.get("/api/v1/courses").await;
    assert_eq!(status, 200, "{all}");
    let all_titles = titles(&all);
    let mut sorted = all_titles.clone();
    sorted.sort();
    assert_eq!(all_titles, sorted, "ordered by title");
    assert!(all_titles.contains(&"Accessibility basics") && all_titles.contains(&"Fire safety 2026"));
    // The demo may hold courses of its own: each filter is narrowed to this test's courses by a search too.
    let (_, published) = admin.get("/api/v1/courses?status=published&q=safety").await;
    assert_eq!(titles(&published).into_iter().filter(|t| t.contains("Fire")).count(), 1);
    let (_, drafts) = admin.get("/api/v1/courses?status=draft&q=fire").await;
    assert_eq!(drafts, json!([]));
    let (_, found) = admin.get("/api/v1/courses?q=fire-1").await;
    assert_eq!(titles(&found), ["Fire safety 2026"], "the code is searched too");
    let (_, found) = admin.get("/api/v1/courses?q=ACCESS").await;
    assert_eq!(titles(&found), ["Accessibility basics"]);
    let (_, german) = admin.get("/api/v1/courses?language=de&q=fire").await;
    assert_eq!(titles(&german), ["Fire safety 2026"]);
    let (_, english) = admin.get("/api/v1/courses?language=en&q=fire").await;
    assert_eq!(english, json!([]));
    let (status, body) = admin.get("/api/v1/courses?status=gone").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "status");

    // Every change was audited.
    let (_, audit) = admin.get("/api/v1/audit?limit=500").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "course.create",
        "course.update",
        "lesson.create",
        "lesson.update",
        "lesson.delete",
        "course.lessons_reorder",
    ] {
        assert!(actions.contains(&action), "no {action} in the audit log: {actions:?}");
    }
    assert_eq!(app.audit_count().await - audit_before, 10);
}

async fn bad_input_names_the_field_and_changes_nothing(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let globex = app.login("globex", "admin@globex.test").await;
    let (_, globex_orgs) = globex.get("/api/v1/orgs?limit=500").await;
    let foreign_org = id(&globex_orgs["items"][0]);
    let course = create_course(&admin, json!({"code": "SAFE-1", "title": "Safety"})).await;
    let course_id = id(&course);
    let lesson = add_lesson(&admin, &course_id, json!({"kind": "text", "title": "One", "body": "x"})).await;
    let lessons = format!("/api/v1/courses/{course_id}/lessons");
    let before = Before::take(app).await;

    let question = |correct: Value| json!({"prompt": "Q?", "choices": ["a", "b"], "correct": correct});
    let cases: Vec<(&str, String, Value, u16, &str, &str)> = vec![
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "safe-1", "title": "Again"}),
            409,
            "duplicate",
            "code",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "has space", "title": "T"}),
            400,
            "invalid_field",
            "code",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "X1", "title": "  "}),
            400,
            "invalid_field",
            "title",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "X1", "title": "T", "language": "English"}),
            400,
            "invalid_field",
            "language",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "X1", "title": "T", "status": "live"}),
            400,
            "invalid_field",
            "status",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "X1", "title": "T", "estimated_minutes": -1}),
            400,
            "invalid_field",
            "estimated_minutes",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "X1", "title": "T", "due_days": 0}),
            400,
            "invalid_field",
            "due_days",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "X1", "title": "T", "certificate_valid_days": 3651}),
            400,
            "invalid_field",
            "certificate_valid_days",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "X1", "title": "T", "visibility": "orgs", "org_ids": [foreign_org]}),
            400,
            "invalid_field",
            "org_ids[0]",
        ),
        (
            "POST",
            "/api/v1/courses".into(),
            json!({"code": "X1", "title": "T", "colour": "red"}),
            400,
            "unknown_field",
            "colour",
        ),
        (
            "PATCH",
            format!("/api/v1/courses/{course_id}"),
            json!({"code": "bad code!"}),
            400,
            "invalid_field",
            "code",
        ),
        (
            "PATCH",
            format!("/api/v1/courses/{course_id}"),
            json!({"title": "Renamed", "due_days": 4000}),
            400,
            "invalid_field",
            "due_days",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "quiz", "title": "Q", "questions": [question(json!([2]))]}),
            400,
            "invalid_field",
            "questions[0].correct",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "quiz", "title": "Q", "questions": [question(json!([0])), question(json!([]))]}),
            400,
            "invalid_field",
            "questions[1].correct",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "quiz", "title": "Q"}),
            400,
            "invalid_field",
            "questions",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "quiz", "title": "Q", "questions": [question(json!([0]))], "pass_percent": 101}),
            400,
            "invalid_field",
            "pass_percent",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "quiz", "title": "Q", "questions": [question(json!([0]))], "max_attempts": 0}),
            400,
            "invalid_field",
            "max_attempts",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "media", "title": "M"}),
            400,
            "invalid_field",
            "media_url",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "media", "title": "M", "media_url": "javascript:alert(1)"}),
            400,
            "invalid_field",
            "media_url",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "text", "title": "T", "media_url": "https://example.com"}),
            400,
            "invalid_field",
            "media_url",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "text", "title": "T", "body": "x".repeat(200_001)}),
            400,
            "invalid_field",
            "body",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "text", "title": "T", "position": 3}),
            400,
            "invalid_field",
            "position",
        ),
        (
            "POST",
            lessons.clone(),
            json!({"kind": "video", "title": "T"}),
            400,
            "invalid_field",
            "kind",
        ),
        (
            "PATCH",
            format!("{lessons}/{}", id(&lesson)),
            json!({"questions": [question(json!([0]))]}),
            400,
            "invalid_field",
            "questions",
        ),
        (
            "PATCH",
            format!("{lessons}/{}", id(&lesson)),
            json!({"title": ""}),
            400,
            "invalid_field",
            "title",
        ),
        (
            "PUT",
            format!("{lessons}/order"),
            json!({"lesson_ids": []}),
            400,
            "invalid_field",
            "lesson_ids",
        ),
        (
            "PUT",
            format!("{lessons}/order"),
            json!({"lesson_ids": [id(&lesson), id(&lesson)]}),
            400,
            "invalid_field",
            "lesson_ids[1]",
        ),
        (
            "PUT",
            format!("{lessons}/order"),
            json!({"lesson_ids": [course_id.clone()]}),
            400,
            "invalid_field",
            "lesson_ids[0]",
        ),
        (
            "POST",
            "/api/v1/programs".into(),
            json!({"code": "P 1", "title": "P"}),
            400,
            "invalid_field",
            "code",
        ),
        (
            "POST",
            "/api/v1/programs".into(),
            json!({"code": "P1", "title": "P", "course_ids": [course_id.clone(), course_id.clone()]}),
            400,
            "invalid_field",
            "course_ids[1]",
        ),
        (
            "POST",
            "/api/v1/programs".into(),
            json!({"code": "P1", "title": "P", "course_ids": ["no-such-course"]}),
            400,
            "invalid_field",
            "course_ids[0]",
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let reply = admin.send(method, &path, common::Body::Json(body.clone())).await;
        let shown: String = body.to_string().chars().take(200).collect();
        assert_error(
            reply.status,
            &reply.body,
            status,
            code,
            field,
            &format!("{method} {path} {shown}"),
        );
    }
    before.assert_unchanged(app, "refused content changes").await;
}

async fn only_tenant_wide_writers_change_content(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let course = create_course(&admin, json!({"code": "OPS-1", "title": "Operations"})).await;
    let course_id = id(&course);
    // An organization manager holds no course rights: neither reading nor writing.
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let before = Before::take(app).await;
    let attempts = [
        ("GET", "/api/v1/courses".to_owned(), None),
        ("GET", format!("/api/v1/courses/{course_id}"), None),
        (
            "POST",
            "/api/v1/courses".to_owned(),
            Some(json!({"code": "MINE", "title": "Mine"})),
        ),
        (
            "PATCH",
            format!("/api/v1/courses/{course_id}"),
            Some(json!({"title": "Mine"})),
        ),
        ("DELETE", format!("/api/v1/courses/{course_id}"), None),
        (
            "POST",
            format!("/api/v1/courses/{course_id}/lessons"),
            Some(json!({"kind": "text", "title": "Mine"})),
        ),
        (
            "POST",
            "/api/v1/programs".to_owned(),
            Some(json!({"code": "MINE", "title": "Mine"})),
        ),
    ];
    for (method, path, body) in &attempts {
        let body = body.clone().map_or(common::Body::None, common::Body::Json);
        let reply = manager.send(method, path, body).await;
        assert_eq!(reply.status, 403, "{method} {path} as an org manager: {}", reply.text);
    }
    before.assert_unchanged(app, "an org manager's attempts").await;

    // The instructor builds courses.
    let instructor = app.login("acme", "instructor@acme.test").await;
    let mine = create_course(&instructor, json!({"code": "TEACH-1", "title": "Teaching"})).await;
    add_lesson(
        &instructor,
        &id(&mine),
        json!({"kind": "text", "title": "Start", "body": "Go"}),
    )
    .await;
    let (status, list) = instructor.get("/api/v1/courses").await;
    assert_eq!(status, 200, "{list}");
    assert!(titles(&list).contains(&"Teaching"), "{list}");
}

async fn another_academys_content_is_not_found(app: &TestApp) {
    let acme = app.login("acme", "admin@acme.test").await;
    let globex = app.login("globex", "admin@globex.test").await;
    let course = create_course(&acme, json!({"code": "ACME-1", "title": "Acme secrets"})).await;
    let course_id = id(&course);
    let lesson = add_lesson(
        &acme,
        &course_id,
        json!({"kind": "text", "title": "Hidden", "body": "x"}),
    )
    .await;
    let lesson_id = id(&lesson);
    let (status, program) = acme
        .post(
            "/api/v1/programs",
            json!({"code": "ACME-P", "title": "Acme path", "course_ids": [course_id]}),
        )
        .await;
    assert_eq!(status, 201, "{program}");
    let program_id = id(&program);
    let own = create_course(&globex, json!({"code": "GLOBEX-1", "title": "Globex course"})).await;
    let own_id = id(&own);
    let before = Before::take(app).await;

    let lesson_body = json!({"kind": "text", "title": "x"});
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/courses/{course_id}"), None),
        (
            "PATCH",
            format!("/api/v1/courses/{course_id}"),
            Some(json!({"title": "Taken"})),
        ),
        ("DELETE", format!("/api/v1/courses/{course_id}"), None),
        ("GET", format!("/api/v1/courses/{course_id}/lessons"), None),
        (
            "POST",
            format!("/api/v1/courses/{course_id}/lessons"),
            Some(lesson_body),
        ),
        (
            "PUT",
            format!("/api/v1/courses/{course_id}/lessons/order"),
            Some(json!({"lesson_ids": [lesson_id]})),
        ),
        (
            "PATCH",
            format!("/api/v1/courses/{course_id}/lessons/{lesson_id}"),
            Some(json!({"title": "Taken"})),
        ),
        (
            "DELETE",
            format!("/api/v1/courses/{course_id}/lessons/{lesson_id}"),
            None,
        ),
        // globex's own course with acme's lesson.
        (
            "PATCH",
            format!("/api/v1/courses/{own_id}/lessons/{lesson_id}"),
            Some(json!({"title": "Taken"})),
        ),
        ("DELETE", format!("/api/v1/courses/{own_id}/lessons/{lesson_id}"), None),
        ("GET", format!("/api/v1/programs/{program_id}"), None),
        (
            "PATCH",
            format!("/api/v1/programs/{program_id}"),
            Some(json!({"title": "Taken"})),
        ),
        ("DELETE", format!("/api/v1/programs/{program_id}"), None),
    ];
    for (method, path, body) in &attempts {
        let body = body.clone().map_or(common::Body::None, common::Body::Json);
        let reply = globex.send(method, path, body).await;
        assert_eq!(reply.status, 404, "{method} {path} as globex's admin: {}", reply.text);
        assert!(!reply.text.contains("Acme"), "{method} {path}: {}", reply.text);
    }
    // Naming acme's course inside globex's own program is a field error, not a way in.
    let (status, body) = globex
        .post(
            "/api/v1/programs",
            json!({"code": "G-P", "title": "Path", "course_ids": [own_id, course_id]}),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "invalid_field",
        "course_ids[1]",
        "acme course in a globex program",
    );
    // Lists show only the academy's own content.
    let (_, list) = globex.get("/api/v1/courses").await;
    assert!(titles(&list).contains(&"Globex course"), "{list}");
    assert!(!list.to_string().contains("Acme"), "{list}");
    let (_, programs) = globex.get("/api/v1/programs").await;
    assert!(!programs.to_string().contains(&program_id), "{programs}");
    before.assert_unchanged(app, "globex aiming at acme's content").await;
}

async fn visibility_orgs_needs_organizations(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (_, orgs) = admin.get("/api/v1/orgs?limit=500").await;
    let org_named = |name: &str| {
        orgs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .map(id)
            .unwrap_or_else(|| panic!("no org {name}"))
    };
    let (sales, engineering) = (org_named("Sales EMEA"), org_named("Engineering"));

    let (status, body) = admin
        .post(
            "/api/v1/courses",
            json!({"code": "EMEA-1", "title": "EMEA only", "visibility": "orgs"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_field", "org_ids", "orgs without org_ids");
    let (status, body) = admin
        .post(
            "/api/v1/courses",
            json!({"code": "EMEA-1", "title": "EMEA only", "org_ids": [sales]}),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "invalid_field",
        "org_ids",
        "org_ids without visibility orgs",
    );
    let (status, body) = admin
        .post(
            "/api/v1/courses",
            json!({"code": "EMEA-1", "title": "EMEA only", "visibility": "orgs", "org_ids": [sales, sales]}),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "invalid_field",
        "org_ids[1]",
        "an organization twice",
    );

    let course = create_course(
        &admin,
        json!({"code": "EMEA-1", "title": "EMEA only", "visibility": "orgs", "org_ids": [sales]}),
    )
    .await;
    let course_id = id(&course);
    assert_eq!(course["org_ids"], json!([sales]));
    let path = format!("/api/v1/courses/{course_id}");

    // Replace the organizations; then an empty list is refused while the visibility stays `orgs`.
    let (status, changed) = admin.patch(&path, json!({"org_ids": [engineering, sales]})).await;
    assert_eq!(status, 200, "{changed}");
    let mut expected = vec![engineering.clone(), sales.clone()];
    expected.sort();
    assert_eq!(changed["org_ids"], json!(expected));
    let (status, body) = admin.patch(&path, json!({"org_ids": []})).await;
    assert_error(status, &body, 400, "invalid_field", "org_ids", "emptying org_ids");

    // Leaving `orgs` drops the organizations; naming some without it is refused.
    let (status, changed) = admin.patch(&path, json!({"visibility": "hidden"})).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["org_ids"], json!([]));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM course_orgs WHERE course_id = $1", &[&course_id])
            .await,
        0
    );
    let (status, body) = admin.patch(&path, json!({"org_ids": [sales]})).await;
    assert_error(
        status,
        &body,
        400,
        "invalid_field",
        "org_ids",
        "org_ids on a hidden course",
    );
    let (status, body) = admin.patch(&path, json!({"visibility": "orgs"})).await;
    assert_error(
        status,
        &body,
        400,
        "invalid_field",
        "org_ids",
        "back to orgs without any",
    );
    let (status, changed) = admin
        .patch(&path, json!({"visibility": "orgs", "org_ids": [sales]}))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["visibility"], "orgs");
    assert_eq!(changed["org_ids"], json!([sales]));
}

async fn content_in_use_is_not_deleted(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (_, tenant) = admin.get("/api/v1/tenant").await;
    let tenant_id = id(&tenant);
    let (_, users) = admin.get("/api/v1/users?limit=500").await;
    let nora = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "nora.north@acme.test")
        .map(id)
        .expect("the demo has Nora");

    let course = create_course(&admin, json!({"code": "USED-1", "title": "Used"})).await;
    let course_id = id(&course);
    let lesson = add_lesson(&admin, &course_id, json!({"kind": "text", "title": "L", "body": "x"})).await;
    let (status, program) = admin
        .post(
            "/api/v1/programs",
            json!({"code": "PATH-1", "title": "Path", "course_ids": [course_id]}),
        )
        .await;
    assert_eq!(status, 201, "{program}");
    let program_id = id(&program);

    // Part of a program: refused, nothing removed.
    let before = Before::take(app).await;
    let (status, body) = admin.delete(&format!("/api/v1/courses/{course_id}")).await;
    assert_error(status, &body, 422, "course_in_use", "", "a course in a program");
    assert!(body["error"]["message"].as_str().unwrap().contains("archive"), "{body}");
    assert_eq!(body["error"]["details"]["programs"], json!(["PATH-1"]));
    before.assert_unchanged(app, "deleting a course a program uses").await;

    // Out of the program, but someone is enrolled (and has finished the lesson).
    let (status, changed) = admin
        .patch(&format!("/api/v1/programs/{program_id}"), json!({"course_ids": []}))
        .await;
    assert_eq!(status, 200, "{changed}");
    let enrollment = "enr-test-1";
    app.exec(
        "INSERT INTO enrollments (id, tenant_id, user_id, course_id, status, progress, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'enrolled', 0, 0, 0)",
        &[enrollment, &tenant_id, &nora, &course_id],
    )
    .await;
    app.exec(
        "INSERT INTO lesson_progress (tenant_id, enrollment_id, lesson_id, completed_at) VALUES ($1, $2, $3, 0)",
        &[&tenant_id, enrollment, &id(&lesson)],
    )
    .await;
    let before = Before::take(app).await;
    let (status, body) = admin.delete(&format!("/api/v1/courses/{course_id}")).await;
    assert_error(status, &body, 422, "course_in_use", "", "a course with an enrollment");
    assert_eq!(body["error"]["details"]["enrollments"], 1);
    let (status, body) = admin
        .delete(&format!("/api/v1/courses/{course_id}/lessons/{}", id(&lesson)))
        .await;
    assert_error(status, &body, 422, "lesson_in_use", "", "a lesson with progress");
    before.assert_unchanged(app, "deleting content in use").await;

    // A program with an enrollment stays too.
    app.exec(
        "INSERT INTO program_enrollments (id, tenant_id, user_id, program_id, status, created_at, updated_at) \
         VALUES ('penr-test-1', $1, $2, $3, 'enrolled', 0, 0)",
        &[&tenant_id, &nora, &program_id],
    )
    .await;
    let (status, body) = admin.delete(&format!("/api/v1/programs/{program_id}")).await;
    assert_error(status, &body, 422, "program_in_use", "", "a program with an enrollment");

    // Once nobody uses them, they go, lessons with the course.
    app.exec("DELETE FROM lesson_progress WHERE enrollment_id = $1", &[enrollment])
        .await;
    app.exec("DELETE FROM enrollments WHERE id = $1", &[enrollment]).await;
    app.exec("DELETE FROM program_enrollments WHERE id = 'penr-test-1'", &[])
        .await;
    let (status, body) = admin.delete(&format!("/api/v1/courses/{course_id}")).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM lessons WHERE course_id = $1", &[&course_id])
            .await,
        0
    );
    let (status, _) = admin.get(&format!("/api/v1/courses/{course_id}")).await;
    assert_eq!(status, 404);
    let (status, _) = admin.delete(&format!("/api/v1/programs/{program_id}")).await;
    assert_eq!(status, 204);
    let (status, _) = admin.get(&format!("/api/v1/programs/{program_id}")).await;
    assert_eq!(status, 404);
}

async fn programs_keep_their_courses_in_order(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let mut ids = Vec::new();
    for (code, title) in [("ONB-1", "Welcome"), ("ONB-2", "Tools"), ("ONB-3", "Security")] {
        ids.push(id(&create_course(&admin, json!({"code": code, "title": title})).await));
    }
    let (status, program) = admin
        .post(
            "/api/v1/programs",
            json!({"code": "ONBOARD", "title": "Onboarding", "summary": "First weeks", "course_ids": [ids[2], ids[0]]}),
        )
        .await;
    assert_eq!(status, 201, "{program}");
    let program_id = id(&program);
    assert_eq!(program["status"], "draft");
    assert_eq!(titles(&program["courses"]), ["Security", "Welcome"]);
    assert_eq!(program["courses"][0]["code"], "ONB-3");
    assert_eq!(program["courses"][0]["id"], ids[2].as_str());

    // Codes are unique without case.
    let (status, body) = admin
        .post("/api/v1/programs", json!({"code": "onboard", "title": "Again"}))
        .await;
    assert_error(status, &body, 409, "duplicate", "code", "a program code twice");

    // Replace the courses (and their order) and the status.
    let path = format!("/api/v1/programs/{program_id}");
    let (status, changed) = admin
        .patch(
            &path,
            json!({"course_ids": [ids[0], ids[1], ids[2]], "status": "published"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(titles(&changed["courses"]), ["Welcome", "Tools", "Security"]);
    assert_eq!(changed["status"], "published");
    assert_eq!(changed["summary"], "First weeks", "untouched fields stay");
    let (status, body) = admin.patch(&path, json!({"course_ids": [ids[0], ids[0]]})).await;
    assert_error(status, &body, 400, "invalid_field", "course_ids[1]", "a course twice");
    let (status, read) = admin.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(titles(&read["courses"]), ["Welcome", "Tools", "Security"]);

    // A second program; the list is ordered by title and carries the courses.
    let (status, _) = admin
        .post(
            "/api/v1/programs",
            json!({"code": "ADV", "title": "Advanced", "course_ids": [ids[1]]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, list) = admin.get("/api/v1/programs").await;
    assert_eq!(status, 200, "{list}");
    let ours: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["code"] == "ADV" || p["code"] == "ONBOARD")
        .collect();
    assert_eq!(ours.len(), 2, "{list}");
    assert_eq!(ours[0]["title"], "Advanced");
    assert_eq!(titles(&ours[1]["courses"]), ["Welcome", "Tools", "Security"]);

    // An instructor reads them; an organization manager does not.
    let (status, _) = app.login("acme", "instructor@acme.test").await.get(&path).await;
    assert_eq!(status, 200);
    let (status, _) = app.login("acme", "emea.manager@acme.test").await.get(&path).await;
    assert_eq!(status, 403);

    // Delete: the program goes, its courses stay.
    let (status, _) = admin.delete(&path).await;
    assert_eq!(status, 204);
    let (status, _) = admin.get(&path).await;
    assert_eq!(status, 404);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM program_courses WHERE program_id = $1",
            &[&program_id]
        )
        .await,
        0
    );
    let (_, courses) = admin.get("/api/v1/courses?q=ONB-").await;
    assert_eq!(courses.as_array().unwrap().len(), 3);
}
