//! Notifications as the academy's people meet them: a learner told they are enrolled and reminded before the
//! due date in their own language, from their academy's sender, in its colors; someone who turned reminders
//! off hears nothing; a digest gathers what its reader asked to be gathered; admins change the texts and see
//! every message's delivery record, and a manager sees only their own people's messages.

mod common;

use aula::config::Config;
use aula_tests::smtp::Received;
use base64::Engine;
use common::{Client, TestApp, scenarios};
use serde_json::json;
use std::time::{Duration, Instant};

scenarios!(with fast =>
    reminder_in_the_learners_language_from_the_academy,
    opted_out_learner_gets_no_reminder,
    digest_gathers_held_messages,
    academy_templates_and_their_errors,
    managers_see_only_their_peoples_messages,
    notification_plugin_rewrites_reminders,
    an_interrupted_last_attempt_is_given_up,
);
scenarios!(with small_batches => academies_take_turns_at_delivery);

/// The outbox and delivery poll every 100 ms and the scheduler runs every 300 ms, so a test waits
/// moments, not minutes.
fn fast(config: &mut Config) {
    config.notifications.poll_ms = 100;
    config.notifications.schedule_ms = 300;
}

/// As `fast`, with two messages per delivery batch, so that turns between academies show in a few messages.
fn small_batches(config: &mut Config) {
    fast(config);
    config.notifications.batch = 2;
}

const PASSWORD: &str = "a-long-password-2026";
const WAIT: Duration = Duration::from_secs(30);

/// A new learner of acme with a password and a language; returns their id and a signed-in client.
async fn learner(app: &TestApp, admin: &Client, email: &str, name: &str, locale: &str) -> (String, Client) {
    let (status, user) = admin
        .post(
            "/api/v1/users",
            json!({"email": email, "name": name, "locale": locale, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let client = app.login_with("acme", email, PASSWORD).await;
    (user["id"].as_str().expect("user id").to_owned(), client)
}

/// A published course due two days after enrolling.
async fn course_due_in_two_days(admin: &Client, code: &str, title: &str) -> String {
    let (status, course) = admin
        .post(
            "/api/v1/courses",
            json!({"code": code, "title": title, "status": "published", "due_days": 2}),
        )
        .await;
    assert_eq!(status, 201, "{course}");
    course["id"].as_str().expect("course id").to_owned()
}

async fn enroll(admin: &Client, user: &str, course: &str) {
    let (status, body) = admin
        .post("/api/v1/enrollments", json!({"user_id": user, "course_id": course}))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Wait until `sql` (with `args`) counts at least `n` rows.
async fn until_count(app: &TestApp, sql: &str, args: &[&str], n: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = app.count(sql, args).await;
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {n} rows of {sql} {args:?}; {got} so far"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait for a message to `address` whose subject contains `needle`.
async fn mail_to(app: &TestApp, address: &str, needle: &str) -> Received {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = app
            .mail
            .messages_to(address)
            .into_iter()
            .find(|m| m.subject().contains(needle))
        {
            return m;
        }
        let subjects: Vec<String> = app.mail.messages_to(address).iter().map(Received::subject).collect();
        assert!(
            Instant::now() < deadline,
            "no mail to {address} with {needle:?}; got {subjects:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The decoded body of the message's part of this content type (`text/plain`, `text/html`).
fn part(message: &Received, content_type: &str) -> String {
    let data = &message.data;
    for chunk in data.split("\r\n--") {
        let Some((head, body)) = chunk.split_once("\r\n\r\n") else {
            continue;
        };
        let head_lower = head.to_ascii_lowercase();
        if !head_lower.contains(&format!("content-type: {content_type}")) {
            continue;
        }
        let body = body.split("\r\n--").next().unwrap_or(body);
        if head_lower.contains("content-transfer-encoding: base64") {
            let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean)
                .expect("base64 part");
            return String::from_utf8(bytes).expect("UTF-8 part");
        }
        if head_lower.contains("content-transfer-encoding: quoted-printable") {
            let mut out = Vec::new();
            let bytes = body.replace("=\r\n", "").into_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                if let Some(b) = hex
                    .filter(|_| bytes[i] == b'=')
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(bytes[i]);
                i += 1;
            }
            return String::from_utf8_lossy(&out).into_owned();
        }
        return body.to_owned();
    }
    panic!("no {content_type} part in:\n{data}")
}

// ---------------------------------------------------------------------------------------------------------
// Scenarios

/// Ada reads German. Enrolled in a course due in two days, she is told she is enrolled and then reminded,
/// both in German, from the sender acme configured, in a message carrying acme's accent color and name.
async fn reminder_in_the_learners_language_from_the_academy(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    // An academy sends only from a domain it owns: before the operator maps acme.test to acme, the address is
    // refused, naming the field.
    let wanted = json!({"sender_name": "Acme Learning", "sender_address": "learning@acme.test", "due_soon_days": 3});
    let (status, refused) = admin.put("/api/v1/notification-settings", wanted.clone()).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "sender_domain_not_owned", "{refused}");
    assert_eq!(refused["error"]["field"], "sender_address", "{refused}");
    let platform = app.client_on(&app.platform_host());
    let reply = platform.sign_in_operator().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let operator = platform.with_token(reply.body["token"].as_str().expect("operator token"));
    let (status, body) = operator
        .post("/api/v1/platform/tenants/acme/domains", json!({"domain": "acme.test"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, settings) = admin.put("/api/v1/notification-settings", wanted).await;
    assert_eq!(status, 200, "{settings}");
    let (_, branding) = admin.get("/api/v1/branding").await;
    let mut look = branding["settings"].clone();
    let accent = "#7b2d8e";
    look["colors"]["accent"] = json!(accent);
    let (status, body) = admin.put("/api/v1/branding", look).await;
    assert_eq!(status, 200, "{body}");

    let (ada, _) = learner(app, &admin, "ada.deutsch@acme.test", "Ada Deutsch", "de").await;
    let course = course_due_in_two_days(&admin, "GDPR-1", "Datenschutz kompakt").await;
    enroll(&admin, &ada, &course).await;

    let enrolled = mail_to(app, "ada.deutsch@acme.test", "angemeldet").await;
    assert!(
        enrolled.subject().contains("Datenschutz kompakt"),
        "{}",
        enrolled.subject()
    );
    let reminder = mail_to(app, "ada.deutsch@acme.test", "Erinnerung").await;
    assert!(reminder.subject().contains("fällig"), "{}", reminder.subject());
    let from = reminder.header("from").expect("a From header");
    assert!(
        from.contains("Acme Learning") && from.contains("<learning@acme.test>"),
        "{from}"
    );
    assert_eq!(reminder.from, "learning@acme.test");
    let text = part(&reminder, "text/plain");
    assert!(
        text.contains("Hallo Ada Deutsch") && text.contains("Datenschutz kompakt"),
        "{text}"
    );
    let html = part(&reminder, "text/html");
    assert!(
        html.contains(accent),
        "the HTML carries acme's accent {accent}:\n{html}"
    );
    assert!(html.contains("lang=\"de\""), "{html}");

    // One reminder for one enrollment and due date, however often the scheduler runs.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let reminders = app
        .mail
        .messages_to("ada.deutsch@acme.test")
        .iter()
        .filter(|m| m.subject().contains("Erinnerung"))
        .count();
    assert_eq!(reminders, 1);

    // The delivery record: sent, with one accepted attempt.
    let (status, page) = admin
        .get(&format!("/api/v1/messages?user_id={ada}&kind=due_soon"))
        .await;
    assert_eq!(status, 200, "{page}");
    let id = page["items"][0]["id"].as_str().expect("a message").to_owned();
    let (_, message) = admin.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["attempts_made"][0]["outcome"], "accepted", "{message}");
}

/// Otto turned due-date reminders off: he is told he is enrolled, but never reminded; the record says why.
async fn opted_out_learner_gets_no_reminder(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (otto, otto_client) = learner(app, &admin, "otto.optout@acme.test", "Otto", "en").await;
    let (status, prefs) = otto_client
        .put("/api/v1/me/notification-preferences", json!({"due_soon": "never"}))
        .await;
    assert_eq!(status, 200, "{prefs}");
    let (eve, _) = learner(app, &admin, "eve.everything@acme.test", "Eve", "en").await;
    let course = course_due_in_two_days(&admin, "FIRE-1", "Fire safety").await;
    enroll(&admin, &otto, &course).await;
    enroll(&admin, &eve, &course).await;

    mail_to(app, "eve.everything@acme.test", "Reminder").await;
    until_count(
        app,
        "SELECT COUNT(*) FROM messages WHERE recipient_id = $1 AND kind = 'due_soon' AND status = 'suppressed'",
        &[&otto],
        1,
    )
    .await;
    mail_to(app, "otto.optout@acme.test", "enrolled").await;
    let reminded: Vec<String> = app
        .mail
        .messages_to("otto.optout@acme.test")
        .iter()
        .map(Received::subject)
        .filter(|s| s.contains("Reminder"))
        .collect();
    assert!(reminded.is_empty(), "an opted-out learner got {reminded:?}");
    let (_, page) = admin
        .get(&format!("/api/v1/messages?user_id={otto}&kind=due_soon"))
        .await;
    assert_eq!(page["items"][0]["status"], "suppressed", "{page}");
    assert!(
        page["items"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("turned"),
        "{page}"
    );
}

/// Dora wants enrollments in a daily digest: nothing arrives when she is enrolled; the digest, due at the
/// academy's digest hour, lists both courses in one message, and the held messages are marked digested.
async fn digest_gathers_held_messages(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    // No digest may go out between the two enrollments, whatever the time of day: the digest hour is the last
    // of the day, and today's digest counts as sent (its once-a-day slot taken, as the scheduler takes it).
    let (status, body) = admin
        .put("/api/v1/notification-settings", json!({"digest_hour": 23}))
        .await;
    assert_eq!(status, 200, "{body}");
    let today = aula::db::rfc3339(aula::db::now_ms())[..10].to_owned();
    app.exec(
        "INSERT INTO schedule_slots (tenant_id, job, slot, claimed_at) \
         SELECT t.id, 'digest', $1, 0 FROM tenants t WHERE t.slug = 'acme'",
        &[&today],
    )
    .await;
    let (dora, dora_client) = learner(app, &admin, "dora.digest@acme.test", "Dora", "en").await;
    let (status, _) = dora_client
        .put(
            "/api/v1/me/notification-preferences",
            json!({"enrolled": "digest", "due_soon": "never"}),
        )
        .await;
    assert_eq!(status, 200);
    let a = course_due_in_two_days(&admin, "DIG-A", "Digest course A").await;
    let b = course_due_in_two_days(&admin, "DIG-B", "Digest course B").await;
    enroll(&admin, &dora, &a).await;
    enroll(&admin, &dora, &b).await;
    until_count(
        app,
        "SELECT COUNT(*) FROM messages WHERE recipient_id = $1 AND kind = 'enrolled' AND status = 'held'",
        &[&dora],
        2,
    )
    .await;
    assert!(app.mail.messages_to("dora.digest@acme.test").is_empty());

    // The digest goes out at the first scheduler run at or after the digest hour (0: at once) on a day whose
    // digest has not gone out yet.
    app.exec(
        "DELETE FROM schedule_slots WHERE job = 'digest' AND tenant_id = (SELECT id FROM tenants WHERE slug = 'acme')",
        &[],
    )
    .await;
    let (status, body) = admin
        .put("/api/v1/notification-settings", json!({"digest_hour": 0}))
        .await;
    assert_eq!(status, 200, "{body}");
    let digest = mail_to(app, "dora.digest@acme.test", "digest").await;
    let text = part(&digest, "text/plain");
    assert!(
        text.contains("Digest course A") && text.contains("Digest course B"),
        "{text}"
    );
    until_count(
        app,
        "SELECT COUNT(*) FROM messages WHERE recipient_id = $1 AND kind = 'enrolled' AND status = 'digested'",
        &[&dora],
        2,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        app.mail.messages_to("dora.digest@acme.test").len(),
        1,
        "one digest per day"
    );
}

/// Admins replace a text per kind and language; a template that does not compile is refused naming the
/// field and nothing changes; the preview renders without storing; deleting goes back to the default.
async fn academy_templates_and_their_errors(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (status, list) = admin.get("/api/v1/notification-templates").await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list.as_array()
            .expect("a list")
            .iter()
            .any(|t| t["kind"] == "due_soon" && t["custom"] == false)
    );

    let before = app.snapshot().await;
    let (status, body) = admin
        .put(
            "/api/v1/notification-templates/enrolled/en",
            json!({"subject": "Hi {{recipient.name}}", "body_text": "{{#if course}}unclosed"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "body_text", "{body}");
    let (status, body) = admin
        .put(
            "/api/v1/notification-templates/nonsense/en",
            json!({"subject": "x", "body_text": "y"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "kind", "{body}");
    assert_eq!(app.snapshot().await, before, "refused templates change nothing");

    let (status, preview) = admin
        .post(
            "/api/v1/notification-templates/enrolled/en/preview",
            json!({"template": {"subject": "Welcome aboard {{course.title}}", "body_text": "Go, {{recipient.name}}!"}}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert!(
        preview["subject"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Welcome aboard"),
        "{preview}"
    );
    assert!(
        preview["html"].as_str().unwrap_or_default().contains("Go,"),
        "{preview}"
    );
    assert_eq!(app.snapshot().await, before, "a preview stores nothing");

    let (status, saved) = admin
        .put(
            "/api/v1/notification-templates/enrolled/en",
            json!({
                "subject": "Welcome aboard {{course.title}}",
                "body_text": "Go, {{recipient.name}}!\n\n\tSee you there.\n",
                "body_html": "<p>Go, {{recipient.name}}!</p>\n<p>See you there.</p>\n",
            }),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["custom"], true);
    let (uma, _) = learner(app, &admin, "uma.template@acme.test", "Uma", "en").await;
    let course = course_due_in_two_days(&admin, "TPL-1", "Templates 101").await;
    enroll(&admin, &uma, &course).await;
    let mail = mail_to(app, "uma.template@acme.test", "Welcome aboard Templates 101").await;
    let text = part(&mail, "text/plain");
    assert!(
        text.contains("Go, Uma!") && text.contains("See you there."),
        "a body spans lines: {text}"
    );
    let html = part(&mail, "text/html");
    assert!(html.contains("See you there."), "{html}");

    let (status, _) = admin.delete("/api/v1/notification-templates/enrolled/en").await;
    assert_eq!(status, 204);
    let (_, back) = admin.get("/api/v1/notification-templates/enrolled/en").await;
    assert_eq!(back["custom"], false, "{back}");
    let (status, _) = admin.delete("/api/v1/notification-templates/enrolled/en").await;
    assert_eq!(status, 404);
}

/// The EMEA manager lists messages: only those to people within Sales EMEA; another person's message answers 404.
async fn managers_see_only_their_peoples_messages(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let directory = common::Directory::load(&admin).await;
    let inside: Vec<String> = directory
        .users_below("Sales EMEA")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(!inside.is_empty());
    let (outsider, _) = learner(app, &admin, "nobody.outside@acme.test", "Outside", "en").await;
    let course = course_due_in_two_days(&admin, "MGR-1", "Scope course").await;
    enroll(&admin, &inside[0], &course).await;
    enroll(&admin, &outsider, &course).await;
    until_count(
        app,
        "SELECT COUNT(*) FROM messages WHERE recipient_id = $1",
        &[&outsider],
        1,
    )
    .await;
    until_count(
        app,
        "SELECT COUNT(*) FROM messages WHERE recipient_id = $1",
        &[&inside[0]],
        1,
    )
    .await;

    let manager = app.login("acme", "emea.manager@acme.test").await;
    let (status, page) = manager.get("/api/v1/messages?limit=500").await;
    assert_eq!(status, 200, "{page}");
    let recipients: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["recipient_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(recipients.contains(&inside[0]), "{recipients:?}");
    for r in &recipients {
        assert!(inside.contains(r), "the manager saw a message to {r}, outside EMEA");
    }
    let (_, all) = admin.get(&format!("/api/v1/messages?user_id={outsider}")).await;
    let theirs = all["items"][0]["id"].as_str().expect("a message to the outsider");
    let (status, _) = manager.get(&format!("/api/v1/messages/{theirs}")).await;
    assert_eq!(status, 404);
    let globex = app.login("globex", "admin@globex.test").await;
    let (status, _) = globex.get(&format!("/api/v1/messages/{theirs}")).await;
    assert_eq!(status, 404, "another academy's message is not found");
}

/// acme deploys the localized-reminders plugin: a French learner's reminder is rewritten in French, and a
/// learner tagged `no-reminders` gets none (the plugin suppressed it, on the record).
async fn notification_plugin_rewrites_reminders(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = std::path::Path::new(env!("AULA_PLUGINS_DIR")).join("localized-reminders");
    let manifest = std::fs::read_to_string(dir.join("aula-plugin.toml")).expect("the plugin's manifest");
    let wasm = std::path::Path::new(env!("AULA_WASM_DIR")).join("localized_reminders.wasm");
    let component = std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
    let form = common::Form::new()
        .text("manifest", &manifest)
        .file("component", "plugin.wasm", &component)
        .text("grant", "requested");
    let reply = admin.post_form("/api/v1/plugins", &form).await;
    assert_eq!(reply.status, 201, "upload: {}", reply.text);
    let plugin = reply.body["plugin"]["id"].as_str().expect("plugin id").to_owned();
    let (status, body) = admin
        .post(&format!("/api/v1/plugins/{plugin}/activate"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");

    let (_, tenant) = admin.get("/api/v1/tenant").await;
    let mut settings = tenant["settings"].clone();
    settings["allowed_locales"] = json!(["en", "de", "fr"]);
    let (status, body) = admin.patch("/api/v1/tenant", json!({"settings": settings})).await;
    assert_eq!(status, 200, "allowing French: {body}");
    let (fleur, _) = learner(app, &admin, "fleur.francais@acme.test", "Fleur", "fr").await;
    let (status, tag) = admin.post("/api/v1/tags", json!({"name": "no-reminders"})).await;
    assert_eq!(status, 201, "{tag}");
    let (status, quiet) = admin
        .post(
            "/api/v1/users",
            json!({"email": "quiet.tagged@acme.test", "name": "Quiet", "tag_ids": [tag["id"]]}),
        )
        .await;
    assert_eq!(status, 201, "{quiet}");
    let quiet = quiet["id"].as_str().expect("user id").to_owned();
    let course = course_due_in_two_days(&admin, "PLG-1", "Sécurité incendie").await;
    enroll(&admin, &fleur, &course).await;
    enroll(&admin, &quiet, &course).await;

    let reminder = mail_to(app, "fleur.francais@acme.test", "Rappel").await;
    assert!(
        reminder.subject().contains("Sécurité incendie"),
        "{}",
        reminder.subject()
    );
    assert!(part(&reminder, "text/plain").contains("Bonjour Fleur"));
    until_count(
        app,
        "SELECT COUNT(*) FROM messages WHERE recipient_id = $1 AND kind = 'due_soon' AND status = 'suppressed' \
         AND source LIKE 'plugin:%'",
        &[&quiet],
        1,
    )
    .await;
    let (_, page) = admin
        .get(&format!("/api/v1/messages?user_id={fleur}&kind=due_soon"))
        .await;
    let source = page["items"][0]["source"].as_str().unwrap_or_default();
    assert!(source.starts_with(&format!("plugin:{plugin}@")), "{page}");
}

/// Two messages whose sender stopped in the middle of sending them (a process killed mid-delivery leaves them
/// `sending` with a `started` attempt and a lease that runs out): one on its 7th attempt goes back to the queue
/// and is sent on its 8th; one on its 8th, the last `max_attempts` allows, is given up and never sent, so a
/// message that keeps bringing its sender down is not tried forever.
async fn an_interrupted_last_attempt_is_given_up(app: &TestApp) {
    let max = aula::config::notify::NotifySettings::default().max_attempts;
    assert_eq!(max, 8, "the default, which `fast` keeps");
    // Their lease runs out in a moment: after both rows of each are in place, as a killed sender leaves them.
    let lease_until = aula::db::now_ms() + 1000;
    for (id, address, attempts) in [
        ("itest-again", "again@acme.test", 7),
        ("itest-stuck", "stuck@acme.test", 8),
    ] {
        app.exec(
            &format!(
                "INSERT INTO messages (id, tenant_id, kind, to_address, locale, subject, body_text, source, status, \
                 attempts, lease_until, message_id, created_at) \
                 SELECT $1, t.id, 'enrolled', $2, 'en', $3, 'Interrupted before.', 'host', 'sending', {attempts}, \
                 {lease_until}, $4, 1 FROM tenants t WHERE t.slug = 'acme'"
            ),
            &[id, address, &format!("Interrupted {id}"), &format!("<{id}@aula.test>")],
        )
        .await;
        app.exec(
            &format!(
                "INSERT INTO message_attempts (id, tenant_id, message_id, attempt, started_at, outcome) \
                 SELECT $1, m.tenant_id, m.id, {attempts}, 1, 'started' FROM messages m WHERE m.id = $2"
            ),
            &[&format!("{id}-attempt"), id],
        )
        .await;
    }

    let again = mail_to(app, "again@acme.test", "Interrupted itest-again").await;
    assert!(again.data.contains("<itest-again@aula.test>"), "the same Message-ID");
    until_count(
        app,
        "SELECT COUNT(*) FROM messages WHERE id = $1 AND status = 'failed' AND reason LIKE '%given up after 8 attempts%'",
        &["itest-stuck"],
        1,
    )
    .await;
    let outcomes = |id: &str| {
        format!(
            "SELECT COUNT(*) FROM message_attempts WHERE message_id = '{id}' AND outcome = 'interrupted' AND finished_at IS NOT NULL"
        )
    };
    assert_eq!(app.count(&outcomes("itest-stuck"), &[]).await, 1);
    assert_eq!(app.count(&outcomes("itest-again"), &[]).await, 1);
    until_count(
        app,
        "SELECT COUNT(*) FROM message_attempts WHERE message_id = $1 AND attempt = 8 AND outcome = 'accepted'",
        &["itest-again"],
        1,
    )
    .await;
    // The stuck one stays failed: a further round of delivery does not pick it up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.mail.messages_to("stuck@acme.test").is_empty(), "never sent");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM message_attempts WHERE message_id = $1",
            &["itest-stuck"]
        )
        .await,
        1,
        "no attempt after the last"
    );
}

/// Six messages fall due at once in each of two academies. Delivery takes one batch (two messages) from each
/// academy in turn, so neither academy's queue waits for the other's to empty: among the first six messages
/// sent, each academy has at least two (the whole of one queue first would give six of one academy).
async fn academies_take_turns_at_delivery(app: &TestApp) {
    let now = aula::db::now_ms();
    let mut rows = Vec::new();
    for slug in ["acme", "globex"] {
        for i in 0..6 {
            rows.push(format!(
                "('turns-{slug}-{i}', (SELECT id FROM tenants WHERE slug = '{slug}'), 'enrolled', \
                 'turns-{slug}-{i}@{slug}.test', 'en', 'Turn {slug} {i}', 'Taking turns.', 'host', 'queued', \
                 {now}, '<turns-{slug}-{i}@aula.test>', {created})",
                created = now + i
            ));
        }
    }
    // One statement: both queues fall due in the same moment.
    app.exec(
        &format!(
            "INSERT INTO messages (id, tenant_id, kind, to_address, locale, subject, body_text, source, status, \
             next_attempt_at, message_id, created_at) VALUES {}",
            rows.join(", ")
        ),
        &[],
    )
    .await;
    until_count(
        app,
        "SELECT COUNT(*) FROM messages WHERE id LIKE 'turns-%' AND status = 'sent'",
        &[],
        12,
    )
    .await;
    let order: Vec<String> = app
        .mail
        .messages()
        .iter()
        .flat_map(|m| m.to.clone())
        .filter(|to| to.starts_with("turns-"))
        .collect();
    assert_eq!(order.len(), 12, "{order:?}");
    for slug in ["acme", "globex"] {
        let early = order[..6]
            .iter()
            .filter(|to| to.ends_with(&format!("@{slug}.test")))
            .count();
        assert!(early >= 2, "{slug} had {early} of the first six messages: {order:?}");
    }
}
