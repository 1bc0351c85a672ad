//! The branding admin pages: the academy's look with a live preview and its theme files
//! (`/admin/branding`), and an organization's overrides (`/admin/branding/orgs/{id}`).
//!
//! The preview needs no script: the form's "Preview" button posts the unsaved settings into the `preview`
//! frame (`formtarget`), which shows the page the API renders with them.

use super::branding::{BrandingSettings, COLORS};
use super::page::{PageError, Posted, Visit};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/branding", get(academy_form).post(save_academy))
        .route("/admin/branding/preview", get(preview_saved).post(preview_draft))
        .route("/admin/branding/files", post(upload_file))
        .route("/admin/branding/files/delete", post(delete_file))
        .route("/admin/branding/orgs/{id}", get(org_form).post(save_org))
        .route("/admin/branding/orgs/{id}/delete", post(delete_org))
}

/// The form's fields as a template shows them.
fn form_values(s: &BrandingSettings) -> Value {
    let colors: Vec<Value> = COLORS
        .iter()
        .map(|c| json!({"name": c, "value": s.colors.get(*c).cloned().unwrap_or_default()}))
        .collect();
    json!({
        "name": s.name, "logo_url": s.logo_url, "colors": colors, "font_family": s.font_family,
        "heading_font": s.heading_font, "custom_css": s.custom_css, "landing": s.landing,
        "default_locale": s.default_locale,
        "wording": if s.wording.is_empty() { String::new() } else { serde_json::to_string_pretty(&s.wording).unwrap_or_default() },
    })
}

/// Settings from the posted form; a malformed wording object is named as the `wording` field.
fn from_form(form: &Posted) -> Result<BrandingSettings, PageError> {
    let opt = |name: &str| form.opt(name).map(str::to_owned);
    let wording = match form.opt("wording") {
        None => Default::default(),
        Some(text) => serde_json::from_str(text).map_err(|e| PageError::Api {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field".into(),
            message: format!("wording must be a JSON object of languages to {{key: text}}: {e}"),
            field: Some("wording".into()),
        })?,
    };
    Ok(BrandingSettings {
        name: opt("name"),
        logo_url: opt("logo_url"),
        colors: COLORS
            .iter()
            .filter_map(|c| form.opt(&format!("color_{c}")).map(|v| (c.to_string(), v.to_owned())))
            .collect(),
        font_family: opt("font_family"),
        heading_font: opt("heading_font"),
        custom_css: opt("custom_css"),
        wording,
        landing: opt("landing"),
        default_locale: opt("default_locale"),
    })
}

async fn academy_page(state: &AppState, visit: &Visit, values: Value, error: Option<&PageError>) -> Response {
    let saved = match visit.get(state, "/api/v1/branding").await {
        Ok(v) => v,
        Err(e) => return visit.error(state, e).await,
    };
    let files = visit.get(state, "/api/v1/theme/files").await.unwrap_or(Value::Null);
    let orgs = visit.get(state, "/api/v1/orgs?limit=200").await.unwrap_or(Value::Null);
    let values = if values.is_null() {
        let settings: BrandingSettings = serde_json::from_value(saved["settings"].clone()).unwrap_or_default();
        form_values(&settings)
    } else {
        values
    };
    let wording_keys = visit
        .get(state, "/api/v1/branding/wording")
        .await
        .unwrap_or(Value::Null);
    let data = json!({
        "form": values,
        "files": files,
        "orgs": orgs["items"],
        "updated_at": saved["updated_at"],
        "error": error.map(PageError::to_value),
        "wording_keys": wording_keys["keys"].as_object().map(|k| k.keys().cloned().collect::<Vec<_>>()),
    });
    let status = match error {
        Some(PageError::Api { status, .. }) => *status,
        _ => StatusCode::OK,
    };
    visit
        .render_status(state, status, "admin-branding", "admin/branding", data)
        .await
}

async fn academy_form(State(state): State<AppState>, visit: Visit) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    academy_page(&state, &visit, Value::Null, None).await
}

async fn save_academy(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    let result = match from_form(&form) {
        Ok(settings) => visit
            .api(&state, Method::PUT, "/api/v1/branding", Some(json!(settings)))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => visit.done("/admin/branding", "done.branding_saved"),
        Err(e @ PageError::Api { .. }) => {
            let typed = from_form(&form).map(|s| form_values(&s)).unwrap_or_else(
                |_| json!({"name": form.field("name"), "wording": form.field("wording"), "colors": []}),
            );
            academy_page(&state, visit, typed, Some(&e)).await
        }
        Err(e) => visit.error(&state, e).await,
    }
}

#[derive(Deserialize)]
struct PreviewQuery {
    page: Option<String>,
}

/// Pass the API's preview through (with its own CSP, whose nonce allows its style element).
async fn preview_response(state: &AppState, visit: &Visit, settings: Value, page: Option<&str>) -> Response {
    let page = match page {
        Some("home") => "home",
        Some("login") => "login",
        _ => "catalog",
    };
    let path = format!("/api/v1/branding/preview?page={page}");
    match visit.api(state, Method::POST, &path, Some(settings)).await {
        Ok(reply) => {
            let html = reply.body.as_str().unwrap_or_default().to_owned();
            let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
            if let Some(csp) = reply.headers.get(header::CONTENT_SECURITY_POLICY) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, csp.clone());
            }
            response
        }
        Err(e) => {
            let message = handlebars::html_escape(e.message());
            let mut response = (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                format!("<!doctype html><html><body><p role=\"alert\">{message}</p></body></html>"),
            )
                .into_response();
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'"),
            );
            response
        }
    }
}

async fn preview_saved(State(state): State<AppState>, visit: Visit, Query(q): Query<PreviewQuery>) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    let saved = match visit.get(&state, "/api/v1/branding").await {
        Ok(v) => v,
        Err(e) => return visit.error(&state, e).await,
    };
    preview_response(&state, &visit, saved["settings"].clone(), q.page.as_deref()).await
}

async fn preview_draft(State(state): State<AppState>, form: Posted) -> Response {
    match from_form(&form) {
        Ok(mut settings) => {
            settings.default_locale = None;
            preview_response(&state, &form.visit, json!(settings), form.opt("preview_page")).await
        }
        Err(e) => preview_response(&state, &form.visit, json!({"name": e.message()}), None).await,
    }
}

/// An upload posts `path` and `file` as multipart; the file goes to the API as the body of its path.
async fn upload_file(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    let (content_type, bytes) = form.raw.clone();
    let request = axum::http::Request::builder()
        .header(header::CONTENT_TYPE, content_type.unwrap_or_default())
        .body(Body::from(bytes))
        .unwrap_or_default();
    let mut path = String::new();
    let mut file: Option<axum::body::Bytes> = None;
    if let Ok(mut multipart) = Multipart::from_request(request, &()).await {
        while let Ok(Some(field)) = multipart.next_field().await {
            match field.name() {
                Some("path") => path = field.text().await.unwrap_or_default().trim().to_owned(),
                Some("file") => file = field.bytes().await.ok(),
                _ => {}
            }
        }
    }
    let result = match file.filter(|f| !f.is_empty()) {
        None => Err(PageError::Api {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field".into(),
            message: "choose a file to upload".into(),
            field: Some("file".into()),
        }),
        Some(bytes) => {
            let encoded: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
            visit
                .api_raw(
                    &state,
                    Method::PUT,
                    &format!("/api/v1/theme/files/{encoded}"),
                    Some("application/octet-stream"),
                    Body::from(bytes),
                )
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => visit.done("/admin/branding", "done.theme_file_saved"),
        Err(e @ PageError::Api { .. }) => academy_page(&state, visit, Value::Null, Some(&e)).await,
        Err(e) => visit.error(&state, e).await,
    }
}

async fn delete_file(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    let encoded: String = form_urlencoded::byte_serialize(form.field("path").as_bytes()).collect();
    match visit
        .api(&state, Method::DELETE, &format!("/api/v1/theme/files/{encoded}"), None)
        .await
    {
        Ok(_) => visit.done("/admin/branding", "done.theme_file_deleted"),
        Err(e) => visit.error(&state, e).await,
    }
}

async fn org_page(state: &AppState, visit: &Visit, id: &str, values: Value, error: Option<&PageError>) -> Response {
    let org = match visit.get(state, &format!("/api/v1/orgs/{id}")).await {
        Ok(o) => o,
        Err(e) => return visit.error(state, e).await,
    };
    let values = if values.is_null() {
        match visit.get(state, &format!("/api/v1/orgs/{id}/branding")).await {
            Ok(saved) => form_values(&serde_json::from_value(saved).unwrap_or_default()),
            Err(e) => return visit.error(state, e).await,
        }
    } else {
        values
    };
    let data = json!({ "org": org, "form": values, "error": error.map(PageError::to_value) });
    let status = match error {
        Some(PageError::Api { status, .. }) => *status,
        _ => StatusCode::OK,
    };
    visit
        .render_status(state, status, "admin-branding", "admin/org_branding", data)
        .await
}

async fn org_form(State(state): State<AppState>, visit: Visit, Path(id): Path<String>) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    org_page(&state, &visit, &id, Value::Null, None).await
}

async fn save_org(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    let result = match from_form(&form) {
        Ok(settings) => visit
            .api(
                &state,
                Method::PUT,
                &format!("/api/v1/orgs/{id}/branding"),
                Some(json!(settings)),
            )
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => visit.done(&format!("/admin/branding/orgs/{id}"), "done.branding_saved"),
        Err(e @ PageError::Api { .. }) => {
            let typed = from_form(&form).map(|s| form_values(&s)).unwrap_or(Value::Null);
            org_page(&state, visit, &id, typed, Some(&e)).await
        }
        Err(e) => visit.error(&state, e).await,
    }
}

async fn delete_org(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    match visit
        .api(&state, Method::DELETE, &format!("/api/v1/orgs/{id}/branding"), None)
        .await
    {
        Ok(_)
        | Err(PageError::Api {
            status: StatusCode::NOT_FOUND,
            ..
        }) => visit.done(&format!("/admin/branding/orgs/{id}"), "done.branding_reset"),
        Err(e) => visit.error(&state, e).await,
    }
}
