//! Reports: built-in reports and those of report plugins, run with the requester's scope.
//!
//! Every report has typed columns ([`Column`]) and answers rows of typed [`Cell`]s, whether the host computes
//! it ([`builtin`]) or a report plugin does ([`plugin`]). A run starts from a [`Viewer`] — the person whose
//! `reports.read` reach bounds every row, a caller of the API or the owner of a schedule — and the report's
//! filters, checked against what that person may see ([`filters`]). What comes out is rendered as JSON pages,
//! streamed CSV or an HTML page with SVG charts ([`output`]). Saved filters ([`presets`]) and reports mailed on
//! a schedule ([`schedules`]) are built on the same run.

pub mod builtin;
pub mod filters;
pub mod output;
pub mod plugin;
pub mod presets;
pub mod schedules;
pub mod snapshots;

pub use filters::{Filter, Filters};
pub use schedules::run_due_schedules;

use crate::auth::Caller;
use crate::db::{Sql, TenantDb, TenantTx};
use crate::error::ApiError;
use crate::scope::{Grants, Permission, Reach};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use snapshots::{Owner, Snapshot, Snapshots};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// What running a report needs beside the viewer: the report plugins' door, and the reports kept for their
/// later JSON pages.
#[derive(Clone)]
pub struct Runner {
    /// Report plugins.
    pub plugins: Arc<crate::plugins::host::PluginHost>,
    /// Computed reports kept for their later pages.
    pub snapshots: Arc<snapshots::Snapshots>,
}

/// How a column's cells are typed and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Text.
    Text,
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// A percentage, 0–100.
    Percent,
    /// Yes or no.
    Boolean,
    /// A day, `YYYY-MM-DD` (UTC).
    Date,
}

impl ColumnType {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Percent => "percent",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
        }
    }
}

/// One column of a report.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Column {
    /// Stable key: the field of each JSON row.
    pub key: String,
    /// Shown as the heading (CSV header, HTML table).
    pub label: String,
    /// The cells' type.
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

/// One value of a row, of its column's type (or empty).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A number (also percentages), always finite.
    Number(f64),
    /// Yes or no.
    Boolean(bool),
    /// A day, `YYYY-MM-DD`.
    Date(String),
}

impl Cell {
    /// The cell as JSON: `null`, a string, a number or a boolean; dates as `YYYY-MM-DD`.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Text(s) | Cell::Date(s) => Value::String(s.clone()),
            Cell::Integer(i) => json!(i),
            Cell::Number(n) => json!(n),
            Cell::Boolean(b) => json!(b),
        }
    }

    /// The number in a cell, for charts.
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Integer(i) => Some(*i as f64),
            Cell::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A percentage of `part` in `whole`, to one decimal; empty when `whole` is zero.
    pub fn percent(part: i64, whole: i64) -> Cell {
        if whole <= 0 {
            return Cell::Null;
        }
        Cell::Number((part as f64 * 1000.0 / whole as f64).round() / 10.0)
    }
}

/// A row: one cell per column, in column order.
pub type Row = Vec<Cell>;

/// A report as the report list shows it; built-in and plugin reports have the same shape.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReportInfo {
    /// The key to run it by: a built-in report's name (`completion-by-org`), or `<plugin>:<report>` for a
    /// report of a plugin.
    pub key: String,
    /// Title.
    pub title: String,
    /// What it shows.
    pub description: String,
    /// `builtin` or `plugin`.
    pub source: &'static str,
    /// The plugin that offers it.
    pub plugin: Option<String>,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// The filters (query parameters) it takes.
    pub filters: Vec<&'static str>,
}

/// The person a report is run for: every row is limited to what their `reports.read` reach covers.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Their academy's database.
    pub db: TenantDb,
    /// Their user id.
    pub user_id: String,
    /// Their grants, as the auth layer loads them.
    pub grants: Grants,
}

impl Viewer {
    /// The caller of a request.
    pub fn of(caller: &Caller) -> Viewer {
        Viewer {
            db: caller.db().clone(),
            user_id: caller.user_id.clone(),
            grants: caller.grants.clone(),
        }
    }

    /// A user of the academy acting without a request (the owner of a schedule), with their grants loaded
    /// exactly as for a signed-in caller. `Err` with the reason when they may not run reports now.
    pub async fn load(db: &TenantDb, user_id: &str) -> Result<Result<Viewer, String>, sqlx::Error> {
        use sqlx::Row;
        let mut tx = db.begin_read().await?;
        let status: Option<String> = tx
            .query("SELECT status FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(user_id.to_owned())
            .fetch_optional(tx.conn())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let grants = crate::auth::load_grants(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(match status.as_deref() {
            None => Err("the owner no longer exists".to_owned()),
            Some("active") => Ok(Viewer {
                db: db.clone(),
                user_id: user_id.to_owned(),
                grants,
            }),
            Some(status) => Err(format!("the owner's account is {status}")),
        })
    }

    /// What they reach with `reports.read`, or 403.
    pub fn reach(&self) -> Result<Reach, ApiError> {
        self.grants.require(Permission::ReportsRead)
    }
}

/// Why a run gave no report. Plugin failures are the plugin's, not the caller's, so they answer 502–504 and
/// name the plugin; everything else is an ordinary API error.
#[derive(Debug)]
pub enum RunError {
    /// A client or server error with the usual shape.
    Api(ApiError),
    /// A report plugin failed, ran out of time or answered rows that do not fit its columns.
    Plugin {
        /// 502 (failed, bad rows), 503 (could not run), 504 (timed out).
        status: StatusCode,
        /// `report_plugin_failed`, `report_plugin_unavailable`, `report_plugin_timeout`.
        code: &'static str,
        /// Names the plugin and what went wrong.
        message: String,
    },
}

impl RunError {
    /// What went wrong, as a schedule's `last_status` records it.
    pub fn describe(&self) -> String {
        match self {
            RunError::Api(e) => e.public_message(),
            RunError::Plugin { code, message, .. } => format!("{code}: {message}"),
        }
    }
}

impl From<ApiError> for RunError {
    fn from(e: ApiError) -> Self {
        RunError::Api(e)
    }
}

impl From<crate::fields::FieldError> for RunError {
    fn from(e: crate::fields::FieldError) -> Self {
        RunError::Api(e.into())
    }
}

impl From<sqlx::Error> for RunError {
    fn from(e: sqlx::Error) -> Self {
        RunError::Api(e.into())
    }
}

impl IntoResponse for RunError {
    fn into_response(self) -> Response {
        match self {
            RunError::Api(e) => e.into_response(),
            // The error shape every failure has.
            RunError::Plugin { status, code, message } => {
                (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response()
            }
        }
    }
}

/// Every report the viewer may run: the built-in ones, then those of each active report plugin (a plugin
/// whose list fails is left out: the list fails open).
pub async fn list(runner: &Runner, viewer: &Viewer) -> Result<Vec<ReportInfo>, ApiError> {
    viewer.reach()?;
    let mut out: Vec<ReportInfo> = builtin::ALL.iter().map(|b| b.info()).collect();
    out.extend(
        plugin::list(&runner.plugins, viewer)
            .await?
            .into_iter()
            .map(|(_, info)| info),
    );
    Ok(out)
}

/// Which report a key names.
enum Source {
    Builtin(&'static builtin::Builtin),
    Plugin(std::sync::Arc<crate::plugins::runtime::Loaded>, plugin::PluginReport),
}

/// Find a report by key (404 when the viewer is offered no such report).
async fn resolve(runner: &Runner, viewer: &Viewer, key: &str) -> Result<(ReportInfo, Source), RunError> {
    if let Some(b) = builtin::find(key) {
        return Ok((b.info(), Source::Builtin(b)));
    }
    let (loaded, report) = plugin::find(&runner.plugins, viewer, key).await?;
    Ok((report.info.clone(), Source::Plugin(loaded, report)))
}

/// Check a report's filters as the viewer gives them, without running it: for presets and schedules.
/// `field` prefixes the names of the offending parameters (`params.`).
pub async fn check(
    runner: &Runner,
    viewer: &Viewer,
    key: &str,
    params: &BTreeMap<String, String>,
    field: &str,
) -> Result<(ReportInfo, Filters), RunError> {
    let reach = viewer.reach()?;
    let (info, _) = resolve(runner, viewer, key).await?;
    let mut tx = viewer.db.begin_read().await?;
    let filters = filters::check(&mut tx, viewer, &reach, &accepted(&info), params, field).await?;
    tx.commit().await?;
    Ok((info, filters))
}

fn accepted(info: &ReportInfo) -> Vec<Filter> {
    info.filters.iter().filter_map(|f| Filter::parse(f)).collect()
}

/// A report ready to give rows: its filters checked, and, for reports computed as a whole (aggregates and
/// plugin reports), every row already there.
pub struct Prepared {
    /// The report.
    pub info: ReportInfo,
    /// The checked filters.
    pub filters: Filters,
    /// Unix milliseconds the run started at (what `overdue` is measured against).
    pub now: i64,
    rows: Rows,
    db: TenantDb,
    /// For a run read as JSON pages: where a report computed as a whole is kept for its later pages.
    keep: Option<Keep>,
}

/// Where a prepared report's rows come from.
enum Rows {
    /// Computed as a whole; pages are slices.
    All(Arc<[Row]>),
    /// Read from the database a page at a time, in key order (rows of one enrollment or user each).
    Keyset(builtin::Keyset),
}

/// How a run will be read.
#[derive(Clone, Copy)]
pub enum Paging<'a> {
    /// From the first row to the last in one go (CSV, HTML, mail).
    Whole,
    /// As JSON pages, this one after `cursor` (a previous page's `next`), or the first.
    Json(Option<&'a str>),
}

/// The snapshot of a paged run ([`snapshots`]): its owner, and its token once kept.
struct Keep {
    snapshots: Arc<Snapshots>,
    owner: Owner,
    token: OnceLock<Option<String>>,
}

/// A page of rows with the cursor of the next page.
pub struct Page {
    /// The rows.
    pub rows: Vec<Row>,
    /// The cursor of the next page, if there is one.
    pub next: Option<String>,
}

/// Check the filters and get a report ready. Aggregates are computed here, and a plugin report is run to the
/// end here (it fails closed: no row is shown unless every page arrived and fits the columns). A later JSON page
/// of a report computed as a whole reads the snapshot its cursor names, when this process still has it.
pub async fn prepare(
    runner: &Runner,
    viewer: &Viewer,
    key: &str,
    params: &BTreeMap<String, String>,
    field: &str,
    paging: Paging<'_>,
) -> Result<Prepared, RunError> {
    let reach = viewer.reach()?;
    let (info, source) = resolve(runner, viewer, key).await?;
    let mut now = crate::db::now_ms();
    let mut tx = viewer.db.begin_read().await?;
    let filters = filters::check(&mut tx, viewer, &reach, &accepted(&info), params, field).await?;
    let keep = match paging {
        Paging::Whole => None,
        Paging::Json(_) => Some(Keep {
            snapshots: runner.snapshots.clone(),
            owner: Owner {
                tenant_id: viewer.db.tenant_id().to_owned(),
                user_id: viewer.user_id.clone(),
                report: info.key.clone(),
                params: filters.params.clone(),
                reach: reach.clone(),
            },
            token: OnceLock::new(),
        }),
    };
    // A later page: the snapshot its cursor names, if this process has it and it is this same run's.
    let kept = match (paging, &keep) {
        (Paging::Json(Some(cursor)), Some(keep)) => {
            let token = offset_cursor(cursor).and_then(|(_, token)| token);
            let snapshot = token.and_then(|t| keep.snapshots.find(t, &keep.owner));
            if let (Some(token), Some(_)) = (token, &snapshot) {
                keep.token.get_or_init(|| Some(token.to_owned()));
            }
            snapshot
        }
        _ => None,
    };
    let rows = match (kept, &source) {
        (Some(snapshot), _) => {
            tx.commit().await?;
            now = snapshot.now;
            Rows::All(snapshot.rows.clone())
        }
        (None, Source::Builtin(b)) => {
            for_aggregates(&mut tx).await?;
            let rows = b.prepare(&viewer.db, &mut tx, &reach, &filters, now).await?;
            tx.commit().await?;
            rows
        }
        (None, Source::Plugin(loaded, report)) => {
            // No connection is held while the plugin runs (its own host calls need some).
            tx.commit().await?;
            Rows::All(
                plugin::run(&runner.plugins, viewer, loaded, report, &filters)
                    .await?
                    .into(),
            )
        }
    };
    Ok(Prepared {
        info,
        filters,
        now,
        rows,
        db: viewer.db.clone(),
        keep,
    })
}

/// Settle the transaction for aggregates over a whole academy. On PostgreSQL: no JIT compilation, which the
/// planner picks for statements this large and which costs more than it saves (a second for completion by
/// organization over a million enrollments); memory enough to group a hundred thousand learners in a hash
/// table instead of sorting on disk; and no parallel workers, with which the planner had every worker build
/// the same per-learner hash table, doubling the work on a two-core machine. The settings end with the
/// transaction.
async fn for_aggregates(tx: &mut TenantTx) -> Result<(), sqlx::Error> {
    if tx.backend() == crate::db::Backend::Postgres {
        sqlx::query(
            "SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true), \
             set_config('max_parallel_workers_per_gather', '0', true)",
        )
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// Cursors say which kind of report they belong to, so one of another report is refused, not misread.
const OFFSET_CURSOR: &str = "o:";
const KEY_CURSOR: &str = "k:";

fn bad_cursor() -> ApiError {
    ApiError::invalid(
        "cursor",
        "is not a cursor of this report; use the `next` of the previous page",
    )
}

/// The offset of a cursor into a report computed as a whole, and the token of its snapshot if it names one
/// (`o:<offset>` or `o:<offset>.<token>`).
fn offset_cursor(cursor: &str) -> Option<(usize, Option<&str>)> {
    let rest = cursor.strip_prefix(OFFSET_CURSOR)?;
    let (offset, token) = match rest.split_once('.') {
        Some((_, token)) if token.is_empty() || token.len() > 64 => return None,
        Some((offset, token)) => (offset, Some(token)),
        None => (rest, None),
    };
    Some((offset.parse().ok()?, token))
}

impl Prepared {
    /// The token of this run's snapshot, kept now if it is not yet: only for a run read as JSON pages.
    fn snapshot_token(&self, rows: &Arc<[Row]>) -> Option<&str> {
        let keep = self.keep.as_ref()?;
        keep.token
            .get_or_init(|| {
                keep.snapshots.keep(Snapshot {
                    owner: keep.owner.clone(),
                    now: self.now,
                    rows: rows.clone(),
                })
            })
            .as_deref()
    }

    /// One page of at most `limit` rows after `cursor` (a previous page's `next`).
    pub async fn page(&self, cursor: Option<&str>, limit: usize) -> Result<Page, ApiError> {
        match &self.rows {
            Rows::All(rows) => {
                let start = match cursor {
                    None => 0,
                    Some(c) => offset_cursor(c)
                        .map(|(offset, _)| offset)
                        .filter(|n| *n <= rows.len())
                        .ok_or_else(bad_cursor)?,
                };
                let end = start.saturating_add(limit).min(rows.len());
                let next = (end < rows.len()).then(|| match self.snapshot_token(rows) {
                    Some(token) => format!("{OFFSET_CURSOR}{end}.{token}"),
                    None => format!("{OFFSET_CURSOR}{end}"),
                });
                Ok(Page {
                    rows: rows[start..end].to_vec(),
                    next,
                })
            }
            Rows::Keyset(keyset) => {
                let after = match cursor {
                    None => None,
                    Some(c) => Some(
                        c.strip_prefix(KEY_CURSOR)
                            .filter(|k| !k.is_empty() && k.len() <= 100)
                            .ok_or_else(bad_cursor)?,
                    ),
                };
                let mut tx = self.db.begin_read().await?;
                let (rows, last) = keyset.page(&mut tx, after, limit).await?;
                tx.commit().await?;
                Ok(Page {
                    next: last.map(|k| format!("{KEY_CURSOR}{k}")),
                    rows,
                })
            }
        }
    }

    /// Every row, page by page, for renderers that stop on their own (a size cap, a row cap); `each` gets a
    /// page and answers whether to go on.
    pub async fn for_each_page(
        &self,
        page_size: usize,
        mut each: impl FnMut(Vec<Row>) -> Result<bool, RunError>,
    ) -> Result<(), RunError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = self.page(cursor.as_deref(), page_size).await?;
            if !each(page.rows)? {
                return Ok(());
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// The rows as JSON objects keyed by column.
    pub fn json_rows(&self, rows: &[Row]) -> Vec<Map<String, Value>> {
        rows.iter()
            .map(|row| output::json_row(&self.info.columns, row))
            .collect()
    }
}

/// Read rows that the database builds as one JSON array (`Backend::json_page`) of objects with `fields`, from
/// the rows of `select` (whose columns are aliased as the fields), ordered by `order` (over the alias `u`).
/// With sqlx's `Any` driver, decoding thousands of rows value by value costs more than the query itself.
pub(crate) async fn json_objects(
    tx: &mut TenantTx,
    select: &Sql,
    fields: &[&str],
    order: &str,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    use sqlx::Row;
    let exprs: Vec<(String, String)> = fields.iter().map(|f| ((*f).to_owned(), format!("u.{f}"))).collect();
    let spec: Vec<(&str, &str, bool)> = exprs.iter().map(|(k, e)| (k.as_str(), e.as_str(), false)).collect();
    let page = select.wrap(&format!("{} FROM (", tx.backend().json_page(&spec, order)), ") u");
    let text: Option<String> = tx.fetch_optional_sql(&page).await?.map(|r| r.try_get(0)).transpose()?;
    let text = text.unwrap_or_else(|| "[]".to_owned());
    serde_json::from_str(&text)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("report rows as JSON from the database: {e}")))
}
