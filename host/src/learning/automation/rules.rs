//! Built-in rules: their definition, loading them, the facts about users they test, and planning what they do
//! about a batch of events.

use super::*;
use crate::db::CHUNK;
use crate::db::{Arg, Sql, TenantTx, now_ms};
use crate::learning::Source;
pub use crate::plugins::hooks::enrollment::Action;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// A rule's definition: when it fires, on whom, and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// The triggers it listens to.
    #[schemars(length(min = 1))]
    pub on: Vec<TriggerName>,
    /// Conditions that must all hold (none: everyone).
    #[serde(default)]
    pub when: Conditions,
    /// What it does, in order.
    #[schemars(length(min = 1, max = 20))]
    pub then: Vec<Action>,
}

/// A trigger as rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerName {
    /// A user was created.
    UserCreated,
    /// A user changed.
    UserChanged,
    /// A user completed a course.
    CourseCompleted,
}

/// Conditions on the user (and, for `course_completed`, on the course).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Member of this organization or one below it.
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    pub org_id: Option<String>,
    /// Carries this tag (by name).
    pub tag: Option<String>,
    /// E-mail address in this domain.
    pub email_domain: Option<String>,
    /// For `course_completed`: the course completed.
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    pub course_id: Option<String>,
    /// A profile field has this value.
    pub field: Option<FieldIs>,
}

/// A profile field condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldIs {
    /// The field's key.
    pub key: String,
    /// The value it must have (compared as text).
    pub equals: String,
}

/// A rule as the engine runs it.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Definition.
    pub def: RuleDef,
    /// How often it may fire for one user.
    pub max_fires: i64,
    /// The materialized path of `when.org_id`.
    pub(super) org_path: Option<String>,
}

impl Rule {
    pub(super) fn source(&self) -> Source {
        Source::Rule {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }

    /// Does it fire on `trigger` for `user`?
    pub(super) fn matches(&self, trigger: &Trigger, user: &UserFacts) -> bool {
        let on = match trigger {
            Trigger::UserCreated => TriggerName::UserCreated,
            Trigger::UserChanged => TriggerName::UserChanged,
            Trigger::CourseCompleted { .. } => TriggerName::CourseCompleted,
        };
        if !self.def.on.contains(&on) {
            return false;
        }
        let when = &self.def.when;
        if let Some(course) = &when.course_id
            && !matches!(trigger, Trigger::CourseCompleted { course_id } if course_id == course)
        {
            return false;
        }
        if when.org_id.is_some() {
            match &self.org_path {
                Some(path) if user.org_paths.iter().any(|p| p.starts_with(path.as_str())) => {}
                _ => return false,
            }
        }
        if let Some(tag) = &when.tag
            && !user.tags.contains(&tag.to_lowercase())
        {
            return false;
        }
        if let Some(domain) = &when.email_domain {
            let at = user.email.rsplit('@').next().unwrap_or("");
            if !at.eq_ignore_ascii_case(domain) {
                return false;
            }
        }
        if let Some(field) = &when.field {
            let value = match user.profile.get(&field.key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => return false,
                Some(other) => other.to_string(),
            };
            if value != field.equals {
                return false;
            }
        }
        true
    }
}

/// The enabled rules of the tenant, or, with `only`, that one rule whether enabled or not (previews and
/// retroactive runs name their rule explicitly).
pub async fn load_rules(tx: &mut TenantTx, only: Option<&str>) -> Result<Vec<Rule>, sqlx::Error> {
    let mut sql =
        Sql::tenant("SELECT r.id, r.name, r.definition, r.max_fires_per_user FROM rules r WHERE r.tenant_id = $1");
    match only {
        Some(id) => sql.push(" AND r.id = ").push_bind(id),
        None => sql.push(" AND r.enabled = 1"),
    };
    sql.push(" ORDER BY r.created_at, r.id");
    let rows = tx.fetch_all_sql(&sql).await?;
    let mut rules = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let Ok(def) = serde_json::from_str::<RuleDef>(&row.try_get::<String, _>("definition")?) else {
            tracing::error!(rule = %id, "a stored rule definition does not parse; it is skipped");
            continue;
        };
        let org_path = match &def.when.org_id {
            Some(org) => crate::directory::orgs::find(tx, org).await?.map(|o| o.path),
            None => None,
        };
        rules.push(Rule {
            id,
            name: row.try_get("name")?,
            def,
            max_fires: row.try_get("max_fires_per_user")?,
            org_path,
        });
    }
    Ok(rules)
}

/// What rules look at about a user.
#[derive(Debug, Clone, Default)]
pub(super) struct UserFacts {
    pub(super) email: String,
    pub(super) org_paths: Vec<String>,
    /// Lower-case tag names.
    pub(super) tags: HashSet<String>,
    pub(super) profile: Map<String, Value>,
}

pub(super) async fn load_facts(tx: &mut TenantTx, ids: &[&str]) -> Result<HashMap<String, UserFacts>, sqlx::Error> {
    let mut out: HashMap<String, UserFacts> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::tenant("SELECT id, email, profile FROM users WHERE tenant_id = $1 AND id IN (");
        sql.push_list(chunk.iter().copied()).push(")");
        for row in tx.fetch_all_sql(&sql).await? {
            let profile: String = row.try_get("profile")?;
            out.insert(
                row.try_get("id")?,
                UserFacts {
                    email: row.try_get("email")?,
                    profile: serde_json::from_str(&profile).unwrap_or_default(),
                    ..UserFacts::default()
                },
            );
        }
        let mut sql = Sql::tenant(
            "SELECT m.user_id, o.path FROM memberships m JOIN orgs o ON o.id = m.org_id \
             WHERE m.tenant_id = $1 AND m.user_id IN (",
        );
        sql.push_list(chunk.iter().copied()).push(")");
        for row in tx.fetch_all_sql(&sql).await? {
            if let Some(f) = out.get_mut(&row.try_get::<String, _>(0)?) {
                f.org_paths.push(row.try_get(1)?);
            }
        }
        let mut sql = Sql::tenant(
            "SELECT ut.user_id, t.name FROM user_tags ut JOIN tags t ON t.id = ut.tag_id \
             WHERE ut.tenant_id = $1 AND ut.user_id IN (",
        );
        sql.push_list(chunk.iter().copied()).push(")");
        for row in tx.fetch_all_sql(&sql).await? {
            if let Some(f) = out.get_mut(&row.try_get::<String, _>(0)?) {
                f.tags.insert(row.try_get::<String, _>(1)?.to_lowercase());
            }
        }
    }
    Ok(out)
}

/// Decide what the rules do for `events`, within each rule's limit of firings per user. With `count` the
/// firings are recorded; a dry run leaves them as they are.
pub(super) async fn plan(
    tx: &mut TenantTx,
    rules: &[Rule],
    events: &[Event],
    journal: &mut Journal,
    context: &Context,
    count: bool,
) -> Result<Vec<Planned>, sqlx::Error> {
    let mut ids: Vec<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let facts = load_facts(tx, &ids).await?;
    // Which (rule, user) pairs match, before asking how often they fired.
    let mut matches: Vec<(&Rule, &Event)> = Vec::new();
    let mut seen: HashSet<(&str, &str, &'static str)> = HashSet::new();
    for event in events {
        let Some(user) = facts.get(&event.user_id) else {
            continue;
        };
        for rule in rules {
            if rule.matches(&event.trigger, user) && seen.insert((&rule.id, &event.user_id, event.trigger.name())) {
                matches.push((rule, event));
            }
        }
    }
    if matches.is_empty() {
        return Ok(Vec::new());
    }
    let mut fired: HashMap<(String, String), i64> = HashMap::new();
    let mut users: Vec<&str> = matches.iter().map(|(_, e)| e.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    for chunk in users.chunks(CHUNK) {
        let mut sql =
            Sql::tenant("SELECT rule_id, user_id, fires FROM rule_firings WHERE tenant_id = $1 AND user_id IN (");
        sql.push_list(chunk.iter().copied()).push(")");
        for row in tx.fetch_all_sql(&sql).await? {
            fired.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
        }
    }
    let mut planned = Vec::new();
    let mut firings: HashMap<(String, String), i64> = HashMap::new();
    for (rule, event) in matches {
        let key = (rule.id.clone(), event.user_id.clone());
        let before = fired.get(&key).copied().unwrap_or(0);
        let now = firings.entry(key).or_insert(0);
        if before + *now >= rule.max_fires {
            // Re-firing on a person's later change is simply not due; inside a chain of automatic steps it is
            // a loop being cut, which the admins should see.
            if event.depth > 0 {
                let p = Planned {
                    user_id: event.user_id.clone(),
                    source: rule.source(),
                    trigger: event.trigger.name(),
                    action: rule
                        .def
                        .then
                        .first()
                        .cloned()
                        .unwrap_or(Action::AddTag { tag: String::new() }),
                    depth: event.depth,
                };
                journal.note(
                    &p,
                    Outcome::Stopped,
                    Some(format!(
                        "rule {} already fired {} time(s) for this user, its limit; a chain of rules would repeat it",
                        rule.name, rule.max_fires
                    )),
                    &context.actor.request_id,
                );
            }
            continue;
        }
        *now += 1;
        for action in &rule.def.then {
            planned.push(Planned {
                user_id: event.user_id.clone(),
                source: rule.source(),
                trigger: event.trigger.name(),
                action: action.clone(),
                depth: event.depth,
            });
        }
    }
    if !count {
        return Ok(planned);
    }
    let now = now_ms();
    let rows: Vec<Vec<Arg>> = firings
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|((rule, user), n)| vec![Arg::from(rule), Arg::from(user), Arg::Int(n), Arg::Int(now)])
        .collect();
    for chunk in rows.chunks(CHUNK) {
        let mut sql = Sql::tenant("INSERT INTO rule_firings (tenant_id, rule_id, user_id, fires, last_at) VALUES ");
        sql.push_rows(chunk);
        sql.push(
            " ON CONFLICT (rule_id, user_id) DO UPDATE SET fires = rule_firings.fires + excluded.fires, last_at = excluded.last_at",
        );
        tx.execute_sql(&sql).await?;
    }
    Ok(planned)
}
