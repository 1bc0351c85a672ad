//! From outbox events to messages. Each round claims a batch of an academy's unprocessed events (a lease, so
//! a crashed replica's batch is taken up again), drafts the host's messages (recipients, language,
//! template), lets the academy's notification plugins keep, replace or suppress them, applies each
//! recipient's preference, and stores the messages in the same transaction that marks the event processed,
//! guarded by the lease: every event becomes its messages exactly once.

use super::Notifier;
use super::templates::{Composer, Draft, Links};
use super::{NewMessage, insert_message};
use crate::db::{Sql, TenantDb, TenantTx, now_ms, rfc3339};
use crate::outbox::{Event, Kind};
use crate::plugins::hooks::notifications as hooks;
use crate::plugins::host_api::View;
use crate::plugins::manifest::Kind as PluginKind;
use crate::scope::Permission;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// Events per round.
const BATCH: i64 = 200;
/// How long a replica may hold a batch of events before another takes it up.
const LEASE_MS: i64 = 120_000;
/// Rounds an event may fail in (a database error, a crash) before it is given up.
const MAX_EVENT_ATTEMPTS: i64 = 5;

/// A person messages go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// User id.
    pub id: String,
    /// Address.
    pub email: String,
    /// Name.
    pub name: String,
    /// Their own language, if they chose one.
    pub locale: Option<String>,
    /// `active`, `pending`, …
    pub status: String,
}

/// A user of the academy, if there is one with this id.
pub async fn person(tx: &mut TenantTx, id: &str) -> Result<Option<Person>, sqlx::Error> {
    let row = tx
        .query("SELECT id, email, name, locale, status FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    row.map(|r| {
        Ok(Person {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            locale: r.try_get("locale")?,
            status: r.try_get("status")?,
        })
    })
    .transpose()
}

/// An event as claimed from the outbox.
#[derive(Debug, Clone)]
struct Claimed {
    id: String,
    event: Event,
    attempts: i64,
}

/// One message in the making.
#[derive(Debug, Clone)]
struct Planned {
    recipient: Person,
    draft: Draft,
    source: String,
    /// Set when it must not go out (a plugin suppressed it).
    suppressed: Option<String>,
}

/// One round over every academy with pending events. Returns how many events were processed.
pub async fn run_once(notifier: &Notifier) -> anyhow::Result<usize> {
    let now = now_ms();
    let mut tx = notifier.db.platform().begin().await?;
    let tenants: Vec<String> = sqlx::query(
        "SELECT DISTINCT tenant_id FROM outbox_events WHERE processed_at IS NULL \
         AND (claimed_until IS NULL OR claimed_until < $1)",
    )
    .bind(now)
    .fetch_all(tx.conn())
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<Result<_, _>>()?;
    tx.commit().await?;
    let mut done = 0;
    for tenant in tenants {
        let db = notifier.db.tenant(&tenant);
        loop {
            let n = round(notifier, &db).await?;
            done += n;
            if (n as i64) < BATCH {
                break;
            }
        }
    }
    Ok(done)
}

/// Claim, draft, filter and store one batch of one academy's events.
async fn round(notifier: &Notifier, db: &TenantDb) -> anyhow::Result<usize> {
    let now = now_ms();
    let lease = now + LEASE_MS;
    let mut tx = db.begin().await?;
    let rows = tx
        .query(
            "UPDATE outbox_events SET claimed_until = $2, attempts = attempts + 1 WHERE tenant_id = $1 AND id IN \
             (SELECT id FROM outbox_events WHERE tenant_id = $1 AND processed_at IS NULL \
              AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY created_at LIMIT $4) \
             AND processed_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3) \
             RETURNING id, kind, user_id, course_id, enrollment_id, actor_id, data, attempts, created_at",
        )
        .bind(lease)
        .bind(now)
        .bind(BATCH)
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let data: String = row.try_get("data")?;
        claimed.push((
            row.try_get::<i64, _>("created_at")?,
            Claimed {
                id: row.try_get("id")?,
                attempts: row.try_get("attempts")?,
                event: Event {
                    kind: Kind::parse(&kind).unwrap_or(Kind::Enrolled),
                    user_id: row.try_get("user_id")?,
                    course_id: row.try_get("course_id")?,
                    enrollment_id: row.try_get("enrollment_id")?,
                    actor_id: row.try_get("actor_id")?,
                    data: serde_json::from_str(&data).unwrap_or(Value::Null),
                    dedupe_key: None,
                },
            },
        ));
        if Kind::parse(&kind).is_none() {
            tracing::warn!(event = %claimed.last().map(|c| c.1.id.as_str()).unwrap_or(""), kind, "an outbox event of an unknown kind is skipped");
        }
    }
    // RETURNING gives no order: process in the order the events happened.
    claimed.sort_by_key(|(at, _)| *at);
    let claimed: Vec<Claimed> = claimed.into_iter().map(|(_, c)| c).collect();

    // Draft everything from one consistent read.
    let tenant = crate::tenancy::by_id(&mut notifier.db.platform().begin().await?, db.tenant_id()).await?;
    let links = Links {
        academy_url: tenant
            .as_ref()
            .map(|t| crate::tenancy::academy_url(&notifier.config, t)),
    };
    let mut tx = db.begin_read().await?;
    let composer = Composer::with_links(&mut tx, links).await?;
    let mut planner = Planner {
        composer: &composer,
        people: HashMap::new(),
        courses: HashMap::new(),
    };
    let mut plans: Vec<(Claimed, Vec<Planned>)> = Vec::with_capacity(claimed.len());
    for c in claimed {
        let drafts = if c.attempts > MAX_EVENT_ATTEMPTS {
            Vec::new()
        } else {
            planner.plan(&mut tx, &c.event).await?
        };
        plans.push((c, drafts));
    }
    tx.commit().await?;

    // Notification plugins, in name order, each seeing the drafts as the one before left them.
    let plugins = notifier
        .plugins
        .active(db, PluginKind::Notifications)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "notification plugins could not be loaded; drafts go out as they are");
            Vec::new()
        });
    if !plugins.is_empty() {
        for (c, drafts) in plans.iter_mut() {
            if c.event.kind == Kind::Digest {
                continue;
            }
            for plugin in &plugins {
                apply_plugin(notifier, db, &composer, plugin, &c.event, drafts).await?;
            }
        }
    }

    // Store: each event's messages with the mark that it is processed, under our lease.
    let mut tx = db.begin().await?;
    let mut preferences: HashMap<String, HashMap<String, String>> = HashMap::new();
    let now = now_ms();
    for (c, drafts) in &plans {
        let gave_up = c.attempts > MAX_EVENT_ATTEMPTS;
        let marked = tx
            .query(
                "UPDATE outbox_events SET processed_at = $3, claimed_until = NULL, last_error = $5 \
                 WHERE tenant_id = $1 AND id = $2 AND processed_at IS NULL AND claimed_until = $4",
            )
            .bind(c.id.clone())
            .bind(now)
            .bind(lease)
            .bind(gave_up.then(|| format!("given up after {MAX_EVENT_ATTEMPTS} attempts")))
            .execute(tx.conn())
            .await?
            .rows_affected();
        if marked == 0 {
            // Our lease ran out and another replica took the event: its messages are theirs to write.
            continue;
        }
        for planned in drafts {
            let (status, reason) = match &planned.suppressed {
                Some(reason) => ("suppressed", Some(reason.clone())),
                None => match mode(&mut tx, &mut preferences, &planned.recipient.id, c.event.kind).await? {
                    "never" => (
                        "suppressed",
                        Some("the recipient turned this kind of message off".to_owned()),
                    ),
                    "digest" => ("held", Some("waits for the recipient's daily digest".to_owned())),
                    _ => ("queued", None),
                },
            };
            insert_message(
                &mut tx,
                &NewMessage {
                    kind: c.event.kind,
                    event_id: Some(c.id.clone()),
                    recipient: planned.recipient.clone(),
                    draft: planned.draft.clone(),
                    source: planned.source.clone(),
                    status,
                    reason,
                    attachment: None,
                },
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(plans.len())
}

/// How a person wants a kind delivered: `immediately` (also without a preference row), `digest` or `never`.
async fn mode(
    tx: &mut TenantTx,
    cache: &mut HashMap<String, HashMap<String, String>>,
    user_id: &str,
    kind: Kind,
) -> Result<&'static str, sqlx::Error> {
    let Some(preference) = kind.preference() else {
        return Ok("immediately");
    };
    if !cache.contains_key(user_id) {
        let rows = tx
            .query("SELECT kind, mode FROM notification_preferences WHERE tenant_id = $1 AND user_id = $2")
            .bind(user_id.to_owned())
            .fetch_all(tx.conn())
            .await?;
        let mut modes = HashMap::new();
        for row in rows {
            modes.insert(row.try_get::<String, _>("kind")?, row.try_get::<String, _>("mode")?);
        }
        cache.insert(user_id.to_owned(), modes);
    }
    Ok(match cache[user_id].get(preference).map(String::as_str) {
        Some("never") => "never",
        Some("digest") => "digest",
        _ => "immediately",
    })
}

/// A course as messages name it.
#[derive(Debug, Clone)]
struct Course {
    title: String,
    code: String,
}

/// Drafts the host's messages for events, remembering people and courses across a batch.
struct Planner<'a> {
    composer: &'a Composer,
    people: HashMap<String, Option<Person>>,
    courses: HashMap<String, Option<Course>>,
}

impl Planner<'_> {
    async fn person(&mut self, tx: &mut TenantTx, id: &str) -> Result<Option<Person>, sqlx::Error> {
        if let Some(p) = self.people.get(id) {
            return Ok(p.clone());
        }
        let p = person(tx, id).await?;
        self.people.insert(id.to_owned(), p.clone());
        Ok(p)
    }

    async fn course(&mut self, tx: &mut TenantTx, id: &str) -> Result<Option<Course>, sqlx::Error> {
        if let Some(c) = self.courses.get(id) {
            return Ok(c.clone());
        }
        let c = tx
            .query("SELECT title, code FROM courses WHERE tenant_id = $1 AND id = $2")
            .bind(id.to_owned())
            .fetch_optional(tx.conn())
            .await?
            .map(|r| {
                Ok::<_, sqlx::Error>(Course {
                    title: r.try_get("title")?,
                    code: r.try_get("code")?,
                })
            })
            .transpose()?;
        self.courses.insert(id.to_owned(), c.clone());
        Ok(c)
    }

    /// The template variables of an event (course, due date, certificate, and the event's own data).
    async fn vars(&mut self, tx: &mut TenantTx, event: &Event) -> Result<Value, sqlx::Error> {
        let mut vars = match &event.data {
            Value::Object(map) => map.clone(),
            _ => Default::default(),
        };
        let url = self.composer.academy_url().map(str::to_owned);
        if let Some(course_id) = &event.course_id
            && let Some(course) = self.course(tx, course_id).await?
        {
            vars.insert(
                "course".into(),
                json!({
                    "title": course.title,
                    "code": course.code,
                    "url": url.as_ref().map(|u| format!("{u}/learn/{course_id}")),
                }),
            );
        }
        if let Some(enrollment_id) = &event.enrollment_id {
            let due: Option<i64> = tx
                .query("SELECT due_at FROM enrollments WHERE tenant_id = $1 AND id = $2")
                .bind(enrollment_id.clone())
                .fetch_optional(tx.conn())
                .await?
                .map(|r| r.try_get("due_at"))
                .transpose()?
                .flatten();
            let due = vars.get("due_at").and_then(Value::as_i64).or(due);
            if let Some(due) = due {
                vars.insert("due_date".into(), json!(rfc3339(due).get(..10).unwrap_or_default()));
                vars.insert("due_at".into(), json!(rfc3339(due)));
            }
        }
        if let Some(code) = vars.get("certificate_code").and_then(Value::as_str).map(str::to_owned) {
            vars.insert(
                "certificate".into(),
                json!({ "code": code, "url": url.as_ref().map(|u| format!("{u}/certificates/verify/{code}")) }),
            );
        }
        Ok(Value::Object(vars))
    }

    /// The host's drafts for one event.
    async fn plan(&mut self, tx: &mut TenantTx, event: &Event) -> Result<Vec<Planned>, sqlx::Error> {
        let recipients = match event.kind {
            Kind::SignupPending => match &event.user_id {
                Some(user) => approvers(tx, user).await?,
                None => Vec::new(),
            },
            Kind::PluginDisabled => holders(tx, Permission::PluginsManage).await?,
            _ => event.user_id.iter().cloned().collect(),
        };
        let vars = self.vars(tx, event).await?;
        let mut out = Vec::new();
        for id in recipients {
            let Some(person) = self.person(tx, &id).await? else {
                continue;
            };
            if person.status != "active" {
                continue;
            }
            let mut vars = vars.clone();
            if event.kind == Kind::SignupPending
                && let Some(user) = event.user_id.as_deref()
                && let Some(who) = self.person(tx, user).await?
            {
                let reason = vars.get("reason").cloned();
                vars["signup"] = json!({ "name": who.name, "email": who.email, "reason": reason });
            }
            let draft = self.composer.compose(event.kind, &person, &vars);
            out.push(Planned {
                recipient: person,
                draft,
                source: "host".into(),
                suppressed: None,
            });
        }
        Ok(out)
    }
}

/// Users who hold `permission` for the whole academy.
async fn holders(tx: &mut TenantTx, permission: Permission) -> Result<Vec<String>, sqlx::Error> {
    let rows = tx
        .query(
            "SELECT DISTINCT g.user_id, r.permissions FROM grants g JOIN roles r ON r.id = g.role_id \
             WHERE g.tenant_id = $1 AND g.scope_type = 'tenant' ORDER BY g.user_id",
        )
        .fetch_all(tx.conn())
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let names: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("permissions")?).unwrap_or_default();
        let user: String = row.try_get("user_id")?;
        if names.iter().any(|n| n == permission.as_str()) && !out.contains(&user) {
            out.push(user);
        }
    }
    Ok(out)
}

/// Users who may approve this person's sign-up: `users.write` over the whole academy or over one of the
/// person's organizations.
async fn approvers(tx: &mut TenantTx, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let paths: Vec<String> = tx
        .query(
            "SELECT o.path FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE m.tenant_id = $1 AND m.user_id = $2",
        )
        .bind(user_id.to_owned())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    let candidates: Vec<String> = tx
        .query("SELECT DISTINCT user_id FROM grants WHERE tenant_id = $1 ORDER BY user_id")
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for candidate in candidates {
        let reach = crate::auth::load_grants(tx, &candidate)
            .await?
            .reach(Permission::UsersWrite);
        if reach.all || paths.iter().any(|p| reach.covers_org_path(p)) {
            out.push(candidate);
        }
    }
    Ok(out)
}

/// The view a plugin sees an event through: the academy for events nobody caused; otherwise the causing
/// person's reach over users.
async fn view_of(db: &TenantDb, event: &Event) -> Result<View, sqlx::Error> {
    let Some(actor) = &event.actor_id else {
        return Ok(View::Tenant);
    };
    let mut tx = db.begin_read().await?;
    let reach = crate::auth::load_grants(&mut tx, actor)
        .await?
        .reach(Permission::UsersRead);
    tx.commit().await?;
    Ok(View::User {
        user_id: actor.clone(),
        reach,
    })
}

/// Is this user within the view (for recipients a plugin names)?
async fn visible(db: &TenantDb, view: &View, user_id: &str) -> Result<bool, sqlx::Error> {
    let mut sql = Sql::tenant("SELECT 1 FROM users u WHERE u.tenant_id = $1 AND u.status = 'active' AND u.id = ");
    sql.push_bind(user_id.to_owned());
    match view {
        View::Tenant => {}
        View::Anonymous => return Ok(false),
        View::Reach(reach) => reach.push_user_filter(&mut sql, db.backend()),
        View::User { user_id: actor, reach } => {
            sql.push(" AND (u.id = ").push_bind(actor.clone()).push(" OR (1 = 1");
            reach.push_user_filter(&mut sql, db.backend());
            sql.push("))");
        }
    }
    let mut tx = db.begin_read().await?;
    let found = tx.fetch_optional_sql(&sql).await?.is_some();
    tx.commit().await?;
    Ok(found)
}

/// Let one plugin keep, replace or suppress the drafts. It fails open: on an error or a fault the drafts
/// stay as they are (the fault is recorded by the runtime).
async fn apply_plugin(
    notifier: &Notifier,
    db: &TenantDb,
    composer: &Composer,
    plugin: &crate::plugins::runtime::Loaded,
    event: &Event,
    drafts: &mut Vec<Planned>,
) -> anyhow::Result<()> {
    let live: Vec<&Planned> = drafts.iter().filter(|p| p.suppressed.is_none()).collect();
    let notice = hooks::Notice {
        kind: event.kind.hook_name(),
        user_id: event.user_id.clone(),
        course_id: event.course_id.clone(),
        due_at: event.data.get("due_at").and_then(Value::as_i64).map(rfc3339),
        data: match &event.data {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect(),
            _ => Vec::new(),
        },
    };
    let plugin_drafts: Vec<hooks::Message> = live
        .iter()
        .map(|p| hooks::Message {
            recipient_id: p.recipient.id.clone(),
            locale: p.draft.locale.clone(),
            subject: p.draft.subject.clone(),
            body_text: p.draft.text.clone(),
            body_html: None,
        })
        .collect();
    let view = view_of(db, event).await?;
    let result = notifier
        .plugins
        .on_notice(db, plugin, view.clone(), notice, plugin_drafts)
        .await;
    let source = format!("plugin:{}@{}", plugin.plugin_id, plugin.version);
    match result {
        Ok(hooks::Outcome::Keep) => {}
        Ok(hooks::Outcome::Suppress) => {
            for p in drafts.iter_mut().filter(|p| p.suppressed.is_none()) {
                p.suppressed = Some(format!("suppressed by the plugin {}", plugin.name));
                p.source = source.clone();
            }
        }
        Ok(hooks::Outcome::Replace(messages)) => {
            let allowed: HashSet<String> = drafts
                .iter()
                .filter(|p| p.suppressed.is_none())
                .map(|p| p.recipient.id.clone())
                .collect();
            let mut replaced = Vec::with_capacity(messages.len());
            for m in messages {
                let Some(planned) = plugin_message(db, composer, &view, &allowed, &source, m).await? else {
                    continue;
                };
                replaced.push(planned);
            }
            // Drafts the plugin left out are suppressed, on the record.
            let kept: HashSet<&str> = replaced.iter().map(|p| p.recipient.id.as_str()).collect();
            for p in drafts.iter_mut().filter(|p| p.suppressed.is_none()) {
                if !kept.contains(p.recipient.id.as_str()) {
                    p.suppressed = Some(format!("left out by the plugin {}", plugin.name));
                    p.source = source.clone();
                }
            }
            drafts.retain(|p| p.suppressed.is_some());
            drafts.extend(replaced);
        }
        Err(e) => {
            tracing::warn!(plugin = %plugin.name, error = %e, "a notification plugin failed; its drafts go out unchanged");
        }
    }
    Ok(())
}

/// A message a plugin wrote, if its recipient is allowed: one of the drafts' recipients, or a user within
/// the view of whoever caused the event. Refused recipients are logged, never written to.
async fn plugin_message(
    db: &TenantDb,
    composer: &Composer,
    view: &View,
    allowed: &HashSet<String>,
    source: &str,
    m: hooks::Message,
) -> anyhow::Result<Option<Planned>> {
    if !allowed.contains(&m.recipient_id) && !visible(db, view, &m.recipient_id).await? {
        tracing::warn!(recipient = %m.recipient_id, source, "a plugin named a recipient outside the event's scope; refused");
        return Ok(None);
    }
    let mut tx = db.begin_read().await?;
    let recipient = person(&mut tx, &m.recipient_id).await?;
    tx.commit().await?;
    let Some(recipient) = recipient.filter(|p| p.status == "active") else {
        return Ok(None);
    };
    let subject: String = m.subject.lines().next().unwrap_or_default().chars().take(250).collect();
    if subject.trim().is_empty() {
        tracing::warn!(source, "a plugin message without a subject; refused");
        return Ok(None);
    }
    let locale = if crate::tenancy::valid_locale(&m.locale) {
        m.locale.clone()
    } else {
        composer.locale_for(&recipient)
    };
    let template = super::templates::Template {
        subject: "{{subject}}".into(),
        body_text: "{{text}}".into(),
        body_html: m.body_html.as_ref().map(|_| "{{{html}}}".into()),
    };
    let html = m.body_html.as_deref().map(ammonia::clean);
    let draft = composer.render(
        &template,
        &json!({ "subject": subject, "text": m.body_text, "html": html }),
        locale,
    );
    Ok(Some(Planned {
        recipient,
        draft,
        source: source.to_owned(),
        suppressed: None,
    }))
}
