//! The built-in reports, computed in SQL within the viewer's reach.
//!
//! Reports of one row per enrollment or user (learner progress, overdue, user list) are read a page at a time
//! in id order ([`Keyset`]), so a CSV of a million rows streams with flat memory. Reports that aggregate
//! (completion by course and by organization, activity, the enrollment funnel) are computed as a whole with
//! set-based queries: completion by organization groups enrollments per learner once and rolls the totals up
//! the organization tree in memory, never one query per organization.

use super::filters::{DAY_MS, Filter, Filters, Interval, day_of};
use super::{Cell, Column, ColumnType, ReportInfo, Row, Rows, json_objects};
use crate::db::{Backend, Sql, TenantDb, TenantTx};
use crate::error::ApiError;
use crate::scope::Reach;
use serde_json::{Map, Value};
use std::collections::HashMap;

use ColumnType::{Boolean, Date, Integer, Percent, Text};

/// A built-in report.
pub struct Builtin {
    /// Its key.
    pub key: &'static str,
    /// Title.
    pub title: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// Columns: key, label, type.
    pub columns: &'static [(&'static str, &'static str, ColumnType)],
    /// The filters it takes.
    pub filters: &'static [Filter],
    /// The HTML view's chart: the column naming each bar, and the columns drawn.
    pub chart: (&'static str, &'static [&'static str]),
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    CompletionByCourse,
    CompletionByOrg,
    Overdue,
    LearnerProgress,
    Activity,
    Funnel,
    UserList,
}

const ENROLLMENTS: &[Filter] = &[
    Filter::Org,
    Filter::Segment,
    Filter::Tag,
    Filter::Course,
    Filter::From,
    Filter::To,
];

/// Every built-in report, in the order the report list shows them.
pub const ALL: &[Builtin] = &[
    Builtin {
        key: "completion-by-course",
        title: "Completion by course",
        description: "Per course: enrollments of learners within your scope (dropped ones left out), how many have \
                      not started, are in progress, completed or overdue, and the completion rate. `from`/`to` \
                      count enrollments made in that period.",
        columns: &[
            ("course_id", "Course id", Text),
            ("course_code", "Code", Text),
            ("course_title", "Course", Text),
            ("enrollments", "Enrollments", Integer),
            ("not_started", "Not started", Integer),
            ("in_progress", "In progress", Integer),
            ("completed", "Completed", Integer),
            ("overdue", "Overdue", Integer),
            ("completion", "Completion", Percent),
        ],
        filters: ENROLLMENTS,
        chart: ("course_code", &["completion"]),
        kind: Kind::CompletionByCourse,
    },
    Builtin {
        key: "completion-by-org",
        title: "Completion by organization",
        description: "Per organization within your scope, depth-first: the enrollments of the members of it and of \
                      every organization below it (each enrollment once), dropped ones left out. `org` limits the \
                      rows to that organization's subtree.",
        columns: &[
            ("org_id", "Organization id", Text),
            ("org", "Organization", Text),
            ("path", "Path", Text),
            ("learners", "Learners", Integer),
            ("enrollments", "Enrollments", Integer),
            ("completed", "Completed", Integer),
            ("overdue", "Overdue", Integer),
            ("completion", "Completion", Percent),
        ],
        filters: ENROLLMENTS,
        chart: ("org", &["completion"]),
        kind: Kind::CompletionByOrg,
    },
    Builtin {
        key: "overdue",
        title: "Overdue enrollments",
        description: "Every enrollment past its due date and not completed, of learners within your scope. \
                      `from`/`to` select by due date.",
        columns: &[
            ("enrollment_id", "Enrollment id", Text),
            ("user_id", "User id", Text),
            ("email", "E-mail", Text),
            ("name", "Name", Text),
            ("course_id", "Course id", Text),
            ("course_code", "Code", Text),
            ("course_title", "Course", Text),
            ("status", "Status", Text),
            ("progress", "Progress", Percent),
            ("due", "Due", Date),
            ("days_overdue", "Days overdue", Integer),
        ],
        filters: ENROLLMENTS,
        chart: ("email", &["days_overdue"]),
        kind: Kind::Overdue,
    },
    Builtin {
        key: "learner-progress",
        title: "Learner progress",
        description: "One row per enrollment of learners within your scope, with status, progress and dates. \
                      `from`/`to` select by enrollment date.",
        columns: &[
            ("enrollment_id", "Enrollment id", Text),
            ("user_id", "User id", Text),
            ("email", "E-mail", Text),
            ("name", "Name", Text),
            ("course_id", "Course id", Text),
            ("course_code", "Code", Text),
            ("course_title", "Course", Text),
            ("status", "Status", Text),
            ("progress", "Progress", Percent),
            ("enrolled", "Enrolled", Date),
            ("started", "Started", Date),
            ("due", "Due", Date),
            ("completed", "Completed", Date),
            ("overdue", "Overdue", Boolean),
        ],
        filters: ENROLLMENTS,
        chart: ("email", &["progress"]),
        kind: Kind::LearnerProgress,
    },
    Builtin {
        key: "activity",
        title: "Activity",
        description: "Sign-ins and course completions of learners within your scope, per day or week (`interval`, \
                      weeks from Monday, UTC). Without `from`/`to`: the last 30 days, or the last 12 weeks.",
        columns: &[
            ("period", "Period from", Date),
            ("logins", "Sign-ins", Integer),
            ("active_users", "Learners signed in", Integer),
            ("completions", "Completions", Integer),
        ],
        filters: &[
            Filter::Org,
            Filter::Segment,
            Filter::Tag,
            Filter::From,
            Filter::To,
            Filter::Interval,
        ],
        chart: ("period", &["logins", "completions"]),
        kind: Kind::Activity,
    },
    Builtin {
        key: "enrollment-funnel",
        title: "Enrollment funnel",
        description: "Per course: how many learners within your scope were enrolled, started, completed or \
                      dropped, with the rates of starting and completing. `from`/`to` count enrollments made in \
                      that period.",
        columns: &[
            ("course_id", "Course id", Text),
            ("course_code", "Code", Text),
            ("course_title", "Course", Text),
            ("enrolled", "Enrolled", Integer),
            ("started", "Started", Integer),
            ("completed", "Completed", Integer),
            ("dropped", "Dropped", Integer),
            ("started_rate", "Started", Percent),
            ("completion_rate", "Completed", Percent),
        ],
        filters: ENROLLMENTS,
        chart: ("course_code", &["enrolled", "started", "completed"]),
        kind: Kind::Funnel,
    },
    Builtin {
        key: "user-list",
        title: "Users",
        description: "Every user within your scope with their organizations (those you may see), enrollments and \
                      completions. `course`: users enrolled in it; `from`/`to`: users created in that period.",
        columns: &[
            ("user_id", "User id", Text),
            ("email", "E-mail", Text),
            ("name", "Name", Text),
            ("status", "Status", Text),
            ("orgs", "Organizations", Text),
            ("enrollments", "Enrollments", Integer),
            ("completed", "Completed", Integer),
            ("created", "Created", Date),
            ("last_login", "Last sign-in", Date),
        ],
        filters: ENROLLMENTS,
        chart: ("email", &["completed"]),
        kind: Kind::UserList,
    },
];

/// A built-in report by key.
pub fn find(key: &str) -> Option<&'static Builtin> {
    ALL.iter().find(|b| b.key == key)
}

impl Builtin {
    /// As the report list shows it.
    pub fn info(&self) -> ReportInfo {
        ReportInfo {
            key: self.key.to_owned(),
            title: self.title.to_owned(),
            description: self.description.to_owned(),
            source: "builtin",
            plugin: None,
            columns: self
                .columns
                .iter()
                .map(|(key, label, kind)| Column {
                    key: (*key).to_owned(),
                    label: (*label).to_owned(),
                    kind: *kind,
                })
                .collect(),
            filters: self.filters.iter().map(|f| f.name()).collect(),
        }
    }

    fn keys(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(k, _, _)| *k).collect()
    }

    fn kinds(&self) -> Vec<ColumnType> {
        self.columns.iter().map(|(_, _, t)| *t).collect()
    }

    /// Compute an aggregate, or set up the pages of a row report.
    pub(super) async fn prepare(
        &'static self,
        db: &TenantDb,
        tx: &mut TenantTx,
        reach: &Reach,
        filters: &Filters,
        now: i64,
    ) -> Result<Rows, ApiError> {
        Ok(match self.kind {
            Kind::CompletionByCourse => Rows::All(completion_by_course(tx, reach, filters, now).await?.into()),
            Kind::CompletionByOrg => Rows::All(completion_by_org(db, tx, reach, filters, now).await?.into()),
            Kind::Activity => Rows::All(activity(tx, reach, filters, now).await?.into()),
            Kind::Funnel => Rows::All(funnel(tx, reach, filters).await?.into()),
            Kind::Overdue => Rows::Keyset(self.keyset(overdue(tx, reach, filters, now), "e.id", None)),
            Kind::LearnerProgress => Rows::Keyset(self.keyset(learner_progress(tx, reach, filters, now), "e.id", None)),
            Kind::UserList => Rows::Keyset(self.keyset(user_list(tx, reach, filters), "u.id", Some("orgs"))),
        })
    }

    fn keyset(&self, select: Sql, key: &'static str, names: Option<&str>) -> Keyset {
        let mut fields = self.keys();
        let names = names.and_then(|n| fields.iter().position(|f| *f == n));
        fields.push("k");
        Keyset {
            select,
            key,
            fields,
            kinds: self.kinds(),
            names,
        }
    }
}

/// A row report read a page at a time: `select` (every condition in place, ending in its `WHERE` clause)
/// names each column by its key and the row's key `k`, which orders the rows and is the cursor.
pub struct Keyset {
    select: Sql,
    key: &'static str,
    fields: Vec<&'static str>,
    kinds: Vec<ColumnType>,
    /// A column that arrives as the JSON text of a list of `{"name": …}` and is shown as `A; B`.
    names: Option<usize>,
}

impl Keyset {
    /// Up to `limit` rows after the key `after`, and the key of the last row when more follow.
    pub async fn page(
        &self,
        tx: &mut TenantTx,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Row>, Option<String>), ApiError> {
        let mut sql = self.select.clone();
        // The first page too is a range of keys (all of them are above ''), so that every page is planned the
        // same way: along the index on (tenant, id), never as a sort of every row.
        sql.push(&format!(" AND {} > ", self.key))
            .push_bind(after.unwrap_or(""));
        sql.push(&format!(" ORDER BY {} LIMIT ", self.key))
            .push_bind(limit as i64 + 1);
        let mut objects = json_objects(tx, &sql, &self.fields, "u.k").await?;
        let more = objects.len() > limit;
        objects.truncate(limit);
        let last = match (more, objects.last()) {
            (true, Some(o)) => o.get("k").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        let columns = &self.fields[..self.kinds.len()];
        let mut rows: Vec<Row> = objects.iter().map(|o| row_of(o, columns, &self.kinds)).collect();
        if let Some(at) = self.names {
            for row in &mut rows {
                if let Some(Cell::Text(json)) = row.get_mut(at) {
                    *json = names_text(json);
                }
            }
        }
        Ok((rows, last))
    }
}

/// A row from a JSON object of the database, each column converted to its type (dates arrive as unix
/// milliseconds, booleans as 0 or 1).
fn row_of(object: &Map<String, Value>, keys: &[&str], kinds: &[ColumnType]) -> Row {
    keys.iter()
        .zip(kinds)
        .map(|(key, kind)| cell(*kind, object.get(*key).unwrap_or(&Value::Null)))
        .collect()
}

fn cell(kind: ColumnType, v: &Value) -> Cell {
    match (kind, v) {
        (_, Value::Null) => Cell::Null,
        (Text, Value::String(s)) => Cell::Text(s.clone()),
        (Text, other) => Cell::Text(other.to_string()),
        (Integer, v) => v.as_i64().map_or(Cell::Null, Cell::Integer),
        (ColumnType::Number | Percent, v) => v.as_f64().filter(|f| f.is_finite()).map_or(Cell::Null, Cell::Number),
        (Boolean, Value::Bool(b)) => Cell::Boolean(*b),
        (Boolean, v) => v.as_i64().map_or(Cell::Null, |i| Cell::Boolean(i != 0)),
        (Date, Value::String(s)) => Cell::Date(s.clone()),
        (Date, v) => v.as_i64().map_or(Cell::Null, |ms| Cell::Date(day_of(ms))),
    }
}

fn int(object: &Map<String, Value>, key: &str) -> i64 {
    object.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn text(object: &Map<String, Value>, key: &str) -> String {
    object.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// `CASE WHEN <overdue> THEN 1 ELSE 0 END` for enrollments `e`, with `now` bound.
fn overdue_case(sql: &mut Sql, now: i64) -> String {
    let now = sql.bind(now);
    format!("CASE WHEN e.status IN ('enrolled', 'in_progress') AND e.due_at < {now} THEN 1 ELSE 0 END")
}

async fn completion_by_course(
    tx: &mut TenantTx,
    reach: &Reach,
    filters: &Filters,
    now: i64,
) -> Result<Vec<Row>, ApiError> {
    let mut sql = Sql::tenant("");
    let overdue = overdue_case(&mut sql, now);
    sql.push(&format!(
        "SELECT e.course_id AS course_id, c.code AS code, c.title AS title, COUNT(*) AS enrollments, \
         SUM(CASE WHEN e.status = 'enrolled' THEN 1 ELSE 0 END) AS not_started, \
         SUM(CASE WHEN e.status = 'in_progress' THEN 1 ELSE 0 END) AS in_progress, \
         SUM(CASE WHEN e.status = 'completed' THEN 1 ELSE 0 END) AS completed, \
         SUM({overdue}) AS overdue \
         FROM enrollments e JOIN courses c ON c.id = e.course_id AND c.tenant_id = $1 \
         WHERE e.tenant_id = $1 AND e.status <> 'dropped'"
    ));
    filters.push_course(&mut sql, "e.course_id");
    filters.push_period(&mut sql, "e.created_at");
    filters.push_user_ids(&mut sql, "e.user_id", reach, tx.backend());
    sql.push(" GROUP BY e.course_id, c.code, c.title");
    let fields = [
        "course_id",
        "code",
        "title",
        "enrollments",
        "not_started",
        "in_progress",
        "completed",
        "overdue",
    ];
    let objects = json_objects(tx, &sql, &fields, "lower(u.code), u.course_id").await?;
    Ok(objects
        .iter()
        .map(|o| {
            let (n, done) = (int(o, "enrollments"), int(o, "completed"));
            vec![
                Cell::Text(text(o, "course_id")),
                Cell::Text(text(o, "code")),
                Cell::Text(text(o, "title")),
                Cell::Integer(n),
                Cell::Integer(int(o, "not_started")),
                Cell::Integer(int(o, "in_progress")),
                Cell::Integer(done),
                Cell::Integer(int(o, "overdue")),
                Cell::percent(done, n),
            ]
        })
        .collect())
}

async fn funnel(tx: &mut TenantTx, reach: &Reach, filters: &Filters) -> Result<Vec<Row>, ApiError> {
    let mut sql = Sql::tenant(
        "SELECT e.course_id AS course_id, c.code AS code, c.title AS title, COUNT(*) AS enrolled, \
         SUM(CASE WHEN e.started_at IS NOT NULL OR e.status IN ('in_progress', 'completed') THEN 1 ELSE 0 END) AS started, \
         SUM(CASE WHEN e.status = 'completed' THEN 1 ELSE 0 END) AS completed, \
         SUM(CASE WHEN e.status = 'dropped' THEN 1 ELSE 0 END) AS dropped \
         FROM enrollments e JOIN courses c ON c.id = e.course_id AND c.tenant_id = $1 WHERE e.tenant_id = $1",
    );
    filters.push_course(&mut sql, "e.course_id");
    filters.push_period(&mut sql, "e.created_at");
    filters.push_user_ids(&mut sql, "e.user_id", reach, tx.backend());
    sql.push(" GROUP BY e.course_id, c.code, c.title");
    let fields = [
        "course_id",
        "code",
        "title",
        "enrolled",
        "started",
        "completed",
        "dropped",
    ];
    let objects = json_objects(tx, &sql, &fields, "lower(u.code), u.course_id").await?;
    Ok(objects
        .iter()
        .map(|o| {
            let (n, started, done) = (int(o, "enrolled"), int(o, "started"), int(o, "completed"));
            vec![
                Cell::Text(text(o, "course_id")),
                Cell::Text(text(o, "code")),
                Cell::Text(text(o, "title")),
                Cell::Integer(n),
                Cell::Integer(started),
                Cell::Integer(done),
                Cell::Integer(int(o, "dropped")),
                Cell::percent(started, n),
                Cell::percent(done, n),
            ]
        })
        .collect())
}

/// One organization of the tree, with the indexes of its ancestors (itself last).
struct Node {
    id: String,
    name: String,
    path: String,
    line: Vec<usize>,
}

/// Totals of one organization's subtree.
#[derive(Default, Clone, Copy)]
struct Totals {
    learners: i64,
    enrollments: i64,
    completed: i64,
    overdue: i64,
}

impl Totals {
    fn of(o: &Map<String, Value>) -> Totals {
        Totals {
            learners: int(o, "learners"),
            enrollments: int(o, "enrollments"),
            completed: int(o, "completed"),
            overdue: int(o, "overdue"),
        }
    }

    fn add(&mut self, other: Totals, times: i64) {
        self.learners += other.learners * times;
        self.enrollments += other.enrollments * times;
        self.completed += other.completed * times;
        self.overdue += other.overdue * times;
    }
}

/// Learners at most this many in one slice of completion by organization on SQLite.
const SLICE_USERS: i64 = 25_000;

/// `SELECT` the counted enrollments of each learner: within reach and filters, and within a range of user
/// ids (`from` inclusive, `to` exclusive) when given. Its `GROUP BY` follows the order of
/// `enrollments_report`, an index holding every column read, so it is one pass over that index.
fn per_learner(sql: &mut Sql, reach: &Reach, filters: &Filters, now: i64, backend: Backend, range: &Range) {
    let now = sql.bind(now);
    sql.push(&format!(
        "SELECT e.user_id, COUNT(*) AS n, COUNT(*) FILTER (WHERE e.status = 'completed') AS done, \
         COUNT(*) FILTER (WHERE e.status <> 'completed' AND e.due_at < {now}) AS late \
         FROM enrollments e WHERE e.tenant_id = $1 AND e.status <> 'dropped'"
    ));
    if let Some(from) = &range.0 {
        sql.push(" AND e.user_id >= ").push_bind(from.as_str());
    }
    if let Some(to) = &range.1 {
        sql.push(" AND e.user_id < ").push_bind(to.as_str());
    }
    filters.push_course(sql, "e.course_id");
    filters.push_period(sql, "e.created_at");
    filters.push_user_ids(sql, "e.user_id", reach, backend);
    sql.push(" GROUP BY e.user_id");
}

/// A range of user ids: from (inclusive) and to (exclusive), open where `None`.
type Range = (Option<String>, Option<String>);

/// The learners of several memberships, as a subquery of their ids.
const SEVERAL: &str =
    "SELECT m2.user_id FROM memberships m2 WHERE m2.tenant_id = $1 GROUP BY m2.user_id HAVING COUNT(*) > 1";

/// Per organization, the learners who are direct members of it and their counted enrollments.
async fn direct_totals(
    tx: &mut TenantTx,
    reach: &Reach,
    filters: &Filters,
    now: i64,
    range: &Range,
) -> Result<Vec<Map<String, Value>>, ApiError> {
    let backend = tx.backend();
    let mut sql = Sql::tenant(
        "SELECT m.org_id AS org_id, COUNT(*) AS learners, CAST(SUM(a.n) AS BIGINT) AS enrollments, \
         CAST(SUM(a.done) AS BIGINT) AS completed, CAST(SUM(a.late) AS BIGINT) AS overdue FROM (",
    );
    per_learner(&mut sql, reach, filters, now, backend, range);
    sql.push(") a JOIN memberships m ON m.tenant_id = $1 AND m.user_id = a.user_id GROUP BY m.org_id");
    json_objects(
        tx,
        &sql,
        &["org_id", "learners", "enrollments", "completed", "overdue"],
        "u.org_id",
    )
    .await
}

/// Where to cut the academy's learners into slices of about [`SLICE_USERS`], so that each slice is counted
/// on a connection of its own. Only on SQLite, which runs a statement on one thread: PostgreSQL plans one
/// scan of the table per statement, so slicing would only repeat it.
async fn slices(tx: &mut TenantTx) -> Result<Vec<Range>, ApiError> {
    use sqlx::Row;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) as i64;
    if tx.backend() != Backend::Sqlite || cores < 2 {
        return Ok(vec![(None, None)]);
    }
    let users: i64 = tx
        .query("SELECT COUNT(*) FROM users WHERE tenant_id = $1")
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    let count = (users / SLICE_USERS).clamp(1, cores);
    let mut cuts: Vec<String> = Vec::new();
    for i in 1..count {
        let cut: Option<String> = tx
            .query("SELECT id FROM users WHERE tenant_id = $1 ORDER BY id LIMIT 1 OFFSET $2")
            .bind(users * i / count)
            .fetch_optional(tx.conn())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        cuts.extend(cut);
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut from: Option<String> = None;
    for cut in cuts {
        out.push((from.take(), Some(cut.clone())));
        from = Some(cut);
    }
    out.push((from, None));
    Ok(out)
}

/// Completion by organization. The enrollments are counted per learner in one pass over an index that holds
/// every column needed, joined to the learners' memberships and summed per organization: one row per
/// organization comes back, never a query per organization. The sums then go up the tree in memory, each
/// organization's to every organization on its path. A learner who is a member of several organizations of
/// one subtree would count there once per membership; those learners (usually few) are counted once more,
/// on their own, and the surplus taken off, so that every subtree counts each learner and enrollment once.
async fn completion_by_org(
    db: &TenantDb,
    tx: &mut TenantTx,
    reach: &Reach,
    filters: &Filters,
    now: i64,
) -> Result<Vec<Row>, ApiError> {
    let backend = tx.backend();
    let orgs = json_objects(
        tx,
        &Sql::tenant("SELECT o.id AS id, o.name AS name, o.path AS path FROM orgs o WHERE o.tenant_id = $1"),
        &["id", "name", "path"],
        "u.path",
    )
    .await?;
    let mut nodes: Vec<Node> = orgs
        .iter()
        .map(|o| Node {
            id: text(o, "id"),
            name: text(o, "name"),
            path: text(o, "path"),
            line: Vec::new(),
        })
        .collect();
    let index: HashMap<String, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i)).collect();
    for node in &mut nodes {
        node.line = node
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .filter_map(|id| index.get(id).copied())
            .collect();
    }

    // Direct members' totals, each slice of learners on its own connection (see `slices`).
    let ranges = slices(tx).await?;
    let direct: Vec<Map<String, Value>> = if ranges.len() == 1 {
        direct_totals(tx, reach, filters, now, &ranges[0]).await?
    } else {
        let parts = futures::future::try_join_all(ranges.iter().map(|range| async move {
            let mut slice = db.begin_read().await?;
            let rows = direct_totals(&mut slice, reach, filters, now, range).await?;
            slice.commit().await?;
            Ok::<_, ApiError>(rows)
        }))
        .await?;
        parts.into_iter().flatten().collect()
    };
    let mut totals = vec![Totals::default(); nodes.len()];
    for row in &direct {
        if let Some(&at) = index.get(&text(row, "org_id")) {
            let t = Totals::of(row);
            for &i in &nodes[at].line {
                totals[i].add(t, 1);
            }
        }
    }

    // Learners of several memberships: where k of their memberships lie below one organization, they were
    // summed there k times; take k - 1 of them off.
    let several = json_objects(
        tx,
        &Sql::tenant(&format!(
            "SELECT m.user_id AS user_id, m.org_id AS org_id FROM memberships m \
             WHERE m.tenant_id = $1 AND m.user_id IN ({SEVERAL})"
        )),
        &["user_id", "org_id"],
        "u.user_id",
    )
    .await?;
    if !several.is_empty() {
        let mut lines: HashMap<String, Vec<usize>> = HashMap::new();
        for m in &several {
            if let Some(&at) = index.get(&text(m, "org_id")) {
                lines.entry(text(m, "user_id")).or_default().extend(&nodes[at].line);
            }
        }
        // Counted one by one through the index on (tenant, user): there are few of them, and a scan of every
        // enrollment restricted to them would cost as much as the whole report.
        let mut sql = Sql::tenant("SELECT s.user_id AS user_id, 1 AS learners");
        for (column, condition) in [
            ("enrollments", "e.status <> 'dropped'".to_owned()),
            ("completed", "e.status = 'completed'".to_owned()),
            (
                "overdue",
                format!(
                    "e.status IN ('enrolled', 'in_progress') AND e.due_at < {}",
                    sql.bind(now)
                ),
            ),
        ] {
            sql.push(&format!(
                ", (SELECT COUNT(*) FROM enrollments e WHERE e.tenant_id = $1 AND e.user_id = s.user_id AND {condition}"
            ));
            filters.push_course(&mut sql, "e.course_id");
            filters.push_period(&mut sql, "e.created_at");
            sql.push(&format!(") AS {column}"));
        }
        sql.push(&format!(" FROM ({SEVERAL}) s WHERE 1 = 1"));
        filters.push_user_ids(&mut sql, "s.user_id", reach, backend);
        let learners = json_objects(
            tx,
            &sql,
            &["user_id", "learners", "enrollments", "completed", "overdue"],
            "u.user_id",
        )
        .await?;
        for learner in &learners {
            let Some(line) = lines.get_mut(&text(learner, "user_id")) else {
                continue;
            };
            line.sort_unstable();
            let t = Totals::of(learner);
            for run in line.chunk_by(|a, b| a == b) {
                if run.len() > 1 {
                    totals[run[0]].add(t, -(run.len() as i64 - 1));
                }
            }
        }
    }

    // Rows: the organizations within reach (and within the `org` filter), depth-first with siblings by name;
    // a path names only the organizations the viewer reaches.
    let shown: Vec<usize> = (0..nodes.len())
        .filter(|&i| reach.covers_org_path(&nodes[i].path))
        .filter(|&i| filters.org.as_ref().is_none_or(|f| nodes[i].path.starts_with(&f.path)))
        .collect();
    let sort_key = |i: usize| -> Vec<(String, usize)> {
        nodes[i]
            .line
            .iter()
            .map(|&a| (nodes[a].name.to_lowercase(), a))
            .collect()
    };
    let mut keyed: Vec<(Vec<(String, usize)>, usize)> = shown.iter().map(|&i| (sort_key(i), i)).collect();
    keyed.sort();
    Ok(keyed
        .into_iter()
        .map(|(_, i)| {
            let node = &nodes[i];
            let path: Vec<&str> = node
                .line
                .iter()
                .filter(|&&a| reach.covers_org_path(&nodes[a].path))
                .map(|&a| nodes[a].name.as_str())
                .collect();
            let t = totals[i];
            vec![
                Cell::Text(node.id.clone()),
                Cell::Text(node.name.clone()),
                Cell::Text(path.join(" / ")),
                Cell::Integer(t.learners),
                Cell::Integer(t.enrollments),
                Cell::Integer(t.completed),
                Cell::Integer(t.overdue),
                Cell::percent(t.completed, t.enrollments),
            ]
        })
        .collect())
}

/// The periods of the activity report: (start of the first, end of the last, length of one), from the filters
/// or, without them, the last 30 days or 12 weeks up to today. More than 400 periods are refused.
pub fn activity_window(filters: &Filters, now: i64) -> Result<(i64, i64, i64), String> {
    let interval = filters.interval.unwrap_or(Interval::Day);
    let len = interval.ms();
    let align = |ms: i64| -> i64 {
        let day = ms.div_euclid(DAY_MS);
        match interval {
            Interval::Day => day * DAY_MS,
            // 1970-01-01 was a Thursday: three days after a Monday.
            Interval::Week => (day - (day + 3).rem_euclid(7)) * DAY_MS,
        }
    };
    let end = filters.to.unwrap_or_else(|| align(now) + len);
    let end = if align(end) == end { end } else { align(end) + len };
    let start = align(
        filters
            .from
            .unwrap_or(end - if interval == Interval::Day { 30 } else { 12 } * len),
    );
    if (end - start) / len > 400 {
        let unit = if interval == Interval::Day { "days" } else { "weeks" };
        return Err(format!("the period spans more than 400 {unit}; choose a shorter one"));
    }
    Ok((start, end, len))
}

async fn activity(tx: &mut TenantTx, reach: &Reach, filters: &Filters, now: i64) -> Result<Vec<Row>, ApiError> {
    let backend = tx.backend();
    let (start, end, len) =
        activity_window(filters, now).map_err(|m| ApiError::rule("invalid_filter", Some("from"), m))?;
    let mut logins = Sql::tenant("");
    let (s, l) = (logins.bind(start), logins.bind(len));
    logins.push(&format!(
        "SELECT (g.at - {s}) / {l} AS b, COUNT(*) AS logins, COUNT(DISTINCT g.user_id) AS active \
         FROM login_events g WHERE g.tenant_id = $1 AND g.at >= {s} AND g.at < "
    ));
    logins.push_bind(end);
    filters.push_user_ids(&mut logins, "g.user_id", reach, backend);
    logins.push(" GROUP BY 1");
    let logins = json_objects(tx, &logins, &["b", "logins", "active"], "u.b").await?;
    let mut done = Sql::tenant("");
    let (s, l) = (done.bind(start), done.bind(len));
    done.push(&format!(
        "SELECT (e.completed_at - {s}) / {l} AS b, COUNT(*) AS completions \
         FROM enrollments e WHERE e.tenant_id = $1 AND e.completed_at >= {s} AND e.completed_at < "
    ));
    done.push_bind(end);
    filters.push_user_ids(&mut done, "e.user_id", reach, backend);
    done.push(" GROUP BY 1");
    let done = json_objects(tx, &done, &["b", "completions"], "u.b").await?;

    let periods = ((end - start) / len) as usize;
    let mut counts = vec![(0i64, 0i64, 0i64); periods];
    for o in &logins {
        if let Some(c) = usize::try_from(int(o, "b")).ok().and_then(|b| counts.get_mut(b)) {
            c.0 = int(o, "logins");
            c.1 = int(o, "active");
        }
    }
    for o in &done {
        if let Some(c) = usize::try_from(int(o, "b")).ok().and_then(|b| counts.get_mut(b)) {
            c.2 = int(o, "completions");
        }
    }
    Ok(counts
        .into_iter()
        .enumerate()
        .map(|(i, (logins, active, completions))| {
            vec![
                Cell::Date(day_of(start + i as i64 * len)),
                Cell::Integer(logins),
                Cell::Integer(active),
                Cell::Integer(completions),
            ]
        })
        .collect())
}

/// Enrollments `e` with their user `u` and course `c`, within reach and filters.
fn enrollment_rows(select: &str, sql: &mut Sql, reach: &Reach, filters: &Filters, tx: &TenantTx) {
    sql.push(select);
    sql.push(
        " FROM enrollments e JOIN users u ON u.id = e.user_id AND u.tenant_id = $1 \
         JOIN courses c ON c.id = e.course_id AND c.tenant_id = $1 WHERE e.tenant_id = $1",
    );
    filters.push_course(sql, "e.course_id");
    filters.push_users(sql, reach, tx.backend());
}

fn overdue(tx: &TenantTx, reach: &Reach, filters: &Filters, now: i64) -> Sql {
    let mut sql = Sql::tenant("");
    let now = sql.bind(now);
    enrollment_rows(
        &format!(
            "SELECT e.id AS k, e.id AS enrollment_id, e.user_id AS user_id, u.email AS email, u.name AS name, \
             e.course_id AS course_id, c.code AS course_code, c.title AS course_title, e.status AS status, \
             e.progress AS progress, e.due_at AS due, ({now} - e.due_at) / {DAY_MS} AS days_overdue"
        ),
        &mut sql,
        reach,
        filters,
        tx,
    );
    sql.push(&format!(
        " AND e.status IN ('enrolled', 'in_progress') AND e.due_at < {now}"
    ));
    filters.push_period(&mut sql, "e.due_at");
    sql
}

fn learner_progress(tx: &TenantTx, reach: &Reach, filters: &Filters, now: i64) -> Sql {
    let mut sql = Sql::tenant("");
    let overdue = overdue_case(&mut sql, now);
    enrollment_rows(
        &format!(
            "SELECT e.id AS k, e.id AS enrollment_id, e.user_id AS user_id, u.email AS email, u.name AS name, \
             e.course_id AS course_id, c.code AS course_code, c.title AS course_title, e.status AS status, \
             e.progress AS progress, e.created_at AS enrolled, e.started_at AS started, e.due_at AS due, \
             e.completed_at AS completed, {overdue} AS overdue"
        ),
        &mut sql,
        reach,
        filters,
        tx,
    );
    filters.push_period(&mut sql, "e.created_at");
    sql
}

fn user_list(tx: &TenantTx, reach: &Reach, filters: &Filters) -> Sql {
    let backend = tx.backend();
    let mut sql = Sql::tenant("");
    // The organizations of each user that the viewer reaches, as a JSON list of names.
    let mut visible = String::new();
    if !reach.all {
        let paths: Vec<String> = reach
            .org_paths
            .iter()
            .map(|p| format!("o.path LIKE {}", sql.bind(format!("{p}%"))))
            .collect();
        visible = if paths.is_empty() {
            " AND 1 = 0".to_owned()
        } else {
            format!(" AND ({})", paths.join(" OR "))
        };
    }
    let orgs = backend.json_rows(
        &[("name", "o.name")],
        &format!(
            "FROM memberships um JOIN orgs o ON o.id = um.org_id WHERE um.tenant_id = $1 AND um.user_id = u.id{visible}"
        ),
        "o.name",
    );
    sql.push(&format!(
        "SELECT u.id AS k, u.id AS user_id, u.email AS email, u.name AS name, u.status AS status, {orgs} AS orgs, \
         (SELECT COUNT(*) FROM enrollments ue WHERE ue.tenant_id = $1 AND ue.user_id = u.id AND ue.status <> 'dropped') AS enrollments, \
         (SELECT COUNT(*) FROM enrollments ue WHERE ue.tenant_id = $1 AND ue.user_id = u.id AND ue.status = 'completed') AS completed, \
         u.created_at AS created, u.last_login_at AS last_login FROM users u WHERE u.tenant_id = $1"
    ));
    filters.push_users(&mut sql, reach, backend);
    if let Some((course, _)) = &filters.course {
        sql.push(" AND EXISTS (SELECT 1 FROM enrollments fe WHERE fe.tenant_id = $1 AND fe.user_id = u.id AND fe.course_id = ")
            .push_bind(course.as_str())
            .push(")");
    }
    filters.push_period(&mut sql, "u.created_at");
    sql
}

/// A JSON list of `{"name": …}` (the user list's organizations) as `A; B`.
fn names_text(json: &str) -> String {
    let names: Vec<Map<String, Value>> = serde_json::from_str(json).unwrap_or_default();
    names
        .iter()
        .filter_map(|o| o.get("name").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("; ")
}
