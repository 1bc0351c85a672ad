//! Hostile academies and hostile visitors: what one academy's admin, templates or visitors throw at the
//! host is refused or bounded, with a clear answer, and the host keeps serving everyone else.

mod common;

use common::{Body, TestApp, scenarios};
use serde_json::{Value, json};

scenarios!(
    template_circles_are_refused_and_pages_still_render,
    cross_site_writes_with_a_session_are_refused,
    malformed_requests_are_refused_before_the_store,
    an_upload_without_sign_in_and_token_is_refused_before_it_is_read,
);

scenarios!(with behind_a_proxy => a_burst_of_guesses_gets_no_more_checks_than_the_limit);

scenarios!(with two_requests_each => an_academys_requests_wait_in_their_own_share);

scenarios!(with one_request_each => a_page_and_its_api_calls_take_one_turn);

/// One request of an academy in progress at once.
fn one_request_each(config: &mut aula::config::Config) {
    config.max_requests_per_academy = 1;
    config.request_wait_ms = 200;
}

scenarios!(with callers_kept_a_minute => one_academys_writes_forget_only_its_own_cached_callers);

/// Authenticated callers reused for a minute, so the test sees what a write forgets and what it leaves.
fn callers_kept_a_minute(config: &mut aula::config::Config) {
    config.auth_cache_ms = 60_000;
}

scenarios!(with quick_headers => a_client_that_trickles_its_headers_is_disconnected);

scenarios!(with quick_requests => a_client_that_trickles_its_body_is_answered_busy);

/// Half a second for a request, its body included.
fn quick_requests(config: &mut aula::config::Config) {
    config.request_timeout_ms = 500;
}

/// A third of a second to send a request's headers.
fn quick_headers(config: &mut aula::config::Config) {
    config.header_read_timeout_ms = 300;
}

/// Two requests of one academy in progress at once, a fifth of a second's wait for a turn.
fn two_requests_each(config: &mut aula::config::Config) {
    config.max_requests_per_academy = 2;
    config.request_wait_ms = 200;
}

/// The host behind a proxy it trusts: the client address is the last `X-Forwarded-For` entry.
fn behind_a_proxy(config: &mut aula::config::Config) {
    config.trust_forwarded_host = true;
}

fn enc(v: &str) -> String {
    v.replace('/', "%2F")
}

/// A raw request with headers of the test's choosing (an `Origin`, a forwarded address).
async fn raw(
    app: &TestApp,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client");
    let mut req = http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("http://{}{path}", app.addr),
        )
        .header("host", host);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

/// A template that would include itself through another, or nest without end, is refused when it is
/// uploaded, with the circle named; what was stored before keeps rendering, and so does every other academy.
async fn template_circles_are_refused_and_pages_still_render(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let put = |path: &str, source: String| {
        let admin = admin.clone();
        let path = enc(path);
        async move {
            admin
                .send(
                    "PUT",
                    &format!("/api/v1/theme/files/{path}"),
                    Body::Raw {
                        content_type: "application/octet-stream".into(),
                        bytes: source.into_bytes(),
                    },
                )
                .await
        }
    };
    let home = put(
        "templates/home.hbs",
        "{{#> layout}}<h1 id=\"own-home\">Home of {{brand.name}}</h1>{{/layout}}".into(),
    )
    .await;
    assert_eq!(home.status, 201, "{}", home.text);
    let before = app.snapshot().await;

    // The layout including the home page, which wraps itself in the layout: a circle through two uploads.
    let circle = put("templates/layout.hbs", "<main>{{> home}}</main>".into()).await;
    assert_eq!(
        (circle.status.as_u16(), circle.code(), circle.field()),
        (422, "template_refused", "content"),
        "{}",
        circle.text
    );
    let problems = circle.body["error"]["details"]["problems"].to_string();
    assert!(problems.contains("layout") && problems.contains("home"), "{problems}");
    // A template that includes itself directly.
    let itself = put("templates/layout.hbs", "{{#if brand}}{{> layout}}{{/if}}".into()).await;
    assert_eq!(itself.code(), "template_refused", "{}", itself.text);
    // A partial computed at render time could name anything, itself included.
    let dynamic = put("templates/layout.hbs", "{{> (lookup this \"page\")}}".into()).await;
    assert_eq!(dynamic.code(), "template_refused", "{}", dynamic.text);
    // Blocks nested thousands deep: refused as too deep, not compiled into a stack overflow.
    let deep = format!("{}x{}", "{{#if brand}}".repeat(5_000), "{{/if}}".repeat(5_000));
    let deep = put("templates/layout.hbs", deep).await;
    assert_eq!((deep.status.as_u16(), deep.field()), (400, "content"), "{}", deep.text);
    before.assert_unchanged(&app.snapshot().await, "refused templates");

    // The stored home page still renders, and the neighbour's portal is untouched.
    for (slug, needle) in [("acme", "own-home"), ("globex", "<html")] {
        let (status, page, _) = raw(app, &app.tenant_host(slug), "GET", "/", &[], None).await;
        assert_eq!(status, 200, "{slug}: {page}");
        assert!(page.as_str().unwrap_or_default().contains(needle), "{slug}: {page}");
    }
}

/// A change sent with a session cookie from another site's page is refused (the browser says where it came
/// from); the same change from the academy's own pages, or with an API token from anywhere, goes through.
async fn cross_site_writes_with_a_session_are_refused(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let admin = app.login("acme", "admin@acme.test").await;
    let cookie = format!("aula_session={}", admin.session().expect("a session"));
    let body = |email: &str| json!({"email": email, "name": "Cross Site"});
    for (headers, what) in [
        (vec![("origin", "https://evil.test")], "a foreign Origin"),
        (vec![("sec-fetch-site", "cross-site")], "Sec-Fetch-Site: cross-site"),
        (vec![("origin", "http://globex.localhost")], "another academy's Origin"),
    ] {
        let mut all = headers.clone();
        all.push(("cookie", cookie.as_str()));
        let (status, reply, _) = raw(
            app,
            &acme,
            "POST",
            "/api/v1/users",
            &all,
            Some(body("cross.site@acme.test")),
        )
        .await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (403, Some("cross_site_request")),
            "{what}: {reply}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE email = $1", &["cross.site@acme.test"])
            .await,
        0
    );
    // Reads are not changes.
    let (status, _, _) = raw(
        app,
        &acme,
        "GET",
        "/api/v1/users",
        &[("cookie", &cookie), ("origin", "https://evil.test")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    // From the academy's own origin.
    let own = format!("http://{acme}");
    let (status, reply, _) = raw(
        app,
        &acme,
        "POST",
        "/api/v1/users",
        &[("cookie", &cookie), ("origin", &own), ("sec-fetch-site", "same-origin")],
        Some(body("same.site@acme.test")),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    // A token is no ambient credential: a script elsewhere holding it is its owner's business.
    let (_, token) = admin.create_token("scripts").await;
    let bearer = format!("Bearer {token}");
    let (status, reply, _) = raw(
        app,
        &acme,
        "POST",
        "/api/v1/users",
        &[("authorization", &bearer), ("origin", "https://tools.example")],
        Some(body("token.made@acme.test")),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
}

/// Requests that no client means are refused with a precise 4xx before anything reads or writes the store:
/// ids that are no ids, control characters in paths, bodies that are no JSON object or carry NUL characters,
/// bodies of another type. An organization with branding overrides can be deleted.
async fn malformed_requests_are_refused_before_the_store(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let before = app.snapshot().await;
    for (method, path, status, code) in [
        ("GET", "/api/v1/users/not-a-uuid", 404, "not_found"),
        ("GET", "/api/v1/users/%00", 400, "invalid_path"),
        ("DELETE", "/api/v1/orgs/%1B%5B2J", 400, "invalid_path"),
        ("GET", "/api/v1/orgs/1%20OR%201=1", 404, "not_found"),
        ("GET", "/api/v1/users?q=a%00b", 400, "invalid_parameter"),
    ] {
        let reply = admin.send(method, path, Body::None).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (status, code),
            "{method} {path}: {}",
            reply.text
        );
    }
    for (body, content_type, status, code, field) in [
        (
            &br#"["someone@acme.test", "Some One"]"#[..],
            "application/json",
            400,
            "malformed_json",
            "",
        ),
        (br#""just a string""#, "application/json", 400, "malformed_json", ""),
        (
            br#"{"email": "nul@acme.test", "name": "a\u0000b"}"#,
            "application/json",
            400,
            "invalid_field",
            "name",
        ),
        (
            br#"{"email": "nul@acme.test", "name": "Nul", "profile": {"x\u0000": 1}}"#,
            "application/json",
            400,
            "invalid_field",
            "profile",
        ),
        (
            br#"{"email": "plain@acme.test", "name": "Plain"}"#,
            "text/plain",
            415,
            "unsupported_media_type",
            "",
        ),
    ] {
        let reply = admin
            .send(
                "POST",
                "/api/v1/users",
                Body::Raw {
                    content_type: content_type.into(),
                    bytes: body.to_vec(),
                },
            )
            .await;
        assert_eq!(
            (reply.status.as_u16(), reply.code(), reply.field()),
            (status, code, field),
            "{}: {}",
            String::from_utf8_lossy(body),
            reply.text
        );
    }
    before.assert_unchanged(&app.snapshot().await, "refused requests");

    // A literal backslash-u-0000 in text is six characters, not a NUL: it is stored.
    let (status, created) = admin
        .post(
            "/api/v1/users",
            json!({"email": "escaped@acme.test", "name": "Not \\u0000 a NUL"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "Not \\u0000 a NUL");
    let (status, _) = admin
        .delete(&format!("/api/v1/users/{}", created["id"].as_str().unwrap()))
        .await;
    assert!(status.is_success());

    // An organization with its own branding is deleted with its overrides.
    let (status, org) = admin.post("/api/v1/orgs", json!({"name": "Short-lived"})).await;
    assert_eq!(status, 201, "{org}");
    let id = org["id"].as_str().expect("id").to_owned();
    let (status, reply) = admin
        .put(
            &format!("/api/v1/orgs/{id}/branding"),
            json!({"name": "Short-lived brand", "colors": {"accent": "#123456"}}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = admin.delete(&format!("/api/v1/orgs/{id}")).await;
    assert!(status.is_success(), "{status} {reply}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM org_branding WHERE org_id = $1", &[&id])
            .await,
        0
    );
}

/// Forty wrong passwords for one account sent at once from one address: exactly the limit of them are
/// checked (401), the rest are refused unchecked (429 with `Retry-After`). The account is not locked for
/// everyone: the right password from another address signs in. One address guessing many accounts is
/// stopped too, and an address the client claims in `X-Forwarded-For` counts for nothing.
async fn a_burst_of_guesses_gets_no_more_checks_than_the_limit(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let password = aula::demo::DEMO_PASSWORD;
    let attempt = |email: String, password: String, from: String| {
        let acme = acme.clone();
        async move {
            raw(
                app,
                &acme,
                "POST",
                "/api/v1/auth/login",
                &[("x-forwarded-for", &from)],
                Some(json!({"email": email, "password": password})),
            )
            .await
        }
    };
    let burst: Vec<_> = (0..40)
        .map(|i| {
            attempt(
                "nina.north@acme.test".into(),
                format!("wrong-guess-{i:04}"),
                "203.0.113.7".into(),
            )
        })
        .collect();
    let answers = futures::future::join_all(burst).await;
    let checked = answers.iter().filter(|(s, _, _)| *s == 401).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(checked, 5, "exactly the limit was checked: {answers:?}");
    assert_eq!(refused.len(), 35, "{answers:?}");
    assert!(refused.iter().all(|(_, _, h)| h.contains_key("retry-after")));

    // The right password from the same address waits out the window; a client claiming another address in
    // front of the proxy's entry is still that address.
    for from in ["203.0.113.7", "198.51.100.50, 203.0.113.7"] {
        let (status, reply, _) = attempt("nina.north@acme.test".into(), password.into(), from.into()).await;
        assert_eq!(status, 429, "{from}: {reply}");
    }
    // From elsewhere the owner signs in, and that forgives nothing of the guesser's address.
    let (status, reply, _) = attempt("nina.north@acme.test".into(), password.into(), "198.51.100.9".into()).await;
    assert_eq!(status, 200, "{reply}");

    // One address trying many accounts: twenty failures, then refused for every account.
    for i in 0..20 {
        let (status, reply, _) = attempt(
            format!("nobody.{i}@acme.test"),
            "wrong-guess".into(),
            "192.0.2.44".into(),
        )
        .await;
        assert_eq!(status, 401, "attempt {i}: {reply}");
    }
    let (status, reply, _) = attempt("noah.north@acme.test".into(), password.into(), "192.0.2.44".into()).await;
    assert_eq!(status, 429, "{reply}");
    let (status, reply, _) = attempt("noah.north@acme.test".into(), password.into(), "192.0.2.45".into()).await;
    assert_eq!(status, 200, "{reply}");
}

/// Requests of one academy take turns in a share of their own: with acme's two turns held by requests whose
/// bodies never come, acme's next request is answered `429` with `Retry-After` after the wait, while globex,
/// the platform and the probes answer at once; once the held requests go, acme answers again.
async fn an_academys_requests_wait_in_their_own_share(app: &TestApp) {
    use tokio::io::AsyncWriteExt;
    let acme = app.tenant_host("acme");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut socket = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
        let head = format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: {acme}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
        );
        socket.write_all(head.as_bytes()).await.expect("write");
        held.push(socket);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let started = std::time::Instant::now();
    let (status, reply, headers) = raw(app, &acme, "GET", "/login", &[], None).await;
    assert_eq!(status, 429, "{reply}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(200),
        "answered before the wait"
    );
    assert_eq!(reply["error"]["code"], "too_many_attempts", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("requests"),
        "{reply}"
    );
    assert!(headers.contains_key("retry-after"), "{headers:?}");

    // Another academy, the platform and the probes are not held up.
    let (globex, platform) = (app.tenant_host("globex"), app.platform_host());
    for (host, path) in [(globex.as_str(), "/login"), (platform.as_str(), "/api/openapi.json")] {
        let started = std::time::Instant::now();
        let (status, reply, _) = raw(app, host, "GET", path, &[], None).await;
        assert_eq!(status, 200, "{host}{path}: {reply}");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(200),
            "{host}{path} waited"
        );
    }
    let (status, _, _) = raw(app, &acme, "GET", "/healthz", &[], None).await;
    assert_eq!(status, 200);

    drop(held);
    let mut answered = 0;
    for _ in 0..50 {
        let (status, _, _) = raw(app, &acme, "GET", "/login", &[], None).await;
        if status == 200 {
            answered += 1;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(answered, 1, "acme answers again once its requests are gone");
}

/// A client that sends part of a request's headers and then nothing is disconnected once the header time is
/// up, so such connections cannot pile up; a client that sends its request at once is answered.
async fn a_client_that_trickles_its_headers_is_disconnected(app: &TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let acme = app.tenant_host("acme");
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    socket
        .write_all(format!("GET /login HTTP/1.1\r\nHost: {acme}\r\nX-Slow: ").as_bytes())
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was still open after 10 s");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "closed before the header time was up"
    );
    let text = String::from_utf8_lossy(&rest);
    assert!(
        !text.contains("200 OK"),
        "a request without its whole head was answered: {text}"
    );

    let (status, _, _) = raw(app, &acme, "GET", "/login", &[], None).await;
    assert_eq!(status, 200);
}

/// A portal page that calls the API in-process takes one turn, not two: with a share of one request, a
/// signed-in learner's page (which reads the API for its enrollments) still renders.
async fn a_page_and_its_api_calls_take_one_turn(app: &TestApp) {
    let learner = app.login("acme", "admin@acme.test").await;
    let reply = learner.send("GET", "/learn", Body::None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Send a request head and the first bytes of a body that never comes; the answer's status line, if one
/// arrives within ten seconds, and how long it took.
async fn head_and_a_trickle(app: &TestApp, head: &str, first: &[u8]) -> (String, std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    socket.write_all(head.as_bytes()).await.expect("write the head");
    socket.write_all(first).await.expect("write the first bytes");
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("no answer within 10 s while the body was still owed")
        .expect("read the answer");
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    (text.lines().next().unwrap_or_default().to_owned(), started.elapsed())
}

/// A portal upload announces 50 MB from a visitor who is not signed in, or signed in without the form's
/// token: it is refused at once, before the host reads (and holds) any of the body.
async fn an_upload_without_sign_in_and_token_is_refused_before_it_is_read(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let admin = app.login("acme", "admin@acme.test").await;
    let session = admin.session().expect("a session").to_owned();
    for (who, cookie) in [
        ("a visitor", String::new()),
        ("the admin without the form's token", session),
    ] {
        let cookie = if cookie.is_empty() {
            String::new()
        } else {
            format!("Cookie: aula_session={cookie}\r\n")
        };
        let head = format!(
            "POST /admin/branding/files?_csrf=forged HTTP/1.1\r\nHost: {acme}\r\nOrigin: http://{acme}\r\n{cookie}\
             Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 50000000\r\n\r\n"
        );
        let (status, _) = head_and_a_trickle(app, &head, b"--x\r\n").await;
        assert!(status.contains(" 403 "), "{who}: {status}");
    }
}

/// A request whose body trickles in (or never comes) is stopped when its time is up and answered 503 with
/// Retry-After, and the academy's next request is served.
async fn a_client_that_trickles_its_body_is_answered_busy(app: &TestApp) {
    let acme = app.tenant_host("acme");
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {acme}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let (status, took) = head_and_a_trickle(app, &head, br#"{"email": "#).await;
    assert!(status.contains(" 503 "), "{status}");
    assert!(
        took >= std::time::Duration::from_millis(400),
        "answered before the time was up: {took:?}"
    );
    let (status, _, _) = raw(app, &acme, "GET", "/api/v1/catalog", &[], None).await;
    assert_eq!(status, 401, "the next request is served");
}

/// A write forgets what this replica cached of its own academy only. Shown with a token revoked behind the
/// host's back (as another replica would): globex's writes leave acme's cached caller in place (a busy
/// academy cannot keep emptying the caches the others' requests depend on); acme's next write forgets it.
async fn one_academys_writes_forget_only_its_own_cached_callers(app: &TestApp) {
    let acme_admin = app.login("acme", "admin@acme.test").await;
    let (token_id, secret) = acme_admin.create_token("cached").await;
    let acme = app.with_token("acme", &secret);
    assert_eq!(acme.get("/api/v1/me").await.0, 200, "the caller is now cached");
    app.exec("UPDATE api_tokens SET revoked_at = 1 WHERE id = $1", &[&token_id])
        .await;

    let globex = app.login("globex", "admin@globex.test").await;
    for i in 0..5 {
        let (status, body) = globex
            .post("/api/v1/tags", serde_json::json!({"name": format!("busy-{i}")}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(
        acme.get("/api/v1/me").await.0,
        200,
        "globex's writes left acme's cached caller in place"
    );

    let (status, body) = acme_admin
        .post("/api/v1/tags", serde_json::json!({"name": "acme-write"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        acme.get("/api/v1/me").await.0,
        401,
        "acme's own write forgot its cached callers: the revoked token is refused"
    );
}
