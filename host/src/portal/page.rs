//! What every portal page stands on: the [`Visit`] (academy, viewer, language, look), rendering with the
//! academy's theme, CSRF-checked form posts ([`Posted`]), and the API client pages use for their data.
//!
//! Pages hold no business logic of their own: they read and write through the REST API, dispatched
//! in-process with the viewer's own session, so a page can do exactly what the API lets that viewer do, with
//! the same checks, errors and audit records (and everything on a page is in the API by construction).

use super::branding::{Academy, Person};
use crate::auth::{Caller, CallerVia, SESSION_COOKIE};
use crate::state::AppState;
use crate::tenancy::{HostTenant, Tenant};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

/// The cookie holding a signed-out visitor's CSRF secret.
pub const CSRF_COOKIE: &str = "aula_csrf";
/// The form field (or query parameter, for file uploads) carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// One request to the portal: which academy, who is looking, in which language.
pub struct Visit {
    /// The academy of the request's host.
    pub tenant: Tenant,
    /// The signed-in user, if any.
    pub caller: Option<Caller>,
    /// Their organizations and language choice.
    pub person: Option<Arc<Person>>,
    /// The academy's branding.
    pub academy: Arc<Academy>,
    /// The page's language.
    pub locale: String,
    /// The languages pages of this academy can be shown in (allowed by the academy, spoken by the theme).
    pub languages: Vec<String>,
    /// The request's path and query (for `?next=` after signing in).
    pub path: String,
    /// A `done=` notice key from the query (a wording key shown as a success message).
    notice: Option<String>,
    csrf: String,
    new_csrf_cookie: Option<String>,
    session: Option<String>,
    origin_ok: bool,
    host: String,
    peer: Option<SocketAddr>,
    request_id: Option<String>,
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// A plain page for requests no academy answers (unknown host, suspended academy, broken theme).
pub fn plain_page(status: StatusCode, title: &str, message: &str) -> Response {
    let esc = |s: &str| handlebars::html_escape(s);
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{t}</title><link rel=\"stylesheet\" \
         href=\"/theme/css/portal.css\"></head><body class=\"plain\"><main class=\"plain-page\"><h1>{t}</h1>\
         <p>{m}</p></main></body></html>",
        t = esc(title),
        m = esc(message)
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let internal = |e: crate::error::ApiError| {
            tracing::error!(error = %e, "portal request failed");
            plain_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be shown. Please try again in a moment.",
            )
        };
        let tenant = match crate::auth::extract::host_tenant(parts, state)
            .await
            .map_err(internal)?
        {
            HostTenant::Tenant(t) => *t,
            HostTenant::Unknown | HostTenant::Platform => {
                return Err(plain_page(
                    StatusCode::NOT_FOUND,
                    "No academy here",
                    "This address does not belong to an academy. Check the address your organization gave you.",
                ));
            }
        };
        if tenant.suspended() {
            return Err(plain_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{} is unavailable", tenant.name),
                "This academy is suspended for now. Please contact your organization.",
            ));
        }
        let session = crate::auth::extract::cookie(parts, SESSION_COOKIE).map(str::to_owned);
        let caller = match &session {
            Some(_) => Caller::from_request_parts(parts, state)
                .await
                .ok()
                .filter(|c| c.tenant.id == tenant.id),
            None => None,
        };
        let db = state.db.tenant(&tenant.id);
        let branding = &state.portal.branding;
        let academy = branding.academy(&db).await.map_err(internal)?;
        let person = match &caller {
            Some(c) => Some(branding.person(&db, &c.user_id).await.map_err(internal)?),
            None => None,
        };
        // The academy's languages that pages can be shown in: the theme's, or those the academy words itself.
        let allowed: Vec<String> = tenant
            .settings
            .allowed_locales
            .iter()
            .filter(|l| {
                state.portal.locales.speaks(l)
                    || academy.settings.wording.contains_key(l.as_str())
                    || academy.settings.wording.contains_key(l.split('-').next().unwrap_or(l))
            })
            .cloned()
            .collect();
        let allowed = &allowed;
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let locale = person
            .as_ref()
            .and_then(|p| p.locale.as_deref())
            .and_then(|l| super::i18n::allowed(allowed, l))
            .or_else(|| {
                person
                    .as_ref()
                    .and_then(|p| academy.org_locale(&p.org_path))
                    .and_then(|l| super::i18n::allowed(allowed, l))
            })
            .or_else(|| super::i18n::from_accept_language(accept, allowed))
            .unwrap_or_else(|| tenant.settings.default_locale.clone());
        let host = crate::auth::extract::host(parts, state);
        let (csrf, new_csrf_cookie) = match (&caller, crate::auth::extract::cookie(parts, CSRF_COOKIE)) {
            (
                Some(Caller {
                    via: CallerVia::Session(hash),
                    ..
                }),
                _,
            ) => (digest(&["aula-csrf", hash]), None),
            (_, Some(secret)) if secret.len() >= 32 => (digest(&["aula-csrf", secret, &host]), None),
            _ => {
                let secret = crate::auth::random_secret();
                (digest(&["aula-csrf", &secret, &host]), Some(secret))
            }
        };
        // A cross-site form post names another origin; browsers send Origin on every POST.
        let origin_ok = match parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            None => true,
            Some(origin) => origin.split_once("://").map(|(_, h)| h) == Some(host.as_str()),
        };
        let notice = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "done")
                .map(|(_, v)| v.into_owned())
                .filter(|v| v.starts_with("done.") && state.portal.locales.has_key(v))
        });
        Ok(Visit {
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
            request_id: crate::auth::extract::request_id(&parts.headers),
            languages: allowed.clone(),
            tenant,
            caller,
            person,
            academy,
            locale,
            notice,
            csrf,
            new_csrf_cookie,
            session,
            origin_ok,
            host,
        })
    }
}

/// A page error: the API's refusal (shown on the page) or a redirect to sign in.
#[derive(Debug)]
pub enum PageError {
    /// The API said no; `status`, `code`, `message` and the `field` it names.
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The error code.
        code: String,
        /// The message (plain words, shown to the user).
        message: String,
        /// The field named, if any.
        field: Option<String>,
    },
    /// Not signed in (or the session ended): go to the sign-in page.
    SignIn(String),
}

impl PageError {
    /// The message to show.
    pub fn message(&self) -> &str {
        match self {
            PageError::Api { message, .. } => message,
            PageError::SignIn(_) => "Please sign in.",
        }
    }
    /// The error as a value for templates: `{message, field, code}`.
    pub fn to_value(&self) -> Value {
        match self {
            PageError::Api {
                code, message, field, ..
            } => json!({"code": code, "message": message, "field": field}),
            PageError::SignIn(_) => json!({"code": "unauthenticated", "message": self.message()}),
        }
    }
}

/// What an in-process API call answered.
pub struct ApiReply {
    /// The body (JSON; `null` when empty).
    pub body: Value,
    /// Response headers (`Set-Cookie` after signing in).
    pub headers: HeaderMap,
}

impl Visit {
    /// Whether a form with this token was sent from this academy's page in this visit.
    fn token_ok(&self, token: Option<&str>) -> bool {
        let token_ok = token.is_some_and(|t| constant_time_eq(t.as_bytes(), self.csrf.as_bytes()));
        self.origin_ok && token_ok && self.new_csrf_cookie.is_none()
    }

    /// The signed-in user, or a redirect to the sign-in page that comes back here.
    pub fn require_user(&self) -> Result<&Caller, PageError> {
        self.caller.as_ref().ok_or_else(|| PageError::SignIn(self.path.clone()))
    }

    /// Does the viewer hold this permission anywhere?
    pub fn can(&self, permission: &str) -> bool {
        self.caller
            .as_ref()
            .is_some_and(|c| c.grants.permission_names().contains(&permission))
    }

    /// Call the REST API as the viewer. `body` is sent as JSON.
    pub async fn api(
        &self,
        state: &AppState,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<ApiReply, PageError> {
        let body = match body {
            Some(v) => (
                Some("application/json"),
                Body::from(serde_json::to_vec(&v).unwrap_or_default()),
            ),
            None => (None, Body::empty()),
        };
        self.api_raw(state, method, path, body.0, body.1).await
    }

    /// GET from the API as the viewer.
    pub async fn get(&self, state: &AppState, path: &str) -> Result<Value, PageError> {
        Ok(self.api(state, Method::GET, path, None).await?.body)
    }

    /// Send a request with any body (a forwarded upload) to the API as the viewer.
    pub async fn api_raw(
        &self,
        state: &AppState,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<ApiReply, PageError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if let Some(session) = &self.session {
            req = req.header(header::COOKIE, format!("{SESSION_COOKIE}={session}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        if let Some(id) = &self.request_id {
            req = req.header("x-request-id", id);
        }
        let mut req = req.body(body).map_err(|e| PageError::Api {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request".into(),
            message: e.to_string(),
            field: None,
        })?;
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = state.portal.dispatch(req).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 256 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if status.is_success() {
            return Ok(ApiReply { body, headers });
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(PageError::SignIn(self.path.clone()));
        }
        let error = &body["error"];
        Err(PageError::Api {
            status,
            code: error["code"].as_str().unwrap_or("error").to_owned(),
            message: error["message"].as_str().unwrap_or("the request failed").to_owned(),
            field: error["field"].as_str().map(str::to_owned),
        })
    }

    /// Render a page of the academy's theme. `page` names it for branding (`catalog`, `login`, …);
    /// `template` is its template (`learner/catalog`); `data` is available as `page` in the template.
    pub async fn render(&self, state: &AppState, page: &'static str, template: &str, data: Value) -> Response {
        self.render_status(state, StatusCode::OK, page, template, data).await
    }

    /// [`render`](Self::render) with a status other than 200 (a form shown again with its error).
    pub async fn render_status(
        &self,
        state: &AppState,
        status: StatusCode,
        page: &'static str,
        template: &str,
        data: Value,
    ) -> Response {
        let portal = &state.portal;
        // Admin pages show what only admins may see: they take the academy's own branding, never an
        // organization's (whose CSS its managers write) nor a plugin's per-person look.
        let admin = template.starts_with("admin/");
        let person = match (&self.caller, &self.person) {
            (Some(c), Some(p)) if !admin => Some((c.user_id.as_str(), p.as_ref())),
            _ => None,
        };
        let look = match portal
            .branding
            .look(
                state,
                &portal.locales,
                &self.tenant,
                &self.academy,
                person,
                &self.locale,
                page,
            )
            .await
        {
            Ok(look) => look,
            Err(e) => {
                tracing::error!(error = %e, "branding could not be resolved");
                return plain_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Please try again.",
                );
            }
        };
        let db = state.db.tenant(&self.tenant.id);
        let registry = match portal.themes.tenant(&db, self.academy.theme_version).await {
            Ok(theme) => theme.registry.clone(),
            Err(e) => {
                tracing::error!(error = %e, tenant = %self.tenant.slug, "the academy's theme could not be loaded; default theme used");
                portal.themes.default_registry().clone()
            }
        };
        let nonce = digest(&[&crate::auth::random_secret()]);
        let user = self.caller.as_ref().map(|c| {
            let perms = c.grants.permission_names();
            json!({
                "id": c.user_id, "name": c.name, "email": c.email,
                "admin": perms.iter().any(|p| super::ADMIN_PERMISSIONS.contains(p)),
                "can": super::ADMIN_PERMISSIONS.iter().map(|p| (p.replace('.', "_"), Value::Bool(perms.contains(p)))).collect::<serde_json::Map<_, _>>(),
            })
        });
        let context = json!({
            "page": data,
            "brand": &*look,
            "csrf": self.csrf,
            "nonce": nonce,
            "locale": self.locale,
            "languages": self.languages,
            "user": user,
            "path": self.path,
            "notice": self.notice,
            "page_name": page,
        });
        let rendered = super::helpers::with_words(&look.words, || registry.render(template, &context));
        let html = match rendered {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template, error = %e, tenant = %self.tenant.slug, "a page failed to render");
                match super::helpers::with_words(&look.words, || {
                    portal.themes.default_registry().render(template, &context)
                }) {
                    Ok(html) => html,
                    Err(_) => {
                        return plain_page(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "Something went wrong",
                            "Please try again.",
                        );
                    }
                }
            }
        };
        let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
        let headers = response.headers_mut();
        let csp = if admin {
            super::admin_content_security_policy(&nonce)
        } else {
            super::content_security_policy(Some(&nonce))
        };
        if let Ok(csp) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        self.attach_cookie(state, headers);
        response
    }

    fn attach_cookie(&self, state: &AppState, headers: &mut HeaderMap) {
        if let Some(secret) = &self.new_csrf_cookie {
            let cookie = format!(
                "{CSRF_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict{}",
                if state.config.cookie_secure { "; Secure" } else { "" }
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }

    /// A page error as a response: sign-in redirect, or an error page in the academy's theme.
    pub async fn error(&self, state: &AppState, error: PageError) -> Response {
        match error {
            PageError::SignIn(next) => sign_in_redirect(&next),
            PageError::Api { status, .. } => {
                let data = json!({ "error": error.to_value(), "status": status.as_u16() });
                self.render_status(state, status, "error", "error", data).await
            }
        }
    }

    /// Redirect after a successful post (303), with a success notice (a `done.*` wording key).
    pub fn done(&self, to: &str, notice: &str) -> Response {
        let sep = if to.contains('?') { '&' } else { '?' };
        Redirect::to(&format!("{to}{sep}done={notice}")).into_response()
    }
}

/// To the sign-in page, coming back to `next` afterwards.
pub fn sign_in_redirect(next: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// A form post: the visit, the fields, and the raw body; the CSRF token is checked before a handler runs.
pub struct Posted {
    /// The visit.
    pub visit: Visit,
    /// The form's fields, in order (a field may repeat: checkboxes, multi-selects).
    pub fields: Vec<(String, String)>,
    /// The body as sent, with its content type (file uploads are forwarded as they are).
    pub raw: (Option<String>, axum::body::Bytes),
}

impl Posted {
    /// The first value of a field, or "".
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// A field's value, or `None` when absent or blank.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.field(name).trim()).filter(|v| !v.is_empty())
    }

    /// Every value of a repeated field.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let visit = Visit::from_request_parts(&mut parts, state).await?;
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // File uploads (plugins, theme files) are forwarded to API routes with their own, larger limits. They
        // carry the token in the query (their body is forwarded untouched), so the token, the origin and the
        // sign-in are checked before a byte of them is read: a visitor cannot make the host buffer one.
        let multipart = content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("multipart/form-data"));
        let query_token = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == CSRF_FIELD)
                .map(|(_, v)| v.into_owned())
        });
        if multipart && (visit.caller.is_none() || !visit.token_ok(query_token.as_deref())) {
            // The body stays unread, so the connection cannot carry another request: say so, or the client
            // would send its next request on a connection the server is closing.
            let mut refused = expired_form();
            refused
                .headers_mut()
                .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            return Err(refused);
        }
        let limit = if multipart {
            crate::config::plugins::MAX_UPLOAD_BYTES
        } else {
            state.config.max_body_bytes
        };
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            plain_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "What you sent is too large.",
            )
        })?;
        let form = content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let fields: Vec<(String, String)> = if form {
            form_urlencoded::parse(&bytes).into_owned().collect()
        } else {
            Vec::new()
        };
        let token = fields
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.as_str())
            .or(query_token.as_deref());
        if !visit.token_ok(token) {
            return Err(expired_form());
        }
        Ok(Posted {
            visit,
            fields,
            raw: (content_type, bytes),
        })
    }
}

/// The answer to a form that was not sent from this academy's page, or too long ago.
fn expired_form() -> Response {
    plain_page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form was not sent from this academy's page, or it is too old. Go back, reload the page and try again.",
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
