//! The scheduler: due-date reminders, daily digests, notification plugins' ticks and scheduled reports.
//!
//! Every job is safe with several replicas sharing one database. Reminders are outbox events with a
//! once-only key per enrollment and due date. Digests and plugin ticks claim a slot (`schedule_slots`) in
//! the transaction that writes their messages, so a slot's messages are written once. Scheduled reports
//! advance their schedule conditionally in the transaction that queues their mail.

use super::Notifier;
use super::templates::{Composer, Links};
use super::{NewMessage, insert_message};
use crate::db::{TenantDb, TenantTx, now_ms, rfc3339};
use crate::learning::DAY_MS;
use crate::outbox::{Event, Kind};
use crate::plugins::manifest::Kind as PluginKind;
use serde_json::json;
use sqlx::Row;

/// Enrollments reminded per academy per round (the rest follow in the next rounds).
const REMINDERS_PER_ROUND: i64 = 5000;

/// One round over every active academy at `now`.
pub async fn run_once(notifier: &Notifier, now: i64) -> anyhow::Result<()> {
    let mut tx = notifier.db.platform().begin().await?;
    let tenants = crate::tenancy::list(&mut tx).await?;
    tx.commit().await?;
    for tenant in tenants.iter().filter(|t| !t.suspended()) {
        let db = notifier.db.tenant(&tenant.id);
        if let Err(e) = academy_round(notifier, &db, tenant, now).await {
            tracing::warn!(tenant = %tenant.slug, error = %e, "a scheduled notification job failed");
        }
    }
    Ok(())
}

async fn academy_round(
    notifier: &Notifier,
    db: &TenantDb,
    tenant: &crate::tenancy::Tenant,
    now: i64,
) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    let settings = super::academy_settings(&mut tx).await?;
    remind(&mut tx, settings.due_soon_days, now).await?;
    tx.commit().await?;
    let day = rfc3339(now);
    let hour: i64 = day.get(11..13).and_then(|h| h.parse().ok()).unwrap_or(0);
    if hour >= settings.digest_hour {
        digest(notifier, db, tenant, day.get(..10).unwrap_or_default(), now).await?;
    }
    tick(notifier, db, now).await?;
    Ok(())
}

/// Outbox events for enrollments due within `days` days and for enrollments past due, once per enrollment
/// and due date.
pub async fn remind(tx: &mut TenantTx, days: i64, now: i64) -> Result<usize, sqlx::Error> {
    let mut events = Vec::new();
    let mut queries = vec![(
        Kind::Overdue,
        "overdue",
        "SELECT e.id, e.user_id, e.course_id, e.due_at FROM enrollments e JOIN users u ON u.id = e.user_id \
         WHERE e.tenant_id = $1 AND e.status IN ('enrolled', 'in_progress') AND e.due_at IS NOT NULL AND e.due_at < $2 \
         AND e.due_at >= $3 AND u.status = 'active' AND NOT EXISTS (SELECT 1 FROM outbox_events x WHERE x.tenant_id = $1 \
         AND x.dedupe_key = 'overdue:' || e.id || ':' || CAST(e.due_at AS TEXT)) LIMIT $4",
    )];
    if days > 0 {
        queries.push((
            Kind::DueSoon,
            "due_soon",
            "SELECT e.id, e.user_id, e.course_id, e.due_at FROM enrollments e JOIN users u ON u.id = e.user_id \
             WHERE e.tenant_id = $1 AND e.status IN ('enrolled', 'in_progress') AND e.due_at IS NOT NULL \
             AND e.due_at >= $2 AND e.due_at < $3 AND u.status = 'active' AND NOT EXISTS (SELECT 1 FROM outbox_events x \
             WHERE x.tenant_id = $1 AND x.dedupe_key = 'due_soon:' || e.id || ':' || CAST(e.due_at AS TEXT)) LIMIT $4",
        ));
    }
    for (kind, prefix, sql) in queries {
        // Overdue: past due, but not for more than 30 days (older ones were reminded, or predate reminders).
        let (a, b) = match kind {
            Kind::Overdue => (now, now - 30 * DAY_MS),
            _ => (now, now + days * DAY_MS),
        };
        let rows = tx
            .query(sql)
            .bind(a)
            .bind(b)
            .bind(REMINDERS_PER_ROUND)
            .fetch_all(tx.conn())
            .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let due: i64 = row.try_get("due_at")?;
            events.push(
                Event::enrollment(
                    kind,
                    &row.try_get::<String, _>("user_id")?,
                    &row.try_get::<String, _>("course_id")?,
                    &id,
                )
                .with("due_at", due)
                .once(format!("{prefix}:{id}:{due}")),
            );
        }
    }
    crate::outbox::emit(tx, &events).await?;
    Ok(events.len())
}

/// Claim a slot of a job: true when this caller is the one that runs it.
pub async fn claim_slot(tx: &mut TenantTx, job: &str, slot: &str) -> Result<bool, sqlx::Error> {
    let n = tx
        .query("INSERT INTO schedule_slots (tenant_id, job, slot, claimed_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(job.to_owned())
        .bind(slot.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// The day's digests: one message per person with held messages, listing them; the held messages become
/// `digested`. Runs once per academy and day.
pub async fn digest(
    notifier: &Notifier,
    db: &TenantDb,
    tenant: &crate::tenancy::Tenant,
    day: &str,
    now: i64,
) -> anyhow::Result<usize> {
    let mut tx = db.begin().await?;
    let pending: i64 = tx
        .query("SELECT COUNT(*) FROM messages WHERE tenant_id = $1 AND status = 'held'")
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if pending == 0 || !claim_slot(&mut tx, "digest", day).await? {
        tx.commit().await?;
        return Ok(0);
    }
    let links = Links {
        academy_url: Some(crate::tenancy::academy_url(&notifier.config, tenant)),
    };
    let composer = Composer::with_links(&mut tx, links).await?;
    let rows = tx
        .query(
            "SELECT id, recipient_id, subject, body_text FROM messages WHERE tenant_id = $1 AND status = 'held' \
             AND created_at <= $2 ORDER BY recipient_id, created_at",
        )
        .bind(now)
        .fetch_all(tx.conn())
        .await?;
    // (message id, subject, text) of each held message, per recipient.
    type Held = (String, String, String);
    let mut by_person: Vec<(String, Vec<Held>)> = Vec::new();
    for row in rows {
        let recipient: Option<String> = row.try_get("recipient_id")?;
        let Some(recipient) = recipient else { continue };
        let item = (row.try_get("id")?, row.try_get("subject")?, row.try_get("body_text")?);
        match by_person.last_mut() {
            Some((who, items)) if *who == recipient => items.push(item),
            _ => by_person.push((recipient, vec![item])),
        }
    }
    let mut sent = 0;
    for (recipient, items) in by_person {
        let Some(person) = super::dispatch::person(&mut tx, &recipient).await? else {
            continue;
        };
        let digest_id = if person.status == "active" {
            let vars = json!({
                "count": items.len(),
                "items": items.iter().map(|(_, s, t)| json!({ "subject": s, "text": t })).collect::<Vec<_>>(),
            });
            let draft = composer.compose(Kind::Digest, &person, &vars);
            sent += 1;
            Some(
                insert_message(
                    &mut tx,
                    &NewMessage {
                        kind: Kind::Digest,
                        event_id: None,
                        recipient: person,
                        draft,
                        source: "digest".into(),
                        status: "queued",
                        reason: None,
                        attachment: None,
                    },
                )
                .await?,
            )
        } else {
            None
        };
        for (id, _, _) in items {
            tx.query("UPDATE messages SET status = 'digested', digest_id = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'held'")
                .bind(id)
                .bind(digest_id.clone())
                .execute(tx.conn())
                .await?;
        }
    }
    tx.commit().await?;
    Ok(sent)
}

/// Give every active notification plugin its tick; the messages of a tick are written once, by whichever
/// replica claims the tick's slot.
pub async fn tick(notifier: &Notifier, db: &TenantDb, now: i64) -> anyhow::Result<usize> {
    let plugins = notifier.plugins.active(db, PluginKind::Notifications).await?;
    if plugins.is_empty() {
        return Ok(0);
    }
    let slot = (now / notifier.config.notifications.schedule_ms.max(1) as i64).to_string();
    let mut written = 0;
    for plugin in plugins {
        // Another replica has this tick already: no need to run the plugin at all.
        let mut tx = db.begin_read().await?;
        let taken = tx
            .query("SELECT 1 FROM schedule_slots WHERE tenant_id = $1 AND job = $2 AND slot = $3")
            .bind(format!("tick:{}", plugin.plugin_id))
            .bind(slot.clone())
            .fetch_optional(tx.conn())
            .await?
            .is_some();
        tx.commit().await?;
        if taken {
            continue;
        }
        let messages = match notifier.plugins.on_tick(db, &plugin, rfc3339(now)).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(plugin = %plugin.name, error = %e, "a notification plugin's tick failed; nothing is added");
                Vec::new()
            }
        };
        let mut tx = db.begin().await?;
        if !claim_slot(&mut tx, &format!("tick:{}", plugin.plugin_id), &slot).await? {
            tx.commit().await?;
            continue;
        }
        let composer = Composer::for_tenant(&mut tx).await?;
        let source = format!("plugin:{}@{}", plugin.plugin_id, plugin.version);
        for m in messages {
            let Some(person) = super::dispatch::person(&mut tx, &m.recipient_id).await? else {
                tracing::warn!(plugin = %plugin.name, recipient = %m.recipient_id, "a tick message to someone outside the academy; refused");
                continue;
            };
            if person.status != "active" || m.subject.trim().is_empty() {
                continue;
            }
            let locale = if crate::tenancy::valid_locale(&m.locale) {
                m.locale.clone()
            } else {
                composer.locale_for(&person)
            };
            let template = super::templates::Template {
                subject: "{{subject}}".into(),
                body_text: "{{text}}".into(),
                body_html: m.body_html.as_ref().map(|_| "{{{html}}}".into()),
            };
            let html = m.body_html.as_deref().map(ammonia::clean);
            let draft = composer.render(
                &template,
                &json!({ "subject": m.subject, "text": m.body_text, "html": html }),
                locale,
            );
            insert_message(
                &mut tx,
                &NewMessage {
                    kind: Kind::Plugin,
                    event_id: None,
                    recipient: person,
                    draft,
                    source: source.clone(),
                    status: "queued",
                    reason: None,
                    attachment: None,
                },
            )
            .await?;
            written += 1;
        }
        tx.commit().await?;
    }
    Ok(written)
}
