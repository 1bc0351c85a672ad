//! Notifications: keep, replace or suppress the drafts of one event; messages on a schedule tick.

use super::unexpected;
use crate::db::TenantDb;
use crate::plugins::bindings::notifications::exports::aula::plugin::notification_hooks as wit;
use crate::plugins::host::PluginHost;
use crate::plugins::host_api::View;
use crate::plugins::runtime::{HookCall, HookError, HookOutput, Loaded};

/// The event a notice is about.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Its kind, as plugins name it (`due-soon`).
    pub kind: String,
    /// The person it happened to.
    pub user_id: Option<String>,
    /// The course it concerns.
    pub course_id: Option<String>,
    /// The due date it concerns (RFC 3339).
    pub due_at: Option<String>,
    /// Further data for the text, as text.
    pub data: Vec<(String, String)>,
}

/// A message, drafted by the host or written by a plugin.
#[derive(Debug, Clone)]
pub struct Message {
    /// Who receives it.
    pub recipient_id: String,
    /// Its language.
    pub locale: String,
    /// Subject line.
    pub subject: String,
    /// Plain text.
    pub body_text: String,
    /// HTML, if the plugin wrote one (cleaned before use).
    pub body_html: Option<String>,
}

/// What a plugin does with the drafts of one event.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Send them as drafted.
    Keep,
    /// Send these instead (recipients are checked against the event's scope).
    Replace(Vec<Message>),
    /// Send nothing.
    Suppress,
}

impl From<Message> for wit::Message {
    fn from(m: Message) -> wit::Message {
        wit::Message {
            recipient_id: m.recipient_id,
            locale: m.locale,
            subject: m.subject,
            body_text: m.body_text,
            body_html: m.body_html,
        }
    }
}

impl From<wit::Message> for Message {
    fn from(m: wit::Message) -> Message {
        Message {
            recipient_id: m.recipient_id,
            locale: m.locale,
            subject: m.subject,
            body_text: m.body_text,
            body_html: m.body_html,
        }
    }
}

impl PluginHost {
    /// One notification plugin's decision on the drafts of an event.
    pub async fn on_notice(
        &self,
        tenant: &TenantDb,
        loaded: &Loaded,
        view: View,
        notice: Notice,
        drafts: Vec<Message>,
    ) -> Result<Outcome, HookError> {
        let call = HookCall::OnNotice {
            notice: wit::Notice {
                kind: notice.kind,
                user_id: notice.user_id,
                course_id: notice.course_id,
                due_at: notice.due_at,
                data: notice.data,
            },
            drafts: drafts.into_iter().map(Into::into).collect(),
        };
        match self.call(tenant, loaded, view, call).await.result? {
            HookOutput::OnNotice(wit::Outcome::Keep) => Ok(Outcome::Keep),
            HookOutput::OnNotice(wit::Outcome::Suppress) => Ok(Outcome::Suppress),
            HookOutput::OnNotice(wit::Outcome::Replace(messages)) => {
                Ok(Outcome::Replace(messages.into_iter().map(Into::into).collect()))
            }
            other => Err(unexpected("on-notice", &other)),
        }
    }

    /// The messages one notification plugin writes on a schedule tick (`now` in RFC 3339).
    pub async fn on_tick(&self, tenant: &TenantDb, loaded: &Loaded, now: String) -> Result<Vec<Message>, HookError> {
        match self
            .call(tenant, loaded, View::Tenant, HookCall::OnTick(now))
            .await
            .result?
        {
            HookOutput::OnTick(messages) => Ok(messages.into_iter().map(Into::into).collect()),
            other => Err(unexpected("on-tick", &other)),
        }
    }
}
