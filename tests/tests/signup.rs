//! Sign-up: claimed e-mail domains, invitations and their limits, the academy's policy, approval of held
//! sign-ups within a manager's scope, member limits and invitation uses under parallel sign-ups, and
//! licence seats counted at first sign-in.

mod common;

use common::{Body, Client, Directory, Reply, TestApp, scenarios};
use futures::future::join_all;
use serde_json::{Value, json};

scenarios!(
    claimed_domains_place_sign_ups,
    invitations_are_refused_when_expired_used_up_or_revoked,
    closed_academy_refuses_sign_ups_and_invitations,
    parallel_sign_ups_never_pass_a_member_limit_or_max_uses,
    seats_are_counted_at_first_sign_in,
    approval_activates_held_sign_ups_within_scope,
    enrollment_plugins_refuse_hold_and_place_sign_ups,
);

const PASSWORD: &str = "a-long-enough-password";

fn person(email: &str) -> Value {
    json!({"email": email, "name": "New Person", "password": PASSWORD})
}

/// Sign up; a sign-up that waits for its address to be confirmed (202) is confirmed through the link in its
/// mail, and the answer is the confirmation's.
async fn sign_up(app: &TestApp, slug: &str, body: Value) -> Reply {
    let address = body["email"].as_str().unwrap_or_default().to_owned();
    let before = app.mail.messages_to(&address).len();
    let reply = app.visitor(slug).send("POST", "/api/v1/signup", Body::Json(body)).await;
    if reply.status != 202 {
        return reply;
    }
    assert_eq!(reply.body["status"], "unverified", "{}", reply.text);
    let token = verification_token(app, &address, before).await;
    confirm(app, slug, &token).await
}

/// The token of the confirmation link in the mail to `address` after the first `before` ones.
async fn verification_token(app: &TestApp, address: &str, before: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mails = app.mail.messages_to(address);
        if let Some(mail) = mails.get(before) {
            let text = mail.text();
            let link = text
                .split_whitespace()
                .find(|w| w.contains("/signup/verify/"))
                .unwrap_or_else(|| panic!("no confirmation link in the mail:\n{text}"));
            return link.rsplit('/').next().unwrap_or_default().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no confirmation mail to {address}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn confirm(app: &TestApp, slug: &str, token: &str) -> Reply {
    app.visitor(slug)
        .send("POST", "/api/v1/signup/verify", Body::Json(json!({"token": token})))
        .await
}

async fn users_with_email(app: &TestApp, email: &str) -> i64 {
    app.count("SELECT COUNT(*) FROM users WHERE lower(email) = $1", &[email])
        .await
}

/// Change some of the academy's settings, keeping the others.
async fn set_settings(admin: &Client, changes: Value) {
    let (status, tenant) = admin.get("/api/v1/tenant").await;
    assert_eq!(status, 200, "{tenant}");
    let mut settings = tenant["settings"].clone();
    for (k, v) in changes.as_object().expect("an object of settings") {
        settings[k] = v.clone();
    }
    let (status, body) = admin.patch("/api/v1/tenant", json!({"settings": settings})).await;
    assert_eq!(status, 200, "settings {changes}: {body}");
}

async fn claim(admin: &Client, org: &str, domain: &str, hold: bool) -> (reqwest::StatusCode, Value) {
    admin
        .put(&format!("/api/v1/orgs/{org}/domains/{domain}"), json!({"hold": hold}))
        .await
}

async fn invite(admin: &Client, org: &str, body: Value) -> Value {
    let (status, invitation) = admin.post(&format!("/api/v1/orgs/{org}/invitations"), body).await;
    assert_eq!(status, 201, "{invitation}");
    invitation
}

async fn claimed_domains_place_sign_ups(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let (north, south) = (acme.org("Team North"), acme.org("Team South"));

    // Public mail domains cannot be claimed, and a domain is claimed by one organization at a time.
    let (status, body) = claim(&admin, &north, "GMail.com", false).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "public_domain");
    assert_eq!(body["error"]["field"], "domain");
    let (status, body) = claim(&admin, &north, "not a domain", false).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "domain");
    let (status, body) = claim(&admin, &north, "North-Corp.com", false).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["domain"], "north-corp.com");
    assert_eq!(body["org_id"], north.as_str());
    let (status, body) = claim(&admin, &south, "north-corp.com", false).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "duplicate");
    let (status, body) = claim(&admin, &south, "south-corp.com", true).await;
    assert_eq!(status, 201, "{body}");
    // A claim is academy-wide: an organization manager cannot make one, even in their own subtree.
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let (status, _) = claim(&elena, &north, "elena-corp.com", false).await;
    assert_eq!(status, 403);
    let (status, all) = admin.get("/api/v1/org-domains").await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    let (status, _) = elena.get("/api/v1/org-domains").await;
    assert_eq!(status, 403);
    let (status, mine) = elena.get(&format!("/api/v1/orgs/{north}/domains")).await;
    assert_eq!(status, 200);
    assert_eq!(mine[0]["domain"], "north-corp.com", "{mine}");

    // A claimed domain places the newcomer only once the address is proven: until the link in the mail is
    // used there is no account, and the link works once.
    let waiting = app
        .visitor("acme")
        .send("POST", "/api/v1/signup", Body::Json(person("Ann@North-Corp.com")))
        .await;
    assert_eq!(
        (waiting.status.as_u16(), waiting.body["status"].as_str()),
        (202, Some("unverified")),
        "{}",
        waiting.text
    );
    assert!(waiting.session_cookie().is_none());
    assert_eq!(users_with_email(app, "ann@north-corp.com").await, 0);
    let token = verification_token(app, "ann@north-corp.com", 0).await;
    let mail = &app.mail.messages_to("ann@north-corp.com")[0];
    assert!(
        mail.subject().contains("Confirm your e-mail address"),
        "{}",
        mail.subject()
    );
    let wrong = confirm(app, "acme", "not-the-token").await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (400, "verification_link_invalid"),
        "{}",
        wrong.text
    );
    // The link is the academy's: on another academy it names nothing.
    let elsewhere = confirm(app, "globex", &token).await;
    assert_eq!(elsewhere.code(), "verification_link_invalid", "{}", elsewhere.text);
    assert_eq!(users_with_email(app, "ann@north-corp.com").await, 0);
    // The confirmation signs the newcomer in, in the organization of the domain.
    let reply = confirm(app, "acme", &token).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["status"], "active");
    assert_eq!(reply.body["org_id"], north.as_str());
    let cookie = reply
        .session_cookie()
        .expect("a signed-in sign-up sets the session cookie");
    let ann = app.visitor("acme").with_session(&cookie);
    let (status, me) = ann.get("/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "ann@north-corp.com");
    let again = confirm(app, "acme", &token).await;
    assert_eq!(
        again.code(),
        "verification_link_invalid",
        "a link works once: {}",
        again.text
    );
    let (_, members) = admin.get(&format!("/api/v1/orgs/{north}/members?direct=true")).await;
    assert!(
        members["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|m| m["email"] == "ann@north-corp.com"),
        "{members}"
    );

    // A claim that holds sign-ups: the account waits, and cannot sign in.
    let reply = sign_up(app, "acme", person("bob@south-corp.com")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(reply.body["org_id"], south.as_str());
    assert!(reply.session_cookie().is_none());
    assert!(reply.body["message"].as_str().unwrap_or_default().contains("approval"));
    let denied = app.visitor("acme").sign_in("bob@south-corp.com", PASSWORD).await;
    assert_eq!(denied.status, 403, "{}", denied.text);
    assert_eq!(denied.code(), "account_inactive");

    // Under the `domain` policy an unclaimed domain is refused; an e-mail that has an account is refused;
    // the platform's own address names no academy. None of them stores anything.
    let before = app.snapshot().await;
    let reply = sign_up(app, "acme", person("carl@elsewhere-corp.com")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code()),
        (422, "domain_not_allowed"),
        "{}",
        reply.text
    );
    // (nora.north@acme.test has an account, but acme.test is no claimed domain: the policy answers first.)
    let reply = sign_up(app, "acme", person("nora.north@acme.test")).await;
    assert_eq!(reply.code(), "domain_not_allowed", "{}", reply.text);
    for existing in ["ann@north-corp.com", "ANN@North-Corp.com"] {
        let reply = sign_up(app, "acme", person(existing)).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (409, "duplicate"),
            "{}",
            reply.text
        );
        assert_eq!(reply.field(), "email");
    }
    let reply = app
        .client_on(&app.platform_host())
        .send("POST", "/api/v1/signup", Body::Json(person("dora@north-corp.com")))
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = sign_up(
        app,
        "acme",
        json!({"email": "eve@north-corp.com", "name": "Eve", "password": "short"}),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.field()),
        (400, "password"),
        "{}",
        reply.text
    );
    before.assert_unchanged(&app.snapshot().await, "refused sign-ups");
    assert_eq!(users_with_email(app, "ann@north-corp.com").await, 1);

    // Releasing the claim closes that way in.
    let (status, _) = admin
        .delete(&format!("/api/v1/orgs/{north}/domains/north-corp.com"))
        .await;
    assert_eq!(status, 204);
    let reply = sign_up(app, "acme", person("fay@north-corp.com")).await;
    assert_eq!(reply.code(), "domain_not_allowed", "{}", reply.text);

    // Under the `open` policy anyone may sign up; an unclaimed domain lands in no organization.
    set_settings(&admin, json!({"signup": "open"})).await;
    let reply = sign_up(app, "acme", person("gus@elsewhere-corp.com")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["org_id"], Value::Null);
    assert_eq!(reply.body["status"], "active");
    // … and a claimed one still places them.
    let reply = sign_up(app, "acme", person("hal@south-corp.com")).await;
    assert_eq!(
        (reply.body["org_id"].as_str(), reply.body["status"].as_str()),
        (Some(south.as_str()), Some("pending"))
    );
}

async fn invitations_are_refused_when_expired_used_up_or_revoked(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let (north, eng) = (acme.org("Team North"), acme.org("Engineering"));

    // An invitation: a token, a link on the address it was asked for, a QR code of it.
    let once = invite(&admin, &north, json!({"max_uses": 1})).await;
    let token = once["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 32, "{once}");
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    assert_eq!(
        once["link"],
        format!("https://{}/signup?invitation={token}", app.tenant_host("acme"))
    );
    assert_eq!(
        (once["status"].as_str(), once["uses"].as_i64()),
        (Some("active"), Some(0))
    );
    let id = once["id"].as_str().expect("id").to_owned();
    let qr = admin
        .send(
            "GET",
            &format!("/api/v1/invitations/{id}/qr.svg?token={token}"),
            Body::None,
        )
        .await;
    assert_eq!(qr.status, 200);
    assert_eq!(qr.header("content-type"), Some("image/svg+xml"));
    assert!(qr.text.contains("<svg"), "{}", qr.text);
    // Only the link's hash is kept: later reads do not show the secret, and the QR code is drawn only for
    // whoever holds it.
    let (_, read) = admin.get(&format!("/api/v1/invitations/{id}")).await;
    assert_eq!(
        (read["token"].clone(), read["link"].clone()),
        (json!(null), json!(null)),
        "{read}"
    );
    let in_clear = app
        .count("SELECT COUNT(*) FROM invitations WHERE token = $1", &[token.as_str()])
        .await;
    assert_eq!(in_clear, 0, "the secret itself is not stored");
    let qr = admin
        .send(
            "GET",
            &format!("/api/v1/invitations/{id}/qr.svg?token=guess"),
            Body::None,
        )
        .await;
    assert_eq!(qr.status, 400, "{}", qr.text);

    // Used once, it is used up.
    let reply = sign_up(app, "acme", invited("ivy@outside.example", &token)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["org_id"], north.as_str());
    assert_eq!(reply.body["status"], "active");
    let (_, read) = admin.get(&format!("/api/v1/invitations/{id}")).await;
    assert_eq!(
        (read["uses"].as_i64(), read["status"].as_str()),
        (Some(1), Some("used_up")),
        "{read}"
    );

    let expired = invite(&admin, &north, json!({"expires_in_days": 1})).await;
    let expired_id = expired["id"].as_str().expect("id");
    app.exec("UPDATE invitations SET expires_at = 1 WHERE id = $1", &[expired_id])
        .await;
    let revoked = invite(&admin, &north, json!({})).await;
    let (status, body) = admin
        .send(
            "POST",
            &format!("/api/v1/invitations/{}/revoke", revoked["id"].as_str().expect("id")),
            Body::None,
        )
        .await
        .pair_for_test();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");

    // Each refusal says why, and nothing is stored.
    let before = app.snapshot().await;
    for (token, code, status) in [
        (token.as_str(), "invitation_used_up", 422),
        (expired["token"].as_str().expect("token"), "invitation_expired", 422),
        (revoked["token"].as_str().expect("token"), "invitation_revoked", 422),
        ("no-such-invitation-token", "invitation_invalid", 404),
    ] {
        let reply = sign_up(app, "acme", invited("jay@outside.example", token)).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (status, code), "{}", reply.text);
        assert_eq!(reply.field(), "invitation");
    }
    before.assert_unchanged(&app.snapshot().await, "sign-ups with unusable invitations");
    assert_eq!(users_with_email(app, "jay@outside.example").await, 0);

    // Expiry must lie ahead; limits are checked.
    for (body, field) in [
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"max_uses": 0}), "max_uses"),
        (json!({"expires_in_days": 0}), "expires_in_days"),
    ] {
        let (status, reply) = admin
            .post(&format!("/api/v1/orgs/{north}/invitations"), body.clone())
            .await;
        assert_eq!(
            (status.as_u16(), reply["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {reply}"
        );
    }

    // Managers invite to their own subtree only, and see only those invitations.
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let (status, _) = elena.post(&format!("/api/v1/orgs/{eng}/invitations"), json!({})).await;
    assert_eq!(status, 404);
    let eng_invitation = invite(&admin, &eng, json!({})).await;
    let eng_id = eng_invitation["id"].as_str().expect("id");
    for path in [
        format!("/api/v1/invitations/{eng_id}"),
        format!("/api/v1/invitations/{eng_id}/qr.svg"),
    ] {
        let reply = elena.send("GET", &path, Body::None).await;
        assert_eq!(reply.status, 404, "{path}");
    }
    let (status, _) = elena
        .send("POST", &format!("/api/v1/invitations/{eng_id}/revoke"), Body::None)
        .await
        .pair_for_test();
    assert_eq!(status, 404);
    let (status, list) = elena.get(&format!("/api/v1/orgs/{north}/invitations")).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");
    let (status, _) = elena.get(&format!("/api/v1/orgs/{eng}/invitations")).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .login("acme", "uk.reporter@acme.test")
        .await
        .post(&format!("/api/v1/orgs/{north}/invitations"), json!({}))
        .await;
    assert_eq!(status, 403);

    // Someone with an account joins with the invitation; joining twice spends no second use.
    let nora = app.login("acme", "nora.north@acme.test").await;
    let eng_token = eng_invitation["token"].as_str().expect("token");
    let (status, joined) = nora
        .post("/api/v1/invitations/accept", json!({"token": eng_token}))
        .await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(
        (joined["org_id"].as_str(), joined["joined"].as_bool()),
        (Some(eng.as_str()), Some(true))
    );
    let (_, again) = nora
        .post("/api/v1/invitations/accept", json!({"token": eng_token}))
        .await;
    assert_eq!(again["joined"], false, "{again}");
    let (_, read) = admin.get(&format!("/api/v1/invitations/{eng_id}")).await;
    assert_eq!(read["uses"], 1, "{read}");
    let (status, body) = nora.post("/api/v1/invitations/accept", json!({"token": "nope"})).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("invitation_invalid"))
    );

    // An academy that approves every sign-up holds invited ones too.
    let globex_admin = app.login("globex", "admin@globex.test").await;
    let globex = Directory::load(&globex_admin).await;
    let initech = globex.org("Initech");
    let reply = sign_up(app, "globex", person("kim@initech-partner.example")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code()),
        (422, "invitation_required"),
        "{}",
        reply.text
    );
    let invitation = invite(&globex_admin, &initech, json!({"max_uses": 10})).await;
    let reply = sign_up(
        app,
        "globex",
        invited(
            "kim@initech-partner.example",
            invitation["token"].as_str().unwrap_or_default(),
        ),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(reply.body["org_id"], initech.as_str());
    // Another academy's invitation is no invitation here.
    let reply = sign_up(app, "globex", invited("lee@initech-partner.example", eng_token)).await;
    assert_eq!(reply.code(), "invitation_invalid", "{}", reply.text);
}

/// A sign-up with an invitation token.
fn invited(email: &str, token: &str) -> Value {
    let mut body = person(email);
    body["invitation"] = json!(token);
    body
}

async fn closed_academy_refuses_sign_ups_and_invitations(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let north = acme.org("Team North");
    let (status, _) = claim(&admin, &north, "north-corp.com", false).await;
    assert_eq!(status, 201);
    let invitation = invite(&admin, &north, json!({})).await;
    set_settings(&admin, json!({"signup": "closed"})).await;
    let nora = app.login("acme", "nora.north@acme.test").await;

    let before = app.snapshot().await;
    let by_domain = sign_up(app, "acme", person("ann@north-corp.com")).await;
    assert_eq!(
        (by_domain.status.as_u16(), by_domain.code()),
        (422, "signup_closed"),
        "{}",
        by_domain.text
    );
    let invited = sign_up(
        app,
        "acme",
        invited("ann@north-corp.com", invitation["token"].as_str().unwrap_or_default()),
    )
    .await;
    assert_eq!(invited.code(), "signup_closed", "{}", invited.text);
    let (status, body) = nora
        .post("/api/v1/invitations/accept", json!({"token": invitation["token"]}))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (422, Some("signup_closed")),
        "{body}"
    );
    before.assert_unchanged(&app.snapshot().await, "sign-ups in a closed academy");
    assert_eq!(users_with_email(app, "ann@north-corp.com").await, 0);
}

async fn parallel_sign_ups_never_pass_a_member_limit_or_max_uses(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let root = acme.org("Acme");
    let (status, limited) = admin
        .post(
            "/api/v1/orgs",
            json!({"name": "Limited", "parent_id": root, "member_limit": 5}),
        )
        .await;
    assert_eq!(status, 201, "{limited}");
    let limited = limited["id"].as_str().expect("id").to_owned();
    let (status, _) = claim(&admin, &limited, "limited-corp.com", false).await;
    assert_eq!(status, 201);

    // Twenty sign-ups at once by the claimed domain: five fit.
    let results = join_all((0..20).map(|i| sign_up(app, "acme", person(&format!("racer{i}@limited-corp.com"))))).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 5, "{:?}", results.iter().map(|r| &r.text).collect::<Vec<_>>());
    for r in results.iter().filter(|r| r.status != 201) {
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (422, "member_limit_reached"),
            "{}",
            r.text
        );
    }
    let (_, org) = admin.get(&format!("/api/v1/orgs/{limited}")).await;
    assert_eq!(org["member_count_total"], 5, "{org}");
    // Refused sign-ups left nothing behind.
    let stored = app
        .count("SELECT COUNT(*) FROM users WHERE email LIKE '%@limited-corp.com'", &[])
        .await;
    assert_eq!(stored, 5);
    let records = app
        .count(
            "SELECT COUNT(*) FROM signups WHERE email LIKE '%@limited-corp.com'",
            &[],
        )
        .await;
    assert_eq!(records, 5);

    // The same through one invitation into that full organization: nobody gets in, no use is spent.
    let into_full = invite(&admin, &limited, json!({"max_uses": 10})).await;
    let results = join_all((0..4).map(|i| {
        sign_up(
            app,
            "acme",
            invited(
                &format!("late{i}@outside.example"),
                into_full["token"].as_str().unwrap_or_default(),
            ),
        )
    }))
    .await;
    assert!(
        results.iter().all(|r| r.code() == "member_limit_reached"),
        "{results:?}"
    );
    let (_, read) = admin
        .get(&format!(
            "/api/v1/invitations/{}",
            into_full["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(read["uses"], 0, "{read}");

    // Twelve sign-ups at once with an invitation of three uses: three get in.
    let (status, open) = admin
        .post("/api/v1/orgs", json!({"name": "Invited", "parent_id": root}))
        .await;
    assert_eq!(status, 201);
    let invitation = invite(&admin, open["id"].as_str().expect("id"), json!({"max_uses": 3})).await;
    let results = join_all((0..12).map(|i| {
        sign_up(
            app,
            "acme",
            invited(
                &format!("guest{i}@outside.example"),
                invitation["token"].as_str().unwrap_or_default(),
            ),
        )
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.status == 201).count(), 3, "{results:?}");
    for r in results.iter().filter(|r| r.status != 201) {
        assert_eq!((r.status.as_u16(), r.code()), (422, "invitation_used_up"), "{}", r.text);
    }
    let (_, read) = admin
        .get(&format!(
            "/api/v1/invitations/{}",
            invitation["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        (read["uses"].as_i64(), read["status"].as_str()),
        (Some(3), Some("used_up")),
        "{read}"
    );
    let stored = app
        .count(
            "SELECT COUNT(*) FROM users WHERE email LIKE 'guest%@outside.example'",
            &[],
        )
        .await;
    assert_eq!(stored, 3);
}

async fn seats_are_counted_at_first_sign_in(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let taken = app
        .count("SELECT COUNT(*) FROM users WHERE first_login_at IS NOT NULL", &[])
        .await;
    assert_eq!(taken, 1, "only the admin has signed in");
    let (status, body) = admin
        .patch("/api/v1/tenant", json!({"settings": {"seat_limit": 0}}))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["field"].as_str()),
        (400, Some("settings.seat_limit"))
    );
    set_settings(&admin, json!({"seat_limit": 3})).await;

    // Two more people may sign in; the fourth first sign-in is refused.
    app.login("acme", "nora.north@acme.test").await;
    app.login("acme", "noah.north@acme.test").await;
    let refused = app
        .visitor("acme")
        .sign_in("nina.north@acme.test", aula::demo::DEMO_PASSWORD)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.code(), "licence_seats_exhausted");
    assert!(refused.session_cookie().is_none());
    // Those who have a seat keep it.
    app.login("acme", "nora.north@acme.test").await;
    app.login("acme", "admin@acme.test").await;

    // First sign-ins at once never take more seats than there are.
    set_settings(&admin, json!({"seat_limit": 5})).await;
    let racers = [
        "nina.north",
        "sam.south",
        "sara.south",
        "will.west",
        "wanda.west",
        "pia.platform",
        "seth.sre",
    ];
    let results = join_all(racers.iter().map(|r| async move {
        app.visitor("acme")
            .sign_in(&format!("{r}@acme.test"), aula::demo::DEMO_PASSWORD)
            .await
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.status == 200).count(), 2, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.status == 200 || r.code() == "licence_seats_exhausted")
    );
    let taken = app
        .count("SELECT COUNT(*) FROM users WHERE first_login_at IS NOT NULL", &[])
        .await;
    assert_eq!(taken, 5);

    // A sign-up still makes the account when no seat is free, but does not sign it in.
    let north = Directory::load(&admin).await.org("Team North");
    let (status, _) = claim(&admin, &north, "north-corp.com", false).await;
    assert_eq!(status, 201);
    let reply = sign_up(app, "acme", person("ann@north-corp.com")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(
        (reply.body["status"].as_str(), reply.body["signed_in"].as_bool()),
        (Some("active"), Some(false))
    );
    assert!(reply.session_cookie().is_none());

    // Without a limit everyone may sign in again.
    set_settings(&admin, json!({"seat_limit": null})).await;
    app.login("acme", "seth.sre@acme.test").await;
}

async fn approval_activates_held_sign_ups_within_scope(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let (north, eng) = (acme.org("Team North"), acme.org("Engineering"));
    for (org, domain) in [(&north, "north-corp.com"), (&eng, "eng-corp.com")] {
        let (status, body) = claim(&admin, org, domain, false).await;
        assert_eq!(status, 201, "{body}");
    }
    set_settings(&admin, json!({"signup_requires_approval": true})).await;
    let ann = sign_up(app, "acme", person("ann@north-corp.com")).await;
    assert_eq!(
        (ann.status.as_u16(), ann.body["status"].as_str()),
        (201, Some("pending")),
        "{}",
        ann.text
    );
    let eli = sign_up(app, "acme", person("eli@eng-corp.com")).await;
    assert_eq!(eli.body["status"], "pending", "{}", eli.text);

    // Elena manages Sales EMEA: she sees and decides the sign-up placed there, not the one in Engineering.
    let elena = app.login("acme", "emea.manager@acme.test").await;
    let (status, page) = elena.get("/api/v1/signups?status=pending").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["email"], "ann@north-corp.com");
    let (_, all) = admin.get("/api/v1/signups?status=pending").await;
    let eli_signup = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["email"] == "eli@eng-corp.com")
        .expect("eli's sign-up")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ann_signup = items[0]["id"].as_str().expect("id").to_owned();
    let before = app.snapshot().await;
    let (status, _) = elena
        .send("POST", &format!("/api/v1/signups/{eli_signup}/approve"), Body::None)
        .await
        .pair_for_test();
    assert_eq!(status, 404);
    let (status, _) = elena
        .post(&format!("/api/v1/signups/{eli_signup}/reject"), json!({}))
        .await;
    assert_eq!(status, 404);
    before.assert_unchanged(&app.snapshot().await, "a manager deciding outside their subtree");
    let reporter = app.login("acme", "uk.reporter@acme.test").await;
    let (status, _) = reporter.get("/api/v1/signups").await;
    assert_eq!(status, 403);

    // Approval activates the account, which can then sign in.
    let (status, approved) = elena
        .send("POST", &format!("/api/v1/signups/{ann_signup}/approve"), Body::None)
        .await
        .pair_for_test();
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert!(approved["decided_at"].is_string());
    let reply = app.visitor("acme").sign_in("ann@north-corp.com", PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (status, again) = elena
        .send("POST", &format!("/api/v1/signups/{ann_signup}/approve"), Body::None)
        .await
        .pair_for_test();
    assert_eq!(
        (status.as_u16(), again["error"]["code"].as_str()),
        (422, Some("signup_not_pending"))
    );

    // Rejection removes the held account and keeps the record with the reason.
    let erik = app.login("acme", "eng.manager@acme.test").await;
    let (status, rejected) = erik
        .post(
            &format!("/api/v1/signups/{eli_signup}/reject"),
            json!({"reason": "not one of ours"}),
        )
        .await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(
        (
            rejected["status"].as_str(),
            rejected["reason"].as_str(),
            &rejected["user_id"]
        ),
        (Some("rejected"), Some("not one of ours"), &Value::Null)
    );
    assert_eq!(users_with_email(app, "eli@eng-corp.com").await, 0);
    let reply = app.visitor("acme").sign_in("eli@eng-corp.com", PASSWORD).await;
    assert_eq!(reply.status, 401);
    let (_, page) = admin.get("/api/v1/signups?status=rejected").await;
    assert_eq!(page["items"][0]["email"], "eli@eng-corp.com", "{page}");
    let (status, _) = admin.get("/api/v1/signups?status=maybe").await;
    assert_eq!(status, 400);
}

/// The example plugin `domain-placement`, deployed to acme with settings of this test.
async fn deploy_domain_placement(admin: &Client, settings: Value) {
    let dir = std::path::Path::new(env!("AULA_PLUGINS_DIR")).join("domain-placement");
    let manifest = std::fs::read_to_string(dir.join("aula-plugin.toml")).expect("the plugin's manifest");
    let wasm = std::path::Path::new(env!("AULA_WASM_DIR")).join("domain_placement.wasm");
    let component = std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
    let form = common::Form::new()
        .text("manifest", &manifest)
        .file("component", "plugin.wasm", &component)
        .text("grant", "requested");
    let reply = admin.post_form("/api/v1/plugins", &form).await;
    assert_eq!(reply.status, 201, "upload: {}", reply.text);
    let id = reply.body["plugin"]["id"].as_str().expect("plugin id").to_owned();
    let (status, body) = admin
        .put(&format!("/api/v1/plugins/{id}/settings"), json!({"settings": settings}))
        .await;
    assert_eq!(status, 200, "settings: {body}");
    let (status, body) = admin.post(&format!("/api/v1/plugins/{id}/activate"), json!({})).await;
    assert_eq!(status, 200, "activate: {body}");
}

async fn enrollment_plugins_refuse_hold_and_place_sign_ups(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let north = acme.org("Team North");
    set_settings(&admin, json!({"signup": "open"})).await;
    deploy_domain_placement(
        &admin,
        json!({
            "domains": {"placed-corp.com": "Team North"},
            "blocked_domains": ["blocked-corp.com"],
            "hold_unknown_domains": true,
            "courses": [],
            "tags": [],
        }),
    )
    .await;

    // Refused: nothing but the record of the refusal.
    let reply = sign_up(app, "acme", person("bea@blocked-corp.com")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code()),
        (422, "signup_refused"),
        "{}",
        reply.text
    );
    assert!(
        reply.text.contains("blocked-corp.com"),
        "the plugin's reason is shown: {}",
        reply.text
    );
    assert_eq!(users_with_email(app, "bea@blocked-corp.com").await, 0);
    let (_, page) = admin.get("/api/v1/signups?status=rejected").await;
    assert_eq!(page["items"][0]["email"], "bea@blocked-corp.com", "{page}");
    assert_eq!(page["items"][0]["user_id"], Value::Null);

    // Held by the plugin: pending, with its reason for the admin.
    let reply = sign_up(app, "acme", person("cy@unknown-corp.com")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body["status"].as_str()),
        (201, Some("pending")),
        "{}",
        reply.text
    );
    let (_, page) = admin.get("/api/v1/signups?status=pending").await;
    let held = &page["items"][0];
    assert_eq!(held["email"], "cy@unknown-corp.com", "{page}");
    assert!(
        held["reason"].as_str().unwrap_or_default().contains("unknown-corp.com"),
        "{held}"
    );

    // Approved by the plugin, which places them: its action is applied with the sign-up.
    let reply = sign_up(app, "acme", person("dee@placed-corp.com")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body["status"].as_str()),
        (201, Some("active")),
        "{}",
        reply.text
    );
    let (_, members) = admin.get(&format!("/api/v1/orgs/{north}/members?direct=true")).await;
    assert!(
        members["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|m| m["email"] == "dee@placed-corp.com"),
        "{members}"
    );
}

trait PairForTest {
    fn pair_for_test(self) -> (reqwest::StatusCode, Value);
}

impl PairForTest for Reply {
    fn pair_for_test(self) -> (reqwest::StatusCode, Value) {
        (self.status, self.body)
    }
}
