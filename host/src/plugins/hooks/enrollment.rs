//! Enrollment: sign-up decisions, and actions on what happened to users. The action vocabulary is shared
//! with the academy's built-in rules (`learning::automation`).

use super::unexpected;
use crate::db::{Sql, TenantDb};
use crate::plugins::bindings::enrollment::exports::aula::plugin::enrollment_hooks as wit;
use crate::plugins::bindings::types::{FieldValue, ProfileField, User};
use crate::plugins::host::PluginHost;
use crate::plugins::host_api::{View, users};
use crate::plugins::runtime::{HookCall, HookError, HookOutput, Loaded};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What a rule or plugin can do to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Add to an organization (member limits apply).
    AddToOrg {
        /// The organization.
        #[schemars(regex(pattern = crate::fields::pattern::ID))]
        org_id: String,
    },
    /// Remove from an organization.
    RemoveFromOrg {
        /// The organization.
        #[schemars(regex(pattern = crate::fields::pattern::ID))]
        org_id: String,
    },
    /// Put a tag on the user (the tag must exist).
    AddTag {
        /// The tag's name.
        tag: String,
    },
    /// Take a tag off.
    RemoveTag {
        /// The tag's name.
        tag: String,
    },
    /// Enroll in a course (idempotent).
    Enroll {
        /// The course.
        #[schemars(regex(pattern = crate::fields::pattern::ID))]
        course_id: String,
        /// Due this many days from now; the course's default when absent.
        #[schemars(range(min = 1, max = 3650))]
        due_in_days: Option<u32>,
    },
    /// Set a profile field.
    SetField {
        /// The field's key.
        key: String,
        /// Its value.
        value: String,
    },
}

/// The plugins' verdict on a sign-up.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Let them in.
    Approve,
    /// Keep them pending for an admin, with the reason shown to admins.
    Hold(String),
    /// Turn them away, with the reason shown to them.
    Refuse(String),
}

/// Someone signing up, as the enrollment plugins see them.
#[derive(Debug, Clone)]
pub struct Signup {
    /// E-mail address (already checked).
    pub email: String,
    /// Name.
    pub name: String,
    /// Preferred language.
    pub locale: Option<String>,
    /// Profile fields given (already checked).
    pub profile: Map<String, Value>,
    /// The organization of the invitation used, if any.
    pub invited_to: Option<String>,
}

/// A plugin's answer to a sign-up.
#[derive(Debug, Clone)]
pub struct SignupOutcome {
    /// Let in, hold or refuse.
    pub decision: Decision,
    /// What to do once the user exists.
    pub actions: Vec<Action>,
}

/// What happened to a user, as enrollment plugins are told.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// The user was created.
    Created,
    /// The user was changed.
    Changed,
    /// The user completed a course.
    Completed {
        /// The course.
        course_id: String,
    },
}

/// Events with the users as plugins see them, read once for every plugin of a batch.
pub struct EventBatch {
    events: Vec<wit::Event>,
    sent: Vec<usize>,
}

impl EventBatch {
    /// Read the users of these events. Events of users that no longer exist are left out ([`Self::sent`]).
    pub async fn load(tenant: &TenantDb, events: &[(&str, &Happening)]) -> Result<EventBatch, sqlx::Error> {
        let mut tx = tenant.begin_read().await?;
        let types = users::field_types(&mut tx).await?;
        let mut ids: Vec<&str> = events.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut sql = Sql::tenant(
            "SELECT u.id, u.email, u.name, u.locale, u.status, u.external_id, u.manager_id, u.profile \
             FROM users u WHERE u.tenant_id = $1 AND u.id IN (",
        );
        sql.push_list(ids.iter().copied()).push(")");
        let rows = tx.fetch_all_sql(&sql).await?;
        let loaded = users::load_users(&mut tx, rows, &types).await?;
        tx.commit().await?;
        let by_id: HashMap<String, User> = loaded.into_iter().map(|u| (u.id.clone(), u)).collect();
        let mut batch = EventBatch {
            events: Vec::with_capacity(events.len()),
            sent: Vec::with_capacity(events.len()),
        };
        for (i, (user_id, happening)) in events.iter().enumerate() {
            let Some(user) = by_id.get(*user_id) else { continue };
            batch.events.push(match happening {
                Happening::Created => wit::Event::UserCreated(user.clone()),
                // The state before the change is not kept per event; plugins see the user as they are now.
                Happening::Changed => wit::Event::UserChanged(wit::UserChange {
                    before: user.clone(),
                    after: user.clone(),
                }),
                Happening::Completed { course_id } => wit::Event::CourseCompleted(wit::Completion {
                    user: user.clone(),
                    course_id: course_id.clone(),
                }),
            });
            batch.sent.push(i);
        }
        Ok(batch)
    }

    /// Which of the events given to [`Self::load`] are in the batch (by index), in order.
    pub fn sent(&self) -> &[usize] {
        &self.sent
    }

    /// No event has a user any more.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

fn action(a: wit::Action) -> Action {
    match a {
        wit::Action::AddToOrg(org_id) => Action::AddToOrg { org_id },
        wit::Action::RemoveFromOrg(org_id) => Action::RemoveFromOrg { org_id },
        wit::Action::AddTag(tag) => Action::AddTag { tag },
        wit::Action::RemoveTag(tag) => Action::RemoveTag { tag },
        wit::Action::Enroll(e) => Action::Enroll {
            course_id: e.course_id,
            due_in_days: e.due_in_days,
        },
        wit::Action::SetField(f) => Action::SetField {
            key: f.key,
            value: match f.value {
                FieldValue::Text(s) | FieldValue::Date(s) | FieldValue::Choice(s) => s,
                FieldValue::Number(n) => n.to_string(),
            },
        },
    }
}

impl PluginHost {
    /// One enrollment plugin's decision on a sign-up (it runs for the academy, seeing no one's scope).
    pub async fn on_signup(
        &self,
        tenant: &TenantDb,
        loaded: &Loaded,
        signup: &Signup,
    ) -> Result<SignupOutcome, HookError> {
        let input = wit::Signup {
            email: signup.email.clone(),
            name: signup.name.clone(),
            locale: signup.locale.clone(),
            profile: signup
                .profile
                .iter()
                .filter_map(|(key, value)| {
                    let value = match value {
                        Value::String(s) => FieldValue::Text(s.clone()),
                        Value::Number(n) => FieldValue::Number(n.as_f64()?),
                        _ => return None,
                    };
                    Some(ProfileField {
                        key: key.clone(),
                        value,
                    })
                })
                .collect(),
            invited_to: signup.invited_to.clone(),
        };
        match self
            .call(tenant, loaded, View::Tenant, HookCall::OnSignup(input))
            .await
            .result?
        {
            HookOutput::OnSignup(outcome) => Ok(SignupOutcome {
                decision: match outcome.decision {
                    wit::Decision::Approve => Decision::Approve,
                    wit::Decision::Hold(reason) => Decision::Hold(reason),
                    wit::Decision::Refuse(reason) => Decision::Refuse(reason),
                },
                actions: outcome.actions.into_iter().map(action).collect(),
            }),
            other => Err(unexpected("on-signup", &other)),
        }
    }

    /// One enrollment plugin's actions for each event of a batch, in the batch's order.
    pub async fn on_events(
        &self,
        tenant: &TenantDb,
        loaded: &Loaded,
        view: View,
        batch: &EventBatch,
    ) -> Result<Vec<Vec<Action>>, HookError> {
        match self
            .call(tenant, loaded, view, HookCall::OnEvents(batch.events.clone()))
            .await
            .result?
        {
            HookOutput::OnEvents(lists) => Ok(lists
                .into_iter()
                .map(|list| list.into_iter().map(action).collect())
                .collect()),
            other => Err(unexpected("on-events", &other)),
        }
    }
}
