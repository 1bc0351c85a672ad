//! Report schedules: a report mailed daily, weekly or monthly, run with its owner's scope.
//!
//! The scheduler calls [`run_due_schedules`] every minute on every replica. Each due schedule is rendered,
//! then one tenant transaction moves `next_run_at` on only if it still holds the value the run started from,
//! and queues the messages only when that update took: of several replicas running the same slot, exactly one
//! sends it. A run that fails records why in `last_status` and still moves on, so a broken schedule does not
//! retry every minute.

use super::filters::DAY_MS;
use super::{Prepared, RunError, Runner, Viewer, output, presets::params_of};
use crate::audit::{Change, record};
use crate::auth::Actor;
use crate::db::{Db, Sql, TenantDb, TenantTx, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::notify::Attachment;
use crate::scope::{Grants, Permission};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// The largest attachment a scheduled report may have.
pub const MAX_ATTACHMENT: usize = 10 * 1024 * 1024;
/// Most recipients of one schedule.
pub const MAX_RECIPIENTS: usize = 50;
/// Most due schedules one call of [`run_due_schedules`] takes on (the next call takes the rest).
pub const BATCH: i64 = 200;

/// How often a schedule runs, at an hour (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Every day.
    Daily {
        /// Hour, 0–23.
        hour: i64,
    },
    /// Every week on a day (1 = Monday … 7 = Sunday).
    Weekly {
        /// Hour.
        hour: i64,
        /// Day of the week.
        weekday: i64,
    },
    /// Every month on a day (1–28, so every month has it).
    Monthly {
        /// Hour.
        hour: i64,
        /// Day of the month.
        monthday: i64,
    },
}

impl Timing {
    /// Check the fields of a schedule's timing; errors name the field.
    pub fn check(frequency: &str, hour: i64, weekday: Option<i64>, monthday: Option<i64>) -> ApiResult<Timing> {
        if !(0..=23).contains(&hour) {
            return Err(ApiError::invalid("hour", "must be an hour from 0 to 23 (UTC)"));
        }
        let absent = |field: &str, value: Option<i64>, only: &str| match value {
            Some(_) => Err(ApiError::invalid(field, format!("applies to {only} schedules only"))),
            None => Ok(()),
        };
        match frequency {
            "daily" => {
                absent("weekday", weekday, "weekly")?;
                absent("monthday", monthday, "monthly")?;
                Ok(Timing::Daily { hour })
            }
            "weekly" => {
                absent("monthday", monthday, "monthly")?;
                match weekday {
                    Some(d @ 1..=7) => Ok(Timing::Weekly { hour, weekday: d }),
                    _ => Err(ApiError::invalid(
                        "weekday",
                        "a weekly schedule needs a day of the week from 1 (Monday) to 7 (Sunday)",
                    )),
                }
            }
            "monthly" => {
                absent("weekday", weekday, "weekly")?;
                match monthday {
                    Some(d @ 1..=28) => Ok(Timing::Monthly { hour, monthday: d }),
                    _ => Err(ApiError::invalid(
                        "monthday",
                        "a monthly schedule needs a day of the month from 1 to 28",
                    )),
                }
            }
            _ => Err(ApiError::invalid("frequency", "must be daily, weekly or monthly")),
        }
    }

    fn hour(self) -> i64 {
        match self {
            Timing::Daily { hour } | Timing::Weekly { hour, .. } | Timing::Monthly { hour, .. } => hour,
        }
    }

    /// The first moment strictly after `after` (unix milliseconds) that the schedule runs at.
    pub fn next_after(self, after: i64) -> i64 {
        let first = after.div_euclid(DAY_MS);
        // Every day of the month used exists in every month, so two months always hold a match.
        for day in first..first + 64 {
            let fits = match self {
                Timing::Daily { .. } => true,
                // 1970-01-01 (day 0) was a Thursday, day 4 of the week.
                Timing::Weekly { weekday, .. } => (day + 3).rem_euclid(7) + 1 == weekday,
                Timing::Monthly { monthday, .. } => time::OffsetDateTime::from_unix_timestamp(day * 86_400)
                    .is_ok_and(|d| i64::from(d.day()) == monthday),
            };
            let at = day * DAY_MS + self.hour() * 3_600_000;
            if fits && at > after {
                return at;
            }
        }
        // Unreachable with checked timings; a day later still moves the schedule on.
        after + DAY_MS
    }

    fn parts(self) -> (&'static str, i64, Option<i64>, Option<i64>) {
        match self {
            Timing::Daily { hour } => ("daily", hour, None, None),
            Timing::Weekly { hour, weekday } => ("weekly", hour, Some(weekday), None),
            Timing::Monthly { hour, monthday } => ("monthly", hour, None, Some(monthday)),
        }
    }
}

/// A report schedule.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ScheduleOut {
    /// Id.
    pub id: String,
    /// Name (the mail's subject starts with it).
    pub name: String,
    /// The report's key.
    pub report: String,
    /// Its filters, as checked when saved.
    pub params: BTreeMap<String, String>,
    /// `csv` or `html`: the attachment.
    pub format: String,
    /// `daily`, `weekly` or `monthly`.
    pub frequency: String,
    /// Hour of the day (UTC).
    pub hour: i64,
    /// Day of the week for weekly schedules (1 = Monday).
    pub weekday: Option<i64>,
    /// Day of the month for monthly schedules (1–28).
    pub monthday: Option<i64>,
    /// User ids the report is mailed to.
    pub recipients: Vec<String>,
    /// Whether it runs.
    pub active: bool,
    /// The next run (RFC 3339).
    pub next_run_at: String,
    /// The last run.
    pub last_run_at: Option<String>,
    /// How the last run went: `sent to N recipients`, or `failed: …` with the reason.
    pub last_status: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

impl ScheduleOut {
    /// The timing as stored.
    pub fn timing(&self) -> ApiResult<Timing> {
        Timing::check(&self.frequency, self.hour, self.weekday, self.monthday)
    }
}

const SELECT: &str = "SELECT id, owner_id, name, report, params, format, frequency, hour, weekday, monthday, recipients, \
    active, next_run_at, last_run_at, last_status, created_at, updated_at FROM report_schedules";

fn from_row(row: &AnyRow) -> Result<ScheduleOut, sqlx::Error> {
    Ok(ScheduleOut {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        report: row.try_get("report")?,
        params: params_of(&row.try_get::<String, _>("params")?),
        format: row.try_get("format")?,
        frequency: row.try_get("frequency")?,
        hour: row.try_get("hour")?,
        weekday: row.try_get("weekday")?,
        monthday: row.try_get("monthday")?,
        recipients: serde_json::from_str(&row.try_get::<String, _>("recipients")?).unwrap_or_default(),
        active: row.try_get::<i64, _>("active")? != 0,
        next_run_at: rfc3339(row.try_get("next_run_at")?),
        last_run_at: row.try_get::<Option<i64>, _>("last_run_at")?.map(rfc3339),
        last_status: row.try_get("last_status")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// The owner's schedule `id`, or 404.
pub async fn find(tx: &mut TenantTx, owner: &str, id: &str) -> ApiResult<ScheduleOut> {
    let row = tx
        .query(&format!("{SELECT} WHERE tenant_id = $1 AND id = $2 AND owner_id = $3"))
        .bind(id.to_owned())
        .bind(owner.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound {
            what: "report schedule",
        })?;
    Ok(from_row(&row)?)
}

/// The owner's schedules, by name.
pub async fn list(tx: &mut TenantTx, owner: &str) -> ApiResult<Vec<ScheduleOut>> {
    let rows = tx
        .query(&format!(
            "{SELECT} WHERE tenant_id = $1 AND owner_id = $2 ORDER BY lower(name), id"
        ))
        .bind(owner.to_owned())
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Check recipients: each the owner, or a user of the academy within the owner's `users.read` reach. Errors
/// name the entry (`recipients[2]`); duplicates are dropped.
pub async fn check_recipients(
    tx: &mut TenantTx,
    owner: &str,
    grants: &Grants,
    recipients: &[String],
) -> ApiResult<Vec<String>> {
    if recipients.is_empty() {
        return Err(ApiError::invalid(
            "recipients",
            "name at least one recipient (a user id)",
        ));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(ApiError::invalid(
            "recipients",
            format!("may name at most {MAX_RECIPIENTS} users"),
        ));
    }
    let reach = grants.reach(Permission::UsersRead);
    let mut out: Vec<String> = Vec::with_capacity(recipients.len());
    for (i, id) in recipients.iter().enumerate() {
        let id = id.trim();
        if id != owner {
            let mut sql = Sql::tenant("SELECT u.id FROM users u WHERE u.tenant_id = $1 AND u.id = ");
            sql.push_bind(id);
            reach.push_user_filter(&mut sql, tx.backend());
            if tx.fetch_optional_sql(&sql).await?.is_none() {
                return Err(ApiError::invalid(
                    format!("recipients[{i}]"),
                    "no such user within your scope",
                ));
            }
        }
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

/// What a schedule stores, checked.
pub struct Fields<'a> {
    /// Name.
    pub name: &'a str,
    /// Report key.
    pub report: &'a str,
    /// Checked filters.
    pub params: &'a BTreeMap<String, String>,
    /// `csv` or `html`.
    pub format: &'a str,
    /// When.
    pub timing: Timing,
    /// Checked recipients.
    pub recipients: &'a [String],
    /// Runs or not.
    pub active: bool,
}

/// Store a new schedule, due at the first moment of its timing after `now`.
pub async fn insert(tx: &mut TenantTx, owner: &str, f: &Fields<'_>, now: i64) -> ApiResult<String> {
    let id = crate::db::new_id();
    let (frequency, hour, weekday, monthday) = f.timing.parts();
    tx.query(
        "INSERT INTO report_schedules (id, tenant_id, owner_id, name, report, params, format, frequency, hour, weekday, \
         monthday, recipients, active, next_run_at, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)",
    )
    .bind(id.clone())
    .bind(owner.to_owned())
    .bind(f.name.to_owned())
    .bind(f.report.to_owned())
    .bind(serde_json::to_string(f.params).unwrap_or_else(|_| "{}".into()))
    .bind(f.format.to_owned())
    .bind(frequency)
    .bind(hour)
    .bind(weekday)
    .bind(monthday)
    .bind(serde_json::to_string(f.recipients).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(f.active))
    .bind(f.timing.next_after(now))
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(id)
}

/// Replace a schedule's fields; its next run is computed afresh from `now`.
pub async fn update(tx: &mut TenantTx, id: &str, f: &Fields<'_>, now: i64) -> ApiResult<()> {
    let (frequency, hour, weekday, monthday) = f.timing.parts();
    tx.query(
        "UPDATE report_schedules SET name = $3, report = $4, params = $5, format = $6, frequency = $7, hour = $8, \
         weekday = $9, monthday = $10, recipients = $11, active = $12, next_run_at = $13, updated_at = $14 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.to_owned())
    .bind(f.name.to_owned())
    .bind(f.report.to_owned())
    .bind(serde_json::to_string(f.params).unwrap_or_else(|_| "{}".into()))
    .bind(f.format.to_owned())
    .bind(frequency)
    .bind(hour)
    .bind(weekday)
    .bind(monthday)
    .bind(serde_json::to_string(f.recipients).unwrap_or_else(|_| "[]".into()))
    .bind(i64::from(f.active))
    .bind(f.timing.next_after(now))
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Remove a schedule.
pub async fn delete(tx: &mut TenantTx, id: &str) -> ApiResult<()> {
    tx.query("DELETE FROM report_schedules WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// A rendered run, ready to queue.
pub struct Rendered {
    /// The report's title.
    pub title: String,
    /// The file.
    pub attachment: Attachment,
    /// Recipients still within the owner's scope.
    pub recipients: Vec<String>,
    /// Recipients left out because they are no longer within it.
    pub dropped: usize,
}

/// Render a schedule's report with its owner's scope (their grants as they are now).
pub async fn render(runner: &Runner, db: &TenantDb, owner: &str, s: &ScheduleOut) -> Result<Rendered, RunError> {
    let viewer = match Viewer::load(db, owner).await? {
        Ok(viewer) => viewer,
        Err(reason) => return Err(RunError::Api(ApiError::rule("owner_inactive", None, reason))),
    };
    let report: Prepared =
        super::prepare(runner, &viewer, &s.report, &s.params, "params.", super::Paging::Whole).await?;
    let (bytes, extension, content_type) = match s.format.as_str() {
        "html" => {
            let page = output::html_page(&report).await?;
            if page.len() > MAX_ATTACHMENT {
                return Err(output::too_large(MAX_ATTACHMENT));
            }
            (page.into_bytes(), "html", "text/html; charset=utf-8")
        }
        _ => (
            output::csv_bytes(&report, MAX_ATTACHMENT).await?,
            "csv",
            "text/csv; charset=utf-8",
        ),
    };
    // Recipients are checked again: the owner's scope may have shrunk since the schedule was saved.
    let mut tx = db.begin_read().await?;
    let mut recipients = Vec::with_capacity(s.recipients.len());
    for r in &s.recipients {
        if check_recipients(&mut tx, owner, &viewer.grants, std::slice::from_ref(r))
            .await
            .is_ok()
        {
            recipients.push(r.clone());
        }
    }
    tx.commit().await?;
    Ok(Rendered {
        title: report.info.title.clone(),
        attachment: Attachment {
            name: output::file_name(&report.info, report.now, extension),
            content_type: content_type.to_owned(),
            bytes,
        },
        dropped: s.recipients.len() - recipients.len(),
        recipients,
    })
}

/// Record a run and, when it was rendered, queue its messages, all in one transaction. With `claim`
/// (`Some((from, to))`), the run counts only if `next_run_at` still is `from`, and moves it to `to`;
/// otherwise (another replica ran this slot) nothing is written and `None` is answered. Returns the
/// `last_status` written.
pub async fn record_run(
    db: &TenantDb,
    id: &str,
    name: &str,
    claim: Option<(i64, i64)>,
    outcome: &Result<Rendered, RunError>,
    actor: Option<&Actor>,
) -> Result<Option<String>, sqlx::Error> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let claimed = match claim {
        Some((from, to)) => tx
            .query(
                "UPDATE report_schedules SET next_run_at = $3, last_run_at = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND next_run_at = $5",
            )
            .bind(id.to_owned())
            .bind(to)
            .bind(now)
            .bind(from)
            .execute(tx.conn())
            .await?
            .rows_affected(),
        None => tx
            .query("UPDATE report_schedules SET last_run_at = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(id.to_owned())
            .bind(now)
            .execute(tx.conn())
            .await?
            .rows_affected(),
    };
    if claimed != 1 {
        return Ok(None);
    }
    let status = match outcome {
        Ok(rendered) => {
            let queued = crate::notify::queue_report(
                &mut tx,
                &rendered.recipients,
                &rendered.title,
                name,
                &format!("schedule:{id}"),
                rendered.attachment.clone(),
            )
            .await?;
            let mut status = format!("sent to {queued} recipient{}", if queued == 1 { "" } else { "s" });
            if rendered.dropped > 0 {
                status.push_str(&format!(
                    "; {} no longer within the owner's scope left out",
                    rendered.dropped
                ));
            }
            status
        }
        Err(e) => format!("failed: {}", e.describe()),
    };
    tx.query("UPDATE report_schedules SET last_status = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .bind(status.clone())
        .execute(tx.conn())
        .await?;
    if let Some(actor) = actor {
        record(
            &mut tx,
            actor,
            Change {
                action: "report_schedule.run",
                target_type: "report_schedule",
                target_id: Some(id),
                before: None,
                after: Some(json!({ "status": status })),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(status))
}

/// Run every active schedule that is due at `now`, across academies; returns how many runs were recorded
/// here (a slot another replica ran first is not counted). Safe to call from every replica at once: each slot
/// is sent exactly once.
pub async fn run_due_schedules(db: &Db, runner: &Runner, now: i64) -> anyhow::Result<usize> {
    let mut platform = db.platform().begin().await?;
    let due = sqlx::query(
        "SELECT s.id, s.tenant_id FROM report_schedules s JOIN tenants t ON t.id = s.tenant_id \
         WHERE s.active = 1 AND s.next_run_at <= $1 AND t.status = 'active' ORDER BY s.next_run_at, s.id LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(platform.conn())
    .await?;
    platform.commit().await?;
    let mut done = 0;
    for row in due {
        let id: String = row.try_get(0)?;
        let tenant: String = row.try_get(1)?;
        match run_one(runner, &db.tenant(&tenant), &id, now).await {
            Ok(true) => done += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(schedule = %id, tenant = %tenant, error = %e, "a scheduled report could not be recorded")
            }
        }
    }
    Ok(done)
}

/// Run one due schedule of an academy; `false` when it is no longer due (another replica ran it).
async fn run_one(runner: &Runner, db: &TenantDb, id: &str, now: i64) -> anyhow::Result<bool> {
    let mut tx = db.begin_read().await?;
    let row = tx
        .query(&format!("{SELECT} WHERE tenant_id = $1 AND id = $2 AND active = 1"))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    tx.commit().await?;
    let Some(row) = row else { return Ok(false) };
    let due: i64 = row.try_get("next_run_at")?;
    if due > now {
        return Ok(false);
    }
    let owner: String = row.try_get("owner_id")?;
    let schedule = from_row(&row)?;
    let outcome = match schedule.timing() {
        Ok(_) => render(runner, db, &owner, &schedule).await,
        Err(e) => Err(RunError::Api(e)),
    };
    // A schedule whose timing cannot be read still moves on, a day at a time, with the reason recorded.
    let next = schedule
        .timing()
        .map_or(now.max(due) + DAY_MS, |t| t.next_after(now.max(due)));
    let actor = Actor::system("report scheduler");
    let recorded = record_run(db, id, &schedule.name, Some((due, next)), &outcome, Some(&actor)).await?;
    Ok(recorded.is_some())
}

/// Run due schedules every `every` until the task is dropped (each due schedule runs once however many
/// replicas run this).
pub async fn run(db: Db, runner: Runner, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = run_due_schedules(&db, &runner, now_ms()).await {
            tracing::warn!(error = %e, "scheduled reports failed; they run again at the next tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        super::super::filters::moment(text, false).unwrap()
    }

    #[test]
    fn next_runs_follow_the_timing() {
        // 2026-03-04 is a Wednesday.
        let wednesday_noon = at("2026-03-04T12:00:00Z");
        let daily = Timing::Daily { hour: 6 };
        assert_eq!(daily.next_after(wednesday_noon), at("2026-03-05T06:00:00Z"));
        assert_eq!(daily.next_after(at("2026-03-04T05:00:00Z")), at("2026-03-04T06:00:00Z"));
        // Strictly after: a run at its own time moves to the next one.
        assert_eq!(daily.next_after(at("2026-03-04T06:00:00Z")), at("2026-03-05T06:00:00Z"));
        let monday = Timing::Weekly { hour: 7, weekday: 1 };
        assert_eq!(monday.next_after(wednesday_noon), at("2026-03-09T07:00:00Z"));
        let sunday = Timing::Weekly { hour: 23, weekday: 7 };
        assert_eq!(sunday.next_after(wednesday_noon), at("2026-03-08T23:00:00Z"));
        let third = Timing::Monthly { hour: 0, monthday: 3 };
        assert_eq!(third.next_after(wednesday_noon), at("2026-04-03T00:00:00Z"));
        let fourth = Timing::Monthly { hour: 13, monthday: 4 };
        assert_eq!(fourth.next_after(wednesday_noon), at("2026-03-04T13:00:00Z"));
        assert_eq!(
            Timing::Monthly { hour: 0, monthday: 28 }.next_after(at("2026-02-28T01:00:00Z")),
            at("2026-03-28T00:00:00Z")
        );
    }

    #[test]
    fn timing_fields_are_checked_by_name() {
        let field = |e: ApiError| match e {
            ApiError::BadRequest { field, .. } => field.unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Timing::check("weekly", 7, None, None).unwrap_err()), "weekday");
        assert_eq!(field(Timing::check("weekly", 7, Some(8), None).unwrap_err()), "weekday");
        assert_eq!(
            field(Timing::check("monthly", 7, None, Some(29)).unwrap_err()),
            "monthday"
        );
        assert_eq!(field(Timing::check("daily", 24, None, None).unwrap_err()), "hour");
        assert_eq!(field(Timing::check("daily", 1, Some(1), None).unwrap_err()), "weekday");
        assert_eq!(field(Timing::check("hourly", 1, None, None).unwrap_err()), "frequency");
        assert!(Timing::check("monthly", 0, None, Some(28)).is_ok());
    }
}
