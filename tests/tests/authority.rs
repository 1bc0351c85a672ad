//! Delegated administrators act only with the authority they hold: no account takeover, no escalation
//! through roles or segments, no lifting limits set from above, and account-wide changes end credentials.

mod common;

use common::{Directory, TestApp, scenarios};
use serde_json::json;

scenarios!(
    a_manager_cannot_take_over_a_stronger_or_shared_account,
    roles_and_segments_cannot_be_widened_beyond_the_editors_rights,
    a_partner_manager_cannot_lift_their_own_member_limit,
    organizations_move_with_their_subtree,
    a_password_reset_ends_sessions_and_tokens,
    tags_and_fields_that_segments_use_stay,
);

async fn a_manager_cannot_take_over_a_stronger_or_shared_account(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let nora = acme.user("nora.north@acme.test");
    let noah = acme.user("noah.north@acme.test");

    // Nora (Team North) becomes an academy admin: Elena manages Team North but not Nora's new powers.
    let (status, _) = admin
        .post(
            "/api/v1/grants",
            json!({"user_id": nora, "role": "tenant_admin", "scope": {"type": "tenant"}}),
        )
        .await;
    assert_eq!(status, 201);
    for body in [
        json!({"password": "taken-over-123"}),
        json!({"email": "elena+nora@acme.test"}),
        json!({"status": "suspended"}),
    ] {
        let (status, reply) = elena.patch(&format!("/api/v1/users/{nora}"), body.clone()).await;
        assert_eq!(status, 403, "{body}: {reply}");
    }
    assert_eq!(elena.delete(&format!("/api/v1/users/{nora}")).await.0, 403);
    // Her own password still works; nothing changed.
    assert_eq!(
        app.visitor("acme")
            .sign_in("nora.north@acme.test", aula::demo::DEMO_PASSWORD)
            .await
            .status,
        200
    );
    // Harmless fields stay open to the manager.
    assert_eq!(
        elena
            .patch(&format!("/api/v1/users/{nora}"), json!({"name": "Nora N."}))
            .await
            .0,
        200
    );

    // Noah also joins Engineering: his account is shared with a part Elena does not manage.
    let (status, _) = admin
        .post(
            &format!("/api/v1/orgs/{}/members", acme.org("Engineering")),
            json!({"user_id": noah}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        elena
            .patch(&format!("/api/v1/users/{noah}"), json!({"status": "suspended"}))
            .await
            .0,
        403
    );
    assert_eq!(elena.delete(&format!("/api/v1/users/{noah}")).await.0, 403);
    let (_, after) = admin.get(&format!("/api/v1/users/{noah}")).await;
    assert_eq!(after["status"], "active");
    // The admin, who holds everything everywhere, may.
    assert_eq!(
        admin
            .patch(&format!("/api/v1/users/{noah}"), json!({"status": "suspended"}))
            .await
            .0,
        200
    );

    // Read access to someone does not become write access by adding them to one's own organization.
    let pia = acme.user("pia.platform@acme.test");
    let (status, _) = admin
        .post(
            "/api/v1/grants",
            json!({"user_id": acme.user("emea.manager@acme.test"), "role": "segment_reporter", "scope": {"type": "org", "id": acme.org("Engineering")}}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, reply) = elena
        .post(
            &format!("/api/v1/orgs/{}/members", acme.org("Team North")),
            json!({"user_id": pia}),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["field"], "user_id");
}

async fn roles_and_segments_cannot_be_widened_beyond_the_editors_rights(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let nora = acme.user("nora.north@acme.test");
    let (status, role) = admin
        .post(
            "/api/v1/roles",
            json!({"key": "role_editor", "name": "Role editor", "permissions": ["roles.read", "roles.write", "segments.read", "segments.write"]}),
        )
        .await;
    assert_eq!(status, 201, "{role}");
    let (status, _) = admin
        .post(
            "/api/v1/grants",
            json!({"user_id": nora, "role": "role_editor", "scope": {"type": "tenant"}}),
        )
        .await;
    assert_eq!(status, 201);
    let editor = app.login("acme", "nora.north@acme.test").await;

    let role_id = role["id"].as_str().expect("id");
    let (status, reply) = editor
        .patch(
            &format!("/api/v1/roles/{role_id}"),
            json!({"permissions": ["roles.read", "roles.write", "segments.read", "segments.write", "audit.read"]}),
        )
        .await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(editor.get("/api/v1/audit").await.0, 403, "nothing was added");
    // Removing permissions is within anyone's rights who may edit roles.
    let (status, _) = editor
        .patch(
            &format!("/api/v1/roles/{role_id}"),
            json!({"permissions": ["roles.read", "roles.write", "segments.read", "segments.write"]}),
        )
        .await;
    assert_eq!(status, 200);

    // "UK staff" carries a reporter's grant: widening it would widen what that grant reaches... but the
    // editor holds users.read nowhere, so the change is refused.
    let uk = acme.segment("UK staff");
    let (status, reply) = editor
        .patch(&format!("/api/v1/segments/{uk}"), json!({"definition": {}}))
        .await;
    assert_eq!(status, 403, "{reply}");
    let reporter = app.login("acme", "uk.reporter@acme.test").await;
    let (_, page) = reporter.get("/api/v1/users?limit=500").await;
    let seen = page["items"].as_array().expect("items").len();
    assert_eq!(
        seen,
        acme.users
            .iter()
            .filter(|u| u["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == "REGION_UK")))
            .count()
    );
}

async fn a_partner_manager_cannot_lift_their_own_member_limit(app: &TestApp) {
    let admin = app.login("globex", "admin@globex.test").await;
    let globex = Directory::load(&admin).await;
    let ian = app.login("globex", "manager@initech.test").await;
    let initech = globex.org("Initech");
    let (status, reply) = ian
        .patch(&format!("/api/v1/orgs/{initech}"), json!({"member_limit": null}))
        .await;
    assert_eq!(status, 403, "{reply}");
    let (_, org) = admin.get(&format!("/api/v1/orgs/{initech}")).await;
    assert_eq!(org["member_limit"], 25);
    // Below his root he sets limits freely.
    let emea = globex.org("Initech EMEA");
    assert_eq!(
        ian.patch(&format!("/api/v1/orgs/{emea}"), json!({"member_limit": 5}))
            .await
            .0,
        200
    );
    // The admin may change the partner's limit.
    assert_eq!(
        admin
            .patch(&format!("/api/v1/orgs/{initech}"), json!({"member_limit": 30}))
            .await
            .0,
        200
    );
}

async fn organizations_move_with_their_subtree(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let south = acme.org("Team South");
    let americas = acme.org("Sales Americas");
    let (status, moved) = admin
        .patch(&format!("/api/v1/orgs/{south}"), json!({"parent_id": americas}))
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["parent_id"], americas.as_str());
    assert_eq!(moved["depth"], 3);
    let (_, emea) = admin.get(&format!("/api/v1/orgs/{}", acme.org("Sales EMEA"))).await;
    let (_, am) = admin.get(&format!("/api/v1/orgs/{americas}")).await;
    // Sam and Sara now count under Americas, not EMEA.
    assert_eq!(emea["member_count_total"], 5);
    assert_eq!(am["member_count_total"], 4);
    // The EMEA manager no longer reaches them.
    let elena = app.login("acme", "emea.manager@acme.test").await;
    assert_eq!(
        elena
            .get(&format!("/api/v1/users/{}", acme.user("sam.south@acme.test")))
            .await
            .0,
        404
    );
    // Back under EMEA (a move of a subtree with members, through delete with reparent, works the same way).
    assert_eq!(
        admin
            .patch(
                &format!("/api/v1/orgs/{south}"),
                json!({"parent_id": acme.org("Sales EMEA")})
            )
            .await
            .0,
        200
    );
    let (status, _) = admin
        .delete(&format!("/api/v1/orgs/{}?mode=reparent", acme.org("Sales EMEA")))
        .await;
    assert_eq!(status, 204);
    let (_, sales) = admin.get(&format!("/api/v1/orgs/{}", acme.org("Sales"))).await;
    assert_eq!(sales["member_count"], 1, "Elena moved up to Sales");
    let (_, south_now) = admin.get(&format!("/api/v1/orgs/{south}")).await;
    assert_eq!(south_now["parent_id"], acme.org("Sales").as_str());
    assert_eq!(south_now["depth"], 2);
}

async fn a_password_reset_ends_sessions_and_tokens(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let nora = app.login("acme", "nora.north@acme.test").await;
    let (_, token) = nora.create_token("script").await;
    let script = app.with_token("acme", &token);
    assert_eq!(script.get("/api/v1/me").await.0, 200);
    let id = acme.user("nora.north@acme.test");
    assert_eq!(
        admin
            .patch(&format!("/api/v1/users/{id}"), json!({"password": "a-fresh-password"}))
            .await
            .0,
        200
    );
    assert_eq!(nora.get("/api/v1/me").await.0, 401, "the session ended");
    assert_eq!(script.get("/api/v1/me").await.0, 401, "the token ended");
}

async fn tags_and_fields_that_segments_use_stay(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    // "UK staff" is defined by REGION_UK; deleting the tag would change who the segment (and its grants) reach.
    let (status, reply) = admin.delete(&format!("/api/v1/tags/{}", acme.tag("REGION_UK"))).await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"]["code"], "in_use");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("UK staff")),
        "{reply}"
    );
    assert_eq!(
        admin.get(&format!("/api/v1/tags/{}", acme.tag("REGION_UK"))).await.0,
        200,
        "still there"
    );
    // A tag no segment uses goes, and leaves every user it was on.
    assert_eq!(
        admin
            .delete(&format!("/api/v1/tags/{}", acme.tag("ROLE_MANAGER")))
            .await
            .0,
        204
    );

    let globex_admin = app.login("globex", "admin@globex.test").await;
    let globex = Directory::load(&globex_admin).await;
    let (status, reply) = globex_admin
        .delete(&format!("/api/v1/profile-fields/{}", globex.field("partner_tier")))
        .await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Gold tier")),
        "{reply}"
    );
    assert_eq!(
        globex_admin
            .delete(&format!("/api/v1/profile-fields/{}", globex.field("country")))
            .await
            .0,
        204
    );
}
