//! The learner's pages of the portal, driven over HTTP the way a browser without JavaScript would: get a
//! page, read its form (the `_csrf` token, the action), post the fields with the cookies the academy set
//! (`aula_csrf` before signing in, `aula_session` after), follow the redirect.
//!
//! Covered: signing up, enrolling, completing a lesson and seeing progress through the forms alone; forms
//! without their token or from another site are refused and change nothing; pages speak the visitor's
//! language, then the learner's own choice; a bad sign-up shows the form again; a lesson of a course one is
//! not enrolled in is not shown; a password reset through the forms; a quiz and its certificate.

mod common;

use common::{Client, TestApp, scenarios};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

scenarios!(
    sign_up_enroll_and_complete_a_lesson_through_the_forms,
    forms_without_their_token_or_from_another_site_change_nothing,
    pages_speak_the_visitors_language_then_the_learners_choice,
    a_bad_sign_up_shows_the_form_again_and_creates_no_one,
    lessons_of_courses_one_is_not_enrolled_in_are_not_shown,
    a_forgotten_password_is_reset_through_the_forms,
    a_quiz_is_answered_and_its_certificate_checked_by_anyone,
    an_invitation_link_signs_up_and_waits_for_approval,
    a_claimed_domain_signs_up_once_the_address_is_confirmed,
);

const PASSWORD: &str = "a-long-enough-password";
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------------------
// A browser without JavaScript

/// One page as the browser received it.
#[derive(Debug)]
struct Page {
    status: u16,
    html: String,
    location: Option<String>,
}

impl Page {
    /// The page's form `form#<id>` (panics, showing the page, when it has none).
    fn form(&self, id: &str) -> Form {
        let start = self
            .html
            .find(&format!("<form id=\"{id}\""))
            .unwrap_or_else(|| panic!("no form#{id} on the page ({}):\n{}", self.status, self.html));
        let end = self.html[start..]
            .find("</form>")
            .map(|e| start + e)
            .unwrap_or(self.html.len());
        let html = self.html[start..end].to_owned();
        let action = attr(&html, "action").unwrap_or_default();
        Form { html, action }
    }

    /// The `<html lang>` of the page.
    fn lang(&self) -> String {
        attr(&self.html, "lang").unwrap_or_default()
    }

    /// Does the page contain this text?
    fn has(&self, text: &str) -> bool {
        self.html.contains(text)
    }

    /// The element that starts with `opening` (e.g. `<li class="enrollment card" data-course-id="…"`),
    /// up to the end of its tag name's element (not nested in itself).
    fn element(&self, opening: &str) -> String {
        let start = self
            .html
            .find(opening)
            .unwrap_or_else(|| panic!("no `{opening}` on the page:\n{}", self.html));
        let tag: String = opening[1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let end = self.html[start..]
            .find(&format!("</{tag}>"))
            .map(|e| start + e)
            .unwrap_or(self.html.len());
        self.html[start..end].to_owned()
    }

    /// Every `href` of the links with this class, in order.
    fn links(&self, class: &str) -> Vec<String> {
        let marker = format!("class=\"{class}\" href=\"");
        self.html
            .match_indices(&marker)
            .map(|(i, _)| {
                let rest = &self.html[i + marker.len()..];
                rest[..rest.find('"').unwrap_or(0)].to_owned()
            })
            .collect()
    }
}

/// A form read from a page.
struct Form {
    html: String,
    action: String,
}

impl Form {
    /// The CSRF token the form carries.
    fn csrf(&self) -> String {
        let at = self
            .html
            .find("name=\"_csrf\"")
            .unwrap_or_else(|| panic!("no _csrf field in the form:\n{}", self.html));
        attr(&self.html[at..], "value").unwrap_or_default()
    }
}

/// The value of the first `name="…"` attribute in `html`.
fn attr(html: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let at = html.find(&marker)? + marker.len();
    let rest = &html[at..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

/// The text of the first element with this class (`<span class="progress">50%</span>` → `50%`).
fn text_of_class(html: &str, class: &str) -> Option<String> {
    let marker = format!("class=\"{class}\">");
    let at = html.find(&marker)? + marker.len();
    let rest = &html[at..];
    Some(rest[..rest.find('<')?].trim().to_owned())
}

/// A browser on one academy: its cookies, its language, no JavaScript, redirects shown rather than followed.
struct Browser {
    http: reqwest::Client,
    base: String,
    host: String,
    cookies: BTreeMap<String, String>,
    language: Option<String>,
}

impl Browser {
    fn new(app: &TestApp, slug: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            base: format!("http://{}", app.addr),
            host: app.tenant_host(slug),
            cookies: BTreeMap::new(),
            language: None,
        }
    }

    /// The browser's own origin (what it sends as `Origin` on a form post).
    fn origin(&self) -> String {
        format!("http://{}", self.host)
    }

    fn speaking(mut self, language: &str) -> Browser {
        self.language = Some(language.to_owned());
        self
    }

    /// The session cookie, once signed in.
    fn session(&self) -> Option<&str> {
        self.cookies.get("aula_session").map(String::as_str)
    }

    /// The same person through the API (the test's own client).
    fn api(&self, app: &TestApp) -> Client {
        let slug = self.host.split('.').next().unwrap_or_default();
        app.visitor(slug).with_session(self.session().expect("signed in"))
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        origin: Option<&str>,
    ) -> Page {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(reqwest::header::HOST, &self.host);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(reqwest::header::COOKIE, jar.join("; "));
        }
        if let Some(lang) = &self.language {
            req = req.header(reqwest::header::ACCEPT_LANGUAGE, lang);
        }
        if let Some(origin) = origin {
            req = req.header(reqwest::header::ORIGIN, origin);
        }
        if let Some(fields) = form {
            req = req.form(fields);
        }
        let response = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.host));
        for cookie in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let Some(first) = cookie.to_str().ok().and_then(|c| c.split(';').next()) else {
                continue;
            };
            let Some((name, value)) = first.trim().split_once('=') else {
                continue;
            };
            let expired = cookie.to_str().is_ok_and(|c| c.contains("Max-Age=0"));
            if value.is_empty() || expired {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let html = response.text().await.unwrap_or_default();
        Page { status, html, location }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    /// Post fields exactly as given (no token added), as the browser's own origin.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let origin = self.origin();
        self.send(reqwest::Method::POST, path, Some(fields), Some(&origin))
            .await
    }

    /// Open `page`, fill `form#<id>` with `fields` and send it with its token; the answer.
    async fn submit(&mut self, page: &str, id: &str, fields: &[(&str, &str)]) -> Page {
        let shown = self.get(page).await;
        assert_eq!(shown.status, 200, "GET {page}: {}", shown.html);
        let form = shown.form(id);
        let csrf = form.csrf();
        let mut all: Vec<(&str, &str)> = vec![("_csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(&form.action, &all).await
    }
}

/// A form post the academy must refuse: path, fields, the `Origin` sent (the browser's own when `None`) and
/// what it tries.
type Attempt<'a> = (&'a str, Fields<'a>, Option<&'a str>, &'a str);
/// Form fields in order.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// The path of a redirect, checked to be one.
fn redirected(page: &Page, context: &str) -> String {
    assert_eq!(page.status, 303, "{context}: expected a redirect, got:\n{}", page.html);
    page.location
        .clone()
        .unwrap_or_else(|| panic!("{context}: a redirect without Location"))
}

/// The number of a progress text such as `50%`.
fn percent(text: &str) -> i64 {
    text.trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a percentage: {text:?}"))
}

// ---------------------------------------------------------------------------------------------------------
// Arranging

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
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

/// A published course with these lessons; its id and its lessons' ids.
async fn course_with(admin: &Client, code: &str, title: &str, lessons: &[Value]) -> (String, Vec<String>) {
    let (status, course) = admin
        .post(
            "/api/v1/courses",
            json!({"code": code, "title": title, "status": "published"}),
        )
        .await;
    assert_eq!(status, 201, "{course}");
    let course = id(&course);
    let mut ids = Vec::new();
    for lesson in lessons {
        let (status, body) = admin
            .post(&format!("/api/v1/courses/{course}/lessons"), lesson.clone())
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(id(&body));
    }
    (course, ids)
}

fn text_lesson(title: &str, body: &str) -> Value {
    json!({"kind": "text", "title": title, "body": body})
}

async fn users_with_email(app: &TestApp, email: &str) -> i64 {
    app.count("SELECT COUNT(*) FROM users WHERE lower(email) = $1", &[email])
        .await
}

/// Sign in through `form#login`.
async fn sign_in(browser: &mut Browser, email: &str, password: &str) {
    let reply = browser
        .submit("/login", "login", &[("email", email), ("password", password)])
        .await;
    redirected(&reply, "signing in through form#login");
    assert!(browser.session().is_some(), "form#login set no session cookie");
}

// ---------------------------------------------------------------------------------------------------------
// Scenarios

/// Sign up (open academy) → signed in at once → catalog → course page → enroll → the course's lessons →
/// complete the first of two → My learning shows progress above 0 (50%).
async fn sign_up_enroll_and_complete_a_lesson_through_the_forms(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    set_settings(&admin, json!({"signup": "open", "signup_requires_approval": false})).await;
    let (course, lessons) = course_with(
        &admin,
        "FORMS-101",
        "Forms without scripts",
        &[
            text_lesson("Read me first", "## Hello\n\nPlain **words**."),
            text_lesson("Then this", "More words."),
        ],
    )
    .await;

    let mut browser = Browser::new(app, "acme");
    let email = "ada.forms@example.org";
    let signup = browser.get("/signup").await;
    assert_eq!(signup.status, 200, "{}", signup.html);
    assert!(
        browser.cookies.contains_key("aula_csrf"),
        "the sign-up form set no aula_csrf cookie"
    );
    let form = signup.form("signup");
    for field in [
        "name=\"name\"",
        "name=\"email\"",
        "name=\"password\"",
        "name=\"locale\"",
    ] {
        assert!(form.html.contains(field), "form#signup lacks {field}:\n{}", form.html);
    }
    let csrf = form.csrf();
    let reply = browser
        .post(
            "/signup",
            &[
                ("_csrf", &csrf),
                ("name", "Ada Forms"),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    let to = redirected(&reply, "a sign-up the academy takes");
    assert!(to.starts_with("/learn"), "after signing up: {to}");
    assert!(browser.session().is_some(), "signing up did not sign in");
    assert_eq!(users_with_email(app, email).await, 1);

    // Signed in: My learning, with the notice.
    let learn = browser.get(&to).await;
    assert_eq!(learn.status, 200, "{}", learn.html);
    assert!(
        learn.has("id=\"logout\""),
        "not signed in after signing up:\n{}",
        learn.html
    );
    assert!(
        learn.has("role=\"status\""),
        "no notice after signing up:\n{}",
        learn.html
    );

    // The catalog links to the course; its page has form#enroll.
    let catalog = browser.get("/catalog").await;
    let card = catalog.element(&format!("<li class=\"course card\" data-course-id=\"{course}\""));
    assert!(
        card.contains(&format!("class=\"course-link\" href=\"/catalog/{course}\"")),
        "{card}"
    );
    let page = browser.get(&format!("/catalog/{course}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.has("Forms without scripts") && page.has("Read me first"),
        "{}",
        page.html
    );
    let enroll = page.form("enroll");
    assert!(enroll.html.contains("type=\"submit\""), "{}", enroll.html);

    let reply = browser.submit(&format!("/catalog/{course}"), "enroll", &[]).await;
    let to = redirected(&reply, "enrolling through form#enroll");
    assert!(to.starts_with(&format!("/learn/{course}")), "after enrolling: {to}");

    // The catalog's enrollment filter.
    let enrolled = browser.get("/catalog?enrolled=yes").await;
    assert!(
        enrolled.has(&format!("data-course-id=\"{course}\"")),
        "{}",
        enrolled.html
    );
    let others = browser.get("/catalog?enrolled=no").await;
    assert!(!others.has(&format!("data-course-id=\"{course}\"")), "{}", others.html);

    // The course's lessons, in order, each a lesson link.
    let outline = browser.get(&to).await;
    assert_eq!(outline.status, 200, "{}", outline.html);
    let links = outline.links("lesson-link");
    assert_eq!(
        links,
        lessons
            .iter()
            .map(|l| format!("/learn/{course}/{l}"))
            .collect::<Vec<_>>(),
        "{}",
        outline.html
    );

    // The first lesson shows its sanitized text and form#complete-lesson.
    let lesson = browser.get(&links[0]).await;
    assert_eq!(lesson.status, 200, "{}", lesson.html);
    assert!(lesson.has("<strong>words</strong>"), "{}", lesson.html);
    let complete = lesson.form("complete-lesson");
    assert!(complete.html.contains("<button type=\"submit\""), "{}", complete.html);
    assert!(
        lesson.has(&format!("rel=\"next\" href=\"{}\"", links[1])),
        "no link to the next lesson"
    );
    let reply = browser.submit(&links[0], "complete-lesson", &[]).await;
    let to = redirected(&reply, "completing a lesson");
    assert!(to.starts_with(&format!("/learn/{course}")), "after completing: {to}");
    let outline = browser.get(&to).await;
    assert!(
        outline.has("class=\"lesson done\""),
        "the done lesson is not marked:\n{}",
        outline.html
    );

    // My learning: the enrollment with a progress above 0 (one of two lessons: 50%).
    let learn = browser.get("/learn").await;
    let item = learn.element(&format!("<li class=\"enrollment card\" data-course-id=\"{course}\""));
    let progress = text_of_class(&item, "progress").unwrap_or_else(|| panic!("no .progress in {item}"));
    assert_eq!(percent(&progress), 50, "{item}");
    assert!(item.contains("<progress max=\"100\" value=\"50\""), "{item}");
    assert!(
        item.contains(&format!("class=\"course-link\" href=\"/learn/{course}\"")),
        "{item}"
    );
    // The API agrees.
    let (status, mine) = browser.api(app).get("/api/v1/me/enrollments").await;
    assert_eq!(status, 200, "{mine}");
    let mine = mine
        .as_array()
        .and_then(|a| a.iter().find(|e| e["course_id"] == course.as_str()))
        .unwrap_or_else(|| panic!("no enrollment in {course}: {mine}"));
    assert_eq!(mine["progress"], 50, "{mine}");
}

/// A post without `_csrf`, with a wrong one, or with another site's `Origin` is refused (403) and changes
/// nothing; signed out, a sign-up without the token creates no one.
async fn forms_without_their_token_or_from_another_site_change_nothing(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    set_settings(&admin, json!({"signup": "open", "signup_requires_approval": false})).await;
    let (course, lessons) = course_with(&admin, "CSRF-101", "Tokens", &[text_lesson("One", "Text.")]).await;

    let mut browser = Browser::new(app, "acme");
    sign_in(&mut browser, "nora.north@acme.test", aula::demo::DEMO_PASSWORD).await;
    let nora = browser.api(app);
    let (status, _) = nora.post(&format!("/api/v1/catalog/{course}/enroll"), json!({})).await;
    assert_eq!(status, 201);
    let profile = browser.get("/profile").await;
    let token = profile.form("profile").csrf();
    let lesson = format!("/learn/{course}/{}/complete", lessons[0]);

    let before = app.snapshot().await;
    let evil = "http://evil.example";
    let attempts: Vec<Attempt> = vec![
        (
            "/profile",
            vec![("name", "Mallory"), ("locale", "de")],
            None,
            "no token",
        ),
        (
            "/profile",
            vec![("_csrf", "0123456789abcdef0123456789abcdef"), ("name", "Mallory")],
            None,
            "a wrong token",
        ),
        (
            "/profile",
            vec![("_csrf", token.as_str()), ("name", "Mallory")],
            Some(evil),
            "another site's Origin",
        ),
        (lesson.as_str(), vec![], None, "completing without a token"),
        (
            lesson.as_str(),
            vec![("_csrf", token.as_str())],
            Some(evil),
            "completing from another site",
        ),
        (
            "/profile/password",
            vec![
                ("current_password", aula::demo::DEMO_PASSWORD),
                ("new_password", PASSWORD),
            ],
            None,
            "password without a token",
        ),
    ];
    for (path, fields, origin, what) in attempts {
        let origin = origin.map(str::to_owned).unwrap_or_else(|| browser.origin());
        let page = browser
            .send(reqwest::Method::POST, path, Some(fields.as_slice()), Some(&origin))
            .await;
        assert_eq!(page.status, 403, "{what}: POST {path} answered:\n{}", page.html);
    }
    before.assert_unchanged(&app.snapshot().await, "refused form posts");
    let (_, me) = nora.get("/api/v1/me").await;
    assert_eq!(me["name"], "Nora North");

    // The right token from the right origin works.
    let reply = browser
        .post("/profile", &[("_csrf", &token), ("name", "Nora N."), ("locale", "")])
        .await;
    redirected(&reply, "the profile form with its token");
    let (_, me) = nora.get("/api/v1/me").await;
    assert_eq!(me["name"], "Nora N.");

    // Signed out: the sign-up form's token is bound to the aula_csrf cookie.
    let mut stranger = Browser::new(app, "acme");
    let email = "no.token@example.org";
    let fields = [("name", "No Token"), ("email", email), ("password", PASSWORD)];
    let page = stranger.post("/signup", &fields).await;
    assert_eq!(page.status, 403, "a sign-up without cookie or token:\n{}", page.html);
    let csrf = stranger.get("/signup").await.form("signup").csrf();
    let page = stranger.post("/signup", &fields).await;
    assert_eq!(page.status, 403, "a sign-up without its token:\n{}", page.html);
    let mut with_token = vec![("_csrf", csrf.as_str())];
    with_token.extend_from_slice(&fields);
    let page = stranger
        .send(
            reqwest::Method::POST,
            "/signup",
            Some(with_token.as_slice()),
            Some(evil),
        )
        .await;
    assert_eq!(page.status, 403, "a sign-up from another site:\n{}", page.html);
    let mut other = Browser::new(app, "acme");
    other.get("/signup").await;
    let page = other.post("/signup", &with_token).await;
    assert_eq!(page.status, 403, "another browser's token:\n{}", page.html);
    assert_eq!(users_with_email(app, email).await, 0);
}

/// Signed out, pages follow `Accept-Language`; signed in, the learner's own choice wins over it, and
/// "the academy's default" gives the browser its say again.
async fn pages_speak_the_visitors_language_then_the_learners_choice(app: &TestApp) {
    let mut browser = Browser::new(app, "acme").speaking("de-DE,de;q=0.9,en;q=0.5");
    let login = browser.get("/login").await;
    assert_eq!(login.lang(), "de", "{}", login.html);
    assert!(login.has("Passwort vergessen?"), "{}", login.html);
    let signup = browser.get("/signup").await;
    assert_eq!(signup.lang(), "de");
    assert!(signup.has("<h1>Konto erstellen</h1>"), "{}", signup.html);
    let reset = browser.get("/password-reset").await;
    assert!(reset.has("<h1>Passwort vergessen?</h1>"), "{}", reset.html);
    let english = Browser::new(app, "acme").speaking("en").get("/signup").await;
    assert_eq!(english.lang(), "en");
    assert!(english.has("<h1>Create an account</h1>"), "{}", english.html);

    // Nora chose English; her pages are English although her browser asks for German.
    sign_in(&mut browser, "nora.north@acme.test", aula::demo::DEMO_PASSWORD).await;
    let profile = browser.get("/profile").await;
    assert_eq!(profile.lang(), "en", "{}", profile.html);
    assert!(profile.has("<h1>Profile</h1>"), "{}", profile.html);

    // She chooses German with a browser asking for English: the next page is German.
    browser.language = Some("en".into());
    let reply = browser
        .submit("/profile", "profile", &[("name", "Nora North"), ("locale", "de")])
        .await;
    let to = redirected(&reply, "saving the profile");
    let page = browser.get(&to).await;
    assert_eq!(page.lang(), "de", "{}", page.html);
    assert!(page.has("<h1>Profil</h1>"), "{}", page.html);
    assert!(
        page.has("Ihr Profil wurde gespeichert."),
        "the notice in German:\n{}",
        page.html
    );
    let learn = browser.get("/learn").await;
    assert!(learn.has("<h1>Mein Lernen</h1>"), "{}", learn.html);
    let (_, me) = browser.api(app).get("/api/v1/me").await;
    assert_eq!(me["email"], "nora.north@acme.test");

    // Back to the academy's default: the browser's English applies again.
    let reply = browser
        .submit("/profile", "profile", &[("name", "Nora North"), ("locale", "")])
        .await;
    let page = browser.get(&redirected(&reply, "clearing the language")).await;
    assert_eq!(page.lang(), "en", "{}", page.html);
    assert!(
        page.has("<option value=\"\" selected>"),
        "the default is chosen:\n{}",
        page.html
    );
}

/// A sign-up with a short password shows the form again (400), with the password marked, what was typed
/// kept (never the password) and no account made; an address with an account is refused the same way.
async fn a_bad_sign_up_shows_the_form_again_and_creates_no_one(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    set_settings(&admin, json!({"signup": "open", "signup_requires_approval": false})).await;
    let mut browser = Browser::new(app, "acme");
    let email = "short.password@example.org";
    let before = app.snapshot().await;
    let reply = browser
        .submit(
            "/signup",
            "signup",
            &[("name", "Shorty"), ("email", email), ("password", "short")],
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.html);
    let form = reply.form("signup");
    assert!(reply.has("role=\"alert\""), "no error message:\n{}", reply.html);
    let password = &form.html[form.html.find("name=\"password\"").expect("a password input")..];
    let password = &password[..password.find('>').unwrap_or(password.len())];
    assert!(
        password.contains("aria-invalid=\"true\""),
        "the password is not marked: {password}"
    );
    assert!(!password.contains("value="), "the password is sent back: {password}");
    let name = &form.html[form.html.find("name=\"name\"").expect("a name input")..];
    assert!(
        !name[..name.find('>').unwrap_or(0)].contains("aria-invalid"),
        "the name is marked"
    );
    assert!(
        form.html.contains(&format!("value=\"{email}\"")),
        "the e-mail typed is lost"
    );
    assert!(form.html.contains("value=\"Shorty\""), "the name typed is lost");
    assert_eq!(users_with_email(app, email).await, 0);
    before.assert_unchanged(&app.snapshot().await, "a refused sign-up");

    // An address that has an account: 409, the e-mail marked, still one account.
    let reply = browser
        .submit(
            "/signup",
            "signup",
            &[
                ("name", "Nora Again"),
                ("email", "nora.north@acme.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.html);
    let form = reply.form("signup");
    let input = &form.html[form.html.find("name=\"email\"").expect("an e-mail input")..];
    assert!(
        input[..input.find('>').unwrap_or(0)].contains("aria-invalid=\"true\""),
        "{input}"
    );
    assert_eq!(users_with_email(app, "nora.north@acme.test").await, 1);

    // The academy's default policy (claimed domains only) refuses a public address with its reason.
    set_settings(&admin, json!({"signup": "domain"})).await;
    let reply = browser
        .submit(
            "/signup",
            "signup",
            &[("name", "Gee"), ("email", "gee@gmail.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.html);
    assert!(reply.has("e-mail domains"), "{}", reply.html);
    assert_eq!(users_with_email(app, "gee@gmail.com").await, 0);
}

/// A lesson of a course the learner is not enrolled in shows an error page, not the lesson, and cannot be
/// completed; the course's learning page sends them to the course page to enroll.
async fn lessons_of_courses_one_is_not_enrolled_in_are_not_shown(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let secret = "The secret ingredient is patience";
    let (course, lessons) = course_with(&admin, "NOPE-101", "Not yours", &[text_lesson("Hidden", secret)]).await;
    let mut browser = Browser::new(app, "acme");
    sign_in(&mut browser, "nora.north@acme.test", aula::demo::DEMO_PASSWORD).await;

    let lesson = format!("/learn/{course}/{}", lessons[0]);
    let page = browser.get(&lesson).await;
    assert!(
        page.status >= 400 && page.status < 500,
        "{}: {}",
        page.status,
        page.html
    );
    assert!(page.has("role=\"alert\""), "{}", page.html);
    assert!(page.has("You are not enrolled in this course"), "{}", page.html);
    assert!(!page.has(secret), "the lesson's text is shown:\n{}", page.html);
    assert!(!page.has("id=\"complete-lesson\""), "{}", page.html);
    assert!(
        page.has(&format!("href=\"/catalog/{course}\"")),
        "no way to the course page:\n{}",
        page.html
    );

    // Completing it anyway is refused.
    let token = browser.get("/learn").await.form("logout").csrf();
    let before = app.snapshot().await;
    let page = browser.post(&format!("{lesson}/complete"), &[("_csrf", &token)]).await;
    assert!(
        page.status >= 400 && page.status < 500,
        "{}: {}",
        page.status,
        page.html
    );
    before.assert_unchanged(&app.snapshot().await, "completing a lesson of a course one is not in");

    let page = browser.get(&format!("/learn/{course}")).await;
    assert_eq!(
        redirected(&page, "the learning page of a course one is not in"),
        format!("/catalog/{course}")
    );

    // Signed out, it is the sign-in page first.
    let page = Browser::new(app, "acme").get(&lesson).await;
    let to = redirected(&page, "a lesson, signed out");
    assert!(to.starts_with("/login?next="), "{to}");
}

/// The reset form answers the same for any address; the mailed link leads to a form that sets the new
/// password once; afterwards the link is reported as not working, with a way to ask again.
async fn a_forgotten_password_is_reset_through_the_forms(app: &TestApp) {
    let mut browser = Browser::new(app, "acme");
    let known = browser
        .submit("/password-reset", "password-reset", &[("email", "omar.ops@acme.test")])
        .await;
    assert_eq!(known.status, 200, "{}", known.html);
    let unknown = browser
        .submit("/password-reset", "password-reset", &[("email", "nobody@acme.test")])
        .await;
    assert_eq!(unknown.status, 200, "{}", unknown.html);
    let main = |p: &Page| {
        p.element("<main")
            .replace("nobody@acme.test", "")
            .replace("omar.ops@acme.test", "")
    };
    assert_eq!(
        main(&known),
        main(&unknown),
        "the answer tells whether an account exists"
    );

    let mail = app.mail.wait_for(1, WAIT).await;
    let text = mail[0].text();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/password-reset/"))
        .unwrap_or_else(|| panic!("no link in:\n{text}"));
    let path = &link[link.find("/password-reset/").expect("the path")..];

    let page = browser.get(path).await;
    assert_eq!(page.status, 200, "{}", page.html);
    page.form("password-reset-confirm");
    let short = browser
        .submit(path, "password-reset-confirm", &[("new_password", "short")])
        .await;
    assert_eq!(short.status, 400, "{}", short.html);
    assert!(
        short
            .form("password-reset-confirm")
            .html
            .contains("aria-invalid=\"true\"")
    );
    let reply = browser
        .submit(path, "password-reset-confirm", &[("new_password", PASSWORD)])
        .await;
    let to = redirected(&reply, "setting the new password");
    assert!(to.starts_with("/login?done="), "{to}");
    let login = browser.get(&to).await;
    assert!(
        login.has("role=\"status\""),
        "no notice on the sign-in page:\n{}",
        login.html
    );
    sign_in(&mut browser, "omar.ops@acme.test", PASSWORD).await;

    // Used once: now the page says the link does not work and offers to ask again.
    let mut again = Browser::new(app, "acme");
    let reply = again
        .submit(
            path,
            "password-reset-confirm",
            &[("new_password", "yet-another-password")],
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.html);
    assert!(
        reply.has("role=\"alert\"") && reply.has("href=\"/password-reset\""),
        "{}",
        reply.html
    );
    assert_eq!(
        app.visitor("acme").sign_in("omar.ops@acme.test", PASSWORD).await.status,
        200
    );
}

/// A quiz: each question a fieldset with radio buttons or checkboxes; a wrong answer shows the score and
/// the attempts left, a right one passes and completes the course; the certificate is listed and anyone
/// can check it on its verification page.
async fn a_quiz_is_answered_and_its_certificate_checked_by_anyone(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let quiz = json!({
        "kind": "quiz", "title": "Check yourself", "pass_percent": 100, "max_attempts": 3,
        "questions": [
            {"prompt": "Who sees the data?", "choices": ["Anyone", "Your academy"], "correct": [1]},
            {"prompt": "Safe habits?", "choices": ["Locking", "Sharing passwords", "Reporting"], "correct": [0, 2]}
        ]
    });
    let (course, lessons) = course_with(&admin, "QUIZ-101", "Quizzing", &[quiz]).await;
    let mut browser = Browser::new(app, "acme");
    sign_in(&mut browser, "nora.north@acme.test", aula::demo::DEMO_PASSWORD).await;
    redirected(
        &browser.submit(&format!("/catalog/{course}"), "enroll", &[]).await,
        "enrolling",
    );

    let path = format!("/learn/{course}/{}", lessons[0]);
    let page = browser.get(&path).await;
    let form = page.form("quiz");
    assert_eq!(form.html.matches("<fieldset").count(), 2, "{}", form.html);
    assert_eq!(form.html.matches("<legend>").count(), 2, "{}", form.html);
    assert_eq!(form.html.matches("type=\"radio\" id=\"q0-").count(), 2, "{}", form.html);
    assert_eq!(
        form.html.matches("type=\"checkbox\" id=\"q1-").count(),
        3,
        "{}",
        form.html
    );
    assert!(!page.has("id=\"complete-lesson\""), "a quiz is done by passing it");

    let wrong = browser.submit(&path, "quiz", &[("q0", "0"), ("q1", "0")]).await;
    assert_eq!(wrong.status, 200, "{}", wrong.html);
    assert!(
        wrong.has("Your score: 0%") && wrong.has("Not passed") && wrong.has("Attempts left: 2"),
        "{}",
        wrong.html
    );
    let right = browser
        .submit(&path, "quiz", &[("q0", "1"), ("q1", "0"), ("q1", "2")])
        .await;
    assert_eq!(right.status, 200, "{}", right.html);
    assert!(right.has("Your score: 100%") && right.has("Passed"), "{}", right.html);
    let learn = browser.get("/learn").await;
    let item = learn.element(&format!("<li class=\"enrollment card\" data-course-id=\"{course}\""));
    assert_eq!(
        percent(&text_of_class(&item, "progress").expect("a progress")),
        100,
        "{item}"
    );

    let certificates = browser.get("/certificates").await;
    assert!(certificates.has("Quizzing"), "{}", certificates.html);
    let verify = certificates.links("verify-link");
    assert_eq!(verify.len(), 1, "{}", certificates.html);
    let public = Browser::new(app, "acme").get(&verify[0]).await;
    assert_eq!(public.status, 200, "{}", public.html);
    assert!(
        public.has("This certificate is valid.") && public.has("Nora North") && public.has("Quizzing"),
        "{}",
        public.html
    );
    let unknown = Browser::new(app, "acme").get("/certificates/verify/NOT-A-CODE").await;
    assert_eq!(unknown.status, 404, "{}", unknown.html);
    // Another academy does not know it.
    let elsewhere = Browser::new(app, "globex").get(&verify[0]).await;
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.html);
}

/// globex takes sign-ups by invitation, held for approval: the link's token rides along as a hidden field,
/// the sign-up waits for an administrator (nobody is signed in), and a used-up link is refused with its
/// reason on the form.
async fn an_invitation_link_signs_up_and_waits_for_approval(app: &TestApp) {
    let admin = app.login("globex", "admin@globex.test").await;
    let (status, orgs) = admin.get("/api/v1/orgs").await;
    assert_eq!(status, 200, "{orgs}");
    let orgs = orgs.get("items").unwrap_or(&orgs).clone();
    let org = id(&orgs[0]);
    let (status, invitation) = admin
        .post(&format!("/api/v1/orgs/{org}/invitations"), json!({"max_uses": 1}))
        .await;
    assert_eq!(status, 201, "{invitation}");
    let token = invitation["token"].as_str().expect("a token").to_owned();

    let mut browser = Browser::new(app, "globex");
    let page = browser.get(&format!("/signup?invite={token}")).await;
    let form = page.form("signup");
    assert!(
        form.html
            .contains(&format!("type=\"hidden\" name=\"invitation\" value=\"{token}\"")),
        "{}",
        form.html
    );
    let email = "paula.partner@example.org";
    let reply = browser
        .submit(
            &format!("/signup?invite={token}"),
            "signup",
            &[
                ("name", "Paula Partner"),
                ("email", email),
                ("password", PASSWORD),
                ("invitation", &token),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.html);
    assert!(reply.has("must approve it"), "{}", reply.html);
    assert!(browser.session().is_none(), "a held sign-up is signed in");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM users WHERE lower(email) = $1 AND status = 'pending'",
            &[email]
        )
        .await,
        1
    );

    // The link allowed one sign-up.
    let other = "peter.partner@example.org";
    let reply = browser
        .submit(
            &format!("/signup?invitation={token}"),
            "signup",
            &[
                ("name", "Peter"),
                ("email", other),
                ("password", PASSWORD),
                ("invitation", &token),
            ],
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.html);
    assert!(reply.has("used as often as it allows"), "{}", reply.html);
    assert!(reply.form("signup").html.contains(&token), "the invitation is dropped");
    // Without a link, the academy says it takes invitations only.
    let reply = browser
        .submit(
            "/signup",
            "signup",
            &[("name", "Peter"), ("email", other), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.html);
    assert!(reply.has("by invitation only"), "{}", reply.html);
    assert_eq!(users_with_email(app, other).await, 0);
}

/// Signing up with an address of a claimed domain through the form: a page says to check the mail, nobody is
/// signed in and no account exists; the mail's link opens a page with one button (opening it changes
/// nothing), and pressing it creates the account in the domain's organization and signs in.
async fn a_claimed_domain_signs_up_once_the_address_is_confirmed(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    set_settings(&admin, json!({"signup": "domain", "signup_requires_approval": false})).await;
    let (_, orgs) = admin.get("/api/v1/orgs?limit=500").await;
    let org = orgs["items"][0]["id"].as_str().expect("an organization").to_owned();
    let (status, claim) = admin
        .put(
            &format!("/api/v1/orgs/{org}/domains/form-corp.com"),
            json!({"hold": false}),
        )
        .await;
    assert_eq!(status, 201, "{claim}");

    let mut browser = Browser::new(app, "acme");
    let email = "dana@form-corp.com";
    let reply = browser
        .submit(
            "/signup",
            "signup",
            &[("name", "Dana Domain"), ("email", email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.html);
    assert!(reply.has("we have sent a link"), "{}", reply.html);
    assert!(
        browser.session().is_none(),
        "signed in before the address was confirmed"
    );
    assert_eq!(users_with_email(app, email).await, 0);

    let mail = app.mail.wait_for(1, WAIT).await;
    let text = mail[0].text();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/signup/verify/"))
        .unwrap_or_else(|| panic!("no link in:\n{text}"));
    let path = &link[link.find("/signup/verify/").expect("the path")..];
    let page = browser.get(path).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert_eq!(
        users_with_email(app, email).await,
        0,
        "opening the link created the account"
    );

    let reply = browser.submit(path, "signup-verify", &[]).await;
    let to = redirected(&reply, "confirming the address");
    assert!(to.starts_with("/learn"), "after confirming: {to}");
    assert!(browser.session().is_some(), "confirming did not sign in");
    assert_eq!(users_with_email(app, email).await, 1);
    let (_, members) = admin.get(&format!("/api/v1/orgs/{org}/members?direct=true")).await;
    assert!(members.to_string().contains(email), "{members}");

    // The link works once: a second press shows why it does not any more.
    let again = browser.submit(path, "signup-verify", &[]).await;
    assert_eq!(again.status, 400, "{}", again.html);
    assert!(again.has("used already or has expired"), "{}", again.html);
}
