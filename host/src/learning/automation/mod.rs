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

use super::Source;
use crate::auth::Actor;
use crate::db::TenantTx;
use crate::plugins::hooks::enrollment::Happening;
use crate::scope::Reach;
use serde::Deserialize;
use serde_json::Value;

pub use crate::plugins::hooks::enrollment::{Action, Decision, Signup as SignupRequest};

mod apply;
mod plugins;
mod rules;

use apply::*;
pub use plugins::{after_commit, decide_signup};
use rules::*;
pub use rules::{Conditions, FieldIs, Rule, RuleDef, TriggerName, load_rules};

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
