//! Delivery: claim due messages under a lease, send them, and record every attempt.
//!
//! A message moves `queued` → `sending` (claimed, an attempt row `started`) → `handed_over` (its whole
//! content is with the SMTP server, all but the final `.`) → `sent`. A crash while `sending` left the server
//! without the final `.`, so the message is queued again when its lease runs out (attempt `interrupted`). A
//! crash while `handed_over` may have left it with the server, so it is never sent again (attempt
//! `unconfirmed`, message `sent`). Temporary refusals retry with doubling delays up to
//! `notifications.max_attempts` (interrupted attempts count too); permanent ones fail at once. The file
//! transport writes each message under its own id (a repeat overwrites it); the `off` transport fails
//! messages with that reason.

use super::Notifier;
use super::smtp::{Connection, SmtpError};
use crate::config::mail::{MailSettings, MailTransport};
use crate::config::notify::NotifySettings;
use crate::db::{TenantDb, new_id, now_ms};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use sqlx::Row;

/// Sends the messages of every academy the way `[mail]` says.
pub struct Deliverer {
    mail: MailSettings,
    settings: NotifySettings,
    default_from: String,
    helo: String,
}

/// A claimed message.
struct Claimed {
    id: String,
    to_address: String,
    to_name: Option<String>,
    subject: String,
    body_text: String,
    body_html: Option<String>,
    attachment: Option<(String, String, Vec<u8>)>,
    message_id: String,
    attempts: i64,
}

/// Who an academy's messages come from.
struct Sender {
    name: String,
    address: String,
    reply_to: Option<String>,
}

/// How one attempt ended.
enum Outcome {
    Sent(String),
    Retry(String),
    Failed(String),
    Unconfirmed(String),
    /// Our lease was taken over: the other replica sends it.
    Lost,
}

impl Deliverer {
    /// A deliverer for the host's settings.
    pub fn new(notifier: &Notifier) -> Deliverer {
        let mail = notifier.config.mail.clone();
        let default_from = mail
            .from_address
            .clone()
            .unwrap_or_else(|| format!("noreply@{}", notifier.config.base_domain));
        Deliverer {
            settings: notifier.config.notifications.clone(),
            default_from,
            helo: hostname(),
            mail,
        }
    }

    /// Take back expired leases, then send what is due in every academy, one batch per academy in turn, so
    /// an academy with a long queue delays another's messages by at most one batch. Academies whose messages
    /// fell due meanwhile join the next turn. Returns how many were sent.
    pub async fn run_once(&self, notifier: &Notifier) -> anyhow::Result<usize> {
        let mut sent = 0;
        loop {
            let now = now_ms();
            let tenants = due_tenants(&notifier.db, now).await?;
            let mut more = false;
            for tenant in tenants {
                let db = notifier.db.tenant(&tenant);
                recover(&db, now, self.settings.max_attempts).await?;
                let (n, full) = self.round(&db).await?;
                sent += n;
                more |= full;
            }
            if !more {
                return Ok(sent);
            }
        }
    }

    /// Claim one batch of an academy's due messages and send it over one connection. Returns how many were
    /// sent, and whether the batch was full (more may be due).
    async fn round(&self, db: &TenantDb) -> anyhow::Result<(usize, bool)> {
        let now = now_ms();
        let lease = now + self.settings.lease_ms as i64;
        let mut tx = db.begin().await?;
        let rows = tx
            .query(
                "UPDATE messages SET status = 'sending', lease_until = $2, attempts = attempts + 1 \
                 WHERE tenant_id = $1 AND id IN (SELECT id FROM messages WHERE tenant_id = $1 AND status = 'queued' \
                 AND next_attempt_at <= $3 ORDER BY next_attempt_at LIMIT $4) AND status = 'queued' \
                 RETURNING id, to_address, to_name, subject, body_text, body_html, attachment_name, attachment_type, \
                 attachment, message_id, attempts, created_at",
            )
            .bind(lease)
            .bind(now)
            .bind(i64::from(self.settings.batch))
            .fetch_all(tx.conn())
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: Option<String> = row.try_get("attachment_name")?;
            let attachment = match name {
                Some(name) => Some((
                    name,
                    row.try_get::<Option<String>, _>("attachment_type")?
                        .unwrap_or_else(|| "application/octet-stream".into()),
                    row.try_get::<Option<Vec<u8>>, _>("attachment")?.unwrap_or_default(),
                )),
                None => None,
            };
            let message = Claimed {
                id: row.try_get("id")?,
                to_address: row.try_get("to_address")?,
                to_name: row.try_get("to_name")?,
                subject: row.try_get("subject")?,
                body_text: row.try_get("body_text")?,
                body_html: row.try_get("body_html")?,
                attachment,
                message_id: row.try_get("message_id")?,
                attempts: row.try_get("attempts")?,
            };
            tx.query(
                "INSERT INTO message_attempts (id, tenant_id, message_id, attempt, started_at, outcome) \
                 VALUES ($2, $1, $3, $4, $5, 'started')",
            )
            .bind(new_id())
            .bind(message.id.clone())
            .bind(message.attempts)
            .bind(now)
            .execute(tx.conn())
            .await?;
            claimed.push((row.try_get::<i64, _>("created_at")?, message));
        }
        let sender = if claimed.is_empty() {
            None
        } else {
            Some(self.sender(&mut tx).await?)
        };
        tx.commit().await?;
        let Some(sender) = sender else {
            return Ok((0, false));
        };
        let full = claimed.len() as u32 >= self.settings.batch;
        claimed.sort_by_key(|(at, _)| *at);
        let mut sent = 0;
        let mut connection: Option<Connection> = None;
        for (_, message) in claimed {
            let outcome = match self.build(&sender, &message) {
                Err(e) => Outcome::Failed(e),
                Ok(bytes) => match self.mail.transport {
                    MailTransport::Off => Outcome::Failed("the host's mail transport is off".into()),
                    MailTransport::File => self.to_file(&message, &bytes).await,
                    MailTransport::Smtp => self.over_smtp(db, &mut connection, &sender, &message, &bytes).await?,
                },
            };
            if matches!(outcome, Outcome::Sent(_) | Outcome::Unconfirmed(_)) {
                sent += 1;
            }
            self.record(db, &message, outcome).await?;
        }
        if let Some(conn) = connection {
            conn.quit().await;
        }
        Ok((sent, full))
    }

    /// The academy's sender (its own name and address, else its name and the host's address).
    async fn sender(&self, tx: &mut crate::db::TenantTx) -> Result<Sender, sqlx::Error> {
        let settings = super::academy_settings(tx).await?;
        let name: String = tx
            .query("SELECT name FROM tenants WHERE id = $1")
            .fetch_one(tx.conn())
            .await?
            .try_get("name")?;
        // The academy's own address goes out only from a domain the academy owns (one the operator mapped to
        // it); any other is put in Reply-To and the host's address sends, so an academy cannot send as anyone.
        let domains: Vec<String> = tx
            .query("SELECT domain FROM tenant_domains WHERE tenant_id = $1")
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let (address, reply_to) = match settings.sender_address {
            Some(own) if sender_allowed(&own, &domains) => (own, settings.reply_to),
            Some(own) => (self.default_from.clone(), settings.reply_to.or(Some(own))),
            None => (self.default_from.clone(), settings.reply_to),
        };
        Ok(Sender {
            name: settings.sender_name.unwrap_or(name),
            address,
            reply_to,
        })
    }

    /// The message as sent: text and branded HTML as alternatives, the attachment beside them.
    fn build(&self, sender: &Sender, m: &Claimed) -> Result<Vec<u8>, String> {
        let from: lettre::Address = sender
            .address
            .parse()
            .map_err(|e| format!("the sender address {:?} is not valid: {e}", sender.address))?;
        let to: lettre::Address = m
            .to_address
            .parse()
            .map_err(|e| format!("the recipient address {:?} is not valid: {e}", m.to_address))?;
        let mut builder = lettre::Message::builder()
            .from(Mailbox::new(Some(sender.name.clone()), from))
            .to(Mailbox::new(m.to_name.clone(), to))
            .subject(m.subject.clone())
            .message_id(Some(m.message_id.clone()));
        if let Some(reply_to) = sender.reply_to.as_deref().and_then(|r| r.parse().ok()) {
            builder = builder.reply_to(Mailbox::new(None, reply_to));
        }
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(m.body_text.clone());
        let body = match &m.body_html {
            Some(html) => MultiPart::alternative()
                .singlepart(text)
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone())),
            None => MultiPart::mixed().singlepart(text),
        };
        let body = match &m.attachment {
            Some((name, content_type, bytes)) => {
                let content_type = ContentType::parse(content_type)
                    .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("a valid type"));
                MultiPart::mixed()
                    .multipart(body)
                    .singlepart(Attachment::new(name.clone()).body(bytes.clone(), content_type))
            }
            None => body,
        };
        let message = builder
            .multipart(body)
            .map_err(|e| format!("the message cannot be built: {e}"))?;
        Ok(message.formatted())
    }

    /// Write `<file_dir>/<message id>.eml` whole (a temporary file renamed into place).
    async fn to_file(&self, m: &Claimed, bytes: &[u8]) -> Outcome {
        let dir = std::path::Path::new(&self.mail.file_dir);
        let path = dir.join(format!("{}.eml", m.id));
        let temporary = dir.join(format!(".{}.eml.tmp", m.id));
        let written = async {
            tokio::fs::create_dir_all(dir).await?;
            tokio::fs::write(&temporary, bytes).await?;
            tokio::fs::rename(&temporary, &path).await
        }
        .await;
        match written {
            Ok(()) => Outcome::Sent(format!("written to {}", path.display())),
            Err(e) => Outcome::Retry(format!("writing {} failed: {e}", path.display())),
        }
    }

    /// Send over SMTP in two steps around the "handed over" record.
    async fn over_smtp(
        &self,
        db: &TenantDb,
        connection: &mut Option<Connection>,
        sender: &Sender,
        m: &Claimed,
        bytes: &[u8],
    ) -> anyhow::Result<Outcome> {
        if connection.is_none() {
            match Connection::open(&self.mail, &self.helo).await {
                Ok(c) => *connection = Some(c),
                Err(SmtpError::Transient(e)) => return Ok(Outcome::Retry(e)),
                Err(SmtpError::Permanent(e)) => return Ok(Outcome::Retry(e)),
            }
        }
        let conn = connection.as_mut().expect("opened above");
        if let Err(e) = conn.begin(&sender.address, &m.to_address, bytes).await {
            // Not handed over: the server does not have it. The connection is dropped rather than reset: a
            // failure in the middle of the content would make the server read `RSET` as part of it.
            *connection = None;
            return Ok(match e {
                SmtpError::Transient(e) => Outcome::Retry(e),
                SmtpError::Permanent(e) => Outcome::Failed(e),
            });
        }
        let mut tx = db.begin().await?;
        let marked = tx
            .query(
                "UPDATE messages SET status = 'handed_over', lease_until = $3 WHERE tenant_id = $1 AND id = $2 \
                 AND status = 'sending' AND attempts = $4",
            )
            .bind(m.id.clone())
            .bind(now_ms() + self.settings.lease_ms as i64)
            .bind(m.attempts)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        if marked == 0 {
            // Another replica took it over after our lease ran out: drop the connection without the final
            // `.`, so the server discards our copy.
            *connection = None;
            return Ok(Outcome::Lost);
        }
        Ok(match conn.finish().await {
            Ok(reply) if (200..300).contains(&reply.code) => Outcome::Sent(format!("{} {}", reply.code, reply.text)),
            Ok(reply) if reply.code >= 500 => Outcome::Failed(format!("{} {}", reply.code, reply.text)),
            Ok(reply) => Outcome::Retry(format!("{} {}", reply.code, reply.text)),
            Err(e) => {
                *connection = None;
                Outcome::Unconfirmed(e)
            }
        })
    }

    /// Write how the attempt ended.
    async fn record(&self, db: &TenantDb, m: &Claimed, outcome: Outcome) -> anyhow::Result<()> {
        let now = now_ms();
        let (status, attempt, detail, next) = match outcome {
            Outcome::Lost => return Ok(()),
            Outcome::Sent(d) => ("sent", "accepted", d, None),
            Outcome::Unconfirmed(d) => (
                "sent",
                "unconfirmed",
                format!("{d}; the server had the whole message, so it is not sent again"),
                None,
            ),
            Outcome::Failed(d) => ("failed", "rejected", d, None),
            Outcome::Retry(d) if m.attempts >= i64::from(self.settings.max_attempts) => (
                "failed",
                "deferred",
                format!("{d}; given up after {} attempts", m.attempts),
                None,
            ),
            Outcome::Retry(d) => (
                "queued",
                "deferred",
                d,
                Some(now + self.settings.backoff_ms(m.attempts as u32)),
            ),
        };
        let mut tx = db.begin().await?;
        tx.query(
            "UPDATE messages SET status = $3, next_attempt_at = $4, lease_until = NULL, \
             sent_at = CASE WHEN $3 = 'sent' THEN $5 ELSE sent_at END, \
             reason = CASE WHEN $3 = 'sent' THEN reason ELSE $6 END \
             WHERE tenant_id = $1 AND id = $2 AND status IN ('sending', 'handed_over') AND attempts = $7",
        )
        .bind(m.id.clone())
        .bind(status)
        .bind(next)
        .bind(now)
        .bind(detail.clone())
        .bind(m.attempts)
        .execute(tx.conn())
        .await?;
        tx.query(
            "UPDATE message_attempts SET outcome = $4, detail = $5, finished_at = $6 \
             WHERE tenant_id = $1 AND message_id = $2 AND attempt = $3 AND outcome = 'started'",
        )
        .bind(m.id.clone())
        .bind(m.attempts)
        .bind(attempt)
        .bind(truncate(&detail, 1000))
        .bind(now)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        if status == "failed" {
            tracing::warn!(message = %m.id, reason = %detail, "a message could not be delivered");
        }
        Ok(())
    }
}

/// The academies with messages due now or leases run out.
async fn due_tenants(db: &crate::db::Db, now: i64) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = db.platform().begin().await?;
    let tenants = sqlx::query(
        "SELECT DISTINCT tenant_id FROM messages WHERE (status = 'queued' AND next_attempt_at <= $1) \
         OR (status IN ('sending', 'handed_over') AND lease_until < $1) ORDER BY tenant_id",
    )
    .bind(now)
    .fetch_all(tx.conn())
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<Result<_, _>>()?;
    tx.commit().await?;
    Ok(tenants)
}

/// Take back messages whose sender stopped (crashed, or lost its database) while holding them. An interrupted
/// attempt counts like any other: a message interrupted on its last allowed attempt (`max_attempts`) fails
/// instead of going back to the queue, so a message that brings its sender down is not tried forever.
pub async fn recover(db: &TenantDb, now: i64, max_attempts: u32) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    for (from, to, outcome, detail) in [
        (
            "sending",
            "queued",
            "interrupted",
            "the sender stopped before the message was handed over; the server discarded it, so it is sent again",
        ),
        (
            "handed_over",
            "sent",
            "unconfirmed",
            "the sender stopped after handing the message over; it is not sent again, so it is never sent twice",
        ),
    ] {
        let ids: Vec<(String, i64)> = tx
            .query("SELECT id, attempts FROM messages WHERE tenant_id = $1 AND status = $2 AND lease_until < $3")
            .bind(from)
            .bind(now)
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for (id, attempt) in ids {
            let (to, detail) = if to == "queued" && attempt >= i64::from(max_attempts) {
                (
                    "failed",
                    format!("the sender stopped before the message was handed over; given up after {attempt} attempts"),
                )
            } else {
                (to, detail.to_owned())
            };
            // Only while the lease is still over: another replica may have taken the message back and
            // claimed it again in the meantime.
            let taken = tx
                .query(
                    "UPDATE messages SET status = $3, lease_until = NULL, next_attempt_at = $4, \
                     sent_at = CASE WHEN $3 = 'sent' THEN $4 ELSE sent_at END, \
                     reason = CASE WHEN $3 = 'failed' THEN $6 ELSE reason END \
                     WHERE tenant_id = $1 AND id = $2 AND status = $5 AND lease_until < $4",
                )
                .bind(id.clone())
                .bind(to)
                .bind(now)
                .bind(from)
                .bind(detail.clone())
                .execute(tx.conn())
                .await?
                .rows_affected();
            if taken == 0 {
                continue;
            }
            tx.query(
                "UPDATE message_attempts SET outcome = $4, detail = $5, finished_at = $6 \
                 WHERE tenant_id = $1 AND message_id = $2 AND attempt = $3 AND outcome = 'started'",
            )
            .bind(id.clone())
            .bind(attempt)
            .bind(outcome)
            .bind(detail.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
            if to == "failed" {
                tracing::warn!(message = %id, reason = %detail, "a message could not be delivered");
            }
        }
    }
    tx.commit().await
}

/// May an academy send from `address`? Only from a domain it owns, or a subdomain of one.
pub fn sender_allowed(address: &str, domains: &[String]) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    domains
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The name this host greets SMTP servers with.
fn hostname() -> String {
    hostname_from_env().unwrap_or_else(|| "localhost".into())
}

fn hostname_from_env() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let s = NotifySettings::default();
        assert_eq!(s.backoff_ms(1), 30_000);
        assert_eq!(s.backoff_ms(2), 60_000);
        assert_eq!(s.backoff_ms(3), 120_000);
        assert_eq!(s.backoff_ms(30), 3_600_000);
    }
}
