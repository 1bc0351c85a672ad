//! A page rendered with unsaved branding, for the branding form's live preview.

use super::branding::{Academy, BrandingSettings, static_look};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Sample courses for the catalog preview (the academy's real catalog may be empty or private).
fn sample_catalog(words: &serde_json::Map<String, Value>) -> Value {
    let text = |k: &str| words.get(k).and_then(Value::as_str).unwrap_or(k).to_owned();
    json!({
        "courses": [
            {"id": "preview-1", "code": "PREVIEW-101", "title": text("preview.course_one"), "summary": text("preview.summary"),
             "language": "en", "estimated_minutes": 30, "enrollment_status": "active", "progress": 40, "request_pending": false},
            {"id": "preview-2", "code": "PREVIEW-102", "title": text("preview.course_two"), "summary": text("preview.summary"),
             "language": "en", "estimated_minutes": 45, "enrollment_status": null, "progress": null, "request_pending": false}
        ],
        "q": "", "language": "", "languages": ["en"], "count": 2, "filtered": false,
    })
}

/// Render `page` (`home`, `login` or `catalog`) in the academy's theme with `draft` as its branding, for the
/// caller (their language; organizations' overrides are left out so the academy-wide look shows).
/// Returns the HTML and the nonce its style element needs.
pub async fn render(
    state: &AppState,
    caller: &Caller,
    draft: BrandingSettings,
    page: &'static str,
) -> Result<(String, String), ApiError> {
    let portal = &state.portal;
    let stored = portal.branding.academy(caller.db()).await?;
    let academy = Academy {
        settings: draft,
        orgs: HashMap::new(),
        theme_version: stored.theme_version,
        stamp: 0,
    };
    let person = portal.branding.person(caller.db(), &caller.user_id).await?;
    let locale = person
        .locale
        .clone()
        .unwrap_or_else(|| caller.tenant.settings.default_locale.clone());
    let look = static_look(&portal.locales, &caller.tenant, &academy, &[], &locale);
    let registry = portal
        .themes
        .tenant(caller.db(), academy.theme_version)
        .await?
        .registry
        .clone();
    let nonce = crate::auth::random_secret();
    let (template, data) = match page {
        "home" => ("home", json!({})),
        "login" => ("account/login", json!({"next": "/learn", "email": ""})),
        _ => ("learner/catalog", sample_catalog(&look.words)),
    };
    let context = json!({
        "page": data,
        "brand": &look,
        "csrf": "",
        "nonce": nonce,
        "locale": locale,
        "languages": caller.tenant.settings.allowed_locales,
        "user": if page == "catalog" { json!({"id": "", "name": caller.name, "email": caller.email, "admin": false, "can": {}}) } else { Value::Null },
        "path": "/",
        "notice": null,
        "page_name": page,
        "preview": true,
    });
    let html = super::helpers::with_words(&look.words, || registry.render(template, &context))
        .map_err(|e| ApiError::invalid("template", format!("the page does not render: {e}")))?;
    Ok((html, nonce))
}
