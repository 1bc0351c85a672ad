//! `/admin/courses`: every course (drafts and archived ones too) with a form for a new one;
//! `/admin/courses/{id}`: the course's fields and its lessons in order (add, reorder, delete);
//! `/admin/courses/{id}/lessons/{lesson_id}`: one lesson (quiz questions as JSON, checked by the API).

use super::orgs::org_options;
use super::{Failed, Params, add_times, gate, items, param, seg, typed, with_query};
use crate::portal::page::{PageError, Posted, Visit};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/courses", get(list_page).post(create))
        .route("/admin/courses/{id}", get(course_page).post(update))
        .route("/admin/courses/{id}/delete", post(remove))
        .route("/admin/courses/{id}/lessons", post(add_lesson))
        .route(
            "/admin/courses/{id}/lessons/{lesson_id}",
            get(lesson_page).post(update_lesson),
        )
        .route("/admin/courses/{id}/lessons/{lesson_id}/delete", post(remove_lesson))
        .route("/admin/courses/{id}/lessons/{lesson_id}/move", post(move_lesson))
}

const STATUSES: [&str; 3] = ["draft", "published", "archived"];
const VISIBILITIES: [&str; 3] = ["tenant", "orgs", "hidden"];
const KINDS: [&str; 3] = ["text", "media", "quiz"];

/// Choices for a `<select>`, with the current one `selected`.
fn choices(all: &[&str], current: &str) -> Vec<Value> {
    all.iter()
        .map(|v| json!({"value": v, "selected": *v == current}))
        .collect()
}

/// A whole number from a form: blank is `null`; other text goes to the API as typed, to be refused naming
/// the field.
fn number(v: &str) -> Value {
    let v = v.trim();
    if v.is_empty() {
        Value::Null
    } else {
        v.parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(v))
    }
}

async fn list_page(State(state): State<AppState>, visit: Visit, Query(q): Params) -> Response {
    show_list(&state, &visit, &q, None).await
}

async fn show_list(state: &AppState, visit: &Visit, q: &HashMap<String, String>, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &["courses.read"]).await {
        return r;
    }
    let (search, status, language) = (param(q, "q"), param(q, "status"), param(q, "language"));
    let path = with_query(
        "/api/v1/courses",
        &[("q", &search), ("status", &status), ("language", &language)],
    );
    let mut courses = match visit.get(state, &path).await {
        Ok(c) => c,
        Err(e) => return visit.error(state, e).await,
    };
    add_times(&mut courses);
    let mut data = json!({
        "courses": items(&courses),
        "q": search,
        "status": status,
        "language": language,
        "statuses": choices(&STATUSES, &status),
        "languages": choices(
            &visit.tenant.settings.allowed_locales.iter().map(String::as_str).collect::<Vec<_>>(),
            &language,
        ),
        "can_write": visit.can("courses.write"),
        "values": {},
    });
    let status = Failed::put(failed, &mut data);
    visit
        .render_status(state, status, "admin-courses", "admin/courses", data)
        .await
}

async fn create(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["courses.read", "courses.write"]).await {
        return r;
    }
    let mut body = json!({ "code": form.field("code").trim(), "title": form.field("title") });
    if let Some(language) = form.opt("language") {
        body["language"] = json!(language);
    }
    if let Some(summary) = form.opt("summary") {
        body["summary"] = json!(summary);
    }
    match visit.api(&state, Method::POST, "/api/v1/courses", Some(body)).await {
        Ok(reply) => {
            let id = reply.body["id"].as_str().unwrap_or_default();
            visit.done(&format!("/admin/courses/{}", seg(id)), "done.admin_course_created")
        }
        Err(e) => match Failed::api(e, "new-course", typed(&form)) {
            Ok(f) => show_list(&state, visit, &HashMap::new(), Some(f)).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn course_page(State(state): State<AppState>, visit: Visit, Path(id): Path<String>) -> Response {
    show_course(&state, &visit, &id, None).await
}

async fn show_course(state: &AppState, visit: &Visit, id: &str, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &["courses.read"]).await {
        return r;
    }
    match course_data(state, visit, id, failed.as_ref()).await {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-course", "admin/course", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn course_data(state: &AppState, visit: &Visit, id: &str, failed: Option<&Failed>) -> Result<Value, PageError> {
    let mut course = visit.get(state, &format!("/api/v1/courses/{}", seg(id))).await?;
    add_times(&mut course);
    // What the edit form shows: the course, or what was typed when it was refused.
    let shown = match failed {
        Some(f) if f.form == "edit-course" => f.values.clone(),
        _ => course.clone(),
    };
    let text = |k: &str| match &shown[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let on = |k: &str| match &shown[k] {
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        _ => false,
    };
    let chosen_orgs: Vec<String> = match &shown["org_ids"] {
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    };
    let orgs: Vec<Value> = org_options(state, visit)
        .await?
        .into_iter()
        .map(|mut o| {
            o["checked"] = json!(o["id"].as_str().is_some_and(|i| chosen_orgs.iter().any(|c| c == i)));
            o
        })
        .collect();
    let mut languages: Vec<&str> = visit
        .tenant
        .settings
        .allowed_locales
        .iter()
        .map(String::as_str)
        .collect();
    let current_language = text("language");
    if !languages.contains(&current_language.as_str()) {
        languages.push(current_language.as_str());
    }
    let lessons = course["lessons"].as_array().cloned().unwrap_or_default();
    let last = lessons.len();
    let lessons: Vec<Value> = lessons
        .into_iter()
        .map(|mut l| {
            let position = l["position"].as_i64().unwrap_or(0);
            l["first"] = json!(position <= 1);
            l["last"] = json!(position as usize >= last);
            l
        })
        .collect();
    Ok(json!({
        "course": course,
        "edit": {
            "code": text("code"),
            "title": text("title"),
            "summary": text("summary"),
            "estimated_minutes": text("estimated_minutes"),
            "due_days": text("due_days"),
            "certificate_valid_days": text("certificate_valid_days"),
            "self_enroll": on("self_enroll"),
            "approval_required": on("approval_required"),
            "issues_certificate": on("issues_certificate"),
        },
        "languages": choices(&languages, &current_language),
        "statuses": choices(&STATUSES, &text("status")),
        "visibilities": choices(&VISIBILITIES, &text("visibility")),
        "orgs": orgs,
        "lessons": lessons,
        "kinds": choices(&KINDS, "text"),
        "can_write": visit.can("courses.write"),
        "values": {},
    }))
}

async fn update(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["courses.read", "courses.write"]).await {
        return r;
    }
    let body = json!({
        "code": form.field("code").trim(),
        "title": form.field("title"),
        "summary": form.field("summary"),
        "language": form.field("language"),
        "status": form.field("status"),
        "estimated_minutes": number(form.field("estimated_minutes")),
        "visibility": form.field("visibility"),
        "org_ids": form.all("org_ids"),
        "self_enroll": form.opt("self_enroll").is_some(),
        "approval_required": form.opt("approval_required").is_some(),
        "due_days": number(form.field("due_days")),
        "certificate_valid_days": number(form.field("certificate_valid_days")),
        "issues_certificate": form.opt("issues_certificate").is_some(),
    });
    match visit
        .api(
            &state,
            Method::PATCH,
            &format!("/api/v1/courses/{}", seg(&id)),
            Some(body),
        )
        .await
    {
        Ok(_) => visit.done(&format!("/admin/courses/{}", seg(&id)), "done.admin_saved"),
        Err(e) => {
            let mut values = typed(&form);
            values["org_ids"] = json!(form.all("org_ids"));
            course_failed(&state, visit, &id, e, "edit-course", values).await
        }
    }
}

async fn course_failed(
    state: &AppState,
    visit: &Visit,
    id: &str,
    e: PageError,
    form: &'static str,
    values: Value,
) -> Response {
    match Failed::api(e, form, values) {
        Ok(f) => show_course(state, visit, id, Some(f)).await,
        Err(e) => visit.error(state, e).await,
    }
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["courses.read", "courses.write"]).await {
        return r;
    }
    match visit
        .api(&state, Method::DELETE, &format!("/api/v1/courses/{}", seg(&id)), None)
        .await
    {
        Ok(_) => visit.done("/admin/courses", "done.admin_course_deleted"),
        Err(e) => course_failed(&state, visit, &id, e, "delete-course", json!({})).await,
    }
}

/// A lesson's fields from a form, only those its kind has (the API refuses the others). `Err` names the
/// field the page could not read (quiz questions that are not JSON).
fn lesson_body(form: &Posted, kind: &str, new: bool) -> Result<Value, &'static str> {
    let mut body = json!({
        "title": form.field("title"),
        "body": form.field("body"),
        "required": form.opt("required").is_some(),
    });
    if new {
        body["kind"] = json!(kind);
        if let Some(position) = form.opt("position") {
            body["position"] = number(position);
        }
    }
    match kind {
        "media" => body["media_url"] = json!(form.field("media_url").trim()),
        "quiz" => {
            let questions: Value = serde_json::from_str(form.field("questions")).map_err(|_| "questions")?;
            body["questions"] = questions;
            if let Some(p) = form.opt("pass_percent") {
                body["pass_percent"] = number(p);
            }
            let attempts = number(form.field("max_attempts"));
            if new && attempts.is_null() {
                // Left out: unlimited.
            } else {
                body["max_attempts"] = attempts;
            }
        }
        _ => {}
    }
    Ok(body)
}

async fn add_lesson(State(state): State<AppState>, Path(id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["courses.read", "courses.write"]).await {
        return r;
    }
    let body = match lesson_body(&form, form.field("kind"), true) {
        Ok(b) => b,
        Err(field) => {
            let f = Failed::local("new-lesson", field, "admin.error.questions_json", typed(&form));
            return show_course(&state, visit, &id, Some(f)).await;
        }
    };
    let path = format!("/api/v1/courses/{}/lessons", seg(&id));
    match visit.api(&state, Method::POST, &path, Some(body)).await {
        Ok(_) => visit.done(&format!("/admin/courses/{}", seg(&id)), "done.admin_lesson_added"),
        Err(e) => course_failed(&state, visit, &id, e, "new-lesson", typed(&form)).await,
    }
}

async fn lesson_page(
    State(state): State<AppState>,
    visit: Visit,
    Path((id, lesson_id)): Path<(String, String)>,
) -> Response {
    show_lesson(&state, &visit, &id, &lesson_id, None).await
}

async fn show_lesson(state: &AppState, visit: &Visit, id: &str, lesson_id: &str, failed: Option<Failed>) -> Response {
    if let Err(r) = gate(state, visit, &["courses.read"]).await {
        return r;
    }
    let data = async {
        let course = visit.get(state, &format!("/api/v1/courses/{}", seg(id))).await?;
        let lessons = visit
            .get(state, &format!("/api/v1/courses/{}/lessons", seg(id)))
            .await?;
        let mut lesson = items(&lessons)
            .into_iter()
            .find(|l| l["id"].as_str() == Some(lesson_id))
            .ok_or_else(|| PageError::Api {
                status: StatusCode::NOT_FOUND,
                code: "not_found".into(),
                message: "This course has no such lesson.".into(),
                field: None,
            })?;
        add_times(&mut lesson);
        let questions = serde_json::to_string_pretty(&lesson["questions"]).unwrap_or_default();
        let mut form = json!({
            "title": lesson["title"],
            "body": lesson["body"],
            "media_url": lesson["media_url"],
            "required": lesson["required"],
            "questions": questions,
            "pass_percent": lesson["pass_percent"],
            "max_attempts": lesson["max_attempts"],
        });
        if let Some(f) = failed.as_ref().filter(|f| f.form == "edit-lesson") {
            for k in [
                "title",
                "body",
                "media_url",
                "questions",
                "pass_percent",
                "max_attempts",
            ] {
                form[k] = f.values[k].clone();
            }
            form["required"] = json!(f.values["required"].is_string());
        }
        Ok::<Value, PageError>(json!({
            "course": course,
            "lesson": lesson,
            "edit": form,
            "can_write": visit.can("courses.write"),
            "values": {},
        }))
    }
    .await;
    match data {
        Ok(mut data) => {
            let status = Failed::put(failed, &mut data);
            visit
                .render_status(state, status, "admin-lesson", "admin/lesson", data)
                .await
        }
        Err(e) => visit.error(state, e).await,
    }
}

async fn update_lesson(
    State(state): State<AppState>,
    Path((id, lesson_id)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["courses.read", "courses.write"]).await {
        return r;
    }
    let failed = |f| show_lesson(&state, visit, &id, &lesson_id, Some(f));
    let body = match lesson_body(&form, form.field("kind"), false) {
        Ok(b) => b,
        Err(field) => {
            return failed(Failed::local(
                "edit-lesson",
                field,
                "admin.error.questions_json",
                typed(&form),
            ))
            .await;
        }
    };
    let path = format!("/api/v1/courses/{}/lessons/{}", seg(&id), seg(&lesson_id));
    match visit.api(&state, Method::PATCH, &path, Some(body)).await {
        Ok(_) => visit.done(
            &format!("/admin/courses/{}/lessons/{}", seg(&id), seg(&lesson_id)),
            "done.admin_saved",
        ),
        Err(e) => match Failed::api(e, "edit-lesson", typed(&form)) {
            Ok(f) => failed(f).await,
            Err(e) => visit.error(&state, e).await,
        },
    }
}

async fn remove_lesson(
    State(state): State<AppState>,
    Path((id, lesson_id)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["courses.read", "courses.write"]).await {
        return r;
    }
    let path = format!("/api/v1/courses/{}/lessons/{}", seg(&id), seg(&lesson_id));
    match visit.api(&state, Method::DELETE, &path, None).await {
        Ok(_) => visit.done(&format!("/admin/courses/{}", seg(&id)), "done.admin_lesson_deleted"),
        Err(e) => course_failed(&state, visit, &id, e, "lessons", json!({})).await,
    }
}

/// The lesson order with one lesson moved one place up or down (unchanged at either end).
fn moved(order: &[String], lesson_id: &str, up: bool) -> Vec<String> {
    let mut order = order.to_vec();
    if let Some(i) = order.iter().position(|l| l == lesson_id) {
        if up && i > 0 {
            order.swap(i, i - 1);
        } else if !up && i + 1 < order.len() {
            order.swap(i, i + 1);
        }
    }
    order
}

async fn move_lesson(
    State(state): State<AppState>,
    Path((id, lesson_id)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    if let Err(r) = gate(&state, visit, &["courses.read", "courses.write"]).await {
        return r;
    }
    let course = match visit.get(&state, &format!("/api/v1/courses/{}", seg(&id))).await {
        Ok(c) => c,
        Err(e) => return visit.error(&state, e).await,
    };
    let order: Vec<String> = course["lessons"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let order = moved(&order, &lesson_id, form.field("direction") == "up");
    let path = format!("/api/v1/courses/{}/lessons/order", seg(&id));
    match visit
        .api(&state, Method::PUT, &path, Some(json!({ "lesson_ids": order })))
        .await
    {
        Ok(_) => visit.done(&format!("/admin/courses/{}", seg(&id)), "done.admin_lessons_reordered"),
        Err(e) => course_failed(&state, visit, &id, e, "lessons", json!({})).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lessons_move_one_place_and_stop_at_the_ends() {
        let order: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(moved(&order, "b", true), ["b", "a", "c"]);
        assert_eq!(moved(&order, "b", false), ["a", "c", "b"]);
        assert_eq!(moved(&order, "a", true), ["a", "b", "c"]);
        assert_eq!(moved(&order, "c", false), ["a", "b", "c"]);
        assert_eq!(number(" 12 "), json!(12));
        assert_eq!(number(""), Value::Null);
        assert_eq!(number("x"), json!("x"));
    }
}
