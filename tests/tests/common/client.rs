//! A client bound to one host and one credential, so a test reads as "Elena, signed in on acme, asks …".

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// How the client proves who it is.
#[derive(Debug, Clone)]
enum Credential {
    None,
    /// The value of the `aula_session` cookie.
    Session(String),
    /// An API token, sent as `Authorization: Bearer …`.
    Token(String),
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    None,
    /// JSON, with `Content-Type: application/json`.
    Json(Value),
    /// Bytes exactly as given (malformed JSON, another content type).
    Raw { content_type: String, bytes: Vec<u8> },
}

/// A `multipart/form-data` body (plugin uploads), built by hand so that every byte sent is the test's.
#[derive(Debug, Clone, Default)]
pub struct Form {
    parts: Vec<(String, Option<String>, Vec<u8>)>,
}

impl Form {
    /// Boundary between parts; it never occurs in the text or wasm the suite sends.
    const BOUNDARY: &'static str = "aula-test-boundary-5f0c2b7e9d";

    /// An empty form.
    pub fn new() -> Form {
        Form::default()
    }

    /// Add a text field.
    pub fn text(mut self, name: &str, value: &str) -> Form {
        self.parts.push((name.to_owned(), None, value.as_bytes().to_vec()));
        self
    }

    /// Add a file field (`application/octet-stream`).
    pub fn file(mut self, name: &str, filename: &str, bytes: &[u8]) -> Form {
        self.parts
            .push((name.to_owned(), Some(filename.to_owned()), bytes.to_vec()));
        self
    }

    /// The request body.
    pub fn body(&self) -> Body {
        let mut bytes = Vec::new();
        for (name, filename, value) in &self.parts {
            bytes.extend_from_slice(format!("--{}\r\n", Form::BOUNDARY).as_bytes());
            match filename {
                Some(file) => bytes.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => bytes
                    .extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(format!("--{}--\r\n", Form::BOUNDARY).as_bytes());
        Body::Raw {
            content_type: format!("multipart/form-data; boundary={}", Form::BOUNDARY),
            bytes,
        }
    }
}

/// An answer: status, the body as JSON (or as a JSON string when it is not JSON), and the headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// The body parsed as JSON; a non-JSON body is `Value::String(text)`, an empty one `Value::Null`.
    pub body: Value,
    /// The body as sent, as text.
    pub text: String,
    /// The body as sent, byte for byte (an archive, a file).
    pub bytes: Vec<u8>,
    /// Headers.
    pub headers: HeaderMap,
}

impl Reply {
    /// `error.code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.field` of an error answer.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The session cookie a sign-in set.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                let first = c.split(';').next()?.trim();
                let value = first.strip_prefix("aula_session=")?;
                (!value.is_empty()).then(|| value.to_owned())
            })
    }
}

/// A client bound to a host and a credential.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    credential: Credential,
}

impl Client {
    pub(super) fn new(http: reqwest::Client, base: String, host: String) -> Client {
        Client {
            http,
            base,
            host,
            credential: Credential::None,
        }
    }

    /// The same client presenting a session cookie.
    pub fn with_session(&self, cookie: &str) -> Client {
        Client {
            credential: Credential::Session(cookie.to_owned()),
            ..self.clone()
        }
    }

    /// The same client presenting an API token.
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            credential: Credential::Token(token.to_owned()),
            ..self.clone()
        }
    }

    /// The same credential sent to another host.
    pub fn on_host(&self, host: &str) -> Client {
        Client {
            host: host.to_owned(),
            ..self.clone()
        }
    }

    /// The session cookie's value, for a client signed in with a session (a browser's cookie, for page tests).
    pub fn session(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session(c) => Some(c),
            _ => None,
        }
    }

    /// The host this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A short description for assertion messages.
    pub fn describe(&self) -> String {
        let how = match &self.credential {
            Credential::None => "no credential",
            Credential::Session(_) => "a session",
            Credential::Token(_) => "a token",
        };
        format!("{how} on {}", self.host)
    }

    /// GET → (status, JSON).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send("GET", path, Body::None).await.pair()
    }

    /// POST a JSON body → (status, JSON).
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", path, Body::Json(body)).await.pair()
    }

    /// PATCH a JSON body → (status, JSON).
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send("PATCH", path, Body::Json(body)).await.pair()
    }

    /// PUT a JSON body → (status, JSON).
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send("PUT", path, Body::Json(body)).await.pair()
    }

    /// POST a multipart form → the whole answer.
    pub async fn post_form(&self, path: &str, form: &Form) -> Reply {
        self.send("POST", path, form.body()).await
    }

    /// DELETE → (status, JSON).
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send("DELETE", path, Body::None).await.pair()
    }

    /// Any request, with the whole answer. Every answer of the host must carry an `x-request-id`; this is
    /// checked here, for every request of the suite.
    pub async fn send(&self, method: &str, path: &str, body: Body) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(reqwest::header::HOST, &self.host);
        match &self.credential {
            Credential::None => {}
            Credential::Session(c) => req = req.header(reqwest::header::COOKIE, format!("aula_session={c}")),
            Credential::Token(t) => req = req.header(reqwest::header::AUTHORIZATION, format!("Bearer {t}")),
        }
        match body {
            Body::None => {}
            Body::Json(v) => req = req.json(&v),
            Body::Raw { content_type, bytes } => {
                req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes)
            }
        }
        let response = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.host));
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        if std::env::var_os("AULA_TEST_TRACE").is_some() {
            eprintln!(
                "{method} {path} on {} ({}) -> {status} {}",
                self.host,
                self.describe(),
                text.chars().take(300).collect::<String>()
            );
        }
        assert!(
            headers.get("x-request-id").is_some_and(|v| !v.is_empty()),
            "{method} {path} on {} answered {status} without an x-request-id",
            self.host
        );
        Reply {
            status,
            body,
            text,
            bytes,
            headers,
        }
    }

    /// POST /api/v1/auth/login.
    pub async fn sign_in(&self, email: &str, password: &str) -> Reply {
        self.send(
            "POST",
            "/api/v1/auth/login",
            Body::Json(json!({"email": email, "password": password})),
        )
        .await
    }

    /// POST /api/v1/platform/auth/login as the demo's platform operator.
    pub async fn sign_in_operator(&self) -> Reply {
        let body = json!({"email": "operator@aula.test", "password": aula::demo::DEMO_PASSWORD});
        self.send("POST", "/api/v1/platform/auth/login", Body::Json(body)).await
    }

    /// Create an API token for the signed-in user → (token id, secret).
    pub async fn create_token(&self, name: &str) -> (String, String) {
        let (status, body) = self.post("/api/v1/tokens", json!({"name": name})).await;
        assert_eq!(status, 201, "token creation failed: {body}");
        (
            body["id"].as_str().expect("token id").to_owned(),
            body["token"].as_str().expect("token secret").to_owned(),
        )
    }

    /// Follow a paginated list from `path` through every `next` link; returns every item and the number of
    /// pages. Panics on a non-200 page or a `next` that does not move on.
    pub async fn get_all_pages(&self, path: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(path.to_owned());
        while let Some(page) = next.take() {
            let (status, body) = self.get(&page).await;
            assert_eq!(status, 200, "GET {page}: {body}");
            pages += 1;
            assert!(pages < 1000, "pagination of {path} does not end");
            items.extend(body["items"].as_array().expect("a page has items").iter().cloned());
            next = body["next"].as_str().map(str::to_owned);
            if let Some(n) = &next {
                assert_ne!(n, &page, "next link points at the same page");
            }
        }
        (items, pages)
    }
}

impl Reply {
    fn pair(self) -> (StatusCode, Value) {
        (self.status, self.body)
    }
}
