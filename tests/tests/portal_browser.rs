//! The branded portals in a real browser (headless Chromium through ChromeDriver, see `common/browser.rs`):
//! each academy looks like itself, a learner signs up, enrolls, completes a lesson and sees the progress, a
//! manager's admin pages show only their subtree, and the security headers and CSRF checks hold for forms.
//! Every step leaves a screenshot in `target/screenshots/`.
//!
//! These tests need Chromium and ChromeDriver: `.ci/browser` installs them.

mod common;

use common::browser::Browser;
use common::{Client, Directory, TestApp, scenarios};
use serde_json::{Value, json};
use std::collections::BTreeSet;

scenarios!(
    browser_reaches_every_host,
    academies_look_like_themselves,
    learner_signs_up_enrolls_and_sees_progress,
    manager_admin_pages_show_only_their_subtree,
    pages_carry_a_csp_and_forms_need_the_csrf_field,
    an_admin_previews_then_saves_branding,
);

const PASSWORD: &str = "a-long-enough-password";

// ---------------------------------------------------------------------------------------------------------
// Helpers

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

/// Sign in through the portal's form `form#login` on `host` and check that the header offers to sign out.
async fn sign_in(browser: &Browser, host: &str, email: &str, password: &str) {
    browser.open(host, "/login").await;
    browser.fill("form#login input[name=email]", email).await;
    browser.fill("form#login input[name=password]", password).await;
    browser.click_and_wait("form#login [type=submit]").await;
    assert!(
        browser.exists("form#logout").await,
        "after signing in as {email} on {host}, {} shows no `form#logout`; the page says:\n{}",
        browser.current_url().await,
        browser.page_text().await
    );
}

/// The academy's name in the header, the header's background color and the page's title. The header's color
/// must be the page's `--accent`.
async fn looks(browser: &Browser) -> (String, String, String) {
    let looks = (
        browser.text(".site-header .brand").await,
        browser.style(".site-header", "background-color").await,
        browser.text("h1").await,
    );
    let accent = browser.css_var_color("--accent").await;
    assert_eq!(
        looks.1,
        accent,
        "{}: `.site-header`'s background is not the page's --accent",
        browser.current_url().await
    );
    looks
}

/// The tenant's name as its admin reads it from the API.
async fn tenant_name(admin: &Client) -> String {
    let (status, tenant) = admin.get("/api/v1/tenant").await;
    assert_eq!(status, 200, "{tenant}");
    tenant["name"].as_str().expect("the tenant's name").to_owned()
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

/// The number in a progress text such as `50%` or `Progress: 50 %`.
fn percent(text: &str) -> Option<f64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    text[start + digits.len()..]
        .trim_start()
        .starts_with('%')
        .then_some(())?;
    digits.parse().ok()
}

/// Ids of every element `selector` matches on the page and the pages its `a[rel=next]` links lead to.
async fn ids_on_all_pages(browser: &Browser, selector: &str, attr: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.extend(browser.attrs(selector, attr).await);
        if !browser.exists("a[rel=next]").await {
            return ids;
        }
        browser.click_and_wait("a[rel=next]").await;
    }
    panic!("`a[rel=next]` of {} never ends", browser.current_url().await)
}

// ---------------------------------------------------------------------------------------------------------
// Scenarios

/// The harness itself: the browser reaches the test's host by a tenant's address and by a custom domain
/// (every name resolves to 127.0.0.1), and a screenshot is written.
async fn browser_reaches_every_host(app: &TestApp) {
    let browser = Browser::start(app, "browser_reaches_every_host").await;
    for host in ["acme", "globex", "learn.globex.test"] {
        browser.open(host, "/healthz").await;
        assert_eq!(browser.page_text().await.trim(), "ok", "/healthz on {host}");
        assert_eq!(browser.path().await, "/healthz");
    }
    let shot = browser.screenshot("healthz").await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("reading {}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is no PNG", shot.display());
    browser.quit().await;
}

/// acme and globex show their own names, colors and wording, signed out (`/login`) and signed in
/// (`/catalog`); globex looks the same on its custom domain.
async fn academies_look_like_themselves(app: &TestApp) {
    let browser = Browser::start(app, "academies_look_like_themselves").await;
    let learners = [("acme", "nora.north@acme.test"), ("globex", "ines@initech.test")];
    let mut seen = Vec::new();
    for (slug, learner) in learners {
        let name = tenant_name(&app.login(slug, &format!("admin@{slug}.test")).await).await;
        browser.open(slug, "/login").await;
        let login = looks(&browser).await;
        browser.screenshot(&format!("{slug}-login")).await;
        assert_eq!(login.0, name, "the brand of {slug}'s /login");
        sign_in(&browser, slug, learner, aula::demo::DEMO_PASSWORD).await;
        browser.open(slug, "/catalog").await;
        let catalog = looks(&browser).await;
        browser.screenshot(&format!("{slug}-catalog")).await;
        assert_eq!(catalog.0, name, "the brand of {slug}'s /catalog");
        for (page, (_, color, _)) in [("/login", &login), ("/catalog", &catalog)] {
            assert!(
                !color.is_empty() && color != "rgba(0, 0, 0, 0)" && color != "transparent",
                "{slug}'s {page}: `.site-header` has no background color of its own ({color:?})"
            );
        }
        seen.push((slug, login, catalog));
    }
    let [(_, acme_login, acme_catalog), (_, globex_login, globex_catalog)] = &seen[..] else {
        unreachable!("two academies")
    };
    assert_ne!(acme_login.0, globex_login.0, "both academies show the same name");
    assert_ne!(
        acme_login.1, globex_login.1,
        "/login: acme's and globex's headers have the same background color"
    );
    assert_ne!(
        acme_catalog.1, globex_catalog.1,
        "/catalog: acme's and globex's headers have the same background color"
    );
    assert_ne!(
        acme_catalog.2, globex_catalog.2,
        "/catalog: acme and globex title their catalogs alike"
    );

    // The custom domain is globex's portal, with globex's looks.
    browser.open("learn.globex.test", "/login").await;
    let custom = looks(&browser).await;
    browser.screenshot("globex-custom-domain-login").await;
    assert_eq!(custom.0, globex_login.0, "the brand on learn.globex.test");
    assert_eq!(custom.1, globex_login.1, "the header's color on learn.globex.test");
    browser.quit().await;
}

/// A newcomer signs up on acme's portal, enrolls in a course from the catalog, completes its first lesson
/// and finds the progress on `/learn`; the API agrees.
async fn learner_signs_up_enrolls_and_sees_progress(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    set_settings(&admin, json!({"signup": "open", "signup_requires_approval": false})).await;
    // A course of this test: two text lessons, so one completed lesson is half of it.
    let (status, course) = admin
        .post(
            "/api/v1/courses",
            json!({"code": "BROWSER-101", "title": "Browsing safely", "status": "published"}),
        )
        .await;
    assert_eq!(status, 201, "{course}");
    let course = id(&course);
    for title in ["Read me first", "Then read this"] {
        let (status, lesson) = admin
            .post(
                &format!("/api/v1/courses/{course}/lessons"),
                json!({"kind": "text", "title": title, "body": format!("## {title}\n\nA few words.")}),
            )
            .await;
        assert_eq!(status, 201, "{lesson}");
    }

    let browser = Browser::start(app, "learner_signs_up_enrolls_and_sees_progress").await;
    let email = "ada.browser@acme.test";
    browser.open("acme", "/signup").await;
    browser.fill("form#signup input[name=name]", "Ada Browser").await;
    browser.fill("form#signup input[name=email]", email).await;
    browser.fill("form#signup input[name=password]", PASSWORD).await;
    browser.screenshot("1-signup").await;
    browser.click_and_wait("form#signup [type=submit]").await;
    browser.screenshot("2-signed-up").await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE lower(email) = $1", &[email])
            .await,
        1,
        "signing up through form#signup made no account; {} says:\n{}",
        browser.current_url().await,
        browser.page_text().await
    );
    if !browser.exists("form#logout").await {
        sign_in(&browser, "acme", email, PASSWORD).await;
    }

    browser.open("acme", "/catalog").await;
    let link = format!("li.course[data-course-id=\"{course}\"] a.course-link");
    browser.find(&link).await;
    browser.screenshot("3-catalog").await;
    browser.click_and_wait(&link).await;
    assert_eq!(browser.path().await, format!("/catalog/{course}"), "the course's link");
    browser.screenshot("4-course").await;
    browser.click_and_wait("form#enroll [type=submit]").await;
    browser.screenshot("5-enrolled").await;

    browser.open("acme", "/learn").await;
    let enrollment = format!("li.enrollment[data-course-id=\"{course}\"]");
    browser.find(&enrollment).await;
    browser.screenshot("6-learn").await;
    let lesson_link = format!("{enrollment} a.lesson-link");
    if !browser.exists(&lesson_link).await {
        // Lessons are listed on the course's own page.
        browser.click_and_wait(&format!("{enrollment} a")).await;
    }
    browser.click_and_wait("a.lesson-link").await;
    let lesson_path = browser.path().await;
    assert!(
        lesson_path.starts_with(&format!("/learn/{course}/")),
        "the first lesson's link leads to {lesson_path}"
    );
    browser.screenshot("7-lesson").await;
    browser.click_and_wait("form#complete-lesson button[type=submit]").await;
    browser.screenshot("8-lesson-completed").await;

    browser.open("acme", "/learn").await;
    let progress = browser.text(&format!("{enrollment} .progress")).await;
    browser.screenshot("9-progress").await;
    let shown = percent(&progress).unwrap_or_else(|| panic!("`{enrollment} .progress` says {progress:?}"));
    assert!(shown > 0.0, "progress after one lesson of two: {progress:?}");

    let (users, _) = admin.get_all_pages("/api/v1/users?limit=500").await;
    let ada = users
        .iter()
        .find(|u| u["email"] == email)
        .map(id)
        .unwrap_or_else(|| panic!("the API lists no {email}"));
    let (items, _) = admin
        .get_all_pages(&format!("/api/v1/enrollments?course_id={course}&user_id={ada}"))
        .await;
    let [enrollment] = &items[..] else {
        panic!("{email} has not one enrollment in {course}: {items:?}")
    };
    let api = enrollment["progress"].as_f64().unwrap_or(0.0);
    assert!(api > 0.0, "the API's progress: {enrollment}");
    assert_eq!(
        shown.round(),
        api.round(),
        "the page says {progress:?}, the API {enrollment}"
    );
    browser.quit().await;
}

/// Elena manages Sales EMEA: `/admin/users` shows exactly the people the API lets her list, none of the
/// academy's others, and `/admin/orgs` only organizations of her subtree.
async fn manager_admin_pages_show_only_their_subtree(app: &TestApp) {
    let manager_email = "emea.manager@acme.test";
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let manager = app.login("acme", manager_email).await;
    let (api_users, _) = manager.get_all_pages("/api/v1/users?limit=100").await;
    let api_users: BTreeSet<String> = api_users.iter().map(id).collect();
    let everyone: BTreeSet<String> = acme.users.iter().map(id).collect();
    let outside: BTreeSet<&String> = everyone.difference(&api_users).collect();
    assert!(
        !outside.is_empty() && outside.contains(&acme.user("will.west@acme.test")),
        "the API lists Elena all of acme's people"
    );
    let subtree: BTreeSet<String> = acme.org_ids_below(&acme.org("Sales EMEA")).into_iter().collect();
    assert!(subtree.contains(&acme.org("Team North")), "{subtree:?}");

    let browser = Browser::start(app, "manager_admin_pages_show_only_their_subtree").await;
    sign_in(&browser, "acme", manager_email, aula::demo::DEMO_PASSWORD).await;
    browser.open("acme", "/admin/users").await;
    browser.find("table#users").await;
    browser.screenshot("admin-users").await;
    let rows = browser.count("table#users tbody tr").await;
    let shown = ids_on_all_pages(&browser, "table#users tbody tr", "data-user-id").await;
    assert!(rows > 0, "`table#users` of {manager_email} has no rows");
    assert!(
        browser.count("table#users tbody tr:not([data-user-id])").await == 0,
        "a row of `table#users` has no data-user-id"
    );
    let shown_set: BTreeSet<String> = shown.iter().cloned().collect();
    assert_eq!(shown.len(), shown_set.len(), "a person is listed twice: {shown:?}");
    assert_eq!(
        shown_set, api_users,
        "/admin/users shows other people than GET /api/v1/users lists for {manager_email}"
    );
    for outsider in &outside {
        assert!(
            !shown_set.contains(*outsider),
            "/admin/users shows {outsider}, outside Sales EMEA"
        );
    }

    browser.open("acme", "/admin/orgs").await;
    browser.find("[data-org-id]").await;
    browser.screenshot("admin-orgs").await;
    let orgs: BTreeSet<String> = browser
        .attrs("[data-org-id]", "data-org-id")
        .await
        .into_iter()
        .collect();
    assert!(
        orgs.is_subset(&subtree),
        "/admin/orgs of {manager_email} shows organizations outside Sales EMEA: {:?}",
        orgs.difference(&subtree).collect::<Vec<_>>()
    );
    assert!(
        orgs.contains(&acme.org("Sales EMEA")),
        "/admin/orgs lacks Sales EMEA: {orgs:?}"
    );
    browser.quit().await;
}

/// The login page carries a Content-Security-Policy, and a form posted without its `_csrf` field (or from
/// another site) is refused, signed out (sign-in) and signed in (sign-out); the same forms with the field go
/// through, so the refusals are the CSRF check's.
async fn pages_carry_a_csp_and_forms_need_the_csrf_field(app: &TestApp) {
    let host = app.tenant_host("acme");
    let page = raw(app, "GET", &host, "/login", None, None, "").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        !csp.trim().is_empty(),
        "GET /login has no Content-Security-Policy: {:?}",
        page.headers
    );
    let token = csrf_field(&page.text).unwrap_or_else(|| panic!("/login has no _csrf field:\n{}", page.text));
    let secret =
        cookie(&page, "aula_csrf").unwrap_or_else(|| panic!("/login set no aula_csrf cookie: {:?}", page.headers));
    let visitor_cookie = format!("aula_csrf={secret}");

    let login = format!("email=nora.north%40acme.test&password={}", aula::demo::DEMO_PASSWORD);
    let refused = raw(app, "POST", &host, "/login", Some(&visitor_cookie), None, &login).await;
    assert_eq!(refused.status, 403, "POST /login without _csrf: {}", refused.text);
    assert!(
        cookie(&refused, "aula_session").is_none(),
        "POST /login without _csrf signed in"
    );
    let with_token = format!("{login}&_csrf={token}");
    let foreign = raw(
        app,
        "POST",
        &host,
        "/login",
        Some(&visitor_cookie),
        Some("http://evil.test"),
        &with_token,
    )
    .await;
    assert_eq!(foreign.status, 403, "POST /login from another origin: {}", foreign.text);
    let origin = format!("http://{host}");
    let signed_in = raw(
        app,
        "POST",
        &host,
        "/login",
        Some(&visitor_cookie),
        Some(&origin),
        &with_token,
    )
    .await;
    assert!(
        signed_in.status.is_redirection(),
        "POST /login with its _csrf field: {} {}",
        signed_in.status,
        signed_in.text
    );
    assert!(
        cookie(&signed_in, "aula_session").is_some(),
        "POST /login with _csrf set no session"
    );

    // Signed in: the sign-out form.
    let reply = app
        .visitor("acme")
        .sign_in("nora.north@acme.test", aula::demo::DEMO_PASSWORD)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let value = reply.session_cookie().expect("a session cookie");
    let nora = app.visitor("acme").with_session(&value);
    let session = format!("aula_session={value}");
    let refused = raw(app, "POST", &host, "/logout", Some(&session), None, "").await;
    assert_eq!(refused.status, 403, "POST /logout without _csrf: {}", refused.text);
    let (status, me) = nora.get("/api/v1/me").await;
    assert_eq!(status, 200, "the session survives a refused sign-out: {me}");
    let page = raw(app, "GET", &host, "/catalog", Some(&session), None, "").await;
    assert_eq!(page.status, 200, "/catalog signed in: {}", page.text);
    let token = csrf_field(&page.text).unwrap_or_else(|| panic!("/catalog has no _csrf field (sign-out form)"));
    let signed_out = raw(
        app,
        "POST",
        &host,
        "/logout",
        Some(&session),
        None,
        &format!("_csrf={token}"),
    )
    .await;
    assert!(
        signed_out.status.is_redirection(),
        "POST /logout with its _csrf field: {} {}",
        signed_out.status,
        signed_out.text
    );
    app.let_auth_cache_expire();
    let (status, me) = nora.get("/api/v1/me").await;
    assert_eq!(status, 401, "the session outlives the sign-out: {me}");
}

/// An answer to [`raw`].
struct RawReply {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request as a browser's form sends it: any cookies, an Origin, a urlencoded body (for POST).
async fn raw(
    app: &TestApp,
    method: &str,
    host: &str,
    path: &str,
    cookies: Option<&str>,
    origin: Option<&str>,
    form: &str,
) -> RawReply {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("http client");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut req = http
        .request(method.clone(), format!("http://{}{path}", app.addr))
        .header(reqwest::header::HOST, host);
    if let Some(c) = cookies {
        req = req.header(reqwest::header::COOKIE, c);
    }
    if let Some(o) = origin {
        req = req.header(reqwest::header::ORIGIN, o);
    }
    if method == reqwest::Method::POST {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_owned());
    }
    let response = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    RawReply {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap_or_default(),
    }
}

/// The value of a cookie the answer sets.
fn cookie(reply: &RawReply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            let (k, v) = c.split(';').next()?.trim().split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_owned())
        })
}

/// The value of the first `<input name="_csrf" value="…">` of a page.
fn csrf_field(html: &str) -> Option<String> {
    html.split("<input").skip(1).find_map(|tag| {
        let tag = &tag[..tag.find('>')?];
        let attr = |name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[start..start + tag[start..].find('"')?].to_owned())
        };
        (attr("name")? == "_csrf").then(|| attr("value")).flatten()
    })
}

/// The branding page: the Preview button shows unsaved colors in the preview frame and saves nothing; Save
/// changes the academy's header.
async fn an_admin_previews_then_saves_branding(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (_, saved) = admin.get("/api/v1/branding").await;
    let browser = Browser::start(app, "an_admin_previews_then_saves_branding").await;
    sign_in(&browser, "acme", "admin@acme.test", aula::demo::DEMO_PASSWORD).await;
    browser.open("acme", "/admin/branding").await;
    let before = browser.style(".site-header", "background-color").await;
    browser.screenshot("1-branding").await;
    browser.fill("form#branding input[name=color_accent]", "#e8590c").await;
    browser
        .click("form#branding button[formaction=\"/admin/branding/preview\"]")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    browser.screenshot("2-preview").await;
    assert_eq!(admin.get("/api/v1/branding").await.1, saved, "a preview saves nothing");
    assert_eq!(browser.style(".site-header", "background-color").await, before);
    browser.click_and_wait("form#branding button:not([formaction])").await;
    browser.screenshot("3-saved").await;
    assert_eq!(
        browser.style(".site-header", "background-color").await,
        "rgb(232, 89, 12)"
    );
    let (_, now) = admin.get("/api/v1/branding").await;
    assert_eq!(now["settings"]["colors"]["accent"], "#e8590c", "{now}");
}
