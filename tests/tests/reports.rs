//! Reports as the academy's people use them: an admin, an organization manager and a segment reporter run
//! the built-in reports and a plugin's, as JSON, CSV and HTML, with filters; they save presets and schedule
//! reports by mail. Every report is checked against the ground truth the API gives the admin, and never shows
//! a row beyond the runner's scope.

mod common;

use aula::config::Config;
use common::{Client, Directory, Form, Needles, TestApp, scenarios};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

scenarios!(with quiet =>
    reports_are_listed_with_typed_columns,
    org_manager_reports_stay_in_their_subtree,
    segment_reporter_reports_stay_in_their_segment,
    csv_is_the_json_streamed,
    html_has_a_chart_and_escapes,
    filters_narrow_and_bad_filters_are_refused,
    the_pages_of_an_aggregate_are_one_computation,
    presets_are_saved_and_run,
    a_due_schedule_is_sent_once,
    another_academys_ids_answer_404,
);

scenarios!(with impatient => plugin_reports_fail_closed);

scenarios!(with cramped => a_faulting_report_plugin_is_left_out);

/// Nothing is delivered in the background: scheduled reports' messages stay queued where the test looks for
/// them, and no reminder is written while a test compares the database before and after.
fn quiet(config: &mut Config) {
    config.notifications.enabled = false;
}

/// Report calls get half a second, and no plugin is disabled for its faults.
fn impatient(config: &mut Config) {
    quiet(config);
    config.plugins.limits.reports.timeout_ms = 500;
    config.plugins.fault_limit = 1000;
}

/// Report plugins get one MiB of linear memory: less than a Rust component needs to be instantiated, so every
/// call faults before any guest code runs.
fn cramped(config: &mut Config) {
    quiet(config);
    config.plugins.limits.reports.memory_mib = 1;
    config.plugins.fault_limit = 1000;
}

const DAY_MS: i64 = 86_400_000;

const BUILTIN: [&str; 7] = [
    "completion-by-course",
    "completion-by-org",
    "overdue",
    "learner-progress",
    "activity",
    "enrollment-funnel",
    "user-list",
];

/// The example plugin's report, as the report list names it.
const PLUGIN_REPORT: &str = "completion-by-org:completion-by-org";

// ---------------------------------------------------------------------------------------------------------
// Helpers

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64
}

fn day(ms: i64) -> String {
    aula::db::rfc3339(ms)[..10].to_owned()
}

fn epoch_ms(text: &str) -> i64 {
    aula::reports::filters::moment(text, false).unwrap_or_else(|| panic!("not an RFC 3339 time: {text}"))
}

/// A built component by crate name.
fn wasm(crate_name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("AULA_WASM_DIR")).join(format!("{crate_name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The manifest of an example plugin (`plugins/`) or a test guest (`tests/guests/`).
fn manifest(dir: &str) -> String {
    let plugins = std::path::Path::new(env!("AULA_PLUGINS_DIR"))
        .join(dir)
        .join("aula-plugin.toml");
    let guests = std::path::Path::new(env!("AULA_GUESTS_DIR"))
        .join(dir)
        .join("aula-plugin.toml");
    std::fs::read_to_string(&plugins)
        .or_else(|_| std::fs::read_to_string(&guests))
        .unwrap_or_else(|e| panic!("reading the manifest of {dir}: {e}"))
}

/// Upload a plugin with everything its manifest requests granted, and activate it; returns its id.
async fn deploy(admin: &Client, dir: &str, crate_name: &str) -> String {
    let form = Form::new()
        .text("manifest", &manifest(dir))
        .file("component", "plugin.wasm", &wasm(crate_name))
        .text("grant", "requested");
    let reply = admin.post_form("/api/v1/plugins", &form).await;
    assert_eq!(reply.status, 201, "upload {dir}: {}", reply.text);
    let id = reply.body["plugin"]["id"].as_str().expect("plugin id").to_owned();
    let (status, plugin) = admin.post(&format!("/api/v1/plugins/{id}/activate"), json!({})).await;
    assert_eq!(status, 200, "activate {dir}: {plugin}");
    id
}

/// Every page of a list answered as `{"items": …, "next": …}`.
async fn all_items(client: &Client, path: &str) -> Vec<Value> {
    client.get_all_pages(path).await.0
}

/// A report run as JSON, every page followed through `next`.
struct Run {
    /// The report as the run describes it.
    report: Value,
    /// The filters as checked.
    params: Value,
    /// Every row.
    rows: Vec<Map<String, Value>>,
    /// Every page's body, for checks that something does not appear anywhere.
    text: String,
    /// How many pages there were.
    pages: usize,
}

impl Run {
    /// The values of one column, as text.
    fn column(&self, key: &str) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| match &r[key] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect()
    }

    fn set(&self, key: &str) -> BTreeSet<String> {
        self.column(key).into_iter().collect()
    }
}

async fn run_report(client: &Client, key: &str, query: &str) -> Run {
    run_path(client, &format!("/api/v1/reports/{key}"), query).await
}

async fn run_path(client: &Client, path: &str, query: &str) -> Run {
    let mut next = Some(if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    });
    let mut run = Run {
        report: Value::Null,
        params: Value::Null,
        rows: Vec::new(),
        text: String::new(),
        pages: 0,
    };
    while let Some(page) = next.take() {
        let (status, body) = client.get(&page).await;
        assert_eq!(status, 200, "GET {page} on {}: {body}", client.host());
        run.pages += 1;
        assert!(run.pages < 100, "the pages of {path} do not end");
        run.report = body["report"].clone();
        run.params = body["params"].clone();
        run.text.push_str(&body.to_string());
        for row in body["rows"].as_array().unwrap_or_else(|| panic!("no rows: {body}")) {
            run.rows.push(row.as_object().expect("a row is an object").clone());
        }
        next = body["next"].as_str().map(str::to_owned);
    }
    run
}

/// A refused run: its status, code and field.
async fn refused(client: &Client, path: &str) -> (u16, String, String) {
    let reply = client.send("GET", path, common::Body::None).await;
    (reply.status.as_u16(), reply.code().to_owned(), reply.field().to_owned())
}

/// The acme demo with learning to report on, and the ground truth the admin's API gives.
struct Acme {
    admin: Client,
    dir: Directory,
    /// Course code → id.
    courses: BTreeMap<String, String>,
    /// Every enrollment, as the admin's enrollment list shows it.
    enrollments: Vec<Value>,
}

/// What a report counts for a set of enrollments.
#[derive(Debug, Default, Clone, PartialEq)]
struct Tally {
    learners: BTreeSet<String>,
    enrollments: i64,
    not_started: i64,
    in_progress: i64,
    completed: i64,
    overdue: i64,
    dropped: i64,
    started: i64,
    all: i64,
}

impl Acme {
    /// Ids of the users who are members of the named organization or one below it.
    fn users_below(&self, org: &str) -> BTreeSet<String> {
        self.dir.users_below(org).into_iter().map(id).collect()
    }

    /// Ids of the users carrying a tag.
    fn tagged(&self, tag: &str) -> BTreeSet<String> {
        self.dir
            .users
            .iter()
            .filter(|u| u["tags"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == tag)))
            .map(id)
            .collect()
    }

    fn enrollments_of<'a>(&'a self, users: &'a BTreeSet<String>) -> impl Iterator<Item = &'a Value> + 'a {
        self.enrollments
            .iter()
            .filter(move |e| users.contains(e["user_id"].as_str().unwrap_or_default()))
    }

    /// The tally of the users' enrollments (`course`: of one course only).
    fn tally(&self, users: &BTreeSet<String>, course: Option<&str>) -> Tally {
        let mut t = Tally::default();
        for e in self.enrollments_of(users) {
            if course.is_some_and(|c| e["course_id"] != c) {
                continue;
            }
            let status = e["status"].as_str().unwrap_or_default();
            t.all += 1;
            if status == "dropped" {
                t.dropped += 1;
                continue;
            }
            t.learners.insert(e["user_id"].as_str().unwrap_or_default().to_owned());
            t.enrollments += 1;
            match status {
                "enrolled" => t.not_started += 1,
                "in_progress" => t.in_progress += 1,
                _ => t.completed += 1,
            }
            if status != "enrolled" || !e["started_at"].is_null() {
                t.started += 1;
            }
            if e["overdue"] == true {
                t.overdue += 1;
            }
        }
        t
    }

    /// Ids of the users' enrollments (`overdue`: only those past due).
    fn enrollment_ids(&self, users: &BTreeSet<String>, overdue: bool) -> BTreeSet<String> {
        self.enrollments_of(users)
            .filter(|e| !overdue || e["overdue"] == true)
            .map(id)
            .collect()
    }

    /// Every user id.
    fn everyone(&self) -> BTreeSet<String> {
        self.dir.users.iter().map(id).collect()
    }
}

async fn create_user(admin: &Client, email: &str, name: &str, orgs: &[&str]) -> String {
    let body = json!({"email": email, "name": name, "org_ids": orgs});
    let (status, user) = admin.post("/api/v1/users", body.clone()).await;
    assert_eq!(status, 201, "create user {body}: {user}");
    id(&user)
}

async fn enroll(admin: &Client, user: &str, course: &str, due_at: Option<String>) -> String {
    let body = json!({"user_id": user, "course_id": course, "due_at": due_at});
    let (status, e) = admin.post("/api/v1/enrollments", body.clone()).await;
    assert_eq!(status, 201, "enroll {body}: {e}");
    id(&e)
}

async fn create_course(admin: &Client, code: &str, title: &str) -> String {
    let body = json!({"code": code, "title": title, "status": "published"});
    let (status, course) = admin.post("/api/v1/courses", body.clone()).await;
    assert_eq!(status, 201, "create course {body}: {course}");
    id(&course)
}

/// acme with two courses: everyone enrolled in the first, every other person in the second; a third of the
/// first completed, some of it past due, some of the second dropped. One learner, whose name a spreadsheet
/// would run as a formula, is a member of two teams of Sales EMEA, and an engineer also works in Team North.
async fn acme(app: &TestApp) -> Acme {
    let admin = app.login("acme", "admin@acme.test").await;
    let before = Directory::load(&admin).await;
    let (north, south) = (before.org("Team North"), before.org("Team South"));
    create_user(&admin, "formula@acme.test", "=2+3, \"Ann\"", &[&north, &south]).await;
    let seth = before.user("seth.sre@acme.test");
    let (status, body) = admin
        .post(&format!("/api/v1/orgs/{north}/members"), json!({"user_id": seth}))
        .await;
    assert!(status.is_success(), "add seth to Team North: {body}");
    let dir = Directory::load(&admin).await;

    let mut courses = BTreeMap::new();
    for (code, title) in [("RPT-SAFE", "Safety, the basics"), ("RPT-ETHICS", "Ethics")] {
        courses.insert(code.to_owned(), create_course(&admin, code, title).await);
    }
    let (safe, ethics) = (courses["RPT-SAFE"].clone(), courses["RPT-ETHICS"].clone());
    let past = aula::db::rfc3339(now_ms() - 10 * DAY_MS);
    let future = aula::db::rfc3339(now_ms() + 30 * DAY_MS);
    let mut users: Vec<&Value> = dir.users.iter().collect();
    users.sort_by_key(|u| u["email"].as_str().unwrap_or_default().to_owned());
    for (i, user) in users.iter().enumerate() {
        let user = id(user);
        let first = enroll(&admin, &user, &safe, None).await;
        if i % 3 == 0 {
            let (status, body) = admin
                .post(&format!("/api/v1/enrollments/{first}/complete"), json!({}))
                .await;
            assert_eq!(status, 200, "complete {first}: {body}");
        } else if i % 4 == 1 {
            let (status, body) = admin
                .patch(&format!("/api/v1/enrollments/{first}"), json!({"due_at": past}))
                .await;
            assert_eq!(status, 200, "move the due date of {first}: {body}");
        }
        if i % 2 == 0 {
            let second = enroll(&admin, &user, &ethics, Some(future.clone())).await;
            if i % 5 == 2 {
                let (status, body) = admin.delete(&format!("/api/v1/enrollments/{second}")).await;
                assert_eq!(status, 204, "unenroll {second}: {body}");
            }
        }
    }
    let enrollments = all_items(&admin, "/api/v1/enrollments?limit=500").await;
    assert!(
        enrollments.iter().any(|e| e["overdue"] == true),
        "some enrollment is overdue"
    );
    assert!(
        enrollments.iter().any(|e| e["status"] == "dropped"),
        "some enrollment is dropped"
    );
    Acme {
        admin,
        dir,
        courses,
        enrollments,
    }
}

/// The rows of a per-course report as (course id → counts named by `keys`).
fn per_course(run: &Run, keys: &[&str]) -> BTreeMap<String, Vec<i64>> {
    run.rows
        .iter()
        .map(|r| {
            (
                r["course_id"].as_str().unwrap_or_default().to_owned(),
                keys.iter().map(|k| r[*k].as_i64().unwrap_or(-1)).collect(),
            )
        })
        .collect()
}

/// What completion by course should say for these users.
fn expected_by_course(acme: &Acme, users: &BTreeSet<String>) -> BTreeMap<String, Vec<i64>> {
    acme.courses
        .values()
        .filter_map(|course| {
            let t = acme.tally(users, Some(course));
            (t.enrollments > 0).then(|| {
                (
                    course.clone(),
                    vec![t.enrollments, t.not_started, t.in_progress, t.completed, t.overdue],
                )
            })
        })
        .collect()
}

const BY_COURSE: [&str; 5] = ["enrollments", "not_started", "in_progress", "completed", "overdue"];

/// What the funnel should say for these users.
fn expected_funnel(acme: &Acme, users: &BTreeSet<String>) -> BTreeMap<String, Vec<i64>> {
    acme.courses
        .values()
        .filter_map(|course| {
            let t = acme.tally(users, Some(course));
            (t.all > 0).then(|| (course.clone(), vec![t.all, t.started, t.completed, t.dropped]))
        })
        .collect()
}

const FUNNEL: [&str; 4] = ["enrolled", "started", "completed", "dropped"];

/// Completion by organization for each organization: (learners, enrollments, completed, overdue).
fn by_org(run: &Run) -> BTreeMap<String, Vec<i64>> {
    run.rows
        .iter()
        .map(|r| {
            let counts = ["learners", "enrollments", "completed", "overdue"]
                .iter()
                .map(|k| r[*k].as_i64().unwrap_or(-1))
                .collect();
            (r["org_id"].as_str().unwrap_or_default().to_owned(), counts)
        })
        .collect()
}

fn expected_org(acme: &Acme, org_id: &str, within: &BTreeSet<String>) -> Vec<i64> {
    let name = acme.dir.orgs.iter().find(|o| o["id"] == org_id).expect("an org")["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let users: BTreeSet<String> = acme.users_below(&name).intersection(within).cloned().collect();
    let t = acme.tally(&users, None);
    vec![t.learners.len() as i64, t.enrollments, t.completed, t.overdue]
}

/// Sign-ins recorded for these users.
async fn logins_of(app: &TestApp, users: &BTreeSet<String>) -> i64 {
    let mut n = 0;
    for user in users {
        n += app
            .count("SELECT COUNT(*) FROM login_events WHERE user_id = $1", &[user.as_str()])
            .await;
    }
    n
}

fn sum(run: &Run, key: &str) -> i64 {
    run.rows.iter().map(|r| r[key].as_i64().unwrap_or(0)).sum()
}

/// Ids and e-mails of users outside `within`, and ids of organizations outside `orgs`.
fn outside(acme: &Acme, within: &BTreeSet<String>, orgs: &BTreeSet<String>) -> Needles {
    let mut needles = Needles::default();
    for user in &acme.dir.users {
        if !within.contains(&id(user)) {
            needles.add(&id(user), "id of a user outside the scope");
            needles.add(
                user["email"].as_str().unwrap_or_default(),
                "e-mail of a user outside the scope",
            );
        }
    }
    for org in &acme.dir.orgs {
        if !orgs.contains(&id(org)) {
            needles.add(&id(org), "id of an organization outside the scope");
        }
    }
    needles
}

// ---------------------------------------------------------------------------------------------------------
// 1. The list

/// The list has every built-in report and the reports of active report plugins, all with typed columns and
/// the filters each takes; malformed plugin definitions are left out; it is in the OpenAPI document; a
/// learner may not run reports.
async fn reports_are_listed_with_typed_columns(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    deploy(&admin, "completion-by-org", "completion_by_org").await;
    deploy(&admin, "bad-report", "bad_report").await;

    let (status, list) = admin.get("/api/v1/reports").await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().expect("a list").clone();
    let keys: Vec<&str> = list.iter().map(|r| r["key"].as_str().unwrap_or_default()).collect();
    for key in BUILTIN {
        assert!(keys.contains(&key), "{key} is listed: {keys:?}");
    }
    assert!(keys.contains(&PLUGIN_REPORT), "{keys:?}");
    assert!(keys.contains(&"bad-report:paged"), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.contains("bad key") || k.ends_with(":twice")),
        "{keys:?}"
    );
    let types = ["text", "integer", "number", "percent", "boolean", "date"];
    for report in &list {
        assert!(["builtin", "plugin"].contains(&report["source"].as_str().unwrap_or_default()));
        let columns = report["columns"].as_array().expect("columns");
        assert!(!columns.is_empty(), "{report}");
        for c in columns {
            assert!(c["key"].is_string() && c["label"].is_string(), "{c}");
            assert!(types.contains(&c["type"].as_str().unwrap_or_default()), "{c}");
        }
    }
    let plugin = list
        .iter()
        .find(|r| r["key"] == PLUGIN_REPORT)
        .expect("the plugin report");
    assert_eq!(plugin["plugin"], "completion-by-org");
    assert_eq!(plugin["source"], "plugin");
    let completion = plugin["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["key"] == "completion")
        .expect("a completion column");
    assert_eq!(completion["type"], "percent");
    let activity = list.iter().find(|r| r["key"] == "activity").expect("activity");
    assert!(
        activity["filters"]
            .as_array()
            .expect("filters")
            .contains(&json!("interval"))
    );

    let (status, doc) = admin.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/reports",
        "/api/v1/reports/{key}",
        "/api/v1/report-presets",
        "/api/v1/report-presets/{id}",
        "/api/v1/report-presets/{id}/run",
        "/api/v1/report-schedules",
        "/api/v1/report-schedules/{id}",
        "/api/v1/report-schedules/{id}/run",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is in the OpenAPI document");
    }

    let nora = app.login("acme", "nora.north@acme.test").await;
    assert_eq!(nora.get("/api/v1/reports").await.0, 403);
    assert_eq!(nora.get("/api/v1/reports/user-list").await.0, 403);
    assert_eq!(nora.get("/api/v1/report-presets").await.0, 403);
    assert_eq!(nora.get("/api/v1/report-schedules").await.0, 403);
    assert_eq!(admin.get("/api/v1/reports/no-such-report").await.0, 404);
    assert_eq!(admin.get("/api/v1/reports/no-such-plugin:paged").await.0, 404);
    assert_eq!(admin.get("/api/v1/reports/bad-report:no-such").await.0, 404);
}

// ---------------------------------------------------------------------------------------------------------
// 2. Scope

/// The manager of Sales EMEA runs every report: each holds exactly the users, enrollments and organizations
/// of that subtree (a learner in two of its teams counted once, an engineer who also works there counted in
/// full), with the numbers the admin's enrollment list gives, and nothing of anyone else. The example plugin's
/// report, run with her view, likewise.
async fn org_manager_reports_stay_in_their_subtree(app: &TestApp) {
    let acme = acme(app).await;
    deploy(&acme.admin, "completion-by-org", "completion_by_org").await;
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let emea = acme.users_below("Sales EMEA");
    let emea_orgs: BTreeSet<String> = acme
        .dir
        .org_ids_below(&acme.dir.org("Sales EMEA"))
        .into_iter()
        .collect();
    assert!(emea.contains(&acme.dir.user("seth.sre@acme.test")));
    assert!(emea.contains(&acme.dir.user("formula@acme.test")));
    assert!(emea.len() < acme.dir.users.len());
    let needles = outside(&acme, &emea, &emea_orgs);

    let users = run_report(&elena, "user-list", "").await;
    assert_eq!(users.set("user_id"), emea, "the users of Sales EMEA");
    let seth = users
        .rows
        .iter()
        .find(|r| r["email"] == "seth.sre@acme.test")
        .expect("seth");
    assert_eq!(
        seth["orgs"], "Team North",
        "only the organizations she reaches are named"
    );

    let progress = run_report(&elena, "learner-progress", "").await;
    assert_eq!(progress.set("enrollment_id"), acme.enrollment_ids(&emea, false));
    let overdue = run_report(&elena, "overdue", "").await;
    assert_eq!(overdue.set("enrollment_id"), acme.enrollment_ids(&emea, true));
    assert!(!overdue.rows.is_empty(), "someone in Sales EMEA is overdue");
    assert!(overdue.rows.iter().all(|r| r["days_overdue"].as_i64() >= Some(9)));

    let by_course = run_report(&elena, "completion-by-course", "").await;
    assert_eq!(per_course(&by_course, &BY_COURSE), expected_by_course(&acme, &emea));
    let funnel = run_report(&elena, "enrollment-funnel", "").await;
    assert_eq!(per_course(&funnel, &FUNNEL), expected_funnel(&acme, &emea));

    let orgs = run_report(&elena, "completion-by-org", "").await;
    let counts = by_org(&orgs);
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), emea_orgs);
    for (org, row) in &counts {
        assert_eq!(row, &expected_org(&acme, org, &emea), "organization {org}");
    }
    assert_eq!(
        orgs.rows[0]["org"], "Sales EMEA",
        "depth-first from the top of her subtree"
    );
    assert_eq!(orgs.rows[0]["path"], "Sales EMEA", "a path names only what she reaches");

    let activity = run_report(&elena, "activity", "").await;
    assert_eq!(sum(&activity, "logins"), logins_of(app, &emea).await);
    assert_eq!(sum(&activity, "completions"), acme.tally(&emea, None).completed);

    for run in [&users, &progress, &overdue, &by_course, &funnel, &orgs, &activity] {
        needles.assert_absent(&format!("{} run by the EMEA manager", run.report["key"]), &run.text);
    }
    for key in BUILTIN {
        let csv = elena
            .send("GET", &format!("/api/v1/reports/{key}?format=csv"), common::Body::None)
            .await;
        assert_eq!(csv.status, 200, "{key}: {}", csv.text);
        needles.assert_absent(&format!("{key} as CSV"), &csv.text);
    }

    // The admin's completion by organization covers the whole tree with the same arithmetic.
    let all = run_report(&acme.admin, "completion-by-org", "").await;
    let everyone = acme.everyone();
    for (org, row) in by_org(&all) {
        assert_eq!(
            row,
            expected_org(&acme, &org, &everyone),
            "organization {org} for the admin"
        );
    }
    assert_eq!(all.rows.len(), acme.dir.orgs.len());

    // The plugin sees exactly what she reaches: her subtree's organizations, with her subtree's numbers.
    let plugin = run_report(&elena, PLUGIN_REPORT, "").await;
    for row in &plugin.rows {
        let name = row["org"].as_str().unwrap_or_default();
        let numbers = vec![
            row["learners"].as_i64().unwrap_or(-1),
            row["enrollments"].as_i64().unwrap_or(-1),
            row["completed"].as_i64().unwrap_or(-1),
        ];
        let org = acme.dir.org(name);
        assert!(
            emea_orgs.contains(&org),
            "the plugin report has {name}, outside her subtree"
        );
        let expected = expected_org(&acme, &org, &emea);
        assert_eq!(numbers, expected[..3].to_vec(), "plugin row {name}");
    }
    assert_eq!(plugin.rows.len(), emea_orgs.len());
    let mut plugin_needles = Needles::default();
    for user in &acme.dir.users {
        if !emea.contains(&id(user)) {
            plugin_needles.add(
                user["email"].as_str().unwrap_or_default(),
                "an e-mail outside her scope",
            );
        }
    }
    for name in ["Engineering", "Sales Americas", "Team West", "Platform"] {
        plugin_needles.add(name, "an organization outside her scope");
    }
    plugin_needles.assert_absent("the plugin's report run by the EMEA manager", &plugin.text);
}

/// The reporter of the segment "UK staff" sees exactly the UK staff in every report about people, no
/// organization at all (a segment reaches none), and may not filter by an organization.
async fn segment_reporter_reports_stay_in_their_segment(app: &TestApp) {
    let acme = acme(app).await;
    deploy(&acme.admin, "completion-by-org", "completion_by_org").await;
    let ravi = app.login("acme", "uk.reporter@acme.test").await;
    let uk = acme.tagged("REGION_UK");
    assert!(uk.len() > 2 && uk.len() < acme.dir.users.len(), "{uk:?}");
    let needles = outside(&acme, &uk, &BTreeSet::new());

    let users = run_report(&ravi, "user-list", "").await;
    assert_eq!(users.set("user_id"), uk);
    assert!(
        users.rows.iter().all(|r| r["orgs"] == ""),
        "a segment reaches no organization"
    );
    let progress = run_report(&ravi, "learner-progress", "").await;
    assert_eq!(progress.set("enrollment_id"), acme.enrollment_ids(&uk, false));
    let overdue = run_report(&ravi, "overdue", "").await;
    assert_eq!(overdue.set("enrollment_id"), acme.enrollment_ids(&uk, true));
    let by_course = run_report(&ravi, "completion-by-course", "").await;
    assert_eq!(per_course(&by_course, &BY_COURSE), expected_by_course(&acme, &uk));
    let funnel = run_report(&ravi, "enrollment-funnel", "").await;
    assert_eq!(per_course(&funnel, &FUNNEL), expected_funnel(&acme, &uk));
    let activity = run_report(&ravi, "activity", "interval=week").await;
    assert_eq!(sum(&activity, "logins"), logins_of(app, &uk).await);
    assert_eq!(sum(&activity, "completions"), acme.tally(&uk, None).completed);
    let orgs = run_report(&ravi, "completion-by-org", "").await;
    assert!(orgs.rows.is_empty(), "{:?}", orgs.rows);
    for run in [&users, &progress, &overdue, &by_course, &funnel, &activity, &orgs] {
        needles.assert_absent(&format!("{} run by the UK reporter", run.report["key"]), &run.text);
    }

    // Filtering by the segment they were granted narrows nothing; by another segment or an organization, it
    // answers as if there were no such thing.
    let segment = acme.dir.segment("UK staff");
    let same = run_report(&ravi, "user-list", &format!("segment={segment}")).await;
    assert_eq!(same.set("user_id"), uk);
    let other = acme.dir.segment("New hires Q2 2026");
    assert_eq!(
        refused(&ravi, &format!("/api/v1/reports/user-list?segment={other}")).await,
        (422, "invalid_filter".into(), "segment".into())
    );
    let north = acme.dir.org("Team North");
    assert_eq!(
        refused(&ravi, &format!("/api/v1/reports/user-list?org={north}")).await,
        (422, "invalid_filter".into(), "org".into())
    );

    // The plugin runs with exactly their reach. A segment reaches people, not organizations, so the
    // plugin's per-organization report has no row for them (not even their own organization's).
    let plugin = run_report(&ravi, PLUGIN_REPORT, "").await;
    assert!(plugin.rows.is_empty(), "{}", plugin.text);
    needles.assert_absent("the plugin's report run by the UK reporter", &plugin.text);
}

// ---------------------------------------------------------------------------------------------------------
// 3. Formats

/// Parse CSV as RFC 4180 writes it (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "the CSV ends with a line break");
    rows
}

/// A JSON cell as the CSV should show it: text a spreadsheet would run gets a leading `'`.
fn as_csv(value: &Value, kind: &str) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) if kind == "text" && s.starts_with(['=', '+', '-', '@']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Check a CSV answer against the JSON rows of the same report, cell by cell.
fn assert_csv_is_json(csv: &str, run: &Run) {
    let lines = parse_csv(csv);
    let columns = run.report["columns"].as_array().expect("columns");
    let labels: Vec<String> = columns
        .iter()
        .map(|c| c["label"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(lines[0], labels, "the header names the columns");
    assert_eq!(lines.len() - 1, run.rows.len(), "one line per row");
    for (line, row) in lines[1..].iter().zip(&run.rows) {
        assert_eq!(line.len(), columns.len());
        for ((cell, column), key) in line
            .iter()
            .zip(columns)
            .zip(columns.iter().map(|c| c["key"].as_str().unwrap_or_default()))
        {
            let kind = column["type"].as_str().unwrap_or_default();
            let json = &row[key];
            if matches!(kind, "number" | "percent") && !json.is_null() {
                assert_eq!(cell.parse::<f64>().ok(), json.as_f64(), "{key}: {cell} vs {json}");
            } else {
                assert_eq!(cell, &as_csv(json, kind), "{key}");
            }
        }
    }
}

/// The learner progress of more rows than one CSV page holds: the CSV is streamed (no length announced up
/// front), carries exactly the JSON's rows in the same order, quotes what needs quoting and neutralises
/// formulas. A plugin report's CSV likewise.
async fn csv_is_the_json_streamed(app: &TestApp) {
    let acme = acme(app).await;
    // More enrollments than a CSV page (2,000 rows), arranged in the database directly.
    let mut tx = app
        .db
        .tenant(&acme.dir.tenant_id)
        .begin()
        .await
        .expect("tenant transaction");
    let now = aula::db::now_ms();
    for c in 0..200 {
        let course = uuid::Uuid::now_v7().to_string();
        tx.query(
            "INSERT INTO courses (id, tenant_id, code, title, summary, language, status, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, '', 'en', 'published', $5, $5)",
        )
        .bind(course.clone())
        .bind(format!("BULK-{c:03}"))
        .bind(format!("Bulk course {c}"))
        .bind(now)
        .execute(tx.conn())
        .await
        .expect("insert a course");
        for user in &acme.dir.users {
            tx.query(
                "INSERT INTO enrollments (id, tenant_id, user_id, course_id, status, progress, created_at, updated_at) \
                 VALUES ($2, $1, $3, $4, 'in_progress', $5, $6, $6)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(id(user))
            .bind(course.clone())
            .bind((c % 101) as i64)
            .bind(now)
            .execute(tx.conn())
            .await
            .expect("insert an enrollment");
        }
    }
    tx.commit().await.expect("commit");

    let json = run_report(&acme.admin, "learner-progress", "limit=1000").await;
    assert!(json.rows.len() > 2 * 2000, "{} rows", json.rows.len());
    assert!(json.pages >= 3);
    let csv = acme
        .admin
        .send("GET", "/api/v1/reports/learner-progress?format=csv", common::Body::None)
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(
        csv.header("content-type").is_some_and(|t| t.starts_with("text/csv")),
        "{:?}",
        csv.headers
    );
    assert!(
        csv.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment; filename=\"learner-progress-") && d.ends_with(".csv\"")),
        "{:?}",
        csv.headers
    );
    assert!(
        csv.header("content-length").is_none(),
        "a streamed body announces no length"
    );
    assert_csv_is_json(&csv.text, &json);
    assert!(
        csv.text.contains("\"'=2+3, \"\"Ann\"\"\""),
        "the formula is quoted and neutralised"
    );

    // The same with a filter, and for a plugin's report.
    let ethics = run_report(&acme.admin, "learner-progress", "course=RPT-ETHICS").await;
    let csv = acme
        .admin
        .send(
            "GET",
            "/api/v1/reports/learner-progress?course=RPT-ETHICS&format=csv",
            common::Body::None,
        )
        .await;
    assert_csv_is_json(&csv.text, &ethics);
    deploy(&acme.admin, "bad-report", "bad_report").await;
    let paged = run_report(&acme.admin, "bad-report:paged", "limit=2").await;
    assert_eq!(paged.pages, 4);
    let csv = acme
        .admin
        .send("GET", "/api/v1/reports/bad-report:paged?format=csv", common::Body::None)
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert_csv_is_json(&csv.text, &paged);
    for line in [
        "\"'=HYPERLINK(\"\"http://x.test\"\")\",4,",
        "\"'-5 below\",5,",
        "\"'@last\",6,",
        "\"with, comma\",2,",
    ] {
        assert!(csv.text.contains(line), "{line} in\n{}", csv.text);
    }
}

/// The HTML view is one page with an SVG chart, everything escaped, and a policy that runs no script.
async fn html_has_a_chart_and_escapes(app: &TestApp) {
    let acme = acme(app).await;
    deploy(&acme.admin, "completion-by-org", "completion_by_org").await;
    for (key, expect) in [
        ("completion-by-course", "RPT-SAFE"),
        ("completion-by-org", "Sales EMEA"),
        ("activity", "Sign-ins"),
        (PLUGIN_REPORT, "Team North"),
    ] {
        let page = acme
            .admin
            .send("GET", &format!("/api/v1/reports/{key}?format=html"), common::Body::None)
            .await;
        assert_eq!(page.status, 200, "{key}: {}", page.text);
        assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")));
        assert!(
            page.header("content-security-policy")
                .is_some_and(|p| p.contains("default-src 'none'")),
            "{:?}",
            page.headers
        );
        assert!(page.text.starts_with("<!DOCTYPE html>"), "{key}");
        assert!(
            page.text.contains("<svg") && page.text.contains("</svg>"),
            "{key} has a chart"
        );
        assert!(page.text.contains(expect), "{key} shows {expect}");
        assert!(!page.text.to_lowercase().contains("<script"), "{key}");
    }
    let users = acme
        .admin
        .send("GET", "/api/v1/reports/user-list?format=html", common::Body::None)
        .await;
    assert!(users.text.contains("=2+3, &quot;Ann&quot;"), "names are escaped");
    assert!(!users.text.contains("\"Ann\""));
}

// ---------------------------------------------------------------------------------------------------------
// 4. Filters

/// Each filter narrows the rows to what it names; a bad value is refused with 422 naming the parameter (an
/// organization of another academy, or outside the caller's reach, like one that does not exist), bad
/// controls with 400; and none of it changes anything.
async fn filters_narrow_and_bad_filters_are_refused(app: &TestApp) {
    let acme = acme(app).await;
    let admin = &acme.admin;
    let everyone = acme.everyone();

    let ethics = &acme.courses["RPT-ETHICS"];
    let by_code = run_report(admin, "learner-progress", "course=rpt-ethics").await;
    assert_eq!(
        by_code.params["course"],
        ethics.as_str(),
        "the code is resolved to the id"
    );
    assert!(by_code.column("course_code").iter().all(|c| c == "RPT-ETHICS"));
    let ethics_ids: BTreeSet<String> = acme
        .enrollments
        .iter()
        .filter(|e| e["course_id"] == ethics.as_str())
        .map(id)
        .collect();
    assert_eq!(by_code.set("enrollment_id"), ethics_ids);
    let by_id = run_report(admin, "learner-progress", &format!("course={ethics}")).await;
    assert_eq!(by_id.rows, by_code.rows);

    let north = acme.dir.org("Team North");
    let in_north = run_report(admin, "learner-progress", &format!("org={north}")).await;
    assert_eq!(
        in_north.set("enrollment_id"),
        acme.enrollment_ids(&acme.users_below("Team North"), false)
    );
    let uk = acme.tagged("REGION_UK");
    let tagged = run_report(admin, "user-list", "tag=REGION_UK").await;
    assert_eq!(tagged.set("user_id"), uk);
    let segment = run_report(admin, "user-list", &format!("segment={}", acme.dir.segment("UK staff"))).await;
    assert_eq!(segment.set("user_id"), uk);
    let both = run_report(admin, "completion-by-course", &format!("tag=REGION_UK&org={north}")).await;
    let uk_north: BTreeSet<String> = uk.intersection(&acme.users_below("Team North")).cloned().collect();
    assert_eq!(per_course(&both, &BY_COURSE), expected_by_course(&acme, &uk_north));
    let emea = acme.dir.org("Sales EMEA");
    let subtree = run_report(admin, "completion-by-org", &format!("org={emea}")).await;
    assert_eq!(
        subtree.set("org_id"),
        acme.dir.org_ids_below(&emea).into_iter().collect::<BTreeSet<_>>()
    );

    let (yesterday, tomorrow) = (day(now_ms() - DAY_MS), day(now_ms() + DAY_MS));
    let around = run_report(admin, "learner-progress", &format!("from={yesterday}&to={tomorrow}")).await;
    assert_eq!(around.set("enrollment_id"), acme.enrollment_ids(&everyone, false));
    let later = run_report(admin, "learner-progress", &format!("from={tomorrow}")).await;
    assert!(later.rows.is_empty());
    let earlier = run_report(admin, "completion-by-course", &format!("to={yesterday}")).await;
    assert!(earlier.rows.is_empty());
    let weeks = run_report(admin, "activity", "interval=week").await;
    assert!(weeks.rows.len() >= 12);
    for period in weeks.column("period") {
        let monday = epoch_ms(&format!("{period}T00:00:00Z")) / DAY_MS;
        assert_eq!((monday + 3).rem_euclid(7), 0, "{period} is a Monday");
    }
    assert_eq!(sum(&weeks, "logins"), logins_of(app, &everyone).await);

    let globex = app.login("globex", "admin@globex.test").await;
    let theirs = Directory::load(&globex).await;
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let before = app.snapshot().await;
    let bad: Vec<(&Client, String, u16, &str, &str)> = vec![
        (
            admin,
            format!("learner-progress?org={}", theirs.org("Initech")),
            422,
            "invalid_filter",
            "org",
        ),
        (
            admin,
            "learner-progress?org=nonsense".into(),
            422,
            "invalid_filter",
            "org",
        ),
        (
            &elena,
            format!("user-list?org={}", acme.dir.org("Engineering")),
            422,
            "invalid_filter",
            "org",
        ),
        (
            admin,
            format!("user-list?segment={}", theirs.segment("Certified partners")),
            422,
            "invalid_filter",
            "segment",
        ),
        (
            admin,
            format!("user-list?tag={}", theirs.tag("TIER_GOLD")),
            422,
            "invalid_filter",
            "tag",
        ),
        (admin, "overdue?course=NOPE".into(), 422, "invalid_filter", "course"),
        (admin, "overdue?from=31/01/2026".into(), 422, "invalid_filter", "from"),
        (
            admin,
            "overdue?from=2026-02-01&to=2026-01-01".into(),
            422,
            "invalid_filter",
            "to",
        ),
        (
            admin,
            "activity?interval=month".into(),
            422,
            "invalid_filter",
            "interval",
        ),
        (admin, "activity?from=2020-01-01".into(), 422, "invalid_filter", "from"),
        (
            admin,
            "learner-progress?interval=day".into(),
            422,
            "invalid_filter",
            "interval",
        ),
        (
            admin,
            "learner-progress?colour=red".into(),
            422,
            "invalid_filter",
            "colour",
        ),
        (
            admin,
            "learner-progress?format=xml".into(),
            400,
            "invalid_field",
            "format",
        ),
        (admin, "learner-progress?limit=0".into(), 400, "invalid_field", "limit"),
        (
            admin,
            "learner-progress?format=csv&cursor=k:x".into(),
            400,
            "invalid_field",
            "cursor",
        ),
        (
            admin,
            "completion-by-org?cursor=k:x".into(),
            400,
            "invalid_field",
            "cursor",
        ),
        (
            admin,
            "learner-progress?cursor=o:3".into(),
            400,
            "invalid_field",
            "cursor",
        ),
        (
            admin,
            format!("learner-progress?org={north}&org={north}"),
            400,
            "invalid_parameter",
            "org",
        ),
    ];
    for (client, query, status, code, field) in bad {
        let got = refused(client, &format!("/api/v1/reports/{query}")).await;
        assert_eq!(got, (status, code.to_owned(), field.to_owned()), "{query}");
    }
    before.assert_unchanged(&app.snapshot().await, "refused report runs");
}

/// The pages of a report computed as a whole are slices of one computation: a change made while someone pages
/// through it shows in the next run, not half-way through this one. The snapshot a cursor names answers only
/// the person who made it; anyone else's cursor, or one whose snapshot is gone, computes the report afresh.
async fn the_pages_of_an_aggregate_are_one_computation(app: &TestApp) {
    let acme = acme(app).await;
    let admin = &acme.admin;
    let whole_before = run_report(admin, "completion-by-org", "limit=1000").await;
    assert!(whole_before.rows.len() > 4, "enough organizations for several pages");

    let (status, first) = admin.get("/api/v1/reports/completion-by-org?limit=2").await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    assert!(cursor.contains('.'), "the cursor names the snapshot: {cursor}");

    // A learner completes a course while the admin is on page one.
    let orgs_of = |user: &str| -> Vec<String> {
        acme.dir
            .users
            .iter()
            .find(|u| id(u) == user)
            .and_then(|u| u["orgs"].as_array())
            .map(|os| os.iter().map(id).collect())
            .unwrap_or_default()
    };
    // How many of these rows count the user.
    let counting = |rows: &[Map<String, Value>], user: &str| -> i64 {
        let memberships = orgs_of(user);
        rows.iter()
            .filter(|r| {
                let below = acme.dir.org_ids_below(r["org_id"].as_str().unwrap_or_default());
                memberships.iter().any(|m| below.contains(m))
            })
            .count() as i64
    };
    // Their completion changes rows on the later pages, which a new computation would show.
    let open = acme
        .enrollments
        .iter()
        .filter(|e| e["status"] == "enrolled" || e["status"] == "in_progress")
        .find(|e| counting(&whole_before.rows[2..], e["user_id"].as_str().unwrap_or_default()) > 0)
        .expect("an open enrollment of a learner counted on a later page");
    let (status, body) = admin
        .post(&format!("/api/v1/enrollments/{}/complete", id(open)), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");

    let rest = run_path(
        admin,
        "/api/v1/reports/completion-by-org",
        &format!("limit=2&cursor={cursor}"),
    )
    .await;
    let mut paged: Vec<Map<String, Value>> = first["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_object().expect("a row").clone())
        .collect();
    paged.extend(rest.rows);
    assert_eq!(paged, whole_before.rows, "every page is of the moment of the first");
    let whole_after = run_report(admin, "completion-by-org", "limit=1000").await;
    assert_ne!(whole_after.rows, whole_before.rows, "a new run sees the completion");
    let on_path = counting(&whole_before.rows, open["user_id"].as_str().unwrap_or_default());
    assert!(on_path > 0, "the learner is counted somewhere");
    assert_eq!(
        sum(&whole_after, "completed"),
        sum(&whole_before, "completed") + on_path,
        "one more completion in each organization on the learner's path"
    );

    // The manager of Sales EMEA with the admin's cursor gets her own report from that offset, not the admin's.
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let hers = run_report(&elena, "completion-by-org", "limit=1000").await;
    assert!(hers.rows.len() > 2, "enough rows to start at the third");
    let borrowed = run_path(
        &elena,
        "/api/v1/reports/completion-by-org",
        &format!("limit=1000&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        borrowed.rows,
        hers.rows[2..].to_vec(),
        "computed for her, from the offset"
    );

    // A snapshot this process does not have (another replica's, or expired) is computed again.
    let gone = run_path(
        admin,
        "/api/v1/reports/completion-by-org",
        "limit=1000&cursor=o:2.aGVsbG8",
    )
    .await;
    assert_eq!(gone.rows, whole_after.rows[2..].to_vec());
}

// ---------------------------------------------------------------------------------------------------------
// 5. Presets

/// Presets are saved, listed, read, run (as JSON and CSV), renamed and deleted by their owner only, with
/// their filters checked like a run's; every change is audited; refused changes change nothing.
async fn presets_are_saved_and_run(app: &TestApp) {
    let acme = acme(app).await;
    let admin = &acme.admin;
    let ethics = &acme.courses["RPT-ETHICS"];
    let (status, preset) = admin
        .post(
            "/api/v1/report-presets",
            json!({"name": "Ethics progress", "report": "learner-progress", "params": {"course": "RPT-ETHICS"}}),
        )
        .await;
    assert_eq!(status, 201, "{preset}");
    assert_eq!(preset["params"], json!({"course": ethics}));
    let preset_id = id(&preset);

    let (status, list) = admin.get("/api/v1/report-presets").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (status, read) = admin.get(&format!("/api/v1/report-presets/{preset_id}")).await;
    assert_eq!((status.as_u16(), &read), (200, &preset));

    let direct = run_report(admin, "learner-progress", &format!("course={ethics}")).await;
    let saved = run_path(admin, &format!("/api/v1/report-presets/{preset_id}/run"), "limit=3").await;
    assert_eq!(saved.rows, direct.rows);
    assert!(saved.pages > 1, "the preset's run pages too");
    let csv = admin
        .send(
            "GET",
            &format!("/api/v1/report-presets/{preset_id}/run?format=csv"),
            common::Body::None,
        )
        .await;
    assert_eq!(csv.status, 200);
    assert_csv_is_json(&csv.text, &direct);
    assert_eq!(
        refused(
            admin,
            &format!("/api/v1/report-presets/{preset_id}/run?org={}", acme.dir.org("Acme"))
        )
        .await,
        (400, "unknown_parameter".into(), "org".into())
    );

    let (status, renamed) = admin
        .patch(
            &format!("/api/v1/report-presets/{preset_id}"),
            json!({"name": "Ethics"}),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "Ethics");
    assert_eq!(renamed["params"], preset["params"]);

    let elena = app.login("acme", "emea.manager@acme.test").await;
    let (status, hers) = elena
        .post(
            "/api/v1/report-presets",
            json!({"name": "Ethics", "report": "completion-by-org", "params": {"org": acme.dir.org("Team North")}}),
        )
        .await;
    assert_eq!(status, 201, "the same name for another owner: {hers}");
    let hers = id(&hers);

    let before = app.snapshot().await;
    let refusals = [
        (json!({"name": "ethics", "report": "overdue"}), 409, "duplicate", "name"),
        (json!({"name": " ", "report": "overdue"}), 400, "invalid_field", "name"),
        (json!({"name": "X", "report": "nope"}), 400, "invalid_field", "report"),
        (
            json!({"name": "X", "report": "overdue", "params": {"course": "NOPE"}}),
            422,
            "invalid_filter",
            "params.course",
        ),
        (
            json!({"name": "X", "report": "learner-progress", "params": {"interval": "day"}}),
            422,
            "invalid_filter",
            "params.interval",
        ),
        (
            json!({"name": "X", "report": "overdue", "params": {"org": acme.dir.org("Team North")}, "owner": "me"}),
            400,
            "unknown_field",
            "owner",
        ),
    ];
    for (body, status, code, field) in refusals {
        let reply = admin
            .send("POST", "/api/v1/report-presets", common::Body::Json(body.clone()))
            .await;
        assert_eq!(
            (reply.status.as_u16(), reply.code(), reply.field()),
            (status, code, field),
            "{body}: {}",
            reply.text
        );
    }
    let reply = admin
        .send(
            "PATCH",
            &format!("/api/v1/report-presets/{preset_id}"),
            common::Body::Json(json!({"params": {"course": "NOPE"}})),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.field()),
        (422, "params.course"),
        "{}",
        reply.text
    );
    // Another person's preset is not there for the admin, whatever they try.
    assert_eq!(admin.get(&format!("/api/v1/report-presets/{hers}")).await.0, 404);
    assert_eq!(admin.get(&format!("/api/v1/report-presets/{hers}/run")).await.0, 404);
    assert_eq!(
        admin
            .patch(&format!("/api/v1/report-presets/{hers}"), json!({"name": "Mine"}))
            .await
            .0,
        404
    );
    assert_eq!(admin.delete(&format!("/api/v1/report-presets/{hers}")).await.0, 404);
    before.assert_unchanged(&app.snapshot().await, "refused preset changes");

    let (status, _) = admin.delete(&format!("/api/v1/report-presets/{preset_id}")).await;
    assert_eq!(status, 204);
    assert_eq!(admin.get(&format!("/api/v1/report-presets/{preset_id}")).await.0, 404);
    let (_, audit) = admin
        .get(&format!("/api/v1/audit?target_id={preset_id}&limit=50"))
        .await;
    let actions: BTreeSet<&str> = audit["items"]
        .as_array()
        .expect("audit items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        BTreeSet::from(["report_preset.create", "report_preset.update", "report_preset.delete"])
    );
}

// ---------------------------------------------------------------------------------------------------------
// 6. Schedules

/// A second host process on the same database, as another replica would be.
fn replica(app: &TestApp, name: &str) -> aula::state::AppState {
    let mut config = Config::default();
    config.plugins.files_dir = app.files_dir.join(name).display().to_string();
    config.themes_dir = app.files_dir.join(name).join("themes").display().to_string();
    aula::state::AppState::new(app.db.clone(), config, Value::Null)
}

/// The messages a schedule queued: (count, attachment names, one attachment's bytes).
async fn schedule_messages(app: &TestApp, schedule: &str) -> (i64, BTreeSet<String>, Vec<u8>) {
    let source = format!("schedule:{schedule}");
    let count = app
        .count(
            "SELECT COUNT(*) FROM messages WHERE source = $1 AND kind = 'report' AND status = 'queued' \
             AND attachment IS NOT NULL",
            &[source.as_str()],
        )
        .await;
    let mut tx = app.db.platform().begin().await.expect("platform transaction");
    let rows: Vec<(Option<String>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT attachment_name, attachment FROM messages WHERE source = $1")
            .bind(source.clone())
            .fetch_all(tx.conn())
            .await
            .expect("messages");
    tx.commit().await.expect("commit");
    let names = rows.iter().filter_map(|(n, _)| n.clone()).collect();
    let bytes = rows.into_iter().find_map(|(_, b)| b).unwrap_or_default();
    (count, names, bytes)
}

async fn schedule(client: &Client, body: Value) -> Value {
    let (status, s) = client.post("/api/v1/report-schedules", body.clone()).await;
    assert_eq!(status, 201, "{body}: {s}");
    s
}

/// Schedules are checked (timing fields, format, recipients within the owner's scope) and get their next
/// run. Two replicas running the due schedules at the same moment send each exactly once: messages of kind
/// `report`, queued, with the report attached — the same CSV the owner gets from the API. A failing run
/// records why and moves on; sending now sends again without moving the next run.
async fn a_due_schedule_is_sent_once(app: &TestApp) {
    let acme = acme(app).await;
    let admin = &acme.admin;
    let me = acme.dir.user("admin@acme.test");
    let nora = acme.dir.user("nora.north@acme.test");
    deploy(admin, "bad-report", "bad_report").await;

    let weekly = schedule(
        admin,
        json!({"name": "Monday completion", "report": "completion-by-org", "format": "csv", "frequency": "weekly",
               "hour": 6, "weekday": 1, "recipients": [me, nora]}),
    )
    .await;
    let next = epoch_ms(weekly["next_run_at"].as_str().expect("next run"));
    assert!(next > now_ms() && next <= now_ms() + 7 * DAY_MS, "{weekly}");
    assert_eq!((next / DAY_MS + 3).rem_euclid(7), 0, "a Monday");
    assert_eq!(next % DAY_MS, 6 * 3_600_000, "at 06:00 UTC");
    let html = schedule(
        admin,
        json!({"name": "Daily courses", "report": "completion-by-course", "params": {"course": "RPT-SAFE"},
               "format": "html", "frequency": "daily", "hour": 5, "recipients": [me]}),
    )
    .await;
    let failing = schedule(
        admin,
        json!({"name": "Broken", "report": "bad-report:error", "format": "csv", "frequency": "monthly",
               "hour": 0, "monthday": 1, "recipients": [me]}),
    )
    .await;
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let hers = schedule(
        &elena,
        json!({"name": "EMEA", "report": "user-list", "format": "csv", "frequency": "daily", "hour": 5,
               "recipients": [acme.dir.user("emea.manager@acme.test"), nora]}),
    )
    .await;
    let globex = app.login("globex", "admin@globex.test").await;
    let theirs = schedule(
        &globex,
        json!({"name": "Partners", "report": "completion-by-org", "format": "csv", "frequency": "daily", "hour": 5,
               "recipients": [Directory::load(&globex).await.user("admin@globex.test")]}),
    )
    .await;

    let before = app.snapshot().await;
    let pia = acme.dir.user("pia.platform@acme.test");
    let refusals = [
        (
            admin,
            json!({"name": "X", "report": "overdue", "format": "csv", "frequency": "weekly", "hour": 6, "recipients": [me]}),
            "weekday",
        ),
        (
            admin,
            json!({"name": "X", "report": "overdue", "format": "csv", "frequency": "monthly", "hour": 6, "monthday": 31, "recipients": [me]}),
            "monthday",
        ),
        (
            admin,
            json!({"name": "X", "report": "overdue", "format": "csv", "frequency": "daily", "hour": 24, "recipients": [me]}),
            "hour",
        ),
        (
            admin,
            json!({"name": "X", "report": "overdue", "format": "pdf", "frequency": "daily", "hour": 6, "recipients": [me]}),
            "format",
        ),
        (
            admin,
            json!({"name": "X", "report": "overdue", "format": "csv", "frequency": "daily", "hour": 6, "recipients": []}),
            "recipients",
        ),
        (
            admin,
            json!({"name": "X", "report": "overdue", "format": "csv", "frequency": "daily", "hour": 6, "recipients": [me, "nobody"]}),
            "recipients[1]",
        ),
        (
            &elena,
            json!({"name": "X", "report": "overdue", "format": "csv", "frequency": "daily", "hour": 6, "recipients": [nora, pia]}),
            "recipients[1]",
        ),
        (
            admin,
            json!({"name": "X", "report": "nope", "format": "csv", "frequency": "daily", "hour": 6, "recipients": [me]}),
            "report",
        ),
    ];
    for (client, body, field) in refusals {
        let reply = client
            .send("POST", "/api/v1/report-schedules", common::Body::Json(body.clone()))
            .await;
        assert_eq!(
            (reply.status.as_u16(), reply.field()),
            (400, field),
            "{body}: {}",
            reply.text
        );
    }
    let reply = admin
        .send(
            "POST",
            "/api/v1/report-schedules",
            common::Body::Json(
                json!({"name": "X", "report": "overdue", "params": {"tag": "NOPE"}, "format": "csv",
                                      "frequency": "daily", "hour": 6, "recipients": [me]}),
            ),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.field()),
        (422, "params.tag"),
        "{}",
        reply.text
    );
    before.assert_unchanged(&app.snapshot().await, "refused schedules");

    // Two replicas, one moment at which all five are due: each schedule runs once.
    let at = [&weekly, &html, &failing, &hers, &theirs]
        .iter()
        .map(|s| epoch_ms(s["next_run_at"].as_str().unwrap_or_default()))
        .max()
        .unwrap_or_default();
    let (one, two) = (replica(app, "one"), replica(app, "two"));
    let (a, b) = tokio::join!(
        aula::reports::run_due_schedules(&one.db, &one.reports, at),
        aula::reports::run_due_schedules(&two.db, &two.reports, at)
    );
    let (a, b) = (a.expect("replica one"), b.expect("replica two"));
    assert_eq!(a + b, 5, "five schedules ran, each once ({a} + {b})");
    let (count, names, attachment) = schedule_messages(app, &id(&weekly)).await;
    assert_eq!(count, 2, "one message per recipient");
    assert_eq!(names.len(), 1);
    let name = names.into_iter().next().unwrap_or_default();
    assert!(
        name.starts_with("completion-by-org-") && name.ends_with(".csv"),
        "{name}"
    );
    let csv = admin
        .send(
            "GET",
            "/api/v1/reports/completion-by-org?format=csv",
            common::Body::None,
        )
        .await;
    assert_eq!(
        String::from_utf8_lossy(&attachment),
        csv.text,
        "the attachment is the owner's report"
    );
    let (count, _, page) = schedule_messages(app, &id(&html)).await;
    assert_eq!(count, 1);
    let page = String::from_utf8_lossy(&page).into_owned();
    assert!(
        page.contains("<svg") && page.contains("RPT-SAFE") && !page.contains("RPT-ETHICS"),
        "{page}"
    );
    assert_eq!(schedule_messages(app, &id(&hers)).await.0, 2);
    assert_eq!(schedule_messages(app, &id(&theirs)).await.0, 1);
    assert_eq!(
        schedule_messages(app, &id(&failing)).await.0,
        0,
        "a failed run sends nothing"
    );

    // The same moment again, from both: nothing more.
    let (a, b) = tokio::join!(
        aula::reports::run_due_schedules(&one.db, &one.reports, at),
        aula::reports::run_due_schedules(&two.db, &two.reports, at)
    );
    assert_eq!((a.expect("one"), b.expect("two")), (0, 0));
    assert_eq!(schedule_messages(app, &id(&weekly)).await.0, 2);

    let (_, ran) = admin.get(&format!("/api/v1/report-schedules/{}", id(&weekly))).await;
    assert_eq!(ran["last_status"], "sent to 2 recipients", "{ran}");
    let moved = epoch_ms(ran["next_run_at"].as_str().unwrap_or_default());
    assert!(
        moved > at && moved <= at + 7 * DAY_MS,
        "the next Monday after the run: {ran}"
    );
    assert!(ran["last_run_at"].is_string());
    let (_, broken) = admin.get(&format!("/api/v1/report-schedules/{}", id(&failing))).await;
    let status = broken["last_status"].as_str().unwrap_or_default();
    assert!(
        status.starts_with("failed: ") && status.contains("bad-report") && status.contains("deliberate failure"),
        "{broken}"
    );
    assert!(
        epoch_ms(broken["next_run_at"].as_str().unwrap_or_default()) > at,
        "a failed run moves on: {broken}"
    );

    // A schedule runs with its owner's scope as it is at the time: a suspended owner's schedule fails, and
    // moves on, sending nothing.
    let elena_id = acme.dir.user("emea.manager@acme.test");
    let (status, body) = admin
        .patch(&format!("/api/v1/users/{elena_id}"), json!({"status": "suspended"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let due: i64 = app
        .count(
            "SELECT next_run_at FROM report_schedules WHERE id = $1",
            &[id(&hers).as_str()],
        )
        .await;
    assert!(due > at);
    assert!(
        aula::reports::run_due_schedules(&one.db, &one.reports, due)
            .await
            .expect("run")
            >= 1
    );
    assert_eq!(schedule_messages(app, &id(&hers)).await.0, 2, "nothing more was sent");
    let last: i64 = app
        .count(
            "SELECT COUNT(*) FROM report_schedules WHERE id = $1 AND last_status LIKE 'failed: %suspended%' \
             AND next_run_at > last_run_at",
            &[id(&hers).as_str()],
        )
        .await;
    assert_eq!(last, 1, "the failure is recorded and the schedule moved on");

    // Sending now: the same messages again, the next run where it was.
    let (_, ran) = admin.get(&format!("/api/v1/report-schedules/{}", id(&weekly))).await;
    let sent = schedule_messages(app, &id(&weekly)).await.0;
    let (status, now) = admin
        .post(&format!("/api/v1/report-schedules/{}/run", id(&weekly)), json!({}))
        .await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["schedule"]["last_status"], "sent to 2 recipients");
    assert_eq!(now["schedule"]["next_run_at"], ran["next_run_at"]);
    assert_eq!(schedule_messages(app, &id(&weekly)).await.0, sent + 2);
    let (status, refused) = admin
        .post(&format!("/api/v1/report-schedules/{}/run", id(&failing)), json!({}))
        .await;
    assert_eq!(status, 502, "{refused}");
    assert_eq!(refused["error"]["code"], "report_plugin_failed");

    // Changed and deleted by the owner, audited.
    let (status, changed) = admin
        .patch(
            &format!("/api/v1/report-schedules/{}", id(&weekly)),
            json!({"frequency": "daily", "weekday": null, "hour": 7}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["frequency"], "daily");
    assert_eq!(
        epoch_ms(changed["next_run_at"].as_str().unwrap_or_default()) % DAY_MS,
        7 * 3_600_000
    );
    let (status, _) = admin.delete(&format!("/api/v1/report-schedules/{}", id(&weekly))).await;
    assert_eq!(status, 204);
    let (_, audit) = admin
        .get(&format!("/api/v1/audit?target_id={}&limit=50", id(&weekly)))
        .await;
    let actions: BTreeSet<&str> = audit["items"]
        .as_array()
        .expect("audit items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "report_schedule.create",
            "report_schedule.run",
            "report_schedule.update",
            "report_schedule.delete"
        ])
    );
}

// ---------------------------------------------------------------------------------------------------------
// 7. Isolation

/// Another academy's presets, schedules and plugin reports are not there for globex's admin, whatever the
/// method; globex's reports show nothing of acme.
async fn another_academys_ids_answer_404(app: &TestApp) {
    let acme = acme(app).await;
    let admin = &acme.admin;
    deploy(admin, "bad-report", "bad_report").await;
    let (_, preset) = admin
        .post("/api/v1/report-presets", json!({"name": "Mine", "report": "overdue"}))
        .await;
    let preset = id(&preset);
    let s = schedule(
        admin,
        json!({"name": "Mine", "report": "overdue", "format": "csv", "frequency": "daily", "hour": 6,
               "recipients": [acme.dir.user("admin@acme.test")]}),
    )
    .await;
    let s = id(&s);

    let globex = app.login("globex", "admin@globex.test").await;
    let before = app.snapshot().await;
    assert_eq!(globex.get(&format!("/api/v1/report-presets/{preset}")).await.0, 404);
    assert_eq!(globex.get(&format!("/api/v1/report-presets/{preset}/run")).await.0, 404);
    assert_eq!(
        globex
            .patch(&format!("/api/v1/report-presets/{preset}"), json!({"name": "X"}))
            .await
            .0,
        404
    );
    assert_eq!(globex.delete(&format!("/api/v1/report-presets/{preset}")).await.0, 404);
    assert_eq!(globex.get(&format!("/api/v1/report-schedules/{s}")).await.0, 404);
    assert_eq!(
        globex
            .patch(&format!("/api/v1/report-schedules/{s}"), json!({"hour": 1}))
            .await
            .0,
        404
    );
    assert_eq!(
        globex
            .post(&format!("/api/v1/report-schedules/{s}/run"), json!({}))
            .await
            .0,
        404
    );
    assert_eq!(globex.delete(&format!("/api/v1/report-schedules/{s}")).await.0, 404);
    assert_eq!(globex.get("/api/v1/reports/bad-report:paged").await.0, 404);
    before.assert_unchanged(
        &app.snapshot().await,
        "globex's attempts on acme's presets and schedules",
    );
    let (_, list) = globex.get("/api/v1/reports").await;
    assert!(!list.to_string().contains("bad-report"), "{list}");
    let (_, presets) = globex.get("/api/v1/report-presets").await;
    assert_eq!(presets, json!([]));

    let needles = acme.dir.needles();
    for key in BUILTIN {
        let run = run_report(&globex, key, "").await;
        needles.assert_absent(&format!("globex's {key}"), &run.text);
    }
}

// ---------------------------------------------------------------------------------------------------------
// 8. Plugin reports

/// A plugin report is paged through its cursors with the filters passed on; any row that does not fit its
/// columns, an error, a timeout or a report that does not end fails the whole run with an error naming the
/// plugin, and no row is shown.
async fn plugin_reports_fail_closed(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    create_course(&admin, "RPT-SAFE", "Safety").await;
    let plugin = deploy(&admin, "bad-report", "bad_report").await;

    let paged = run_report(&admin, "bad-report:paged", "course=RPT-SAFE&tag=REGION_UK").await;
    let labels = paged.column("label");
    assert_eq!(labels.len(), 7, "{labels:?}");
    assert_eq!(labels[..2], ["plain".to_owned(), "with, comma".to_owned()]);
    assert!(
        labels[6].contains("course=RPT-SAFE") && labels[6].contains("tag=REGION_UK"),
        "the plugin gets the course's code and the tag's name: {}",
        labels[6]
    );
    let first = &paged.rows[0];
    assert_eq!(
        Value::Object(first.clone()),
        json!({"label": "plain", "count": 1, "share": 10.0, "ratio": 1.0, "flag": false, "day": "2026-01-01"})
    );

    let cases = [
        (
            "wrong-type",
            502,
            "report_plugin_failed",
            "column count is of type integer but the cell is text",
        ),
        ("short-row", 502, "report_plugin_failed", "2 cells for 6 columns"),
        ("bad-percent", 502, "report_plugin_failed", "percentage"),
        ("error", 502, "report_plugin_failed", "deliberate failure"),
        ("slow", 504, "report_plugin_timeout", "time limit of 500 ms"),
        ("endless", 502, "report_plugin_failed", "after 100 pages"),
        ("stuck", 502, "report_plugin_failed", "same `next` cursor"),
    ];
    for (report, status, code, says) in cases {
        for format in ["json", "csv", "html"] {
            let reply = admin
                .send(
                    "GET",
                    &format!("/api/v1/reports/bad-report:{report}?format={format}"),
                    common::Body::None,
                )
                .await;
            assert_eq!(reply.status.as_u16(), status, "{report} as {format}: {}", reply.text);
            assert_eq!(reply.code(), code, "{report}: {}", reply.text);
            let message = reply.body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("bad-report") && message.contains(says),
                "{report}: {message}"
            );
            assert!(reply.body.get("rows").is_none(), "no partial report");
            assert!(
                !reply.text.contains("fine"),
                "no row of the good first page: {}",
                reply.text
            );
        }
    }
    let (_, faults) = admin.get(&format!("/api/v1/plugins/{plugin}/faults?limit=50")).await;
    let timeouts = faults["items"]
        .as_array()
        .expect("faults")
        .iter()
        .filter(|f| f["kind"] == "timeout" && f["hook"] == "run-report")
        .inspect(|f| assert_eq!(f["counted"], false, "a timeout does not count toward disabling: {f}"))
        .count();
    assert_eq!(timeouts, 3, "each timed-out run is a recorded fault: {faults}");
    let (_, after) = admin.get(&format!("/api/v1/plugins/{plugin}")).await;
    assert_eq!(after["status"], "active", "{after}");
}

/// A report plugin whose every call faults is left out of the report list, which still answers with the
/// built-in reports; running its report fails with an error naming it; the faults are recorded.
async fn a_faulting_report_plugin_is_left_out(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let plugin = deploy(&admin, "completion-by-org", "completion_by_org").await;
    let (status, list) = admin.get("/api/v1/reports").await;
    assert_eq!(status, 200, "{list}");
    let keys: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["key"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(keys, BUILTIN.to_vec());
    let reply = admin
        .send("GET", &format!("/api/v1/reports/{PLUGIN_REPORT}"), common::Body::None)
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.code(), "report_plugin_failed");
    assert!(reply.text.contains("completion-by-org"), "{}", reply.text);
    let (_, faults) = admin.get(&format!("/api/v1/plugins/{plugin}/faults?limit=50")).await;
    let faults = faults["items"].as_array().expect("faults");
    assert!(
        faults
            .iter()
            .any(|f| f["hook"] == "list-reports" && f["kind"] == "memory"),
        "{faults:?}"
    );
}
