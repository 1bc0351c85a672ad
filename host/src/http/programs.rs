//! Programs: an ordered list of courses taken as one (onboarding, a certification path). Managed with the same
//! rights as courses, since a program is content too.

use super::api::{Api, Op};
use super::common::{Json, Path, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Backend, TenantTx, foreign_key_violation, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::learning::courses::{ContentStatus, code, long_text};
use crate::scope::Permission;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::{BTreeMap, HashSet};

pub fn routes(api: &mut Api) {
    api.tag("programs");
    api.op_out::<Vec<ProgramOut>>(
        Op::get("/api/v1/programs", "List programs with their courses").permission("courses.read"),
        get(list),
    );
    api.op_io::<NewProgram, ProgramOut>(
        Op::post("/api/v1/programs", "Create a program")
            .permission("courses.write")
            .status(201),
        post(create),
    );
    api.op_out::<ProgramOut>(
        Op::get("/api/v1/programs/{id}", "Read a program with its courses in order").permission("courses.read"),
        get(read),
    );
    api.op_io::<ProgramPatch, ProgramOut>(
        Op::patch(
            "/api/v1/programs/{id}",
            "Change a program (course_ids replaces its courses)",
        )
        .permission("courses.write"),
        patch(update),
    );
    api.op(
        Op::delete(
            "/api/v1/programs/{id}",
            "Delete a program nobody is enrolled in (archive it otherwise)",
        )
        .permission("courses.write"),
        delete(remove),
    );
}

/// A program.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct ProgramOut {
    pub(crate) id: String,
    /// Unique in the academy (compared without case).
    pub(crate) code: String,
    pub(crate) title: String,
    pub(crate) summary: String,
    pub(crate) status: ContentStatus,
    /// Its courses, in the order they are taken.
    pub(crate) courses: Vec<ProgramCourse>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// A course of a program.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct ProgramCourse {
    pub(crate) id: String,
    pub(crate) code: String,
    pub(crate) title: String,
    pub(crate) status: ContentStatus,
}

const PROGRAM_COLUMNS: &str = "id, code, title, summary, status, created_at, updated_at";

fn from_row(row: &AnyRow, courses: Vec<ProgramCourse>) -> Result<ProgramOut, sqlx::Error> {
    Ok(ProgramOut {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        title: row.try_get("title")?,
        summary: row.try_get("summary")?,
        status: ContentStatus::parse(&row.try_get::<String, _>("status")?)?,
        courses,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// Courses of every program (or of one), by program id, in order.
async fn program_courses(
    tx: &mut TenantTx,
    program_id: Option<&str>,
) -> Result<BTreeMap<String, Vec<ProgramCourse>>, sqlx::Error> {
    let select = "SELECT pc.program_id, c.id, c.code, c.title, c.status FROM program_courses pc \
                  JOIN courses c ON c.id = pc.course_id WHERE pc.tenant_id = $1 AND c.tenant_id = $1";
    let rows = match program_id {
        Some(id) => {
            let sql = format!("{select} AND pc.program_id = $2 ORDER BY pc.position");
            tx.query(&sql).bind(id.to_owned()).fetch_all(tx.conn()).await?
        }
        None => {
            let sql = format!("{select} ORDER BY pc.program_id, pc.position");
            tx.query(&sql).fetch_all(tx.conn()).await?
        }
    };
    let mut out: BTreeMap<String, Vec<ProgramCourse>> = BTreeMap::new();
    for row in rows {
        out.entry(row.try_get("program_id")?).or_default().push(ProgramCourse {
            id: row.try_get("id")?,
            code: row.try_get("code")?,
            title: row.try_get("title")?,
            status: ContentStatus::parse(&row.try_get::<String, _>("status")?)?,
        });
    }
    Ok(out)
}

/// A program of the caller's tenant, or 404.
pub(crate) async fn find_program(tx: &mut TenantTx, id: &str) -> ApiResult<ProgramOut> {
    let sql = format!("SELECT {PROGRAM_COLUMNS} FROM programs WHERE tenant_id = $1 AND id = $2");
    let row = tx
        .query(&sql)
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "program" })?;
    let courses = program_courses(tx, Some(id)).await?.remove(id).unwrap_or_default();
    Ok(from_row(&row, courses)?)
}

/// Like [`find_program`], holding the program row until the transaction ends on PostgreSQL, so a concurrent
/// program enrollment cannot slip between the in-use check and the delete.
async fn find_program_for_update(tx: &mut TenantTx, id: &str) -> ApiResult<ProgramOut> {
    if tx.backend() == Backend::Postgres {
        tx.query("SELECT id FROM programs WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
            .bind(id.to_owned())
            .fetch_optional(tx.conn())
            .await?;
    }
    find_program(tx, id).await
}

fn conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(k) if k.contains("programs_code_key") => {
            ApiError::duplicate("code", "a program with this code already exists")
        }
        _ => e.into(),
    }
}

/// Each id names a course of this tenant, once.
async fn check_courses(tx: &mut TenantTx, course_ids: &[String]) -> ApiResult<Vec<String>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(course_ids.len());
    for (i, raw) in course_ids.iter().enumerate() {
        let field = format!("course_ids[{i}]");
        let id = raw.trim();
        if !seen.insert(id.to_owned()) {
            return Err(ApiError::invalid(field, "lists a course twice"));
        }
        let exists = tx
            .query("SELECT 1 FROM courses WHERE tenant_id = $1 AND id = $2")
            .bind(id.to_owned())
            .fetch_optional(tx.conn())
            .await?
            .is_some();
        if !exists {
            return Err(ApiError::invalid(field, "no such course"));
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

async fn write_courses(tx: &mut TenantTx, program_id: &str, course_ids: &[String]) -> ApiResult<()> {
    tx.query("DELETE FROM program_courses WHERE tenant_id = $1 AND program_id = $2")
        .bind(program_id.to_owned())
        .execute(tx.conn())
        .await?;
    for (i, course_id) in course_ids.iter().enumerate() {
        tx.query("INSERT INTO program_courses (tenant_id, program_id, course_id, position) VALUES ($1, $2, $3, $4)")
            .bind(program_id.to_owned())
            .bind(course_id.clone())
            .bind(i as i64 + 1)
            .execute(tx.conn())
            .await
            .map_err(|e| {
                // A concurrent request deleted the course after the check above.
                if foreign_key_violation(&e) {
                    ApiError::invalid(format!("course_ids[{i}]"), "no such course")
                } else {
                    e.into()
                }
            })?;
    }
    Ok(())
}

async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<ProgramOut>>> {
    caller.require(Permission::CoursesRead)?;
    let mut tx = caller.db().begin_read().await?;
    let sql = format!("SELECT {PROGRAM_COLUMNS} FROM programs WHERE tenant_id = $1 ORDER BY title, id");
    let rows = tx.query(&sql).fetch_all(tx.conn()).await?;
    let mut courses = if rows.is_empty() {
        BTreeMap::new()
    } else {
        program_courses(&mut tx, None).await?
    };
    tx.commit().await?;
    let programs = rows
        .iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            from_row(r, courses.remove(&id).unwrap_or_default())
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(axum::Json(programs))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<ProgramOut>> {
    caller.require(Permission::CoursesRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = find_program(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

const MAX_SUMMARY: usize = 5000;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewProgram {
    /// Letters, digits, - and _; unique in the academy.
    #[schemars(length(min = 1, max = 50), regex(pattern = crate::fields::pattern::CODE))]
    code: String,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    title: String,
    #[schemars(length(max = 5000), regex(pattern = crate::fields::pattern::LONG_TEXT))]
    summary: Option<String>,
    /// Default `draft`.
    status: Option<ContentStatus>,
    /// Its courses in the order they are taken, each once.
    #[serde(default)]
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    course_ids: Vec<String>,
}

async fn create(caller: Caller, Json(req): Json<NewProgram>) -> ApiResult<(StatusCode, axum::Json<ProgramOut>)> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let code = code("code", &req.code)?;
    let title = text("title", &req.title, 200)?;
    let summary = long_text("summary", req.summary.as_deref(), MAX_SUMMARY)?;
    let mut tx = caller.db().begin().await?;
    let course_ids = check_courses(&mut tx, &req.course_ids).await?;
    let id = new_id();
    tx.query(
        "INSERT INTO programs (id, tenant_id, code, title, summary, status, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id.clone())
    .bind(code)
    .bind(title)
    .bind(summary)
    .bind(req.status.unwrap_or(ContentStatus::Draft).as_str())
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .map_err(conflict)?;
    write_courses(&mut tx, &id, &course_ids).await?;
    let out = find_program(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("program.create", "program", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProgramPatch {
    #[schemars(length(min = 1, max = 50), regex(pattern = crate::fields::pattern::CODE))]
    code: Option<String>,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    title: Option<String>,
    /// An empty text clears it.
    #[schemars(length(max = 5000), regex(pattern = crate::fields::pattern::LONG_TEXT))]
    summary: Option<String>,
    status: Option<ContentStatus>,
    /// Replaces the courses and their order.
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    course_ids: Option<Vec<String>>,
}

async fn update(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<ProgramPatch>,
) -> ApiResult<axum::Json<ProgramOut>> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find_program_for_update(&mut tx, &id).await?;
    let code = match &req.code {
        Some(c) => code("code", c)?,
        None => before.code.clone(),
    };
    let title = match &req.title {
        Some(t) => text("title", t, 200)?,
        None => before.title.clone(),
    };
    let summary = match &req.summary {
        Some(s) => long_text("summary", Some(s), MAX_SUMMARY)?,
        None => before.summary.clone(),
    };
    let course_ids = match &req.course_ids {
        Some(ids) => Some(check_courses(&mut tx, ids).await?),
        None => None,
    };
    tx.query(
        "UPDATE programs SET code = $3, title = $4, summary = $5, status = $6, updated_at = $7 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.clone())
    .bind(code)
    .bind(title)
    .bind(summary)
    .bind(req.status.unwrap_or(before.status).as_str())
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .map_err(conflict)?;
    if let Some(course_ids) = course_ids {
        let unchanged = course_ids.iter().eq(before.courses.iter().map(|c| &c.id));
        if !unchanged {
            write_courses(&mut tx, &id, &course_ids).await?;
        }
    }
    let after = find_program(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("program.update", "program", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

fn program_in_use(enrollments: i64) -> ApiError {
    ApiError::Unprocessable {
        code: "program_in_use",
        message: format!(
            "{enrollments} learner(s) are enrolled in this program; archive it instead (status archived), which \
             keeps their history"
        ),
        field: None,
        details: Some(json!({ "program_enrollments": enrollments })),
    }
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::CoursesWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find_program_for_update(&mut tx, &id).await?;
    let enrollments: i64 = tx
        .query("SELECT COUNT(*) FROM program_enrollments WHERE tenant_id = $1 AND program_id = $2")
        .bind(id.clone())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if enrollments > 0 {
        return Err(program_in_use(enrollments));
    }
    for sql in [
        "DELETE FROM program_courses WHERE tenant_id = $1 AND program_id = $2",
        "DELETE FROM programs WHERE tenant_id = $1 AND id = $2",
    ] {
        tx.query(sql).bind(id.clone()).execute(tx.conn()).await.map_err(|e| {
            if foreign_key_violation(&e) {
                program_in_use(enrollments)
            } else {
                ApiError::from(e)
            }
        })?;
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("program.delete", "program", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
