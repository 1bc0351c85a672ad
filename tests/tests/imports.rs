//! Bulk imports of people from CSV (Canvas SIS `users.csv` style): a dry run reports and writes nothing;
//! an import creates and changes every good row, names every bad one (row, column, reason, also as CSV),
//! is idempotent by `user_id`, suspends in diff mode what a data set no longer lists, and refuses past its
//! change threshold.

mod common;

use common::{Body, Client, TestApp, scenarios};
use serde_json::{Value, json};

scenarios!(
    a_users_file_imports_every_good_row_and_names_every_bad_one,
    diff_mode_suspends_who_a_data_set_no_longer_lists_within_the_threshold,
);

/// Upload a file; answers the finished job.
async fn import(admin: &Client, query: &str, csv: &str) -> Value {
    let reply = admin
        .send(
            "POST",
            &format!("/api/v1/imports/users{query}"),
            Body::Raw {
                content_type: "text/csv".into(),
                bytes: csv.as_bytes().to_vec(),
            },
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.body["id"].as_str().expect("a job").to_owned();
    for _ in 0..300 {
        let (status, job) = admin.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] == "done" || job["status"] == "failed" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the import job {id} did not finish in 30 s");
}

const FILE: &str = "user_id,email,first_name,last_name,status,locale,orgs,profile.department
E1,ann@acme.test,Ann,One,active,de-CH,ORG-SALES,Sales
E2,bob@acme.test,Bob,Two,,,,
E3,not-an-address,Carl,Three,,,,
E4,dan@acme.test,,,,,,
E5,eve@acme.test,Eve,Five,retired,,,
E6,fay@acme.test,Fay,Six,,no such tag!,,
E7,gus@acme.test,Gus,Seven,,,NO-SUCH-ORG,
E8,hal@acme.test,Hal,Eight,,,,Marketing
E1,ann2@acme.test,Ann,Again,,,,
E9,ivy@acme.test,Ivy
E10,nora.north@acme.test,Nora,Twice,,,,
";

async fn a_users_file_imports_every_good_row_and_names_every_bad_one(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (status, org) = admin
        .post(
            "/api/v1/orgs",
            json!({"name": "Imported sales", "external_id": "ORG-SALES"}),
        )
        .await;
    assert_eq!(status, 201, "{org}");

    // A dry run reports every row's fate and writes nothing.
    let before = app.snapshot().await;
    let audit = app.audit_count().await;
    let dry = import(&admin, "?dry_run=true", FILE).await;
    assert_eq!(dry["status"], "done", "{dry}");
    let report = &dry["result"];
    assert_eq!(report["rows"], 11, "{report}");
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["failed"], 9, "{report}");
    let errors: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["column"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<(u64, String)> = [
        (4, "email"),
        (5, "full_name"),
        (6, "status"),
        (7, "locale"),
        (8, "orgs"),
        (9, "profile.department"),
        (10, "user_id"),
        (11, ""),
        (12, "email"),
    ]
    .into_iter()
    .map(|(r, c)| (r, c.to_owned()))
    .collect();
    assert_eq!(errors, expected, "{report}");
    before.assert_unchanged(&app.snapshot().await, "a dry run");
    assert_eq!(app.audit_count().await, audit, "a dry run writes no audit entry");

    // The import: every good row in, every bad one named.
    let done = import(&admin, "", FILE).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"]["created"], 2, "{done}");
    assert_eq!(done["result"]["failed"], 9, "{done}");
    let (_, found) = admin.get("/api/v1/users?external_id=E1&expand=orgs").await;
    let ann = &found["items"][0];
    assert_eq!(ann["email"], "ann@acme.test", "{found}");
    assert_eq!(ann["name"], "Ann One");
    assert_eq!(ann["locale"], "de-CH");
    assert_eq!(ann["profile"]["department"], "Sales");
    assert_eq!(ann["orgs"][0]["name"], "Imported sales", "{ann}");
    assert_eq!(admin.get("/api/v1/users?external_id=E3").await.1["items"], json!([]));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'import.users'", &[])
            .await,
        1
    );

    // The errors as CSV, to fix the file with.
    let id = done["id"].as_str().unwrap();
    let csv = admin
        .send("GET", &format!("/api/v1/imports/{id}/errors"), Body::None)
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.text.starts_with("row,column,reason\n"), "{}", csv.text);
    assert!(csv.text.contains("\n4,email,"), "{}", csv.text);
    assert!(csv.text.contains("\n12,email,another person"), "{}", csv.text);

    // Importing the same file again changes nothing: rows are matched by user_id.
    let again = import(&admin, "", FILE).await;
    assert_eq!(again["result"]["created"], 0, "{again}");
    assert_eq!(again["result"]["changed"], 0, "{again}");
    assert_eq!(again["result"]["unchanged"], 2, "{again}");

    // A header Aula does not know is refused at upload, naming the column; nothing is queued.
    let reply = admin
        .send(
            "POST",
            "/api/v1/imports/users",
            Body::Raw {
                content_type: "text/csv".into(),
                bytes: b"user_id,email,shoe_size\nE1,ann@acme.test,42\n".to_vec(),
            },
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("shoe_size"), "{}", reply.text);

    // Only someone who may change every account of the academy imports.
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let reply = manager
        .send(
            "POST",
            "/api/v1/imports/users",
            Body::Raw {
                content_type: "text/csv".into(),
                bytes: FILE.as_bytes().to_vec(),
            },
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
}

async fn diff_mode_suspends_who_a_data_set_no_longer_lists_within_the_threshold(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let both = "user_id,email,full_name\nH1,h1@acme.test,Hanna One\nH2,h2@acme.test,Hugo Two\n";
    let first = import(&admin, "?data_set=hr&diff=true", both).await;
    assert_eq!(first["result"]["created"], 2, "{first}");

    // H2 left the company: the next export lists H1 only. Past a 1% threshold the import is refused whole.
    let only_h1 = "user_id,email,full_name\nH1,h1@acme.test,Hanna One\n";
    let refused = import(&admin, "?data_set=hr&diff=true&max_change_percent=1", only_h1).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("max_change_percent"),
        "{refused}"
    );
    let h2 = |v: Value| v["items"][0]["status"].as_str().unwrap_or("").to_owned();
    assert_eq!(h2(admin.get("/api/v1/users?external_id=H2").await.1), "active");

    // Within the threshold, H2 is suspended (not erased); another data set's people are left alone.
    let other = import(
        &admin,
        "?data_set=contractors&diff=true",
        "user_id,email,full_name\nC1,c1@acme.test,Cora\n",
    )
    .await;
    assert_eq!(other["result"]["suspended"], 0, "{other}");
    let dry = import(&admin, "?data_set=hr&diff=true&dry_run=true", only_h1).await;
    assert_eq!(dry["result"]["suspended"], 1, "{dry}");
    assert_eq!(
        h2(admin.get("/api/v1/users?external_id=H2").await.1),
        "active",
        "a dry run suspends no one"
    );
    let second = import(&admin, "?data_set=hr&diff=true", only_h1).await;
    assert_eq!(second["status"], "done", "{second}");
    assert_eq!(second["result"]["suspended"], 1, "{second}");
    assert_eq!(second["result"]["unchanged"], 1, "{second}");
    assert_eq!(h2(admin.get("/api/v1/users?external_id=H2").await.1), "suspended");
    assert_eq!(h2(admin.get("/api/v1/users?external_id=C1").await.1), "active");
}
