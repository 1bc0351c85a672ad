//! `/admin/sso`: the academy's identity providers (single sign-on), each with the redirect URIs to register at
//! the provider and a form to change it; a form to add one. Below them, provisioning over SCIM: the academy's
//! SCIM endpoint and tokens, a new token shown once, and revoking.

use super::{Failed, gate, items, seg, typed};
use crate::portal::page::{Posted, Visit};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/sso", get(page).post(create))
        .route("/admin/sso/{id}", post(update))
        .route("/admin/sso/{id}/delete", post(remove))
        .route("/admin/sso/scim-tokens", post(create_scim_token))
        .route("/admin/sso/scim-tokens/{id}/revoke", post(revoke_scim_token))
}

async fn page(State(state): State<AppState>, visit: Visit) -> Response {
    show(&state, &visit, None, None).await
}

/// The page; `new_token` is a SCIM token just made, shown this once.
async fn show(state: &AppState, visit: &Visit, failed: Option<Failed>, new_token: Option<Value>) -> Response {
    if let Err(r) = gate(state, visit, &["tenant.manage"]).await {
        return r;
    }
    let scim_tokens = match visit.get(state, "/api/v1/scim-tokens").await {
        Ok(list) => list,
        Err(e) => return visit.error(state, e).await,
    };
    match visit.get(state, "/api/v1/identity-providers").await {
        Ok(list) => {
            let providers: Vec<Value> = items(&list)
                .into_iter()
                .map(|mut p| {
                    p["scopes_text"] = json!(words(&p["scopes"], " "));
                    p["domains_text"] = json!(words(&p["email_domains"], ", "));
                    p
                })
                .collect();
            let mut data = json!({
                "providers": providers,
                "values": {"password_signin": "on", "create_users": "on"},
                "scim_tokens": scim_tokens,
                "scim_endpoint": format!("{}/scim/v2", crate::tenancy::academy_url(&state.config, &visit.tenant)),
                "new_scim_token": new_token,
            });
            let status = Failed::put(failed, &mut data);
            visit.render_status(state, status, "admin-sso", "admin/sso", data).await
        }
        Err(e) => visit.error(state, e).await,
    }
}

fn words(list: &Value, sep: &str) -> String {
    list.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(sep))
        .unwrap_or_default()
}

/// A list typed into one field, split at commas and spaces.
fn list(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The mapping from the form's fields: organizations and tags from a claim each, profile fields as
/// `key = claim` lines, the language, the manager.
fn mapping(form: &Posted) -> Value {
    let mut m = Map::new();
    let org_claim = form.field("org_claim").trim();
    if !org_claim.is_empty() {
        let by = match form.field("org_by") {
            "external_id" => "external_id",
            _ => "path",
        };
        m.insert(
            "orgs".into(),
            json!({"claim": org_claim, "by": by, "create": form.field("org_create") == "on"}),
        );
    }
    let tags_claim = form.field("tags_claim").trim();
    if !tags_claim.is_empty() {
        m.insert(
            "tags".into(),
            json!({"claim": tags_claim, "create": form.field("tags_create") == "on"}),
        );
    }
    let fields: Map<String, Value> = form
        .field("fields")
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), json!(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    if !fields.is_empty() {
        m.insert("fields".into(), Value::Object(fields));
    }
    m.insert("locale".into(), json!(form.field("locale") == "on"));
    let manager = form.field("manager_claim").trim();
    if !manager.is_empty() {
        m.insert("manager".into(), json!(manager));
    }
    Value::Object(m)
}

async fn create(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["tenant.manage"]).await {
        return r;
    }
    let body = json!({
        "name": form.field("name"),
        "issuer": form.field("issuer").trim(),
        "client_id": form.field("client_id").trim(),
        "client_secret": form.field("client_secret"),
        "scopes": list(form.field("scopes")),
        "email_domains": list(form.field("email_domains")),
        "password_signin": form.field("password_signin") == "on",
        "create_users": form.field("create_users") == "on",
        "mapping": mapping(&form),
    });
    match visit
        .api(&state, Method::POST, "/api/v1/identity-providers", Some(body))
        .await
    {
        Ok(_) => visit.done("/admin/sso", "done.admin_sso_created"),
        Err(e) => match Failed::api(e, "new-provider", typed(&form)) {
            Ok(f) => show(&state, visit, Some(f), None).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn update(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["tenant.manage"]).await {
        return r;
    }
    let mut body = json!({
        "email_domains": list(form.field("email_domains")),
        "scopes": list(form.field("scopes")),
        "password_signin": form.field("password_signin") == "on",
        "create_users": form.field("create_users") == "on",
        "enabled": form.field("enabled") == "on",
    });
    if !form.field("client_secret").is_empty() {
        body["client_secret"] = json!(form.field("client_secret"));
    }
    let path = format!("/api/v1/identity-providers/{}", seg(&id));
    match visit.api(&state, Method::PATCH, &path, Some(body)).await {
        Ok(_) => visit.done("/admin/sso", "done.admin_sso_saved"),
        Err(e) => match Failed::api(e, "edit-provider", typed(&form)) {
            Ok(f) => show(&state, visit, Some(f), None).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["tenant.manage"]).await {
        return r;
    }
    let path = format!("/api/v1/identity-providers/{}", seg(&id));
    match visit.api(&state, Method::DELETE, &path, None).await {
        Ok(_) => visit.done("/admin/sso", "done.admin_sso_deleted"),
        Err(e) => visit.error(&state, e).await,
    }
}

async fn create_scim_token(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["tenant.manage"]).await {
        return r;
    }
    let body = json!({"name": form.field("name")});
    match visit.api(&state, Method::POST, "/api/v1/scim-tokens", Some(body)).await {
        // Shown on this answer only (no redirect): the secret is not kept anywhere it could be shown again.
        Ok(created) => show(&state, visit, None, Some(created.body)).await,
        Err(e) => match Failed::api(e, "new-scim-token", typed(&form)) {
            Ok(f) => show(&state, visit, Some(f), None).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn revoke_scim_token(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["tenant.manage"]).await {
        return r;
    }
    let path = format!("/api/v1/scim-tokens/{}", seg(&id));
    match visit.api(&state, Method::DELETE, &path, None).await {
        Ok(_) => visit.done("/admin/sso", "done.admin_scim_token_revoked"),
        Err(e) => visit.error(&state, e).await,
    }
}
