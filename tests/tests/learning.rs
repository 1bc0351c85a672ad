//! Enrollment, learning and automation as the academy's people live them: an admin or a manager enrolls
//! someone, a learner works through a course to a certificate anyone can check, approvals, due dates, and
//! the rules and enrollment plugins that enroll people on their own, with their traces in the automation
//! and audit logs.

mod common;

use aula::config::Config;
use common::{Client, Directory, TestApp, scenarios};
use serde_json::{Value, json};
use std::collections::BTreeSet;

scenarios!(
    enroll_twice_is_idempotent,
    lesson_of_a_course_not_enrolled_in_is_refused,
    manager_scope,
    learner_journey,
    approval_queue,
    overdue_is_derived,
    org_rule_enrolls_new_members,
    tag_rule_and_retroactive_dry_run,
    loop_is_stopped_and_reported,
    bulk_enroll_org_subtree,
    an_academys_jobs_queue_behind_its_own,
    enrollment_plugin_places_and_enrolls,
);

scenarios!(with cramped => faulting_enrollment_plugin_fails_open);

/// Enrollment plugins get one MiB of linear memory: less than a Rust component asks for when it is
/// instantiated, so every call of one faults before any guest code runs, whatever the guest does.
fn cramped(config: &mut Config) {
    config.plugins.limits.enrollment.memory_mib = 1;
}

const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------------------------
// Helpers

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

fn items(page: &Value) -> Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .clone()
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).clone()
}

fn strings<'a>(values: impl IntoIterator<Item = &'a Value>, key: &str) -> BTreeSet<String> {
    values
        .into_iter()
        .map(|v| v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")).to_owned())
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64
}

/// Milliseconds since the epoch of an RFC 3339 time in UTC as the host writes them
/// (`2026-04-01T12:00:00.000Z`).
fn epoch_ms(text: &str) -> i64 {
    let bad = || -> ! { panic!("not an RFC 3339 UTC time: {text:?}") };
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| bad());
    let (date, time) = text.split_once('T').unwrap_or_else(|| bad());
    let time = time.strip_suffix('Z').unwrap_or_else(|| bad());
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        bad();
    }
    let (y, m, day) = (num(d[0]), num(d[1]), num(d[2]));
    let (secs, millis) = match t[2].split_once('.') {
        Some((s, f)) => (num(s), num(&format!("{f:0<3}")[..3])),
        None => (num(t[2]), 0),
    };
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + num(t[0]) * 3600 + num(t[1]) * 60 + secs) * 1000) + millis
}

/// Assert that `due_at` lies `days` days after `from` (both as the host wrote them), give or take a minute
/// for the time between the two being taken.
fn assert_due_in(due_at: &Value, from_ms: i64, days: i64, context: &str) {
    let due = epoch_ms(due_at.as_str().unwrap_or_else(|| panic!("{context}: no due date")));
    let expected = from_ms + days * DAY_MS;
    assert!(
        (due - expected).abs() < 60_000,
        "{context}: due {due_at}, expected about {days} days after {from_ms}"
    );
}

async fn create_course(admin: &Client, code: &str, extra: Value) -> Value {
    let mut body = json!({"code": code, "title": format!("Course {code}"), "status": "published"});
    for (k, v) in extra.as_object().expect("course fields").iter() {
        body[k] = v.clone();
    }
    let (status, course) = admin.post("/api/v1/courses", body.clone()).await;
    assert_eq!(status, 201, "create course {body}: {course}");
    course
}

async fn add_lesson(admin: &Client, course_id: &str, body: Value) -> Value {
    let (status, lesson) = admin
        .post(&format!("/api/v1/courses/{course_id}/lessons"), body.clone())
        .await;
    assert_eq!(status, 201, "add lesson {body}: {lesson}");
    lesson
}

async fn create_tag(admin: &Client, name: &str) -> String {
    let (status, tag) = admin.post("/api/v1/tags", json!({"name": name})).await;
    assert_eq!(status, 201, "create tag {name}: {tag}");
    id(&tag)
}

async fn tag_user(admin: &Client, user_id: &str, tag_id: &str) {
    let (status, body) = admin
        .post(&format!("/api/v1/users/{user_id}/tags"), json!({"tag_id": tag_id}))
        .await;
    assert_eq!(status, 200, "tag {user_id} with {tag_id}: {body}");
}

async fn create_rule(admin: &Client, name: &str, definition: Value, max_fires: i64) -> String {
    let body = json!({"name": name, "definition": definition, "max_fires_per_user": max_fires});
    let (status, rule) = admin.post("/api/v1/rules", body.clone()).await;
    assert_eq!(status, 201, "create rule {body}: {rule}");
    id(&rule)
}

async fn create_user(admin: &Client, email: &str, name: &str, org_ids: &[&str]) -> String {
    let body = json!({"email": email, "name": name, "org_ids": org_ids});
    let (status, user) = admin.post("/api/v1/users", body.clone()).await;
    assert_eq!(status, 201, "create user {body}: {user}");
    id(&user)
}

/// Every enrollment the client may list with these filters (all pages).
async fn enrollments(client: &Client, query: &str) -> Vec<Value> {
    client
        .get_all_pages(&format!("/api/v1/enrollments?limit=500&{query}"))
        .await
        .0
}

async fn automation_log(admin: &Client, query: &str) -> Vec<Value> {
    admin
        .get_all_pages(&format!("/api/v1/automation-log?limit=500&{query}"))
        .await
        .0
}

/// Poll a job until it has ended; panics when it failed or is still running after ten seconds.
async fn finished_job(client: &Client, job_id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, job) = client.get(&format!("/api/v1/jobs/{job_id}")).await;
        assert_eq!(status, 200, "GET job {job_id}: {job}");
        match job["status"].as_str() {
            Some("done") => return job,
            Some("failed") => panic!("job {job_id} failed: {job}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {job_id} has not finished after 10 s: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Row counts a learner's progress would change: the course's enrollments, lessons done, history, audit.
async fn learning_rows(app: &TestApp, course: &str) -> (i64, i64, i64, i64) {
    (
        app.count("SELECT COUNT(*) FROM enrollments WHERE course_id = $1", &[course])
            .await,
        app.count("SELECT COUNT(*) FROM lesson_progress", &[]).await,
        app.count("SELECT COUNT(*) FROM enrollment_history", &[]).await,
        app.audit_count().await,
    )
}

/// A question with the right answer at index 1.
fn question(prompt: &str) -> Value {
    json!({"prompt": prompt, "choices": ["No", "Yes", "Maybe"], "correct": [1]})
}

fn wasm(crate_name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("AULA_WASM_DIR")).join(format!("{crate_name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn manifest(root: &str, dir: &str) -> String {
    let path = std::path::Path::new(root).join(dir).join("aula-plugin.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Upload with every requested capability granted and activate, as an admin would; returns the plugin id.
async fn deploy(admin: &Client, manifest: &str, component: &[u8]) -> String {
    let form = common::Form::new()
        .text("manifest", manifest)
        .file("component", "plugin.wasm", component)
        .text("grant", "requested");
    let reply = admin.post_form("/api/v1/plugins", &form).await;
    assert_eq!(reply.status, 201, "upload: {}", reply.text);
    let plugin = reply.body["plugin"]["id"].as_str().expect("plugin id").to_owned();
    let (status, body) = admin
        .post(&format!("/api/v1/plugins/{plugin}/activate"), json!({}))
        .await;
    assert_eq!(status, 200, "activate: {body}");
    assert_eq!(body["status"], "active", "{body}");
    plugin
}

// ---------------------------------------------------------------------------------------------------------
// Scenarios

/// An admin who enrolls the same person twice (a double click, a retried request) gets the same enrollment
/// back, and its history says once who enrolled them.
async fn enroll_twice_is_idempotent(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let admin_id = dir.user("admin@acme.test");
    let nora = dir.user("nora.north@acme.test");
    let course = id(&create_course(&admin, "IDEM-100", json!({})).await);

    let body = json!({"user_id": nora, "course_id": course});
    let (status, first) = admin.post("/api/v1/enrollments", body.clone()).await;
    assert_eq!(status, 201, "first enrollment: {first}");
    assert_eq!(first["status"], "enrolled", "{first}");
    assert_eq!(first["source"], "manual", "{first}");
    assert_eq!(first["user_id"], nora.as_str(), "{first}");
    let (status, second) = admin.post("/api/v1/enrollments", body).await;
    assert_eq!(status, 200, "second enrollment: {second}");
    assert_eq!(second["id"], first["id"], "the same enrollment both times");

    let listed = enrollments(&admin, &format!("course_id={course}")).await;
    assert_eq!(listed.len(), 1, "one enrollment in the course: {listed:#?}");
    assert_eq!(listed[0]["id"], first["id"]);

    let (status, detail) = admin.get(&format!("/api/v1/enrollments/{}", id(&first))).await;
    assert_eq!(status, 200, "{detail}");
    let history = list(&detail["history"]);
    let enrolled: Vec<&Value> = history.iter().filter(|h| h["action"] == "enrolled").collect();
    assert_eq!(enrolled.len(), 1, "one 'enrolled' step: {history:#?}");
    assert_eq!(enrolled[0]["cause"], format!("user:{admin_id}"), "{history:#?}");
    assert_eq!(history.len(), 1, "the repeat added no history: {history:#?}");

    // The repeat changed nothing, so it is not in the audit log either.
    let (status, audit) = admin
        .get(&format!(
            "/api/v1/audit?action=enrollment.create&target_id={}",
            id(&first)
        ))
        .await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(items(&audit).len(), 1, "one audited enrollment: {audit}");
}

/// A learner who posts progress for a course they never joined is told so, and nothing is written on
/// their behalf (no enrollment slipped in through the back door).
async fn lesson_of_a_course_not_enrolled_in_is_refused(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let course = id(&create_course(&admin, "NOPE-100", json!({})).await);
    let lesson = id(&add_lesson(
        &admin,
        &course,
        json!({"kind": "text", "title": "Welcome", "body": "Hello"}),
    )
    .await);
    let before = learning_rows(app, &course).await;

    let nora = app.login("acme", "nora.north@acme.test").await;
    let reply = nora
        .send(
            "POST",
            &format!("/api/v1/me/courses/{course}/lessons/{lesson}/complete"),
            common::Body::Json(json!({})),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.code(), "not_enrolled", "{}", reply.text);

    assert_eq!(learning_rows(app, &course).await, before, "the refusal wrote something");
    assert!(
        enrollments(&admin, &format!("course_id={course}")).await.is_empty(),
        "no enrollment appeared"
    );
    let (status, mine) = nora.get("/api/v1/me/enrollments").await;
    assert_eq!(status, 200, "{mine}");
    assert!(list(&mine).iter().all(|e| e["course_id"] != course.as_str()), "{mine}");
    let outline = nora
        .send("GET", &format!("/api/v1/me/courses/{course}"), common::Body::None)
        .await;
    assert_eq!(
        (outline.status.as_u16(), outline.code()),
        (422, "not_enrolled"),
        "{}",
        outline.text
    );
}

/// The manager of Sales EMEA enrolls only their own people, only in courses offered to their part of the
/// academy, and sees only their own people's enrollments.
async fn manager_scope(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let nora = dir.user("nora.north@acme.test");
    let will = dir.user("will.west@acme.test");

    let open = id(&create_course(&admin, "OPEN-100", json!({})).await);
    let americas = id(&create_course(
        &admin,
        "AMER-100",
        json!({"visibility": "orgs", "org_ids": [dir.org("Sales Americas")]}),
    )
    .await);
    let sales = id(&create_course(
        &admin,
        "SALES-100",
        json!({"visibility": "orgs", "org_ids": [dir.org("Sales")]}),
    )
    .await);
    let hidden = id(&create_course(&admin, "HIDDEN-100", json!({"visibility": "hidden"})).await);
    let draft = id(&create_course(&admin, "DRAFT-100", json!({"status": "draft"})).await);

    // Someone outside the subtree is not theirs to enroll (an id in the body that is out of reach is bad
    // input, as for every other endpoint).
    let (status, body) = manager
        .post("/api/v1/enrollments", json!({"user_id": will, "course_id": open}))
        .await;
    assert_eq!(status, 400, "outside user: {body}");
    assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    assert_eq!(body["error"]["field"], "user_id", "{body}");

    // Their own learner, into courses not offered to their part of the academy.
    for (course, what) in [
        (&americas, "offered to another division"),
        (&hidden, "hidden"),
        (&draft, "draft"),
    ] {
        let (status, body) = manager
            .post("/api/v1/enrollments", json!({"user_id": nora, "course_id": course}))
            .await;
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["error"]["code"], "course_not_visible", "{what}: {body}");
        assert_eq!(body["error"]["field"], "course_id", "{what}: {body}");
    }

    // A course offered tenant-wide, and one offered to the division above theirs.
    for course in [&open, &sales] {
        let (status, body) = manager
            .post("/api/v1/enrollments", json!({"user_id": nora, "course_id": course}))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["user_id"], nora.as_str(), "{body}");
    }
    let noras: BTreeSet<String> = strings(&enrollments(&admin, &format!("user_id={nora}")).await, "course_id");
    assert_eq!(
        noras,
        BTreeSet::from([open.clone(), sales.clone()]),
        "only the allowed enrollments exist"
    );

    // Enrollments on both sides of the subtree's border, made by the admin.
    for email in ["will.west@acme.test", "sam.south@acme.test", "paul.product@acme.test"] {
        let (status, body) = admin
            .post(
                "/api/v1/enrollments",
                json!({"user_id": dir.user(email), "course_id": open}),
            )
            .await;
        assert_eq!(status, 201, "{email}: {body}");
    }
    let all = enrollments(&admin, "").await;
    let below: BTreeSet<String> = strings(dir.users_below("Sales EMEA"), "id");
    assert!(
        all.iter()
            .any(|e| !below.contains(e["user_id"].as_str().unwrap_or_default())),
        "the test needs enrollments outside the subtree"
    );

    let seen = enrollments(&manager, "").await;
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|e| below.contains(e["user_id"].as_str().unwrap_or_default()))
        .map(id)
        .collect();
    assert_eq!(
        strings(&seen, "id"),
        expected,
        "the manager sees exactly the subtree's enrollments"
    );
    assert!(
        seen.iter()
            .all(|e| below.contains(e["user_id"].as_str().unwrap_or_default())),
        "{seen:#?}"
    );

    // Asking by name for someone outside answers as if they had none.
    assert!(enrollments(&manager, &format!("user_id={will}")).await.is_empty());
    let wills = enrollments(&admin, &format!("user_id={will}")).await;
    let (status, body) = manager.get(&format!("/api/v1/enrollments/{}", id(&wills[0]))).await;
    assert_eq!(status, 404, "{body}");
}

/// A learner finds a course in the catalog, enrolls, reads, fails the quiz once, passes it, and gets a
/// certificate that anyone can check on the academy's address, and nobody on another academy's.
async fn learner_journey(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let course = create_course(&admin, "JOURNEY-100", json!({"title": "Fire safety"})).await;
    let course_id = id(&course);
    let text = id(&add_lesson(
        &admin,
        &course_id,
        json!({"kind": "text", "title": "Read first", "body": "Keep exits clear."}),
    )
    .await);
    let quiz = id(&add_lesson(
        &admin,
        &course_id,
        json!({
            "kind": "quiz",
            "title": "Check",
            "questions": [question("Keep exits clear?"), question("Know the assembly point?")],
            "pass_percent": 100,
            "max_attempts": 2
        }),
    )
    .await);

    let nora = app.login("acme", "nora.north@acme.test").await;
    let (status, catalog) = nora.get("/api/v1/catalog").await;
    assert_eq!(status, 200, "{catalog}");
    let entry = list(&catalog)
        .into_iter()
        .find(|c| c["id"] == course_id.as_str())
        .unwrap_or_else(|| panic!("the course is not in the catalog: {catalog}"));
    assert_eq!(entry["enrollment_status"], Value::Null, "{entry}");
    assert_eq!(entry["self_enroll"], true, "{entry}");

    let (status, enrolled) = nora
        .post(&format!("/api/v1/catalog/{course_id}/enroll"), json!({}))
        .await;
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(enrolled["outcome"], "enrolled", "{enrolled}");
    assert_eq!(enrolled["enrollment"]["source"], "self", "{enrolled}");

    let (status, done) = nora
        .post(
            &format!("/api/v1/me/courses/{course_id}/lessons/{text}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["progress"], 50, "{done}");
    assert_eq!(done["status"], "in_progress", "{done}");
    assert_eq!(done["certificate_code"], Value::Null, "{done}");

    // The outline of one's own course: lessons in order with what is done, also once the catalog no
    // longer offers the course.
    let (status, _) = admin
        .patch(&format!("/api/v1/courses/{course_id}"), json!({"visibility": "hidden"}))
        .await;
    assert_eq!(status, 200);
    let (status, mine) = nora.get(&format!("/api/v1/me/courses/{course_id}")).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["enrollment"]["progress"], 50, "{mine}");
    let lessons: Vec<(&str, bool)> = mine["lessons"]
        .as_array()
        .expect("lessons")
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), l["done"].as_bool().unwrap()))
        .collect();
    assert_eq!(lessons, vec![(text.as_str(), true), (quiz.as_str(), false)], "{mine}");
    let (status, _) = admin
        .patch(&format!("/api/v1/courses/{course_id}"), json!({"visibility": "tenant"}))
        .await;
    assert_eq!(status, 200);

    let attempts = format!("/api/v1/me/courses/{course_id}/lessons/{quiz}/attempts");
    let (status, failed) = nora.post(&attempts, json!({"answers": [[1], [0]]})).await;
    assert_eq!(status, 201, "{failed}");
    assert_eq!(failed["passed"], false, "{failed}");
    assert_eq!(failed["score"], 50, "{failed}");
    assert_eq!(failed["attempts_left"], 1, "{failed}");
    assert_eq!(failed["status"], "in_progress", "{failed}");
    assert_eq!(failed["certificate_code"], Value::Null, "{failed}");

    let (status, passed) = nora.post(&attempts, json!({"answers": [[1], [1]]})).await;
    assert_eq!(status, 201, "{passed}");
    assert_eq!(passed["passed"], true, "{passed}");
    assert_eq!(passed["attempts_left"], 0, "{passed}");
    assert_eq!(passed["status"], "completed", "{passed}");
    assert_eq!(passed["progress"], 100, "{passed}");
    let code = passed["certificate_code"]
        .as_str()
        .unwrap_or_else(|| panic!("passing completed the course but issued no certificate: {passed}"))
        .to_owned();

    let (status, mine) = nora.get("/api/v1/me/certificates").await;
    assert_eq!(status, 200, "{mine}");
    let mine = list(&mine);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["code"], code.as_str());
    assert_eq!(mine[0]["course_id"], course_id.as_str());
    assert_eq!(mine[0]["state"], "valid");

    let (status, learning) = nora.get("/api/v1/me/enrollments").await;
    assert_eq!(status, 200, "{learning}");
    let e = list(&learning)
        .into_iter()
        .find(|e| e["course_id"] == course_id.as_str())
        .unwrap_or_else(|| panic!("{learning}"));
    assert_eq!(e["status"], "completed", "{e}");
    assert!(e["completed_at"].is_string(), "{e}");

    // Anyone may check the certificate, signed in or not, on the academy's own address.
    let (status, verified) = app
        .visitor("acme")
        .get(&format!("/api/v1/certificates/verify/{code}"))
        .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["state"], "valid", "{verified}");
    assert_eq!(verified["holder"], "Nora North", "{verified}");
    assert_eq!(verified["course"], "Fire safety", "{verified}");
    assert_eq!(verified["academy"], "Acme Academy", "{verified}");
    // Read aloud and typed in lower case, it is the same code.
    let (status, _) = app
        .visitor("acme")
        .get(&format!("/api/v1/certificates/verify/{}", code.to_lowercase()))
        .await;
    assert_eq!(status, 200);
    let (status, elsewhere) = app
        .visitor("globex")
        .get(&format!("/api/v1/certificates/verify/{code}"))
        .await;
    assert_eq!(status, 404, "another academy knows nothing of it: {elsewhere}");
    assert!(!elsewhere.to_string().contains("Nora"), "{elsewhere}");

    // Both attempts of this round are used, passed or not: a third is refused and changes nothing.
    let before = (
        app.count("SELECT COUNT(*) FROM quiz_attempts", &[]).await,
        app.count("SELECT COUNT(*) FROM certificates", &[]).await,
    );
    let (status, third) = nora.post(&attempts, json!({"answers": [[1], [1]]})).await;
    assert_eq!(status, 422, "{third}");
    assert_eq!(third["error"]["code"], "attempts_exhausted", "{third}");
    let after = (
        app.count("SELECT COUNT(*) FROM quiz_attempts", &[]).await,
        app.count("SELECT COUNT(*) FROM certificates", &[]).await,
    );
    assert_eq!(after, before, "the refused attempt was recorded");
}

/// A course that needs approval: asking queues one request (asking again does not queue another), the
/// learner's manager sees it among their people's requests and approves it, and the learner is enrolled.
async fn approval_queue(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let course = id(&create_course(&admin, "APPROVE-100", json!({"approval_required": true})).await);
    let enroll = format!("/api/v1/catalog/{course}/enroll");

    let nora = app.login("acme", "nora.north@acme.test").await;
    let (status, asked) = nora.post(&enroll, json!({})).await;
    assert_eq!(status, 202, "{asked}");
    assert_eq!(asked["outcome"], "pending_approval", "{asked}");
    assert_eq!(asked["enrollment"], Value::Null, "{asked}");
    let request = asked["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request id: {asked}"))
        .to_owned();
    let (status, again) = nora.post(&enroll, json!({})).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(
        again["request_id"],
        request.as_str(),
        "asking again is the same request"
    );

    let (status, catalog) = nora.get("/api/v1/catalog").await;
    assert_eq!(status, 200, "{catalog}");
    let entry = list(&catalog)
        .into_iter()
        .find(|c| c["id"] == course.as_str())
        .unwrap_or_else(|| panic!("{catalog}"));
    assert_eq!(entry["request_pending"], true, "{entry}");
    assert_eq!(entry["enrollment_status"], Value::Null, "{entry}");

    // Someone outside the manager's subtree asks too.
    let will = app.login("acme", "will.west@acme.test").await;
    let (status, wills) = will.post(&enroll, json!({})).await;
    assert_eq!(status, 202, "{wills}");

    let manager = app.login("acme", "emea.manager@acme.test").await;
    let (status, queue) = manager.get("/api/v1/enrollment-requests").await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(
        strings(&list(&queue), "id"),
        BTreeSet::from([request.clone()]),
        "the manager sees their learner's request only"
    );
    let (status, all) = admin.get("/api/v1/enrollment-requests").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(list(&all).len(), 2, "the admin sees both: {all}");
    let (status, body) = manager
        .post(
            &format!(
                "/api/v1/enrollment-requests/{}/approve",
                wills["request_id"].as_str().unwrap_or_default()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "not the manager's to decide: {body}");

    let (status, approved) = manager
        .post(
            &format!("/api/v1/enrollment-requests/{request}/approve"),
            json!({"note": "Go ahead"}),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved", "{approved}");

    let (status, mine) = nora.get("/api/v1/me/enrollments").await;
    assert_eq!(status, 200, "{mine}");
    let e = list(&mine)
        .into_iter()
        .find(|e| e["course_id"] == course.as_str())
        .unwrap_or_else(|| panic!("approval did not enroll: {mine}"));
    assert_eq!(e["source"], "approval", "{e}");
    assert_eq!(e["status"], "enrolled", "{e}");
    let (status, detail) = admin.get(&format!("/api/v1/enrollments/{}", id(&e))).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        detail["history"][0]["cause"],
        format!("user:{}", dir.user("emea.manager@acme.test")),
        "{detail}"
    );

    let (status, twice) = manager
        .post(&format!("/api/v1/enrollment-requests/{request}/approve"), json!({}))
        .await;
    assert_eq!(status, 422, "{twice}");
    assert_eq!(twice["error"]["code"], "request_decided", "{twice}");
    let (status, queue) = manager.get("/api/v1/enrollment-requests").await;
    assert_eq!(status, 200, "{queue}");
    assert!(list(&queue).is_empty(), "nothing left to decide: {queue}");
    let (status, now) = nora.post(&enroll, json!({})).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["outcome"], "already_enrolled", "{now}");
}

/// Overdue is not a stored state but what a due date in the past means for an unfinished enrollment:
/// completing it ends it.
async fn overdue_is_derived(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let course = id(&create_course(&admin, "DUE-100", json!({})).await);
    let (status, late) = admin
        .post(
            "/api/v1/enrollments",
            json!({"user_id": dir.user("nora.north@acme.test"), "course_id": course, "due_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{late}");
    assert_eq!(late["overdue"], true, "{late}");
    let (status, on_time) = admin
        .post(
            "/api/v1/enrollments",
            json!({"user_id": dir.user("noah.north@acme.test"), "course_id": course, "due_at": "2100-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{on_time}");
    assert_eq!(on_time["overdue"], false, "{on_time}");

    let overdue = enrollments(&admin, &format!("course_id={course}&status=overdue")).await;
    assert_eq!(strings(&overdue, "id"), BTreeSet::from([id(&late)]), "{overdue:#?}");
    assert_eq!(overdue[0]["overdue"], true);

    let (status, completed) = admin
        .post(&format!("/api/v1/enrollments/{}/complete", id(&late)), json!({}))
        .await;
    assert_eq!(status, 200, "{completed}");
    assert_eq!(completed["status"], "completed", "{completed}");
    assert_eq!(completed["overdue"], false, "{completed}");
    assert!(completed["completed_at"].is_string(), "{completed}");

    assert!(
        enrollments(&admin, &format!("course_id={course}&status=overdue"))
            .await
            .is_empty(),
        "a completed enrollment is not overdue"
    );
    let (status, detail) = admin.get(&format!("/api/v1/enrollments/{}", id(&late))).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["overdue"], false, "{detail}");
    assert_eq!(detail["due_at"], late["due_at"], "completing keeps the due date");
}

/// A rule that enrolls everyone who joins Sales EMEA: a new hire there is enrolled the moment they are
/// created, due in 30 days; one elsewhere is not; and both logs say which rule did it.
async fn org_rule_enrolls_new_members(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let course = id(&create_course(&admin, "EMEA-ONB", json!({"visibility": "hidden"})).await);
    let rule = create_rule(
        &admin,
        "EMEA onboarding",
        json!({
            "on": ["user_created", "user_changed"],
            "when": {"org_id": dir.org("Sales EMEA")},
            "then": [{"type": "enroll", "course_id": course, "due_in_days": 30}]
        }),
        1,
    )
    .await;

    let created_at = now_ms();
    // Team North lies below Sales EMEA: the rule covers the whole subtree.
    let hire = create_user(&admin, "new.north@acme.test", "New North", &[&dir.org("Team North")]).await;
    let other = create_user(&admin, "new.west@acme.test", "New West", &[&dir.org("Team West")]).await;

    let hires = enrollments(&admin, &format!("user_id={hire}")).await;
    assert_eq!(hires.len(), 1, "{hires:#?}");
    assert_eq!(hires[0]["course_id"], course.as_str());
    assert_eq!(hires[0]["source"], "rule");
    assert_due_in(&hires[0]["due_at"], created_at, 30, "the rule's enrollment");
    let (status, detail) = admin.get(&format!("/api/v1/enrollments/{}", id(&hires[0]))).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["history"][0]["cause"], format!("rule:{rule}"), "{detail}");
    assert!(
        enrollments(&admin, &format!("user_id={other}")).await.is_empty(),
        "the rule enrolled someone outside Sales EMEA"
    );

    let log = automation_log(&admin, &format!("user_id={hire}")).await;
    let entry = log
        .iter()
        .find(|e| e["action"]["type"] == "enroll")
        .unwrap_or_else(|| panic!("no enroll entry: {log:#?}"));
    assert_eq!(entry["outcome"], "applied", "{entry}");
    assert_eq!(entry["source"], format!("rule:{rule}"), "{entry}");
    assert_eq!(entry["trigger"], "user_created", "{entry}");
    assert_eq!(entry["action"]["course_id"], course.as_str(), "{entry}");
    assert!(automation_log(&admin, &format!("user_id={other}")).await.is_empty());

    let (status, audit) = admin
        .get(&format!(
            "/api/v1/audit?action=automation.enroll&target_id={hire}&limit=500"
        ))
        .await;
    assert_eq!(status, 200, "{audit}");
    let audit = items(&audit);
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(audit[0]["actor_type"], "rule", "{audit:#?}");
    assert_eq!(audit[0]["actor_id"], rule.as_str(), "{audit:#?}");
    assert!(
        audit[0]["actor_label"]
            .as_str()
            .is_some_and(|l| l.contains("EMEA onboarding")),
        "the audit entry names the rule: {audit:#?}"
    );
}

/// A rule written after the fact: its dry run lists exactly the people it would act on and changes
/// nothing; applying it enrolls them; applying it again enrolls nobody twice.
async fn tag_rule_and_retroactive_dry_run(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let course = id(&create_course(&admin, "FORK-100", json!({})).await);
    let tag = create_tag(&admin, "FORKLIFT").await;
    let tagged: BTreeSet<String> = ["nora.north@acme.test", "will.west@acme.test", "pia.platform@acme.test"]
        .iter()
        .map(|e| dir.user(e))
        .collect();
    for user in &tagged {
        tag_user(&admin, user, &tag).await;
    }
    let rule = create_rule(
        &admin,
        "Forklift drivers",
        json!({
            "on": ["user_changed"],
            "when": {"tag": "FORKLIFT"},
            "then": [{"type": "enroll", "course_id": course}]
        }),
        1,
    )
    .await;

    let (status, preview) = admin.post(&format!("/api/v1/rules/{rule}/preview"), json!({})).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["count"], tagged.len(), "{preview}");
    let users = list(&preview["users"]);
    assert_eq!(
        strings(&users, "user_id"),
        tagged,
        "the dry run names exactly the tagged users"
    );
    for u in &users {
        let actions = list(&u["actions"]);
        assert_eq!(actions.len(), 1, "{u}");
        assert_eq!(actions[0]["type"], "enroll", "{u}");
        assert_eq!(actions[0]["course_id"], course.as_str(), "{u}");
    }
    assert!(
        enrollments(&admin, &format!("course_id={course}")).await.is_empty(),
        "the dry run enrolled someone"
    );
    assert!(
        automation_log(&admin, &format!("source=rule:{rule}")).await.is_empty(),
        "the dry run left traces in the automation log"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rule_firings WHERE rule_id = $1", &[&rule])
            .await,
        0,
        "the dry run counted firings"
    );

    let (status, job) = admin.post(&format!("/api/v1/rules/{rule}/apply"), json!({})).await;
    assert_eq!(status, 202, "{job}");
    let job = finished_job(&admin, &id(&job)).await;
    assert_eq!(job["kind"], "apply_rule", "{job}");
    assert_eq!(job["result"]["users_affected"], tagged.len(), "{job}");
    let enrolled = enrollments(&admin, &format!("course_id={course}")).await;
    assert_eq!(strings(&enrolled, "user_id"), tagged, "every tagged user is enrolled");
    assert!(enrolled.iter().all(|e| e["source"] == "rule"), "{enrolled:#?}");

    let (status, again) = admin.post(&format!("/api/v1/rules/{rule}/apply"), json!({})).await;
    assert_eq!(status, 202, "{again}");
    let again = finished_job(&admin, &id(&again)).await;
    assert_eq!(
        again["result"]["users_affected"], 0,
        "the rule fired past its limit: {again}"
    );
    let after = enrollments(&admin, &format!("course_id={course}")).await;
    assert_eq!(strings(&after, "id"), strings(&enrolled, "id"), "{after:#?}");
    for e in &after {
        let (status, detail) = admin.get(&format!("/api/v1/enrollments/{}", id(e))).await;
        assert_eq!(status, 200, "{detail}");
        let steps: Vec<&Value> = detail["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter(|h| h["action"] == "enrolled")
            .collect();
        assert_eq!(steps.len(), 1, "enrolled once: {detail}");
    }
    let (status, preview) = admin.post(&format!("/api/v1/rules/{rule}/preview"), json!({})).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["count"], 0, "nobody is left for the rule: {preview}");
}

/// Two rules that undo each other would run for ever; the chain is cut, the change that started it still
/// succeeds, and the admins can read where it was stopped and why.
async fn loop_is_stopped_and_reported(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let a = create_tag(&admin, "PING").await;
    let b = create_tag(&admin, "PONG").await;
    let r1 = create_rule(
        &admin,
        "Ping to pong",
        json!({
            "on": ["user_changed"],
            "when": {"tag": "PING"},
            "then": [{"type": "remove_tag", "tag": "PING"}, {"type": "add_tag", "tag": "PONG"}]
        }),
        100,
    )
    .await;
    let r2 = create_rule(
        &admin,
        "Pong to ping",
        json!({
            "on": ["user_changed"],
            "when": {"tag": "PONG"},
            "then": [{"type": "remove_tag", "tag": "PONG"}, {"type": "add_tag", "tag": "PING"}]
        }),
        100,
    )
    .await;
    let nora = dir.user("nora.north@acme.test");

    let started = std::time::Instant::now();
    tag_user(&admin, &nora, &a).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "tagging took {:?}",
        started.elapsed()
    );

    let stopped = automation_log(&admin, "outcome=stopped").await;
    assert!(!stopped.is_empty(), "no stopped entry in the automation log");
    let sources = BTreeSet::from([format!("rule:{r1}"), format!("rule:{r2}")]);
    for e in &stopped {
        assert_eq!(e["user_id"], nora.as_str(), "{e}");
        assert!(sources.contains(e["source"].as_str().unwrap_or_default()), "{e}");
    }
    assert!(
        stopped
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("loop"))),
        "no entry says it was a loop: {stopped:#?}"
    );

    // Each step removed one tag and added the other: wherever the chain was cut, exactly one is left.
    let (status, user) = admin.get(&format!("/api/v1/users/{nora}")).await;
    assert_eq!(status, 200, "{user}");
    let tags = strings(user["tags"].as_array().expect("tags"), "id");
    let left: Vec<&String> = [&a, &b].into_iter().filter(|t| tags.contains(*t)).collect();
    assert_eq!(left.len(), 1, "the user carries {tags:?}");
}

/// Enrolling a whole division in one go: the job reports everyone in the subtree, and running it again
/// finds them all enrolled already.
async fn bulk_enroll_org_subtree(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let course = id(&create_course(&admin, "BULK-100", json!({})).await);
    let below: BTreeSet<String> = strings(dir.users_below("Sales"), "id");
    assert!(below.len() > 3, "the fixture's Sales division has people: {below:?}");
    let body = json!({"course_id": course, "org_id": dir.org("Sales")});

    let (status, job) = admin.post("/api/v1/enrollments/bulk", body.clone()).await;
    assert_eq!(status, 202, "{job}");
    let job = finished_job(&admin, &id(&job)).await;
    assert_eq!(job["kind"], "bulk_enroll", "{job}");
    let result = &job["result"];
    assert_eq!(result["users"], below.len(), "{job}");
    assert_eq!(result["enrolled"], below.len(), "{job}");
    assert_eq!(result["already_enrolled"], 0, "{job}");
    let enrolled = enrollments(&admin, &format!("course_id={course}")).await;
    assert_eq!(strings(&enrolled, "user_id"), below, "exactly the subtree is enrolled");
    assert!(enrolled.iter().all(|e| e["source"] == "bulk"), "{enrolled:#?}");

    let (status, job) = admin.post("/api/v1/enrollments/bulk", body).await;
    assert_eq!(status, 202, "{job}");
    let job = finished_job(&admin, &id(&job)).await;
    let result = &job["result"];
    assert_eq!(result["users"], below.len(), "{job}");
    assert_eq!(result["enrolled"], 0, "{job}");
    assert_eq!(result["already_enrolled"], below.len(), "{job}");
    assert_eq!(
        enrollments(&admin, &format!("course_id={course}")).await.len(),
        below.len(),
        "the second run enrolled someone twice"
    );
}

/// Acme has as many jobs queued or running as an academy may (eight, as another replica's rows): its next
/// bulk enrollment is refused 429 naming the limit, and stores nothing, while globex's runs at once. When
/// acme's jobs have ended, its bulk enrollment is queued and done.
async fn an_academys_jobs_queue_behind_its_own(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let course = id(&create_course(&admin, "QUEUE-100", json!({})).await);
    let now = aula::db::now_ms();
    for i in 0..8 {
        app.exec(
            &format!(
                "INSERT INTO jobs (id, tenant_id, kind, status, params, created_at, started_at) \
                 SELECT $1, t.id, 'bulk_enroll', 'running', '{{}}', {now}, {now} FROM tenants t WHERE t.slug = 'acme'"
            ),
            &[&format!("elsewhere-{i}")],
        )
        .await;
    }
    let body = json!({"course_id": course, "org_id": dir.org("Sales")});
    let jobs_before = app.count("SELECT COUNT(*) FROM jobs", &[]).await;
    let (status, refusal) = admin.post("/api/v1/enrollments/bulk", body.clone()).await;
    assert_eq!(status, 429, "{refusal}");
    assert!(refusal.to_string().contains("8 jobs"), "{refusal}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs", &[]).await,
        jobs_before,
        "nothing stored"
    );

    let globex = app.login("globex", "admin@globex.test").await;
    let globex_dir = Directory::load(&globex).await;
    let globex_course = id(&create_course(&globex, "QUEUE-200", json!({})).await);
    let (status, job) = globex
        .post(
            "/api/v1/enrollments/bulk",
            json!({"course_id": globex_course, "org_id": globex_dir.org("Initech")}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    assert!(
        matches!(job["status"].as_str(), Some("queued" | "running" | "done")),
        "{job}"
    );
    let job = finished_job(&globex, &id(&job)).await;
    assert!(job["result"]["enrolled"].as_u64().is_some_and(|n| n > 0), "{job}");

    app.exec(
        "UPDATE jobs SET status = 'done', finished_at = started_at WHERE id LIKE 'elsewhere-%'",
        &[],
    )
    .await;
    let (status, job) = admin.post("/api/v1/enrollments/bulk", body).await;
    assert_eq!(status, 202, "{job}");
    let job = finished_job(&admin, &id(&job)).await;
    assert_eq!(job["result"]["users"], dir.users_below("Sales").len(), "{job}");
}

/// The example enrollment plugin places a new user from its e-mail domain and enrolls them in the
/// configured course, under its own name in the logs.
async fn enrollment_plugin_places_and_enrolls(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let emea = dir.org("Sales EMEA");
    let course = id(&create_course(&admin, "NEWCO-101", json!({"visibility": "hidden"})).await);
    let plugin = deploy(
        &admin,
        &manifest(env!("AULA_PLUGINS_DIR"), "domain-placement"),
        &wasm("domain_placement"),
    )
    .await;
    let (status, body) = admin
        .put(
            &format!("/api/v1/plugins/{plugin}/settings"),
            json!({"settings": {"domains": {"newco.test": "Sales EMEA"}, "courses": ["NEWCO-101"], "due_in_days": 7}}),
        )
        .await;
    assert_eq!(status, 200, "settings: {body}");

    let created_at = now_ms();
    let user = create_user(&admin, "newperson@newco.test", "New Person", &[]).await;

    let (status, read) = admin.get(&format!("/api/v1/users/{user}")).await;
    assert_eq!(status, 200, "{read}");
    let orgs = strings(read["orgs"].as_array().expect("orgs"), "id");
    assert_eq!(orgs, BTreeSet::from([emea.clone()]), "placed by domain: {read}");

    let theirs = enrollments(&admin, &format!("user_id={user}")).await;
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    assert_eq!(theirs[0]["course_id"], course.as_str());
    assert_eq!(theirs[0]["source"], "plugin");
    assert_due_in(&theirs[0]["due_at"], created_at, 7, "the plugin's enrollment");

    let source = format!("plugin:{plugin}@1.0.0");
    let (status, detail) = admin.get(&format!("/api/v1/enrollments/{}", id(&theirs[0]))).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["history"][0]["cause"], source.as_str(), "{detail}");
    let log = automation_log(&admin, &format!("user_id={user}")).await;
    for kind in ["add_to_org", "enroll"] {
        let entry = log
            .iter()
            .find(|e| e["action"]["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} entry: {log:#?}"));
        assert_eq!(entry["source"], source.as_str(), "{entry}");
        assert_eq!(entry["outcome"], "applied", "{entry}");
        assert_eq!(entry["trigger"], "user_created", "{entry}");
    }

    // The domain decides only the organization: someone from a domain the plugin does not know stays
    // where the admin put them (nowhere), while the configured courses go to every new user.
    let plain = create_user(&admin, "someone@elsewhere.test", "Someone Else", &[]).await;
    let (status, read) = admin.get(&format!("/api/v1/users/{plain}")).await;
    assert_eq!(status, 200, "{read}");
    assert!(read["orgs"].as_array().is_some_and(Vec::is_empty), "{read}");
    let theirs = enrollments(&admin, &format!("user_id={plain}")).await;
    assert_eq!(strings(&theirs, "course_id"), BTreeSet::from([course]), "{theirs:#?}");
}

/// An enrollment plugin that faults on every call does not cost the admin their change: the user is
/// created (and the built-in rules still act), and the fault is recorded against the plugin.
async fn faulting_enrollment_plugin_fails_open(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let course = id(&create_course(&admin, "OPEN-200", json!({})).await);
    create_rule(
        &admin,
        "Everyone in Sales",
        json!({
            "on": ["user_created"],
            "when": {"org_id": dir.org("Sales")},
            "then": [{"type": "enroll", "course_id": course}]
        }),
        1,
    )
    .await;
    let plugin = deploy(
        &admin,
        &manifest(env!("AULA_GUESTS_DIR"), "misbehave"),
        &wasm("misbehave"),
    )
    .await;

    let user = create_user(&admin, "still.here@acme.test", "Still Here", &[&dir.org("Team North")]).await;
    let (status, read) = admin.get(&format!("/api/v1/users/{user}")).await;
    assert_eq!(status, 200, "{read}");
    let theirs = enrollments(&admin, &format!("user_id={user}")).await;
    assert_eq!(
        strings(&theirs, "course_id"),
        BTreeSet::from([course]),
        "the rule acted"
    );

    let (faults, _) = admin.get_all_pages(&format!("/api/v1/plugins/{plugin}/faults")).await;
    assert!(
        !faults.is_empty(),
        "the plugin's call did not fault; the test proves nothing"
    );
    let log = automation_log(&admin, &format!("user_id={user}")).await;
    assert!(
        log.iter()
            .all(|e| !e["source"].as_str().unwrap_or_default().starts_with("plugin:")),
        "a faulted call has no actions: {log:#?}"
    );
}
