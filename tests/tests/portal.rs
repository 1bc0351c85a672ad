//! The branded portal over HTTP: hosts pick the academy and its look, theme files stay inside their academy,
//! branding is validated, inherited and contained, pages speak the right language, branding plugins apply and
//! fail open, and every page carries its security headers and CSRF protection.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

scenarios!(
    hosts_pick_the_academy_and_its_look,
    theme_files_stay_inside_their_academy,
    branding_is_validated_inherited_and_contained,
    languages_follow_the_learner_then_org_then_browser,
    branding_plugins_apply_and_fail_open,
    pages_carry_security_headers_and_refuse_forged_forms,
    the_branding_page_saves_previews_and_uploads,
);

/// A page as a browser gets it.
struct Page {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    html: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
    /// The value of the first `name="_csrf"` input.
    fn csrf(&self) -> String {
        let at = self
            .html
            .find("name=\"_csrf\" value=\"")
            .expect("the page has a CSRF field")
            + 20;
        self.html[at..].split('"').next().unwrap_or_default().to_owned()
    }
    /// The `:root` declarations of the page's style element.
    fn root_style(&self) -> &str {
        let at = self.html.find(":root {").expect("the page has its style element");
        self.html[at..].split('}').next().unwrap_or_default()
    }
}

/// GET or POST a page on `host` with extra headers (cookies, Accept-Language, Origin, …).
async fn page(
    app: &TestApp,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&[(&str, &str)]>,
) -> Page {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let mut req = http
        .request(method.parse().expect("method"), format!("http://{}{path}", app.addr))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(form) = form {
        let body: String = form_body(form);
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
    }
    let response = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {host}: {e}"));
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        html: response.text().await.unwrap_or_default(),
    }
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn session(client: &Client) -> String {
    format!("aula_session={}", client.session().expect("a signed-in client"))
}

async fn hosts_pick_the_academy_and_its_look(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let globex = app.tenant_host("globex");

    let nowhere = page(app, "GET", &format!("nowhere.localhost:{}", app.port()), "/", &[], None).await;
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.html.contains("No academy here"), "{}", nowhere.html);
    let platform = page(app, "GET", &app.platform_host(), "/login", &[], None).await;
    assert_eq!(platform.status, 404, "the platform's own host has no portal");

    let a = page(app, "GET", &acme, "/login", &[], None).await;
    let g = page(app, "GET", &globex, "/login", &[], None).await;
    assert_eq!((a.status, g.status), (StatusCode::OK, StatusCode::OK));
    assert!(a.html.contains("<span>Acme Academy</span>"), "{}", a.html);
    assert!(g.html.contains("<span>Globex Partner Training</span>"), "{}", g.html);
    assert!(a.root_style().contains("--accent: #0b7285;"), "{}", a.root_style());
    assert!(g.root_style().contains("--accent: #5f3dc4;"), "{}", g.root_style());
    assert!(
        g.html.contains("src=\"/theme/img/globex.svg\""),
        "globex shows its uploaded logo"
    );
    assert!(
        g.html.contains(">Curriculum</a>") || g.html.contains("Sign in"),
        "globex wording applies"
    );
    let custom = page(
        app,
        "GET",
        &format!("learn.globex.test:{}", app.port()),
        "/login",
        &[],
        None,
    )
    .await;
    assert!(
        custom.html.contains("Globex Partner Training"),
        "the custom domain is globex"
    );

    // Theme files: the academy's own, never another's; the default theme is everyone's.
    let logo = page(app, "GET", &globex, "/theme/img/globex.svg", &[], None).await;
    assert_eq!(logo.status, 200);
    assert_eq!(logo.header("content-type"), "image/svg+xml");
    assert!(logo.header("content-security-policy").contains("sandbox"));
    let elsewhere = page(app, "GET", &acme, "/theme/img/globex.svg", &[], None).await;
    assert_eq!(elsewhere.status, 404, "acme cannot reach globex's files");
    for host in [&acme, &globex] {
        let css = page(app, "GET", host, "/theme/css/portal.css", &[], None).await;
        assert_eq!(css.status, 200);
        assert!(css.header("content-type").starts_with("text/css"));
        let etag = css.header("etag").to_owned();
        let again = page(
            app,
            "GET",
            host,
            "/theme/css/portal.css",
            &[("if-none-match", &etag)],
            None,
        )
        .await;
        assert_eq!(again.status, 304, "unchanged files are revalidated, not resent");
    }
    for path in [
        "/theme/../Cargo.toml",
        "/theme/%2e%2e/%2e%2e/Cargo.toml",
        "/theme/css/portal.exe",
    ] {
        let p = page(app, "GET", &acme, path, &[], None).await;
        assert_eq!(p.status, 404, "{path}");
    }

    // Signed in, the catalog's wording differs too.
    let acme_admin = app.login("acme", "admin@acme.test").await;
    let globex_admin = app.login("globex", "admin@globex.test").await;
    let ac = page(
        app,
        "GET",
        &acme,
        "/catalog",
        &[("cookie", &session(&acme_admin))],
        None,
    )
    .await;
    let gc = page(
        app,
        "GET",
        &globex,
        "/catalog",
        &[("cookie", &session(&globex_admin))],
        None,
    )
    .await;
    assert!(ac.html.contains("<h1>Acme course catalog</h1>"), "{}", ac.html);
    assert!(gc.html.contains("<h1>Partner curriculum</h1>"), "{}", gc.html);

    // A suspended academy says so, plainly.
    let operator = app.client_on(&app.platform_host());
    let reply = operator.sign_in_operator().await;
    let operator = operator.with_token(reply.body["token"].as_str().expect("operator token"));
    let (status, _) = operator
        .patch("/api/v1/platform/tenants/globex", json!({"status": "suspended"}))
        .await;
    assert_eq!(status, 200);
    let suspended = page(app, "GET", &globex, "/login", &[], None).await;
    assert_eq!(suspended.status, 503);
    assert!(
        suspended.html.contains("Globex Partner Training is unavailable"),
        "{}",
        suspended.html
    );
}

async fn theme_files_stay_inside_their_academy(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let globex = app.tenant_host("globex");
    let admin = app.login("acme", "admin@acme.test").await;
    let put = |path: &str, bytes: &[u8]| {
        let admin = admin.clone();
        let path = enc(path);
        let bytes = bytes.to_vec();
        async move {
            admin
                .send(
                    "PUT",
                    &format!("/api/v1/theme/files/{path}"),
                    Body::Raw {
                        content_type: "application/octet-stream".into(),
                        bytes,
                    },
                )
                .await
        }
    };
    let before = app.snapshot().await;
    for bad in [
        "../globex.css",
        "/etc/passwd",
        "assets/../../x.css",
        "assets/./x.css",
        "templates/../../../etc/passwd.hbs",
        "templates/nope.hbs",
        "assets/x.exe",
        "C:/x.css",
    ] {
        let reply = put(bad, b"body{}").await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
        assert_eq!(reply.field(), "path", "{bad}");
    }
    let broken = put("templates/home.hbs", b"{{#if}}").await;
    assert_eq!(
        (broken.status.as_u16(), broken.field()),
        (400, "content"),
        "{}",
        broken.text
    );
    let empty = put("assets/css/x.css", b"").await;
    assert_eq!((empty.status.as_u16(), empty.field()), (400, "content"));
    before.assert_unchanged(&app.snapshot().await, "refused theme uploads");
    assert_eq!(
        admin.get("/api/v1/theme/files").await.1,
        json!([]),
        "nothing was stored"
    );

    let css = put("assets/css/extra.css", b"body { outline: 1px solid red; }").await;
    assert_eq!(css.status, 201, "{}", css.text);
    assert_eq!(css.body["url"], "/theme/css/extra.css");
    let home = put(
        "templates/home.hbs",
        b"{{#> layout}}<h1 id=\"custom-home\">Custom home of {{brand.name}}</h1>{{/layout}}",
    )
    .await;
    assert_eq!(home.status, 201, "{}", home.text);
    let again = put(
        "templates/home.hbs",
        b"{{#> layout}}<h1 id=\"custom-home\">Custom home of {{brand.name}}</h1>{{/layout}}",
    )
    .await;
    assert_eq!(again.status, 200, "replacing a file answers 200");

    let served = page(app, "GET", &acme, "/theme/css/extra.css", &[], None).await;
    assert_eq!(served.status, 200);
    assert!(served.html.contains("outline"));
    assert_eq!(
        page(app, "GET", &globex, "/theme/css/extra.css", &[], None)
            .await
            .status,
        404
    );
    let acme_home = page(app, "GET", &acme, "/", &[], None).await;
    assert!(
        acme_home.html.contains("Custom home of Acme Academy"),
        "{}",
        acme_home.html
    );
    let globex_home = page(app, "GET", &globex, "/", &[], None).await;
    assert!(
        !globex_home.html.contains("custom-home"),
        "globex keeps its own home page"
    );

    // Another academy's admin sees none of it, and cannot delete it.
    let globex_admin = app.login("globex", "admin@globex.test").await;
    let (status, files) = globex_admin.get("/api/v1/theme/files").await;
    assert_eq!(status, 200);
    assert!(
        files
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["path"] != "assets/css/extra.css"),
        "{files}"
    );
    let (status, _) = globex_admin
        .delete(&format!("/api/v1/theme/files/{}", enc("templates/home.hbs")))
        .await;
    assert_eq!(status, 404);
    // A manager is no academy admin.
    let manager = app.login("acme", "emea.manager@acme.test").await;
    assert_eq!(manager.get("/api/v1/theme/files").await.0, 403);

    // Removing the template brings the default back.
    let (status, _) = admin
        .delete(&format!("/api/v1/theme/files/{}", enc("templates/home.hbs")))
        .await;
    assert_eq!(status, 204);
    let acme_home = page(app, "GET", &acme, "/", &[], None).await;
    assert!(!acme_home.html.contains("custom-home"));
    assert!(
        acme_home.html.contains("Everything Acme people learn"),
        "{}",
        acme_home.html
    );
}

async fn branding_is_validated_inherited_and_contained(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;
    let (_, saved) = admin.get("/api/v1/branding").await;

    for (body, field) in [
        (
            json!({"colors": {"accent": "red;} body{display:none"}}),
            "colors.accent",
        ),
        (json!({"colors": {"sparkle": "#fff"}}), "colors.sparkle"),
        (json!({"wording": {"*": {"no.such.key": "x"}}}), "wording.*.no.such.key"),
        (json!({"font_family": "Arial; } body { color: red"}), "font_family"),
        (json!({"logo_url": "javascript:alert(1)"}), "logo_url"),
        (json!({"name": ""}), "name"),
    ] {
        let reply = admin.send("PUT", "/api/v1/branding", Body::Json(body.clone())).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.field(), field, "{body}");
    }
    assert_eq!(
        admin.get("/api/v1/branding").await.1,
        saved,
        "refused branding changed nothing"
    );

    // Custom CSS cannot leave its style element.
    let (status, _) = admin
        .put(
            "/api/v1/branding",
            json!({"colors": {"accent": "#123abc"}, "custom_css": "a{} </style><script>alert(1)</script><style>"}),
        )
        .await;
    assert_eq!(status, 200);
    let login = page(app, "GET", &acme, "/login", &[], None).await;
    assert!(login.root_style().contains("--accent: #123abc;"));
    assert!(login.html.contains("\\3c /style>"), "{}", login.html);
    assert!(!login.html.contains("<script"), "{}", login.html);

    // Organizations inherit unless they set; sub-organizations inherit from them.
    let eng = dir.org("Engineering");
    let (status, _) = admin
        .put(
            &format!("/api/v1/orgs/{eng}/branding"),
            json!({"colors": {"accent": "#2b8a3e"}, "wording": {"*": {"catalog.title": "Engineering courses"}}}),
        )
        .await;
    assert_eq!(status, 200);
    let engineer = dir
        .users_below("Engineering")
        .into_iter()
        .find(|u| u["email"].as_str().is_some_and(|e| !e.contains("manager")))
        .expect("someone in Engineering")["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let seller = dir
        .users_below("Sales")
        .into_iter()
        .find(|u| u["email"].as_str().is_some_and(|e| !e.contains("manager")))
        .expect("someone in Sales")["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_engineer = app.login("acme", &engineer).await;
    let as_seller = app.login("acme", &seller).await;
    let e = page(
        app,
        "GET",
        &acme,
        "/catalog",
        &[("cookie", &session(&as_engineer))],
        None,
    )
    .await;
    let s = page(app, "GET", &acme, "/catalog", &[("cookie", &session(&as_seller))], None).await;
    assert!(
        e.root_style().contains("--accent: #2b8a3e;"),
        "{engineer}: {}",
        e.root_style()
    );
    assert!(e.html.contains("Engineering courses"), "{engineer}");
    assert!(
        s.root_style().contains("--accent: #123abc;"),
        "{seller}: {}",
        s.root_style()
    );
    assert!(!s.html.contains("Engineering courses"));

    // A manager brands their own part, and nothing outside it.
    let manager = app.login("acme", "emea.manager@acme.test").await;
    let (status, _) = manager
        .put(
            &format!("/api/v1/orgs/{eng}/branding"),
            json!({"colors": {"accent": "#000000"}}),
        )
        .await;
    assert_eq!(status, 404, "Engineering is outside the EMEA manager's reach");
    let emea = dir.org("Sales EMEA");
    let (status, body) = manager
        .put(
            &format!("/api/v1/orgs/{emea}/branding"),
            json!({"colors": {"accent": "#e03131"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = manager.put("/api/v1/branding", json!({})).await;
    assert_eq!(status, 403, "the academy's branding is the admins'");

    // The live preview renders unsaved settings and saves nothing.
    let before = admin.get("/api/v1/branding").await.1;
    let preview = admin
        .send(
            "POST",
            "/api/v1/branding/preview?page=catalog",
            Body::Json(json!({"colors": {"accent": "#fab005"}, "name": "Preview Academy"})),
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert!(preview.text.contains("--accent: #fab005;"));
    assert!(preview.text.contains("Preview Academy"));
    let bad = admin
        .send(
            "POST",
            "/api/v1/branding/preview",
            Body::Json(json!({"colors": {"accent": "url(x)"}})),
        )
        .await;
    assert_eq!((bad.status.as_u16(), bad.field()), (400, "colors.accent"));
    assert_eq!(admin.get("/api/v1/branding").await.1, before);
}

async fn languages_follow_the_learner_then_org_then_browser(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let admin = app.login("acme", "admin@acme.test").await;
    let dir = Directory::load(&admin).await;

    let de = page(
        app,
        "GET",
        &acme,
        "/login",
        &[("accept-language", "de-CH, de;q=0.9, en;q=0.5")],
        None,
    )
    .await;
    assert!(de.html.contains("<html lang=\"de\">"), "{}", &de.html[..200]);
    assert!(de.html.contains("<h1>Anmelden</h1>"));
    let fr = page(app, "GET", &acme, "/login", &[("accept-language", "fr")], None).await;
    assert!(
        fr.html.contains("<html lang=\"en\">"),
        "French is not an acme language: the academy's default"
    );
    // globex allows French, but neither the theme nor globex words it: no page claims French.
    let gfr = page(
        app,
        "GET",
        &app.tenant_host("globex"),
        "/login",
        &[("accept-language", "fr")],
        None,
    )
    .await;
    assert!(gfr.html.contains("<html lang=\"en\">"));

    // A learner's organization default beats the browser; their own choice beats both.
    let seller = dir
        .users_below("Sales EMEA")
        .into_iter()
        .find(|u| u["locale"].is_null() || u["locale"] == "en")
        .cloned()
        .or_else(|| dir.users_below("Sales EMEA").first().cloned().cloned())
        .expect("someone in Sales EMEA");
    let seller_id = seller["id"].as_str().unwrap();
    let seller_email = seller["email"].as_str().unwrap();
    let (status, _) = admin
        .patch(&format!("/api/v1/users/{seller_id}"), json!({"locale": null}))
        .await;
    assert_eq!(status, 200);
    let emea = dir.org("Sales EMEA");
    let (status, _) = admin
        .put(
            &format!("/api/v1/orgs/{emea}/branding"),
            json!({"default_locale": "de"}),
        )
        .await;
    assert_eq!(status, 200);
    let learner = app.login("acme", seller_email).await;
    let cookie = session(&learner);
    let org_default = page(
        app,
        "GET",
        &acme,
        "/catalog",
        &[("cookie", &cookie), ("accept-language", "en")],
        None,
    )
    .await;
    assert!(
        org_default.html.contains("<html lang=\"de\">"),
        "{}",
        &org_default.html[..300]
    );
    assert!(
        org_default.html.contains("Acme-Kurskatalog"),
        "the academy's German wording"
    );
    let (status, _) = admin
        .patch(&format!("/api/v1/users/{seller_id}"), json!({"locale": "en"}))
        .await;
    assert_eq!(status, 200);
    let chosen = page(
        app,
        "GET",
        &acme,
        "/catalog",
        &[("cookie", &cookie), ("accept-language", "de")],
        None,
    )
    .await;
    assert!(
        chosen.html.contains("<html lang=\"en\">"),
        "the learner's own choice wins"
    );
    assert!(chosen.html.contains("Acme course catalog"));
    // An organization default must be one of the academy's languages.
    let reply = admin
        .send(
            "PUT",
            &format!("/api/v1/orgs/{emea}/branding"),
            Body::Json(json!({"default_locale": "ja"})),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.field()), (400, "default_locale"));
}

/// Deploy a test guest from tests/guests with everything it asks for granted; returns the plugin id.
async fn deploy_guest(admin: &Client, dir: &str, crate_name: &str) -> String {
    let manifest_path = std::path::Path::new(env!("AULA_GUESTS_DIR"))
        .join(dir)
        .join("aula-plugin.toml");
    let manifest = std::fs::read_to_string(&manifest_path).expect("guest manifest");
    let component = std::fs::read(std::path::Path::new(env!("AULA_WASM_DIR")).join(format!("{crate_name}.wasm")))
        .expect("guest component");
    let form = Form::new()
        .text("manifest", &manifest)
        .file("component", "plugin.wasm", &component)
        .text("grant", "requested");
    let reply = admin.post_form("/api/v1/plugins", &form).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.body["plugin"]["id"].as_str().expect("plugin id").to_owned();
    let (status, body) = admin.post(&format!("/api/v1/plugins/{id}/activate"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    id
}

async fn branding_plugins_apply_and_fail_open(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let admin = app.login("acme", "admin@acme.test").await;
    let id = deploy_guest(&admin, "brand-switch", "brand_switch").await;

    let home = page(app, "GET", &acme, "/", &[], None).await;
    assert_eq!(home.status, 200);
    assert!(home.html.contains("Branded by plugin (en, 0 orgs)"), "{}", home.html);
    assert!(
        home.root_style().contains("--accent: #e8590c;"),
        "{}",
        home.root_style()
    );
    assert!(
        !home.root_style().contains("display:none"),
        "a color that would break out is refused"
    );
    assert!(home.html.contains("<strong>Plugin banner</strong>"));
    assert!(!home.html.contains("<script"), "blocks are sanitized");

    // The plugin sees the learner's organizations.
    let learner = app.login("acme", "nora.north@acme.test").await;
    let cookie = session(&learner);
    let signed_in = page(app, "GET", &acme, "/", &[("cookie", &cookie)], None).await;
    assert!(
        signed_in.html.contains("Branded by plugin (en, 1 orgs)"),
        "{}",
        signed_in.html
    );

    // On the catalog it traps: the page renders with the static theme and the fault is recorded.
    let catalog = page(app, "GET", &acme, "/catalog", &[("cookie", &cookie)], None).await;
    assert_eq!(catalog.status, 200);
    assert!(
        catalog.root_style().contains("--accent: #0b7285;"),
        "{}",
        catalog.root_style()
    );
    assert!(catalog.html.contains("Acme course catalog"));
    let (status, faults) = admin.get(&format!("/api/v1/plugins/{id}/faults")).await;
    assert_eq!(status, 200);
    let items = faults["items"]
        .as_array()
        .or(faults.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(!items.is_empty(), "the trap is recorded: {faults}");
    assert!(items.iter().any(|f| f["hook"] == "brand"), "{faults}");
}

async fn pages_carry_security_headers_and_refuse_forged_forms(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let login = page(app, "GET", &acme, "/login", &[], None).await;
    let csp = login.header("content-security-policy").to_owned();
    assert!(csp.contains("script-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a style nonce");
    assert!(login.html.contains(&format!("<style nonce=\"{nonce}\">")));
    assert_eq!(login.header("x-frame-options"), "SAMEORIGIN");
    assert_eq!(login.header("referrer-policy"), "same-origin");
    assert_eq!(login.header("x-content-type-options"), "nosniff");
    let csrf_cookie = login
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("aula_csrf="))
        .expect("a CSRF cookie for the signed-out form");
    assert!(
        csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"),
        "{csrf_cookie}"
    );
    let cookie = csrf_cookie.split(';').next().unwrap().to_owned();
    let token = login.csrf();
    let password = aula::demo::DEMO_PASSWORD;

    let fields = |token: &str| {
        vec![
            ("_csrf", token.to_owned()),
            ("email", "nora.north@acme.test".to_owned()),
            ("password", password.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>, headers: Vec<(&'static str, String)>| async move {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        page(app, "POST", &app.tenant_host("acme"), "/login", &h, Some(&f)).await
    };
    let sessions_before = app.count("SELECT COUNT(*) FROM sessions", &[]).await;
    // No token, a wrong token, no cookie, a foreign origin: refused, and nobody is signed in.
    let missing = post(fields("")[1..].to_vec(), vec![("cookie", cookie.clone())]).await;
    assert_eq!(missing.status, 403);
    let wrong = post(fields("0000"), vec![("cookie", cookie.clone())]).await;
    assert_eq!(wrong.status, 403);
    let no_cookie = post(fields(&token), vec![]).await;
    assert_eq!(no_cookie.status, 403);
    let foreign = post(
        fields(&token),
        vec![("cookie", cookie.clone()), ("origin", "http://evil.test".into())],
    )
    .await;
    assert_eq!(foreign.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, sessions_before);

    let ok = post(
        fields(&token),
        vec![("cookie", cookie.clone()), ("origin", format!("http://{acme}"))],
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.html);
    assert_eq!(ok.header("location"), "/learn");
    let session_cookie = ok
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("aula_session="))
        .expect("signed in");
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"),
        "{session_cookie}"
    );

    // An offered `next` that leaves the academy is not followed.
    let evil_next = {
        let mut f = fields(&token);
        f.push(("next", "//evil.test/".into()));
        post(f, vec![("cookie", cookie.clone())]).await
    };
    assert_eq!(evil_next.header("location"), "/learn");

    // Signed in, forms carry a token bound to the session: the signed-out one no longer counts.
    let session = session_cookie.split(';').next().unwrap().to_owned();
    let both = format!("{cookie}; {session}");
    let logout = page(
        app,
        "POST",
        &acme,
        "/logout",
        &[("cookie", &both)],
        Some(&[("_csrf", &token)]),
    )
    .await;
    assert_eq!(logout.status, 403, "a signed-out token does not sign out a session");
    let learn = page(app, "GET", &acme, "/catalog", &[("cookie", &both)], None).await;
    let session_token = learn.csrf();
    assert_ne!(session_token, token);
    let logout = page(
        app,
        "POST",
        &acme,
        "/logout",
        &[("cookie", &both)],
        Some(&[("_csrf", &session_token)]),
    )
    .await;
    assert_eq!(logout.status, 303);
    let after = page(app, "GET", &acme, "/catalog", &[("cookie", &both)], None).await;
    assert_eq!(after.status, 303, "signed out: the catalog asks to sign in");
    assert!(after.header("location").starts_with("/login?next="));
}

async fn the_branding_page_saves_previews_and_uploads(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let admin = app.login("acme", "admin@acme.test").await;
    let cookie = session(&admin);
    let form = page(app, "GET", &acme, "/admin/branding", &[("cookie", &cookie)], None).await;
    assert_eq!(form.status, 200, "{}", form.html);
    assert!(form.html.contains("id=\"branding\""));
    assert!(
        form.html.contains("value=\"#0b7285\""),
        "the saved accent is in the form"
    );
    assert!(form.html.contains("<iframe name=\"preview\""));
    let token = form.csrf();
    let fields = |accent: &'static str| {
        vec![
            ("_csrf", token.clone()),
            ("name", "Acme Learning".to_owned()),
            ("color_accent", accent.to_owned()),
            ("wording", r#"{"*": {"catalog.title": "Acme library"}}"#.to_owned()),
        ]
    };
    let post = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let cookie = cookie.clone();
        let acme = acme.clone();
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            page(app, "POST", &acme, path, &[("cookie", &cookie)], Some(&f)).await
        }
    };

    // The preview shows the unsaved settings and stores nothing.
    let before = admin.get("/api/v1/branding").await.1;
    let preview = post("/admin/branding/preview", fields("#7048e8")).await;
    assert_eq!(preview.status, 200, "{}", preview.html);
    assert!(preview.root_style().contains("--accent: #7048e8;"));
    assert!(preview.html.contains("Acme library") && preview.html.contains("Acme Learning"));
    let nonce = preview
        .header("content-security-policy")
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("the preview has its own nonce")
        .to_owned();
    assert!(preview.html.contains(&format!("<style nonce=\"{nonce}\">")));
    assert_eq!(admin.get("/api/v1/branding").await.1, before);

    // A bad color comes back on the form, marked, and changes nothing.
    let bad = post("/admin/branding", fields("red;}")).await;
    assert_eq!(bad.status, 400, "{}", bad.html);
    assert!(
        bad.html.contains("name=\"color_accent\" value=\"red;}\""),
        "what was typed is kept"
    );
    assert!(bad.html.contains("aria-invalid=\"true\""), "the field is marked");
    assert_eq!(admin.get("/api/v1/branding").await.1, before);

    // Saving changes the academy's pages.
    let saved = post("/admin/branding", fields("#7048e8")).await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let catalog = page(app, "GET", &acme, "/catalog", &[("cookie", &cookie)], None).await;
    assert!(catalog.root_style().contains("--accent: #7048e8;"));
    assert!(catalog.html.contains("<h1>Acme library</h1>"));
    assert!(catalog.html.contains("<span>Acme Learning</span>"));
    let (_, audit) = admin.get("/api/v1/audit?limit=5").await;
    assert!(audit.to_string().contains("branding.update"), "{audit}");

    // A theme file uploaded through the page is served; a path that leaves the theme is refused.
    let upload = |path: &str| {
        Form::new()
            .text("path", path)
            .file("file", "logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")
            .body()
    };
    let cookie_client = admin.clone();
    let sent = cookie_client
        .send(
            "POST",
            &format!("/admin/branding/files?_csrf={token}"),
            upload("assets/img/acme.svg"),
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.text);
    assert_eq!(
        page(app, "GET", &acme, "/theme/img/acme.svg", &[], None).await.status,
        200
    );
    let refused = cookie_client
        .send(
            "POST",
            &format!("/admin/branding/files?_csrf={token}"),
            upload("../../etc/x.svg"),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let unsigned = cookie_client
        .send("POST", "/admin/branding/files", upload("assets/img/other.svg"))
        .await;
    assert_eq!(unsigned.status, 403, "uploads need the token too");
    let (_, files) = admin.get("/api/v1/theme/files").await;
    assert_eq!(files.as_array().map(Vec::len), Some(1), "{files}");

    // A learner may not open it.
    let learner = app.login("acme", "nora.north@acme.test").await;
    let denied = page(
        app,
        "GET",
        &acme,
        "/admin/branding",
        &[("cookie", &session(&learner))],
        None,
    )
    .await;
    assert_eq!(denied.status, 403);
}
