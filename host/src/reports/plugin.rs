//! Reports of report plugins: listed with the built-in ones as `<plugin>:<report>`, run with the viewer's
//! view (the plugin's `directory` and `records` calls see only what the viewer may see).
//!
//! Listing fails open: a plugin whose `list-reports` faults, or whose definitions are malformed, is left out.
//! Running fails closed: the host pages through the plugin's `next` cursors up to a cap, and checks every row
//! (one cell per column, each of its column's type) before anything is shown; any fault, error, timeout or
//! misfit row fails the whole run with an error naming the plugin.

use super::filters::Filters;
use super::{Cell, Column, ColumnType, ReportInfo, Row, RunError, Viewer};
use crate::error::ApiError;
use crate::plugins::hooks::reports as hooks;
use crate::plugins::host::PluginHost;
use crate::plugins::host_api::View;
use crate::plugins::manifest::Kind;
use crate::plugins::runtime::{FaultKind, HookError, Loaded};
use crate::scope::Permission;
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most pages one run asks a plugin for.
pub const MAX_PAGES: usize = 100;
/// Most rows one run keeps.
pub const MAX_ROWS: usize = 100_000;
/// Most output (the encoded pages) one run takes in all, in bytes.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;
/// Longest a whole run may take (each call also has the plugin time limit of its kind).
pub const MAX_RUN: Duration = Duration::from_secs(120);

/// The filters every plugin report takes; the plugin receives them as `params` (see
/// [`Filters::plugin_params`]).
pub const FILTERS: &[super::Filter] = &[
    super::Filter::Org,
    super::Filter::Segment,
    super::Filter::Tag,
    super::Filter::Course,
    super::Filter::From,
    super::Filter::To,
];

/// A plugin's report, with the key the plugin knows it by.
#[derive(Debug, Clone)]
pub struct PluginReport {
    /// As listed (`key` is `<plugin>:<report>`).
    pub info: ReportInfo,
    /// The plugin's own key.
    pub key: String,
}

/// Exactly the requester's reach: a plugin report never holds a row outside it.
fn view(viewer: &Viewer) -> View {
    View::Reach(viewer.grants.reach(Permission::ReportsRead))
}

fn plugin_key(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A plugin's report definition as the host lists it, or why it cannot be.
fn definition(plugin: &str, report: &hooks::Report) -> Result<PluginReport, String> {
    if !plugin_key(&report.key) {
        return Err(format!(
            "report key {:?} must be 1–64 letters, digits, '_', '-' or '.'",
            report.key
        ));
    }
    let title = report.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(format!("report {}: the title must have 1–200 characters", report.key));
    }
    if report.description.chars().count() > 2000 {
        return Err(format!(
            "report {}: the description is over 2000 characters",
            report.key
        ));
    }
    if report.columns.is_empty() || report.columns.len() > 100 {
        return Err(format!("report {}: it must have 1–100 columns", report.key));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(report.columns.len());
    for c in &report.columns {
        if !plugin_key(&c.key) {
            return Err(format!(
                "report {}: column key {:?} must be 1–64 letters, digits, '_', '-' or '.'",
                report.key, c.key
            ));
        }
        if columns.iter().any(|o| o.key == c.key) {
            return Err(format!("report {}: column {} appears twice", report.key, c.key));
        }
        let label = c.label.trim();
        columns.push(Column {
            key: c.key.clone(),
            label: if label.is_empty() {
                c.key.clone()
            } else {
                label.chars().take(200).collect()
            },
            kind: match c.kind {
                hooks::ColumnType::Text => ColumnType::Text,
                hooks::ColumnType::Integer => ColumnType::Integer,
                hooks::ColumnType::Number => ColumnType::Number,
                hooks::ColumnType::Percent => ColumnType::Percent,
                hooks::ColumnType::Boolean => ColumnType::Boolean,
                hooks::ColumnType::Date => ColumnType::Date,
            },
        });
    }
    Ok(PluginReport {
        info: ReportInfo {
            key: format!("{plugin}:{}", report.key),
            title: title.to_owned(),
            description: report.description.clone(),
            source: "plugin",
            plugin: Some(plugin.to_owned()),
            columns,
            filters: FILTERS.iter().map(|f| f.name()).collect(),
        },
        key: report.key.clone(),
    })
}

/// The error of a failed call, naming the plugin and what it was doing.
fn failed(loaded: &Loaded, doing: &str, error: HookError, timeout_ms: u32) -> RunError {
    let plugin = &loaded.name;
    match error {
        HookError::Fault {
            kind: FaultKind::Timeout,
            ..
        } => RunError::Plugin {
            status: StatusCode::GATEWAY_TIMEOUT,
            code: "report_plugin_timeout",
            message: format!(
                "the report plugin {plugin} did not finish {doing} within its time limit of {timeout_ms} ms"
            ),
        },
        HookError::Fault { kind, message, .. } => RunError::Plugin {
            status: StatusCode::BAD_GATEWAY,
            code: "report_plugin_failed",
            message: format!(
                "the report plugin {plugin} failed {doing} ({}): {message}",
                kind.as_str()
            ),
        },
        HookError::Plugin(message) => RunError::Plugin {
            status: StatusCode::BAD_GATEWAY,
            code: "report_plugin_failed",
            message: format!("the report plugin {plugin} answered {doing} with an error: {message}"),
        },
        HookError::Busy(busy) => RunError::Api(busy.into()),
        HookError::Unavailable(message) => RunError::Plugin {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "report_plugin_unavailable",
            message: format!("the report plugin {plugin} could not run {doing}: {message}"),
        },
    }
}

fn misfit(loaded: &Loaded, report: &PluginReport, message: String) -> RunError {
    RunError::Plugin {
        status: StatusCode::BAD_GATEWAY,
        code: "report_plugin_failed",
        message: format!(
            "the report plugin {} answered rows of {} that the host refuses: {message}",
            loaded.name, report.key
        ),
    }
}

/// The definitions one plugin offers the viewer.
async fn offered(host: &PluginHost, viewer: &Viewer, loaded: &Loaded) -> Result<Vec<PluginReport>, HookError> {
    let reports = host.list_reports(&viewer.db, loaded, view(viewer)).await?;
    Ok(reports
        .iter()
        .filter_map(|r| match definition(&loaded.name, r) {
            Ok(d) => Some(d),
            Err(problem) => {
                tracing::warn!(plugin = %loaded.name, %problem, "a plugin report is left out of the list");
                None
            }
        })
        .collect())
}

/// The reports of every active report plugin; a plugin whose list fails is left out (and its fault recorded).
pub async fn list(host: &PluginHost, viewer: &Viewer) -> Result<Vec<(Arc<Loaded>, ReportInfo)>, ApiError> {
    let mut out = Vec::new();
    for loaded in host.active(&viewer.db, Kind::Reports).await? {
        match offered(host, viewer, &loaded).await {
            Ok(reports) => out.extend(reports.into_iter().map(|r| (loaded.clone(), r.info))),
            Err(e) => tracing::warn!(plugin = %loaded.name, error = %e, "a report plugin's reports are left out"),
        }
    }
    Ok(out)
}

/// The plugin report named `<plugin>:<report>`; 404 when no active plugin offers it.
pub async fn find(host: &PluginHost, viewer: &Viewer, key: &str) -> Result<(Arc<Loaded>, PluginReport), RunError> {
    let not_found = || RunError::Api(ApiError::NotFound { what: "report" });
    let (plugin, report_key) = key.split_once(':').ok_or_else(not_found)?;
    let loaded = host
        .active(&viewer.db, Kind::Reports)
        .await?
        .into_iter()
        .find(|l| l.name == plugin)
        .ok_or_else(not_found)?;
    let timeout = host.runtime().settings().limits.reports.timeout_ms;
    let report = offered(host, viewer, &loaded)
        .await
        .map_err(|e| failed(&loaded, "listing its reports", e, timeout))?
        .into_iter()
        .find(|r| r.key == report_key)
        .ok_or_else(not_found)?;
    Ok((loaded, report))
}

/// Run a plugin report to its last page, checking every row; no row comes back unless all of them do.
pub async fn run(
    host: &PluginHost,
    viewer: &Viewer,
    loaded: &Loaded,
    report: &PluginReport,
    filters: &Filters,
) -> Result<Vec<Row>, RunError> {
    let timeout = host.runtime().settings().limits.reports.timeout_ms;
    let params = filters.plugin_params();
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut bytes = 0usize;
    let mut cursor: Option<String> = None;
    for page in 1..=MAX_PAGES {
        if started.elapsed() > MAX_RUN {
            return Err(RunError::Plugin {
                status: StatusCode::GATEWAY_TIMEOUT,
                code: "report_plugin_timeout",
                message: format!(
                    "the report plugin {} took longer than {} s in all for {}",
                    loaded.name,
                    MAX_RUN.as_secs(),
                    report.key
                ),
            });
        }
        let doing = format!("page {page} of {}", report.key);
        let answer = host
            .run_report(
                &viewer.db,
                loaded,
                view(viewer),
                report.key.clone(),
                params.clone(),
                cursor.clone(),
            )
            .await
            .map_err(|e| failed(loaded, &doing, e, timeout))?;
        bytes += answer.size;
        for (i, cells) in answer.rows.into_iter().enumerate() {
            let at = rows.len() + 1;
            if at > MAX_ROWS {
                return Err(misfit(loaded, report, format!("more than {MAX_ROWS} rows")));
            }
            let row = check_row(&report.info.columns, cells)
                .map_err(|m| misfit(loaded, report, format!("page {page}, row {}: {m}", i + 1)))?;
            rows.push(row);
        }
        if bytes > MAX_BYTES {
            return Err(misfit(
                loaded,
                report,
                format!("more than {} MiB of rows", MAX_BYTES / (1024 * 1024)),
            ));
        }
        match answer.next {
            None => return Ok(rows),
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(misfit(
                    loaded,
                    report,
                    format!("page {page} gave the same `next` cursor it was called with"),
                ));
            }
            Some(next) => cursor = Some(next),
        }
    }
    Err(misfit(
        loaded,
        report,
        format!("it still had a next page after {MAX_PAGES} pages"),
    ))
}

/// One row checked against the columns: one cell per column, each of the column's type or empty. Whole
/// numbers are accepted where numbers or percentages go; numbers must be finite, percentages 0–100, dates
/// `YYYY-MM-DD`.
fn check_row(columns: &[Column], cells: Vec<hooks::Cell>) -> Result<Row, String> {
    if cells.len() != columns.len() {
        return Err(format!("{} cells for {} columns", cells.len(), columns.len()));
    }
    let mut row = Vec::with_capacity(cells.len());
    for (column, cell) in columns.iter().zip(cells) {
        let wrong = |got: &str| {
            format!(
                "column {} is of type {} but the cell is {got}",
                column.key,
                column.kind.as_str()
            )
        };
        let cell = match (column.kind, cell) {
            (_, hooks::Cell::Null) => Cell::Null,
            (ColumnType::Text, hooks::Cell::Text(s)) => Cell::Text(s),
            (ColumnType::Integer, hooks::Cell::Integer(i)) => Cell::Integer(i),
            (ColumnType::Boolean, hooks::Cell::Boolean(b)) => Cell::Boolean(b),
            (ColumnType::Number | ColumnType::Percent, hooks::Cell::Integer(i)) => number(column, i as f64)?,
            (ColumnType::Number | ColumnType::Percent, hooks::Cell::Number(n)) => number(column, n)?,
            (ColumnType::Date, hooks::Cell::Date(d)) => {
                if super::filters::moment(&d, false).is_none() || d.len() != 10 {
                    return Err(format!(
                        "column {} holds {d:?}, which is not a day (YYYY-MM-DD)",
                        column.key
                    ));
                }
                Cell::Date(d)
            }
            (_, other) => {
                return Err(wrong(match other {
                    hooks::Cell::Null => "empty",
                    hooks::Cell::Text(_) => "text",
                    hooks::Cell::Integer(_) => "an integer",
                    hooks::Cell::Number(_) => "a number",
                    hooks::Cell::Boolean(_) => "a boolean",
                    hooks::Cell::Date(_) => "a date",
                }));
            }
        };
        row.push(cell);
    }
    Ok(row)
}

fn number(column: &Column, n: f64) -> Result<Cell, String> {
    if !n.is_finite() {
        return Err(format!("column {} holds a number that is not finite", column.key));
    }
    if column.kind == ColumnType::Percent && !(0.0..=100.0).contains(&n) {
        return Err(format!("column {} is a percentage but holds {n}", column.key));
    }
    Ok(Cell::Number(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<Column> {
        [
            ("name", ColumnType::Text),
            ("count", ColumnType::Integer),
            ("rate", ColumnType::Percent),
            ("on", ColumnType::Date),
        ]
        .into_iter()
        .map(|(k, t)| Column {
            key: k.into(),
            label: k.into(),
            kind: t,
        })
        .collect()
    }

    #[test]
    fn rows_must_fit_their_columns() {
        use hooks::Cell as C;
        let ok = check_row(
            &columns(),
            vec![
                C::Text("a".into()),
                C::Integer(3),
                C::Integer(50),
                C::Date("2026-02-28".into()),
            ],
        )
        .unwrap();
        assert_eq!(ok[2], Cell::Number(50.0));
        let null = check_row(&columns(), vec![C::Null, C::Null, C::Null, C::Null]).unwrap();
        assert!(null.iter().all(|c| *c == Cell::Null));
        let short = check_row(&columns(), vec![C::Null]).unwrap_err();
        assert!(short.contains("1 cells for 4 columns"), "{short}");
        let text_in_integer = check_row(&columns(), vec![C::Null, C::Text("3".into()), C::Null, C::Null]).unwrap_err();
        assert!(
            text_in_integer.contains("column count is of type integer but the cell is text"),
            "{text_in_integer}"
        );
        let over = check_row(&columns(), vec![C::Null, C::Null, C::Number(100.5), C::Null]).unwrap_err();
        assert!(over.contains("percentage"), "{over}");
        let nan = check_row(&columns(), vec![C::Null, C::Null, C::Number(f64::NAN), C::Null]).unwrap_err();
        assert!(nan.contains("not finite"), "{nan}");
        let day = check_row(&columns(), vec![C::Null, C::Null, C::Null, C::Date("2026-2-3".into())]).unwrap_err();
        assert!(day.contains("not a day"), "{day}");
    }
}
