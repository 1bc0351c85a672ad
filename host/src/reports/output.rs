//! Rendering a report: JSON rows, CSV (RFC 4180, UTF-8, formula injection neutralised) and a standalone HTML
//! page with an SVG bar chart (server-rendered, escaped, no scripts).

use super::{Cell, Column, ColumnType, Prepared, ReportInfo, Row, RunError};
use crate::error::ApiError;
use serde_json::{Map, Value};
use std::fmt::Write;

/// Rows per page when a whole report is read for CSV.
pub const CSV_PAGE: usize = 2000;
/// Most rows the HTML page shows (the CSV has them all).
pub const HTML_ROWS: usize = 1000;
/// Most bars a chart draws.
pub const CHART_BARS: usize = 30;

/// A row as a JSON object keyed by column.
pub fn json_row(columns: &[Column], row: &Row) -> Map<String, Value> {
    columns
        .iter()
        .zip(row)
        .map(|(c, cell)| (c.key.clone(), cell.to_json()))
        .collect()
}

/// Append one CSV field. Text that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return) gets a leading `'`, which spreadsheets show as text.
fn field(out: &mut String, text: &str, neutralise: bool) {
    let guard = neutralise && text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = guard || text.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    if quote {
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// The header line: the columns' labels.
pub fn csv_header(columns: &[Column]) -> String {
    let mut out = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, &c.label, true);
    }
    out.push_str("\r\n");
    out
}

/// Append one row as a CSV line. Only text is neutralised: numbers (a negative one starts with `-`) are
/// typed, and shown as they are.
pub fn csv_row(out: &mut String, row: &Row) {
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Null => {}
            Cell::Text(s) => field(out, s, true),
            Cell::Date(s) => field(out, s, false),
            Cell::Integer(n) => {
                let _ = write!(out, "{n}");
            }
            Cell::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Cell::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
    out.push_str("\r\n");
}

/// A report's file name for a download or an attachment: `completion-by-org-2026-11-25.csv`.
pub fn file_name(info: &ReportInfo, now: i64, extension: &str) -> String {
    let key: String = info
        .key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{key}-{}.{extension}", super::filters::day_of(now))
}

/// The whole report as CSV, for an attachment; refused once it grows past `cap` bytes (without holding more
/// than one page beyond it).
pub async fn csv_bytes(report: &Prepared, cap: usize) -> Result<Vec<u8>, RunError> {
    let mut out = csv_header(&report.info.columns);
    report
        .for_each_page(CSV_PAGE, |rows| {
            for row in &rows {
                csv_row(&mut out, row);
            }
            if out.len() > cap {
                return Err(too_large(cap));
            }
            Ok(true)
        })
        .await?;
    Ok(out.into_bytes())
}

/// The error of a report too large to attach.
pub fn too_large(cap: usize) -> RunError {
    RunError::Api(ApiError::rule(
        "report_too_large",
        None,
        format!(
            "the report is larger than {} MiB, the most an e-mail attachment may be; narrow it with filters",
            cap / (1024 * 1024)
        ),
    ))
}

fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape(&mut out, text);
    out
}

/// Which columns a report's chart draws: the label column and up to three value columns. Built-in reports
/// name theirs; for a plugin report, the first text column labels the first percentage column (or else the
/// first numeric one).
fn chart_columns(info: &ReportInfo) -> Option<(usize, Vec<usize>)> {
    let position = |key: &str| info.columns.iter().position(|c| c.key == key);
    if let Some(builtin) = super::builtin::find(&info.key).filter(|_| info.source == "builtin") {
        let (label, values) = builtin.chart;
        return Some((position(label)?, values.iter().filter_map(|v| position(v)).collect()));
    }
    let label = info
        .columns
        .iter()
        .position(|c| c.kind == ColumnType::Text)
        .unwrap_or(0);
    let value = info
        .columns
        .iter()
        .position(|c| c.kind == ColumnType::Percent)
        .or_else(|| {
            info.columns
                .iter()
                .position(|c| matches!(c.kind, ColumnType::Integer | ColumnType::Number))
        })?;
    Some((label, vec![value]))
}

const COLORS: [&str; 3] = ["#1c7ed6", "#37b24d", "#f59f00"];

fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Text(s) | Cell::Date(s) => s.clone(),
        Cell::Integer(n) => n.to_string(),
        Cell::Number(n) => n.to_string(),
        Cell::Boolean(b) => (if *b { "yes" } else { "no" }).to_owned(),
    }
}

/// A horizontal bar chart of the first rows: one group of bars per row, percentages on a 0–100 scale, other
/// numbers scaled to the largest one shown.
pub fn svg_chart(info: &ReportInfo, rows: &[Row]) -> Option<String> {
    let (label, values) = chart_columns(info)?;
    if values.is_empty() || rows.is_empty() {
        return None;
    }
    let rows = &rows[..rows.len().min(CHART_BARS)];
    let percent = values.iter().all(|&v| info.columns[v].kind == ColumnType::Percent);
    let max = if percent {
        100.0
    } else {
        rows.iter()
            .flat_map(|r| values.iter().filter_map(|&v| r[v].number()))
            .fold(0.0f64, f64::max)
            .max(1.0)
    };
    let (label_width, bar_width, bar, gap, legend) = (220.0, 420.0, 14.0, 10.0, 24.0);
    let group = bar * values.len() as f64 + gap;
    let height = legend + group * rows.len() as f64 + gap;
    let width = label_width + bar_width + 80.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        esc(&info.title)
    );
    for (i, &v) in values.iter().enumerate() {
        let x = label_width + i as f64 * 150.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="4" width="12" height="12" fill="{}"/><text x="{}" y="14" font-size="12">{}</text>"#,
            COLORS[i % COLORS.len()],
            x + 16.0,
            esc(&info.columns[v].label)
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let top = legend + r as f64 * group;
        let mut name = cell_text(&row[label]);
        if name.chars().count() > 32 {
            name = name.chars().take(31).collect::<String>() + "…";
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="12" text-anchor="end">{}</text>"#,
            label_width - 8.0,
            top + bar * values.len() as f64 / 2.0 + 4.0,
            esc(&name)
        );
        for (i, &v) in values.iter().enumerate() {
            let Some(n) = row[v].number() else { continue };
            let y = top + i as f64 * bar;
            let w = (n.max(0.0) / max * bar_width).min(bar_width);
            let shown = if percent { format!("{n}%") } else { cell_text(&row[v]) };
            let _ = write!(
                svg,
                r#"<rect x="{label_width}" y="{y}" width="{w:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}" font-size="11">{}</text>"#,
                bar - 2.0,
                COLORS[i % COLORS.len()],
                label_width + w + 4.0,
                y + bar - 4.0,
                esc(&shown)
            );
        }
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// The report as a standalone HTML page: title, filters, chart and a table of the first rows.
pub async fn html_page(report: &Prepared) -> Result<String, RunError> {
    let page = report.page(None, HTML_ROWS).await?;
    Ok(html(report, &page.rows, page.next.is_some()))
}

fn html(report: &Prepared, rows: &[Row], more: bool) -> String {
    let info = &report.info;
    let mut out = String::with_capacity(4096 + rows.len() * 200);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem;color:#212529}}\
         table{{border-collapse:collapse;margin-top:1rem}}th,td{{border:1px solid #dee2e6;padding:.25rem .5rem;text-align:left}}\
         td.n{{text-align:right}}th{{background:#f1f3f5}}.meta{{color:#495057}}svg.chart{{display:block;margin:1rem 0}}\
         </style></head><body><h1>{}</h1>",
        esc(&info.title),
        esc(&info.title)
    );
    if !info.description.is_empty() {
        let _ = write!(out, "<p class=\"meta\">{}</p>", esc(&info.description));
    }
    let _ = write!(
        out,
        "<p class=\"meta\">Generated {}",
        esc(&crate::db::rfc3339(report.now))
    );
    for (name, value) in report.filters.describe() {
        let _ = write!(out, " · {}: {}", esc(name), esc(&value));
    }
    out.push_str("</p>");
    if let Some(svg) = svg_chart(info, rows) {
        out.push_str(&svg);
    }
    out.push_str("<table><thead><tr>");
    for c in &info.columns {
        let _ = write!(out, "<th>{}</th>", esc(&c.label));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let class = if cell.number().is_some() { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", esc(&cell_text(cell)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    if rows.is_empty() {
        out.push_str("<p class=\"meta\">No rows.</p>");
    }
    if more {
        let _ = write!(
            out,
            "<p class=\"meta\">The first {} rows are shown; the CSV holds them all.</p>",
            rows.len()
        );
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        let mut out = String::new();
        csv_row(
            &mut out,
            &vec![
                Cell::Text("=1+1".into()),
                Cell::Text("say \"hi\", then".into()),
                Cell::Text("-x".into()),
                Cell::Integer(-3),
                Cell::Number(66.7),
                Cell::Null,
                Cell::Boolean(true),
                Cell::Date("2026-01-02".into()),
                Cell::Text("@SUM(A1)".into()),
                Cell::Text("two\nlines".into()),
            ],
        );
        assert_eq!(
            out,
            "\"'=1+1\",\"say \"\"hi\"\", then\",\"'-x\",-3,66.7,,true,2026-01-02,\"'@SUM(A1)\",\"two\nlines\"\r\n"
        );
    }

    #[test]
    fn html_escapes() {
        assert_eq!(esc("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
    }
}
