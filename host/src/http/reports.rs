//! Reports over HTTP: the report list, runs as JSON pages, streamed CSV or an HTML page, presets (saved
//! filters) and schedules (reports mailed on a timetable). Everything runs within the caller's `reports.read`
//! reach; see docs/REPORTS.md.

use super::api::{Api, Op};
use super::common::{Json, Path, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::reports::output::{self, CSV_PAGE};
use crate::reports::presets::{self, PresetOut};
use crate::reports::schedules::{self, ScheduleOut, Timing};
use crate::reports::{self, Prepared, ReportInfo, RunError, Viewer};
use crate::scope::Permission;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const RUN_QUERY: &[(&str, &str)] = &[
    (
        "format",
        "json (default; paged), csv (every row, streamed) or html (a page with a chart)",
    ),
    ("limit", "JSON rows per page, 1–1000, default 100"),
    ("cursor", "JSON: the `next_cursor` of the previous page"),
    ("org", "Users in this organization or below it (id)"),
    ("segment", "Users this segment matches (id)"),
    ("tag", "Users carrying this tag (id or name)"),
    ("course", "This course only (id or code)"),
    ("from", "From this day (2026-01-31) or RFC 3339 time on"),
    ("to", "Up to and including this day or time"),
    ("interval", "activity: day (default) or week"),
];

pub fn routes(api: &mut Api) {
    api.tag("reports");
    api.op_out::<Vec<ReportInfo>>(
        Op::get(
            "/api/v1/reports",
            "Reports you may run: the built-in ones and those of active report plugins",
        )
        .permission("reports.read"),
        get(list),
    );
    api.op_out::<RunOut>(
        Op::get(
            "/api/v1/reports/{key}",
            "Run a report over what you may see, as JSON, CSV or HTML",
        )
        .permission("reports.read")
        .query(RUN_QUERY)
        .query_schema(
            "limit",
            serde_json::json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        get(run),
    );
    api.tag("report presets");
    api.op_out::<Vec<PresetOut>>(
        Op::get("/api/v1/report-presets", "Your saved reports").permission("reports.read"),
        get(list_presets),
    );
    api.op_io::<NewPreset, PresetOut>(
        Op::post("/api/v1/report-presets", "Save a report with its filters")
            .permission("reports.read")
            .status(201),
        post(create_preset),
    );
    api.op_out::<PresetOut>(
        Op::get("/api/v1/report-presets/{id}", "Read one of your saved reports").permission("reports.read"),
        get(read_preset),
    );
    api.op_io::<PresetPatch, PresetOut>(
        Op::patch(
            "/api/v1/report-presets/{id}",
            "Rename a saved report or change its report or filters",
        )
        .permission("reports.read"),
        patch(update_preset),
    );
    api.op(
        Op::delete("/api/v1/report-presets/{id}", "Delete a saved report").permission("reports.read"),
        delete(delete_preset),
    );
    api.op_out::<RunOut>(
        Op::get(
            "/api/v1/report-presets/{id}/run",
            "Run a saved report (filters checked again against what you may see now)",
        )
        .permission("reports.read")
        .query(&RUN_QUERY[..3])
        .query_schema(
            "limit",
            serde_json::json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        get(run_preset),
    );
    api.tag("report schedules");
    api.op_out::<Vec<ScheduleOut>>(
        Op::get("/api/v1/report-schedules", "Your report schedules").permission("reports.read"),
        get(list_schedules),
    );
    api.op_io::<NewSchedule, ScheduleOut>(
        Op::post(
            "/api/v1/report-schedules",
            "Mail a report daily, weekly or monthly (it runs with your scope)",
        )
        .permission("reports.read")
        .status(201),
        post(create_schedule),
    );
    api.op_out::<ScheduleOut>(
        Op::get("/api/v1/report-schedules/{id}", "Read one of your report schedules").permission("reports.read"),
        get(read_schedule),
    );
    api.op_io::<SchedulePatch, ScheduleOut>(
        Op::patch(
            "/api/v1/report-schedules/{id}",
            "Change a report schedule (its next run is computed afresh)",
        )
        .permission("reports.read"),
        patch(update_schedule),
    );
    api.op(
        Op::delete("/api/v1/report-schedules/{id}", "Delete a report schedule").permission("reports.read"),
        delete(delete_schedule),
    );
    api.op_out::<RunNowOut>(
        Op::post(
            "/api/v1/report-schedules/{id}/run",
            "Send a scheduled report now (its next run stays as it is)",
        )
        .permission("reports.read"),
        post(run_schedule),
    );
}

/// A page of a report run as JSON.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RunOut {
    /// The report, with its typed columns.
    report: ReportInfo,
    /// The filters as checked (ids for org, segment, tag and course).
    params: BTreeMap<String, String>,
    /// When the run started (RFC 3339).
    generated_at: String,
    /// Rows: one object per row, a field per column key (`null` when empty; dates `YYYY-MM-DD`).
    rows: Vec<Map<String, Value>>,
    /// Cursor of the next page, if there is one.
    next_cursor: Option<String>,
    /// URL of the next page, if there is one.
    next: Option<String>,
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Vec<ReportInfo>>> {
    Ok(axum::Json(reports::list(&state.reports, &Viewer::of(&caller)).await?))
}

/// How a run is answered.
enum Format {
    Json { limit: usize, cursor: Option<String> },
    Csv,
    Html,
}

impl Format {
    fn paging(&self) -> reports::Paging<'_> {
        match self {
            Format::Json { cursor, .. } => reports::Paging::Json(cursor.as_deref()),
            Format::Csv | Format::Html => reports::Paging::Whole,
        }
    }
}

/// Split a run's query into its controls (`format`, `limit`, `cursor`) and the report's filters. A parameter
/// given twice is refused rather than one of them silently winning.
fn run_query(uri: &Uri, filters_allowed: bool) -> Result<(Format, BTreeMap<String, String>), ApiError> {
    let mut controls: BTreeMap<String, String> = BTreeMap::new();
    let mut filters: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        let into = if matches!(&*k, "format" | "limit" | "cursor") {
            &mut controls
        } else if filters_allowed {
            &mut filters
        } else {
            return Err(ApiError::BadRequest {
                code: "unknown_parameter",
                message: "a saved report runs with its own filters; only format, limit and cursor are taken".into(),
                field: Some(k.into_owned()),
            });
        };
        if into.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(ApiError::BadRequest {
                code: "invalid_parameter",
                message: "is given more than once".into(),
                field: Some(k.into_owned()),
            });
        }
    }
    let format = match controls.get("format").map(String::as_str) {
        None | Some("json") => {
            let limit = match controls.get("limit") {
                None => 100,
                Some(l) => l
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or_else(|| ApiError::invalid("limit", "must be between 1 and 1000"))?,
            };
            Format::Json {
                limit,
                cursor: controls.get("cursor").cloned(),
            }
        }
        Some(f @ ("csv" | "html")) => {
            for control in ["limit", "cursor"] {
                if controls.contains_key(control) {
                    return Err(ApiError::invalid(
                        control,
                        "only JSON is paged; CSV and HTML hold the whole report",
                    ));
                }
            }
            if f == "csv" { Format::Csv } else { Format::Html }
        }
        Some(_) => return Err(ApiError::invalid("format", "must be json, csv or html")),
    };
    Ok((format, filters))
}

fn next_link(uri: &Uri, cursor: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        if k != "cursor" {
            q.append_pair(&k, &v);
        }
    }
    q.append_pair("cursor", cursor);
    format!("{}?{}", uri.path(), q.finish())
}

async fn run(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Path(key): Path<String>,
) -> Result<Response, RunError> {
    let (format, params) = run_query(&uri, true)?;
    let report = reports::prepare(&state.reports, &Viewer::of(&caller), &key, &params, "", format.paging()).await?;
    answer(report, format, &uri).await
}

/// Answer a prepared report in the format asked for.
async fn answer(report: Prepared, format: Format, uri: &Uri) -> Result<Response, RunError> {
    match format {
        Format::Json { limit, cursor } => {
            let page = report.page(cursor.as_deref(), limit).await?;
            let rows = report.json_rows(&page.rows);
            Ok(axum::Json(RunOut {
                next: page.next.as_deref().map(|c| next_link(uri, c)),
                next_cursor: page.next,
                rows,
                generated_at: rfc3339(report.now),
                params: report.filters.params.clone(),
                report: report.info,
            })
            .into_response())
        }
        Format::Html => {
            let page = output::html_page(&report).await?;
            let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
            // A page of our own making: no scripts, nothing from elsewhere.
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
                     form-action 'none'; frame-ancestors 'none'",
                ),
            );
            Ok(response)
        }
        Format::Csv => csv_response(report).await,
    }
}

/// Where the CSV stream is.
enum Next {
    Page(String),
    Done,
}

/// The whole report as CSV, streamed a page at a time, so memory stays flat however many rows there are. The
/// first page is read before answering, so a failure there is still an ordinary error response.
async fn csv_response(report: Prepared) -> Result<Response, RunError> {
    let first = report.page(None, CSV_PAGE).await?;
    let mut head = output::csv_header(&report.info.columns);
    for row in &first.rows {
        output::csv_row(&mut head, row);
    }
    let disposition = format!(
        "attachment; filename=\"{}\"",
        output::file_name(&report.info, report.now, "csv")
    );
    let state = (report, Some(head), first.next.map_or(Next::Done, Next::Page));
    let stream = futures::stream::try_unfold(state, |(report, head, next)| async move {
        if let Some(head) = head {
            return Ok(Some((bytes::Bytes::from(head), (report, None, next))));
        }
        let Next::Page(cursor) = next else {
            return Ok(None);
        };
        let page = report.page(Some(&cursor), CSV_PAGE).await.map_err(|e| {
            tracing::error!(error = %e, report = %report.info.key, "a CSV report stopped part-way");
            std::io::Error::other(e.to_string())
        })?;
        let mut chunk = String::with_capacity(page.rows.len() * 128);
        for row in &page.rows {
            output::csv_row(&mut chunk, row);
        }
        let next = page.next.map_or(Next::Done, Next::Page);
        Ok::<_, std::io::Error>(Some((bytes::Bytes::from(chunk), (report, None, next))))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// A report key and filters given in a body: errors name `report` and `params.<filter>`.
async fn check_report(
    state: &AppState,
    viewer: &Viewer,
    report: &str,
    params: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, RunError> {
    match reports::check(&state.reports, viewer, report, params, "params.").await {
        Ok((_, filters)) => Ok(filters.params),
        Err(RunError::Api(ApiError::NotFound { .. })) => Err(RunError::Api(ApiError::invalid(
            "report",
            "no such report; GET /api/v1/reports lists those you may run",
        ))),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewPreset {
    /// Unique among your presets.
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    /// A report key from `GET /api/v1/reports`.
    report: String,
    /// Filters, as the report's query parameters take them.
    #[serde(default)]
    params: BTreeMap<String, String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PresetPatch {
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    report: Option<String>,
    /// Replaces the filters (they are checked against the report).
    params: Option<BTreeMap<String, String>>,
}

async fn list_presets(caller: Caller) -> ApiResult<axum::Json<Vec<PresetOut>>> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = presets::list(&mut tx, &caller.user_id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn read_preset(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<PresetOut>> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = presets::find(&mut tx, &caller.user_id, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn create_preset(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewPreset>,
) -> Result<(StatusCode, axum::Json<PresetOut>), RunError> {
    caller.require(Permission::ReportsRead)?;
    let name = text("name", &req.name, 100)?;
    let params = check_report(&state, &Viewer::of(&caller), &req.report, &req.params).await?;
    let mut tx = caller.db().begin().await?;
    let id = presets::insert(&mut tx, &caller.user_id, &name, &req.report, &params, now_ms()).await?;
    let out = presets::find(&mut tx, &caller.user_id, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("report_preset.create", "report_preset", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn update_preset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<PresetPatch>,
) -> Result<axum::Json<PresetOut>, RunError> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let before = presets::find(&mut tx, &caller.user_id, &id).await?;
    tx.commit().await?;
    let name = match &req.name {
        Some(n) => text("name", n, 100)?,
        None => before.name.clone(),
    };
    let report = req.report.clone().unwrap_or_else(|| before.report.clone());
    let params = req.params.clone().unwrap_or_else(|| before.params.clone());
    let params = check_report(&state, &Viewer::of(&caller), &report, &params).await?;
    let mut tx = caller.db().begin().await?;
    // Found again inside the writing transaction: it may have been deleted meanwhile.
    presets::find(&mut tx, &caller.user_id, &id).await?;
    presets::update(&mut tx, &id, &name, &report, &params, now_ms()).await?;
    let after = presets::find(&mut tx, &caller.user_id, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "report_preset.update",
            "report_preset",
            &id,
            json!(before),
            json!(after),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn delete_preset(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin().await?;
    let before = presets::find(&mut tx, &caller.user_id, &id).await?;
    presets::delete(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("report_preset.delete", "report_preset", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn run_preset(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
) -> Result<Response, RunError> {
    caller.require(Permission::ReportsRead)?;
    let (format, _) = run_query(&uri, false)?;
    let mut tx = caller.db().begin_read().await?;
    let preset = presets::find(&mut tx, &caller.user_id, &id).await?;
    tx.commit().await?;
    let paging = format.paging();
    let report = reports::prepare(
        &state.reports,
        &Viewer::of(&caller),
        &preset.report,
        &preset.params,
        "params.",
        paging,
    )
    .await?;
    answer(report, format, &uri).await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewSchedule {
    /// Shown in the mail's subject.
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    /// A report key from `GET /api/v1/reports`.
    report: String,
    /// Filters, as the report's query parameters take them.
    #[serde(default)]
    params: BTreeMap<String, String>,
    /// `csv` or `html`.
    #[schemars(extend("enum" = ["csv", "html"]))]
    format: String,
    /// `daily`, `weekly` or `monthly`.
    #[schemars(extend("enum" = ["daily", "weekly", "monthly"]))]
    frequency: String,
    /// Hour of the day, 0–23 (UTC).
    #[schemars(range(min = 0, max = 23))]
    hour: i64,
    /// Weekly: day of the week, 1 (Monday) to 7 (Sunday).
    #[schemars(range(min = 1, max = 7))]
    weekday: Option<i64>,
    /// Monthly: day of the month, 1–28.
    #[schemars(range(min = 1, max = 28))]
    monthday: Option<i64>,
    /// User ids: yourself, or users you may see (`users.read`). At most 50.
    #[schemars(length(min = 1, max = 50), inner(regex(pattern = crate::fields::pattern::ID)))]
    recipients: Vec<String>,
    /// Default true.
    active: Option<bool>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SchedulePatch {
    #[schemars(length(min = 1, max = 100), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    report: Option<String>,
    params: Option<BTreeMap<String, String>>,
    #[schemars(extend("enum" = ["csv", "html"]))]
    format: Option<String>,
    #[schemars(extend("enum" = ["daily", "weekly", "monthly"]))]
    frequency: Option<String>,
    #[schemars(range(min = 0, max = 23))]
    hour: Option<i64>,
    /// `null` clears it (when changing to daily or monthly).
    #[serde(default, deserialize_with = "super::common::double_option")]
    #[schemars(with = "Option<i64>")]
    #[schemars(range(min = 1, max = 7))]
    weekday: Option<Option<i64>>,
    /// `null` clears it (when changing to daily or weekly).
    #[serde(default, deserialize_with = "super::common::double_option")]
    #[schemars(with = "Option<i64>")]
    #[schemars(range(min = 1, max = 28))]
    monthday: Option<Option<i64>>,
    #[schemars(length(min = 1, max = 50), inner(regex(pattern = crate::fields::pattern::ID)))]
    recipients: Option<Vec<String>>,
    active: Option<bool>,
}

/// What a run now did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct RunNowOut {
    /// The schedule, with the run's `last_status`.
    schedule: ScheduleOut,
}

fn check_format(format: &str) -> ApiResult<()> {
    match format {
        "csv" | "html" => Ok(()),
        _ => Err(ApiError::invalid("format", "must be csv or html")),
    }
}

async fn list_schedules(caller: Caller) -> ApiResult<axum::Json<Vec<ScheduleOut>>> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = schedules::list(&mut tx, &caller.user_id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn read_schedule(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<ScheduleOut>> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = schedules::find(&mut tx, &caller.user_id, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn create_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewSchedule>,
) -> Result<(StatusCode, axum::Json<ScheduleOut>), RunError> {
    caller.require(Permission::ReportsRead)?;
    let name = text("name", &req.name, 100)?;
    check_format(&req.format)?;
    let timing = Timing::check(&req.frequency, req.hour, req.weekday, req.monthday)?;
    let params = check_report(&state, &Viewer::of(&caller), &req.report, &req.params).await?;
    let mut tx = caller.db().begin().await?;
    let recipients = schedules::check_recipients(&mut tx, &caller.user_id, &caller.grants, &req.recipients).await?;
    let fields = schedules::Fields {
        name: &name,
        report: &req.report,
        params: &params,
        format: &req.format,
        timing,
        recipients: &recipients,
        active: req.active.unwrap_or(true),
    };
    let id = schedules::insert(&mut tx, &caller.user_id, &fields, now_ms()).await?;
    let out = schedules::find(&mut tx, &caller.user_id, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("report_schedule.create", "report_schedule", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn update_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<SchedulePatch>,
) -> Result<axum::Json<ScheduleOut>, RunError> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let before = schedules::find(&mut tx, &caller.user_id, &id).await?;
    tx.commit().await?;
    let name = match &req.name {
        Some(n) => text("name", n, 100)?,
        None => before.name.clone(),
    };
    let format = req.format.clone().unwrap_or_else(|| before.format.clone());
    check_format(&format)?;
    let frequency = req.frequency.clone().unwrap_or_else(|| before.frequency.clone());
    let timing = Timing::check(
        &frequency,
        req.hour.unwrap_or(before.hour),
        req.weekday.unwrap_or(before.weekday),
        req.monthday.unwrap_or(before.monthday),
    )?;
    let report = req.report.clone().unwrap_or_else(|| before.report.clone());
    let params = req.params.clone().unwrap_or_else(|| before.params.clone());
    let params = check_report(&state, &Viewer::of(&caller), &report, &params).await?;
    let mut tx = caller.db().begin().await?;
    schedules::find(&mut tx, &caller.user_id, &id).await?;
    let recipients = schedules::check_recipients(
        &mut tx,
        &caller.user_id,
        &caller.grants,
        req.recipients.as_ref().unwrap_or(&before.recipients),
    )
    .await?;
    let fields = schedules::Fields {
        name: &name,
        report: &report,
        params: &params,
        format: &format,
        timing,
        recipients: &recipients,
        active: req.active.unwrap_or(before.active),
    };
    schedules::update(&mut tx, &id, &fields, now_ms()).await?;
    let after = schedules::find(&mut tx, &caller.user_id, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "report_schedule.update",
            "report_schedule",
            &id,
            json!(before),
            json!(after),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn delete_schedule(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin().await?;
    let before = schedules::find(&mut tx, &caller.user_id, &id).await?;
    schedules::delete(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("report_schedule.delete", "report_schedule", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a schedule's report now, the way a due run does (rendered with the owner's scope, messages queued
/// in the transaction that records the run), leaving its next run as it is. A run that fails is recorded
/// and answered with its error.
async fn run_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<RunNowOut>, RunError> {
    caller.require(Permission::ReportsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let schedule = schedules::find(&mut tx, &caller.user_id, &id).await?;
    tx.commit().await?;
    let outcome = schedules::render(&state.reports, caller.db(), &caller.user_id, &schedule).await;
    schedules::record_run(caller.db(), &id, &schedule.name, None, &outcome, Some(&caller.actor()))
        .await?
        .ok_or(ApiError::NotFound {
            what: "report schedule",
        })?;
    outcome?;
    let mut tx = caller.db().begin_read().await?;
    let schedule = schedules::find(&mut tx, &caller.user_id, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(RunNowOut { schedule }))
}
