//! Scope inside an academy: managers see their subtree, counts include sub-organizations, and nobody grants
//! more than they hold.

mod common;

use common::{Directory, TestApp, scenarios};
use serde_json::{Value, json};
use std::collections::BTreeSet;

scenarios!(
    managers_list_only_their_subtree,
    member_counts_include_sub_organizations,
    grants_never_escalate
);

fn emails(page: &Value) -> BTreeSet<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["email"].as_str().map(str::to_owned))
        .collect()
}

fn names(page: &Value) -> BTreeSet<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["name"].as_str().map(str::to_owned))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn managers_list_only_their_subtree(app: &TestApp) {
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let erik = app.login("acme", "eng.manager@acme.test").await;

    let (status, users) = elena.get("/api/v1/users?limit=500&expand=orgs,tags").await;
    assert_eq!(status, 200);
    assert_eq!(
        emails(&users),
        set(&[
            "emea.manager@acme.test",
            "uk.lead@acme.test",
            "nora.north@acme.test",
            "noah.north@acme.test",
            "nina.north@acme.test",
            "sam.south@acme.test",
            "sara.south@acme.test",
        ])
    );
    // Each user shows only the organizations the manager can see (organizations come with `expand`).
    let visible_orgs: BTreeSet<String> = users["items"]
        .as_array()
        .expect("items")
        .iter()
        .flat_map(|u| u["orgs"].as_array().cloned().unwrap_or_default())
        .filter_map(|o| o["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(visible_orgs, set(&["Sales EMEA", "Team North", "Team South"]));

    let (status, orgs) = elena.get("/api/v1/orgs").await;
    assert_eq!(status, 200);
    assert_eq!(names(&orgs), set(&["Sales EMEA", "Team North", "Team South"]));

    let (_, users) = erik.get("/api/v1/users?limit=500").await;
    assert_eq!(
        emails(&users),
        set(&[
            "eng.manager@acme.test",
            "pia.platform@acme.test",
            "seth.sre@acme.test",
            "sofia.sre@acme.test",
            "paul.product@acme.test",
            "priya.product@acme.test",
        ])
    );
    let (_, orgs) = erik.get("/api/v1/orgs").await;
    assert_eq!(names(&orgs), set(&["Engineering", "Platform", "SRE", "Product"]));

    // Filters narrow within the scope and never widen it.
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let (_, north) = elena
        .get(&format!("/api/v1/users?org={}", acme.org("Team North")))
        .await;
    assert_eq!(emails(&north).len(), 4);
    let (_, sales) = elena
        .get(&format!("/api/v1/users?org={}&limit=500", acme.org("Sales")))
        .await;
    assert_eq!(
        emails(&sales).len(),
        7,
        "Sales as a filter still yields only Sales EMEA's people"
    );
    let (_, roots) = elena.get("/api/v1/orgs?parent=root").await;
    assert_eq!(
        names(&roots),
        set(&[]),
        "the tenant's top organization is outside her scope"
    );

    // A learner has no list at all, but sees themselves.
    let nora = app.login("acme", "nora.north@acme.test").await;
    assert_eq!(nora.get("/api/v1/users").await.0, 403);
    let (status, me) = nora
        .get(&format!("/api/v1/users/{}", acme.user("nora.north@acme.test")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["orgs"][0]["name"], "Team North");
    assert_eq!(
        nora.get(&format!("/api/v1/users/{}", acme.user("noah.north@acme.test")))
            .await
            .0,
        404
    );
}

async fn member_counts_include_sub_organizations(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let count = |name: &str| {
        let org = acme.org_named(name);
        (
            org["member_count"].as_i64().expect("count"),
            org["member_count_total"].as_i64().expect("total"),
        )
    };
    // Direct members, and distinct members of the whole subtree, as the demo seeds them.
    assert_eq!(count("Acme"), (5, 20));
    assert_eq!(count("Sales"), (0, 9));
    assert_eq!(count("Sales EMEA"), (1, 7));
    assert_eq!(count("Team North"), (4, 4));
    assert_eq!(count("Engineering"), (1, 6));
    assert_eq!(count("Platform"), (1, 3));

    // The manager sees the same counts for her subtree.
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let emea = acme.org("Sales EMEA");
    let (_, org) = elena.get(&format!("/api/v1/orgs/{emea}")).await;
    assert_eq!(
        (org["member_count"].as_i64(), org["member_count_total"].as_i64()),
        (Some(1), Some(7))
    );

    // Nora joins Team South as well: South gains a member, Sales EMEA still counts her once.
    let south = acme.org("Team South");
    let (status, body) = elena
        .post(
            &format!("/api/v1/orgs/{south}/members"),
            json!({"user_id": acme.user("nora.north@acme.test")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, org) = elena.get(&format!("/api/v1/orgs/{south}")).await;
    assert_eq!(org["member_count_total"], 3);
    let (_, org) = elena.get(&format!("/api/v1/orgs/{emea}")).await;
    assert_eq!(org["member_count_total"], 7, "distinct people, not memberships");
    let (members, _) = elena.get_all_pages(&format!("/api/v1/orgs/{emea}/members")).await;
    assert_eq!(
        members.len(),
        8,
        "the member list shows each membership, Nora's two included"
    );
    let (direct, _) = elena
        .get_all_pages(&format!("/api/v1/orgs/{emea}/members?direct=true"))
        .await;
    assert_eq!(direct.len(), 1);

    // A new hire placed by the manager counts up the whole chain.
    let (status, user) = elena
        .post(
            "/api/v1/users",
            json!({"email": "new.hire@acme.test", "name": "New Hire", "org_ids": [acme.org("Team North")]}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let (_, org) = elena.get(&format!("/api/v1/orgs/{emea}")).await;
    assert_eq!(org["member_count_total"], 8);
    let (_, org) = admin.get(&format!("/api/v1/orgs/{}", acme.org("Acme"))).await;
    assert_eq!(org["member_count_total"], 21);
    // Without an organization in her scope she cannot create anyone.
    let (status, body) = elena
        .post(
            "/api/v1/users",
            json!({"email": "floating@acme.test", "name": "Floating"}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["field"].as_str()),
        (400, Some("org_ids"))
    );
}

async fn grants_never_escalate(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let (emea, north) = (acme.org("Sales EMEA"), acme.org("Team North"));
    let (elena_id, nora, pia) = (
        acme.user("emea.manager@acme.test"),
        acme.user("nora.north@acme.test"),
        acme.user("pia.platform@acme.test"),
    );
    let elena = app.login("acme", "emea.manager@acme.test").await;

    // An org manager holds no grants.write at all.
    let before = app.snapshot().await;
    let (status, body) = elena
        .post(
            "/api/v1/grants",
            json!({"user_id": nora, "role": "tenant_admin", "scope": {"type": "org", "id": emea}}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    before.assert_unchanged(&app.snapshot().await, "an org manager granting tenant_admin");

    // The admin lets Elena delegate within Sales EMEA.
    let (status, role) = admin
        .post(
            "/api/v1/roles",
            json!({"key": "team_lead", "name": "Team lead", "permissions": ["users.read", "orgs.read", "members.write", "grants.write"]}),
        )
        .await;
    assert_eq!(status, 201, "{role}");
    let (status, body) = admin
        .post(
            "/api/v1/grants",
            json!({"user_id": elena_id, "role": "team_lead", "scope": {"type": "org", "id": emea}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // What she does not hold, or not over that scope, or for someone she cannot see, she cannot grant.
    let attempts = [
        (
            json!({"user_id": nora, "role": "tenant_admin", "scope": {"type": "org", "id": north}}),
            403,
            None,
        ),
        (
            json!({"user_id": elena_id, "role": "tenant_admin", "scope": {"type": "org", "id": emea}}),
            403,
            None,
        ),
        (
            json!({"user_id": nora, "role": "team_lead", "scope": {"type": "tenant"}}),
            400,
            Some("scope.id"),
        ),
        (
            json!({"user_id": nora, "role": "team_lead", "scope": {"type": "org", "id": acme.org("Engineering")}}),
            400,
            Some("scope.id"),
        ),
        (
            json!({"user_id": nora, "role": "team_lead", "scope": {"type": "segment", "id": acme.segment("UK staff")}}),
            400,
            Some("scope.id"),
        ),
        (
            json!({"user_id": pia, "role": "team_lead", "scope": {"type": "org", "id": north}}),
            400,
            Some("user_id"),
        ),
    ];
    let before = app.snapshot().await;
    for (request, status, field) in attempts {
        let (got, body) = elena.post("/api/v1/grants", request.clone()).await;
        assert_eq!(got, status, "{request}: {body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{request}: {body}");
    }
    let admin_grant = acme.grant_of("admin@acme.test");
    let (status, _) = elena.delete(&format!("/api/v1/grants/{admin_grant}")).await;
    assert_eq!(status, 404, "the admin's grant is outside her scope");
    before.assert_unchanged(&app.snapshot().await, "escalation attempts");

    // Within what she holds, she may delegate: Nora leads Team North, and can see it now.
    let (status, grant) = elena
        .post(
            "/api/v1/grants",
            json!({"user_id": nora, "role": "team_lead", "scope": {"type": "org", "id": north}}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let nora_session = app.login("acme", "nora.north@acme.test").await;
    let (status, users) = nora_session.get("/api/v1/users?limit=500").await;
    assert_eq!(status, 200);
    assert_eq!(emails(&users).len(), 4, "Team North only");
    // ... and cannot pass on more than that either.
    let (status, _) = nora_session
        .post("/api/v1/grants", json!({"user_id": acme.user("noah.north@acme.test"), "role": "org_manager", "scope": {"type": "org", "id": north}}))
        .await;
    assert_eq!(status, 403, "org_manager holds users.write, which Nora does not");
}
