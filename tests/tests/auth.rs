//! Signing in and out, passwords, API tokens, and suspended academies.

mod common;

use aula::demo::DEMO_PASSWORD;
use common::{Body, Directory, TestApp, scenarios};
use serde_json::json;

scenarios!(
    sign_in_is_throttled_after_five_failures,
    sign_out_ends_only_that_session,
    password_change_ends_other_sessions,
    revoked_token_stops_working,
    token_expiry_is_validated_and_enforced,
    suspended_academy_refuses_everyone_until_resumed,
);

async fn sign_in_is_throttled_after_five_failures(app: &TestApp) {
    let visitor = app.visitor("acme");
    for attempt in 1..=5 {
        let reply = visitor.sign_in("nora.north@acme.test", "not-her-password").await;
        assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.text);
        assert_eq!(reply.code(), "invalid_credentials");
        assert!(reply.session_cookie().is_none());
    }

    // Even the right password is refused now, with a time to come back.
    let reply = visitor.sign_in("nora.north@acme.test", DEMO_PASSWORD).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert_eq!(reply.code(), "too_many_attempts");
    assert!(reply.session_cookie().is_none(), "no session while throttled");
    let retry_after: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry_after > 0);
    // The e-mail is matched case-insensitively, so another spelling does not get around it.
    let reply = visitor.sign_in("Nora.North@ACME.test", DEMO_PASSWORD).await;
    assert_eq!(reply.status, 429);

    // Others sign in as usual, and the same address at another academy is another account.
    app.login("acme", "noah.north@acme.test").await;
    let reply = app
        .visitor("globex")
        .sign_in("nora.north@acme.test", DEMO_PASSWORD)
        .await;
    assert_eq!(reply.status, 401, "no such account at globex: {}", reply.text);

    // An unknown academy, and the platform's own address, have no sign-in.
    let reply = app
        .visitor("nosuch")
        .sign_in("nora.north@acme.test", DEMO_PASSWORD)
        .await;
    assert_eq!(reply.status, 404);
    let reply = app
        .client_on(&app.platform_host())
        .sign_in("nora.north@acme.test", DEMO_PASSWORD)
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.code(), "tenant_host_required");
}

async fn sign_out_ends_only_that_session(app: &TestApp) {
    let laptop = app.login("acme", "nora.north@acme.test").await;
    let phone = app.login("acme", "nora.north@acme.test").await;
    let (status, me) = laptop.get("/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "nora.north@acme.test");

    let reply = laptop.send("POST", "/api/v1/auth/logout", Body::None).await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    let cleared = reply.header("set-cookie").expect("the cookie is cleared");
    assert!(
        cleared.starts_with("aula_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    let (status, body) = laptop.get("/api/v1/me").await;
    assert_eq!(status, 401, "{body}");
    let again = laptop.send("POST", "/api/v1/auth/logout", Body::None).await;
    assert_eq!(again.status, 401, "signing out twice is not possible");
    let (status, _) = phone.get("/api/v1/me").await;
    assert_eq!(status, 200, "the other session goes on");
}

async fn password_change_ends_other_sessions(app: &TestApp) {
    let laptop = app.login("acme", "nora.north@acme.test").await;
    let phone = app.login("acme", "nora.north@acme.test").await;
    let (_, token) = laptop.create_token("script").await;
    let new_password = "a much longer passphrase";

    let (status, body) = laptop
        .post(
            "/api/v1/me/password",
            json!({"current_password": "guess", "new_password": new_password}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["field"].as_str()),
        (400, Some("current_password")),
        "{body}"
    );
    let (status, body) = laptop
        .post(
            "/api/v1/me/password",
            json!({"current_password": DEMO_PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["field"].as_str()),
        (400, Some("new_password")),
        "{body}"
    );
    let (status, _) = phone.get("/api/v1/me").await;
    assert_eq!(status, 200, "refused changes end nothing");

    let (status, body) = laptop
        .post(
            "/api/v1/me/password",
            json!({"current_password": DEMO_PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    assert_eq!(
        laptop.get("/api/v1/me").await.0,
        200,
        "the session that changed it stays"
    );
    assert_eq!(phone.get("/api/v1/me").await.0, 401, "every other session ends");
    assert_eq!(
        app.with_token("acme", &token).get("/api/v1/me").await.0,
        401,
        "every API token is revoked: whoever knew the old password may have made one"
    );
    let reply = app.visitor("acme").sign_in("nora.north@acme.test", DEMO_PASSWORD).await;
    assert_eq!(reply.status, 401, "the old password no longer works");
    app.login_with("acme", "nora.north@acme.test", new_password).await;

    let admin = app.login("acme", "admin@acme.test").await;
    let nora = Directory::load(&admin).await.user("nora.north@acme.test");
    let (_, page) = admin
        .get(&format!("/api/v1/audit?action=user.password_change&target_id={nora}"))
        .await;
    let entries = page["items"].as_array().expect("items");
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["actor_id"], nora.as_str());
    assert!(
        !entries[0].to_string().contains(new_password),
        "the audit log never holds a password"
    );
}

async fn revoked_token_stops_working(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (id, secret) = admin.create_token("nightly sync").await;
    let script = app.with_token("acme", &secret);
    let (status, me) = script.get("/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "admin@acme.test");
    let (_, listed) = admin.get("/api/v1/tokens").await;
    let entry = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert!(entry.get("token").is_none(), "the secret is shown only once");
    assert!(entry["prefix"].as_str().is_some_and(|p| secret.starts_with(p)));

    // Someone else cannot revoke it (it is not theirs to see) ...
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let (status, _) = manager.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(script.get("/api/v1/me").await.0, 200);

    // ... its owner can, and then it opens nothing.
    let (status, _) = admin.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(status, 204);
    let (status, body) = script.get("/api/v1/me").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(script.get("/api/v1/users").await.0, 401);
    let (_, listed) = admin.get("/api/v1/tokens").await;
    let entry = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("still listed")
        .clone();
    assert!(entry["revoked_at"].is_string(), "{entry}");
}

async fn token_expiry_is_validated_and_enforced(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    for days in [json!(0), json!(366), json!(-1)] {
        let (status, body) = admin
            .post("/api/v1/tokens", json!({"name": "bad", "expires_in_days": days}))
            .await;
        assert_eq!(status, 400, "{days}: {body}");
        assert_eq!(body["error"]["field"], "expires_in_days");
    }
    let (status, body) = admin.post("/api/v1/tokens", json!({"name": "   "})).await;
    assert_eq!((status.as_u16(), body["error"]["field"].as_str()), (400, Some("name")));

    let (status, created) = admin
        .post("/api/v1/tokens", json!({"name": "one day", "expires_in_days": 1}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    let lifetime = app
        .count("SELECT expires_at - created_at FROM api_tokens WHERE id = $1", &[id])
        .await;
    assert_eq!(lifetime, 86_400_000, "one day, in milliseconds");
    let (status, default) = admin.post("/api/v1/tokens", json!({"name": "default"})).await;
    assert_eq!(status, 201);
    let lifetime = app
        .count(
            "SELECT expires_at - created_at FROM api_tokens WHERE id = $1",
            &[default["id"].as_str().expect("id")],
        )
        .await;
    assert_eq!(lifetime, 90 * 86_400_000, "90 days unless asked otherwise");

    // Once its time has passed, the token opens nothing.
    let script = app.with_token("acme", created["token"].as_str().expect("secret"));
    assert_eq!(script.get("/api/v1/me").await.0, 200);
    app.exec("UPDATE api_tokens SET expires_at = created_at - 1 WHERE id = $1", &[id])
        .await;
    app.let_auth_cache_expire();
    let (status, body) = script.get("/api/v1/me").await;
    assert_eq!(status, 401, "{body}");
}

async fn suspended_academy_refuses_everyone_until_resumed(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (_, secret) = admin.create_token("sync").await;
    let globex = app.login("globex", "admin@globex.test").await;
    let platform = app.client_on(&app.platform_host());
    let reply = platform.sign_in_operator().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let operator = platform.with_token(reply.body["token"].as_str().expect("operator token"));

    // The operator suspends acme.
    let (status, tenant) = operator
        .patch("/api/v1/platform/tenants/acme", json!({"status": "suspended"}))
        .await;
    assert_eq!(status, 200, "{tenant}");
    assert_eq!(tenant["status"], "suspended");

    // Sessions, tokens (on any host) and new sign-ins are refused with the reason.
    for (what, client) in [
        ("session", admin.clone()),
        ("token", app.with_token("acme", &secret)),
        ("token on the platform host", platform.with_token(&secret)),
    ] {
        let (status, body) = client.get("/api/v1/users").await;
        assert_eq!(status, 403, "{what}: {body}");
        assert_eq!(body["error"]["code"], "tenant_suspended", "{what}");
    }
    let reply = app.visitor("acme").sign_in("nora.north@acme.test", DEMO_PASSWORD).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.code(), "tenant_suspended");

    // Other academies carry on.
    assert_eq!(globex.get("/api/v1/me").await.0, 200);

    // Resumed, the existing session works again.
    let (status, _) = operator
        .patch("/api/v1/platform/tenants/acme", json!({"status": "active"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(admin.get("/api/v1/me").await.0, 200);
}
