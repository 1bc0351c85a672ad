//! Report plugins: offer reports with typed columns and compute their rows through `directory` and
//! `records`, with the scope of the person running the report.
//!
//! The host lists [`Reports::reports`] with the academy's reports and calls [`Reports::run`] for one page of
//! rows at a time, passing the previous page's `next` back as `cursor` until it is `None`. A run fails
//! closed: on an error or fault no partial report is shown.
//!
//! ```
//! use aula_sdk::reports::{Cell, Column, Params, Report, Reports, Rows};
//!
//! struct Courses;
//!
//! impl Reports for Courses {
//!     fn reports() -> Vec<Report> {
//!         vec![Report::new("courses", "Courses")
//!             .column(Column::text("code", "Code"))
//!             .column(Column::text("title", "Title"))]
//!     }
//!
//!     fn run(key: String, params: Params, cursor: Option<String>) -> Result<Rows, String> {
//!         let rows = aula_sdk::directory::courses()
//!             .into_iter()
//!             .map(|c| vec![Cell::from(c.code), Cell::from(c.title)])
//!             .collect();
//!         Ok(Rows::complete(rows))
//!     }
//! }
//!
//! aula_sdk::register!(reports: Courses);
//! ```

use std::marker::PhantomData;

use crate::__bindings::reports::exports::aula::plugin::report_hooks as hooks;

pub use hooks::{Cell, Column, ColumnType, Report, Rows};

/// A report plugin. Register the implementing type with [`register!`](crate::register)`(reports: …)`.
pub trait Reports {
    /// The reports this plugin offers.
    fn reports() -> Vec<Report>;

    /// One page of report `key`'s rows, each row one [`Cell`] per column in order. `cursor` is `None` for the
    /// first page and the previous page's `next` after that.
    fn run(key: String, params: Params, cursor: Option<String>) -> Result<Rows, String>;
}

/// The parameters a report was run with, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value of parameter `name`, when given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of parameter `name` when given and not blank, trimmed.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every parameter as given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl From<Vec<(String, String)>> for Params {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Params(pairs)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Params(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl Report {
    /// A report with no description and no columns yet.
    pub fn new(key: impl Into<String>, title: impl Into<String>) -> Self {
        Report {
            key: key.into(),
            title: title.into(),
            description: String::new(),
            columns: Vec::new(),
        }
    }

    /// Sets the description shown with the report.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a column after the others.
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }
}

impl Column {
    /// A column of the given type.
    pub fn new(key: impl Into<String>, label: impl Into<String>, kind: ColumnType) -> Self {
        Column {
            key: key.into(),
            label: label.into(),
            kind,
        }
    }

    /// A text column.
    pub fn text(key: impl Into<String>, label: impl Into<String>) -> Self {
        Column::new(key, label, ColumnType::Text)
    }

    /// A whole-number column.
    pub fn integer(key: impl Into<String>, label: impl Into<String>) -> Self {
        Column::new(key, label, ColumnType::Integer)
    }

    /// A number column.
    pub fn number(key: impl Into<String>, label: impl Into<String>) -> Self {
        Column::new(key, label, ColumnType::Number)
    }

    /// A percentage column: numbers from 0 to 100.
    pub fn percent(key: impl Into<String>, label: impl Into<String>) -> Self {
        Column::new(key, label, ColumnType::Percent)
    }

    /// A yes/no column.
    pub fn boolean(key: impl Into<String>, label: impl Into<String>) -> Self {
        Column::new(key, label, ColumnType::Boolean)
    }

    /// A date column (`YYYY-MM-DD`).
    pub fn date(key: impl Into<String>, label: impl Into<String>) -> Self {
        Column::new(key, label, ColumnType::Date)
    }
}

impl Rows {
    /// The last page of rows.
    pub fn complete(rows: Vec<Vec<Cell>>) -> Self {
        Rows { rows, next: None }
    }

    /// A page of rows followed by more; the host calls again with `next` as the cursor.
    pub fn continued(rows: Vec<Vec<Cell>>, next: impl Into<String>) -> Self {
        Rows {
            rows,
            next: Some(next.into()),
        }
    }
}

impl From<String> for Cell {
    fn from(value: String) -> Self {
        Cell::Text(value)
    }
}

impl From<&str> for Cell {
    fn from(value: &str) -> Self {
        Cell::Text(value.to_owned())
    }
}

impl From<i64> for Cell {
    fn from(value: i64) -> Self {
        Cell::Integer(value)
    }
}

impl From<u32> for Cell {
    fn from(value: u32) -> Self {
        Cell::Integer(value.into())
    }
}

impl From<usize> for Cell {
    fn from(value: usize) -> Self {
        Cell::Integer(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Cell {
    fn from(value: f64) -> Self {
        Cell::Number(value)
    }
}

impl From<bool> for Cell {
    fn from(value: bool) -> Self {
        Cell::Boolean(value)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    /// `None` becomes [`Cell::Null`].
    fn from(value: Option<T>) -> Self {
        value.map_or(Cell::Null, Into::into)
    }
}

#[doc(hidden)]
pub struct __Export<T>(PhantomData<T>);

/// What [`register!`](crate::register) checks in native builds, where nothing is exported.
#[doc(hidden)]
pub const fn __check<T: Reports>() {}

impl<T: Reports> hooks::Guest for __Export<T> {
    fn list_reports() -> Vec<Report> {
        T::reports()
    }

    fn run_report(key: String, params: Vec<(String, String)>, cursor: Option<String>) -> Result<Rows, String> {
        T::run(key, Params(params), cursor)
    }
}
