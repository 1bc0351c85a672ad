//! Notifications in the API: the academy's sender and reminder settings, its message templates per kind and
//! language (with a preview), and the messages with their delivery record.

use super::api::{Api, Op};
use super::common::{Json, Page, PageParams, Path, Query, opt_text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::Timestamp;
use crate::db::{Sql, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::fields::long_text;
use crate::notify::templates::{Composer, Links, Template, check};
use crate::notify::{AcademySettings, academy_settings};
use crate::outbox::Kind;
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::FromRow;
use sqlx::Row;

pub fn routes(api: &mut Api) {
    api.tag("notifications");
    api.op_out::<AcademySettings>(
        Op::get(
            "/api/v1/notification-settings",
            "The academy's sender and reminder settings",
        )
        .permission("tenant.manage"),
        get(read_settings),
    );
    api.op_io::<SettingsIn, AcademySettings>(
        Op::put(
            "/api/v1/notification-settings",
            "Change the sender and reminder settings",
        )
        .permission("tenant.manage"),
        axum::routing::put(write_settings),
    );
    api.op_out::<Vec<TemplateOut>>(
        Op::get(
            "/api/v1/notification-templates",
            "Every message kind in every language the academy allows: its own template or the default",
        )
        .permission("tenant.manage"),
        get(list_templates),
    );
    api.op_out::<TemplateOut>(
        Op::get(
            "/api/v1/notification-templates/{kind}/{locale}",
            "One template as it is used",
        )
        .permission("tenant.manage"),
        get(read_template),
    );
    api.op_io::<TemplateIn, TemplateOut>(
        Op::put(
            "/api/v1/notification-templates/{kind}/{locale}",
            "Set the academy's own template for a kind and language",
        )
        .permission("tenant.manage"),
        axum::routing::put(write_template),
    );
    api.op(
        Op::delete(
            "/api/v1/notification-templates/{kind}/{locale}",
            "Go back to the default template for a kind and language",
        )
        .permission("tenant.manage"),
        axum::routing::delete(delete_template),
    );
    api.op_io::<PreviewIn, PreviewOut>(
        Op::post(
            "/api/v1/notification-templates/{kind}/{locale}/preview",
            "Render a template (the given one, or the one in use) for the caller with sample data; nothing is stored",
        )
        .permission("tenant.manage"),
        post(preview),
    );
    api.op_out::<Page<MessageOut>>(
        Op::get(
            "/api/v1/messages",
            "Messages to users within scope, newest first, with their delivery status",
        )
        .permission("users.read")
        .query(&[
            (
                "status",
                "queued, held, sending, handed_over, sent, failed, suppressed or digested",
            ),
            ("kind", "a message kind, e.g. due_soon"),
            ("user_id", "messages to this user"),
            ("limit", "1–500, default 50"),
            ("cursor", "from `next_cursor`"),
        ]),
        get(list_messages),
    );
    api.op_out::<MessageDetail>(
        Op::get("/api/v1/messages/{id}", "One message with every delivery attempt").permission("users.read"),
        get(read_message),
    );
    api.op_out::<MessageDetail>(
        Op::post("/api/v1/messages/{id}/retry", "Queue a failed message again").permission("users.write"),
        post(retry_message),
    );
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SettingsIn {
    /// The sender's name; none: the academy's name.
    #[schemars(length(max = 200), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    sender_name: Option<String>,
    /// The sender's address; none: the host's `mail.from_address`.
    #[schemars(length(max = 254), regex(pattern = crate::fields::pattern::EMAIL))]
    sender_address: Option<String>,
    /// Where replies go.
    #[schemars(length(max = 254), regex(pattern = crate::fields::pattern::EMAIL))]
    reply_to: Option<String>,
    /// Days before the due date that the reminder goes out, 0–60 (0: no reminder). Default 3.
    #[schemars(range(min = 0, max = 60))]
    due_soon_days: Option<i64>,
    /// UTC hour of the daily digest, 0–23. Default 7.
    #[schemars(range(min = 0, max = 23))]
    digest_hour: Option<i64>,
}

async fn read_settings(caller: Caller) -> ApiResult<axum::Json<AcademySettings>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let settings = academy_settings(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(settings))
}

fn address(field: &str, value: Option<&str>) -> ApiResult<Option<String>> {
    match opt_text(field, value, 254)? {
        None => Ok(None),
        Some(v) => Ok(Some(super::common::email(field, &v)?)),
    }
}

async fn write_settings(caller: Caller, Json(req): Json<SettingsIn>) -> ApiResult<axum::Json<AcademySettings>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let sender_name = opt_text("sender_name", req.sender_name.as_deref(), 200)?;
    if sender_name
        .as_deref()
        .is_some_and(|n| n.contains(['\r', '\n', '<', '>', '"']))
    {
        return Err(ApiError::invalid(
            "sender_name",
            "may not hold line breaks, quotes or angle brackets",
        ));
    }
    let sender_address = address("sender_address", req.sender_address.as_deref())?;
    let reply_to = address("reply_to", req.reply_to.as_deref())?;
    let defaults = AcademySettings::default();
    let due_soon_days = req.due_soon_days.unwrap_or(defaults.due_soon_days);
    if !(0..=60).contains(&due_soon_days) {
        return Err(ApiError::invalid("due_soon_days", "must be between 0 and 60"));
    }
    let digest_hour = req.digest_hour.unwrap_or(defaults.digest_hour);
    if !(0..=23).contains(&digest_hour) {
        return Err(ApiError::invalid("digest_hour", "must be between 0 and 23"));
    }
    if let Some(own) = &sender_address
        && !crate::notify::deliver::sender_allowed(own, &caller.tenant.domains)
    {
        return Err(ApiError::rule(
            "sender_domain_not_owned",
            Some("sender_address"),
            format!(
                "mail can be sent only from a domain of this academy ({}); use reply_to for another address",
                if caller.tenant.domains.is_empty() {
                    "it has none yet: ask the operator to add one".to_owned()
                } else {
                    caller.tenant.domains.join(", ")
                }
            ),
        ));
    }
    let mut tx = caller.db().begin().await?;
    let before = academy_settings(&mut tx).await?;
    tx.query(
        "INSERT INTO notification_settings (tenant_id, sender_name, sender_address, reply_to, due_soon_days, digest_hour, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id) DO UPDATE SET sender_name = $2, sender_address = $3, \
         reply_to = $4, due_soon_days = $5, digest_hour = $6, updated_at = $7",
    )
    .bind(sender_name)
    .bind(sender_address)
    .bind(reply_to)
    .bind(due_soon_days)
    .bind(digest_hour)
    .bind(crate::db::now_ms())
    .execute(tx.conn())
    .await?;
    let after = academy_settings(&mut tx).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "notification_settings.update",
            "tenant",
            caller.db().tenant_id(),
            json!(before),
            json!(after),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

/// A template as the academy uses it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TemplateOut {
    /// Message kind.
    kind: String,
    /// Language.
    locale: String,
    /// True when it is the academy's own; false for the default.
    custom: bool,
    /// The template.
    #[serde(flatten)]
    template: Template,
    /// When the academy's own was last changed.
    updated_at: Option<String>,
}

fn kind_param(kind: &str) -> ApiResult<Kind> {
    Kind::parse(kind).ok_or_else(|| {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::invalid("kind", format!("must be one of {}", kinds.join(", ")))
    })
}

fn locale_param(locale: &str) -> ApiResult<String> {
    if !crate::tenancy::valid_locale(locale) {
        return Err(ApiError::invalid(
            "locale",
            "must be a language tag such as en or de-CH",
        ));
    }
    Ok(locale.to_owned())
}

async fn stored(tx: &mut crate::db::TenantTx, kind: Kind, locale: &str) -> ApiResult<Option<TemplateOut>> {
    let row = tx
        .query(
            "SELECT subject, body_text, body_html, updated_at FROM notification_templates \
             WHERE tenant_id = $1 AND kind = $2 AND locale = $3",
        )
        .bind(kind.as_str())
        .bind(locale.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    Ok(match row {
        None => None,
        Some(row) => Some(TemplateOut {
            kind: kind.as_str().into(),
            locale: locale.into(),
            custom: true,
            template: Template {
                subject: row.try_get("subject")?,
                body_text: row.try_get("body_text")?,
                body_html: row.try_get("body_html")?,
            },
            updated_at: Some(rfc3339(row.try_get("updated_at")?)),
        }),
    })
}

async fn effective(tx: &mut crate::db::TenantTx, kind: Kind, locale: &str) -> ApiResult<TemplateOut> {
    if let Some(t) = stored(tx, kind, locale).await? {
        return Ok(t);
    }
    let composer = Composer::for_tenant(tx).await?;
    let (template, _) = composer.template(kind, locale);
    Ok(TemplateOut {
        kind: kind.as_str().into(),
        locale: locale.into(),
        custom: false,
        template,
        updated_at: None,
    })
}

async fn list_templates(caller: Caller) -> ApiResult<axum::Json<Vec<TemplateOut>>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let mut locales: Vec<String> = caller.tenant.settings.allowed_locales.clone();
    if locales.is_empty() {
        locales = crate::notify::templates::DEFAULT_LANGUAGES
            .iter()
            .map(|l| l.to_string())
            .collect();
    }
    // The academy's own templates in other locales are listed too.
    for row in tx
        .query("SELECT DISTINCT locale FROM notification_templates WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await?
    {
        let l: String = row.try_get(0)?;
        if !locales.contains(&l) {
            locales.push(l);
        }
    }
    let mut out = Vec::new();
    for kind in Kind::ALL {
        for locale in &locales {
            out.push(effective(&mut tx, kind, locale).await?);
        }
    }
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn read_template(
    caller: Caller,
    Path((kind, locale)): Path<(String, String)>,
) -> ApiResult<axum::Json<TemplateOut>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let (kind, locale) = (kind_param(&kind)?, locale_param(&locale)?);
    let mut tx = caller.db().begin_read().await?;
    let out = effective(&mut tx, kind, &locale).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TemplateIn {
    /// Handlebars, one line.
    #[schemars(length(min = 1, max = 300), regex(pattern = crate::fields::pattern::TEXT))]
    subject: String,
    /// Handlebars for the plain-text body.
    #[schemars(length(min = 1, max = 20000), regex(pattern = crate::fields::pattern::LONG_TEXT_REQUIRED))]
    body_text: String,
    /// Handlebars for the HTML body (values are escaped); none: the text in paragraphs. Either way it goes
    /// into the academy's branded layout.
    #[schemars(length(max = 100000), regex(pattern = crate::fields::pattern::LONG_TEXT))]
    body_html: Option<String>,
}

impl TemplateIn {
    fn checked(self) -> ApiResult<Template> {
        let template = Template {
            subject: super::common::text("subject", &self.subject, 300)?,
            body_text: long_text("body_text", Some(&self.body_text), 20_000)?,
            body_html: Some(long_text("body_html", self.body_html.as_deref(), 100_000)?).filter(|h| !h.is_empty()),
        };
        if template.body_text.is_empty() {
            return Err(ApiError::invalid("body_text", "must not be empty"));
        }
        check(&template)?;
        Ok(template)
    }
}

async fn write_template(
    caller: Caller,
    Path((kind, locale)): Path<(String, String)>,
    Json(req): Json<TemplateIn>,
) -> ApiResult<axum::Json<TemplateOut>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let (kind, locale) = (kind_param(&kind)?, locale_param(&locale)?);
    let template = req.checked()?;
    let mut tx = caller.db().begin().await?;
    let before = stored(&mut tx, kind, &locale).await?;
    let now = crate::db::now_ms();
    tx.query(
        "INSERT INTO notification_templates (id, tenant_id, kind, locale, subject, body_text, body_html, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (tenant_id, kind, locale) DO UPDATE SET \
         subject = $5, body_text = $6, body_html = $7, updated_at = $8",
    )
    .bind(crate::db::new_id())
    .bind(kind.as_str())
    .bind(locale.clone())
    .bind(template.subject.clone())
    .bind(template.body_text.clone())
    .bind(template.body_html.clone())
    .bind(now)
    .execute(tx.conn())
    .await?;
    let after = effective(&mut tx, kind, &locale).await?;
    let target = format!("{}/{locale}", kind.as_str());
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "notification_template.set",
            "notification_template",
            &target,
            json!(before),
            json!(after),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn delete_template(
    caller: Caller,
    Path((kind, locale)): Path<(String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let (kind, locale) = (kind_param(&kind)?, locale_param(&locale)?);
    let mut tx = caller.db().begin().await?;
    let Some(before) = stored(&mut tx, kind, &locale).await? else {
        return Err(ApiError::NotFound { what: "template" });
    };
    tx.query("DELETE FROM notification_templates WHERE tenant_id = $1 AND kind = $2 AND locale = $3")
        .bind(kind.as_str())
        .bind(locale.clone())
        .execute(tx.conn())
        .await?;
    let target = format!("{}/{locale}", kind.as_str());
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted(
            "notification_template.delete",
            "notification_template",
            &target,
            json!(before),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct PreviewIn {
    /// A template to try; none: the one in use.
    template: Option<TemplateIn>,
}

/// A rendered message.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct PreviewOut {
    locale: String,
    subject: String,
    text: String,
    html: Option<String>,
}

async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, locale)): Path<(String, String)>,
    Json(req): Json<PreviewIn>,
) -> ApiResult<axum::Json<PreviewOut>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let (kind, locale) = (kind_param(&kind)?, locale_param(&locale)?);
    let candidate = req.template.map(TemplateIn::checked).transpose()?;
    let mut tx = caller.db().begin_read().await?;
    let links = Links {
        academy_url: Some(crate::tenancy::academy_url(&state.config, &caller.tenant)),
    };
    let composer = Composer::with_links(&mut tx, links).await?;
    let template = match candidate {
        Some(t) => t,
        None => effective(&mut tx, kind, &locale).await?.template,
    };
    tx.commit().await?;
    let url = composer.academy_url().unwrap_or_default().to_owned();
    let sample = json!({
        "recipient": { "name": caller.name, "email": caller.email },
        "academy": { "name": caller.tenant.name, "url": url },
        "course": { "title": "Workplace safety", "code": "SAFE-101", "url": format!("{url}/learn/example") },
        "due_date": "2026-12-01",
        "certificate": { "code": "ABCD-EFGH", "url": format!("{url}/certificates/verify/ABCD-EFGH") },
        "link": format!("{url}/password-reset/example"),
        "signup": { "name": "Ada Lovelace", "email": "ada@example.com", "reason": "the academy approves every sign-up" },
        "plugin": { "name": "example-plugin", "version": "1.0.0", "reason": "3 faults in a row" },
        "report": { "title": "Completion by organization", "schedule": "Monday report", "file": "report.csv" },
        "count": 2,
        "items": [
            { "subject": "You are enrolled in Workplace safety", "text": "…" },
            { "subject": "You completed First aid", "text": "…" },
        ],
        "subject": "A plugin's subject",
        "text": "A plugin's text",
    });
    let draft = composer.render(&template, &sample, locale);
    Ok(axum::Json(PreviewOut {
        locale: draft.locale,
        subject: draft.subject,
        text: draft.text,
        html: draft.html,
    }))
}

/// A message and where it stands.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct MessageOut {
    id: String,
    kind: String,
    recipient_id: Option<String>,
    to_address: String,
    locale: String,
    subject: String,
    /// `host`, `plugin:<id>@<version>`, `digest`, `schedule:<id>`.
    source: String,
    status: String,
    /// Why it was held, suppressed or failed, or the last deferral.
    reason: Option<String>,
    attempts: i64,
    next_attempt_at: Option<Timestamp>,
    attachment_name: Option<String>,
    created_at: Timestamp,
    sent_at: Option<Timestamp>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct AttemptOut {
    attempt: i64,
    started_at: String,
    finished_at: Option<String>,
    /// started, accepted, deferred, rejected, interrupted or unconfirmed.
    outcome: String,
    detail: Option<String>,
}

/// A message with its text and its attempts.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct MessageDetail {
    #[serde(flatten)]
    message: MessageOut,
    /// The plain text (withheld for invitations: their link sets a password).
    body_text: Option<String>,
    attempts_made: Vec<AttemptOut>,
}

const MESSAGE_COLUMNS: &str = "m.id, m.kind, m.recipient_id, m.to_address, m.locale, m.subject, m.source, m.status, \
     m.reason, m.attempts, m.next_attempt_at, m.attachment_name, m.created_at, m.sent_at";

#[derive(Deserialize, Default)]
struct MessageFilter {
    status: Option<String>,
    kind: Option<String>,
    user_id: Option<String>,
    // Not `#[serde(flatten)]`: a flattened struct reads every query value as a string, so `limit` would fail.
    limit: Option<i64>,
    cursor: Option<String>,
}

const STATUSES: [&str; 8] = [
    "queued",
    "held",
    "sending",
    "handed_over",
    "sent",
    "failed",
    "suppressed",
    "digested",
];

/// `FROM messages m JOIN users u` limited to recipients within the caller's reach.
fn scoped(caller: &Caller, perm: Permission) -> ApiResult<Sql> {
    let reach = caller.require(perm)?;
    let mut sql = Sql::tenant(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.recipient_id AND u.tenant_id = m.tenant_id \
         WHERE m.tenant_id = $1"
    ));
    reach.push_user_filter(&mut sql, caller.db().backend());
    Ok(sql)
}

async fn list_messages(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(filter): Query<MessageFilter>,
) -> ApiResult<axum::Json<Page<MessageOut>>> {
    let page = PageParams {
        limit: filter.limit,
        cursor: filter.cursor.clone(),
    };
    let limit = page.limit()?;
    let mut sql = scoped(&caller, Permission::UsersRead)?;
    if let Some(status) = &filter.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(ApiError::invalid(
                "status",
                format!("must be one of {}", STATUSES.join(", ")),
            ));
        }
        sql.push(" AND m.status = ").push_bind(status.clone());
    }
    if let Some(kind) = &filter.kind {
        sql.push(" AND m.kind = ").push_bind(kind_param(kind)?.as_str());
    }
    if let Some(user) = &filter.user_id {
        sql.push(" AND m.recipient_id = ").push_bind(user.clone());
    }
    if let Some(cursor) = &page.cursor {
        let (at, id) = cursor
            .split_once('_')
            .and_then(|(a, i)| Some((a.parse::<i64>().ok()?, i.to_owned())))
            .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor of this list"))?;
        sql.push(" AND (m.created_at < ")
            .push_bind(at)
            .push(" OR (m.created_at = ")
            .push_bind(at)
            .push(" AND m.id < ")
            .push_bind(id)
            .push("))");
    }
    sql.push(" ORDER BY m.created_at DESC, m.id DESC LIMIT ")
        .push_bind(limit + 1);
    let mut tx = caller.db().begin_read().await?;
    let rows = tx.fetch_all_sql(&sql).await?;
    let mut keys = Vec::with_capacity(rows.len());
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        keys.push(row.try_get::<i64, _>("created_at")?);
        items.push(MessageOut::from_row(row)?);
    }
    tx.commit().await?;
    let cursors: std::collections::HashMap<String, i64> = items.iter().map(|m| m.id.clone()).zip(keys).collect();
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |m| {
        format!("{}_{}", cursors[&m.id], m.id)
    })))
}

async fn detail(caller: &Caller, perm: Permission, id: &str) -> ApiResult<MessageDetail> {
    let mut sql = scoped(caller, perm)?;
    sql.push(" AND m.id = ").push_bind(id.to_owned());
    let mut tx = caller.db().begin_read().await?;
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "message" })?;
    let message = MessageOut::from_row(&row)?;
    let body_text: Option<String> = if message.kind == Kind::Invited.as_str() {
        None
    } else {
        tx.query("SELECT body_text FROM messages WHERE tenant_id = $1 AND id = $2")
            .bind(id.to_owned())
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?
    };
    let attempts = tx
        .query(
            "SELECT attempt, started_at, finished_at, outcome, detail FROM message_attempts \
             WHERE tenant_id = $1 AND message_id = $2 ORDER BY attempt",
        )
        .bind(id.to_owned())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| {
            Ok(AttemptOut {
                attempt: r.try_get("attempt")?,
                started_at: rfc3339(r.try_get("started_at")?),
                finished_at: r.try_get::<Option<i64>, _>("finished_at")?.map(rfc3339),
                outcome: r.try_get("outcome")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    tx.commit().await?;
    Ok(MessageDetail {
        message,
        body_text,
        attempts_made: attempts,
    })
}

async fn read_message(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<MessageDetail>> {
    Ok(axum::Json(detail(&caller, Permission::UsersRead, &id).await?))
}

async fn retry_message(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<MessageDetail>> {
    let before = detail(&caller, Permission::UsersWrite, &id).await?;
    if before.message.status != "failed" {
        return Err(ApiError::rule(
            "message_not_failed",
            Some("status"),
            "only a failed message can be queued again",
        ));
    }
    let mut tx = caller.db().begin().await?;
    tx.query(
        "UPDATE messages SET status = 'queued', next_attempt_at = $3, attempts = 0, reason = NULL \
         WHERE tenant_id = $1 AND id = $2 AND status = 'failed'",
    )
    .bind(id.clone())
    .bind(crate::db::now_ms())
    .execute(tx.conn())
    .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "message.retry",
            "message",
            &id,
            json!({"status": "failed"}),
            json!({"status": "queued"}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(detail(&caller, Permission::UsersRead, &id).await?))
}
