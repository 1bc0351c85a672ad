//! Bad input gets a precise 4xx that names the field (or the rule), and changes nothing: every case below is
//! followed by a comparison of every stored row with the state before it, and the main ones by a read-back
//! through the API.

mod common;

use common::{Body, Client, Directory, Reply, TestApp, scenarios};
use serde_json::{Value, json};

scenarios!(
    malformed_bodies_are_refused_precisely,
    rule_breaking_changes_are_refused_precisely,
    bad_list_parameters_are_refused,
);

/// One bad request and the refusal it must get.
struct Case {
    method: &'static str,
    path: String,
    body: Body,
    expect: (u16, &'static str, &'static str),
}

fn post(path: &str, body: Value) -> Case {
    Case {
        method: "POST",
        path: path.to_owned(),
        body: Body::Json(body),
        expect: (0, "", ""),
    }
}

fn patch(path: &str, body: Value) -> Case {
    Case {
        method: "PATCH",
        ..post(path, body)
    }
}

fn get(path: &str) -> Case {
    Case {
        method: "GET",
        path: path.to_owned(),
        body: Body::None,
        expect: (0, "", ""),
    }
}

fn delete(path: &str) -> Case {
    Case {
        method: "DELETE",
        ..get(path)
    }
}

/// A POST with a body sent exactly as given.
fn post_raw(path: &str, content_type: &str, bytes: &[u8]) -> Case {
    let body = Body::Raw {
        content_type: content_type.to_owned(),
        bytes: bytes.to_vec(),
    };
    Case {
        method: "POST",
        path: path.to_owned(),
        body,
        expect: (0, "", ""),
    }
}

impl Case {
    /// The status, error code and error field (`""`: none) it must be answered with.
    fn is(self, status: u16, code: &'static str, field: &'static str) -> Case {
        Case {
            expect: (status, code, field),
            ..self
        }
    }

    /// Send it as `client`; check the answer, and that no stored row and no audit entry changed.
    async fn refused(self, app: &TestApp, client: &Client) -> Reply {
        let before = app.snapshot().await;
        let audit_before = app.audit_count().await;
        let context = format!("{} {} {:?}", self.method, self.path, self.body);
        let reply = client.send(self.method, &self.path, self.body).await;
        let (status, code, field) = self.expect;
        assert_eq!(reply.status.as_u16(), status, "{context}: {}", reply.text);
        assert_eq!(reply.code(), code, "{context}: {}", reply.text);
        assert_eq!(reply.field(), field, "{context}: {}", reply.text);
        assert!(
            !reply.body["error"]["message"].as_str().unwrap_or_default().is_empty(),
            "{context}: no message"
        );
        before.assert_unchanged(&app.snapshot().await, &context);
        assert_eq!(
            app.audit_count().await,
            audit_before,
            "{context}: an audit entry was written"
        );
        reply
    }
}

/// How many users answer to this e-mail (read back through the API).
async fn users_with_email(admin: &Client, email: &str) -> usize {
    let (status, page) = admin.get(&format!("/api/v1/users?q={email}&limit=500")).await;
    assert_eq!(status, 200);
    let items = page["items"].as_array().expect("items");
    items
        .iter()
        .filter(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .count()
}

async fn malformed_bodies_are_refused_precisely(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let nora = format!("/api/v1/users/{}", acme.user("nora.north@acme.test"));
    let sales = format!("/api/v1/orgs/{}", acme.org("Sales"));
    let users = "/api/v1/users";
    let new = "new.person@acme.test";

    let cases = [
        post_raw(
            users,
            "application/json",
            br#"{"email": "new.person@acme.test", "name": "#,
        )
        .is(400, "malformed_json", ""),
        post_raw(users, "text/plain", br#"{"email":"a@b.c","name":"x"}"#).is(415, "unsupported_media_type", ""),
        post(users, json!({"email": new, "name": "New", "nickname": "Newbie"})).is(400, "unknown_field", "nickname"),
        post(users, json!({"name": "New"})).is(400, "missing_field", "email"),
        post(users, json!({"email": 42, "name": "New"})).is(400, "invalid_field", "email"),
        post(users, json!({"email": new, "name": "New", "org_ids": "not-a-list"})).is(400, "invalid_field", "org_ids"),
        post(users, json!({"email": new, "name": "x".repeat(10_000)})).is(400, "invalid_field", "name"),
        post(users, json!({"email": new, "name": "Nul\u{0}byte"})).is(400, "invalid_field", "name"),
        post(users, json!({"email": "not-an-address", "name": "New"})).is(400, "invalid_field", "email"),
        post(users, json!({"email": new, "name": "New", "locale": "english"})).is(400, "invalid_field", "locale"),
        post(users, json!({"email": new, "name": "New", "password": "short"})).is(400, "invalid_field", "password"),
        post(
            users,
            json!({"email": new, "name": "New", "profile": {"start_date": "yesterday"}}),
        )
        .is(400, "invalid_field", "profile.start_date"),
        post(
            users,
            json!({"email": new, "name": "New", "profile": {"shoe_size": "44"}}),
        )
        .is(400, "unknown_field", "profile.shoe_size"),
        patch(&nora, json!({"profile": {"department": "Marketing"}})).is(400, "invalid_field", "profile.department"),
        patch(&nora, json!({"status": "retired"})).is(400, "invalid_field", "status"),
        patch(&nora, json!({"name": "N".repeat(10_000)})).is(400, "invalid_field", "name"),
        patch(&sales, json!({"member_limit": "ten"})).is(400, "invalid_field", "member_limit"),
        patch(&sales, json!({"member_limit": -1})).is(400, "invalid_field", "member_limit"),
        patch(&sales, json!({"name": "S".repeat(10_000)})).is(400, "invalid_field", "name"),
        post("/api/v1/tags", json!({"name": "T".repeat(101)})).is(400, "invalid_field", "name"),
        post("/api/v1/tags", json!({"name": "has spaces"})).is(400, "invalid_field", "name"),
        post(
            "/api/v1/segments",
            json!({"name": "S", "definition": {"tags_sometimes": []}}),
        )
        .is(400, "unknown_field", "definition.tags_sometimes"),
        post(
            "/api/v1/segments",
            json!({"name": "S", "definition": {"statuses": ["asleep"]}}),
        )
        .is(400, "invalid_field", "definition.statuses[0]"),
        patch("/api/v1/tenant", json!({"settings": {"default_locale": "english"}})).is(
            400,
            "invalid_field",
            "settings.default_locale",
        ),
        post("/api/v1/tokens", json!({"name": "ci", "expires_in_days": "ten"})).is(
            400,
            "invalid_field",
            "expires_in_days",
        ),
    ];
    for case in cases {
        case.refused(app, &admin).await;
    }
    assert_eq!(
        users_with_email(&admin, new).await,
        0,
        "no half-made user is left behind"
    );
    let (_, nora_now) = admin.get(&nora).await;
    assert_eq!(nora_now["name"], "Nora North");
    assert_eq!(nora_now["profile"]["department"], "Sales");

    // A body beyond the configured limit (2 MiB) is refused before a handler reads it.
    let huge = format!(r#"{{"email":"{new}","name":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    post_raw(users, "application/json", huge.as_bytes())
        .is(413, "body_too_large", "")
        .refused(app, &admin)
        .await;
}

async fn rule_breaking_changes_are_refused_precisely(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let globex_admin = app.login("globex", "admin@globex.test").await;
    let globex = Directory::load(&globex_admin).await;
    let (sales, north, emea) = (acme.org("Sales"), acme.org("Team North"), acme.org("Sales EMEA"));
    let (initech, gold) = (globex.org("Initech"), globex.tag("TIER_GOLD"));
    let noah = format!("/api/v1/users/{}", acme.user("noah.north@acme.test"));
    let me = format!("/api/v1/users/{}", acme.user("admin@acme.test"));
    let users = "/api/v1/users";

    let cases = [
        // The same e-mail twice, in any letter case, by creation or by change.
        post(users, json!({"email": "NORA.North@acme.test", "name": "Nora Again"})).is(409, "duplicate", "email"),
        patch(&noah, json!({"email": "nora.north@acme.test"})).is(409, "duplicate", "email"),
        // An organization under its own child, or under itself (a rename in the same request is dropped too).
        patch(
            &format!("/api/v1/orgs/{sales}"),
            json!({"parent_id": north, "name": "Renamed on the way"}),
        )
        .is(422, "org_cycle", "parent_id"),
        patch(&format!("/api/v1/orgs/{sales}"), json!({"parent_id": sales})).is(422, "org_cycle", "parent_id"),
        // Another academy's organization or tag is none here; the index names the offending entry.
        post(
            users,
            json!({"email": "x1@acme.test", "name": "X", "org_ids": [initech]}),
        )
        .is(400, "invalid_field", "org_ids[0]"),
        post(
            users,
            json!({"email": "x1@acme.test", "name": "X", "org_ids": [emea, initech]}),
        )
        .is(400, "invalid_field", "org_ids[1]"),
        post(users, json!({"email": "x1@acme.test", "name": "X", "tag_ids": [gold]})).is(
            400,
            "invalid_field",
            "tag_ids[0]",
        ),
        // A non-empty organization is not deleted by accident; an admin cannot lock themselves out.
        delete(&format!("/api/v1/orgs/{emea}")).is(409, "org_not_empty", ""),
        patch(&me, json!({"status": "suspended"})).is(422, "self_lockout", "status"),
        delete(&me).is(422, "self_delete", ""),
        // Built-in roles are fixed; permissions must exist.
        patch(
            &format!("/api/v1/roles/{}", acme.role("org_manager")),
            json!({"name": "Boss"}),
        )
        .is(422, "builtin_role", ""),
        post(
            "/api/v1/roles",
            json!({"key": "lead", "name": "Lead", "permissions": ["users.read", "users.fly"]}),
        )
        .is(400, "invalid_field", "permissions[1]"),
    ];
    for case in cases {
        case.refused(app, &admin).await;
    }

    // Read back through the API.
    assert_eq!(users_with_email(&admin, "nora.north@acme.test").await, 1);
    assert_eq!(users_with_email(&admin, "x1@acme.test").await, 0);
    assert_eq!(admin.get(&noah).await.1["email"], "noah.north@acme.test");
    let (_, sales_now) = admin.get(&format!("/api/v1/orgs/{sales}")).await;
    assert_eq!(sales_now["parent_id"], acme.org("Acme").as_str(), "Sales did not move");
    assert_eq!(sales_now["name"], "Sales", "nor was it renamed");
    let (_, initech_now) = globex_admin.get(&format!("/api/v1/orgs/{initech}")).await;
    assert_eq!(
        initech_now["member_count"],
        globex.org_named("Initech")["member_count"],
        "globex's org gained nobody"
    );
}

async fn bad_list_parameters_are_refused(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let sales = acme.org("Sales");
    let lists = [
        "/api/v1/users".to_owned(),
        "/api/v1/orgs".to_owned(),
        "/api/v1/audit".to_owned(),
        format!("/api/v1/orgs/{sales}/members"),
        format!("/api/v1/segments/{}/members", acme.segment("UK staff")),
    ];
    for list in &lists {
        for limit in ["0", "501", "-5"] {
            get(&format!("{list}?limit={limit}"))
                .is(400, "invalid_field", "limit")
                .refused(app, &admin)
                .await;
        }
        assert_eq!(
            admin.get(&format!("{list}?limit=abc")).await.1["error"]["field"],
            "limit",
            "{list}"
        );
        assert_eq!(
            admin.get(&format!("{list}?limit=500")).await.0,
            200,
            "{list}: 500 is the largest page"
        );
        assert_eq!(
            admin.get(&format!("{list}?limit=1")).await.0,
            200,
            "{list}: 1 is the smallest page"
        );
    }
    let cases = [
        get("/api/v1/users?colour=red").is(400, "unknown_parameter", "colour"),
        get("/api/v1/users?status=asleep").is(400, "invalid_field", "status"),
        get("/api/v1/audit?since=yesterday").is(400, "invalid_field", "since"),
        get(&format!("/api/v1/orgs/{sales}/members?cursor=garbage")).is(400, "invalid_field", "cursor"),
        delete(&format!("/api/v1/orgs/{sales}?mode=shred")).is(400, "invalid_field", "mode"),
    ];
    for case in cases {
        case.refused(app, &admin).await;
    }
}
