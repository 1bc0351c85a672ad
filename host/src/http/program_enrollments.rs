//! Enrolling people in a program, which enrolls them in its courses.

use super::api::{Api, Op};
use super::common::Json;
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::learning::Source;
use crate::learning::enroll::{self, NewEnrollment};
use crate::learning::records::*;
use crate::scope::Permission;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

pub fn routes(api: &mut Api) {
    api.tag("enrollments");
    api.op_io::<ProgramEnrollmentIn, ProgramEnrollmentOut>(
        Op::post(
            "/api/v1/program-enrollments",
            "Enroll a user in a program: every course of it, completed as one",
        )
        .permission("enrollments.write")
        .status(201),
        post(enroll_program),
    );
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProgramEnrollmentIn {
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    user_id: String,
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    program_id: String,
    /// RFC 3339: the program and each of its courses are due then; the courses' defaults when left out.
    #[schemars(regex(pattern = crate::fields::pattern::TIME))]
    due_at: Option<String>,
}

/// A program enrollment and what it did to the courses.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProgramEnrollmentOut {
    id: String,
    user_id: String,
    program_id: String,
    status: String,
    /// The course enrollments, in program order.
    courses: Vec<EnrollmentOut>,
}

async fn enroll_program(
    caller: Caller,
    Json(req): Json<ProgramEnrollmentIn>,
) -> ApiResult<(StatusCode, axum::Json<ProgramEnrollmentOut>)> {
    let reach = caller.require(Permission::EnrollmentsWrite)?;
    let due_at = crate::fields::opt_time_field("due_at", req.due_at.as_deref())?;
    let mut tx = caller.db().begin().await?;
    user_in_reach(&mut tx, &reach, &req.user_id, "user_id").await?;
    let status: String = tx
        .query("SELECT status FROM programs WHERE tenant_id = $1 AND id = $2")
        .bind(req.program_id.clone())
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| ApiError::invalid("program_id", "no such program"))?
        .try_get(0)?;
    if status == "archived" || (status != "published" && !reach.all) {
        return Err(ApiError::rule(
            "program_not_available",
            Some("program_id"),
            "the program is not published",
        ));
    }
    let courses: Vec<String> = tx
        .query("SELECT course_id FROM program_courses WHERE tenant_id = $1 AND program_id = $2 ORDER BY position")
        .bind(req.program_id.clone())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    for course in &courses {
        course_for_reach(&mut tx, &reach, course, "program_id").await?;
    }
    let now = now_ms();
    let id = crate::db::new_id();
    tx.query(
        "INSERT INTO program_enrollments (id, tenant_id, user_id, program_id, status, due_at, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, 'enrolled', $5, $6, $6) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(req.user_id.clone())
    .bind(req.program_id.clone())
    .bind(due_at)
    .bind(now)
    .execute(tx.conn())
    .await?;
    let row = tx
        .query("SELECT id, status FROM program_enrollments WHERE tenant_id = $1 AND user_id = $2 AND program_id = $3")
        .bind(req.user_id.clone())
        .bind(req.program_id.clone())
        .fetch_one(tx.conn())
        .await?;
    let program_enrollment: String = row.try_get(0)?;
    let items: Vec<NewEnrollment> = courses
        .iter()
        .map(|c| NewEnrollment {
            user_id: req.user_id.clone(),
            course_id: c.clone(),
            due_at,
        })
        .collect();
    let results = enroll::enroll_many(
        &mut tx,
        &items,
        &Source::Program {
            id: req.program_id.clone(),
        },
        "program",
    )
    .await?;
    let mut course_out = Vec::with_capacity(results.len());
    for r in &results {
        course_out.push(load(&mut tx, r.id()).await?);
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::created(
            "program_enrollment.create",
            "program_enrollment",
            &program_enrollment,
            json!({ "user_id": req.user_id, "program_id": req.program_id }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ProgramEnrollmentOut {
            id: program_enrollment,
            user_id: req.user_id,
            program_id: req.program_id,
            status: row.try_get(1)?,
            courses: course_out,
        }),
    ))
}
