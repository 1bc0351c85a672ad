//! `/admin/plugins`: the academy's plugins with an upload form (the multipart body is forwarded to the API
//! untouched); `/admin/plugins/{id}`: versions and activation, capability grants, settings and secrets,
//! logs, faults, and deleting the plugin.

use super::{Failed, Params, add_times, gate, items, more_link, param, seg, typed, with_query};
use crate::portal::page::{PageError, Posted, Visit};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/plugins", get(list_page))
        .route("/admin/plugins/upload", post(upload))
        .route("/admin/plugins/{id}", get(plugin_page))
        .route("/admin/plugins/{id}/activate", post(activate))
        .route("/admin/plugins/{id}/deactivate", post(deactivate))
        .route("/admin/plugins/{id}/rollback", post(rollback))
        .route("/admin/plugins/{id}/grants/{capability}/{action}", post(grant))
        .route("/admin/plugins/{id}/settings", post(settings))
        .route("/admin/plugins/{id}/secrets", post(secrets))
        .route("/admin/plugins/{id}/delete", post(remove))
}

const PERMISSION: &str = "plugins.manage";

async fn list_page(State(state): State<AppState>, visit: Visit) -> Response {
    show_list(&state, &visit, None).await
}

async fn show_list(state: &AppState, visit: &Visit, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &[PERMISSION]).await {
        return r;
    }
    let mut plugins = match visit.get(state, "/api/v1/plugins").await {
        Ok(p) => p,
        Err(e) => return visit.error(state, e).await,
    };
    add_times(&mut plugins);
    let mut data = json!({ "plugins": items(&plugins), "values": {} });
    let status = Failed::put(failed, &mut data);
    visit
        .render_status(state, status, "admin-plugins", "admin/plugins", data)
        .await
}

/// The upload form's body goes to the API as it came (the CSRF token travelled in the query).
async fn upload(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &[PERMISSION]).await {
        return r;
    }
    let (content_type, bytes) = form.raw.clone();
    let reply = visit
        .api_raw(
            &state,
            Method::POST,
            "/api/v1/plugins",
            content_type.as_deref(),
            Body::from(bytes),
        )
        .await;
    match reply {
        Ok(reply) => {
            let id = reply.body["plugin"]["id"].as_str().unwrap_or_default();
            visit.done(&format!("/admin/plugins/{}", seg(id)), "done.admin_plugin_uploaded")
        }
        Err(e) => match Failed::api(e, "upload", json!({})) {
            Ok(f) => show_list(&state, visit, Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn plugin_page(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    show_plugin(&state, &visit, &id, &q, None).await
}

async fn show_plugin(
    state: &AppState,
    visit: &Visit,
    id: &str,
    q: &HashMap<String, String>,
    failed: Option<Failed>,
) -> Response {
    if let Err(r) = gate(state, visit, &[PERMISSION]).await {
        return r;
    }
    match plugin_data(state, visit, id, q, failed.as_ref()).await {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-plugin", "admin/plugin", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn plugin_data(
    state: &AppState,
    visit: &Visit,
    id: &str,
    q: &HashMap<String, String>,
    failed: Option<&Failed>,
) -> Result<Value, PageError> {
    let base = format!("/api/v1/plugins/{}", seg(id));
    let page = format!("/admin/plugins/{}", seg(id));
    let mut plugin = visit.get(state, &base).await?;
    add_times(&mut plugin);
    let mut versions = visit.get(state, &format!("{base}/versions")).await?;
    add_times(&mut versions);
    let (logs_cursor, faults_cursor) = (param(q, "logs_cursor"), param(q, "faults_cursor"));
    let mut logs = visit
        .get(
            state,
            &with_query(&format!("{base}/logs?limit=20"), &[("cursor", &logs_cursor)]),
        )
        .await?;
    add_times(&mut logs);
    let mut faults = visit
        .get(
            state,
            &with_query(&format!("{base}/faults?limit=20"), &[("cursor", &faults_cursor)]),
        )
        .await?;
    add_times(&mut faults);
    let logs_more = more_link(&page, &[("faults_cursor", &faults_cursor)], &logs, "logs_cursor");
    let faults_more = more_link(&page, &[("logs_cursor", &logs_cursor)], &faults, "faults_cursor");
    let versions = items(&versions);
    // Capabilities: what any version asks for, and what is granted.
    let granted: BTreeSet<String> = plugin["capabilities"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut requested: BTreeSet<String> = versions
        .iter()
        .flat_map(|v| v["manifest"]["capabilities"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    requested.extend(granted.iter().cloned());
    let capabilities: Vec<Value> = requested
        .iter()
        .map(|c| json!({"name": c, "granted": granted.contains(c)}))
        .collect();
    // Settings and secrets as the active version (else the newest) declares them.
    let manifest = versions
        .iter()
        .find(|v| v["active"] == json!(true))
        .or_else(|| versions.first())
        .map(|v| v["manifest"].clone())
        .unwrap_or(Value::Null);
    let secrets_set: BTreeSet<&str> = plugin["secrets_set"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let config: BTreeMap<String, Value> = manifest["config"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let fields: Vec<Value> = config
        .iter()
        .map(|(key, f)| {
            let secret = f["type"] == json!("secret");
            json!({
                "key": key,
                "type": f["type"],
                "description": f["description"],
                "required": f["required"],
                "default": f.get("default").map(|d| d.to_string()),
                "secret": secret,
                "set": secret && secrets_set.contains(key.as_str()),
            })
        })
        .collect();
    let settings_text = match failed {
        Some(f) if f.form == "settings" => f.values["settings"].as_str().unwrap_or_default().to_owned(),
        _ => serde_json::to_string_pretty(&plugin["settings"]).unwrap_or_default(),
    };
    Ok(json!({
        "plugin": plugin,
        "versions": versions,
        "capabilities": capabilities,
        "fields": fields,
        "has_secrets": fields.iter().any(|f| f["secret"] == json!(true)),
        "settings_text": settings_text,
        "logs": items(&logs),
        "logs_more": logs_more,
        "faults": items(&faults),
        "faults_more": faults_more,
        "values": {},
    }))
}

/// One request to the plugin's endpoints.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Call {
    fn new(method: Method, path: String, body: Option<Value>) -> Call {
        Call { method, path, body }
    }
}

/// Send a call for a form; back to the plugin's page, or its page again with the error on `form_name`
/// (showing `values` again).
async fn act(
    state: &AppState,
    visit: &Visit,
    id: &str,
    call: Call,
    failed_as: (&'static str, Value),
    done: &str,
) -> Response {
    if let Err(r) = gate(state, visit, &[PERMISSION]).await {
        return r;
    }
    match visit.api(state, call.method, &call.path, call.body).await {
        Ok(_) => visit.done(&format!("/admin/plugins/{}", seg(id)), done),
        Err(e) => match Failed::api(e, failed_as.0, failed_as.1) {
            Ok(f) => show_plugin(state, visit, id, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(state, e).await,
        },
    }
}

async fn activate(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let body = json!({ "version": form.opt("version") });
    let call = Call::new(
        Method::POST,
        format!("/api/v1/plugins/{}/activate", seg(&id)),
        Some(body),
    );
    act(
        &state,
        &form.visit,
        &id,
        call,
        ("versions", json!({})),
        "done.admin_plugin_activated",
    )
    .await
}

async fn deactivate(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let call = Call::new(Method::POST, format!("/api/v1/plugins/{}/deactivate", seg(&id)), None);
    act(
        &state,
        &form.visit,
        &id,
        call,
        ("versions", json!({})),
        "done.admin_plugin_deactivated",
    )
    .await
}

async fn rollback(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let call = Call::new(Method::POST, format!("/api/v1/plugins/{}/rollback", seg(&id)), None);
    act(
        &state,
        &form.visit,
        &id,
        call,
        ("versions", json!({})),
        "done.admin_plugin_activated",
    )
    .await
}

async fn grant(
    State(state): State<AppState>,
    Path((id, capability, action)): Path<(String, String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &[PERMISSION]).await {
        return r;
    }
    if action == "revoke" {
        let call = Call::new(
            Method::DELETE,
            format!("/api/v1/plugins/{}/grants/{}", seg(&id), seg(&capability)),
            None,
        );
        return act(
            &state,
            visit,
            &id,
            call,
            ("grants", json!({})),
            "done.admin_capability_revoked",
        )
        .await;
    }
    // Granting one more: the API sets the whole list, so it is the current grants and this one.
    let plugin = match visit.get(&state, &format!("/api/v1/plugins/{}", seg(&id))).await {
        Ok(p) => p,
        Err(e) => return visit.error(&state, e).await,
    };
    let mut capabilities: BTreeSet<String> = plugin["capabilities"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    capabilities.insert(capability);
    let body = json!({ "capabilities": capabilities });
    let call = Call::new(Method::PUT, format!("/api/v1/plugins/{}/grants", seg(&id)), Some(body));
    act(
        &state,
        visit,
        &id,
        call,
        ("grants", json!({})),
        "done.admin_capability_granted",
    )
    .await
}

async fn settings(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &[PERMISSION]).await {
        return r;
    }
    let text = form.field("settings");
    let parsed: Option<Value> = if text.trim().is_empty() {
        Some(json!({}))
    } else {
        serde_json::from_str::<Value>(text).ok().filter(Value::is_object)
    };
    let Some(settings) = parsed else {
        let f = Failed::local("settings", "settings", "admin.error.settings_json", typed(&form));
        return show_plugin(&state, visit, &id, &HashMap::new(), Some(f)).await;
    };
    let body = json!({ "settings": settings });
    let call = Call::new(
        Method::PUT,
        format!("/api/v1/plugins/{}/settings", seg(&id)),
        Some(body),
    );
    act(&state, visit, &id, call, ("settings", typed(&form)), "done.admin_saved").await
}

async fn secrets(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let key = form.field("key").to_owned();
    let value = if form.opt("clear").is_some() {
        Value::Null
    } else {
        json!(form.field("value"))
    };
    let body = json!({ "secrets": { key.clone(): value } });
    let call = Call::new(Method::PUT, format!("/api/v1/plugins/{}/secrets", seg(&id)), Some(body));
    // What was typed for a secret is never shown again.
    act(
        &state,
        &form.visit,
        &id,
        call,
        ("secrets", json!({"key": key})),
        "done.admin_saved",
    )
    .await
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &[PERMISSION]).await {
        return r;
    }
    match visit
        .api(&state, Method::DELETE, &format!("/api/v1/plugins/{}", seg(&id)), None)
        .await
    {
        Ok(_) => visit.done("/admin/plugins", "done.admin_plugin_deleted"),
        Err(e) => match Failed::api(e, "delete", json!({})) {
            Ok(f) => show_plugin(&state, visit, &id, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}
