//! Operational endpoints, request ids, pagination and the audit log.

mod common;

use common::{Body, Directory, TestApp, scenarios};
use serde_json::json;
use std::collections::HashSet;

scenarios!(
    operational_endpoints_answer,
    every_answer_carries_a_request_id,
    pagination_follows_next_through_every_page,
    audit_log_records_who_what_before_after_and_request,
);

async fn operational_endpoints_answer(app: &TestApp) {
    let platform = app.client_on(&app.platform_host());

    let (status, body) = platform.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!("ok"));

    let (status, body) = platform.get("/readyz").await;
    assert_eq!(status, 200, "{body}");

    // Make sure at least one request has been counted before reading the metrics.
    app.visitor("acme").get("/api/v1/me").await;
    let (status, body) = platform.get("/metrics").await;
    assert_eq!(status, 200);
    let text = body.as_str().expect("metrics are text");
    assert!(text.contains("aula_http_requests_total"), "{text}");

    let (status, doc) = platform.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/users",
        "/api/v1/orgs/{id}/members",
        "/api/v1/auth/login",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(path), "the OpenAPI document lacks {path}");
    }
    // The document is the same on a tenant's host.
    let (status, tenant_doc) = app.visitor("acme").get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(tenant_doc, doc);

    // Unknown routes answer in the error shape.
    let (status, body) = platform.get("/api/v1/no-such-thing").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

async fn every_answer_carries_a_request_id(app: &TestApp) {
    // The client checks the header on every answer of the suite; here every kind of answer is provoked once.
    let admin = app.login("acme", "admin@acme.test").await;
    let visitor = app.visitor("acme");
    let cases = [
        ("200", admin.send("GET", "/api/v1/me", Body::None).await),
        ("401", visitor.send("GET", "/api/v1/me", Body::None).await),
        ("404 route", visitor.send("GET", "/nowhere", Body::None).await),
        (
            "404 academy",
            app.visitor("nosuch").send("GET", "/api/v1/me", Body::None).await,
        ),
        (
            "400",
            admin
                .send(
                    "POST",
                    "/api/v1/tags",
                    Body::Raw {
                        content_type: "application/json".into(),
                        bytes: b"{".to_vec(),
                    },
                )
                .await,
        ),
        ("405", admin.send("PUT", "/api/v1/me", Body::None).await),
        ("health", visitor.send("GET", "/healthz", Body::None).await),
    ];
    let mut seen = HashSet::new();
    for (what, reply) in &cases {
        let id = reply
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{what}: no x-request-id"));
        assert!(seen.insert(id.to_owned()), "{what}: request id {id} was used twice");
    }

    // A request id chosen by the caller (a proxy's) is kept, so logs line up across hops.
    let mut req = reqwest::Client::new()
        .get(format!("http://{}/api/v1/me", app.addr))
        .header("host", app.tenant_host("acme"))
        .header("x-request-id", "trace-from-the-proxy-42");
    req = req.header("cookie", "aula_session=nonsense");
    let response = req.send().await.expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-request-id"], "trace-from-the-proxy-42");
}

async fn pagination_follows_next_through_every_page(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (status, everyone) = admin.get("/api/v1/users?limit=500").await;
    assert_eq!(status, 200);
    let total = everyone["items"].as_array().expect("items").len();
    assert!(total >= 20, "the demo has at least 20 acme users, saw {total}");
    assert!(everyone["next"].is_null(), "one page of 500 holds every user");

    for (path, size) in [("/api/v1/users?limit=3", 3), ("/api/v1/users?limit=7&status=active", 7)] {
        let (items, pages) = admin.get_all_pages(path).await;
        let ids: Vec<&str> = items.iter().map(|u| u["id"].as_str().expect("id")).collect();
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{path}: a user appeared on two pages");
        assert_eq!(ids.len(), total, "{path}: pages skipped users");
        assert_eq!(pages, total.div_ceil(size), "{path}: unexpected number of pages");
    }

    // Organizations, an organization's members (including sub-organizations) and the audit log page the same way.
    let (orgs, _) = admin.get_all_pages("/api/v1/orgs?limit=2").await;
    assert_eq!(orgs.len(), 11, "acme has 11 organizations");
    assert_eq!(orgs.iter().map(|o| o["id"].as_str()).collect::<HashSet<_>>().len(), 11);

    let dir = Directory::load(&admin).await;
    let sales = dir.org("Sales");
    let (members, pages) = admin
        .get_all_pages(&format!("/api/v1/orgs/{sales}/members?limit=2"))
        .await;
    assert!(pages > 1);
    assert_eq!(
        members.len(),
        dir.users_below("Sales").len(),
        "members of Sales and below"
    );
    let keys: HashSet<String> = members
        .iter()
        .map(|m| format!("{}|{}", m["user_id"], m["org_id"]))
        .collect();
    assert_eq!(keys.len(), members.len(), "a membership appeared twice");

    for n in 0..5 {
        let (status, _) = admin.post("/api/v1/tags", json!({"name": format!("PAGE_{n}")})).await;
        assert_eq!(status, 201);
    }
    let (entries, _) = admin.get_all_pages("/api/v1/audit?limit=2").await;
    let (all, _) = admin.get_all_pages("/api/v1/audit?limit=500").await;
    assert_eq!(
        entries, all,
        "the audit log reads the same in pages of 2 as in one page"
    );
    assert!(
        entries.len() >= 7,
        "two demo seeds, a token and five tags were recorded"
    );
}

async fn audit_log_records_who_what_before_after_and_request(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let nora = dir.user("nora.north@acme.test");

    let reply = admin
        .send(
            "PATCH",
            &format!("/api/v1/users/{nora}"),
            Body::Json(json!({"name": "Nora Northcott"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let request_id = reply.header("x-request-id").expect("x-request-id").to_owned();

    let (status, page) = admin
        .get(&format!("/api/v1/audit?target_id={nora}&action=user.update"))
        .await;
    assert_eq!(status, 200);
    let entries = page["items"].as_array().expect("items");
    assert_eq!(entries.len(), 1, "{page}");
    let entry = &entries[0];
    assert_eq!(entry["actor_type"], "user");
    assert_eq!(entry["actor_id"], dir.user("admin@acme.test"));
    assert_eq!(entry["actor_label"], "admin@acme.test");
    assert_eq!(entry["target_type"], "user");
    assert_eq!(entry["before"]["name"], "Nora North");
    assert_eq!(entry["after"]["name"], "Nora Northcott");
    assert_eq!(
        entry["request_id"],
        request_id.as_str(),
        "the entry names the request that made the change"
    );

    // A refused change leaves no entry.
    let before = app.audit_count().await;
    let (status, _) = admin.patch(&format!("/api/v1/users/{nora}"), json!({"name": ""})).await;
    assert_eq!(status, 400);
    assert_eq!(app.audit_count().await, before);

    // Other tenants' admins do not see it; acme's own log is only for tenant-wide audit readers.
    let globex = app.login("globex", "admin@globex.test").await;
    let (status, page) = globex.get(&format!("/api/v1/audit?target_id={nora}")).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], json!([]));
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let (status, _) = manager.get("/api/v1/audit").await;
    assert_eq!(status, 403);
}
