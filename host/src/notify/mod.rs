//! Notifications: domain events written to an outbox in the transaction of the change that caused them
//! ([`emit`]), turned into messages once ([`dispatch`]: recipients, templates per academy, kind and language,
//! each person's preferences, notification plugins), and delivered over SMTP at most once and, barring a
//! crash in a window of a few microseconds, exactly once ([`deliver`]), with every attempt recorded. The
//! [`schedule`] adds reminders, digests, plugin ticks and scheduled reports, each run once however many
//! replicas share the database.

pub mod deliver;
pub mod dispatch;
pub mod schedule;
pub mod smtp;
pub mod templates;

use crate::db::{Arg, Sql, TenantTx, new_id, now_ms};
use crate::state::AppState;
use serde::Deserialize;
use serde_json::Value;
use sqlx::Row;

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
    for chunk in events.chunks(crate::learning::CHUNK) {
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
        crate::learning::push_rows(&mut sql, &rows);
        sql.push(" ON CONFLICT DO NOTHING");
        tx.execute_sql(&sql).await?;
    }
    Ok(())
}

/// The host's notification settings (`[notifications]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Run the outbox, delivery and the scheduler in this process (turn off on replicas that only serve).
    pub enabled: bool,
    /// How often the outbox and the delivery queue are looked at, in milliseconds.
    pub poll_ms: u64,
    /// How often the scheduler runs (reminders, digests, plugin ticks, scheduled reports), in milliseconds.
    pub schedule_ms: u64,
    /// The first retry's delay after a temporary failure; each further one doubles it (up to an hour).
    pub retry_base_ms: u64,
    /// Attempts before a message is given up as failed.
    pub max_attempts: u32,
    /// How long a replica may hold a message it is sending before another takes it back, in milliseconds.
    pub lease_ms: u64,
    /// Messages sent per round (over one SMTP connection).
    pub batch: u32,
    /// The port in links to the academies, when they are not served on the scheme's default port.
    pub link_port: Option<u16>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            enabled: true,
            poll_ms: 1000,
            schedule_ms: 60_000,
            retry_base_ms: 30_000,
            max_attempts: 8,
            lease_ms: 120_000,
            batch: 100,
            link_port: None,
        }
    }
}

impl NotifySettings {
    /// Check the settings, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.poll_ms == 0 || self.schedule_ms == 0 {
            return Err("notifications.poll_ms and notifications.schedule_ms must be above 0".into());
        }
        if self.max_attempts == 0 {
            return Err("notifications.max_attempts must be at least 1".into());
        }
        if self.lease_ms < 1000 {
            return Err("notifications.lease_ms must be at least 1000".into());
        }
        if self.batch == 0 {
            return Err("notifications.batch must be at least 1".into());
        }
        Ok(())
    }

    /// The delay before attempt `attempt + 1` after `attempt` attempts failed temporarily.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        self.retry_base_ms.saturating_mul(factor).min(3_600_000) as i64
    }
}

/// An academy's sender and reminder settings (`GET/PUT /api/v1/notification-settings`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct AcademySettings {
    /// The sender's name (default: the academy's name).
    pub sender_name: Option<String>,
    /// The sender's address (default: the host's `mail.from_address`).
    pub sender_address: Option<String>,
    /// Where replies go.
    pub reply_to: Option<String>,
    /// Days before the due date that the "due soon" reminder goes out (0: none).
    pub due_soon_days: i64,
    /// The UTC hour at which daily digests go out.
    pub digest_hour: i64,
}

impl Default for AcademySettings {
    fn default() -> Self {
        AcademySettings {
            sender_name: None,
            sender_address: None,
            reply_to: None,
            due_soon_days: 3,
            digest_hour: 7,
        }
    }
}

/// Read an academy's settings (the defaults without a row).
pub async fn academy_settings(tx: &mut TenantTx) -> Result<AcademySettings, sqlx::Error> {
    let row = tx
        .query(
            "SELECT sender_name, sender_address, reply_to, due_soon_days, digest_hour FROM notification_settings \
             WHERE tenant_id = $1",
        )
        .fetch_optional(tx.conn())
        .await?;
    Ok(match row {
        None => AcademySettings::default(),
        Some(row) => AcademySettings {
            sender_name: row.try_get("sender_name")?,
            sender_address: row.try_get("sender_address")?,
            reply_to: row.try_get("reply_to")?,
            due_soon_days: row.try_get("due_soon_days")?,
            digest_hour: row.try_get("digest_hour")?,
        },
    })
}

/// A file sent with a message (a scheduled report).
#[derive(Debug, Clone)]
pub struct Attachment {
    /// File name, e.g. `completion-by-org-2026-11-25.csv`.
    pub name: String,
    /// MIME type, e.g. `text/csv`.
    pub content_type: String,
    /// The content.
    pub bytes: Vec<u8>,
}

/// Queue a scheduled report for each recipient (user ids of this academy; unknown or inactive ones are
/// skipped), in each recipient's language. Runs in the caller's transaction, so the messages exist exactly
/// when the schedule's run is recorded. Returns how many messages were queued.
pub async fn queue_report(
    tx: &mut TenantTx,
    recipients: &[String],
    report_title: &str,
    schedule_name: &str,
    source: &str,
    attachment: Attachment,
) -> Result<usize, sqlx::Error> {
    let composer = templates::Composer::for_tenant(tx).await?;
    let mut queued = 0;
    for recipient in recipients {
        let Some(person) = dispatch::person(tx, recipient).await? else {
            continue;
        };
        if person.status != "active" {
            continue;
        }
        let vars = serde_json::json!({
            "report": { "title": report_title, "schedule": schedule_name, "file": attachment.name },
        });
        let draft = composer.compose(Kind::Report, &person, &vars);
        let message = NewMessage {
            kind: Kind::Report,
            event_id: None,
            recipient: person,
            draft,
            source: source.to_owned(),
            status: "queued",
            reason: None,
            attachment: Some(attachment.clone()),
        };
        insert_message(tx, &message).await?;
        queued += 1;
    }
    Ok(queued)
}

/// A message ready to be stored.
pub struct NewMessage {
    /// What it is about.
    pub kind: Kind,
    /// The event it came from.
    pub event_id: Option<String>,
    /// To whom.
    pub recipient: dispatch::Person,
    /// Subject, text and HTML, in the recipient's language.
    pub draft: templates::Draft,
    /// `host`, `plugin:<id>@<version>`, `digest`, `schedule:<id>`.
    pub source: String,
    /// `queued`, `held` or `suppressed`.
    pub status: &'static str,
    /// Why it is held or suppressed.
    pub reason: Option<String>,
    /// A file to send with it.
    pub attachment: Option<Attachment>,
}

/// Store one message; queued ones are due at once. Returns its id.
pub async fn insert_message(tx: &mut TenantTx, m: &NewMessage) -> Result<String, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    let (name, content_type, bytes) = match &m.attachment {
        Some(a) => (
            Some(a.name.clone()),
            Some(a.content_type.clone()),
            Some(a.bytes.clone()),
        ),
        None => (None, None, None),
    };
    tx.query(
        "INSERT INTO messages (id, tenant_id, event_id, kind, recipient_id, to_address, to_name, locale, subject, \
         body_text, body_html, attachment_name, attachment_type, attachment, source, status, reason, \
         next_attempt_at, message_id, created_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(id.clone())
    .bind(m.event_id.clone())
    .bind(m.kind.as_str())
    .bind(m.recipient.id.clone())
    .bind(m.recipient.email.clone())
    .bind(m.recipient.name.clone())
    .bind(m.draft.locale.clone())
    .bind(m.draft.subject.clone())
    .bind(m.draft.text.clone())
    .bind(m.draft.html.clone())
    .bind(name)
    .bind(content_type)
    .bind(bytes)
    .bind(m.source.clone())
    .bind(m.status)
    .bind(m.reason.clone())
    .bind((m.status == "queued").then_some(now))
    .bind(format!("<{}@{}>", id, tx.tenant_id()))
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(id)
}

/// The address of an academy's portal, for links in messages.
pub fn academy_url(state: &AppState, tenant: &crate::tenancy::Tenant) -> String {
    let scheme = if state.config.cookie_secure { "https" } else { "http" };
    let host = tenant
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{}.{}", tenant.slug, state.config.base_domain));
    match state.config.notifications.link_port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// Run the outbox, delivery and the scheduler until the task is dropped.
pub async fn run(state: AppState) {
    let settings = state.config.notifications.clone();
    if !settings.enabled {
        return;
    }
    let mailer = std::sync::Arc::new(deliver::Deliverer::new(&state));
    let poll = {
        let state = state.clone();
        let mailer = mailer.clone();
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(settings.poll_ms));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = dispatch::run_once(&state).await {
                    tracing::warn!(error = %e, "turning events into messages failed; it runs again shortly");
                }
                if let Err(e) = mailer.run_once(&state).await {
                    tracing::warn!(error = %e, "delivering messages failed; it runs again shortly");
                }
            }
        }
    };
    let scheduler = async move {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(settings.schedule_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = schedule::run_once(&state, now_ms()).await {
                tracing::warn!(error = %e, "the notification scheduler failed; it runs again at its next tick");
            }
        }
    };
    tokio::join!(poll, scheduler);
}
