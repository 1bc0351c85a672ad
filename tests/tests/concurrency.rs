//! Requests that race: the database, not luck, decides who wins.

mod common;

use common::{Directory, TestApp, scenarios};
use futures::future::join_all;
use serde_json::json;

scenarios!(
    one_email_created_by_eight_requests_at_once_exists_once,
    member_limits_hold_under_concurrent_additions
);

async fn one_email_created_by_eight_requests_at_once_exists_once(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let globex_admin = app.login("globex", "admin@globex.test").await;
    let spellings = ["Race@acme.test", "race@acme.test", "RACE@acme.test", "race@ACME.test"];

    // Act: eight creations in acme at once (four spellings of one address), and two in globex.
    let acme_attempts = (0..8).map(|i| {
        let admin = admin.clone();
        async move {
            admin
                .post(
                    "/api/v1/users",
                    json!({"email": spellings[i % 4], "name": format!("Racer {i}")}),
                )
                .await
        }
    });
    let globex_attempts = (0..2).map(|i| {
        let admin = globex_admin.clone();
        async move {
            admin
                .post(
                    "/api/v1/users",
                    json!({"email": "race@acme.test", "name": format!("Globex racer {i}")}),
                )
                .await
        }
    });
    let (acme_results, globex_results) = futures::join!(join_all(acme_attempts), join_all(globex_attempts));

    // Assert: one winner per academy; every loser is told which field collided.
    for (results, academy) in [(&acme_results, "acme"), (&globex_results, "globex")] {
        let created = results.iter().filter(|(s, _)| *s == 201).count();
        assert_eq!(created, 1, "{academy}: {results:?}");
        for (status, body) in results.iter().filter(|(s, _)| *s != 201) {
            assert_eq!(*status, 409, "{academy}: {body}");
            assert_eq!(body["error"]["code"], "duplicate");
            assert_eq!(body["error"]["field"], "email");
        }
    }
    for (client, academy) in [(&admin, "acme"), (&globex_admin, "globex")] {
        let (status, page) = client.get("/api/v1/users?q=race@acme.test").await;
        assert_eq!(status, 200);
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(1),
            "{academy} reads back one user: {page}"
        );
    }
    let stored = app
        .count("SELECT COUNT(*) FROM users WHERE lower(email) = 'race@acme.test'", &[])
        .await;
    assert_eq!(stored, 2, "one row per academy");
}

async fn member_limits_hold_under_concurrent_additions(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let west = acme.org("Team West");
    let americas = acme.org("Sales Americas");
    // Ten people from elsewhere who could join.
    let candidates: Vec<String> = [
        "pia.platform",
        "seth.sre",
        "sofia.sre",
        "paul.product",
        "priya.product",
        "omar.ops",
        "olga.ops",
        "instructor",
        "uk.reporter",
        "eng.manager",
    ]
    .iter()
    .map(|e| acme.user(&format!("{e}@acme.test")))
    .collect();

    // Arrange: Team West has 2 members; allow 5.
    let (status, org) = admin
        .patch(&format!("/api/v1/orgs/{west}"), json!({"member_limit": 5}))
        .await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["member_count_total"], 2);

    // Act: ten additions at once.
    let add = |org: String, user: String| {
        let admin = admin.clone();
        async move {
            admin
                .post(&format!("/api/v1/orgs/{org}/members"), json!({"user_id": user}))
                .await
        }
    };
    let results = join_all(candidates.iter().map(|u| add(west.clone(), u.clone()))).await;

    // Assert: exactly three got in; the rest were told the limit, and the count never passed it.
    let added = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(added, 3, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 422, "{body}");
        assert_eq!(body["error"]["code"], "member_limit_reached");
        assert_eq!(body["error"]["details"]["member_limit"], 5);
    }
    let (_, org) = admin.get(&format!("/api/v1/orgs/{west}")).await;
    assert_eq!(org["member_count_total"], 5);
    let (members, _) = admin.get_all_pages(&format!("/api/v1/orgs/{west}/members")).await;
    assert_eq!(members.len(), 5);

    // A limit on an ancestor holds too: Sales Americas may have 6 in all; 5 are in Team West already.
    let (status, _) = admin
        .patch(&format!("/api/v1/orgs/{west}"), json!({"member_limit": null}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = admin
        .patch(&format!("/api/v1/orgs/{americas}"), json!({"member_limit": 6}))
        .await;
    assert_eq!(status, 200);
    let outsiders: Vec<String> = candidates
        .iter()
        .filter(|c| !members.iter().any(|m| m["user_id"] == c.as_str()))
        .cloned()
        .collect();
    assert_eq!(outsiders.len(), 7);
    let results = join_all(outsiders.iter().map(|u| add(west.clone(), u.clone()))).await;
    assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 201 || (*s == 422 && b["error"]["details"]["org_id"] == americas.as_str()))
    );
    let (_, org) = admin.get(&format!("/api/v1/orgs/{americas}")).await;
    assert_eq!(org["member_count_total"], 6);
}
