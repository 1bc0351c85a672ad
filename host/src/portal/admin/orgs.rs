//! `/admin/orgs`: the organization tree the viewer may see, with member counts and a form for new
//! organizations; `/admin/orgs/{id}`: one organization's members, its name, place and member limit, and
//! deleting it.

use super::{
    Failed, Params, all_pages, back_to, first_link, gate, items, more_link, param, resolve_user, seg, typed, with_query,
};
use crate::portal::page::{PageError, Posted, Visit};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Most organizations the tree shows (the API gives them 500 at a time).
const TREE_CAP: usize = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/orgs", get(tree_page).post(create))
        .route("/admin/orgs/{id}", get(org_page).post(update))
        .route("/admin/orgs/{id}/delete", post(remove))
        .route("/admin/orgs/{id}/members", post(add_member))
        .route("/admin/orgs/{id}/members/{user_id}/remove", post(remove_member))
}

/// Every organization the viewer may see, as the API lists them; `true` when there were more than the cap.
async fn all_orgs(state: &AppState, visit: &Visit) -> Result<(Vec<Value>, bool), PageError> {
    all_pages(state, visit, "/api/v1/orgs?limit=500", TREE_CAP).await
}

/// The organizations as a forest: each with its `children`, siblings by name. Organizations whose parent
/// the viewer cannot see are roots.
fn forest(orgs: &[Value]) -> Vec<Value> {
    let ids: HashSet<&str> = orgs.iter().filter_map(|o| o["id"].as_str()).collect();
    let mut children: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    let mut roots = Vec::new();
    for o in orgs {
        match o["parent_id"].as_str().filter(|p| ids.contains(p)) {
            Some(parent) => children.entry(parent).or_default().push(o),
            None => roots.push(o),
        }
    }
    fn by_name(list: &mut [&Value]) {
        list.sort_by(|a, b| {
            let key = |v: &Value| v["name"].as_str().unwrap_or_default().to_lowercase();
            key(a).cmp(&key(b))
        });
    }
    fn build(o: &Value, children: &BTreeMap<&str, Vec<&Value>>, depth: usize) -> Value {
        let mut node = o.clone();
        let mut kids: Vec<&Value> = children
            .get(o["id"].as_str().unwrap_or_default())
            .cloned()
            .unwrap_or_default();
        by_name(&mut kids);
        // A cycle cannot come from the API; the depth bound only keeps a broken answer from recursing forever.
        let kids: Vec<Value> = if depth < 64 {
            kids.iter().map(|k| build(k, children, depth + 1)).collect()
        } else {
            Vec::new()
        };
        node["children"] = Value::Array(kids);
        node
    }
    by_name(&mut roots);
    roots.iter().map(|r| build(r, &children, 0)).collect()
}

/// The organizations in tree order with an indented `label`, for choosing one in a form.
fn options_of(forest: &[Value]) -> Vec<Value> {
    fn walk(nodes: &[Value], level: usize, out: &mut Vec<Value>) {
        for n in nodes {
            let indent = "\u{a0}\u{a0}\u{a0}".repeat(level);
            out.push(json!({
                "id": n["id"],
                "name": n["name"],
                "parent_id": n["parent_id"],
                "label": format!("{indent}{}", n["name"].as_str().unwrap_or_default()),
            }));
            walk(
                n["children"].as_array().map(Vec::as_slice).unwrap_or_default(),
                level + 1,
                out,
            );
        }
    }
    let mut out = Vec::new();
    walk(forest, 0, &mut out);
    out
}

/// The organizations the viewer may see, in tree order with indented labels (empty without `orgs.read`).
pub(super) async fn org_options(state: &AppState, visit: &Visit) -> Result<Vec<Value>, PageError> {
    if !visit.can("orgs.read") {
        return Ok(Vec::new());
    }
    match all_orgs(state, visit).await {
        Ok((orgs, _)) => Ok(options_of(&forest(&orgs))),
        Err(PageError::Api { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

async fn tree_page(State(state): State<AppState>, visit: Visit) -> Response {
    show_tree(&state, &visit, None).await
}

async fn show_tree(state: &AppState, visit: &Visit, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &["orgs.read"]).await {
        return r;
    }
    let (orgs, cut) = match all_orgs(state, visit).await {
        Ok(o) => o,
        Err(e) => return visit.error(state, e).await,
    };
    let tree = forest(&orgs);
    let mut data = json!({
        "tree": tree,
        "options": options_of(&tree),
        "count": orgs.len(),
        "cut": cut,
        "can_write": visit.can("orgs.write"),
        "values": {},
    });
    let status = Failed::put(failed, &mut data);
    visit
        .render_status(state, status, "admin-orgs", "admin/orgs", data)
        .await
}

/// A member limit from a form: blank is none; anything else goes to the API as typed (a number, or text it
/// refuses naming the field).
fn limit_value(v: &str) -> Value {
    let v = v.trim();
    if v.is_empty() {
        Value::Null
    } else {
        v.parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(v.to_owned()))
    }
}

async fn create(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["orgs.read", "orgs.write"]).await {
        return r;
    }
    let mut body = json!({ "name": form.field("name") });
    if let Some(parent) = form.opt("parent_id") {
        body["parent_id"] = json!(parent);
    }
    if form.opt("member_limit").is_some() {
        body["member_limit"] = limit_value(form.field("member_limit"));
    }
    match visit.api(&state, Method::POST, "/api/v1/orgs", Some(body)).await {
        Ok(_) => visit.done("/admin/orgs", "done.admin_org_created"),
        Err(e) => match Failed::api(e, "new-org", typed(&form)) {
            Ok(f) => show_tree(&state, visit, Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn org_page(State(state): State<AppState>, visit: Visit, Path(id): Path<String>, Query(q): Params) -> Response {
    show_org(&state, &visit, &id, &q, None).await
}

async fn show_org(
    state: &AppState,
    visit: &Visit,
    id: &str,
    q: &HashMap<String, String>,
    failed: Option<Failed>,
) -> Response {
    if let Err(r) = gate(state, visit, &["orgs.read"]).await {
        return r;
    }
    match org_data(state, visit, id, q).await {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit.render_status(state, status, "admin-org", "admin/org", data).await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn org_data(state: &AppState, visit: &Visit, id: &str, q: &HashMap<String, String>) -> Result<Value, PageError> {
    let org = visit.get(state, &format!("/api/v1/orgs/{}", seg(id))).await?;
    let direct = param(q, "direct");
    let cursor = param(q, "cursor");
    let filters = [("direct", direct.as_str())];
    let mut api_params = filters.to_vec();
    api_params.push(("cursor", cursor.as_str()));
    let members = visit
        .get(
            state,
            &with_query(&format!("/api/v1/orgs/{}/members", seg(id)), &api_params),
        )
        .await?;
    let page = format!("/admin/orgs/{}", seg(id));
    let more = more_link(&page, &filters, &members, "cursor");
    // Where it may move: anywhere the viewer sees except into itself or below.
    let (orgs, _) = all_orgs(state, visit).await?;
    let tree = forest(&orgs);
    let mut below: HashSet<String> = HashSet::from([id.to_owned()]);
    loop {
        let before = below.len();
        for o in &orgs {
            if let (Some(oid), Some(parent)) = (o["id"].as_str(), o["parent_id"].as_str())
                && below.contains(parent)
            {
                below.insert(oid.to_owned());
            }
        }
        if below.len() == before {
            break;
        }
    }
    let places: Vec<Value> = options_of(&tree)
        .into_iter()
        .filter(|o| !o["id"].as_str().is_some_and(|i| below.contains(i)))
        .collect();
    let parent_id = org["parent_id"].as_str().unwrap_or_default().to_owned();
    let parent_visible = parent_id.is_empty() || places.iter().any(|p| p["id"].as_str() == Some(parent_id.as_str()));
    let parent_name = orgs
        .iter()
        .find(|o| o["id"].as_str() == Some(parent_id.as_str()))
        .map(|o| o["name"].clone())
        .unwrap_or(Value::Null);
    Ok(json!({
        "org": org,
        "members": items(&members),
        "more": more,
        "direct": !direct.is_empty(),
        "first": first_link(&page, &filters, &cursor),
        "places": places,
        "parent_visible": parent_visible,
        "parent_name": parent_name,
        "can_write": visit.can("orgs.write"),
        "can_members": visit.can("members.write"),
        "values": {},
    }))
}

async fn update(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["orgs.read", "orgs.write"]).await {
        return r;
    }
    let mut body = json!({ "name": form.field("name") });
    // Only what changed: a manager may rename an organization whose place or limit is not theirs to change.
    if form.field("parent_id") != form.field("current_parent_id") {
        body["parent_id"] = form.opt("parent_id").map_or(Value::Null, |p| json!(p));
    }
    if form.field("member_limit").trim() != form.field("current_member_limit").trim() {
        body["member_limit"] = limit_value(form.field("member_limit"));
    }
    match visit
        .api(&state, Method::PATCH, &format!("/api/v1/orgs/{}", seg(&id)), Some(body))
        .await
    {
        Ok(_) => visit.done(&format!("/admin/orgs/{}", seg(&id)), "done.admin_saved"),
        Err(e) => match Failed::api(e, "edit-org", typed(&form)) {
            Ok(f) => show_org(&state, visit, &id, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["orgs.read", "orgs.write"]).await {
        return r;
    }
    let mut path = format!("/api/v1/orgs/{}", seg(&id));
    if form.opt("reparent").is_some() {
        path.push_str("?mode=reparent");
    }
    match visit.api(&state, Method::DELETE, &path, None).await {
        Ok(_) => visit.done("/admin/orgs", "done.admin_org_deleted"),
        Err(e) => match Failed::api(e, "delete-org", typed(&form)) {
            Ok(f) => show_org(&state, visit, &id, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn add_member(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["orgs.read", "members.write"]).await {
        return r;
    }
    let values = typed(&form);
    let user_id = match resolve_user(&state, visit, form.field("user")).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let f = Failed::local("add-member", "user", "admin.error.no_user", values);
            return show_org(&state, visit, &id, &HashMap::new(), Some(f)).await;
        }
        Err(e) => return visit.error(&state, e).await,
    };
    let path = format!("/api/v1/orgs/{}/members", seg(&id));
    match visit
        .api(&state, Method::POST, &path, Some(json!({ "user_id": user_id })))
        .await
    {
        Ok(_) => visit.done(&format!("/admin/orgs/{}", seg(&id)), "done.admin_member_added"),
        Err(e) => match Failed::api(e, "add-member", values) {
            Ok(mut f) => {
                // The API names `user_id`; the form calls it `user`.
                if f.error["field"] == "user_id" {
                    f.error["field"] = json!("user");
                }
                show_org(&state, visit, &id, &HashMap::new(), Some(f)).await
            }
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn remove_member(
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["orgs.read", "members.write", "users.read"]).await {
        return r;
    }
    let path = format!("/api/v1/orgs/{}/members/{}", seg(&id), seg(&user_id));
    match visit.api(&state, Method::DELETE, &path, None).await {
        Ok(_) => {
            let back = back_to(form.field("back"), &format!("/admin/orgs/{}", seg(&id)));
            visit.done(&back, "done.admin_member_removed")
        }
        Err(e) => visit.error(&state, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forest_nests_children_and_roots_orphans() {
        let orgs = vec![
            json!({"id": "b", "parent_id": "a", "name": "Beta"}),
            json!({"id": "a", "parent_id": null, "name": "Alpha"}),
            json!({"id": "c", "parent_id": "a", "name": "alpha child"}),
            json!({"id": "x", "parent_id": "hidden", "name": "Orphan"}),
        ];
        let f = forest(&orgs);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0]["id"], "a");
        assert_eq!(f[0]["children"][0]["id"], "c");
        assert_eq!(f[0]["children"][1]["id"], "b");
        assert_eq!(f[1]["id"], "x");
        let o = options_of(&f);
        assert_eq!(
            o.iter().map(|o| o["id"].as_str().unwrap()).collect::<Vec<_>>(),
            ["a", "c", "b", "x"]
        );
        assert_eq!(o[1]["label"], "\u{a0}\u{a0}\u{a0}alpha child");
    }
}
