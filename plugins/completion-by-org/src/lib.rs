//! Report `completion-by-org`: how far each organization's learners are with their courses.
//!
//! One row per visible organization, depth-first from the top (each organization before the ones below it,
//! siblings by name), counting the enrollments of its members and of the members of every organization
//! below it:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `org` | text | the organization's name |
//! | `path` | text | names from the top, `Acme / Sales / North` |
//! | `learners` | integer | distinct learners with at least one counted enrollment |
//! | `enrollments` | integer | enrollments, leaving out dropped ones |
//! | `completed` | integer | completed enrollments |
//! | `completion` | percent | `completed` of `enrollments` (0–100, one decimal); empty without enrollments |
//!
//! The optional parameter `course` (a course code) counts only that course. The report runs with the scope
//! of whoever runs it, so a manager sees their part of the tree only. Rows come [`ORGS_PER_PAGE`] at a time;
//! the cursor is the id of the next organization to report.

use std::collections::{BTreeMap, BTreeSet};

use aula_sdk::directory::{self, OrgWalk};
use aula_sdk::records::{self, EnrollmentQuery};
use aula_sdk::reports::{Cell, Column, Params, Report, Reports, Rows};
use aula_sdk::{EnrollmentStatus, Org};

/// The report's key.
pub const REPORT: &str = "completion-by-org";

/// Organizations per page of rows.
pub const ORGS_PER_PAGE: usize = 50;

/// Counts for one organization's subtree.
#[derive(Clone, Debug, Default, PartialEq)]
struct Counts {
    learners: usize,
    enrollments: usize,
    completed: usize,
}

impl Counts {
    fn of(org: &Org, course_id: Option<&str>) -> Counts {
        let mut query = EnrollmentQuery::default().in_org(&org.id).page_size(500);
        if let Some(course) = course_id {
            query = query.course(course);
        }
        let mut learners = BTreeSet::new();
        let mut counts = Counts::default();
        for enrollment in records::enrollments(query) {
            if enrollment.status == EnrollmentStatus::Dropped {
                continue;
            }
            counts.enrollments += 1;
            if enrollment.status == EnrollmentStatus::Completed {
                counts.completed += 1;
            }
            learners.insert(enrollment.user_id);
        }
        counts.learners = learners.len();
        counts
    }

    /// Completed enrollments in percent, to one decimal.
    fn completion(&self) -> Option<f64> {
        (self.enrollments > 0).then(|| (self.completed as f64 * 1000.0 / self.enrollments as f64).round() / 10.0)
    }
}

/// Names of organizations by id, for paths; filled by the walk, asked of the host for ancestors reported on
/// an earlier page.
struct Names(BTreeMap<String, String>);

impl Names {
    fn path(&mut self, org: &Org) -> String {
        let names: Vec<String> = org
            .path
            .iter()
            .map(|id| {
                self.0
                    .entry(id.clone())
                    .or_insert_with(|| directory::org(id).map_or_else(|| id.clone(), |o| o.name))
                    .clone()
            })
            .collect();
        names.join(" / ")
    }
}

/// The plugin as registered with the host.
pub struct CompletionByOrg;

impl Reports for CompletionByOrg {
    fn reports() -> Vec<Report> {
        vec![
            Report::new(REPORT, "Completion by organization")
                .description(
                    "Enrollments and completions of each organization's learners, including the organizations \
                     below it. Parameter `course`: a course code to count only that course.",
                )
                .column(Column::text("org", "Organization"))
                .column(Column::text("path", "Path"))
                .column(Column::integer("learners", "Learners"))
                .column(Column::integer("enrollments", "Enrollments"))
                .column(Column::integer("completed", "Completed"))
                .column(Column::percent("completion", "Completion")),
        ]
    }

    fn run(key: String, params: Params, cursor: Option<String>) -> Result<Rows, String> {
        if key != REPORT {
            return Err(format!("no report `{key}`"));
        }
        let course_id = match params.non_empty("course") {
            None => None,
            Some(code) => Some(
                directory::course_by_code(code)
                    .ok_or_else(|| format!("no course with code `{code}`"))?
                    .id,
            ),
        };
        let mut walk = match &cursor {
            None => directory::all_orgs(),
            Some(next_org) => OrgWalk::resume_at(next_org),
        };

        let mut names = Names(BTreeMap::new());
        let mut rows = Vec::new();
        for org in walk.by_ref().take(ORGS_PER_PAGE) {
            names.0.insert(org.id.clone(), org.name.clone());
            let counts = Counts::of(&org, course_id.as_deref());
            rows.push(vec![
                Cell::from(org.name.as_str()),
                Cell::from(names.path(&org)),
                Cell::from(counts.learners),
                Cell::from(counts.enrollments),
                Cell::from(counts.completed),
                Cell::from(counts.completion()),
            ]);
        }
        Ok(match walk.next() {
            Some(next) => Rows::continued(rows, next.id),
            None => Rows::complete(rows),
        })
    }
}

aula_sdk::register!(reports: CompletionByOrg);

#[cfg(test)]
mod tests;
