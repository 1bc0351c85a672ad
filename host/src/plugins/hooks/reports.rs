//! Reports: the report definitions a plugin offers, and one page of rows.

use super::unexpected;
use crate::db::TenantDb;
use crate::plugins::bindings::reports::exports::aula::plugin::report_hooks as wit;
use crate::plugins::host::PluginHost;
use crate::plugins::host_api::View;
use crate::plugins::runtime::{HookCall, HookError, HookOutput, Loaded};
use serde::Serialize;

/// The type of a column. (Serialized as the plugin API's JSON has always shown it: `"Text"`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ColumnType {
    /// Text.
    Text,
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// A percentage (0–100).
    Percent,
    /// Yes or no.
    Boolean,
    /// A date.
    Date,
}

/// A column of a report.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// Stable key.
    pub key: String,
    /// Heading.
    pub label: String,
    /// Type of its cells.
    pub kind: ColumnType,
}

/// A report a plugin offers.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Stable key.
    pub key: String,
    /// Title.
    pub title: String,
    /// What it shows.
    pub description: String,
    /// Its columns.
    pub columns: Vec<Column>,
}

/// One cell as the plugin gave it (the report runner checks it against its column). Serialized as the plugin
/// API's JSON has always shown it: `"Null"`, `{"Text": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Cell {
    /// Empty.
    Null,
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A number.
    Number(f64),
    /// Yes or no.
    Boolean(bool),
    /// A date (`YYYY-MM-DD`).
    Date(String),
}

/// One page of rows.
#[derive(Debug, Clone, Serialize)]
pub struct Rows {
    /// The rows, one cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// The cursor of the next page, if there is one.
    pub next: Option<String>,
    /// The page's size as the plugin answered it, in bytes.
    #[serde(skip)]
    pub size: usize,
}

impl From<wit::Report> for Report {
    fn from(r: wit::Report) -> Report {
        Report {
            key: r.key,
            title: r.title,
            description: r.description,
            columns: r
                .columns
                .into_iter()
                .map(|c| Column {
                    key: c.key,
                    label: c.label,
                    kind: match c.kind {
                        wit::ColumnType::Text => ColumnType::Text,
                        wit::ColumnType::Integer => ColumnType::Integer,
                        wit::ColumnType::Number => ColumnType::Number,
                        wit::ColumnType::Percent => ColumnType::Percent,
                        wit::ColumnType::Boolean => ColumnType::Boolean,
                        wit::ColumnType::Date => ColumnType::Date,
                    },
                })
                .collect(),
        }
    }
}

impl From<wit::Cell> for Cell {
    fn from(c: wit::Cell) -> Cell {
        match c {
            wit::Cell::Null => Cell::Null,
            wit::Cell::Text(s) => Cell::Text(s),
            wit::Cell::Integer(i) => Cell::Integer(i),
            wit::Cell::Number(n) => Cell::Number(n),
            wit::Cell::Boolean(b) => Cell::Boolean(b),
            wit::Cell::Date(d) => Cell::Date(d),
        }
    }
}

impl PluginHost {
    /// The reports one plugin offers to `view`.
    pub async fn list_reports(&self, tenant: &TenantDb, loaded: &Loaded, view: View) -> Result<Vec<Report>, HookError> {
        match self.call(tenant, loaded, view, HookCall::ListReports).await.result? {
            HookOutput::ListReports(reports) => Ok(reports.into_iter().map(Into::into).collect()),
            other => Err(unexpected("list-reports", &other)),
        }
    }

    /// One page of a plugin's report, run with exactly `view`'s reach.
    pub async fn run_report(
        &self,
        tenant: &TenantDb,
        loaded: &Loaded,
        view: View,
        key: String,
        params: Vec<(String, String)>,
        cursor: Option<String>,
    ) -> Result<Rows, HookError> {
        let call = HookCall::RunReport { key, params, cursor };
        let called = self.call(tenant, loaded, view, call).await;
        let size = called.stats.output;
        match called.result? {
            HookOutput::RunReport(rows) => Ok(Rows {
                size,
                rows: rows
                    .rows
                    .into_iter()
                    .map(|row| row.into_iter().map(Into::into).collect())
                    .collect(),
                next: rows.next,
            }),
            other => Err(unexpected("run-report", &other)),
        }
    }
}
