//! Enrollments: creating them (one or many at once, idempotently), dropping them, and their history.

use super::{DAY_MS, Source};
use crate::db::CHUNK;
use crate::db::{Arg, Sql, TenantTx, new_id, now_ms};
use crate::outbox;
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// One enrollment to make.
#[derive(Debug, Clone)]
pub struct NewEnrollment {
    /// The learner.
    pub user_id: String,
    /// The course.
    pub course_id: String,
    /// When it is due; the course's default (`due_days`) when `None`.
    pub due_at: Option<i64>,
}

/// What enrolling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolled {
    /// A new enrollment, with its id.
    Created(String),
    /// Already enrolled (in any state but dropped): nothing changed.
    Existing(String),
    /// A dropped enrollment was taken up again.
    Reopened(String),
}

impl Enrolled {
    /// The enrollment's id.
    pub fn id(&self) -> &str {
        match self {
            Enrolled::Created(id) | Enrolled::Existing(id) | Enrolled::Reopened(id) => id,
        }
    }

    /// Did anything change?
    pub fn changed(&self) -> bool {
        !matches!(self, Enrolled::Existing(_))
    }
}

/// Enroll each (user, course) pair, idempotently: a pair already enrolled is left as it is, a dropped one is
/// reopened. `origin` says how (`manual`, `self`, `bulk`, `rule`, `plugin`, `program`, `approval`); `source`
/// who, for the history. Callers have checked that the users and courses exist and are within scope.
/// Results are in the order of `items` (a pair named twice gets the same answer twice).
pub async fn enroll_many(
    tx: &mut TenantTx,
    items: &[NewEnrollment],
    source: &Source,
    origin: &str,
) -> Result<Vec<Enrolled>, sqlx::Error> {
    let now = now_ms();
    let cause = source.label();
    let mut done: HashMap<(String, String), Enrolled> = HashMap::with_capacity(items.len());
    let due_days = course_due_days(tx, items.iter().map(|i| i.course_id.as_str())).await?;
    for chunk in items.chunks(CHUNK) {
        // What exists already: one query for the chunk's users and courses.
        let users: HashSet<&str> = chunk.iter().map(|i| i.user_id.as_str()).collect();
        let courses: HashSet<&str> = chunk.iter().map(|i| i.course_id.as_str()).collect();
        let mut sql = Sql::tenant(
            "SELECT id, user_id, course_id, status, progress FROM enrollments WHERE tenant_id = $1 AND user_id IN (",
        );
        sql.push_list(users.iter().copied()).push(") AND course_id IN (");
        sql.push_list(courses.iter().copied()).push(")");
        let mut existing: HashMap<(String, String), (String, String, i64)> = HashMap::new();
        for row in tx.fetch_all_sql(&sql).await? {
            existing.insert(
                (row.try_get("user_id")?, row.try_get("course_id")?),
                (row.try_get("id")?, row.try_get("status")?, row.try_get("progress")?),
            );
        }
        let mut inserts: Vec<Vec<Arg>> = Vec::new();
        let mut new_ids: Vec<((String, String), String)> = Vec::new();
        let mut history: Vec<Vec<Arg>> = Vec::new();
        for item in chunk {
            let key = (item.user_id.clone(), item.course_id.clone());
            if done.contains_key(&key) {
                continue;
            }
            let due_at = item.due_at.or_else(|| {
                due_days
                    .get(&item.course_id)
                    .copied()
                    .flatten()
                    .map(|d| now + d * DAY_MS)
            });
            match existing.get(&key) {
                Some((id, status, progress)) if status == "dropped" => {
                    let status = if *progress > 0 { "in_progress" } else { "enrolled" };
                    tx.query("UPDATE enrollments SET status = $3, due_at = $4, source = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2")
                        .bind(id.clone())
                        .bind(status)
                        .bind(due_at)
                        .bind(origin.to_owned())
                        .bind(now)
                        .execute(tx.conn())
                        .await?;
                    history.push(history_row(id, now, "reenrolled", status, None, &cause));
                    done.insert(key, Enrolled::Reopened(id.clone()));
                }
                Some((id, _, _)) => {
                    done.insert(key, Enrolled::Existing(id.clone()));
                }
                None => {
                    let id = new_id();
                    inserts.push(vec![
                        Arg::from(id.clone()),
                        Arg::from(item.user_id.clone()),
                        Arg::from(item.course_id.clone()),
                        Arg::int(due_at),
                        Arg::from(origin),
                        Arg::Int(now),
                    ]);
                    new_ids.push((key.clone(), id));
                    // A placeholder so a pair named twice in this chunk is inserted once.
                    done.insert(key, Enrolled::Existing(String::new()));
                }
            }
        }
        if !inserts.is_empty() {
            let mut sql = Sql::tenant(
                "INSERT INTO enrollments (tenant_id, id, user_id, course_id, due_at, source, created_at, status, progress, updated_at) VALUES ",
            );
            // status, progress and updated_at are the same for every row: appended as literals per row.
            let rows: Vec<Vec<Arg>> = inserts;
            for (i, row) in rows.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("($1");
                for value in row {
                    sql.push(", ").push_bind(value.clone());
                }
                sql.push(", 'enrolled', 0, ").push_bind(now).push(")");
            }
            sql.push(" ON CONFLICT DO NOTHING RETURNING id");
            let inserted: HashSet<String> = tx
                .fetch_all_sql(&sql)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?;
            for (key, id) in new_ids {
                if inserted.contains(&id) {
                    history.push(history_row(&id, now, "enrolled", "enrolled", Some(origin), &cause));
                    done.insert(key, Enrolled::Created(id));
                } else {
                    // Someone else enrolled the pair between our read and our insert.
                    let row = tx
                        .query("SELECT id FROM enrollments WHERE tenant_id = $1 AND user_id = $2 AND course_id = $3")
                        .bind(key.0.clone())
                        .bind(key.1.clone())
                        .fetch_one(tx.conn())
                        .await?;
                    done.insert(key, Enrolled::Existing(row.try_get(0)?));
                }
            }
        }
        insert_history(tx, &history).await?;
    }
    let results: Vec<Enrolled> = items
        .iter()
        .map(|i| done[&(i.user_id.clone(), i.course_id.clone())].clone())
        .collect();
    // An approved request is told as "approved" by its approver; everything else as "enrolled".
    if origin != "approval" {
        let mut told = HashSet::new();
        let events: Vec<outbox::Event> = items
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.changed() && told.insert(r.id().to_owned()))
            .map(|(i, r)| {
                outbox::Event::enrollment(outbox::Kind::Enrolled, &i.user_id, &i.course_id, r.id())
                    .by(source.person_id())
            })
            .collect();
        outbox::emit(tx, &events).await?;
    }
    Ok(results)
}

async fn course_due_days<'a>(
    tx: &mut TenantTx,
    course_ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Option<i64>>, sqlx::Error> {
    let ids: HashSet<&str> = course_ids.collect();
    let mut out = HashMap::with_capacity(ids.len());
    let ids: Vec<&str> = ids.into_iter().collect();
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::tenant("SELECT id, due_days FROM courses WHERE tenant_id = $1 AND id IN (");
        sql.push_list(chunk.iter().copied()).push(")");
        for row in tx.fetch_all_sql(&sql).await? {
            out.insert(row.try_get("id")?, row.try_get("due_days")?);
        }
    }
    Ok(out)
}

/// One history row (for [`insert_history`]).
pub fn history_row(
    enrollment_id: &str,
    at: i64,
    action: &str,
    status: &str,
    detail: Option<&str>,
    cause: &str,
) -> Vec<Arg> {
    vec![
        Arg::from(new_id()),
        Arg::from(enrollment_id),
        Arg::Int(at),
        Arg::from(action),
        Arg::from(status),
        Arg::from(detail),
        Arg::from(cause),
    ]
}

/// Write history rows, many per statement.
pub async fn insert_history(tx: &mut TenantTx, rows: &[Vec<Arg>]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(CHUNK) {
        let mut sql = Sql::tenant(
            "INSERT INTO enrollment_history (tenant_id, id, enrollment_id, at, action, status, detail, cause) VALUES ",
        );
        sql.push_rows(chunk);
        tx.execute_sql(&sql).await?;
    }
    Ok(())
}

/// Record one step of an enrollment's history.
pub async fn record(
    tx: &mut TenantTx,
    enrollment_id: &str,
    action: &str,
    status: &str,
    detail: Option<&str>,
    source: &Source,
) -> Result<(), sqlx::Error> {
    insert_history(
        tx,
        &[history_row(
            enrollment_id,
            now_ms(),
            action,
            status,
            detail,
            &source.label(),
        )],
    )
    .await
}

/// Drop an enrollment (unenroll). Its progress and history stay; enrolling again reopens it.
/// Returns false when it was already dropped.
pub async fn drop_enrollment(tx: &mut TenantTx, enrollment_id: &str, source: &Source) -> Result<bool, sqlx::Error> {
    let n = tx
        .query("UPDATE enrollments SET status = 'dropped', updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND status <> 'dropped'")
        .bind(enrollment_id.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n > 0 {
        record(tx, enrollment_id, "dropped", "dropped", None, source).await?;
    }
    Ok(n > 0)
}
