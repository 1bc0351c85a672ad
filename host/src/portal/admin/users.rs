//! `/admin/users`: the people the viewer may see, with search and a form for a new user;
//! `/admin/users/{id}`: one person's details and profile, tags, organizations and enrollments.

use super::orgs::org_options;
use super::{
    Failed, Params, add_times, date_time, first_link, gate, items, more_link, optional, param, seg, typed, with_query,
};
use crate::portal::page::{PageError, Posted, Visit};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_page).post(create))
        .route("/admin/users/{id}", get(user_page).post(update))
        .route("/admin/users/{id}/delete", post(remove))
        .route("/admin/users/{id}/tags", post(add_tag))
        .route("/admin/users/{id}/tags/{tag_id}/remove", post(remove_tag))
        .route("/admin/users/{id}/orgs", post(add_org))
        .route("/admin/users/{id}/orgs/{org_id}/remove", post(remove_org))
        .route("/admin/users/{id}/enroll", post(enroll))
}

/// The statuses a user can have.
const STATUSES: [&str; 4] = ["active", "pending", "suspended", "terminated"];

async fn list_page(State(state): State<AppState>, visit: Visit, Query(q): Params) -> Response {
    show_list(&state, &visit, &q, None).await
}

async fn show_list(state: &AppState, visit: &Visit, q: &HashMap<String, String>, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &["users.read"]).await {
        return r;
    }
    match list_data(state, visit, q).await {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-users", "admin/users", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn list_data(state: &AppState, visit: &Visit, q: &HashMap<String, String>) -> Result<Value, PageError> {
    let (search, status, org, cursor) = (param(q, "q"), param(q, "status"), param(q, "org"), param(q, "cursor"));
    // The page size, when a link asks for one (the API checks it).
    let limit = param(q, "limit");
    let filters = [
        ("q", search.as_str()),
        ("status", status.as_str()),
        ("org", org.as_str()),
        ("limit", limit.as_str()),
    ];
    let mut api = filters.to_vec();
    api.push(("cursor", cursor.as_str()));
    let expand = if visit.can("orgs.read") { "orgs" } else { "" };
    api.push(("expand", expand));
    let mut users = visit.get(state, &with_query("/api/v1/users", &api)).await?;
    add_times(&mut users);
    let more = more_link("/admin/users", &filters, &users, "cursor");
    Ok(json!({
        "users": items(&users),
        "more": more,
        "first": first_link("/admin/users", &filters, &cursor),
        "q": search,
        "status": status,
        "org": org,
        "statuses": STATUSES,
        "orgs": org_options(state, visit).await?,
        "can_write": visit.can("users.write"),
        "values": {},
    }))
}

async fn create(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.read", "users.write"]).await {
        return r;
    }
    let mut body = json!({ "name": form.field("name"), "email": form.field("email") });
    if let Some(locale) = form.opt("locale") {
        body["locale"] = json!(locale);
    }
    if !form.field("password").is_empty() {
        body["password"] = json!(form.field("password"));
    }
    if let Some(org) = form.opt("org_id") {
        body["org_ids"] = json!([org]);
    }
    match visit.api(&state, Method::POST, "/api/v1/users", Some(body)).await {
        Ok(reply) => {
            let id = reply.body["id"].as_str().unwrap_or_default();
            visit.done(&format!("/admin/users/{}", seg(id)), "done.admin_user_created")
        }
        Err(e) => match Failed::api(e, "new-user", typed(&form)) {
            Ok(mut f) => {
                // `org_ids` and `org_ids[0]` are the form's one `org_id`.
                if f.error["field"].as_str().is_some_and(|f| f.starts_with("org_ids")) {
                    f.error["field"] = json!("org_id");
                }
                show_list(&state, visit, &HashMap::new(), Some(f)).await
            }
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn user_page(State(state): State<AppState>, visit: Visit, Path(id): Path<String>, Query(q): Params) -> Response {
    show_user(&state, &visit, &id, &q, None).await
}

async fn show_user(
    state: &AppState,
    visit: &Visit,
    id: &str,
    q: &HashMap<String, String>,
    failed: Option<Failed>,
) -> Response {
    if let Err(r) = gate(state, visit, &["users.read"]).await {
        return r;
    }
    match user_data(state, visit, id, q, failed.as_ref()).await {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-user", "admin/user", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

/// A profile value as a form shows it.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn user_data(
    state: &AppState,
    visit: &Visit,
    id: &str,
    q: &HashMap<String, String>,
    failed: Option<&Failed>,
) -> Result<Value, PageError> {
    let mut user = visit.get(state, &format!("/api/v1/users/{}", seg(id))).await?;
    add_times(&mut user);
    // What the edit form shows: the user, or what was typed when it was refused.
    let typed = failed.filter(|f| f.form == "edit-user").map(|f| &f.values);
    let shown_text = |key: &str, stored: &Value| match typed {
        Some(v) => v[key].as_str().unwrap_or_default().to_owned(),
        None => shown(stored),
    };
    let form = json!({
        "name": shown_text("name", &user["name"]),
        "email": shown_text("email", &user["email"]),
    });
    let status = shown_text("status", &user["status"]);
    let locale = shown_text("locale", &user["locale"]);
    let fields = optional(state, visit, "", "/api/v1/profile-fields").await?;
    let profile: Vec<Value> = items(&fields)
        .into_iter()
        .map(|mut f| {
            let key = f["key"].as_str().unwrap_or_default().to_owned();
            let value = shown_text(&format!("profile.{key}"), &user["profile"][&key]);
            f["value"] = json!(value);
            f["input"] = json!(format!("profile.{key}"));
            f["options"] = Value::Array(
                f["choices"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| json!({"value": c, "selected": c.as_str() == Some(value.as_str())}))
                    .collect(),
            );
            f
        })
        .collect();
    let tags = optional(state, visit, "tags.read", "/api/v1/tags").await?;
    let cursor = param(q, "cursor");
    let mut enrollments = Value::Null;
    let mut more = Value::Null;
    if visit.can("progress.read") {
        enrollments = optional(
            state,
            visit,
            "progress.read",
            &with_query("/api/v1/enrollments", &[("user_id", id), ("cursor", cursor.as_str())]),
        )
        .await?;
        add_times(&mut enrollments);
        more = more_link(&format!("/admin/users/{}", seg(id)), &[], &enrollments, "cursor");
    }
    let courses = optional(state, visit, "courses.read", "/api/v1/courses").await?;
    let locales: Vec<Value> = visit
        .tenant
        .settings
        .allowed_locales
        .iter()
        .map(|l| json!({"value": l, "selected": *l == locale}))
        .collect();
    let statuses: Vec<Value> = STATUSES
        .iter()
        .map(|s| json!({"value": s, "selected": *s == status}))
        .collect();
    Ok(json!({
        "user": user,
        "edit": form,
        "profile": profile,
        "locales": locales,
        "statuses": statuses,
        "tags": items(&tags),
        "orgs": org_options(state, visit).await?,
        "enrollments": items(&enrollments),
        "enrollments_visible": visit.can("progress.read"),
        "more": more,
        "courses": items(&courses),
        "courses_visible": visit.can("courses.read"),
        "can_write": visit.can("users.write"),
        "can_members": visit.can("members.write"),
        "can_enroll": visit.can("enrollments.write"),
        "can_complete": visit.can("gradebook.write"),
        "values": {},
    }))
}

/// A profile value from a form, by the field's type: blank removes it, numbers become numbers (or stay text
/// for the API to refuse, naming the field).
fn profile_value(kind: &str, v: &str) -> Value {
    let v = v.trim();
    if v.is_empty() {
        return Value::Null;
    }
    if kind == "number" {
        if let Ok(n) = v.parse::<i64>() {
            return json!(n);
        }
        if let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    json!(v)
}

async fn update(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.read", "users.write"]).await {
        return r;
    }
    let mut body = json!({
        "name": form.field("name"),
        "email": form.field("email"),
        "status": form.field("status"),
        "locale": form.opt("locale"),
    });
    if !form.field("password").is_empty() {
        body["password"] = json!(form.field("password"));
    }
    let fields = match optional(&state, visit, "", "/api/v1/profile-fields").await {
        Ok(f) => f,
        Err(e) => return visit.error(&state, e).await,
    };
    let mut profile = Map::new();
    for f in items(&fields) {
        let key = f["key"].as_str().unwrap_or_default();
        let input = format!("profile.{key}");
        if form.fields.iter().any(|(k, _)| *k == input) {
            profile.insert(
                key.to_owned(),
                profile_value(f["field_type"].as_str().unwrap_or_default(), form.field(&input)),
            );
        }
    }
    if !profile.is_empty() {
        body["profile"] = Value::Object(profile);
    }
    match visit
        .api(
            &state,
            Method::PATCH,
            &format!("/api/v1/users/{}", seg(&id)),
            Some(body),
        )
        .await
    {
        Ok(_) => visit.done(&format!("/admin/users/{}", seg(&id)), "done.admin_saved"),
        Err(e) => fail(&state, visit, &id, e, "edit-user", typed(&form)).await,
    }
}

/// Show the user's page again with a form's error.
async fn fail(state: &AppState, visit: &Visit, id: &str, e: PageError, form: &'static str, values: Value) -> Response {
    match Failed::api(e, form, values) {
        Ok(f) => show_user(state, visit, id, &HashMap::new(), Some(f)).await,
        Err(e) => visit.error(state, e).await,
    }
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.read", "users.write"]).await {
        return r;
    }
    match visit
        .api(&state, Method::DELETE, &format!("/api/v1/users/{}", seg(&id)), None)
        .await
    {
        Ok(_) => visit.done("/admin/users", "done.admin_user_deleted"),
        Err(e) => fail(&state, visit, &id, e, "delete-user", json!({})).await,
    }
}

async fn add_tag(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.read", "users.write"]).await {
        return r;
    }
    let body = json!({ "tag_id": form.field("tag_id") });
    match visit
        .api(
            &state,
            Method::POST,
            &format!("/api/v1/users/{}/tags", seg(&id)),
            Some(body),
        )
        .await
    {
        Ok(_) => visit.done(&format!("/admin/users/{}", seg(&id)), "done.admin_tag_added"),
        Err(e) => fail(&state, visit, &id, e, "add-tag", typed(&form)).await,
    }
}

async fn remove_tag(
    State(state): State<AppState>,
    Path((id, tag_id)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.read", "users.write"]).await {
        return r;
    }
    let path = format!("/api/v1/users/{}/tags/{}", seg(&id), seg(&tag_id));
    match visit.api(&state, Method::DELETE, &path, None).await {
        Ok(_) => visit.done(&format!("/admin/users/{}", seg(&id)), "done.admin_tag_removed"),
        Err(e) => fail(&state, visit, &id, e, "tags", json!({})).await,
    }
}

async fn add_org(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.read", "members.write"]).await {
        return r;
    }
    let path = format!("/api/v1/orgs/{}/members", seg(form.field("org_id")));
    match visit
        .api(&state, Method::POST, &path, Some(json!({ "user_id": id })))
        .await
    {
        Ok(_) => visit.done(&format!("/admin/users/{}", seg(&id)), "done.admin_member_added"),
        Err(e) => fail(&state, visit, &id, e, "add-org", typed(&form)).await,
    }
}

async fn remove_org(
    State(state): State<AppState>,
    Path((id, org_id)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.read", "members.write"]).await {
        return r;
    }
    let path = format!("/api/v1/orgs/{}/members/{}", seg(&org_id), seg(&id));
    match visit.api(&state, Method::DELETE, &path, None).await {
        Ok(_) => visit.done(&format!("/admin/users/{}", seg(&id)), "done.admin_member_removed"),
        Err(e) => fail(&state, visit, &id, e, "orgs", json!({})).await,
    }
}

async fn enroll(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.read", "enrollments.write"]).await {
        return r;
    }
    let mut body = json!({ "user_id": id, "course_id": form.field("course_id").trim() });
    if let Some(due) = form.opt("due_at") {
        body["due_at"] = json!(date_time(due, "23:59:59"));
    }
    match visit.api(&state, Method::POST, "/api/v1/enrollments", Some(body)).await {
        Ok(_) => visit.done(&format!("/admin/users/{}", seg(&id)), "done.admin_enrolled"),
        Err(e) => fail(&state, visit, &id, e, "enroll", typed(&form)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_values_follow_the_field_type() {
        assert_eq!(profile_value("number", " 42 "), json!(42));
        assert_eq!(profile_value("number", "1.5"), json!(1.5));
        assert_eq!(profile_value("number", "many"), json!("many"));
        assert_eq!(profile_value("text", "42"), json!("42"));
        assert_eq!(profile_value("date", ""), Value::Null);
    }
}
