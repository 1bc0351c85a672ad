//! `/admin/enrollments`: enrollments of the people the viewer may see (filters: course, status, user), with
//! a form to enroll someone and buttons to unenroll or mark complete; `/admin/approvals`: enrollment
//! requests and sign-ups waiting for a decision.

use super::{
    Failed, Params, add_times, back_to, date_time, first_link, gate, items, more_link, optional, param, resolve_user,
    seg, typed, with_query,
};
use crate::portal::page::{PageError, Posted, Visit};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/enrollments", get(list_page).post(create))
        .route("/admin/enrollments/{id}/unenroll", post(unenroll))
        .route("/admin/enrollments/{id}/complete", post(complete))
        .route("/admin/approvals", get(approvals_page))
        .route("/admin/approvals/requests/{id}/{decision}", post(decide_request))
        .route("/admin/approvals/signups/{id}/{decision}", post(decide_signup))
}

const STATUSES: [&str; 5] = ["enrolled", "in_progress", "completed", "dropped", "overdue"];

async fn list_page(State(state): State<AppState>, visit: Visit, Query(q): Params) -> Response {
    show_list(&state, &visit, &q, None).await
}

async fn show_list(state: &AppState, visit: &Visit, q: &HashMap<String, String>, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &["enrollments.write", "progress.read"]).await {
        return r;
    }
    match list_data(state, visit, q).await {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-enrollments", "admin/enrollments", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn list_data(state: &AppState, visit: &Visit, q: &HashMap<String, String>) -> Result<Value, PageError> {
    let (course, status, user, cursor) = (
        param(q, "course"),
        param(q, "status"),
        param(q, "user"),
        param(q, "cursor"),
    );
    let filters = [
        ("course", course.as_str()),
        ("status", status.as_str()),
        ("user", user.as_str()),
    ];
    let mut list = Value::Null;
    let mut more = Value::Null;
    let mut unknown_user = false;
    if visit.can("progress.read") {
        let user_id = match user.as_str() {
            "" => Some(String::new()),
            u => resolve_user(state, visit, u).await?,
        };
        match user_id {
            Some(user_id) => {
                let path = with_query(
                    "/api/v1/enrollments",
                    &[
                        ("course_id", course.as_str()),
                        ("status", status.as_str()),
                        ("user_id", user_id.as_str()),
                        ("cursor", cursor.as_str()),
                    ],
                );
                list = visit.get(state, &path).await?;
                add_times(&mut list);
                more = more_link("/admin/enrollments", &filters, &list, "cursor");
            }
            None => unknown_user = true,
        }
    }
    let courses = optional(state, visit, "courses.read", "/api/v1/courses").await?;
    let courses: Vec<Value> = items(&courses)
        .into_iter()
        .map(|mut c| {
            c["selected"] = json!(c["id"].as_str() == Some(course.as_str()));
            c
        })
        .collect();
    let statuses: Vec<Value> = STATUSES
        .iter()
        .map(|s| json!({"value": s, "selected": *s == status}))
        .collect();
    Ok(json!({
        "enrollments": items(&list),
        "list_visible": visit.can("progress.read"),
        "unknown_user": unknown_user,
        "more": more,
        "first": first_link("/admin/enrollments", &filters, &cursor),
        "course": course,
        "user": user,
        "statuses": statuses,
        "courses": courses,
        "courses_visible": visit.can("courses.read"),
        "can_enroll": visit.can("enrollments.write"),
        "can_complete": visit.can("gradebook.write"),
        "values": {},
    }))
}

async fn create(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["enrollments.write"]).await {
        return r;
    }
    let values = typed(&form);
    let user_id = match resolve_user(&state, visit, form.field("user")).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let f = Failed::local("enroll", "user", "admin.error.no_user", values);
            return show_list(&state, visit, &HashMap::new(), Some(f)).await;
        }
        Err(e) => return visit.error(&state, e).await,
    };
    let mut body = json!({ "user_id": user_id, "course_id": form.field("course_id").trim() });
    if let Some(due) = form.opt("due_at") {
        body["due_at"] = json!(date_time(due, "23:59:59"));
    }
    match visit.api(&state, Method::POST, "/api/v1/enrollments", Some(body)).await {
        Ok(_) => visit.done("/admin/enrollments", "done.admin_enrolled"),
        Err(e) => match Failed::api(e, "enroll", values) {
            Ok(mut f) => {
                if f.error["field"] == "user_id" {
                    f.error["field"] = json!("user");
                }
                show_list(&state, visit, &HashMap::new(), Some(f)).await
            }
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn unenroll(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["enrollments.write"]).await {
        return r;
    }
    match visit
        .api(
            &state,
            Method::DELETE,
            &format!("/api/v1/enrollments/{}", seg(&id)),
            None,
        )
        .await
    {
        Ok(_) => visit.done(
            &back_to(form.field("back"), "/admin/enrollments"),
            "done.admin_unenrolled",
        ),
        Err(e) => visit.error(&state, e).await,
    }
}

async fn complete(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["gradebook.write"]).await {
        return r;
    }
    let path = format!("/api/v1/enrollments/{}/complete", seg(&id));
    match visit.api(&state, Method::POST, &path, None).await {
        Ok(_) => visit.done(
            &back_to(form.field("back"), "/admin/enrollments"),
            "done.admin_completed",
        ),
        Err(e) => visit.error(&state, e).await,
    }
}

async fn approvals_page(State(state): State<AppState>, visit: Visit, Query(q): Params) -> Response {
    show_approvals(&state, &visit, &q, None).await
}

async fn show_approvals(
    state: &AppState,
    visit: &Visit,
    q: &HashMap<String, String>,
    failed: Option<Failed>,
) -> Response {
    if let Err(r) = gate(state, visit, &["enrollments.write", "users.write"]).await {
        return r;
    }
    let data = async {
        let mut requests = optional(state, visit, "enrollments.write", "/api/v1/enrollment-requests").await?;
        add_times(&mut requests);
        let cursor = param(q, "cursor");
        let mut signups = Value::Null;
        let mut more = Value::Null;
        if visit.can("users.write") {
            signups = visit
                .get(
                    state,
                    &with_query("/api/v1/signups?status=pending", &[("cursor", &cursor)]),
                )
                .await?;
            add_times(&mut signups);
            more = more_link("/admin/approvals", &[], &signups, "cursor");
        }
        Ok::<Value, PageError>(json!({
            "requests": items(&requests),
            "requests_visible": visit.can("enrollments.write"),
            "signups": items(&signups),
            "signups_visible": visit.can("users.write"),
            "more": more,
            "first": first_link("/admin/approvals", &[], &cursor),
            "values": {},
        }))
    }
    .await;
    match data {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-approvals", "admin/approvals", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn decide_request(
    State(state): State<AppState>,
    Path((id, decision)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["enrollments.write"]).await {
        return r;
    }
    let (action, done) = match decision.as_str() {
        "approve" => ("approve", "done.admin_approved"),
        _ => ("reject", "done.admin_rejected"),
    };
    let path = format!("/api/v1/enrollment-requests/{}/{action}", seg(&id));
    let body = json!({ "note": form.opt("note") });
    match visit.api(&state, Method::POST, &path, Some(body)).await {
        Ok(_) => visit.done("/admin/approvals", done),
        Err(e) => match Failed::api(e, "requests", typed(&form)) {
            Ok(f) => show_approvals(&state, visit, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn decide_signup(
    State(state): State<AppState>,
    Path((id, decision)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["users.write"]).await {
        return r;
    }
    let path_of = |action: &str| format!("/api/v1/signups/{}/{action}", seg(&id));
    let (reply, done) = match decision.as_str() {
        "approve" => (
            visit.api(&state, Method::POST, &path_of("approve"), None).await,
            "done.admin_approved",
        ),
        _ => (
            visit
                .api(
                    &state,
                    Method::POST,
                    &path_of("reject"),
                    Some(json!({ "reason": form.opt("reason") })),
                )
                .await,
            "done.admin_rejected",
        ),
    };
    match reply {
        Ok(_) => visit.done("/admin/approvals", done),
        Err(e) => match Failed::api(e, "signups", typed(&form)) {
            Ok(f) => show_approvals(&state, visit, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}
