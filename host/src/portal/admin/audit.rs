//! `/admin/audit`: the academy's audit log, newest first, with the filters the API offers; each entry's
//! before and after as JSON.

use super::{Params, gate, items, more_link, param, with_query};
use crate::portal::page::{PageError, Visit};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/audit", get(audit_page))
}

/// The day after a `YYYY-MM-DD` date (an "until" day is shown inclusive; the API's `until` is exclusive).
fn next_day(date: &str) -> Option<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format).ok()?.next_day()?;
    day.format(&format).ok()
}

async fn audit_page(State(state): State<AppState>, visit: Visit, Query(q): Params) -> Response {
    if let Err(r) = gate(&state, &visit, &["audit.read"]).await {
        return r;
    }
    match audit_data(&state, &visit, &q).await {
        Ok(data) => visit.render(&state, "admin-audit", "admin/audit", data).await,
        Err(e) => visit.error(&state, e).await,
    }
}

async fn audit_data(state: &AppState, visit: &Visit, q: &HashMap<String, String>) -> Result<Value, PageError> {
    let keys = ["action", "actor_id", "target_type", "target_id", "since", "until"];
    let values: Vec<String> = keys.iter().map(|k| param(q, k)).collect();
    let filters: Vec<(&str, &str)> = keys.iter().copied().zip(values.iter().map(String::as_str)).collect();
    let cursor = param(q, "cursor");
    // Days from the form as times: from the start of `since`, to the end of `until`.
    let since = match values[4].as_str() {
        "" => String::new(),
        d => super::date_time(d, "00:00:00"),
    };
    let until = match values[5].as_str() {
        "" => String::new(),
        d => next_day(d).map_or_else(|| d.to_owned(), |next| super::date_time(&next, "00:00:00")),
    };
    let mut api: Vec<(&str, &str)> = filters[..4].to_vec();
    api.extend([
        ("since", since.as_str()),
        ("until", until.as_str()),
        ("cursor", cursor.as_str()),
    ]);
    let log = visit.get(state, &with_query("/api/v1/audit", &api)).await?;
    let more = more_link("/admin/audit", &filters, &log, "cursor");
    let entries: Vec<Value> = items(&log)
        .into_iter()
        .map(|mut e| {
            // Before and after as the API gave them, then out of the way of the readable times below.
            for k in ["before", "after"] {
                if let Some(v) = e.as_object_mut().and_then(|o| o.remove(k))
                    && !v.is_null()
                {
                    e[format!("{k}_json")] = json!(serde_json::to_string_pretty(&v).unwrap_or_default());
                }
            }
            super::add_times(&mut e);
            let link = match (e["target_type"].as_str(), e["target_id"].as_str()) {
                (Some("user"), Some(id)) => Some(format!("/admin/users/{}", super::seg(id))),
                (Some("org"), Some(id)) => Some(format!("/admin/orgs/{}", super::seg(id))),
                (Some("role"), Some(id)) => Some(format!("/admin/roles/{}", super::seg(id))),
                (Some("course"), Some(id)) => Some(format!("/admin/courses/{}", super::seg(id))),
                (Some("plugin"), Some(id)) => Some(format!("/admin/plugins/{}", super::seg(id))),
                _ => None,
            };
            e["target_link"] = json!(link);
            e
        })
        .collect();
    let mut data = json!({
        "entries": entries,
        "more": more,
        "first": super::first_link("/admin/audit", &filters, &cursor),
    });
    for (k, v) in keys.iter().zip(values) {
        data[*k] = json!(v);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn until_includes_its_day() {
        assert_eq!(super::next_day("2026-02-28").as_deref(), Some("2026-03-01"));
        assert_eq!(super::next_day("nope"), None);
    }
}
