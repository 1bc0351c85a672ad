//! Bulk import of people from CSV, in the shape student information systems and HR exports use (Canvas
//! SIS's `users.csv`): one row per person, keyed by its `user_id` (the person's external id), so importing the
//! same file again changes nothing.
//!
//! An import first reads and checks the whole file and plans each row (create, change, unchanged) without
//! writing; a dry run stops there. A row with an error is reported (row number, column, reason) and left
//! out; every other row is imported. In diff mode, the people the previous import of the same data set
//! brought in and this one no longer lists are suspended (never erased). A change threshold refuses an import
//! that would change or suspend more than a given share of the academy's people (a truncated export must not
//! suspend everyone). Rows are written in batches of [`BATCH`], each its own transaction, with the academy's
//! rules run on each batch's changes; a batch that fails ends the import with the batches before it kept, and
//! importing the file again finishes it.

use crate::auth::Actor;
use crate::db::{TenantDb, TenantTx, now_ms};
use crate::directory::accounts::{self, NewUser, UserPatch};
use crate::directory::orgs::{self, OrgRow};
use crate::learning::automation::{self, Context, Event, Pending};
use crate::scope::{Grants, Permission};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Rows per transaction.
pub const BATCH: usize = 500;
/// Most rows in one file.
pub const MAX_ROWS: usize = 200_000;
/// Most row errors kept in a report (the counts are always complete).
pub const MAX_ERRORS_KEPT: usize = 10_000;

/// The columns a file may have; `profile.<key>` columns set the academy's profile fields.
pub const COLUMNS: &[&str] = &[
    "user_id",
    "login_id",
    "email",
    "full_name",
    "first_name",
    "last_name",
    "status",
    "locale",
    "orgs",
];

/// How to import.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// Report what would happen; write nothing.
    pub dry_run: bool,
    /// Which data set the file is (an HR export, a SIS): diff mode compares with its previous import.
    pub data_set: String,
    /// Suspend the people the previous import of this data set listed and this file does not.
    pub diff: bool,
    /// Refuse when the import would change or suspend more than this percentage of the academy's people.
    pub max_change_percent: u32,
}

/// What is wrong with one row.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RowError {
    /// The row's line in the file (the header is line 1).
    pub row: usize,
    /// The column at fault (empty when the row as a whole is).
    pub column: String,
    /// Why.
    pub reason: String,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub dry_run: bool,
    pub data_set: String,
    pub diff: bool,
    /// Data rows in the file.
    pub rows: usize,
    pub created: usize,
    pub changed: usize,
    pub unchanged: usize,
    /// People suspended by diff mode.
    pub suspended: usize,
    /// Rows left out for an error.
    pub failed: usize,
    /// The errors (the first [`MAX_ERRORS_KEPT`]).
    pub errors: Vec<RowError>,
}

/// The file cannot be imported at all (its header, its size): nothing was read further, nothing written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// One checked row.
#[derive(Debug, Clone)]
struct Person {
    line: usize,
    external_id: String,
    email: String,
    name: String,
    status: String,
    locale: Option<String>,
    orgs: Vec<String>,
    profile: Map<String, Value>,
}

/// What a row will do.
enum Plan {
    Create(Person, Vec<OrgRow>),
    Change {
        id: String,
        person: Person,
        patch: Map<String, Value>,
        join: Vec<OrgRow>,
    },
    Same(String),
}

/// Read the header: the columns, in order, each known.
fn header(record: &csv::StringRecord) -> Result<Vec<String>, FileError> {
    let mut seen = HashSet::new();
    let mut columns = Vec::new();
    for (i, raw) in record.iter().enumerate() {
        let name = raw.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
        let known = COLUMNS.contains(&name.as_str())
            || name
                .strip_prefix("profile.")
                .is_some_and(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !known {
            return Err(FileError::Refused(format!(
                "column {} ({raw:?}) is not one Aula imports; the columns are {} and profile.<field key>",
                i + 1,
                COLUMNS.join(", ")
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(FileError::Refused(format!("column {name} appears twice")));
        }
        columns.push(name);
    }
    if !seen.contains("user_id") {
        return Err(FileError::Refused(
            "the file needs a user_id column (each person's external id)".into(),
        ));
    }
    if !seen.contains("email") && !seen.contains("login_id") {
        return Err(FileError::Refused(
            "the file needs an email (or login_id) column".into(),
        ));
    }
    Ok(columns)
}

fn row_error(line: usize, column: &str, reason: impl Into<String>) -> RowError {
    RowError {
        row: line,
        column: column.to_owned(),
        reason: reason.into(),
    }
}

/// Check one record's fields (what needs no database).
fn person(line: usize, columns: &[String], record: &csv::StringRecord) -> Result<Person, RowError> {
    let get = |name: &str| -> &str {
        columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| record.get(i))
            .map(str::trim)
            .unwrap_or("")
    };
    let field = |column: &str, e: crate::fields::FieldError| row_error(line, column, e.message);
    let external_id = crate::fields::text("user_id", get("user_id"), 200).map_err(|e| field("user_id", e))?;
    let (column, address) = if get("email").is_empty() {
        ("login_id", get("login_id"))
    } else {
        ("email", get("email"))
    };
    let email = crate::fields::email(column, address).map_err(|e| field(column, e))?;
    let name = if !get("full_name").is_empty() {
        crate::fields::text("full_name", get("full_name"), 200).map_err(|e| field("full_name", e))?
    } else {
        let joined = [get("first_name"), get("last_name")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if joined.is_empty() {
            return Err(row_error(
                line,
                "full_name",
                "give full_name, or first_name and last_name",
            ));
        }
        crate::fields::text("first_name", &joined, 200).map_err(|e| field("first_name", e))?
    };
    let status = match get("status").to_ascii_lowercase().as_str() {
        "" | "active" => "active",
        // An import never erases anyone: a deleted row suspends the account.
        "suspended" | "deleted" | "inactive" => "suspended",
        other => {
            return Err(row_error(
                line,
                "status",
                format!("{other:?} is not a status; use active, suspended or deleted"),
            ));
        }
    }
    .to_owned();
    let locale = match get("locale") {
        "" => None,
        l if crate::tenancy::valid_locale(l) => Some(l.to_owned()),
        l => {
            return Err(row_error(
                line,
                "locale",
                format!("{l:?} is not a language tag such as en or de-CH"),
            ));
        }
    };
    let orgs = get("orgs")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut profile = Map::new();
    for (i, c) in columns.iter().enumerate() {
        if let Some(key) = c.strip_prefix("profile.") {
            let v = record.get(i).map(str::trim).unwrap_or("");
            profile.insert(key.to_owned(), if v.is_empty() { Value::Null } else { json!(v) });
        }
    }
    Ok(Person {
        line,
        external_id,
        email,
        name,
        status,
        locale,
        orgs,
        profile,
    })
}

/// An account as the plan compares it.
struct Current {
    id: String,
    email: String,
    name: String,
    status: String,
    locale: Option<String>,
    profile: Map<String, Value>,
}

/// Plan one batch of checked rows against the database (no writes). Rows with an error go to `errors`.
async fn plan(
    tx: &mut TenantTx,
    people: Vec<Person>,
    orgs_by_external: &mut HashMap<String, Option<OrgRow>>,
    errors: &mut Vec<RowError>,
) -> Result<Vec<Plan>, sqlx::Error> {
    // The accounts these rows name, by external id, and the addresses they use.
    let marks = |n: usize, from: usize| (0..n).map(|i| format!("${}", i + from)).collect::<Vec<_>>().join(", ");
    let mut by_external: HashMap<String, Current> = HashMap::new();
    let mut email_owner: HashMap<String, String> = HashMap::new();
    if !people.is_empty() {
        let sql = format!(
            "SELECT id, email, name, status, locale, external_id, profile FROM users WHERE tenant_id = $1 \
             AND (external_id IN ({}) OR lower(email) IN ({}))",
            marks(people.len(), 2),
            marks(people.len(), 2 + people.len())
        );
        let mut q = tx.query(&sql);
        for p in &people {
            q = q.bind(p.external_id.clone());
        }
        for p in &people {
            q = q.bind(p.email.clone());
        }
        for row in q.fetch_all(tx.conn()).await? {
            let current = Current {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                name: row.try_get("name")?,
                status: row.try_get("status")?,
                locale: row.try_get("locale")?,
                profile: serde_json::from_str(&row.try_get::<String, _>("profile")?).unwrap_or_default(),
            };
            email_owner.insert(current.email.to_lowercase(), current.id.clone());
            if let Some(x) = row.try_get::<Option<String>, _>("external_id")? {
                by_external.insert(x, current);
            }
        }
    }
    let mut plans = Vec::with_capacity(people.len());
    for p in people {
        // Organizations by external id, each looked up once per import.
        let mut join = Vec::new();
        let mut missing = None;
        for x in &p.orgs {
            if !orgs_by_external.contains_key(x) {
                let found: Option<String> = tx
                    .query("SELECT id FROM orgs WHERE tenant_id = $1 AND external_id = $2")
                    .bind(x.clone())
                    .fetch_optional(tx.conn())
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                let org = match found {
                    Some(id) => orgs::find(tx, &id).await?,
                    None => None,
                };
                orgs_by_external.insert(x.clone(), org);
            }
            match &orgs_by_external[x] {
                Some(org) => join.push(org.clone()),
                None => missing = Some(x.clone()),
            }
        }
        if let Some(x) = missing {
            errors.push(row_error(
                p.line,
                "orgs",
                format!("no organization has the external id {x:?}"),
            ));
            continue;
        }
        let current = by_external.get(&p.external_id);
        if let Some(owner) = email_owner.get(&p.email)
            && current.is_none_or(|c| &c.id != owner)
        {
            errors.push(row_error(
                p.line,
                "email",
                "another person of the academy has this address",
            ));
            continue;
        }
        // Profile fields are checked as the API checks them.
        let changes: Map<String, Value> = p.profile.clone();
        if let Err(e) = crate::directory::profile::validate(tx, &changes, current.map(|c| &c.profile)).await {
            let (column, reason) = match e {
                crate::directory::Error::Invalid { field, message } => (field, message),
                crate::directory::Error::UnknownProfileField { key } => (
                    format!("profile.{key}"),
                    "this academy has no such profile field".to_owned(),
                ),
                crate::directory::Error::Db(e) => return Err(e),
                other => (String::new(), other.to_string()),
            };
            errors.push(row_error(p.line, &column, reason));
            continue;
        }
        match current {
            None => plans.push(Plan::Create(p, join)),
            Some(c) => {
                let mut patch = Map::new();
                if c.email != p.email {
                    patch.insert("email".into(), json!(p.email));
                }
                if c.name != p.name {
                    patch.insert("name".into(), json!(p.name));
                }
                if c.status != p.status && !(p.status == "suspended" && c.status == "terminated") {
                    patch.insert("status".into(), json!(p.status));
                }
                if p.locale.is_some() && p.locale != c.locale {
                    patch.insert("locale".into(), json!(p.locale));
                }
                let profile: Map<String, Value> = p
                    .profile
                    .iter()
                    .filter(|(k, v)| c.profile.get(*k).unwrap_or(&Value::Null) != *v)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !profile.is_empty() {
                    patch.insert("profile".into(), Value::Object(profile));
                }
                let id = c.id.clone();
                let mut joining = Vec::new();
                for org in join {
                    let member: Option<i64> = tx
                        .query("SELECT 1 FROM memberships WHERE tenant_id = $1 AND user_id = $2 AND org_id = $3")
                        .bind(id.clone())
                        .bind(org.id.clone())
                        .fetch_optional(tx.conn())
                        .await?
                        .map(|r| r.try_get(0))
                        .transpose()?;
                    if member.is_none() {
                        joining.push(org);
                    }
                }
                if patch.is_empty() && joining.is_empty() {
                    plans.push(Plan::Same(id));
                } else {
                    plans.push(Plan::Change {
                        id,
                        person: p,
                        patch,
                        join: joining,
                    });
                }
            }
        }
    }
    Ok(plans)
}

/// Who runs an import, and where.
pub struct Importer<'a> {
    pub db: &'a TenantDb,
    /// The academy's enrollment plugins, run on each batch's changes once it has committed.
    pub plugins: &'a crate::plugins::host::PluginHost,
    /// The grants of the person importing: every row is checked against them, as the API checks one user.
    pub grants: &'a Grants,
    pub actor: &'a Actor,
    pub admin_id: &'a str,
    /// The job's id: its progress is written there, and kept with the people the data set brought in.
    pub import_id: &'a str,
}

/// Check a file's header alone (at upload, before the job is queued).
pub fn check_header(csv_text: &[u8]) -> Result<(), FileError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv_text);
    match reader.records().next() {
        Some(Ok(h)) => header(&h).map(|_| ()),
        Some(Err(e)) => Err(FileError::Refused(format!("the header row cannot be read: {e}"))),
        None => Err(FileError::Refused("the file is empty".into())),
    }
}

/// Read and check the whole file: the checked rows and the rows' errors.
fn read(csv_text: &[u8], report: &mut Report) -> Result<Vec<Person>, FileError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv_text);
    let mut records = reader.records();
    let columns = match records.next() {
        Some(Ok(h)) => header(&h)?,
        Some(Err(e)) => return Err(FileError::Refused(format!("the header row cannot be read: {e}"))),
        None => return Err(FileError::Refused("the file is empty".into())),
    };
    let mut people = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut emails: HashMap<String, usize> = HashMap::new();
    for (i, record) in records.enumerate() {
        let line = i + 2;
        report.rows += 1;
        if report.rows > MAX_ROWS {
            return Err(FileError::Refused(format!(
                "the file has more than {MAX_ROWS} rows; split it"
            )));
        }
        let record = match record {
            Ok(r) if r.len() != columns.len() => {
                report.errors.push(row_error(
                    line,
                    "",
                    format!("the row has {} fields; the header has {}", r.len(), columns.len()),
                ));
                continue;
            }
            Ok(r) => r,
            Err(e) => {
                report
                    .errors
                    .push(row_error(line, "", format!("the row cannot be read: {e}")));
                continue;
            }
        };
        match person(line, &columns, &record) {
            Ok(p) => {
                if let Some(first) = ids.get(&p.external_id) {
                    report.errors.push(row_error(
                        line,
                        "user_id",
                        format!("the same user_id is on row {first}"),
                    ));
                    continue;
                }
                if let Some(first) = emails.get(&p.email) {
                    report
                        .errors
                        .push(row_error(line, "email", format!("the same address is on row {first}")));
                    continue;
                }
                ids.insert(p.external_id.clone(), line);
                emails.insert(p.email.clone(), line);
                people.push(p);
            }
            Err(e) => report.errors.push(e),
        }
    }
    Ok(people)
}

/// Import (or, with `dry_run`, plan) a file. `progress` is told how many rows are done of how many.
pub async fn run(importer: &Importer<'_>, options: &Options, csv_text: &[u8]) -> Result<Report, FileError> {
    let mut report = Report {
        dry_run: options.dry_run,
        data_set: options.data_set.clone(),
        diff: options.diff,
        ..Report::default()
    };
    let people = read(csv_text, &mut report)?;
    let total = report.rows;

    // Plan every row first: the threshold needs the whole import's effect, and a dry run is this plan.
    let mut orgs_by_external = HashMap::new();
    let mut plans: Vec<Plan> = Vec::with_capacity(people.len());
    let mut listed: HashSet<String> = HashSet::new();
    {
        let mut tx = importer.db.begin_read().await?;
        let mut rest = people;
        while !rest.is_empty() {
            let batch: Vec<Person> = rest.drain(..rest.len().min(BATCH)).collect();
            plans.extend(plan(&mut tx, batch, &mut orgs_by_external, &mut report.errors).await?);
        }
        tx.commit().await?;
    }
    for p in &plans {
        match p {
            Plan::Create(..) => report.created += 1,
            Plan::Change { id, .. } => {
                report.changed += 1;
                listed.insert(id.clone());
            }
            Plan::Same(id) => {
                report.unchanged += 1;
                listed.insert(id.clone());
            }
        }
    }
    // Diff mode: who the previous import of this data set brought in and this file does not list.
    let mut to_suspend = Vec::new();
    let academy: i64;
    {
        let mut tx = importer.db.begin_read().await?;
        if options.diff {
            let rows = tx
                .query(
                    "SELECT m.user_id FROM import_members m JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id \
                     WHERE m.tenant_id = $1 AND m.data_set = $2 AND u.status = 'active'",
                )
                .bind(options.data_set.clone())
                .fetch_all(tx.conn())
                .await?;
            for r in rows {
                let id: String = r.try_get(0)?;
                if !listed.contains(&id) {
                    to_suspend.push(id);
                }
            }
        }
        academy = tx
            .query("SELECT COUNT(*) FROM users WHERE tenant_id = $1")
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        tx.commit().await?;
    }
    report.suspended = to_suspend.len();
    report.failed = report.errors.len();
    report.errors.sort_by_key(|e| e.row);
    report.errors.truncate(MAX_ERRORS_KEPT);
    let touched = (report.changed + report.suspended) as i64;
    if academy > 0 && touched * 100 > i64::from(options.max_change_percent) * academy {
        return Err(FileError::Refused(format!(
            "the import would change or suspend {touched} of the academy's {academy} people, more than the \
             {}% allowed (max_change_percent); nothing was imported",
            options.max_change_percent
        )));
    }
    if options.dry_run {
        return Ok(report);
    }

    // Apply, batch by batch.
    let mut done = total - plans.len();
    let mut rest = plans;
    while !rest.is_empty() {
        let batch: Vec<Plan> = rest.drain(..rest.len().min(BATCH)).collect();
        let n = batch.len();
        let mut tx = importer.db.begin().await?;
        let mut events = Vec::with_capacity(n);
        let mut imported = Vec::with_capacity(n);
        for plan in batch {
            let counted = match &plan {
                Plan::Create(..) => &mut report.created,
                Plan::Change { .. } => &mut report.changed,
                Plan::Same(_) => &mut report.unchanged,
            };
            match apply(&mut tx, importer, plan).await {
                Ok((id, event)) => {
                    imported.push(id);
                    events.extend(event);
                }
                // Refused when written (the importer's authority over this person, a member limit): the row
                // is reported and the batch goes on.
                Err(Applied::Row(e)) => {
                    *counted -= 1;
                    report.failed += 1;
                    if report.errors.len() < MAX_ERRORS_KEPT {
                        report.errors.push(e);
                    }
                }
                Err(Applied::Db(e)) => return Err(e.into()),
            }
        }
        remember(&mut tx, importer, &options.data_set, &imported).await?;
        finish_batch(importer, tx, events).await?;
        done += n;
        crate::learning::jobs::progress(importer.db, importer.import_id, done, total).await?;
    }
    // Diff mode's suspensions, in batches too.
    for chunk in to_suspend.chunks(BATCH) {
        let mut tx = importer.db.begin().await?;
        let mut events = Vec::new();
        for id in chunk {
            let change: UserPatch = serde_json::from_value(json!({"status": "suspended"})).expect("a patch");
            match accounts::update(&mut tx, importer.grants, importer.admin_id, id, &change, None).await {
                Ok(_) => events.push(Event::changed(id)),
                Err(crate::directory::Error::Db(e)) => return Err(e.into()),
                Err(e) => {
                    report.suspended -= 1;
                    tracing::info!(user = %id, error = %e, "an import could not suspend a person");
                }
            }
            tx.query("DELETE FROM import_members WHERE tenant_id = $1 AND data_set = $2 AND user_id = $3")
                .bind(options.data_set.clone())
                .bind(id.clone())
                .execute(tx.conn())
                .await?;
        }
        finish_batch(importer, tx, events).await?;
    }
    report.errors.sort_by_key(|e| e.row);
    Ok(report)
}

/// Run the academy's rules on a batch's changes, commit it, then run its enrollment plugins.
async fn finish_batch(importer: &Importer<'_>, mut tx: TenantTx, events: Vec<Event>) -> Result<(), sqlx::Error> {
    let pending: Pending = automation::run_rules(&mut tx, events, Context::academy(importer.actor.clone())).await?;
    tx.commit().await?;
    automation::after_commit(importer.plugins, importer.db, pending).await;
    Ok(())
}

enum Applied {
    Row(RowError),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for Applied {
    fn from(e: sqlx::Error) -> Applied {
        Applied::Db(e)
    }
}

/// Write one planned row; answers the account's id and the event for the academy's rules.
async fn apply(tx: &mut TenantTx, importer: &Importer<'_>, plan: Plan) -> Result<(String, Option<Event>), Applied> {
    let refused = |line: usize, e: crate::directory::Error| match e {
        crate::directory::Error::Db(e) => Applied::Db(e),
        crate::directory::Error::Invalid { field, message } => Applied::Row(row_error(line, &field, message)),
        other => Applied::Row(row_error(line, "", other.to_string())),
    };
    let (id, event) = match plan {
        Plan::Same(id) => return Ok((id, None)),
        Plan::Create(p, join) => {
            let new: NewUser = serde_json::from_value(json!({
                "email": p.email, "name": p.name, "status": p.status, "locale": p.locale,
                "external_id": p.external_id,
                "profile": p.profile.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect::<Map<String, Value>>(),
            }))
            .expect("a new user");
            let checked = new
                .check(&importer.grants.reach(Permission::UsersWrite))
                .map_err(|e| refused(p.line, e))?;
            let id = accounts::create(tx, importer.grants, &checked, None)
                .await
                .map_err(|e| refused(p.line, e))?;
            for org in &join {
                orgs::add_member(tx, org, &id).await.map_err(|e| refused(p.line, e))?;
            }
            (id.clone(), Event::created(&id))
        }
        Plan::Change {
            id,
            person,
            patch,
            join,
        } => {
            if !patch.is_empty() {
                let change: UserPatch = serde_json::from_value(Value::Object(patch)).expect("a patch");
                accounts::update(tx, importer.grants, importer.admin_id, &id, &change, None)
                    .await
                    .map_err(|e| refused(person.line, e))?;
            }
            for org in &join {
                orgs::add_member(tx, org, &id)
                    .await
                    .map_err(|e| refused(person.line, e))?;
            }
            (id.clone(), Event::changed(&id))
        }
    };
    Ok((id, Some(event)))
}

/// Note that this import's data set brought these people in (diff mode compares the next import with it):
/// one statement per few hundred people.
async fn remember(
    tx: &mut TenantTx,
    importer: &Importer<'_>,
    data_set: &str,
    users: &[String],
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for chunk in users.chunks(250) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, $2, $3, $4, ${})", i + 5))
            .collect();
        let sql = format!(
            "INSERT INTO import_members (tenant_id, data_set, import_id, updated_at, user_id) VALUES {} \
             ON CONFLICT (tenant_id, data_set, user_id) DO UPDATE SET import_id = excluded.import_id, updated_at = excluded.updated_at",
            values.join(", ")
        );
        let mut q = tx
            .query(&sql)
            .bind(data_set.to_owned())
            .bind(importer.import_id.to_owned())
            .bind(now);
        for id in chunk {
            q = q.bind(id.clone());
        }
        q.execute(tx.conn()).await?;
    }
    Ok(())
}

/// The errors as CSV: `row,column,reason`.
pub fn errors_csv(errors: &[RowError]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record(["row", "column", "reason"]);
    for e in errors {
        let _ = out.write_record([e.row.to_string(), e.column.clone(), e.reason.clone()]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Counts by outcome, for the audit log.
pub fn summary(report: &Report) -> Value {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("rows", report.rows),
        ("created", report.created),
        ("changed", report.changed),
        ("unchanged", report.unchanged),
        ("suspended", report.suspended),
        ("failed", report.failed),
    ] {
        m.insert(k, v);
    }
    json!({"data_set": report.data_set, "diff": report.diff, "counts": m})
}
