//! A person's own account: a password reset by e-mailed link (delivered to a real SMTP listener), their
//! name and language, and their notification preferences.

mod common;

use aula_tests::smtp::Received;
use common::{Body, Client, Directory, Reply, TestApp, scenarios};
use serde_json::{Value, json};
use std::time::Duration;

scenarios!(
    a_reset_link_sets_a_new_password_once_and_ends_every_session,
    unknown_and_inactive_addresses_get_the_same_answer_and_no_mail,
    expired_and_foreign_links_are_refused,
    reset_mail_speaks_the_account_language,
    reset_mails_are_throttled_per_address,
    people_change_their_own_name_and_language,
    notification_preferences_default_and_change_in_part,
);

/// How long a mail may take to arrive.
const WAIT: Duration = Duration::from_secs(15);
const NEW_PASSWORD: &str = "a-brand-new-password";

async fn ask_reset(app: &TestApp, slug: &str, email: &str) -> Reply {
    app.visitor(slug)
        .send(
            "POST",
            "/api/v1/auth/password-reset",
            Body::Json(json!({"email": email})),
        )
        .await
}

async fn use_link(client: &Client, token: &str, password: &str) -> Reply {
    client
        .send(
            "POST",
            &format!("/api/v1/auth/password-reset/{token}"),
            Body::Json(json!({"new_password": password})),
        )
        .await
}

/// The reset link in a mail, and its token.
fn link_in(mail: &Received) -> (String, String) {
    let text = mail.text();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/password-reset/"))
        .unwrap_or_else(|| panic!("no reset link in the mail:\n{text}"))
        .to_owned();
    let token = link.rsplit('/').next().unwrap_or_default().to_owned();
    (link, token)
}

/// Ask for a reset of `email` on acme and return the link's token from the one new mail.
async fn reset_token(app: &TestApp, email: &str) -> String {
    let before = app.mail.messages().len();
    let reply = ask_reset(app, "acme", email).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let mail = app.mail.wait_for(before + 1, WAIT).await;
    let mine = &mail[before];
    assert_eq!(mine.to, [email]);
    link_in(mine).1
}

async fn sign_in_status(app: &TestApp, email: &str, password: &str) -> u16 {
    app.visitor("acme").sign_in(email, password).await.status.as_u16()
}

async fn audit_entries(app: &TestApp, action: &str, target: &str) -> i64 {
    app.count(
        "SELECT COUNT(*) FROM audit_log WHERE action = $1 AND target_id = $2",
        &[action, target],
    )
    .await
}

async fn a_reset_link_sets_a_new_password_once_and_ends_every_session(app: &TestApp) {
    // Arrange: Omar is signed in twice and holds an API token.
    let omar = "omar.ops@acme.test";
    let first = app.login("acme", omar).await;
    let second = app.login("acme", omar).await;
    let (_, secret) = first.create_token("scripts").await;
    let token_client = app.with_token("acme", &secret);
    let (status, me) = first.get("/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    let omar_id = me["id"].as_str().expect("id").to_owned();

    // Act: he asks for a reset with his address written differently.
    let reply = ask_reset(app, "acme", "  Omar.Ops@ACME.test ").await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert!(reply.body["message"].is_string(), "{}", reply.text);

    // One mail, to him, from the academy, with a link to this academy's address.
    let mail = app.mail.wait_for(1, WAIT).await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].to, [omar]);
    let from = mail[0].header("from").expect("a From header");
    assert!(
        from.contains("Acme Academy") && from.contains("noreply@localhost"),
        "{from}"
    );
    assert!(mail[0].subject().contains("Acme Academy"), "{}", mail[0].subject());
    let (link, token) = link_in(&mail[0]);
    assert_eq!(
        link,
        format!("http://{}/password-reset/{token}", app.tenant_host("acme"))
    );
    assert!(token.len() >= 40, "a 256-bit secret: {token}");
    // Only the link's hash is stored.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM password_resets WHERE secret_hash = $1", &[&token])
            .await,
        0
    );

    // A password that is too short is refused, naming the field, and the link stays usable.
    let visitor = app.visitor("acme");
    let reply = use_link(&visitor, &token, "short").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.field(), "new_password");
    assert_eq!(sign_in_status(app, omar, aula::demo::DEMO_PASSWORD).await, 200);

    // The link sets the new password.
    let reply = use_link(&visitor, &token, NEW_PASSWORD).await;
    assert_eq!(reply.status, 204, "{}", reply.text);

    // Every session and token of the account has ended; the old password no longer works, the new one does.
    for (client, what) in [
        (&first, "first session"),
        (&second, "second session"),
        (&token_client, "API token"),
    ] {
        let (status, body) = client.get("/api/v1/me").await;
        assert_eq!(status, 401, "{what}: {body}");
    }
    assert_eq!(sign_in_status(app, omar, aula::demo::DEMO_PASSWORD).await, 401);
    assert_eq!(sign_in_status(app, omar, NEW_PASSWORD).await, 200);
    assert_eq!(audit_entries(app, "user.password_reset", &omar_id).await, 1);

    // The link works once.
    let reply = use_link(&visitor, &token, "yet-another-password").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.code(), "reset_link_invalid");
    assert_eq!(sign_in_status(app, omar, NEW_PASSWORD).await, 200);
    assert_eq!(app.mail.messages().len(), 1, "exactly one mail was sent");
}

async fn unknown_and_inactive_addresses_get_the_same_answer_and_no_mail(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let (status, body) = admin
        .patch(
            &format!("/api/v1/users/{}", acme.user("olga.ops@acme.test")),
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let unknown = ask_reset(app, "acme", "nobody@acme.test").await;
    let suspended = ask_reset(app, "acme", "olga.ops@acme.test").await;
    // An address of another academy is unknown here.
    let foreign = ask_reset(app, "acme", "admin@globex.test").await;
    let known = ask_reset(app, "acme", "nora.north@acme.test").await;
    for reply in [&unknown, &suspended, &foreign, &known] {
        assert_eq!(reply.status, 202, "{}", reply.text);
        assert_eq!(reply.body, known.body, "every answer is the same");
    }

    // Only the existing, active account gets a mail, and only it has a link stored.
    let mail = app.mail.wait_for(1, WAIT).await;
    for m in &mail {
        assert_eq!(m.to, ["nora.north@acme.test"], "{m:#?}");
    }
    for address in ["nobody@acme.test", "olga.ops@acme.test", "admin@globex.test"] {
        assert_eq!(
            app.count("SELECT COUNT(*) FROM password_resets WHERE email = $1", &[address])
                .await,
            0,
            "{address}"
        );
    }

    // Not an address at all, on the platform's host, or on no academy's host: told plainly.
    let reply = ask_reset(app, "acme", "not an address").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.field(), "email");
    let reply = app
        .client_on(&app.platform_host())
        .send(
            "POST",
            "/api/v1/auth/password-reset",
            Body::Json(json!({"email": "nora.north@acme.test"})),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.code(), "tenant_host_required");
    let reply = ask_reset(app, "initrode", "nora.north@acme.test").await;
    assert_eq!(reply.status, 404, "{}", reply.text);

    // By now every mail of the requests above would have gone out: still none to anyone else.
    let mail = app.mail.wait_for(1, WAIT).await;
    assert!(mail.iter().all(|m| m.to == ["nora.north@acme.test"]), "{mail:#?}");
}

async fn expired_and_foreign_links_are_refused(app: &TestApp) {
    let nora = "nora.north@acme.test";
    let token = reset_token(app, nora).await;

    // acme's link on globex's address: globex has no such link.
    let reply = use_link(&app.visitor("globex"), &token, NEW_PASSWORD).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.code(), "reset_link_invalid");
    // Nor is any made-up link valid.
    let reply = use_link(&app.visitor("acme"), "made-up", NEW_PASSWORD).await;
    assert_eq!(reply.code(), "reset_link_invalid", "{}", reply.text);

    // Past its hour the link is refused.
    app.exec("UPDATE password_resets SET expires_at = 1000 WHERE email = $1", &[nora])
        .await;
    let reply = use_link(&app.visitor("acme"), &token, NEW_PASSWORD).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.code(), "reset_link_invalid");

    // A link sent to an address the account no longer has is refused too.
    let token = reset_token(app, nora).await;
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let (status, body) = admin
        .patch(
            &format!("/api/v1/users/{}", acme.user(nora)),
            json!({"email": "nora@acme.test"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reply = use_link(&app.visitor("acme"), &token, NEW_PASSWORD).await;
    assert_eq!(reply.code(), "reset_link_invalid", "{}", reply.text);

    // None of this changed the password.
    assert_eq!(
        sign_in_status(app, "nora@acme.test", aula::demo::DEMO_PASSWORD).await,
        200
    );
}

async fn reset_mail_speaks_the_account_language(app: &TestApp) {
    // Olga's account is German; Omar's English.
    let reply = ask_reset(app, "acme", "olga.ops@acme.test").await;
    assert_eq!(reply.status, 202);
    let mail = app.mail.wait_for(1, WAIT).await;
    assert_eq!(mail[0].subject(), "Neues Passwort für Acme Academy");
    let text = mail[0].text();
    assert!(text.contains("Hallo Olga Ops"), "{text}");
    assert!(text.contains("eine Stunde"), "{text}");

    let omar = "omar.ops@acme.test";
    reset_token(app, omar).await;
    let english = app.mail.messages_to(omar);
    assert_eq!(english[0].subject(), "Reset your password for Acme Academy");
    assert!(english[0].text().contains("Hello Omar Ops"), "{}", english[0].text());

    // Omar picks German: his next mail is German. Without a language of his own, the academy's (English).
    let client = app.login("acme", omar).await;
    let (status, body) = client.patch("/api/v1/me", json!({"locale": "de"})).await;
    assert_eq!(status, 200, "{body}");
    reset_token(app, omar).await;
    let (status, body) = client.patch("/api/v1/me", json!({"locale": null})).await;
    assert_eq!(status, 200, "{body}");
    reset_token(app, omar).await;
    let subjects: Vec<String> = app.mail.messages_to(omar).iter().map(Received::subject).collect();
    assert_eq!(
        subjects,
        [
            "Reset your password for Acme Academy",
            "Neues Passwort für Acme Academy",
            "Reset your password for Acme Academy",
        ]
    );
}

async fn reset_mails_are_throttled_per_address(app: &TestApp) {
    let omar = "omar.ops@acme.test";
    for i in 0..7 {
        let reply = ask_reset(app, "acme", omar).await;
        assert_eq!(reply.status, 202, "request {i}: {}", reply.text);
    }
    // Five went out; then one to someone else, who is not throttled by Omar's requests.
    app.mail.wait_for(5, WAIT).await;
    let reply = ask_reset(app, "acme", "olga.ops@acme.test").await;
    assert_eq!(reply.status, 202);
    let mail = app.mail.wait_for(6, WAIT).await;
    assert_eq!(app.mail.messages_to(omar).len(), 5, "{mail:#?}");
    assert_eq!(app.mail.messages_to("olga.ops@acme.test").len(), 1, "{mail:#?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM password_resets WHERE email = $1", &[omar])
            .await,
        5
    );

    // Each of the five links works, until one of them is used: a new password ends the others.
    let tokens: Vec<String> = app.mail.messages_to(omar).iter().map(|m| link_in(m).1).collect();
    let visitor = app.visitor("acme");
    let reply = use_link(&visitor, &tokens[4], NEW_PASSWORD).await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    let reply = use_link(&visitor, &tokens[0], "another-new-password").await;
    assert_eq!(reply.code(), "reset_link_invalid", "{}", reply.text);
    assert_eq!(sign_in_status(app, omar, NEW_PASSWORD).await, 200);
}

async fn people_change_their_own_name_and_language(app: &TestApp) {
    let nora = app.login("acme", "nora.north@acme.test").await;
    let (_, me) = nora.get("/api/v1/me").await;
    let id = me["id"].as_str().expect("id").to_owned();

    // The name: answered like GET /api/v1/me, with the language.
    let (status, body) = nora.patch("/api/v1/me", json!({"name": "  Nora N. North "})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Nora N. North");
    assert_eq!(body["email"], "nora.north@acme.test");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["permissions"], me["permissions"]);
    assert_eq!(body["locale"], "en", "unchanged");
    let (_, again) = nora.get("/api/v1/me").await;
    assert_eq!(again["name"], "Nora N. North");

    // The language: one the academy offers, or none.
    let (status, body) = nora.patch("/api/v1/me", json!({"locale": "de"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["locale"], "de");
    assert_eq!(body["name"], "Nora N. North", "unchanged");
    let (_, user) = nora.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(user["locale"], "de");

    // Refused changes name their field and change nothing.
    let admin = app.login("acme", "admin@acme.test").await;
    let before = app.snapshot().await;
    let audit_before = app.audit_count().await;
    for (body, field) in [
        (json!({"locale": "fr"}), "locale"),
        (json!({"name": "Nora", "locale": "fr"}), "locale"),
        (json!({"name": "   "}), "name"),
        (json!({"email": "nora@elsewhere.test"}), "email"),
        (json!({"locale": 5}), "locale"),
    ] {
        let reply = nora.send("PATCH", "/api/v1/me", Body::Json(body.clone())).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.field(), field, "{body}: {}", reply.text);
    }
    // Not even an admin sets their own password through the users API: only where the current one is asked.
    let (_, me) = admin.get("/api/v1/me").await;
    let own = me["id"].as_str().unwrap().to_owned();
    let reply = admin
        .send(
            "PATCH",
            &format!("/api/v1/users/{own}"),
            Body::Json(json!({"password": "taken-over-123"})),
        )
        .await;
    assert_eq!(reply.code(), "own_password", "{}", reply.text);
    assert_eq!(reply.field(), "password", "{}", reply.text);
    assert_eq!(admin.get("/api/v1/me").await.0, 200, "the session still works");
    before.assert_unchanged(&app.snapshot().await, "refused changes of one's own account");
    assert_eq!(app.audit_count().await, audit_before);

    let (status, body) = nora.patch("/api/v1/me", json!({"locale": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["locale"], Value::Null);
    assert_eq!(audit_entries(app, "user.update_own", &id).await, 3);

    // Signed out, there is no own account to change.
    let reply = app
        .visitor("acme")
        .send("PATCH", "/api/v1/me", Body::Json(json!({"name": "X"})))
        .await;
    assert_eq!(reply.status, 401);
}

async fn notification_preferences_default_and_change_in_part(app: &TestApp) {
    const KINDS: [&str; 6] = [
        "enrolled",
        "due_soon",
        "overdue",
        "completed",
        "certificate_issued",
        "approval",
    ];
    let nora = app.login("acme", "nora.north@acme.test").await;
    let path = "/api/v1/me/notification-preferences";

    // Every kind, immediately, until told otherwise.
    let (status, prefs) = nora.get(path).await;
    assert_eq!(status, 200, "{prefs}");
    assert_eq!(prefs.as_object().map(|o| o.len()), Some(KINDS.len()), "{prefs}");
    for kind in KINDS {
        assert_eq!(prefs[kind], "immediately", "{kind}");
    }

    // A part changes; the rest keeps its mode.
    let (status, prefs) = nora.put(path, json!({"due_soon": "digest", "approval": "never"})).await;
    assert_eq!(status, 200, "{prefs}");
    assert_eq!(prefs["due_soon"], "digest");
    assert_eq!(prefs["approval"], "never");
    assert_eq!(prefs["enrolled"], "immediately");
    let (status, prefs) = nora.put(path, json!({"due_soon": "immediately"})).await;
    assert_eq!(status, 200, "{prefs}");
    let (_, stored) = nora.get(path).await;
    assert_eq!(stored, prefs);
    assert_eq!(stored["due_soon"], "immediately");
    assert_eq!(stored["approval"], "never");

    // An unknown kind or mode is refused, naming it, and nothing changes.
    for (body, field) in [
        (json!({"foo": "never"}), "foo"),
        (json!({"enrolled": "sometimes"}), "enrolled"),
        (json!({"enrolled": "never", "foo": "digest"}), "foo"),
        (json!({"overdue": null}), "overdue"),
    ] {
        let reply = nora.send("PUT", path, Body::Json(body.clone())).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.field(), field, "{body}: {}", reply.text);
    }
    let (_, after) = nora.get(path).await;
    assert_eq!(after, stored, "refused changes changed nothing");

    // Preferences are each person's own.
    let omar = app.login("acme", "omar.ops@acme.test").await;
    let (_, theirs) = omar.get(path).await;
    assert_eq!(theirs["approval"], "immediately");

    // Deleting the account deletes its preferences and reset links.
    reset_token(app, "nora.north@acme.test").await;
    let admin = app.login("acme", "admin@acme.test").await;
    let id = Directory::load(&admin).await.user("nora.north@acme.test");
    for table in ["notification_preferences", "password_resets"] {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE user_id = $1");
        assert!(app.count(&sql, &[&id]).await > 0, "{table}");
    }
    let (status, body) = admin.delete(&format!("/api/v1/users/{id}")).await;
    assert_eq!(status, 204, "{body}");
    for table in ["notification_preferences", "password_resets"] {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE user_id = $1");
        assert_eq!(app.count(&sql, &[&id]).await, 0, "{table}");
    }
}
