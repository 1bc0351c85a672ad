//! `records`: enrollments and progress, read-only, of the users the call's view may see.

use super::{HostState, page_limit};
use crate::db::{Sql, rfc3339};
use crate::plugins::bindings::{records, types};
use crate::plugins::manifest::Capability;
use sqlx::Row;

impl records::Host for HostState {
    async fn list_enrollments(&mut self, query: records::EnrollmentQuery) -> wasmtime::Result<records::EnrollmentPage> {
        self.require(Capability::Records)?;
        self.charge_value(&query)?;
        let limit = page_limit(query.limit);
        let mut sql = Sql::tenant(
            "SELECT e.user_id, e.course_id, e.status, e.due_at, e.completed_at, e.progress \
             FROM enrollments e WHERE e.tenant_id = $1 \
             AND EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = $1 AND u.id = e.user_id",
        );
        self.view.push_users(&mut sql, self.db.backend());
        sql.push(")");
        if let Some(user) = &query.user_id {
            sql.push(" AND e.user_id = ").push_bind(user.as_str());
        }
        if let Some(course) = &query.course_id {
            sql.push(" AND e.course_id = ").push_bind(course.as_str());
        }
        if let Some(org) = &query.org_id {
            let Some(path) = self.visible_org_path(org).await? else {
                return Ok(records::EnrollmentPage {
                    enrollments: Vec::new(),
                    next: None,
                });
            };
            sql.push(
                " AND EXISTS (SELECT 1 FROM memberships fm JOIN orgs fo ON fo.id = fm.org_id \
                 WHERE fm.tenant_id = $1 AND fm.user_id = e.user_id AND fo.path LIKE ",
            )
            .push_bind(format!("{path}%"))
            .push(")");
        }
        if let Some((user, course)) = query.cursor.as_deref().and_then(|c| c.split_once(' ')) {
            sql.push(" AND (e.user_id > ")
                .push_bind(user)
                .push(" OR (e.user_id = ")
                .push_bind(user)
                .push(" AND e.course_id > ")
                .push_bind(course)
                .push("))");
        }
        sql.push(" ORDER BY e.user_id, e.course_id LIMIT ").push_bind(limit + 1);
        let mut tx = self.read().await?;
        let rows = match tx.fetch_all_sql(&sql).await {
            Ok(rows) => rows,
            Err(e) => return Err(self.db_error(e)),
        };
        let enrollments = rows
            .iter()
            .map(|r| {
                let status: String = r.try_get(2)?;
                let due: Option<i64> = r.try_get(3)?;
                let completed: Option<i64> = r.try_get(4)?;
                let progress: i64 = r.try_get(5)?;
                Ok(types::Enrollment {
                    user_id: r.try_get(0)?,
                    course_id: r.try_get(1)?,
                    status: match status.as_str() {
                        "in_progress" => types::EnrollmentStatus::InProgress,
                        "completed" => types::EnrollmentStatus::Completed,
                        "dropped" => types::EnrollmentStatus::Dropped,
                        _ => types::EnrollmentStatus::Enrolled,
                    },
                    due_at: due.map(rfc3339),
                    completed_at: completed.map(rfc3339),
                    progress_percent: progress.clamp(0, 100) as u8,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>();
        let mut enrollments = enrollments.map_err(|e| self.db_error(e))?;
        let next = if enrollments.len() as i64 > limit {
            enrollments.truncate(limit as usize);
            enrollments.last().map(|e| format!("{} {}", e.user_id, e.course_id))
        } else {
            None
        };
        self.charge_value(&enrollments)?;
        Ok(records::EnrollmentPage { enrollments, next })
    }
}
