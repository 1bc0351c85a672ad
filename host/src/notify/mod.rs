//! Notifications: domain events written to an outbox in the transaction of the change that caused them
//! ([`crate::outbox::emit`]), turned into messages once ([`dispatch`]: recipients, templates per academy, kind and language,
//! each person's preferences, notification plugins), and delivered over SMTP at most once and, barring a
//! crash in a window of a few microseconds, exactly once ([`deliver`]), with every attempt recorded. The
//! [`schedule`] adds reminders, digests, plugin ticks and scheduled reports, each run once however many
//! replicas share the database.

pub mod deliver;
pub mod dispatch;
pub mod schedule;
pub mod smtp;
pub mod templates;

use crate::db::{TenantTx, new_id, now_ms};
use crate::outbox::Kind;
use sqlx::Row;

/// What the outbox, delivery and the scheduler use: the database, the settings (`[notifications]`, `[mail]`,
/// the academy addresses), and the notification plugins.
#[derive(Clone)]
pub struct Notifier {
    /// The database.
    pub db: crate::db::Db,
    /// The host's settings.
    pub config: std::sync::Arc<crate::config::Config>,
    /// The notification plugins' door.
    pub plugins: std::sync::Arc<crate::plugins::host::PluginHost>,
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

/// Run the outbox, delivery and the scheduler until the task is dropped. (Scheduled reports have a loop of
/// their own: `reports::schedules::run`.)
pub async fn run(notifier: Notifier) {
    let settings = notifier.config.notifications.clone();
    if !settings.enabled {
        return;
    }
    let mailer = std::sync::Arc::new(deliver::Deliverer::new(&notifier));
    let poll = {
        let notifier = notifier.clone();
        let mailer = mailer.clone();
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(settings.poll_ms));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = dispatch::run_once(&notifier).await {
                    tracing::warn!(error = %e, "turning events into messages failed; it runs again shortly");
                }
                if let Err(e) = mailer.run_once(&notifier).await {
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
            if let Err(e) = schedule::run_once(&notifier, now_ms()).await {
                tracing::warn!(error = %e, "the notification scheduler failed; it runs again at its next tick");
            }
        }
    };
    tokio::join!(poll, scheduler);
}
