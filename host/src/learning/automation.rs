//! Automation: built-in rules and enrollment plugins acting on users.
//!
//! Something happens to a user ([`Event`]: created, changed, completed a course). Built-in rules run inside
//! the transaction of the change ([`run_rules`]), so the change and what the rules do commit together. The
//! enrollment plugins run right after that commit ([`after_commit`]): a plugin call never holds a write
//! transaction open, and their hook fails open, so a faulting plugin cannot undo or block the change. What a
//! plugin answers is applied in a transaction of its own, with the rules applied to what it caused.
//!
//! Every action a rule or plugin takes or tries is written to `automation_log` with its source and outcome;
//! applied ones also go to the audit log under the rule's or plugin version's name.

use super::{DAY_MS, Source};
use crate::auth::Actor;
use crate::db::CHUNK;
use crate::db::{Arg, Sql, TenantDb, TenantTx, new_id, now_ms};
use crate::plugins::hooks::enrollment::{EventBatch, Happening};
use crate::plugins::host::PluginHost;
use crate::plugins::host_api::View;
use crate::plugins::manifest::Kind;
use crate::scope::Reach;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

pub use crate::plugins::hooks::enrollment::{Action, Decision, Signup as SignupRequest};

/// What happened to a user.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// The user was created (by an admin, an import or a sign-up).
    UserCreated,
    /// Their organizations, tags, profile, e-mail or status changed.
    UserChanged,
    /// They completed a course.
    CourseCompleted {
        /// The course.
        course_id: String,
    },
}

impl Trigger {
    /// What enrollment plugins are told happened.
    fn happening(&self) -> Happening {
        match self {
            Trigger::UserCreated => Happening::Created,
            Trigger::UserChanged => Happening::Changed,
            Trigger::CourseCompleted { course_id } => Happening::Completed {
                course_id: course_id.clone(),
            },
        }
    }

    /// The trigger's name in rules and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::UserCreated => "user_created",
            Trigger::UserChanged => "user_changed",
            Trigger::CourseCompleted { .. } => "course_completed",
        }
    }
}

/// One thing that happened to one user.
#[derive(Debug, Clone)]
pub struct Event {
    /// The user.
    pub user_id: String,
    /// What happened.
    pub trigger: Trigger,
    /// How many automatic steps led here (0 for a person's change).
    pub depth: u8,
}

impl Event {
    /// A user was created.
    pub fn created(user_id: &str) -> Event {
        Event {
            user_id: user_id.to_owned(),
            trigger: Trigger::UserCreated,
            depth: 0,
        }
    }

    /// A user was changed.
    pub fn changed(user_id: &str) -> Event {
        Event {
            user_id: user_id.to_owned(),
            trigger: Trigger::UserChanged,
            depth: 0,
        }
    }

    /// A user completed a course.
    pub fn completed(user_id: &str, course_id: &str) -> Event {
        Event {
            user_id: user_id.to_owned(),
            trigger: Trigger::CourseCompleted {
                course_id: course_id.to_owned(),
            },
            depth: 0,
        }
    }
}

/// Who triggered the events, which bounds what plugins may do in answer.
#[derive(Debug, Clone)]
pub struct Context {
    /// The person or process behind the change (request id included).
    pub actor: Actor,
    /// The triggering person and what they reach with `users.write`; `None` for the academy itself (sign-up,
    /// rules applied by an admin, the host's own jobs). Plugin actions outside it are refused.
    pub person: Option<(String, Reach)>,
}

impl Context {
    /// A person acting, who reaches `reach` with `users.write`.
    pub fn person(actor: Actor, user_id: &str, reach: Reach) -> Context {
        Context {
            actor,
            person: Some((user_id.to_owned(), reach)),
        }
    }

    /// The academy itself acting.
    pub fn academy(actor: Actor) -> Context {
        Context { actor, person: None }
    }
}

/// Events that still need the enrollment plugins once the transaction that caused them has committed.
#[must_use = "hand the pending events to after_commit once the transaction has committed"]
#[derive(Debug)]
pub struct Pending {
    pub(crate) events: Vec<Event>,
    pub(crate) context: Context,
}

/// The verdict and the actions to apply once the user exists (after approval when held).
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What happens to the sign-up: the strictest answer of every active enrollment plugin.
    pub decision: Decision,
    /// Actions with the plugin version that asked for each.
    pub actions: Vec<(Source, Action)>,
}

/// Held sign-up actions as stored in `signups.actions`.
pub fn actions_to_json(actions: &[(Source, Action)]) -> String {
    let list: Vec<Value> = actions
        .iter()
        .map(|(source, action)| serde_json::json!({ "source": source, "action": action }))
        .collect();
    Value::Array(list).to_string()
}

/// Read back what [`actions_to_json`] stored (entries that no longer parse are skipped).
pub fn actions_from_json(text: &str) -> Vec<(Source, Action)> {
    #[derive(Deserialize)]
    struct Stored {
        source: Source,
        action: Action,
    }
    serde_json::from_str::<Vec<Stored>>(text)
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.source, s.action))
        .collect()
}

/// How many automatic steps may follow one another before the chain is stopped as a loop.
pub const MAX_DEPTH: u8 = 5;

/// Events per plugin call: one call carries a whole batch, within the plugin's host-data and output caps.
const PLUGIN_BATCH: usize = 500;

/// A rule's definition: when it fires, on whom, and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// The triggers it listens to.
    pub on: Vec<TriggerName>,
    /// Conditions that must all hold (none: everyone).
    #[serde(default)]
    pub when: Conditions,
    /// What it does, in order.
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
    pub org_id: Option<String>,
    /// Carries this tag (by name).
    pub tag: Option<String>,
    /// E-mail address in this domain.
    pub email_domain: Option<String>,
    /// For `course_completed`: the course completed.
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
    org_path: Option<String>,
}

impl Rule {
    fn source(&self) -> Source {
        Source::Rule {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }

    /// Does it fire on `trigger` for `user`?
    fn matches(&self, trigger: &Trigger, user: &UserFacts) -> bool {
        let on = match trigger {
            Trigger::UserCreated => TriggerName::UserCreated,
            Trigger::UserChanged => TriggerName::UserChanged,
            Trigger::CourseCompleted { .. } => TriggerName::CourseCompleted,
        };
        if !self.def.on.contains(&on) {
            return false;
        }
        let when = &self.def.when;
        if let Some(course) = &when.course_id {
            if !matches!(trigger, Trigger::CourseCompleted { course_id } if course_id == course) {
                return false;
            }
        }
        if when.org_id.is_some() {
            match &self.org_path {
                Some(path) if user.org_paths.iter().any(|p| p.starts_with(path.as_str())) => {}
                _ => return false,
            }
        }
        if let Some(tag) = &when.tag {
            if !user.tags.contains(&tag.to_lowercase()) {
                return false;
            }
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
struct UserFacts {
    email: String,
    org_paths: Vec<String>,
    /// Lower-case tag names.
    tags: HashSet<String>,
    profile: Map<String, Value>,
}

async fn load_facts(tx: &mut TenantTx, ids: &[&str]) -> Result<HashMap<String, UserFacts>, sqlx::Error> {
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

/// One action decided for one user.
#[derive(Debug, Clone)]
struct Planned {
    user_id: String,
    source: Source,
    trigger: &'static str,
    action: Action,
    depth: u8,
}

/// How one action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    Unchanged,
    Refused,
    Stopped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
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
struct Journal {
    log: Vec<Vec<Arg>>,
    audit: Vec<Vec<Arg>>,
}

impl Journal {
    fn note(&mut self, p: &Planned, outcome: Outcome, message: Option<String>, request_id: &Option<String>) {
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

    async fn write(self, tx: &mut TenantTx) -> Result<(), sqlx::Error> {
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

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::AddToOrg { .. } => "add_to_org",
        Action::RemoveFromOrg { .. } => "remove_from_org",
        Action::AddTag { .. } => "add_tag",
        Action::RemoveTag { .. } => "remove_tag",
        Action::Enroll { .. } => "enroll",
        Action::SetField { .. } => "set_field",
    }
}

/// Apply the built-in rules to `events` (and to the events their own actions cause) inside `tx`. Returns
/// every event, for the enrollment plugins once `tx` has committed.
pub async fn run_rules(tx: &mut TenantTx, events: Vec<Event>, context: Context) -> Result<Pending, sqlx::Error> {
    let rules = load_rules(tx, None).await?;
    let mut all = Vec::with_capacity(events.len());
    let mut round = events;
    let mut journal = Journal::default();
    while !round.is_empty() {
        all.extend(round.iter().cloned());
        if rules.is_empty() {
            break;
        }
        let planned = plan(tx, &rules, &round, &mut journal, &context, true).await?;
        round = apply(tx, planned, None, &mut journal, &context).await?;
    }
    journal.write(tx).await?;
    Ok(Pending { events: all, context })
}

/// Decide what the rules do for `events`, within each rule's limit of firings per user. With `count` the
/// firings are recorded; a dry run leaves them as they are.
async fn plan(
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

/// The academy's tags, orgs and courses as actions need them, loaded once per round.
#[derive(Default)]
struct Targets {
    tags: Option<HashMap<String, String>>,
    orgs: HashMap<String, Option<crate::directory::orgs::OrgRow>>,
    courses: HashMap<String, Option<String>>,
    fields: Option<HashMap<String, String>>,
}

impl Targets {
    async fn tag(&mut self, tx: &mut TenantTx, name: &str) -> Result<Option<String>, sqlx::Error> {
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

    async fn org(
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
    async fn course(&mut self, tx: &mut TenantTx, id: &str) -> Result<Option<String>, sqlx::Error> {
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

    async fn field(&mut self, tx: &mut TenantTx, key: &str) -> Result<Option<String>, sqlx::Error> {
        if self.fields.is_none() {
            self.fields = Some(crate::directory::profile::field_types(tx).await?);
        }
        Ok(self.fields.as_ref().and_then(|f| f.get(key).cloned()))
    }
}

/// Apply planned actions. `scope` bounds plugin actions to what the triggering person reaches. Returns the
/// `user_changed` events the applied actions cause (one step deeper).
async fn apply(
    tx: &mut TenantTx,
    planned: Vec<Planned>,
    scope: Option<&Reach>,
    journal: &mut Journal,
    context: &Context,
) -> Result<Vec<Event>, sqlx::Error> {
    let rid = &context.actor.request_id;
    let mut changed: Vec<(String, u8)> = Vec::new();
    let mut targets = Targets::default();
    let mut enrolls: Vec<(Planned, super::enroll::NewEnrollment)> = Vec::new();
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
                    let item = super::enroll::NewEnrollment {
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
    let mut by_source: Vec<(Source, Vec<(Planned, super::enroll::NewEnrollment)>)> = Vec::new();
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
        let results = super::enroll::enroll_many(tx, &items, &source, origin).await?;
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
async fn add_members(
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

async fn add_tags(
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

/// Apply actions that were decided earlier (a held sign-up's plugin actions, at approval) to one user, with
/// the rules on what they cause.
pub async fn apply_actions(
    tx: &mut TenantTx,
    user_id: &str,
    actions: &[(Source, Action)],
    context: Context,
) -> Result<Pending, sqlx::Error> {
    let planned = actions
        .iter()
        .map(|(source, action)| Planned {
            user_id: user_id.to_owned(),
            source: source.clone(),
            trigger: "signup",
            action: action.clone(),
            depth: 0,
        })
        .collect();
    let mut journal = Journal::default();
    let caused = apply(tx, planned, None, &mut journal, &context).await?;
    journal.write(tx).await?;
    run_rules(tx, caused, context).await
}

/// Preview (`dry_run`) or apply one rule to users who exist already, as if `on`'s first trigger had just
/// happened to each of them. Returns, per affected user, the actions (with their outcome when applied).
pub async fn apply_rule_to(
    tx: &mut TenantTx,
    rule: &Rule,
    user_ids: &[String],
    dry_run: bool,
    context: &Context,
) -> Result<(Vec<(String, Vec<Action>)>, Pending), sqlx::Error> {
    let trigger = match rule.def.on.first() {
        Some(TriggerName::UserChanged) => Trigger::UserChanged,
        Some(TriggerName::CourseCompleted) => Trigger::CourseCompleted {
            course_id: rule.def.when.course_id.clone().unwrap_or_default(),
        },
        _ => Trigger::UserCreated,
    };
    let events: Vec<Event> = user_ids
        .iter()
        .map(|u| Event {
            user_id: u.clone(),
            trigger: trigger.clone(),
            depth: 0,
        })
        .collect();
    let mut journal = Journal::default();
    // A dry run plans exactly as a real run would, and writes nothing (its journal is dropped).
    let planned = plan(tx, std::slice::from_ref(rule), &events, &mut journal, context, !dry_run).await?;
    let mut affected: Vec<(String, Vec<Action>)> = Vec::new();
    for p in &planned {
        match affected.last_mut() {
            Some((u, list)) if *u == p.user_id => list.push(p.action.clone()),
            _ => affected.push((p.user_id.clone(), vec![p.action.clone()])),
        }
    }
    if dry_run {
        return Ok((
            affected,
            Pending {
                events: Vec::new(),
                context: context.clone(),
            },
        ));
    }
    let caused = apply(tx, planned, None, &mut journal, context).await?;
    journal.write(tx).await?;
    let pending = run_rules(tx, caused, context.clone()).await?;
    Ok((affected, pending))
}

/// Run the enrollment plugins' `on-events` on what committed, and apply their answers. Fails open: a fault
/// is recorded by the runtime and the change stands. Events caused by a plugin's own actions go through the
/// rules but are not offered to the plugins again, so plugins cannot loop through each other.
pub async fn after_commit(plugins: &PluginHost, tenant: &TenantDb, pending: Pending) {
    if pending.events.is_empty() {
        return;
    }
    if let Err(e) = run_plugins(plugins, tenant, pending).await {
        tracing::error!(tenant = %tenant.tenant_id(), error = %e, "applying enrollment plugin actions failed");
    }
}

async fn run_plugins(host: &PluginHost, tenant: &TenantDb, pending: Pending) -> Result<(), sqlx::Error> {
    let plugins = host.active(tenant, Kind::Enrollment).await?;
    if plugins.is_empty() {
        return Ok(());
    }
    let Pending { events, context } = pending;
    let view = match &context.person {
        Some((user_id, reach)) => View::User {
            user_id: user_id.clone(),
            reach: reach.clone(),
        },
        None => View::Tenant,
    };
    for batch in events.chunks(PLUGIN_BATCH) {
        let happenings: Vec<Happening> = batch.iter().map(|e| e.trigger.happening()).collect();
        let pairs: Vec<(&str, &Happening)> = batch.iter().map(|e| e.user_id.as_str()).zip(&happenings).collect();
        // The users as plugins see them, read once for every plugin.
        let prepared = EventBatch::load(tenant, &pairs).await?;
        if prepared.is_empty() {
            continue;
        }
        let mut planned = Vec::new();
        for loaded in &plugins {
            // Fails open: the runtime has recorded the fault; the changes stand.
            let Ok(lists) = host.on_events(tenant, loaded, view.clone(), &prepared).await else {
                continue;
            };
            let source = Source::Plugin {
                id: loaded.plugin_id.clone(),
                name: loaded.name.clone(),
                version: loaded.version.clone(),
            };
            for (&i, actions) in prepared.sent().iter().zip(lists) {
                let event = &batch[i];
                for action in actions {
                    planned.push(Planned {
                        user_id: event.user_id.clone(),
                        source: source.clone(),
                        trigger: event.trigger.name(),
                        action,
                        depth: event.depth + 1,
                    });
                }
            }
        }
        if planned.is_empty() {
            continue;
        }
        let scope = context.person.as_ref().map(|(_, reach)| reach);
        let mut tx = tenant.begin().await?;
        let mut journal = Journal::default();
        let caused = apply(&mut tx, planned, scope, &mut journal, &context).await?;
        journal.write(&mut tx).await?;
        let _ = run_rules(&mut tx, caused, context.clone()).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Ask every active enrollment plugin about a sign-up. Fails closed: a plugin that faults or errs holds the
/// sign-up for an admin. The strictest answer wins (refuse, then hold, then approve).
pub async fn decide_signup(host: &PluginHost, tenant: &TenantDb, request: &SignupRequest) -> Verdict {
    let mut verdict = Verdict {
        decision: Decision::Approve,
        actions: Vec::new(),
    };
    let plugins = match host.active(tenant, Kind::Enrollment).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "listing enrollment plugins for a sign-up failed");
            verdict.decision = Decision::Hold("the academy's sign-up plugins could not be reached".into());
            return verdict;
        }
    };
    for loaded in plugins {
        let decision = match host.on_signup(tenant, &loaded, request).await {
            Ok(outcome) => {
                let source = Source::Plugin {
                    id: loaded.plugin_id.clone(),
                    name: loaded.name.clone(),
                    version: loaded.version.clone(),
                };
                verdict
                    .actions
                    .extend(outcome.actions.into_iter().map(|a| (source.clone(), a)));
                outcome.decision
            }
            Err(e) => Decision::Hold(format!("plugin {} could not decide: {e}", loaded.name)),
        };
        verdict.decision = match (verdict.decision, decision) {
            (Decision::Refuse(r), _) | (_, Decision::Refuse(r)) => Decision::Refuse(r),
            (Decision::Hold(r), _) | (_, Decision::Hold(r)) => Decision::Hold(r),
            _ => Decision::Approve,
        };
    }
    verdict
}
