//! Provisioning over SCIM 2.0: an academy admin makes a SCIM token, and an identity provider creates,
//! changes, deactivates and deprovisions people and keeps organizations and their members, through the
//! academy's `/scim/v2`. A validator someone else wrote (scim2-cli's compliance checks) passes against it;
//! every refusal names what was wrong and changes nothing.

mod common;

use common::{Body, TestApp, scenarios};
use reqwest::StatusCode;
use serde_json::{Value, json};

scenarios!(
    an_admin_makes_and_revokes_scim_tokens_on_the_admin_page,
    an_identity_provider_keeps_people_and_groups,
    scim_refusals_name_the_attribute_and_change_nothing,
    a_scim_token_opens_one_academys_scim_and_nothing_else,
    an_external_scim_validator_passes,
);

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A SCIM client of one academy, speaking `application/scim+json`.
struct Scim {
    http: reqwest::Client,
    base: String,
    host: String,
    token: String,
}

/// An answer: status, `ETag`, body.
struct Answer {
    status: StatusCode,
    etag: Option<String>,
    body: Value,
}

impl Scim {
    fn new(app: &TestApp, slug: &str, token: &str) -> Scim {
        Scim {
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{}/scim/v2", app.port()),
            host: app.tenant_host(slug),
            token: token.to_owned(),
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status();
        let etag = res
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status != StatusCode::NOT_MODIFIED && status != StatusCode::NO_CONTENT {
            let kind = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert_eq!(kind, "application/scim+json", "{method} {path} answered {kind}");
        }
        let text = res.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer { status, etag, body }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, &[]).await
    }
    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(body), &[]).await
    }
    async fn patch(&self, path: &str, ops: Value) -> Answer {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        self.send("PATCH", path, Some(body), &[]).await
    }
    async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None, &[]).await
    }
}

/// A SCIM token for `slug`, made by its admin through the API.
async fn token(app: &TestApp, slug: &str) -> (String, String) {
    let admin = app.login(slug, &format!("admin@{slug}.test")).await;
    let (status, body) = admin.post("/api/v1/scim-tokens", json!({"name": "Entra ID"})).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().expect("the token").to_owned();
    assert!(token.starts_with("aulascim_"), "{token}");
    assert!(body["endpoint"].as_str().unwrap().ends_with("/scim/v2"), "{body}");
    (body["id"].as_str().unwrap().to_owned(), token)
}

fn alice() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": "alice.scim@acme.test",
        "externalId": "E-1001",
        "name": {"givenName": "Alice", "familyName": "Scim"},
        "emails": [{"value": "Alice.Scim@acme.test", "type": "work", "primary": true}],
        "preferredLanguage": "de-CH",
        "title": "Account manager",
        "active": true,
        ENTERPRISE: {"department": "Sales", "employeeNumber": "1001"},
    })
}

async fn an_identity_provider_keeps_people_and_groups(app: &TestApp) {
    let (_, secret) = token(app, "acme").await;
    let scim = Scim::new(app, "acme", &secret);
    let admin = app.login("acme", "admin@acme.test").await;

    // Discovery describes what Aula keeps.
    let config = scim.get("/ServiceProviderConfig").await;
    assert_eq!(config.status, 200);
    assert_eq!(config.body["patch"]["supported"], true);
    assert_eq!(config.body["etag"]["supported"], true);
    let types = scim.get("/ResourceTypes").await;
    assert_eq!(types.body["totalResults"], 2, "{}", types.body);
    let user_schema = scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").await;
    assert_eq!(user_schema.body["name"], "User");

    // Create: the account gets Aula's columns (e-mail, name, language, external id, the department field).
    let created = scim.post("/Users", alice()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["userName"], "alice.scim@acme.test");
    assert_eq!(created.body["title"], "Account manager", "kept as written");
    assert_eq!(created.body[ENTERPRISE]["employeeNumber"], "1001");
    assert_eq!(created.etag.as_deref(), created.body["meta"]["version"].as_str());
    let (status, user) = admin.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(user["email"], "alice.scim@acme.test");
    assert_eq!(user["name"], "Alice Scim");
    assert_eq!(user["locale"], "de-CH");
    assert_eq!(user["external_id"], "E-1001");
    assert_eq!(user["status"], "active");
    assert_eq!(user["profile"]["department"], "Sales");
    let audited = app
        .count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.create' AND actor_type = 'scim' AND target_id = $1",
            &[&id],
        )
        .await;
    assert_eq!(audited, 1);

    // Found the ways identity providers look people up.
    for filter in [
        "userName eq \"ALICE.SCIM@acme.test\"",
        "externalId eq \"E-1001\"",
        "emails.value eq \"alice.scim@acme.test\"",
        "userName eq \"alice.scim@acme.test\" and active eq true",
    ] {
        let found = scim.get(&format!("/Users?filter={}", urlencode(filter))).await;
        assert_eq!(found.status, 200, "{filter}: {}", found.body);
        assert_eq!(found.body["totalResults"], 1, "{filter}: {}", found.body);
        assert_eq!(found.body["Resources"][0]["id"], json!(id));
    }
    // People made in Aula are users too, under their e-mail address.
    let nora = scim
        .get(&format!(
            "/Users?filter={}",
            urlencode("userName eq \"nora.north@acme.test\"")
        ))
        .await;
    assert_eq!(nora.body["totalResults"], 1, "{}", nora.body);
    // Pages.
    let page = scim.get("/Users?startIndex=2&count=3").await;
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], 3);
    assert!(page.body["totalResults"].as_i64().unwrap() > 3);
    let slim = scim.get(&format!("/Users/{id}?attributes=userName")).await;
    assert_eq!(slim.body["userName"], "alice.scim@acme.test");
    assert!(slim.body.get("emails").is_none(), "{}", slim.body);

    // Versions: a stale If-Match is refused; the current one passes; If-None-Match answers 304.
    let etag = created.etag.clone().unwrap();
    let same = scim
        .send("GET", &format!("/Users/{id}"), None, &[("if-none-match", &etag)])
        .await;
    assert_eq!(same.status, 304);
    let renamed = scim
        .send(
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "Replace", "path": "displayName", "value": "Alice A. Scim"}]})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_ne!(renamed.etag.as_deref(), Some(etag.as_str()));
    let stale = scim
        .send(
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "Replace", "path": "title", "value": "x"}]})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(
        admin.get(&format!("/api/v1/users/{id}")).await.1["name"],
        "Alice A. Scim"
    );

    // PATCH as Entra ID sends it: a value filter, an extension path, the flag as text.
    let patched = scim
        .patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alice.s@acme.test"},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Engineering"},
                {"op": "Replace", "path": "active", "value": "False"},
            ]),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["active"], false);
    let (_, user) = admin.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(user["email"], "alice.s@acme.test");
    assert_eq!(user["status"], "suspended", "deactivation suspends");
    assert_eq!(user["profile"]["department"], "Engineering");
    // The suspended person cannot sign in.
    let again = scim
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {"active": true}}]),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(admin.get(&format!("/api/v1/users/{id}")).await.1["status"], "active");

    // Groups are organizations; members are people.
    let (_, bob) = admin
        .post("/api/v1/users", json!({"email": "bob.scim@acme.test", "name": "Bob"}))
        .await;
    let bob = bob["id"].as_str().unwrap().to_owned();
    let group = scim
        .post(
            "/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "SCIM Field Sales",
                   "externalId": "G-7", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(group.status, 201, "{}", group.body);
    let gid = group.body["id"].as_str().unwrap().to_owned();
    let (status, members) = admin.get(&format!("/api/v1/orgs/{gid}/members")).await;
    assert_eq!(status, 200, "{members}");
    let ids: Vec<&str> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["user_id"].as_str())
        .collect();
    assert_eq!(ids, vec![id.as_str()], "{members}");
    let changed = scim
        .patch(
            &format!("/Groups/{gid}"),
            json!([
                {"op": "add", "path": "members", "value": [{"value": bob}]},
                {"op": "remove", "path": format!("members[value eq \"{id}\"]")},
                {"op": "replace", "path": "displayName", "value": "SCIM Sales"},
            ]),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["displayName"], "SCIM Sales");
    assert_eq!(
        changed.body["members"],
        json!([{"value": bob, "$ref": format!("http://{}/scim/v2/Users/{bob}", app.tenant_host("acme")), "type": "User"}])
    );
    let alice_now = scim.get(&format!("/Users/{id}")).await;
    assert!(alice_now.body.get("groups").is_none(), "{}", alice_now.body);
    let found = scim
        .get(&format!(
            "/Groups?filter={}&excludedAttributes=members",
            urlencode("displayName eq \"scim sales\"")
        ))
        .await;
    assert_eq!(found.body["totalResults"], 1);
    assert!(found.body["Resources"][0].get("members").is_none());

    // An organization made in Aula is never deleted through SCIM; one the client made is, its people stay.
    let (_, orgs) = admin.get("/api/v1/orgs?q=Sales%20EMEA").await;
    let emea = orgs["items"][0]["id"]
        .as_str()
        .expect("the demo's Sales EMEA")
        .to_owned();
    let refused = scim.delete(&format!("/Groups/{emea}")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(scim.delete(&format!("/Groups/{gid}")).await.status, 204);
    assert_eq!(admin.get(&format!("/api/v1/orgs/{gid}")).await.0, 404);
    assert_eq!(admin.get(&format!("/api/v1/users/{bob}")).await.0, 200);

    // Deleting a user deprovisions: suspended, hidden from SCIM, never erased; provisioning again brings the
    // same account back.
    assert_eq!(scim.delete(&format!("/Users/{id}")).await.status, 204);
    assert_eq!(scim.get(&format!("/Users/{id}")).await.status, 404);
    let (status, user) = admin.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(user["status"], "suspended");
    let back = scim.post("/Users", alice()).await;
    assert_eq!(back.status, 201, "{}", back.body);
    assert_eq!(back.body["id"], json!(id), "the same account");
    assert_eq!(admin.get(&format!("/api/v1/users/{id}")).await.1["status"], "active");

    // An admin who erases the person in Aula erases what SCIM kept of them too.
    assert_eq!(admin.delete(&format!("/api/v1/users/{id}")).await.0, 204);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM scim_users WHERE user_id = $1", &[&id])
            .await,
        0
    );
    assert_eq!(scim.get(&format!("/Users/{id}")).await.status, 404);
}

async fn scim_refusals_name_the_attribute_and_change_nothing(app: &TestApp) {
    let (_, secret) = token(app, "acme").await;
    let scim = Scim::new(app, "acme", &secret);
    let taken = scim.post("/Users", alice()).await;
    assert_eq!(taken.status, 201);
    let id = taken.body["id"].as_str().unwrap().to_owned();
    let user = |change: Value| {
        let mut u = alice();
        u["userName"] = json!("carol.scim@acme.test");
        u["externalId"] = json!("E-2002");
        u["emails"] = json!([{"value": "carol.scim@acme.test", "primary": true}]);
        for (k, v) in change.as_object().unwrap() {
            u[k] = v.clone();
        }
        u
    };
    let before = app.snapshot().await;
    let audit = app.audit_count().await;
    for (method, path, body, status, kind, named) in [
        (
            "POST",
            "/Users".to_owned(),
            user(json!({"userName": "Carol", "emails": null})),
            400,
            "invalidValue",
            "emails",
        ),
        (
            "POST",
            "/Users".to_owned(),
            user(json!({"userName": "alice.scim@acme.test"})),
            409,
            "uniqueness",
            "userName",
        ),
        (
            "POST",
            "/Users".to_owned(),
            user(json!({"externalId": "E-1001"})),
            409,
            "uniqueness",
            "externalId",
        ),
        (
            "POST",
            "/Users".to_owned(),
            user(json!({"emails": [{"value": "not an address"}]})),
            400,
            "invalidValue",
            "emails[0].value",
        ),
        (
            "POST",
            "/Users".to_owned(),
            user(json!({"active": "maybe"})),
            400,
            "invalidValue",
            "active",
        ),
        (
            "POST",
            "/Users".to_owned(),
            user(json!({ENTERPRISE: {"department": "Marketing"}})),
            400,
            "invalidValue",
            "department",
        ),
        (
            "POST",
            "/Users".to_owned(),
            user(json!({ENTERPRISE: {"manager": {"value": "no-such-user"}}})),
            400,
            "invalidValue",
            "manager",
        ),
        (
            "POST",
            "/Users".to_owned(),
            user(json!({"title": "x".repeat(20_000)})),
            400,
            "invalidValue",
            "at most 16384",
        ),
        (
            "POST",
            "/Users".to_owned(),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "x@acme.test"}),
            400,
            "invalidValue",
            "schemas",
        ),
        (
            "PATCH",
            format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "groups", "value": []}]}),
            400,
            "mutability",
            "groups",
        ),
        (
            "PATCH",
            format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove"}]}),
            400,
            "noTarget",
            "path",
        ),
        (
            "PATCH",
            format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "userName", "value": "nora.north@acme.test"}]}),
            409,
            "uniqueness",
            "userName",
        ),
        (
            "POST",
            "/Groups".to_owned(),
            json!({"displayName": "Mixed", "members": [{"value": id}, {"value": "nobody"}]}),
            400,
            "invalidValue",
            "members",
        ),
        (
            "POST",
            "/Groups".to_owned(),
            json!({"displayName": "Nested", "members": [{"value": id, "type": "Group"}]}),
            400,
            "invalidValue",
            "members[0].type",
        ),
        (
            "POST",
            "/Groups".to_owned(),
            json!({"members": []}),
            400,
            "invalidValue",
            "displayName",
        ),
    ] {
        let answer = scim.send(method, &path, Some(body), &[]).await;
        assert_eq!(answer.status.as_u16(), status, "{method} {path}: {}", answer.body);
        assert_eq!(answer.body["scimType"], kind, "{method} {path}: {}", answer.body);
        assert_eq!(answer.body["status"], status.to_string(), "{}", answer.body);
        let detail = answer.body["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains(named),
            "{method} {path}: {detail:?} should name {named}"
        );
    }
    for (filter, named) in [
        ("userName eq \"a\" or userName eq \"b\"", "\"or\""),
        ("title eq \"x\"", "title"),
        ("userName co \"a\"", "eq only"),
    ] {
        let answer = scim.get(&format!("/Users?filter={}", urlencode(filter))).await;
        assert_eq!(answer.status, 400, "{filter}");
        assert_eq!(answer.body["scimType"], "invalidFilter");
        assert!(
            answer.body["detail"].as_str().unwrap().contains(named),
            "{}",
            answer.body
        );
    }
    let not_json = scim
        .http
        .post(format!("{}/Users", scim.base))
        .header("host", &scim.host)
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/scim+json")
        .body("{\"userName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(scim.get("/Users/no-such-id").await.status, 404);
    assert_eq!(scim.get("/Nothing").await.body["status"], "404");
    assert_eq!(scim.post("/Bulk", json!({})).await.status, 501);
    before.assert_unchanged(&app.snapshot().await, "refused SCIM requests");
    assert_eq!(app.audit_count().await, audit, "a refusal writes no audit entry");
}

async fn a_scim_token_opens_one_academys_scim_and_nothing_else(app: &TestApp) {
    let (token_id, secret) = token(app, "acme").await;
    let acme = Scim::new(app, "acme", &secret);
    assert_eq!(acme.get("/Users?count=1").await.status, 200);
    // Not the API, not another academy's SCIM, not without a token.
    let api = app.with_token("acme", &secret);
    assert_eq!(api.get("/api/v1/users").await.0, 401);
    let globex = Scim::new(app, "globex", &secret);
    let answer = globex.get("/Users").await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    let anonymous = Scim::new(app, "acme", "");
    assert_eq!(anonymous.get("/Users").await.status, 401);
    // An API token is not a SCIM token.
    let admin = app.login("acme", "admin@acme.test").await;
    let (_, api_token) = admin.create_token("api").await;
    assert_eq!(Scim::new(app, "acme", &api_token).get("/Users").await.status, 401);
    // Only an academy admin makes SCIM tokens; the list never shows a secret.
    let manager = app.login("acme", "emea.manager@acme.test").await;
    assert_eq!(
        manager.post("/api/v1/scim-tokens", json!({"name": "mine"})).await.0,
        403
    );
    let (_, listed) = admin.get("/api/v1/scim-tokens").await;
    assert!(!listed.to_string().contains(&secret));
    assert_eq!(listed[0]["id"], json!(token_id));
    // Revoked, it opens nothing.
    assert_eq!(admin.delete(&format!("/api/v1/scim-tokens/{token_id}")).await.0, 204);
    assert_eq!(acme.get("/Users").await.status, 401);
    // A token acts with its creator's authority as it stands: an admin who lost theirs takes the token's.
    let (_, second) = token(app, "acme").await;
    let admin_id = app
        .text("SELECT id FROM users WHERE email = 'admin@acme.test'", &[])
        .await;
    app.exec(
        "DELETE FROM grants WHERE user_id = $1 AND role_id IN (SELECT id FROM roles WHERE key <> 'learner')",
        &[&admin_id],
    )
    .await;
    let refused = Scim::new(app, "acme", &second).post("/Users", alice()).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body["detail"].as_str().unwrap().contains("users.write"),
        "{}",
        refused.body
    );
}

/// scim2-cli's compliance checks (scim2-tester, written by others) against globex's endpoint: discovery,
/// creation, reads, lists with attributes, replacement, deletion and PATCH add/replace/remove of every
/// attribute the schemas publish.
async fn an_external_scim_validator_passes(app: &TestApp) {
    let scim2 = match std::env::var_os("AULA_SCIM2").filter(|p| !p.is_empty()) {
        Some(path) => std::path::PathBuf::from(path),
        None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/scim/bin/scim2"),
    };
    assert!(
        scim2.is_file(),
        "the SCIM validator is not installed: run .ci/scim (or set AULA_SCIM2 to a `scim2`)"
    );
    let (_, secret) = token(app, "globex").await;
    let before = app.count("SELECT COUNT(*) FROM users", &[]).await;
    let output = tokio::process::Command::new(&scim2)
        .arg("--url")
        .arg(format!("http://127.0.0.1:{}/scim/v2", app.port()))
        // The headers go in the environment (`;` between them), where other users of the machine do not see the token.
        .env(
            "SCIM_CLI_HEADERS",
            format!("Host: {};Authorization: Bearer {secret}", app.tenant_host("globex")),
        )
        .arg("test")
        .output()
        .await
        .expect("run scim2");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SCIM validator found faults:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let passed = report.lines().filter(|l| l.starts_with("SUCCESS")).count();
    assert!(passed >= 40, "the validator ran only {passed} checks:\n{report}");
    // It created people and deleted them again: deprovisioned, not erased.
    let after = app.count("SELECT COUNT(*) FROM users", &[]).await;
    assert!(after > before, "the validator's users are kept, suspended");
    let active_hidden = app
        .count(
            "SELECT COUNT(*) FROM users u JOIN scim_users s ON s.user_id = u.id WHERE s.removed_at IS NOT NULL AND u.status = 'active'",
            &[],
        )
        .await;
    assert_eq!(active_hidden, 0, "every deprovisioned account is suspended");
}

/// On `/admin/sso`, acme's admin sees the SCIM endpoint, makes a token (shown on that answer only, and
/// working), sees it listed by its first characters, and revokes it.
async fn an_admin_makes_and_revokes_scim_tokens_on_the_admin_page(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let form = |fields: &[(&str, &str)]| Body::Raw {
        content_type: "application/x-www-form-urlencoded".into(),
        bytes: fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes(),
    };
    let page = admin.send("GET", "/admin/sso", Body::None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("http://acme.localhost/scim/v2"),
        "the endpoint is shown"
    );
    let marker = "name=\"_csrf\" value=\"";
    let at = page.text.find(marker).expect("a form") + marker.len();
    let csrf = page.text[at..].split('"').next().unwrap().to_owned();

    let made = admin
        .send(
            "POST",
            "/admin/sso/scim-tokens",
            form(&[("_csrf", &csrf), ("name", "Okta")]),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let at = made.text.find("aulascim_").expect("the new token is shown");
    let secret: String = made.text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert_eq!(Scim::new(app, "acme", &secret).get("/Users?count=1").await.status, 200);
    let again = admin.send("GET", "/admin/sso", Body::None).await;
    assert!(again.text.contains("Okta"));
    assert!(!again.text.contains(&secret), "the secret is shown once");

    let empty = admin
        .send(
            "POST",
            "/admin/sso/scim-tokens",
            form(&[("_csrf", &csrf), ("name", " ")]),
        )
        .await;
    assert_eq!(empty.status, 400, "{}", empty.text);
    assert!(empty.text.contains("aria-invalid=\"true\""), "the name field is marked");

    let id = app.text("SELECT id FROM scim_tokens WHERE name = 'Okta'", &[]).await;
    let revoked = admin
        .send(
            "POST",
            &format!("/admin/sso/scim-tokens/{id}/revoke"),
            form(&[("_csrf", &csrf)]),
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.text);
    assert_eq!(Scim::new(app, "acme", &secret).get("/Users").await.status, 401);
    let after = admin
        .send("GET", "/admin/sso?done=done.admin_scim_token_revoked", Body::None)
        .await;
    assert!(after.text.contains("The SCIM token was revoked."), "{}", after.text);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
