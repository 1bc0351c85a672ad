//! Enrollments and certificates as the API shows them, and the checks that a user and a course are within a
//! manager's reach. The learner's pages and the managers' pages read them the same way.

use crate::db::{Sql, TenantTx, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::scope::Reach;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

/// An enrollment.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EnrollmentOut {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) user_email: String,
    pub(crate) user_name: String,
    pub(crate) course_id: String,
    pub(crate) course_code: String,
    pub(crate) course_title: String,
    /// enrolled, in_progress, completed or dropped.
    pub(crate) status: String,
    /// Past its due date and not completed.
    pub(crate) overdue: bool,
    /// Percent of required lessons done.
    pub(crate) progress: i64,
    pub(crate) due_at: Option<String>,
    pub(crate) started_at: Option<String>,
    pub(crate) completed_at: Option<String>,
    /// How it came about: manual, self, bulk, rule, plugin, program, approval.
    pub(crate) source: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

pub const ENROLLMENT_SELECT: &str = "SELECT e.id, e.user_id, u.email AS user_email, u.name AS user_name, e.course_id, \
    c.code AS course_code, c.title AS course_title, e.status, e.progress, e.due_at, e.started_at, e.completed_at, \
    e.source, e.created_at, e.updated_at FROM enrollments e JOIN users u ON u.id = e.user_id \
    JOIN courses c ON c.id = e.course_id WHERE e.tenant_id = $1";

pub fn enrollment_from_row(row: &AnyRow) -> Result<EnrollmentOut, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let due_at: Option<i64> = row.try_get("due_at")?;
    Ok(EnrollmentOut {
        overdue: due_at.is_some_and(|d| d < now_ms()) && status != "completed" && status != "dropped",
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        user_name: row.try_get("user_name")?,
        course_id: row.try_get("course_id")?,
        course_code: row.try_get("course_code")?,
        course_title: row.try_get("course_title")?,
        status,
        progress: row.try_get("progress")?,
        due_at: due_at.map(rfc3339),
        started_at: row.try_get::<Option<i64>, _>("started_at")?.map(rfc3339),
        completed_at: row.try_get::<Option<i64>, _>("completed_at")?.map(rfc3339),
        source: row.try_get("source")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

pub async fn load(tx: &mut TenantTx, id: &str) -> ApiResult<EnrollmentOut> {
    let mut sql = Sql::tenant(ENROLLMENT_SELECT);
    sql.push(" AND e.id = ").push_bind(id);
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "enrollment" })?;
    Ok(enrollment_from_row(&row)?)
}

/// An enrollment whose user is within `reach`, or 404 (exactly as if it did not exist).
pub async fn load_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> ApiResult<EnrollmentOut> {
    let mut sql = Sql::tenant(ENROLLMENT_SELECT);
    sql.push(" AND e.id = ").push_bind(id);
    reach.push_user_filter(&mut sql, tx.backend());
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "enrollment" })?;
    Ok(enrollment_from_row(&row)?)
}

/// 404 unless the user exists and is within `reach`.
pub async fn user_in_reach(tx: &mut TenantTx, reach: &Reach, user_id: &str, field: &str) -> ApiResult<()> {
    let mut sql = Sql::tenant("SELECT u.id FROM users u WHERE u.tenant_id = $1 AND u.id = ");
    sql.push_bind(user_id);
    reach.push_user_filter(&mut sql, tx.backend());
    if tx.fetch_optional_sql(&sql).await?.is_none() {
        return Err(ApiError::invalid(field, "no such user within your scope"));
    }
    Ok(())
}

/// A course someone with `reach` may enroll people in: it exists and is not archived; outside the whole
/// academy, it must also be published and offered to (part of) the caller's organizations.
pub async fn course_for_reach(tx: &mut TenantTx, reach: &Reach, course_id: &str, field: &str) -> ApiResult<()> {
    let row = tx
        .query("SELECT status, visibility FROM courses WHERE tenant_id = $1 AND id = $2")
        .bind(course_id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApiError::invalid(field, "no such course"))?;
    let status: String = row.try_get(0)?;
    let visibility: String = row.try_get(1)?;
    if status == "archived" {
        return Err(ApiError::rule("course_archived", Some(field), "the course is archived"));
    }
    if reach.all {
        return Ok(());
    }
    let not_visible = || {
        ApiError::rule(
            "course_not_visible",
            Some(field),
            "this course is not offered to the part of the academy you manage",
        )
    };
    if status != "published" {
        return Err(not_visible());
    }
    match visibility.as_str() {
        "tenant" => Ok(()),
        "orgs" => {
            // Offered to an organization above the caller's subtree, or to one inside it.
            let rows = tx
                .query("SELECT o.path FROM course_orgs co JOIN orgs o ON o.id = co.org_id WHERE co.tenant_id = $1 AND co.course_id = $2")
                .bind(course_id.to_owned())
                .fetch_all(tx.conn())
                .await?;
            for row in rows {
                let path: String = row.try_get(0)?;
                if reach
                    .org_paths
                    .iter()
                    .any(|p| p.starts_with(path.as_str()) || path.starts_with(p.as_str()))
                {
                    return Ok(());
                }
            }
            Err(not_visible())
        }
        _ => Err(not_visible()),
    }
}

/// A certificate.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CertificateOut {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) user_name: String,
    pub(crate) course_id: String,
    pub(crate) course_title: String,
    /// Anyone can check it at /api/v1/certificates/verify/{code} on the academy's host.
    pub(crate) code: String,
    pub(crate) issued_at: String,
    pub(crate) expires_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
    /// valid, expired or revoked.
    pub(crate) state: String,
}

pub const CERTIFICATE_SELECT: &str = "SELECT ct.id, ct.user_id, u.name AS user_name, ct.course_id, c.title AS course_title, ct.code, \
    ct.issued_at, ct.expires_at, ct.revoked_at FROM certificates ct JOIN users u ON u.id = ct.user_id \
    JOIN courses c ON c.id = ct.course_id WHERE ct.tenant_id = $1";

pub fn certificate_from_row(r: &AnyRow) -> Result<CertificateOut, sqlx::Error> {
    let expires_at: Option<i64> = r.try_get("expires_at")?;
    let revoked_at: Option<i64> = r.try_get("revoked_at")?;
    let state = if revoked_at.is_some() {
        "revoked"
    } else if expires_at.is_some_and(|e| e <= now_ms()) {
        "expired"
    } else {
        "valid"
    };
    Ok(CertificateOut {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        user_name: r.try_get("user_name")?,
        course_id: r.try_get("course_id")?,
        course_title: r.try_get("course_title")?,
        code: r.try_get("code")?,
        issued_at: rfc3339(r.try_get("issued_at")?),
        expires_at: expires_at.map(rfc3339),
        revoked_at: revoked_at.map(rfc3339),
        state: state.into(),
    })
}
