//! The admin pages: what the people running an academy (and managers, within their part) see and change.
//!
//! Every list and every change goes through the REST API as the viewer, so a manager sees exactly their
//! part of the academy and can do exactly what the API lets them: nothing here filters, widens or checks
//! anything on its own beyond choosing which sections to offer.
//!
//! - [`users`]: people, their details, tags, organizations and enrollments.
//! - [`orgs`]: the organization tree and its members.
//! - [`roles`]: roles, permissions and grants.
//! - [`courses`]: courses and lessons.
//! - [`enrollments`]: enrollments and the approval queues.
//! - [`plugins`]: plugins, versions, grants, settings, logs and faults.
//! - [`audit`]: the audit log.
//! - [`sso`]: single sign-on (identity providers).

mod audit;
mod courses;
mod enrollments;
mod orgs;
mod plugins;
mod roles;
mod sso;
mod users;

use super::page::{PageError, Visit};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .merge(users::routes())
        .merge(orgs::routes())
        .merge(roles::routes())
        .merge(courses::routes())
        .merge(enrollments::routes())
        .merge(plugins::routes())
        .merge(audit::routes())
        .merge(sso::routes())
}

/// A page's query string, by name.
type Params = Query<HashMap<String, String>>;

/// Let the viewer in when signed in and holding any of `permissions` (anywhere); otherwise the sign-in
/// redirect, or a 403 page in the academy's theme.
async fn gate(state: &AppState, visit: &Visit, permissions: &[&str]) -> Result<(), Response> {
    if let Err(e) = visit.require_user() {
        return Err(visit.error(state, e).await);
    }
    if permissions.iter().any(|p| visit.can(p)) {
        return Ok(());
    }
    Err(visit
        .render_status(state, StatusCode::FORBIDDEN, "admin-denied", "admin/denied", json!({}))
        .await)
}

/// Encode a query-string value.
fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// `path?k=v&…` with the non-empty parameters.
fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let mut out = path.to_owned();
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        if !v.trim().is_empty() {
            out.push(sep);
            out.push_str(k);
            out.push('=');
            out.push_str(&enc(v.trim()));
            sep = '&';
        }
    }
    out
}

/// A query parameter, trimmed ("" when absent).
fn param(params: &HashMap<String, String>, key: &str) -> String {
    params.get(key).map(|v| v.trim().to_owned()).unwrap_or_default()
}

/// The "More" link of a list page: this page with its filters and the API's `next_cursor` (`null` on the
/// last page).
fn more_link(page: &str, filters: &[(&str, &str)], list: &Value, cursor_name: &str) -> Value {
    match list["next_cursor"].as_str() {
        Some(cursor) => {
            let mut params = filters.to_vec();
            params.push((cursor_name, cursor));
            Value::String(with_query(page, &params))
        }
        None => Value::Null,
    }
}

/// The link back to a list's first page (with its filters), when showing a later one.
fn first_link(page: &str, filters: &[(&str, &str)], cursor: &str) -> Value {
    if cursor.is_empty() {
        Value::Null
    } else {
        Value::String(with_query(page, filters))
    }
}

/// The items of an API answer: a page's `items`, or the list itself.
fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => other["items"].as_array().cloned().unwrap_or_default(),
    }
}

/// Every item of a paginated API list (following `next_cursor`), up to `cap` items; `true` when cut short.
async fn all_pages(state: &AppState, visit: &Visit, path: &str, cap: usize) -> Result<(Vec<Value>, bool), PageError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_path = match &cursor {
            Some(c) => with_query(path, &[("cursor", c)]),
            None => path.to_owned(),
        };
        let page = visit.get(state, &page_path).await?;
        out.extend(items(&page));
        match page["next_cursor"].as_str() {
            Some(next) if out.len() < cap && Some(next) != cursor.as_deref() => cursor = Some(next.to_owned()),
            Some(_) => return Ok((out, true)),
            None => return Ok((out, false)),
        }
    }
}

/// Add a readable `<key>_text` ("2026-11-25 14:03 UTC") next to every RFC 3339 time (`at`, `*_at`) of a
/// value, however deep.
fn add_times(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(add_times),
        Value::Object(o) => {
            let mut extra = Map::new();
            for (k, val) in o.iter_mut() {
                if (k == "at" || k.ends_with("_at"))
                    && let Some(s) = val.as_str()
                    && s.len() >= 16
                    && s.as_bytes().get(10) == Some(&b'T')
                {
                    extra.insert(
                        format!("{k}_text"),
                        Value::String(format!("{} {} UTC", &s[..10], &s[11..16])),
                    );
                } else {
                    add_times(val);
                }
            }
            o.extend(extra);
        }
        _ => {}
    }
}

/// A path to go back to after a post: an admin page, never anything else (without the notice it showed).
fn back_to(v: &str, default: &str) -> String {
    if !(v.starts_with("/admin") && !v.starts_with("//") && !v.contains('\\') && !v.contains("://")) {
        return default.to_owned();
    }
    let (path, query) = v.split_once('?').unwrap_or((v, ""));
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "done")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = kept.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    with_query(path, &pairs)
}

/// A date from a form (`2026-11-25`) as an RFC 3339 time at `time_of_day` UTC; other text is passed on as
/// it is for the API to judge.
fn date_time(v: &str, time_of_day: &str) -> String {
    let v = v.trim();
    let is_date = v.len() == 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-';
    if is_date {
        format!("{v}T{time_of_day}Z")
    } else {
        v.to_owned()
    }
}

/// A form that failed, to show again: which form, the API's (or the page's) error, and what was typed.
struct Failed {
    form: &'static str,
    status: StatusCode,
    error: Value,
    values: Value,
}

impl Failed {
    /// The API's refusal of a form; a lost session stays an error of its own (sign in again).
    fn api(e: PageError, form: &'static str, values: Value) -> Result<Failed, PageError> {
        match &e {
            PageError::Api { status, .. } => Ok(Failed {
                form,
                status: *status,
                error: e.to_value(),
                values,
            }),
            PageError::SignIn(_) => Err(e),
        }
    }

    /// A refusal by the page itself (input it could not turn into a request), worded by `key`.
    fn local(form: &'static str, field: &str, key: &str, values: Value) -> Failed {
        Failed {
            form,
            status: StatusCode::BAD_REQUEST,
            error: json!({"code": "invalid_field", "field": field, "key": key}),
            values,
        }
    }

    /// Put the failure into a page's data; the page's status.
    fn put(failed: Option<Failed>, data: &mut Value) -> StatusCode {
        match failed {
            Some(mut f) => {
                // `questions[2].correct` is a field of the `questions` input.
                if let Some(field) = f.error["field"].as_str() {
                    let base = field.split(['[', '.']).next().unwrap_or(field).to_owned();
                    f.error["base"] = Value::String(base);
                }
                data["form"] = Value::String(f.form.to_owned());
                data["error"] = f.error;
                data["values"] = f.values;
                f.status
            }
            None => StatusCode::OK,
        }
    }
}

/// The values of a posted form as an object (for showing them again).
fn typed(form: &super::page::Posted) -> Value {
    let mut out = Map::new();
    for (k, v) in &form.fields {
        if k != super::page::CSRF_FIELD && !k.contains("password") && !k.contains("secret") && !out.contains_key(k) {
            out.insert(k.clone(), Value::String(v.clone()));
        }
    }
    Value::Object(out)
}

/// A user named in a form by e-mail or id, as the API lets the viewer see them: the id, or `None` when no
/// such user is within the viewer's scope (or the viewer cannot list users).
async fn resolve_user(state: &AppState, visit: &Visit, input: &str) -> Result<Option<String>, PageError> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    if !input.contains('@') {
        return Ok(Some(input.to_owned()));
    }
    if !visit.can("users.read") {
        return Ok(None);
    }
    let found = match visit
        .get(state, &with_query("/api/v1/users?limit=100", &[("q", input)]))
        .await
    {
        Ok(v) => v,
        Err(PageError::Api { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(items(&found)
        .iter()
        .find(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(input)))
        .and_then(|u| u["id"].as_str().map(str::to_owned)))
}

/// An optional lookup for a page (a list to choose from): empty when the viewer may not read it.
async fn optional(state: &AppState, visit: &Visit, permission: &str, path: &str) -> Result<Value, PageError> {
    if !permission.is_empty() && !visit.can(permission) {
        return Ok(Value::Null);
    }
    match visit.get(state, path).await {
        Ok(v) => Ok(v),
        Err(PageError::Api { .. }) => Ok(Value::Null),
        Err(e) => Err(e),
    }
}

/// How many items an API list has, up to `cap` (`"500+"` beyond); `None` when the viewer may not list them.
async fn count(state: &AppState, visit: &Visit, path: &str) -> Result<Option<Value>, PageError> {
    match visit.get(state, path).await {
        Ok(list) => {
            let n = items(&list).len();
            Ok(Some(if list["next_cursor"].is_string() {
                Value::String(format!("{n}+"))
            } else {
                json!(n)
            }))
        }
        Err(PageError::Api { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `/admin`: a card per section the viewer may use, with counts where the API gives them cheaply.
async fn dashboard(State(state): State<AppState>, visit: Visit) -> Response {
    if let Err(r) = gate(&state, &visit, super::ADMIN_PERMISSIONS).await {
        return r;
    }
    match dashboard_data(&state, &visit).await {
        Ok(data) => visit.render(&state, "admin", "admin/dashboard", data).await,
        Err(e) => visit.error(&state, e).await,
    }
}

async fn dashboard_data(state: &AppState, visit: &Visit) -> Result<Value, PageError> {
    let mut counts = Map::new();
    let lists: [(&str, &str, &str); 8] = [
        ("users", "users.read", "/api/v1/users?limit=500"),
        ("orgs", "orgs.read", "/api/v1/orgs?limit=500"),
        ("roles", "roles.read", "/api/v1/roles"),
        ("courses", "courses.read", "/api/v1/courses"),
        ("enrollments", "progress.read", "/api/v1/enrollments?limit=500"),
        ("requests", "enrollments.write", "/api/v1/enrollment-requests"),
        ("signups", "users.write", "/api/v1/signups?status=pending&limit=500"),
        ("plugins", "plugins.manage", "/api/v1/plugins"),
    ];
    for (key, permission, path) in lists {
        if visit.can(permission)
            && let Some(n) = count(state, visit, path).await?
        {
            counts.insert(key.to_owned(), n);
        }
    }
    let pending = |k: &str| counts.get(k).is_some_and(|v| v != &json!(0));
    let approvals = pending("requests") || pending("signups");
    Ok(json!({
        "counts": counts,
        "approvals_pending": approvals,
        "can_approvals": visit.can("enrollments.write") || visit.can("users.write"),
        "can_enrollments": visit.can("enrollments.write") || visit.can("progress.read"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_skip_blanks_and_encode() {
        assert_eq!(
            with_query("/a", &[("q", " x y "), ("s", ""), ("t", "a&b")]),
            "/a?q=x+y&t=a%26b"
        );
        assert_eq!(with_query("/a?limit=5", &[("q", "z")]), "/a?limit=5&q=z");
        let list = json!({"items": [], "next_cursor": "c1"});
        assert_eq!(
            more_link("/admin/users", &[("q", "n")], &list, "cursor"),
            json!("/admin/users?q=n&cursor=c1")
        );
        assert_eq!(
            more_link("/admin/users", &[], &json!({"items": []}), "cursor"),
            Value::Null
        );
    }

    #[test]
    fn times_get_a_readable_twin() {
        let mut v = json!({"items": [{"created_at": "2026-11-25T14:03:09.120Z", "at": null, "deep": {"at": "2026-01-02T03:04:05.000Z"}}]});
        add_times(&mut v);
        assert_eq!(v["items"][0]["created_at_text"], "2026-11-25 14:03 UTC");
        assert_eq!(v["items"][0]["deep"]["at_text"], "2026-01-02 03:04 UTC");
        assert!(v["items"][0].get("at_text").is_none());
    }

    #[test]
    fn back_links_stay_on_admin_pages() {
        assert_eq!(back_to("/admin/users/1", "/admin"), "/admin/users/1");
        assert_eq!(back_to("https://evil.test/admin", "/admin"), "/admin");
        assert_eq!(back_to("//evil.test", "/admin"), "/admin");
        assert_eq!(
            back_to(
                "/admin/enrollments?status=overdue&done=done.admin_saved&cursor=c",
                "/admin"
            ),
            "/admin/enrollments?status=overdue&cursor=c"
        );
        assert_eq!(date_time("2026-12-01", "23:59:59"), "2026-12-01T23:59:59Z");
        assert_eq!(date_time("soon", "23:59:59"), "soon");
    }
}

/// A path segment for an API path: anything but letters, digits, `-`, `_` and `~` percent-encoded, so an
/// id from a URL cannot name another endpoint.
fn seg(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod seg_tests {
    #[test]
    fn segments_cannot_leave_their_place() {
        assert_eq!(super::seg("abc-1_2"), "abc-1_2");
        assert_eq!(super::seg("../x?y=1"), "%2E%2E%2Fx%3Fy%3D1");
        assert_eq!(super::seg(".."), "%2E%2E");
    }
}
