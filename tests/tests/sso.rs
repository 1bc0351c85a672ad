//! Single sign-on through a real OpenID provider (panva's oidc-provider, `tests/oidc/`): an academy admin
//! configures it, people sign in on the provider's own login page and come back signed in, their account
//! created or linked and set up by the mapping; every refusal says why, is audited and creates nothing.

mod common;

use common::browser::Browser;
use common::oidc::OpenIdProvider;
use common::{Client, Reply, TestApp, scenarios};
use serde_json::{Value, json};

/// The provider lives on 127.0.0.1: this host may call private addresses (production hosts may not).
fn private_providers(config: &mut aula::config::Config) {
    config.sso.allow_private_addresses = true;
}

scenarios!(with private_providers =>
    people_sign_in_through_their_academys_provider,
    refused_sign_ins_say_why_and_create_nothing,
    provider_settings_are_checked_and_the_secret_stays_secret,
);

scenarios!(issuers_inside_the_hosts_network_are_refused);

scenarios!(with private_providers => in_the_browser_an_admin_adds_a_provider_and_a_learner_signs_in_through_it);

const ACME_SECRET: &str = "acme's client secret, never shown";

/// A provider that knows acme's and globex's portals as clients.
async fn provider(app: &TestApp, accounts: Value) -> OpenIdProvider {
    let clients = json!([
        {"client_id": "acme-portal", "client_secret": ACME_SECRET,
         "redirect_uris": [format!("http://{}/sso/callback", app.tenant_host("acme"))]},
        {"client_id": "globex-portal", "client_secret": "globex's client secret",
         "redirect_uris": [format!("http://{}/sso/callback", app.tenant_host("globex"))]},
    ]);
    OpenIdProvider::start(clients, accounts).await
}

fn alice(department: &str, groups: &[&str]) -> Value {
    json!({"email": "alice.sso@acme.test", "email_verified": true, "name": "Alice Example", "locale": "de-DE",
           "department": department, "groups": groups, "job": "Account manager"})
}

/// Configure acme's provider as its admin; answers its id.
async fn configure(admin: &Client, idp: &OpenIdProvider, extra: Value) -> String {
    let mut body = json!({
        "name": "Acme staff",
        "issuer": idp.issuer,
        "client_id": "acme-portal",
        "client_secret": ACME_SECRET,
        "scopes": ["org"],
        "mapping": {
            "orgs": {"claim": "department", "by": "path", "create": true},
            "tags": {"claim": "groups"},
            "fields": {"job_title": "job"},
            "locale": true,
        },
    });
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    let (status, created) = admin.post("/api/v1/identity-providers", body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

/// Start single sign-on on the academy (as a browser without a session) and answer where it sends us.
async fn start(visitor: &Client, provider_id: &str, next: &str) -> Reply {
    visitor
        .send("GET", &format!("/sso/{provider_id}?next={next}"), common::Body::None)
        .await
}

fn location(reply: &Reply) -> String {
    reply
        .header("location")
        .unwrap_or_else(|| panic!("no redirect: {} {}", reply.status, reply.text))
        .to_owned()
}

/// The whole round trip as `login`: the academy sends the browser to the provider, the person signs in
/// there, the provider sends them back; answers the academy's answer to the callback.
async fn round_trip(app: &TestApp, idp: &OpenIdProvider, slug: &str, provider_id: &str, login: &str) -> Reply {
    let visitor = app.visitor(slug);
    let started = start(&visitor, provider_id, "/learn").await;
    assert_eq!(started.status, 303, "{}", started.text);
    let authorize = location(&started);
    assert!(authorize.starts_with(&idp.issuer), "{authorize}");
    let back = format!("http://{}/sso/callback", app.tenant_host(slug));
    let callback = idp.sign_in(&authorize, login, &back).await;
    let path = callback
        .strip_prefix(&format!("http://{}", app.tenant_host(slug)))
        .expect("a path");
    visitor.send("GET", path, common::Body::None).await
}

fn signed_in(app: &TestApp, slug: &str, reply: &Reply) -> Client {
    assert_eq!(reply.status, 303, "{}", reply.text);
    assert_eq!(location(reply), "/learn");
    let cookie = reply.session_cookie().expect("a session cookie");
    app.visitor(slug).with_session(&cookie)
}

async fn user_by_email(admin: &Client, email: &str) -> Value {
    let (status, page) = admin.get(&format!("/api/v1/users?q={email}&expand=orgs,tags")).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .and_then(|items| items.iter().find(|u| u["email"] == email))
        .cloned()
        .unwrap_or(Value::Null)
}

fn org_names(user: &Value) -> Vec<String> {
    let mut names: Vec<String> = user["orgs"]
        .as_array()
        .map(|orgs| {
            orgs.iter()
                .filter_map(|o| o["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn tag_names(user: &Value) -> Vec<String> {
    user["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Acme's admin adds the provider; the sign-in page offers it; Alice signs in on the provider's page and
/// comes back signed in: her account is created, placed, tagged and given her job title and language by the
/// mapping. What the admin changes by hand stays; at her next sign-in the mapping changes only what it owns.
async fn people_sign_in_through_their_academys_provider(app: &TestApp) {
    let idp = provider(
        app,
        json!({"alice": alice("Acme/Sales/Sales EMEA", &["REGION_UK", "no-such-tag"])}),
    )
    .await;
    let admin = app.login("acme", "admin@acme.test").await;
    let id = configure(&admin, &idp, json!({})).await;

    let (status, options) = app.visitor("acme").get("/api/v1/auth/providers").await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options[0]["name"], "Acme staff", "{options}");
    assert_eq!(options[0]["start"], format!("/sso/{id}"), "{options}");
    let page = app
        .visitor("acme")
        .send("GET", "/login?next=/learn/courses", common::Body::None)
        .await;
    assert!(page.text.contains("Continue with Acme staff"), "{}", page.text);
    // (`=` is written as an entity in the attribute, which browsers read as `=`.)
    assert!(
        page.text.contains(&format!("/sso/{id}?next&#x3D;%2Flearn%2Fcourses")),
        "{}",
        page.text
    );
    let (_, globex_options) = app.visitor("globex").get("/api/v1/auth/providers").await;
    assert_eq!(globex_options, json!([]), "one academy's provider is not another's");

    let audit_before = app.audit_count().await;
    let reply = round_trip(app, &idp, "acme", &id, "alice").await;
    let alice_client = signed_in(app, "acme", &reply);
    let (status, me) = alice_client.get("/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "alice.sso@acme.test");
    assert_eq!(me["name"], "Alice Example");
    assert_eq!(me["locale"], "de", "de-DE is taken as the academy's de");

    let user = user_by_email(&admin, "alice.sso@acme.test").await;
    assert_eq!(org_names(&user), ["Sales EMEA"], "{user}");
    assert_eq!(tag_names(&user), ["REGION_UK"], "an unknown tag is passed over: {user}");
    assert_eq!(user["profile"]["job_title"], "Account manager", "{user}");
    let user_id = user["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.create' AND target_id = $1 AND after LIKE '%sso%'",
            &[&user_id]
        )
        .await,
        1
    );
    assert!(app.audit_count().await > audit_before);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sso_requests", &[]).await,
        0,
        "a finished sign-in is spent"
    );

    // The admin puts her in Engineering by hand; the provider now says she moved to a new team and left
    // her groups.
    let engineering = app.text("SELECT id FROM orgs WHERE name = 'Engineering'", &[]).await;
    let (status, body) = admin
        .post(
            &format!("/api/v1/orgs/{engineering}/members"),
            json!({"user_id": user_id}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    idp.set_accounts(json!({"alice": alice("Acme/Sales/Sales EMEA/Team Lisbon", &[])}));
    let reply = round_trip(app, &idp, "acme", &id, "alice").await;
    signed_in(app, "acme", &reply);
    let user = user_by_email(&admin, "alice.sso@acme.test").await;
    assert_eq!(
        org_names(&user),
        ["Engineering", "Team Lisbon"],
        "the new team is created and the old one left; Engineering was the admin's: {user}"
    );
    assert!(tag_names(&user).is_empty(), "{user}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM users WHERE lower(email) = 'alice.sso@acme.test'",
            &[]
        )
        .await,
        1,
        "the same account, found by its link to the provider"
    );

    // An account that exists already is linked by its verified address, not duplicated.
    idp.set_accounts(json!({"nora": {"email": "nora.north@acme.test", "email_verified": true, "name": "N."}}));
    let reply = round_trip(app, &idp, "acme", &id, "nora").await;
    let nora = signed_in(app, "acme", &reply);
    let (_, me) = nora.get("/api/v1/me").await;
    assert_eq!(me["email"], "nora.north@acme.test");
    assert_eq!(
        me["name"], "Nora North",
        "linking changes nothing the mapping does not own: {me}"
    );

    // With password sign-in off for acme.test, the password form sends acme.test people to the provider.
    let (status, body) = admin
        .patch(
            &format!("/api/v1/identity-providers/{id}"),
            json!({"email_domains": ["acme.test"], "password_signin": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = app
        .visitor("acme")
        .sign_in("nora.north@acme.test", aula::demo::DEMO_PASSWORD)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.code(), "sso_required");
    assert!(refused.text.contains("Acme staff"), "{}", refused.text);

    // Erasing a person who signed in through a provider erases their link to it too.
    let alice = user_by_email(&admin, "alice.sso@acme.test").await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let (status, body) = admin.delete(&format!("/api/v1/users/{alice_id}")).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM user_identities WHERE user_id = $1", &[&alice_id])
            .await,
        0
    );
}

/// An unverified address, an address outside the provider's domains, an account the provider may not
/// create, a replayed or foreign callback, an expired sign-in and an answer naming another issuer: each is
/// the sign-in page with the reason, a line in the audit log, and nothing else.
async fn refused_sign_ins_say_why_and_create_nothing(app: &TestApp) {
    let idp = provider(
        app,
        json!({
            "bob": {"email": "bob.sso@acme.test", "email_verified": false, "name": "Bob"},
            "carol": {"email": "carol@elsewhere.test", "email_verified": true, "name": "Carol"},
            "dave": {"email": "dave.sso@acme.test", "email_verified": true, "name": "Dave"},
        }),
    )
    .await;
    let admin = app.login("acme", "admin@acme.test").await;
    let id = configure(
        &admin,
        &idp,
        json!({"email_domains": ["acme.test"], "create_users": false}),
    )
    .await;
    let users_before = app.count("SELECT COUNT(*) FROM users", &[]).await;
    let refusals = || app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'sso.refuse'", &[]);

    for (login, status, says, reason) in [
        (
            "bob",
            400,
            "has not verified the e-mail address bob.sso@acme.test",
            "email_unverified",
        ),
        (
            "carol",
            403,
            "carol@elsewhere.test may not sign in through this identity provider",
            "domain_not_allowed",
        ),
        (
            "dave",
            403,
            "there is no account for dave.sso@acme.test in this academy",
            "no_account",
        ),
    ] {
        let before = refusals().await;
        let reply = round_trip(app, &idp, "acme", &id, login).await;
        assert_eq!(reply.status, status, "{login}: {}", reply.text);
        assert!(reply.text.contains(says), "{login}: {}", reply.text);
        assert!(reply.session_cookie().is_none(), "{login} is not signed in");
        assert_eq!(refusals().await, before + 1, "{login}'s refusal is audited");
        assert_eq!(
            app.count(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'sso.refuse' AND after LIKE $1",
                &[&format!("%{reason}%")]
            )
            .await,
            1,
            "{login}: the audit line says {reason}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users", &[]).await,
        users_before,
        "nobody was created"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM user_identities", &[]).await,
        0,
        "nobody was linked"
    );

    // A callback is good once, on the academy it started on.
    let visitor = app.visitor("acme");
    let started = start(&visitor, &id, "/learn").await;
    let back = format!("http://{}/sso/callback", app.tenant_host("acme"));
    let callback = idp.sign_in(&location(&started), "carol", &back).await;
    let path = callback
        .strip_prefix(&format!("http://{}", app.tenant_host("acme")))
        .expect("a path");
    let on_globex = app.visitor("globex").send("GET", path, common::Body::None).await;
    assert_eq!(on_globex.status, 400, "{}", on_globex.text);
    assert!(
        on_globex.text.contains("not known or was used already"),
        "{}",
        on_globex.text
    );
    let first = visitor.send("GET", path, common::Body::None).await;
    assert_eq!(first.status, 403, "carol is still outside the domains: {}", first.text);
    let replayed = visitor.send("GET", path, common::Body::None).await;
    assert_eq!(replayed.status, 400, "{}", replayed.text);
    assert!(
        replayed.text.contains("not known or was used already"),
        "{}",
        replayed.text
    );

    // Another academy cannot start a sign-in with acme's provider.
    let foreign = start(&app.visitor("globex"), &id, "/learn").await;
    assert_eq!(foreign.status, 404, "{}", foreign.text);
    assert!(foreign.text.contains("not available"), "{}", foreign.text);

    // A sign-in that waited too long, and an answer that names another issuer, are refused.
    let started = start(&visitor, &id, "/learn").await;
    let callback = idp.sign_in(&location(&started), "carol", &back).await;
    app.exec("UPDATE sso_requests SET expires_at = 1", &[]).await;
    let path = callback
        .strip_prefix(&format!("http://{}", app.tenant_host("acme")))
        .expect("a path");
    let expired = visitor.send("GET", path, common::Body::None).await;
    assert_eq!(expired.status, 400, "{}", expired.text);
    assert!(expired.text.contains("took too long"), "{}", expired.text);
    let started = start(&visitor, &id, "/learn").await;
    let callback = idp.sign_in(&location(&started), "carol", &back).await;
    let path = callback
        .strip_prefix(&format!("http://{}", app.tenant_host("acme")))
        .expect("a path");
    let issuer = format!("iss={}", url_encode(&idp.issuer));
    assert!(path.contains(&issuer), "{path}");
    let forged = path.replace(&issuer, &format!("iss={}", url_encode("https://evil.example")));
    let mixed_up = visitor.send("GET", &forged, common::Body::None).await;
    assert_eq!(mixed_up.status, 400, "{}", mixed_up.text);
    assert!(mixed_up.text.contains("another issuer"), "{}", mixed_up.text);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users", &[]).await,
        users_before,
        "still nobody"
    );
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bad settings are refused naming the field and change nothing; the client secret is never shown, not
/// even in the audit log; only academy admins manage providers; deleting one keeps the accounts.
async fn provider_settings_are_checked_and_the_secret_stays_secret(app: &TestApp) {
    let idp = provider(app, json!({"alice": alice("Acme/Sales", &[])})).await;
    let admin = app.login("acme", "admin@acme.test").await;
    let before = app.snapshot().await;
    for (body, field) in [
        (
            json!({"name": "X", "issuer": "ftp://idp.test", "client_id": "c", "client_secret": "s"}),
            "issuer",
        ),
        (
            json!({"name": "X", "issuer": idp.issuer, "client_id": "c", "client_secret": "s", "scopes": ["a b"]}),
            "scopes[0]",
        ),
        (
            json!({"name": "X", "issuer": idp.issuer, "client_id": "c", "client_secret": "s", "email_domains": ["not a domain"]}),
            "email_domains[0]",
        ),
        (
            json!({"name": "X", "issuer": idp.issuer, "client_id": "c", "client_secret": "s",
                   "mapping": {"fields": {"shoe_size": "shoe"}}}),
            "mapping.fields.shoe_size",
        ),
        (
            json!({"name": "", "issuer": idp.issuer, "client_id": "c", "client_secret": "s"}),
            "name",
        ),
    ] {
        let (status, reply) = admin.post("/api/v1/identity-providers", body).await;
        assert_eq!(status, 400, "{reply}");
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }
    before.assert_unchanged(&app.snapshot().await, "refused provider settings");

    let id = configure(&admin, &idp, json!({})).await;
    let (status, shown) = admin.get(&format!("/api/v1/identity-providers/{id}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["client_secret_set"], true);
    assert_eq!(
        shown["redirect_uris"],
        json!([format!("http://acme.localhost/sso/callback")]),
        "{shown}"
    );
    let (_, list) = admin.get("/api/v1/identity-providers").await;
    let (_, audit) = admin.get("/api/v1/audit?action=identity_provider.create").await;
    for text in [shown.to_string(), list.to_string(), audit.to_string()] {
        assert!(!text.contains(ACME_SECRET), "the secret shows: {text}");
    }

    // Only academy admins: a manager and another academy's admin get nothing.
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let (status, _) = manager.get("/api/v1/identity-providers").await;
    assert_eq!(status, 403);
    let globex = app.login("globex", "admin@globex.test").await;
    let (status, _) = globex.get(&format!("/api/v1/identity-providers/{id}")).await;
    assert_eq!(status, 404);

    // A sign-in; then a secret the provider does not know makes the provider refuse the next one (said on
    // the page and in the audit log); then the provider goes: the account stays, its link goes.
    let reply = round_trip(app, &idp, "acme", &id, "alice").await;
    signed_in(app, "acme", &reply);
    let (status, _) = admin
        .patch(
            &format!("/api/v1/identity-providers/{id}"),
            json!({"client_secret": "a new secret"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, audit) = admin.get("/api/v1/audit?action=identity_provider.update").await;
    assert!(!audit.to_string().contains("a new secret"), "{audit}");
    let reply = round_trip(app, &idp, "acme", &id, "alice").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("client authentication failed"), "{}", reply.text);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'sso.refuse' AND after LIKE '%provider_refused%'",
            &[]
        )
        .await,
        1
    );
    let (status, _) = admin.delete(&format!("/api/v1/identity-providers/{id}")).await;
    assert_eq!(status, 204);
    assert_eq!(app.count("SELECT COUNT(*) FROM user_identities", &[]).await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE email = 'alice.sso@acme.test'", &[])
            .await,
        1
    );
}

/// With the default settings an academy admin cannot make the host call into its own network: issuers at
/// loopback, private or link-local addresses are refused naming the field.
async fn issuers_inside_the_hosts_network_are_refused(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    for issuer in [
        "http://127.0.0.1:9/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7",
        "http://[::1]:8080",
        "http://localhost:8080",
    ] {
        let (status, reply) = admin
            .post(
                "/api/v1/identity-providers",
                json!({"name": "Inside", "issuer": issuer, "client_id": "c", "client_secret": "s"}),
            )
            .await;
        assert_eq!(status, 400, "{issuer}: {reply}");
        assert_eq!(reply["error"]["field"], "issuer", "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("private"),
            "{reply}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM identity_providers", &[]).await, 0);
}

/// In headless Chromium: acme's admin adds the provider on the admin page, which shows the redirect URI to
/// register; signed out, the sign-in page offers the provider; Alice signs in on the provider's own login
/// and consent pages and lands on her learning page, signed in, in Sales EMEA.
async fn in_the_browser_an_admin_adds_a_provider_and_a_learner_signs_in_through_it(app: &TestApp) {
    let idp = provider(app, json!({"alice": alice("Acme/Sales/Sales EMEA", &["REGION_UK"])})).await;
    let browser = Browser::start(app, "sso_in_the_browser").await;

    browser.open("acme", "/login").await;
    browser.fill("form#login input[name=email]", "admin@acme.test").await;
    browser
        .fill("form#login input[name=password]", aula::demo::DEMO_PASSWORD)
        .await;
    browser.click_and_wait("form#login [type=submit]").await;
    browser.open("acme", "/admin/sso").await;
    browser.fill("form#new-provider input[name=name]", "Acme staff").await;
    browser.fill("form#new-provider input[name=issuer]", &idp.issuer).await;
    browser
        .fill("form#new-provider input[name=client_id]", "acme-portal")
        .await;
    browser
        .fill("form#new-provider input[name=client_secret]", ACME_SECRET)
        .await;
    browser.fill("form#new-provider input[name=scopes]", "org").await;
    browser
        .fill("form#new-provider input[name=org_claim]", "department")
        .await;
    browser.fill("form#new-provider input[name=tags_claim]", "groups").await;
    browser.click("form#new-provider input[name=locale]").await;
    browser.screenshot("admin-adds-provider").await;
    browser.click_and_wait("form#new-provider [type=submit]").await;
    let page = browser.page_text().await;
    assert!(page.contains("The identity provider was added."), "{page}");
    assert!(
        page.contains("http://acme.localhost/sso/callback"),
        "the page shows the redirect URI to register: {page}"
    );
    assert!(
        !browser
            .client()
            .source()
            .await
            .unwrap_or_default()
            .contains(ACME_SECRET)
    );
    browser.screenshot("provider-added").await;

    browser.forget_cookies().await;
    browser.open("acme", "/login?next=/learn").await;
    browser.screenshot("login-offers-provider").await;
    browser.click_and_wait("a.button[href^='/sso/']").await;
    assert!(
        browser.current_url().await.starts_with(&idp.issuer),
        "at the provider: {}",
        browser.current_url().await
    );
    browser.fill("input[name=login]", "alice").await;
    browser.fill("input[name=password]", "anything").await;
    browser.screenshot("provider-login").await;
    browser.click_and_wait("button[type=submit]").await;
    browser
        .wait_for(
            "form input[name=prompt][value=consent]",
            std::time::Duration::from_secs(10),
        )
        .await;
    browser.screenshot("provider-consent").await;
    browser.click_and_wait("button[type=submit]").await;
    assert_eq!(browser.path().await, "/learn", "{}", browser.page_text().await);
    assert!(
        browser.exists("form#logout").await,
        "signed in: {}",
        browser.page_text().await
    );
    browser.screenshot("signed-in").await;

    let admin = app.login("acme", "admin@acme.test").await;
    let user = user_by_email(&admin, "alice.sso@acme.test").await;
    assert_eq!(org_names(&user), ["Sales EMEA"], "{user}");
    assert_eq!(tag_names(&user), ["REGION_UK"], "{user}");
    browser.quit().await;
}
