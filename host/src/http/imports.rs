//! Bulk imports: people from a CSV file (Canvas SIS `users.csv` style), as a job the client polls; a dry run
//! reports what the import would do; the rows it left out come back as CSV. The work is `identity::import`'s.

use super::api::{Api, Op};
use super::common::{Path, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::identity::import::{self, FileError, Importer, Options, RowError};
use crate::learning::jobs::{self, JobOut, job_out, read_job};
use crate::scope::Permission;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

/// The largest file an import takes.
pub const MAX_CSV_BYTES: usize = 32 * 1024 * 1024;

pub fn routes(api: &mut Api) {
    api.tag("imports");
    api.op_out::<JobOut>(
        Op::post(
            "/api/v1/imports/users",
            "Import people from CSV as a job (user_id, email or login_id, full_name or first_name and last_name, \
             status, locale, orgs, profile.<key>)",
        )
        .permission("users.write")
        .request_body_type("text/csv")
        .query(&[
            ("dry_run", "`true`: report what the import would do and write nothing"),
            ("data_set", "which data set the file is (default `users`); diff mode compares with its last import"),
            ("diff", "`true`: suspend the people the last import of this data set listed and this file does not"),
            ("max_change_percent", "refuse an import that would change or suspend more than this share of the academy's people, 1–100 (default 20)"),
        ])
        .query_schema("dry_run", json!({"type": "boolean"}))
        .query_schema("diff", json!({"type": "boolean"}))
        .query_schema("data_set", json!({"type": "string", "minLength": 1, "maxLength": 100, "pattern": crate::fields::pattern::KEY}))
        .query_schema("max_change_percent", json!({"type": "integer", "minimum": 1, "maximum": 100}))
        .status(202),
        // Files are far larger than JSON bodies; this route alone takes up to the file cap.
        post(import_users).layer(DefaultBodyLimit::max(MAX_CSV_BYTES)),
    );
    api.op(
        Op::get(
            "/api/v1/imports/{id}/errors",
            "The rows an import left out, as CSV (row, column, reason)",
        )
        .permission("users.write")
        .response_body_type("text/csv"),
        get(errors),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportParams {
    dry_run: Option<bool>,
    data_set: Option<String>,
    diff: Option<bool>,
    max_change_percent: Option<u32>,
}

async fn import_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ImportParams>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, axum::Json<JobOut>)> {
    caller.require_tenant_wide(Permission::UsersWrite)?;
    let body = super::common::upload(body)?;
    if body.is_empty() {
        return Err(ApiError::invalid("body", "send the CSV file as the request body"));
    }
    if let Err(FileError::Refused(message)) = import::check_header(&body) {
        return Err(ApiError::invalid("body", message));
    }
    let data_set = p.data_set.unwrap_or_else(|| "users".into());
    if data_set.is_empty()
        || data_set.len() > 100
        || !data_set.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(ApiError::invalid("data_set", "1–100 letters, digits, _ - ."));
    }
    let max_change_percent = p.max_change_percent.unwrap_or(20);
    if !(1..=100).contains(&max_change_percent) {
        return Err(ApiError::invalid("max_change_percent", "must be between 1 and 100"));
    }
    let options = Options {
        dry_run: p.dry_run.unwrap_or(false),
        data_set,
        diff: p.diff.unwrap_or(false),
        max_change_percent,
    };
    let params = json!({"dry_run": options.dry_run, "data_set": options.data_set, "diff": options.diff,
                        "max_change_percent": options.max_change_percent, "bytes": body.len()});
    let (db, plugins, grants, actor, admin) = (
        caller.db().clone(),
        state.plugins.clone(),
        caller.grants.clone(),
        caller.actor(),
        caller.user_id.clone(),
    );
    let id = jobs::start_with_id(
        caller.db(),
        "import_users",
        params,
        Some(caller.user_id.clone()),
        |import_id| async move {
            let importer = Importer {
                db: &db,
                plugins: &plugins,
                grants: &grants,
                actor: &actor,
                admin_id: &admin,
                import_id: &import_id,
            };
            let report = import::run(&importer, &options, &body).await.map_err(|e| match e {
                FileError::Refused(message) => ApiError::BadRequest {
                    code: "import_refused",
                    message,
                    field: None,
                },
                FileError::Db(e) => e.into(),
            })?;
            if !options.dry_run {
                let mut tx = db.begin().await?;
                record(
                    &mut tx,
                    &actor,
                    Change::created("import.users", "import", &import_id, import::summary(&report)),
                )
                .await?;
                tx.commit().await?;
            }
            Ok(serde_json::to_value(&report).unwrap_or_default())
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(read_job(caller.db(), &id).await?)))
}

async fn errors(caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    caller.require_tenant_wide(Permission::UsersWrite)?;
    let mut tx = caller.db().begin_read().await?;
    let (job, _) = job_out(&mut tx, &id).await?;
    tx.commit().await?;
    let found: Vec<RowError> = job
        .result_value()
        .filter(|_| job.kind() == "import_users")
        .and_then(|r| r.get("errors").cloned())
        .and_then(|e| serde_json::from_value(e).ok())
        .ok_or(ApiError::NotFound { what: "import report" })?;
    let mut response = import::errors_csv(&found).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"import-errors.csv\""),
    );
    Ok(response)
}
