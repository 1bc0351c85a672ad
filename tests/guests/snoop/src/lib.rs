//! A report plugin that reports everything `directory` and `records` let it see, to test tenant isolation
//! and scope: ids of another academy, or outside the requester's scope, must find nothing.
//!
//! Report `probe` has the text columns `kind`, `id` and `detail`. Running it with the parameters `ids` and
//! `emails` (comma-separated) tries, for every id: `get-user`, `get-org`, `get-course`, `in-segment(id, id)`,
//! `list-users` with `org-id = id`, `list-enrollments` with `user-id`, `course-id` and `org-id = id`, and
//! `find-orgs(id)`; for every e-mail: `find-user-by-email`. Then it lists everything visible: every user
//! (all pages), every organization (walked from the top), tags, segments, courses and every enrollment (all
//! pages).
//!
//! Each item found is one row, the first time it is found: `user` (id, e-mail), `org` (id, name), `course`
//! (id, code), `tag` (id, name), `segment` (id, name), `enrollment` (`user:course`, status) and
//! `in-segment` (the id, when `in-segment(id, id)` answered true). All rows come in one page.

use std::collections::BTreeSet;

use aula_sdk::directory::{self, UserQuery};
use aula_sdk::records::{self, EnrollmentQuery};
use aula_sdk::reports::{Cell, Column, Params, Report, Reports, Rows};
use aula_sdk::{Enrollment, Org, User, log};

/// Rows found so far, each (kind, id) once.
#[derive(Default)]
struct Found {
    seen: BTreeSet<(String, String)>,
    rows: Vec<Vec<Cell>>,
}

impl Found {
    fn add(&mut self, kind: &str, id: &str, detail: &str) {
        if self.seen.insert((kind.to_owned(), id.to_owned())) {
            self.rows
                .push(vec![Cell::from(kind), Cell::from(id), Cell::from(detail)]);
        }
    }

    fn user(&mut self, user: &User) {
        self.add("user", &user.id, &user.email);
    }

    fn org(&mut self, org: &Org) {
        self.add("org", &org.id, &org.name);
    }

    fn enrollment(&mut self, e: &Enrollment) {
        self.add(
            "enrollment",
            &format!("{}:{}", e.user_id, e.course_id),
            e.status.as_str(),
        );
    }
}

fn list(params: &Params, name: &str) -> Vec<String> {
    let value = params.get(name).unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The plugin as registered with the host.
pub struct Snoop;

impl Reports for Snoop {
    fn reports() -> Vec<Report> {
        vec![
            Report::new("probe", "Probe")
                .description("Everything the plugin can see")
                .column(Column::text("kind", "Kind"))
                .column(Column::text("id", "Id"))
                .column(Column::text("detail", "Detail")),
        ]
    }

    fn run(key: String, params: Params, _cursor: Option<String>) -> Result<Rows, String> {
        if key != "probe" {
            return Err(format!("no report `{key}`"));
        }
        let mut found = Found::default();

        for id in list(&params, "ids") {
            if let Some(user) = directory::user(&id) {
                found.user(&user);
            }
            if let Some(org) = directory::org(&id) {
                found.org(&org);
            }
            if let Some(course) = directory::course(&id) {
                found.add("course", &course.id, &course.code);
            }
            if directory::in_segment(&id, &id) {
                found.add("in-segment", &id, "");
            }
            for user in directory::users(UserQuery::default().in_org(&id).page_size(500)) {
                found.user(&user);
            }
            for query in [
                EnrollmentQuery::default().user(&id),
                EnrollmentQuery::default().course(&id),
                EnrollmentQuery::default().in_org(&id),
            ] {
                for e in records::enrollments(query.page_size(500)) {
                    found.enrollment(&e);
                }
            }
            for org in directory::find_orgs(&id) {
                found.org(&org);
            }
        }
        for email in list(&params, "emails") {
            if let Some(user) = directory::user_by_email(&email) {
                found.user(&user);
            }
        }

        for user in directory::users(UserQuery::default().page_size(500)) {
            found.user(&user);
        }
        for org in directory::all_orgs() {
            found.org(&org);
        }
        for tag in directory::tags() {
            found.add("tag", &tag.id, &tag.name);
        }
        for segment in directory::segments() {
            found.add("segment", &segment.id, &segment.name);
        }
        for course in directory::courses() {
            found.add("course", &course.id, &course.code);
        }
        for e in records::enrollments(EnrollmentQuery::default().page_size(500)) {
            found.enrollment(&e);
        }

        log::info(format_args!("probe found {} items", found.rows.len()));
        Ok(Rows::complete(found.rows))
    }
}

aula_sdk::register!(reports: Snoop);
