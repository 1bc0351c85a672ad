//! `/admin/roles`: roles with their permissions, a form for a custom role, and the grants the viewer may
//! see with a form to grant a role and buttons to revoke; `/admin/roles/{id}`: changing or deleting a
//! custom role.

use super::orgs::org_options;
use super::{Failed, Params, add_times, gate, items, optional, param, resolve_user, seg, typed, with_query};
use crate::portal::page::{PageError, Posted, Visit};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};

/// Most grant holders whose names the page looks up one by one (more are shown by id).
const NAME_LOOKUPS: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/roles", get(roles_page).post(create_role))
        .route("/admin/roles/{id}", get(role_page).post(update_role))
        .route("/admin/roles/{id}/delete", post(delete_role))
        .route("/admin/grants", post(create_grant))
        .route("/admin/grants/{id}/revoke", post(revoke_grant))
}

/// Every permission, each with `checked` when in `held`.
fn permission_boxes(permissions: &Value, held: &[&str]) -> Vec<Value> {
    items(permissions)
        .into_iter()
        .map(|mut p| {
            let name = p["name"].as_str().unwrap_or_default();
            p["checked"] = json!(held.contains(&name));
            p
        })
        .collect()
}

async fn roles_page(State(state): State<AppState>, visit: Visit, Query(q): Params) -> Response {
    show_roles(&state, &visit, &q, None).await
}

async fn show_roles(state: &AppState, visit: &Visit, q: &HashMap<String, String>, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &["roles.read"]).await {
        return r;
    }
    match roles_data(state, visit, q, failed.as_ref()).await {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-roles", "admin/roles", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn roles_data(
    state: &AppState,
    visit: &Visit,
    q: &HashMap<String, String>,
    failed: Option<&Failed>,
) -> Result<Value, PageError> {
    let roles = visit.get(state, "/api/v1/roles").await?;
    let permissions = visit.get(state, "/api/v1/permissions").await?;
    // The grants of one user, named by e-mail or id.
    let user_filter = param(q, "user");
    let user_id = match user_filter.as_str() {
        "" => String::new(),
        f => resolve_user(state, visit, f).await?.unwrap_or_else(|| f.to_owned()),
    };
    let mut grants = visit
        .get(state, &with_query("/api/v1/grants", &[("user_id", &user_id)]))
        .await?;
    add_times(&mut grants);
    let orgs = org_options(state, visit).await?;
    let segments = optional(state, visit, "segments.read", "/api/v1/segments").await?;
    let role_names: HashMap<String, Value> = items(&roles)
        .iter()
        .filter_map(|r| Some((r["key"].as_str()?.to_owned(), r["name"].clone())))
        .collect();
    let org_names: HashMap<&str, &Value> = orgs
        .iter()
        .filter_map(|o| Some((o["id"].as_str()?, &o["name"])))
        .collect();
    let segment_names: HashMap<String, Value> = items(&segments)
        .iter()
        .filter_map(|s| Some((s["id"].as_str()?.to_owned(), s["name"].clone())))
        .collect();
    // The API names a grant's holder by id; the page looks their names up (as the viewer, through the API).
    let holders: BTreeSet<String> = items(&grants)
        .iter()
        .filter_map(|g| g["user_id"].as_str().map(str::to_owned))
        .collect();
    let mut people: HashMap<String, Value> = HashMap::new();
    if holders.len() <= NAME_LOOKUPS {
        for id in &holders {
            if let Ok(u) = visit.get(state, &format!("/api/v1/users/{}", seg(id))).await {
                people.insert(id.clone(), json!({"name": u["name"], "email": u["email"]}));
            }
        }
    }
    let grants: Vec<Value> = items(&grants)
        .into_iter()
        .map(|mut g| {
            let user = g["user_id"].as_str().unwrap_or_default().to_owned();
            let role = g["role"].as_str().unwrap_or_default().to_owned();
            let scope_id = g["scope"]["id"].as_str().unwrap_or_default().to_owned();
            g["person"] = people.get(&user).cloned().unwrap_or(Value::Null);
            g["role_name"] = role_names.get(&role).cloned().unwrap_or(Value::Null);
            g["scope_name"] = match g["scope"]["type"].as_str() {
                Some("org") => org_names
                    .get(scope_id.as_str())
                    .map(|v| (*v).clone())
                    .unwrap_or(Value::Null),
                Some("segment") => segment_names.get(&scope_id).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            };
            g
        })
        .collect();
    // A custom role form shown again keeps its ticks.
    let ticked: Vec<&str> = match failed {
        Some(f) if f.form == "new-role" => f.values["permissions"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut roles = roles;
    add_times(&mut roles);
    let mut roles = items(&roles);
    for r in &mut roles {
        let names: Vec<Value> = r["permissions"].as_array().cloned().unwrap_or_default();
        r["permission_count"] = json!(names.len());
    }
    Ok(json!({
        "roles": roles,
        "permissions": permission_boxes(&permissions, &ticked),
        "grants": grants,
        "user": user_filter,
        "orgs": orgs,
        "segments": items(&segments),
        "can_write_roles": visit.can("roles.write"),
        "can_grant": visit.can("grants.write"),
        "values": {},
    }))
}

/// The form's values, with the ticked permissions as a list.
fn role_values(form: &Posted) -> Value {
    let mut v = typed(form);
    v["permissions"] = json!(form.all("permissions"));
    v
}

async fn create_role(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["roles.read", "roles.write"]).await {
        return r;
    }
    let body = json!({
        "key": form.field("key").trim(),
        "name": form.field("name"),
        "permissions": form.all("permissions"),
    });
    match visit.api(&state, Method::POST, "/api/v1/roles", Some(body)).await {
        Ok(reply) => {
            let id = reply.body["id"].as_str().unwrap_or_default();
            visit.done(&format!("/admin/roles/{}", seg(id)), "done.admin_role_created")
        }
        Err(e) => match Failed::api(e, "new-role", role_values(&form)) {
            Ok(f) => show_roles(&state, visit, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn role_page(State(state): State<AppState>, visit: Visit, Path(id): Path<String>) -> Response {
    show_role(&state, &visit, &id, None).await
}

async fn show_role(state: &AppState, visit: &Visit, id: &str, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &["roles.read"]).await {
        return r;
    }
    let data = async {
        let role = visit.get(state, &format!("/api/v1/roles/{}", seg(id))).await?;
        let permissions = visit.get(state, "/api/v1/permissions").await?;
        let held: Vec<&str> = match &failed {
            Some(f) if f.form == "edit-role" => f.values["permissions"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
            _ => role["permissions"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
        };
        let boxes = permission_boxes(&permissions, &held);
        Ok::<Value, PageError>(json!({
            "role": role,
            "permissions": boxes,
            "can_write": visit.can("roles.write") && role["builtin"] != json!(true),
            "values": {},
        }))
    }
    .await;
    match data {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-role", "admin/role", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn update_role(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["roles.read", "roles.write"]).await {
        return r;
    }
    let body = json!({ "name": form.field("name"), "permissions": form.all("permissions") });
    match visit
        .api(
            &state,
            Method::PATCH,
            &format!("/api/v1/roles/{}", seg(&id)),
            Some(body),
        )
        .await
    {
        Ok(_) => visit.done(&format!("/admin/roles/{}", seg(&id)), "done.admin_saved"),
        Err(e) => match Failed::api(e, "edit-role", role_values(&form)) {
            Ok(f) => show_role(&state, visit, &id, Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn delete_role(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["roles.read", "roles.write"]).await {
        return r;
    }
    match visit
        .api(&state, Method::DELETE, &format!("/api/v1/roles/{}", seg(&id)), None)
        .await
    {
        Ok(_) => visit.done("/admin/roles", "done.admin_role_deleted"),
        Err(e) => match Failed::api(e, "delete-role", json!({})) {
            Ok(f) => show_role(&state, visit, &id, Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn create_grant(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["roles.read", "grants.write"]).await {
        return r;
    }
    let values = typed(&form);
    let user_id = match resolve_user(&state, visit, form.field("user")).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let f = Failed::local("new-grant", "user", "admin.error.no_user", values);
            return show_roles(&state, visit, &HashMap::new(), Some(f)).await;
        }
        Err(e) => return visit.error(&state, e).await,
    };
    let scope = match form.field("scope_type") {
        "org" => json!({"type": "org", "id": form.field("org_id")}),
        "segment" => json!({"type": "segment", "id": form.field("segment_id")}),
        _ => json!({"type": "tenant"}),
    };
    let body = json!({ "user_id": user_id, "role": form.field("role"), "scope": scope });
    match visit.api(&state, Method::POST, "/api/v1/grants", Some(body)).await {
        Ok(_) => visit.done("/admin/roles", "done.admin_granted"),
        Err(e) => match Failed::api(e, "new-grant", values) {
            Ok(mut f) => {
                let field = match f.error["field"].as_str() {
                    Some("user_id") => Some("user"),
                    Some("scope.id") if form.field("scope_type") == "segment" => Some("segment_id"),
                    Some("scope.id") => Some("org_id"),
                    _ => None,
                };
                if let Some(field) = field {
                    f.error["field"] = json!(field);
                }
                show_roles(&state, visit, &HashMap::new(), Some(f)).await
            }
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn revoke_grant(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["roles.read", "grants.write"]).await {
        return r;
    }
    match visit
        .api(&state, Method::DELETE, &format!("/api/v1/grants/{}", seg(&id)), None)
        .await
    {
        Ok(_) => visit.done("/admin/roles", "done.admin_revoked"),
        Err(e) => match Failed::api(e, "grants", json!({})) {
            Ok(f) => show_roles(&state, visit, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}
