//! The portal's admin pages over HTTP: a manager's pages show exactly their part of the academy (the same
//! people the API lists them, on every page, and only their organizations), learners are refused, forms
//! create through the API (and show the API's refusal on the form, marking the field), a plugin uploads
//! through the page, posts without the CSRF token change nothing, and the audit page shows what was done.

mod common;

use common::{Body, Client, Directory, Form, Reply, TestApp, scenarios};
use serde_json::Value;
use std::collections::BTreeSet;

scenarios!(
    a_managers_admin_pages_show_only_their_part,
    learners_and_visitors_are_kept_out,
    the_new_user_form_creates_or_shows_the_apis_refusal,
    a_plugin_uploads_through_the_page,
    posts_without_the_csrf_token_change_nothing,
);

// ---------------------------------------------------------------------------------------------------------
// Reading pages

/// GET a page; panics unless it answers `status`.
async fn page(client: &Client, path: &str, status: u16) -> Reply {
    let reply = client.send("GET", path, Body::None).await;
    assert_eq!(
        reply.status,
        status,
        "GET {path} as {}: {}",
        client.describe(),
        reply.text
    );
    reply
}

/// Undo the HTML escaping handlebars applies to attribute values.
fn unescape(v: &str) -> String {
    v.replace("&#x3D;", "=")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&#x60;", "`")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every value of `attr="…"` in the HTML, in order.
fn attrs(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| unescape(&rest[..end]))
        })
        .collect()
}

/// The `_csrf` value of the page's first form.
fn csrf(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("the page has a form with a _csrf field") + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

/// The `href` of the page's `a[rel=next]`, if it has one.
fn next_link(html: &str) -> Option<String> {
    let marker = "rel=\"next\" href=\"";
    let start = html.find(marker)? + marker.len();
    html[start..].split('"').next().map(unescape)
}

/// The element with `id="…"` as written (its start tag).
fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("the page has no #{id}:\n{html}"));
    let start = html[..at].rfind('<').expect("a tag starts before its id");
    let end = at + html[at..].find('>').expect("the tag ends");
    &html[start..=end]
}

/// The user ids a list page shows (`tr[data-user-id]`), following every "More" link.
async fn user_ids_on_all_pages(client: &Client, first: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut next = Some(first.to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        assert!(pages < 100, "the More links of {first} never end");
        let reply = page(client, &path, 200).await;
        assert!(reply.text.contains("<table id=\"users\""), "{path} has no table#users");
        ids.extend(attrs(&reply.text, "data-user-id"));
        next = next_link(&reply.text);
        if let Some(n) = &next {
            assert!(
                n.starts_with("/admin/users?") && n.contains("cursor="),
                "odd More link {n}"
            );
        }
    }
    ids
}

// ---------------------------------------------------------------------------------------------------------
// Posting forms

/// POST a form (`application/x-www-form-urlencoded`) exactly as a browser sends it.
async fn post(client: &Client, path: &str, fields: &[(&str, &str)]) -> Reply {
    let encode = |v: &str| {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let body = Body::Raw {
        content_type: "application/x-www-form-urlencoded".into(),
        bytes: body.into_bytes(),
    };
    client.send("POST", path, body).await
}

/// Where a 303 after a post leads.
fn location(reply: &Reply) -> String {
    assert_eq!(reply.status, 303, "expected a redirect: {}", reply.text);
    reply.header("location").expect("a redirect has a Location").to_owned()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------------------------
// Scenarios

/// Elena manages Sales EMEA: `/admin/users`, two people a page, shows exactly the people the API lists her
/// (nobody twice, nobody from elsewhere), and `/admin/orgs` only her subtree.
async fn a_managers_admin_pages_show_only_their_part(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let (api_users, _) = manager.get_all_pages("/api/v1/users?limit=100").await;
    let api_ids: BTreeSet<String> = api_users.iter().map(id).collect();
    let outsider = acme.user("will.west@acme.test");
    assert!(
        api_ids.len() > 2 && !api_ids.contains(&outsider),
        "the demo changed: {api_ids:?}"
    );

    let shown = user_ids_on_all_pages(&manager, "/admin/users?limit=2").await;
    let shown_set: BTreeSet<String> = shown.iter().cloned().collect();
    assert_eq!(shown.len(), shown_set.len(), "someone is listed twice: {shown:?}");
    assert_eq!(
        shown_set, api_ids,
        "/admin/users shows other people than the API lists Elena"
    );
    assert!(!shown_set.contains(&outsider));
    // One page of everyone shows the same people.
    let one_page = page(&manager, "/admin/users", 200).await;
    let one: BTreeSet<String> = attrs(&one_page.text, "data-user-id").into_iter().collect();
    assert_eq!(one, api_ids);
    assert!(!one_page.text.contains("will.west@acme.test"));
    // A search is the API's search.
    let found = page(&manager, "/admin/users?q=nora", 200).await;
    assert_eq!(
        attrs(&found.text, "data-user-id"),
        vec![acme.user("nora.north@acme.test")]
    );
    // The navigation offers what she may use, and not what she may not.
    assert!(one_page.text.contains("href=\"/admin/orgs\""));
    assert!(!one_page.text.contains("href=\"/admin/plugins\""));
    assert!(!one_page.text.contains("href=\"/admin/audit\""));
    assert!(!one_page.text.contains("href=\"/admin/branding\""));

    let orgs = page(&manager, "/admin/orgs", 200).await;
    assert!(orgs.text.contains("<ul class=\"tree"), "{}", orgs.text);
    let shown: BTreeSet<String> = attrs(&orgs.text, "data-org-id").into_iter().collect();
    let subtree: BTreeSet<String> = acme.org_ids_below(&acme.org("Sales EMEA")).into_iter().collect();
    assert!(subtree.len() >= 3, "{subtree:?}");
    assert_eq!(
        shown, subtree,
        "/admin/orgs of Elena is not exactly Sales EMEA and below"
    );
    for other in ["Sales Americas", "Engineering", "Acme"] {
        assert!(!shown.contains(&acme.org(other)), "{other} is on Elena's /admin/orgs");
    }
    // Someone else's organization is as missing on its page as in the API.
    let (status, _) = manager.get(&format!("/api/v1/orgs/{}", acme.org("Engineering"))).await;
    let elsewhere = page(
        &manager,
        &format!("/admin/orgs/{}", acme.org("Engineering")),
        status.as_u16(),
    )
    .await;
    assert!(!elsewhere.text.contains("data-member-id"));
    // Her own organization's members are those the API lists.
    let emea = acme.org("Sales EMEA");
    let (members, _) = manager
        .get_all_pages(&format!("/api/v1/orgs/{emea}/members?limit=500"))
        .await;
    let members: BTreeSet<String> = members
        .iter()
        .filter_map(|m| m["user_id"].as_str().map(str::to_owned))
        .collect();
    let org_page = page(&manager, &format!("/admin/orgs/{emea}"), 200).await;
    let listed: BTreeSet<String> = attrs(&org_page.text, "data-member-id").into_iter().collect();
    assert_eq!(listed, members);
}

/// Signed out, an admin page sends you to sign in (and back); a learner gets a 403 page in the theme.
async fn learners_and_visitors_are_kept_out(app: &TestApp) {
    let visitor = app.visitor("acme");
    let reply = visitor.send("GET", "/admin/users?q=x", Body::None).await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    assert_eq!(reply.header("location"), Some("/login?next=%2Fadmin%2Fusers%3Fq%3Dx"));

    let learner = app.login("acme", "nora.north@acme.test").await;
    for path in [
        "/admin",
        "/admin/users",
        "/admin/orgs",
        "/admin/plugins",
        "/admin/audit",
        "/admin/courses",
    ] {
        let reply = page(&learner, path, 403).await;
        assert!(
            reply.text.contains("<!doctype html>") && reply.text.contains("site-header"),
            "{path}: {}",
            reply.text
        );
        assert!(reply.text.contains("role=\"alert\""), "{path}: {}", reply.text);
        assert!(!reply.text.contains("data-user-id"), "{path}");
    }
    // A manager may see people but not plugins or the audit log.
    let manager = app.login("acme", "emea.manager@acme.test").await;
    page(&manager, "/admin/plugins", 403).await;
    page(&manager, "/admin/audit", 403).await;
    // A learner's post with their own valid token (from the sign-out form of any page) is refused as well,
    // and nothing is created.
    let token = csrf(&page(&learner, "/admin/users", 403).await.text);
    let reply = post(
        &learner,
        "/admin/users",
        &[("_csrf", &token), ("name", "Sneaky"), ("email", "sneaky@acme.test")],
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert!(
        reply.text.contains("site-header"),
        "the refusal is not a page of the theme: {}",
        reply.text
    );
    let n = app
        .count("SELECT COUNT(*) FROM users WHERE email = $1", &["sneaky@acme.test"])
        .await;
    assert_eq!(n, 0);
}

/// `form#new-user`: a bad e-mail shows the form again with the e-mail marked and what was typed, and
/// creates nobody; a good one creates the user through the API (the manager's in their organization), and
/// the audit page shows it.
async fn the_new_user_form_creates_or_shows_the_apis_refusal(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let list = page(&manager, "/admin/users", 200).await;
    assert!(list.text.contains("<form id=\"new-user\""), "{}", list.text);
    let token = csrf(&list.text);
    let north = acme.org("Team North");

    let reply = post(
        &manager,
        "/admin/users",
        &[
            ("_csrf", &token),
            ("name", "Paula Probe"),
            ("email", "not-an-address"),
            ("org_id", &north),
            ("locale", ""),
            ("password", ""),
        ],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let email = tag_with_id(&reply.text, "new-user-email");
    assert!(
        email.contains("aria-invalid=\"true\""),
        "the e-mail is not marked: {email}"
    );
    assert!(
        email.contains("value=\"not-an-address\""),
        "what was typed is gone: {email}"
    );
    let name = tag_with_id(&reply.text, "new-user-name");
    assert!(
        !name.contains("aria-invalid") && name.contains("value=\"Paula Probe\""),
        "{name}"
    );
    assert!(
        reply.text.contains("id=\"form-error\""),
        "no error message: {}",
        reply.text
    );
    assert!(
        reply.text.contains("<table id=\"users\""),
        "the page is not the users page again"
    );
    let n = app
        .count("SELECT COUNT(*) FROM users WHERE name = $1", &["Paula Probe"])
        .await;
    assert_eq!(n, 0, "a refused form created someone");

    let reply = post(
        &manager,
        "/admin/users",
        &[
            ("_csrf", &token),
            ("name", "Paula Probe"),
            ("email", "paula.probe@acme.test"),
            ("org_id", &north),
            ("locale", "de"),
            ("password", ""),
        ],
    )
    .await;
    let to = location(&reply);
    let new_id = to
        .strip_prefix("/admin/users/")
        .and_then(|rest| rest.split('?').next())
        .unwrap_or_else(|| panic!("created, then sent to {to}"))
        .to_owned();
    let (status, user) = manager.get(&format!("/api/v1/users/{new_id}")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "paula.probe@acme.test");
    assert_eq!(user["locale"], "de");
    assert_eq!(user["orgs"][0]["id"], north.as_str(), "{user}");
    let shown = page(&manager, &to, 200).await;
    assert!(
        shown.text.contains("Paula Probe") && shown.text.contains("role=\"status\""),
        "{}",
        shown.text
    );
    // The manager's list has her now.
    let ids = user_ids_on_all_pages(&manager, "/admin/users").await;
    assert!(ids.contains(&new_id));

    // The change is in the audit log, on its page.
    let audit = page(&admin, "/admin/audit", 200).await;
    assert!(audit.text.contains("user.create"), "{}", audit.text);
    assert!(
        audit.text.contains(&new_id),
        "the audit page lacks the new user {new_id}"
    );
    let filtered = page(
        &admin,
        &format!("/admin/audit?action=user.create&target_id={new_id}"),
        200,
    )
    .await;
    assert_eq!(attrs(&filtered.text, "data-audit-id").len(), 1, "{}", filtered.text);
    assert!(
        filtered.text.contains("paula.probe@acme.test"),
        "the entry's after is not shown"
    );
}

/// The upload form's multipart body goes to the API untouched, with the token in the action's query.
async fn a_plugin_uploads_through_the_page(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let plugins = page(&admin, "/admin/plugins", 200).await;
    let form = tag_with_id(&plugins.text, "plugin-upload");
    assert!(form.contains("enctype=\"multipart/form-data\""), "{form}");
    let action = attrs(form, "action").pop().expect("the form has an action");
    assert!(action.starts_with("/admin/plugins/upload?_csrf="), "{action}");

    let wasm_path = std::path::Path::new(env!("AULA_WASM_DIR")).join("kv_user.wasm");
    let wasm = std::fs::read(&wasm_path).unwrap_or_else(|e| panic!("reading {}: {e}", wasm_path.display()));
    let manifest_path = std::path::Path::new(env!("AULA_GUESTS_DIR")).join("kv-user/aula-plugin.toml");
    let manifest =
        std::fs::read_to_string(&manifest_path).unwrap_or_else(|e| panic!("reading {}: {e}", manifest_path.display()));
    let upload = Form::new()
        .file("manifest", "aula-plugin.toml", manifest.as_bytes())
        .file("component", "kv_user.wasm", &wasm)
        .text("grant", "requested");

    // Without the token: refused, nothing stored.
    let refused = admin.post_form("/admin/plugins/upload", &upload).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let (_, list) = admin.get("/api/v1/plugins").await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");

    let reply = admin.post_form(&action, &upload).await;
    let to = location(&reply);
    let (_, list) = admin.get("/api/v1/plugins").await;
    let plugin = list
        .as_array()
        .and_then(|l| l.iter().find(|p| p["name"] == "kv-user"))
        .unwrap_or_else(|| panic!("the upload stored no plugin: {list}"))
        .clone();
    assert!(to.starts_with(&format!("/admin/plugins/{}", id(&plugin))), "{to}");
    let mut granted: Vec<&str> = plugin["capabilities"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    granted.sort_unstable();
    assert_eq!(
        granted,
        ["config", "kv", "log"],
        "the grant field did not reach the API: {plugin}"
    );
    let shown = page(&admin, &to, 200).await;
    assert!(
        shown.text.contains("kv-user") && shown.text.contains("0.1.0"),
        "{}",
        shown.text
    );
    let listed = page(&admin, "/admin/plugins", 200).await;
    assert_eq!(attrs(&listed.text, "data-plugin-id"), vec![id(&plugin)]);

    // A broken component is the API's refusal, shown on the upload form.
    let broken = Form::new()
        .file(
            "manifest",
            "aula-plugin.toml",
            manifest.replace("0.1.0", "0.2.0").as_bytes(),
        )
        .file("component", "broken.wasm", b"not wasm")
        .text("grant", "");
    let reply = admin.post_form(&action, &broken).await;
    assert!(reply.status.is_client_error(), "{}: {}", reply.status, reply.text);
    assert!(reply.text.contains("id=\"form-error\""), "{}", reply.text);
    assert!(
        tag_with_id(&reply.text, "upload-component").contains("aria-invalid=\"true\""),
        "{}",
        reply.text
    );
    let (_, versions) = admin.get(&format!("/api/v1/plugins/{}/versions", id(&plugin))).await;
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
}

/// A form posted without its `_csrf` field (or with another session's) is refused and changes nothing.
async fn posts_without_the_csrf_token_change_nothing(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let list = page(&admin, "/admin/users", 200).await;
    let token = csrf(&list.text);
    let other = app.login("acme", "admin@acme.test").await;
    let others_token = csrf(&page(&other, "/admin/users", 200).await.text);
    assert_ne!(token, others_token, "two sessions share a token");
    let before = app.snapshot().await;
    let nora = acme.user("nora.north@acme.test");
    let attempts: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/admin/users",
            vec![("name", "No Token"), ("email", "no.token@acme.test")],
        ),
        (
            "/admin/users",
            vec![
                ("_csrf", &others_token),
                ("name", "No Token"),
                ("email", "no.token@acme.test"),
            ],
        ),
        ("/admin/orgs", vec![("name", "No Token Org")]),
        (
            "/admin/roles",
            vec![("key", "no_token"), ("name", "No token"), ("permissions", "users.read")],
        ),
    ];
    for (path, fields) in &attempts {
        let reply = post(&admin, path, fields).await;
        assert_eq!(reply.status, 403, "POST {path} {fields:?}: {}", reply.text);
    }
    let delete_path = format!("/admin/users/{nora}/delete");
    let reply = post(&admin, &delete_path, &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    before.assert_unchanged(&app.snapshot().await, "posts without a valid _csrf");
    // The same form with its token goes through.
    let reply = post(&admin, "/admin/orgs", &[("_csrf", &token), ("name", "With Token")]).await;
    assert_eq!(location(&reply), "/admin/orgs?done=done.admin_org_created");
    let orgs = page(&admin, "/admin/orgs", 200).await;
    assert!(orgs.text.contains("With Token"));
}
