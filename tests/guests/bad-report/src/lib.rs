//! A report plugin whose reports behave well or badly on purpose, to test how the host runs plugin reports:
//! paging through cursors, checking every cell against its column, failing closed, and time limits.
//!
//! Every report has the columns `label` (text), `count` (integer), `share` (percent), `ratio` (number),
//! `flag` (boolean) and `day` (date):
//!
//! | report | what `run` does |
//! |---|---|
//! | `paged` | three pages of two rows each (`next` = `page-2`, `page-3`), every cell typed right; the labels hold a comma, quotes and a formula; the parameters it was given come back as the labels of one more row on the last page |
//! | `wrong-type` | one good page with `next`, then a row whose `count` is text |
//! | `short-row` | a row of two cells |
//! | `bad-percent` | a row whose `share` is 150 |
//! | `error` | answers with the error `deliberate failure` |
//! | `slow` | loops for ever |
//! | `endless` | always answers one row and a `next` cursor it never repeats |
//! | `stuck` | answers `next` = `again` whatever the cursor |
//!
//! `list-reports` also offers `bad key!` and `twice` (a column key twice); the host leaves both out of its
//! report list.

use std::hint::black_box;

use aula_sdk::reports::{Cell, Column, Params, Report, Reports, Rows};

const KEYS: [&str; 8] = [
    "paged",
    "wrong-type",
    "short-row",
    "bad-percent",
    "error",
    "slow",
    "endless",
    "stuck",
];

fn report(key: &str) -> Report {
    Report::new(key, format!("Bad report: {key}"))
        .description("A test guest's report")
        .column(Column::text("label", "Label"))
        .column(Column::integer("count", "Count"))
        .column(Column::percent("share", "Share"))
        .column(Column::number("ratio", "Ratio"))
        .column(Column::boolean("flag", "Flag"))
        .column(Column::date("day", "Day"))
}

fn row(label: &str, count: i64) -> Vec<Cell> {
    vec![
        Cell::from(label),
        Cell::from(count),
        Cell::Number((count % 10) as f64 * 10.0),
        Cell::Integer(count),
        Cell::from(count % 2 == 0),
        Cell::Date(format!("2026-01-{:02}", count.clamp(1, 28))),
    ]
}

/// The plugin as registered with the host.
pub struct BadReport;

impl Reports for BadReport {
    fn reports() -> Vec<Report> {
        let mut out: Vec<Report> = KEYS.iter().map(|k| report(k)).collect();
        out.push(report("bad key!"));
        out.push(
            Report::new("twice", "Twice")
                .column(Column::text("a", "A"))
                .column(Column::integer("a", "A again")),
        );
        out
    }

    fn run(key: String, params: Params, cursor: Option<String>) -> Result<Rows, String> {
        match (key.as_str(), cursor.as_deref()) {
            ("paged", None) => Ok(Rows::continued(vec![row("plain", 1), row("with, comma", 2)], "page-2")),
            ("paged", Some("page-2")) => Ok(Rows::continued(
                vec![row("say \"hi\"", 3), row("=HYPERLINK(\"http://x.test\")", 4)],
                "page-3",
            )),
            ("paged", Some("page-3")) => {
                let given: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                Ok(Rows::complete(vec![
                    row("-5 below", 5),
                    row("@last", 6),
                    row(&format!("params: {}", given.join("&")), 7),
                ]))
            }
            ("wrong-type", None) => Ok(Rows::continued(vec![row("fine", 1)], "more")),
            ("wrong-type", Some(_)) => {
                let mut bad = row("bad", 2);
                bad[1] = Cell::from("two");
                Ok(Rows::complete(vec![bad]))
            }
            ("short-row", _) => Ok(Rows::complete(vec![vec![Cell::from("short"), Cell::from(1i64)]])),
            ("bad-percent", _) => {
                let mut bad = row("over", 1);
                bad[2] = Cell::Number(150.0);
                Ok(Rows::complete(vec![bad]))
            }
            ("error", _) => Err("deliberate failure".into()),
            ("slow", _) => spin(),
            ("endless", cursor) => {
                let n: i64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(0) + 1;
                Ok(Rows::continued(vec![row("again", n)], n.to_string()))
            }
            ("stuck", _) => Ok(Rows::continued(vec![row("stuck", 1)], "again")),
            _ => Err(format!("no report `{key}`")),
        }
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        // Opaque to the optimizer, so the loop stays a loop that does work.
        n = black_box(n.wrapping_add(1));
    }
}

aula_sdk::register!(reports: BadReport);
