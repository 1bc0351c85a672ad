//! One of every resource kind the isolation matrix aims at, in one academy and about one person, so that every
//! path of the OpenAPI document can be filled with a real id: courses, lessons and rules through the API;
//! enrollments, requests, certificates, programs, invitations, jobs, messages, notices, plugins, report presets
//! and schedules and sign-ups as rows (as the flows that make them would leave them).

use super::openapi::Kind;
use super::{Client, TestApp};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Real ids of one academy, by kind, for the kinds the [`super::Directory`] does not list.
#[derive(Debug, Clone, Default)]
pub struct Resources(pub BTreeMap<Kind, String>);

impl Resources {
    /// The id of this kind, if one was arranged.
    pub fn get(&self, kind: Kind) -> Option<String> {
        self.0.get(&kind).cloned()
    }

    /// Arrange one of each kind in the academy of `admin`: about `person` (their enrollment, request,
    /// certificate, message and sign-up), an invitation to organization `org`, and what belongs to the academy
    /// (course, lesson, rule, program, job, notice, plugin, and a report preset and schedule of the admin's).
    pub async fn arrange(app: &TestApp, admin: &Client, person: &str, org: &str) -> Resources {
        let (_, tenant) = admin.get("/api/v1/tenant").await;
        let slug = tenant["slug"].as_str().expect("the tenant's slug").to_owned();
        let (_, me) = admin.get("/api/v1/me").await;
        let owner = me["email"].as_str().expect("the admin's e-mail").to_owned();
        let (slug, owner) = (slug.as_str(), owner.as_str());
        let tenant = app.text("SELECT id FROM tenants WHERE slug = $1", &[slug]).await;
        let person_id = app
            .text(
                "SELECT id FROM users WHERE tenant_id = $1 AND email = $2",
                &[&tenant, person],
            )
            .await;
        let owner_id = app
            .text(
                "SELECT id FROM users WHERE tenant_id = $1 AND email = $2",
                &[&tenant, owner],
            )
            .await;
        let org_id = app
            .text(
                "SELECT id FROM orgs WHERE tenant_id = $1 AND name = $2",
                &[&tenant, org],
            )
            .await;
        let created = |status: reqwest::StatusCode, v: &Value, what: &str| {
            assert!(status.is_success(), "create the matrix {what}: {status} {v}");
            v["id"].as_str().unwrap_or_default().to_owned()
        };
        let code = format!("MATRIX-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (status, v) = admin
            .post(
                "/api/v1/courses",
                json!({"code": code, "title": "Matrix course", "status": "published"}),
            )
            .await;
        let course = created(status, &v, "course");
        let (status, v) = admin
            .post(
                &format!("/api/v1/courses/{course}/lessons"),
                json!({"kind": "text", "title": "Matrix lesson", "body": "For the isolation matrix."}),
            )
            .await;
        let lesson = created(status, &v, "lesson");
        let (status, v) = admin
            .post(
                "/api/v1/courses",
                json!({"code": format!("{code}-2"), "title": "Matrix course two", "status": "published"}),
            )
            .await;
        let other_course = created(status, &v, "second course");
        let (status, v) = admin
            .post(
                "/api/v1/rules",
                json!({"name": format!("Matrix rule {code}"), "max_fires_per_user": 1, "definition": {
                    "on": ["user_created"], "when": {"org_id": org_id}, "then": [{"type": "enroll", "course_id": course}]
                }}),
            )
            .await;
        let rule = created(status, &v, "rule");
        let now = aula::db::now_ms();
        let id = || uuid::Uuid::new_v4().to_string();
        let mut ids = BTreeMap::new();
        ids.insert(Kind::Course, course.clone());
        ids.insert(Kind::Lesson, lesson);

        let enrollment = id();
        app.exec(
            &format!(
                "INSERT INTO enrollments (id, tenant_id, user_id, course_id, status, progress, completed_at, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, 'completed', 100, {now}, {now}, {now})"
            ),
            &[&enrollment, &tenant, &person_id, &course],
        )
        .await;
        ids.insert(Kind::Enrollment, enrollment.clone());

        let rows: [(Kind, String, Vec<String>); 13] = [
            (
                Kind::EnrollmentRequest,
                format!(
                    "INSERT INTO enrollment_requests (id, tenant_id, user_id, course_id, status, created_at) \
                     VALUES ($1, $2, $3, $4, 'pending', {now})"
                ),
                vec![person_id.clone(), other_course],
            ),
            (
                Kind::Certificate,
                format!(
                    "INSERT INTO certificates (id, tenant_id, user_id, course_id, enrollment_id, code, issued_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, {now})"
                ),
                vec![
                    person_id.clone(),
                    course.clone(),
                    enrollment.clone(),
                    format!("M{}", &id()[..8]),
                ],
            ),
            (
                Kind::Program,
                format!(
                    "INSERT INTO programs (id, tenant_id, code, title, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'Matrix program', 'published', {now}, {now})"
                ),
                vec![format!("MATRIX-{}", &id()[..8])],
            ),
            (
                Kind::Invitation,
                format!(
                    "INSERT INTO invitations (id, tenant_id, org_id, token, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, {now})"
                ),
                vec![org_id, format!("matrix-{}", id()), owner_id.clone()],
            ),
            (
                Kind::Job,
                format!(
                    "INSERT INTO jobs (id, tenant_id, kind, status, params, result, created_by, created_at, started_at, \
                     finished_at) VALUES ($1, $2, 'bulk_enroll', 'done', '{{}}', '{{}}', $3, {now}, {now}, {now})"
                ),
                vec![owner_id.clone()],
            ),
            (
                Kind::Message,
                format!(
                    "INSERT INTO messages (id, tenant_id, kind, recipient_id, to_address, locale, subject, body_text, \
                     source, status, message_id, created_at, sent_at) VALUES ($1, $2, 'enrolled', $3, $4, 'en', \
                     'Matrix message', 'For the isolation matrix.', 'host', 'sent', $5, {now}, {now})"
                ),
                vec![person_id.clone(), person.to_owned(), format!("<{}@aula.test>", id())],
            ),
            (
                Kind::Notice,
                format!(
                    "INSERT INTO notices (id, tenant_id, kind, subject, body, created_at) \
                     VALUES ($1, $2, 'plugin_disabled', 'Matrix notice', 'For the isolation matrix.', {now})"
                ),
                vec![],
            ),
            (
                Kind::Plugin,
                format!(
                    "INSERT INTO plugins (id, tenant_id, name, kind, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'reports', {now}, {now})"
                ),
                vec![format!("matrix-{}", &id()[..8])],
            ),
            (
                Kind::ReportPreset,
                format!(
                    "INSERT INTO report_presets (id, tenant_id, owner_id, name, report, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'Matrix preset', 'completion-by-org', {now}, {now})"
                ),
                vec![owner_id.clone()],
            ),
            (
                Kind::ReportSchedule,
                format!(
                    "INSERT INTO report_schedules (id, tenant_id, owner_id, name, report, format, frequency, hour, \
                     recipients, next_run_at, created_at, updated_at) VALUES ($1, $2, $3, 'Matrix schedule', \
                     'completion-by-org', 'csv', 'daily', 6, '[]', 4102444800000, {now}, {now})"
                ),
                vec![owner_id.clone()],
            ),
            (
                Kind::Signup,
                format!(
                    "INSERT INTO signups (id, tenant_id, user_id, email, via, status, created_at) \
                     VALUES ($1, $2, $3, $4, 'open', 'pending', {now})"
                ),
                vec![person_id.clone(), person.to_owned()],
            ),
            (
                Kind::IdentityProvider,
                format!(
                    "INSERT INTO identity_providers (id, tenant_id, name, issuer, client_id, client_secret, \
                     created_at, updated_at) VALUES ($1, $2, $3, 'https://login.matrix.test', 'matrix', \
                     'matrix-secret', {now}, {now})"
                ),
                vec![format!("Matrix provider {}", &id()[..8])],
            ),
            (
                Kind::ScimToken,
                format!(
                    "INSERT INTO scim_tokens (id, tenant_id, name, prefix, token_hash, created_by, created_at, \
                     expires_at) VALUES ($1, $2, 'Matrix SCIM', 'aulascim_mat', $3, $4, {now}, 4102444800000)"
                ),
                vec![id(), owner_id.clone()],
            ),
        ];
        for (kind, sql, rest) in rows {
            let row = id();
            let mut args: Vec<&str> = vec![&row, &tenant];
            args.extend(rest.iter().map(String::as_str));
            app.exec(&sql, &args).await;
            ids.insert(kind, row);
        }
        ids.insert(Kind::Rule, rule);
        Resources(ids)
    }
}
