//! Applying planned actions in batches (multi-row statements), with the journal that writes the automation log
//! and the audit entries of what was applied.

use super::*;
use crate::db::CHUNK;
use crate::db::{Arg, Sql, TenantTx, new_id, now_ms};
use crate::learning::{DAY_MS, Source};
pub use crate::plugins::hooks::enrollment::Action;
use crate::scope::Reach;
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// One action decided for one user.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) user_id: String,
    pub(super) source: Source,
    pub(super) trigger: &'static str,
    pub(super) action: Action,
    pub(super) depth: u8,
}

/// How one action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Applied,
    Unchanged,
    Refused,
    Stopped,
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::Refused => "refused",
            Outcome::Stopped => "stopped",
        }
    }
}

/// The automation log and audit rows of one round, written together.
#[derive(Default)]
pub(super) struct Journal {
    pub(super) log: Vec<Vec<Arg>>,
    pub(super) audit: Vec<Vec<Arg>>,
}

impl Journal {
    pub(super) fn note(&mut self, p: &Planned, outcome: Outcome, message: Option<String>, request_id: &Option<String>) {
        let now = now_ms();
        let action = serde_json::to_string(&p.action).unwrap_or_default();
        self.log.push(vec![
            Arg::from(new_id()),
            Arg::Int(now),
            Arg::from(p.user_id.clone()),
            Arg::from(p.source.label()),
            Arg::from(p.trigger),
            Arg::from(action.clone()),
            Arg::from(outcome.as_str()),
            Arg::from(message),
        ]);
        if outcome == Outcome::Applied {
            let actor = p.source.actor(request_id.clone());
            self.audit.push(vec![
                Arg::from(new_id()),
                Arg::Int(now),
                Arg::from(actor.kind),
                Arg::from(actor.id),
                Arg::from(actor.label),
                Arg::from(format!("automation.{}", action_name(&p.action))),
                Arg::from("user"),
                Arg::from(p.user_id.clone()),
                Arg::from(action),
                Arg::from(request_id.clone()),
            ]);
        }
    }

    pub(super) async fn write(self, tx: &mut TenantTx) -> Result<(), sqlx::Error> {
        for chunk in self.log.chunks(CHUNK) {
            let mut sql = Sql::tenant(
                "INSERT INTO automation_log (tenant_id, id, at, user_id, source, trigger_name, action, outcome, message) VALUES ",
            );
            sql.push_rows(chunk);
            tx.execute_sql(&sql).await?;
        }
        for chunk in self.audit.chunks(CHUNK) {
            let mut sql = Sql::tenant(
                "INSERT INTO audit_log (tenant_id, id, at, actor_type, actor_id, actor_label, action, target_type, target_id, after, request_id) VALUES ",
            );
            sql.push_rows(chunk);
            tx.execute_sql(&sql).await?;
        }
        Ok(())
    }
}

pub(super) fn action_name(action: &Action) -> &'static str {
    match action {
        Action::AddToOrg { .. } => "add_to_org",
        Action::RemoveFromOrg { .. } => "remove_from_org",
        Action::AddTag { .. } => "add_tag",
        Action::RemoveTag { .. } => "remove_tag",
        Action::Enroll { .. } => "enroll",
        Action::SetField { .. } => "set_field",
    }
}

/// The academy's tags, orgs and courses as actions need them, loaded once per round.
#[derive(Default)]
pub(super) struct Targets {
    pub(super) tags: Option<HashMap<String, String>>,
    pub(super) orgs: HashMap<String, Option<crate::directory::orgs::OrgRow>>,
    pub(super) courses: HashMap<String, Option<String>>,
    pub(super) fields: Option<HashMap<String, String>>,
}

impl Targets {
    pub(super) async fn tag(&mut self, tx: &mut TenantTx, name: &str) -> Result<Option<String>, sqlx::Error> {
        if self.tags.is_none() {
            let rows = tx
                .query("SELECT id, name FROM tags WHERE tenant_id = $1")
                .fetch_all(tx.conn())
                .await?;
            let mut tags = HashMap::with_capacity(rows.len());
            for row in rows {
                tags.insert(
                    row.try_get::<String, _>(1)?.to_lowercase(),
                    row.try_get::<String, _>(0)?,
                );
            }
            self.tags = Some(tags);
        }
        Ok(self.tags.as_ref().and_then(|t| t.get(&name.to_lowercase()).cloned()))
    }

    pub(super) async fn org(
        &mut self,
        tx: &mut TenantTx,
        id: &str,
    ) -> Result<Option<crate::directory::orgs::OrgRow>, sqlx::Error> {
        if !self.orgs.contains_key(id) {
            let org = crate::directory::orgs::find(tx, id).await?;
            self.orgs.insert(id.to_owned(), org);
        }
        Ok(self.orgs[id].clone())
    }

    /// The course's status, if it exists.
    pub(super) async fn course(&mut self, tx: &mut TenantTx, id: &str) -> Result<Option<String>, sqlx::Error> {
        if !self.courses.contains_key(id) {
            let status = tx
                .query("SELECT status FROM courses WHERE tenant_id = $1 AND id = $2")
                .bind(id.to_owned())
                .fetch_optional(tx.conn())
                .await?
                .map(|r| r.try_get::<String, _>(0))
                .transpose()?;
            self.courses.insert(id.to_owned(), status);
        }
        Ok(self.courses[id].clone())
    }

    pub(super) async fn field(&mut self, tx: &mut TenantTx, key: &str) -> Result<Option<String>, sqlx::Error> {
        if self.fields.is_none() {
            self.fields = Some(crate::directory::profile::field_types(tx).await?);
        }
        Ok(self.fields.as_ref().and_then(|f| f.get(key).cloned()))
    }
}

/// Apply planned actions. `scope` bounds plugin actions to what the triggering person reaches. Returns the
/// `user_changed` events the applied actions cause (one step deeper).
pub(super) async fn apply(
    tx: &mut TenantTx,
    planned: Vec<Planned>,
    scope: Option<&Reach>,
    journal: &mut Journal,
    context: &Context,
) -> Result<Vec<Event>, sqlx::Error> {
    let rid = &context.actor.request_id;
    let mut changed: Vec<(String, u8)> = Vec::new();
    let mut targets = Targets::default();
    let mut enrolls: Vec<(Planned, crate::learning::enroll::NewEnrollment)> = Vec::new();
    let mut tag_rows: Vec<(Planned, String)> = Vec::new();
    let mut joins: Vec<(Planned, crate::directory::orgs::OrgRow)> = Vec::new();
    let now = now_ms();
    for p in planned {
        if p.depth >= MAX_DEPTH {
            journal.note(
                &p,
                Outcome::Stopped,
                Some(format!(
                    "stopped after {MAX_DEPTH} automatic steps in a row: the rules or plugins form a loop"
                )),
                rid,
            );
            continue;
        }
        let refuse =
            |journal: &mut Journal, p: &Planned, why: String| journal.note(p, Outcome::Refused, Some(why), rid);
        match &p.action {
            Action::AddToOrg { org_id } | Action::RemoveFromOrg { org_id } => {
                let Some(org) = targets.org(tx, org_id).await? else {
                    refuse(journal, &p, format!("no organization {org_id} in this academy"));
                    continue;
                };
                if scope.is_some_and(|r| !r.covers_org_path(&org.path)) {
                    refuse(
                        journal,
                        &p,
                        format!("{} is outside the scope of the person who triggered this", org.name),
                    );
                    continue;
                }
                if matches!(p.action, Action::AddToOrg { .. }) {
                    joins.push((p, org));
                } else {
                    let n = tx
                        .query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2 AND org_id = $3")
                        .bind(p.user_id.clone())
                        .bind(org.id.clone())
                        .execute(tx.conn())
                        .await?
                        .rows_affected();
                    let outcome = if n > 0 { Outcome::Applied } else { Outcome::Unchanged };
                    if n > 0 {
                        changed.push((p.user_id.clone(), p.depth + 1));
                    }
                    journal.note(&p, outcome, None, rid);
                }
            }
            Action::AddTag { tag } | Action::RemoveTag { tag } => {
                let Some(tag_id) = targets.tag(tx, tag).await? else {
                    refuse(journal, &p, format!("no tag named {tag:?} in this academy"));
                    continue;
                };
                if matches!(p.action, Action::AddTag { .. }) {
                    tag_rows.push((p, tag_id));
                } else {
                    let n = tx
                        .query("DELETE FROM user_tags WHERE tenant_id = $1 AND user_id = $2 AND tag_id = $3")
                        .bind(p.user_id.clone())
                        .bind(tag_id)
                        .execute(tx.conn())
                        .await?
                        .rows_affected();
                    if n > 0 {
                        changed.push((p.user_id.clone(), p.depth + 1));
                    }
                    journal.note(&p, if n > 0 { Outcome::Applied } else { Outcome::Unchanged }, None, rid);
                }
            }
            Action::Enroll { course_id, due_in_days } => match targets.course(tx, course_id).await? {
                None => refuse(journal, &p, format!("no course {course_id} in this academy")),
                Some(status) if status == "archived" => refuse(journal, &p, "the course is archived".into()),
                Some(_) if due_in_days.is_some_and(|d| d == 0 || d > 3650) => {
                    refuse(journal, &p, "due_in_days must be between 1 and 3650".into())
                }
                Some(_) => {
                    let item = crate::learning::enroll::NewEnrollment {
                        user_id: p.user_id.clone(),
                        course_id: course_id.clone(),
                        due_at: due_in_days.map(|d| now + i64::from(d) * DAY_MS),
                    };
                    enrolls.push((p, item));
                }
            },
            Action::SetField { key, value } => {
                let Some(kind) = targets.field(tx, key).await? else {
                    refuse(journal, &p, format!("no profile field {key:?} in this academy"));
                    continue;
                };
                let value = match kind.as_str() {
                    "number" => match value.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                        Some(n) => Value::Number(n),
                        None => {
                            refuse(journal, &p, format!("{key} takes a number, not {value:?}"));
                            continue;
                        }
                    },
                    _ => Value::String(value.clone()),
                };
                let Some(row) = tx
                    .query("SELECT profile FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(p.user_id.clone())
                    .fetch_optional(tx.conn())
                    .await?
                else {
                    continue;
                };
                let mut profile: Map<String, Value> =
                    serde_json::from_str(&row.try_get::<String, _>(0)?).unwrap_or_default();
                if profile.get(key) == Some(&value) {
                    journal.note(&p, Outcome::Unchanged, None, rid);
                    continue;
                }
                profile.insert(key.clone(), value);
                tx.query("UPDATE users SET profile = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
                    .bind(p.user_id.clone())
                    .bind(Value::Object(profile).to_string())
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
                changed.push((p.user_id.clone(), p.depth + 1));
                journal.note(&p, Outcome::Applied, None, rid);
            }
        }
    }
    add_members(tx, joins, journal, rid, &mut changed).await?;
    add_tags(tx, tag_rows, journal, rid, &mut changed).await?;
    // Enrollments, grouped by source so the history names each rule or plugin version.
    let mut by_source: Vec<(Source, Vec<(Planned, crate::learning::enroll::NewEnrollment)>)> = Vec::new();
    for (p, item) in enrolls {
        match by_source.iter_mut().find(|(s, _)| *s == p.source) {
            Some((_, list)) => list.push((p, item)),
            None => by_source.push((p.source.clone(), vec![(p, item)])),
        }
    }
    for (source, list) in by_source {
        let origin = match source {
            Source::Plugin { .. } => "plugin",
            _ => "rule",
        };
        let items: Vec<_> = list.iter().map(|(_, i)| i.clone()).collect();
        let results = crate::learning::enroll::enroll_many(tx, &items, &source, origin).await?;
        for ((p, _), result) in list.iter().zip(results) {
            let outcome = if result.changed() {
                Outcome::Applied
            } else {
                Outcome::Unchanged
            };
            journal.note(p, outcome, None, rid);
        }
    }
    changed.sort_unstable();
    changed.dedup_by(|a, b| a.0 == b.0);
    Ok(changed
        .into_iter()
        .map(|(user_id, depth)| Event {
            user_id,
            trigger: Trigger::UserChanged,
            depth,
        })
        .collect())
}

/// Add users to organizations. Where no organization up the chain has a member limit the rows go in many
/// per statement; otherwise one by one through the limit check, which locks and counts.
pub(super) async fn add_members(
    tx: &mut TenantTx,
    joins: Vec<(Planned, crate::directory::orgs::OrgRow)>,
    journal: &mut Journal,
    rid: &Option<String>,
    changed: &mut Vec<(String, u8)>,
) -> Result<(), sqlx::Error> {
    if joins.is_empty() {
        return Ok(());
    }
    let mut limited: HashMap<String, bool> = HashMap::new();
    let mut bulk: Vec<(Planned, String)> = Vec::new();
    for (p, org) in joins {
        if !limited.contains_key(&org.id) {
            let chain: Vec<&str> = org.path.split('/').filter(|s| !s.is_empty()).collect();
            let mut sql =
                Sql::tenant("SELECT COUNT(*) FROM orgs WHERE tenant_id = $1 AND member_limit IS NOT NULL AND id IN (");
            sql.push_list(chain.iter().copied()).push(")");
            let n: i64 = tx
                .fetch_optional_sql(&sql)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            limited.insert(org.id.clone(), n > 0);
        }
        if limited[&org.id] {
            match crate::directory::orgs::add_member(tx, &org, &p.user_id).await {
                Ok(true) => {
                    changed.push((p.user_id.clone(), p.depth + 1));
                    journal.note(&p, Outcome::Applied, None, rid);
                }
                Ok(false) => journal.note(&p, Outcome::Unchanged, None, rid),
                Err(crate::directory::Error::Db(e)) => return Err(e),
                // Whatever the directory refuses (a member limit reached) is this action's refusal.
                Err(e) => journal.note(&p, Outcome::Refused, Some(e.to_string()), rid),
            }
        } else {
            bulk.push((p, org.id));
        }
    }
    let now = now_ms();
    for chunk in bulk.chunks(CHUNK) {
        let mut sql = Sql::tenant("INSERT INTO memberships (tenant_id, user_id, org_id, created_at) VALUES ");
        let rows: Vec<Vec<Arg>> = chunk
            .iter()
            .map(|(p, org)| vec![Arg::from(p.user_id.clone()), Arg::from(org.clone()), Arg::Int(now)])
            .collect();
        sql.push_rows(&rows);
        sql.push(" ON CONFLICT DO NOTHING RETURNING user_id, org_id");
        let inserted: HashSet<(String, String)> = tx
            .fetch_all_sql(&sql)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for (p, org) in chunk {
            if inserted.contains(&(p.user_id.clone(), org.clone())) {
                changed.push((p.user_id.clone(), p.depth + 1));
                journal.note(p, Outcome::Applied, None, rid);
            } else {
                journal.note(p, Outcome::Unchanged, None, rid);
            }
        }
    }
    Ok(())
}

pub(super) async fn add_tags(
    tx: &mut TenantTx,
    rows: Vec<(Planned, String)>,
    journal: &mut Journal,
    rid: &Option<String>,
    changed: &mut Vec<(String, u8)>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for chunk in rows.chunks(CHUNK) {
        let mut sql = Sql::tenant("INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ");
        let values: Vec<Vec<Arg>> = chunk
            .iter()
            .map(|(p, tag)| vec![Arg::from(p.user_id.clone()), Arg::from(tag.clone()), Arg::Int(now)])
            .collect();
        sql.push_rows(&values);
        sql.push(" ON CONFLICT DO NOTHING RETURNING user_id, tag_id");
        let inserted: HashSet<(String, String)> = tx
            .fetch_all_sql(&sql)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for (p, tag) in chunk {
            if inserted.contains(&(p.user_id.clone(), tag.clone())) {
                changed.push((p.user_id.clone(), p.depth + 1));
                journal.note(p, Outcome::Applied, None, rid);
            } else {
                journal.note(p, Outcome::Unchanged, None, rid);
            }
        }
    }
    Ok(())
}
