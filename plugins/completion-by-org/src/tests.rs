use aula_sdk::EnrollmentStatus;
use aula_sdk::reports::ColumnType;
use aula_sdk::testing::{FakeCourse, FakeEnrollment, FakeHost, FakeOrg, FakeUser};

use super::*;

fn academy() -> FakeHost {
    FakeHost::new()
        .org(FakeOrg::new("o-acme", "Acme"))
        .org(FakeOrg::new("o-sales", "Sales").parent("o-acme"))
        .org(FakeOrg::new("o-north", "North").parent("o-sales"))
        .org(FakeOrg::new("o-eng", "Engineering").parent("o-acme"))
        .user(FakeUser::new("u1", "ann@acme.test").org("o-sales"))
        .user(FakeUser::new("u2", "bob@acme.test").org("o-north"))
        .user(FakeUser::new("u3", "cy@acme.test").org("o-north"))
        .course(FakeCourse::new("c1", "SAFE-101", "Safety"))
        .course(FakeCourse::new("c2", "SAFE-201", "Safety II"))
        .enrollment(FakeEnrollment::new("u1", "c1").completed_at("2026-01-05T10:00:00Z"))
        .enrollment(
            FakeEnrollment::new("u1", "c2")
                .progress(40)
                .status(EnrollmentStatus::InProgress),
        )
        .enrollment(FakeEnrollment::new("u2", "c1").completed_at("2026-01-06T10:00:00Z"))
        .enrollment(FakeEnrollment::new("u3", "c1"))
        .enrollment(FakeEnrollment::new("u3", "c2").status(EnrollmentStatus::Dropped))
}

fn run(params: &[(&str, &str)], cursor: Option<&str>) -> Result<Rows, String> {
    CompletionByOrg::run(REPORT.into(), params.iter().copied().collect(), cursor.map(Into::into))
}

fn row(org: &str, path: &str, learners: i64, enrollments: i64, completed: i64, completion: Option<f64>) -> Vec<Cell> {
    vec![
        Cell::Text(org.into()),
        Cell::Text(path.into()),
        Cell::Integer(learners),
        Cell::Integer(enrollments),
        Cell::Integer(completed),
        completion.map_or(Cell::Null, Cell::Number),
    ]
}

#[test]
fn one_report_with_typed_columns() {
    let reports = CompletionByOrg::reports();
    assert_eq!(reports.len(), 1);
    let kinds: Vec<ColumnType> = reports[0].columns.iter().map(|c| c.kind).collect();
    use ColumnType::*;
    assert_eq!(kinds, [Text, Text, Integer, Integer, Integer, Percent]);
}

#[test]
fn rows_count_each_subtree_depth_first() {
    let _host = academy().install();
    let rows = run(&[], None).unwrap();
    assert_eq!(rows.next, None);
    assert_eq!(
        rows.rows,
        [
            row("Acme", "Acme", 3, 4, 2, Some(50.0)),
            row("Engineering", "Acme / Engineering", 0, 0, 0, None),
            row("Sales", "Acme / Sales", 3, 4, 2, Some(50.0)),
            row("North", "Acme / Sales / North", 2, 2, 1, Some(50.0)),
        ]
    );
}

#[test]
fn course_parameter_counts_one_course() {
    let _host = academy().install();
    let rows = run(&[("course", "safe-101")], None).unwrap();
    assert_eq!(rows.rows[0], row("Acme", "Acme", 3, 3, 2, Some(66.7)));
    assert_eq!(
        run(&[("course", "NOPE")], None).unwrap_err(),
        "no course with code `NOPE`"
    );
    // A blank parameter is no filter.
    assert_eq!(run(&[("course", " ")], None).unwrap().rows.len(), 4);
}

#[test]
fn pages_of_orgs_continue_by_cursor() {
    let mut host = FakeHost::new().org(FakeOrg::new("o-top", "Top"));
    for i in 0..60 {
        host = host.org(FakeOrg::new(format!("o-{i:02}"), format!("Team {i:02}")).parent("o-top"));
        host = host.org(FakeOrg::new(format!("o-{i:02}-x"), format!("Sub {i:02}")).parent(format!("o-{i:02}")));
    }
    let _host = host.install();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = run(&[], cursor.as_deref()).unwrap();
        assert!(page.rows.len() <= ORGS_PER_PAGE);
        pages += 1;
        seen.extend(page.rows.into_iter().map(|r| r[1].clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 121);
    assert_eq!(seen[1], Cell::Text("Top / Team 00".into()));
    assert_eq!(seen[2], Cell::Text("Top / Team 00 / Sub 00".into()));
    assert_eq!(seen[120], Cell::Text("Top / Team 59 / Sub 59".into()));
}

#[test]
fn unknown_report_is_an_error() {
    let _host = academy().install();
    assert!(CompletionByOrg::run("other".into(), Params::default(), None).is_err());
}
