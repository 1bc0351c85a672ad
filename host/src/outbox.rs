//! The outbox: domain events written in the transaction of the change that caused them, so an event exists
//! exactly when its change does. `notify` turns them into messages later.
//!
//! A leaf: it imports nothing of the host but `db`, so every domain folder (and the plugin runtime, which
//! tells admins about a disabled plugin) can emit events without reaching up into `notify`.

use crate::db::{Arg, CHUNK, Sql, TenantTx, new_id, now_ms};
use serde_json::Value;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Someone was enrolled in a course.
    Enrolled,
    /// An enrollment is due within the academy's reminder window.
    DueSoon,
    /// An enrollment is past its due date and not completed.
    Overdue,
    /// A course was completed.
    Completed,
    /// A certificate was issued.
    CertificateIssued,
    /// An account was created for someone, with a link to choose a password.
    Invited,
    /// A sign-up waits for approval (to the people who may approve it).
    SignupPending,
    /// A sign-up or an enrollment request was approved.
    Approved,
    /// A plugin was disabled after repeated faults (to the academy's plugin admins).
    PluginDisabled,
    /// A scheduled report.
    Report,
    /// The daily digest of messages held for it.
    Digest,
    /// A message a notification plugin wrote on a schedule tick.
    Plugin,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 12] = [
        Kind::Enrolled,
        Kind::DueSoon,
        Kind::Overdue,
        Kind::Completed,
        Kind::CertificateIssued,
        Kind::Invited,
        Kind::SignupPending,
        Kind::Approved,
        Kind::PluginDisabled,
        Kind::Report,
        Kind::Digest,
        Kind::Plugin,
    ];

    /// The stored name (`due_soon`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Enrolled => "enrolled",
            Kind::DueSoon => "due_soon",
            Kind::Overdue => "overdue",
            Kind::Completed => "completed",
            Kind::CertificateIssued => "certificate_issued",
            Kind::Invited => "invited",
            Kind::SignupPending => "signup_pending",
            Kind::Approved => "approved",
            Kind::PluginDisabled => "plugin_disabled",
            Kind::Report => "report",
            Kind::Digest => "digest",
            Kind::Plugin => "plugin",
        }
    }

    /// The kind of a stored name.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The name notification plugins see (`due-soon`).
    pub fn hook_name(self) -> String {
        self.as_str().replace('_', "-")
    }

    /// The preference (`GET /api/v1/me/notification-preferences`) that decides how this kind is delivered;
    /// `None`: always at once (account links, reports someone scheduled, alerts to admins, digests).
    pub fn preference(self) -> Option<&'static str> {
        match self {
            Kind::Enrolled => Some("enrolled"),
            Kind::DueSoon => Some("due_soon"),
            Kind::Overdue => Some("overdue"),
            Kind::Completed => Some("completed"),
            Kind::CertificateIssued => Some("certificate_issued"),
            Kind::SignupPending | Kind::Approved => Some("approval"),
            Kind::Invited | Kind::PluginDisabled | Kind::Report | Kind::Digest | Kind::Plugin => None,
        }
    }
}

/// A domain event for the outbox.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: Kind,
    /// The person it happened to.
    pub user_id: Option<String>,
    /// The course it concerns.
    pub course_id: Option<String>,
    /// The enrollment it concerns.
    pub enrollment_id: Option<String>,
    /// The person whose action caused it; `None` for the academy itself (rules, plugins, the scheduler).
    /// Recipients a notification plugin adds must be within this person's reach.
    pub actor_id: Option<String>,
    /// Further data for the templates (`certificate_code`, `link`, `plugin`, `reason`, …).
    pub data: Value,
    /// Makes the event once-only (reminders: `due_soon:<enrollment>:<due_at>`).
    pub dedupe_key: Option<String>,
}

impl Event {
    /// An event about a person.
    pub fn about(kind: Kind, user_id: &str) -> Event {
        Event {
            kind,
            user_id: Some(user_id.to_owned()),
            course_id: None,
            enrollment_id: None,
            actor_id: None,
            data: Value::Object(Default::default()),
            dedupe_key: None,
        }
    }

    /// An event about one enrollment.
    pub fn enrollment(kind: Kind, user_id: &str, course_id: &str, enrollment_id: &str) -> Event {
        Event {
            course_id: Some(course_id.to_owned()),
            enrollment_id: Some(enrollment_id.to_owned()),
            ..Event::about(kind, user_id)
        }
    }

    /// An event about nobody in particular (a plugin disabled).
    pub fn academy(kind: Kind) -> Event {
        Event {
            user_id: None,
            ..Event::about(kind, "")
        }
    }

    /// Caused by this person.
    pub fn by(mut self, actor_id: Option<&str>) -> Event {
        self.actor_id = actor_id.map(str::to_owned);
        self
    }

    /// With one more datum for the templates.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Event {
        if let Value::Object(map) = &mut self.data {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// Once only, by this key.
    pub fn once(mut self, key: String) -> Event {
        self.dedupe_key = Some(key);
        self
    }
}

/// Write events to the outbox in the caller's transaction: they exist exactly when the change that caused
/// them does. An event whose `dedupe_key` was written before is skipped.
pub async fn emit(tx: &mut TenantTx, events: &[Event]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for chunk in events.chunks(CHUNK) {
        let mut sql = Sql::tenant(
            "INSERT INTO outbox_events (tenant_id, id, kind, user_id, course_id, enrollment_id, actor_id, data, \
             dedupe_key, created_at) VALUES ",
        );
        let rows: Vec<Vec<Arg>> = chunk
            .iter()
            .map(|e| {
                vec![
                    Arg::from(new_id()),
                    Arg::from(e.kind.as_str()),
                    Arg::from(e.user_id.as_deref()),
                    Arg::from(e.course_id.as_deref()),
                    Arg::from(e.enrollment_id.as_deref()),
                    Arg::from(e.actor_id.as_deref()),
                    Arg::from(e.data.to_string()),
                    Arg::from(e.dedupe_key.as_deref()),
                    Arg::Int(now),
                ]
            })
            .collect();
        sql.push_rows(&rows);
        sql.push(" ON CONFLICT DO NOTHING");
        tx.execute_sql(&sql).await?;
    }
    Ok(())
}
