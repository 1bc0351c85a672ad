//! The learner's pages: catalog, course, lessons and quizzes, my learning, certificates.
//!
//! Everything here reads and writes through the learner's API (`/api/v1/catalog…`, `/api/v1/me/…`), as the
//! signed-in viewer. The public certificate check (`/certificates/verify/{code}`) works signed out too.

use super::page::{PageError, Posted, Visit, sign_in_redirect};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/catalog", get(catalog))
        .route("/catalog/{course_id}", get(course))
        .route("/catalog/{course_id}/enroll", post(enroll))
        .route("/learn", get(learning))
        .route("/learn/{course_id}", get(course_lessons))
        .route("/learn/{course_id}/{lesson_id}", get(lesson))
        .route("/learn/{course_id}/{lesson_id}/complete", post(complete))
        .route("/learn/{course_id}/{lesson_id}/quiz", post(quiz))
        .route("/certificates", get(certificates))
        .route("/certificates/verify", get(verify_lookup))
        .route("/certificates/verify/{code}", get(verify))
}

/// Encode a query-string value.
pub fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Encode one path segment (everything but unreserved characters is percent-encoded).
pub fn seg(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The day of an RFC 3339 time (`2026-11-25T10:00:00.000Z` → `2026-11-25`), or null.
pub fn day(v: &Value) -> Value {
    v.as_str()
        .and_then(|s| s.get(..10))
        .map_or(Value::Null, |d| Value::String(d.to_owned()))
}

/// The HTTP status of a page error.
pub fn status_of(e: &PageError) -> StatusCode {
    match e {
        PageError::Api { status, .. } => *status,
        PageError::SignIn(_) => StatusCode::UNAUTHORIZED,
    }
}

/// An API refusal as template data: `{code, message, field, key}`. `key` names the theme's wording for the
/// refusal when it has one (`apierror.<code>.<field>`, then `apierror.<code>`), so that the page says it in
/// its own language; otherwise the API's message is shown.
pub fn error_value(state: &AppState, e: &PageError) -> Value {
    let mut v = e.to_value();
    if let PageError::Api { code, field, .. } = e {
        let locales = &state.portal.locales;
        let mut keys: Vec<String> = field.iter().map(|f| format!("apierror.{code}.{f}")).collect();
        keys.push(format!("apierror.{code}"));
        if let Some(key) = keys.into_iter().find(|k| locales.has_key(k)) {
            v["key"] = Value::String(key);
        }
    }
    v
}

/// The names of languages in themselves, for language choices (a language is named the way its speakers
/// name it, whatever the page's language).
fn endonym(code: &str) -> &str {
    match code.split('-').next().unwrap_or(code) {
        "en" => "English",
        "de" => "Deutsch",
        "fr" => "Français",
        "es" => "Español",
        "it" => "Italiano",
        "nl" => "Nederlands",
        "pt" => "Português",
        "pl" => "Polski",
        "sv" => "Svenska",
        "da" => "Dansk",
        "nb" | "no" => "Norsk",
        "fi" => "Suomi",
        "cs" => "Čeština",
        "tr" => "Türkçe",
        "ja" => "日本語",
        "zh" => "中文",
        _ => code,
    }
}

/// The academy's languages as `{code, name, selected}`, with `selected` marking `current`.
pub fn language_choices(visit: &Visit, current: Option<&str>) -> Value {
    visit
        .tenant
        .settings
        .allowed_locales
        .iter()
        .map(|code| {
            let name = if code.contains('-') {
                format!("{} ({code})", endonym(code))
            } else {
                endonym(code).to_owned()
            };
            json!({ "code": code, "name": name, "selected": current == Some(code.as_str()) })
        })
        .collect()
}

/// A refusal as a page of its own (with a way back), or the sign-in redirect.
async fn problem(state: &AppState, visit: &Visit, e: PageError, back: (&str, &str)) -> Response {
    match e {
        PageError::SignIn(next) => sign_in_redirect(&next),
        e => {
            let data = json!({
                "error": error_value(state, &e),
                "status": status_of(&e).as_u16(),
                "back": { "href": back.0, "key": back.1 },
            });
            visit
                .render_status(state, status_of(&e), "error", "learner/problem", data)
                .await
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Catalog and course page

#[derive(Deserialize)]
struct CatalogQuery {
    q: Option<String>,
    language: Option<String>,
    /// `yes`: only courses you are enrolled in; `no`: only the others.
    enrolled: Option<String>,
}

/// Enrolled, in progress or completed (a dropped enrollment counts as not enrolled: you may enroll again).
fn is_enrolled(course: &Value) -> bool {
    course["enrollment_status"].as_str().is_some_and(|s| s != "dropped")
}

async fn catalog(State(state): State<AppState>, visit: Visit, Query(query): Query<CatalogQuery>) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    let q = query.q.unwrap_or_default();
    let language = query.language.unwrap_or_default();
    let enrolled = query
        .enrolled
        .as_deref()
        .filter(|v| matches!(*v, "yes" | "no"))
        .unwrap_or("");
    let mut path = String::from("/api/v1/catalog");
    let mut sep = '?';
    for (k, v) in [("q", &q), ("language", &language)] {
        if !v.trim().is_empty() {
            path.push_str(&format!("{sep}{k}={}", enc(v.trim())));
            sep = '&';
        }
    }
    let courses = match visit.get(&state, &path).await {
        Ok(c) => c,
        Err(e) => return visit.error(&state, e).await,
    };
    // The languages to filter by: those of the courses offered (all of them, not only the filtered ones).
    let all = if path == "/api/v1/catalog" {
        courses.clone()
    } else {
        visit.get(&state, "/api/v1/catalog").await.unwrap_or(Value::Null)
    };
    let mut languages: Vec<&str> = all
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["language"].as_str()).collect())
        .unwrap_or_default();
    languages.sort_unstable();
    languages.dedup();
    // The enrolled filter works on what the catalog says about each course (no further API call).
    let courses: Vec<Value> = courses
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| match enrolled {
                    "yes" => is_enrolled(c),
                    "no" => !is_enrolled(c),
                    _ => true,
                })
                .map(|c| {
                    let mut c = c.clone();
                    c["enrolled"] = json!(is_enrolled(&c));
                    c
                })
                .collect()
        })
        .unwrap_or_default();
    let filtered = !q.trim().is_empty() || !language.is_empty() || !enrolled.is_empty();
    let data = json!({
        "courses": courses, "count": courses.len(), "filtered": filtered,
        "q": q, "language": language, "languages": languages, "enrolled": enrolled,
    });
    visit.render(&state, "catalog", "learner/catalog", data).await
}

/// The course page's data: the catalog's course with its outline, plus what the page shows about it.
fn course_data(course: Value, error: Option<Value>) -> Value {
    let enrolled = is_enrolled(&course);
    let lessons = course["lessons"].as_array().map(Vec::len).unwrap_or(0);
    let done = course["lessons"]
        .as_array()
        .map(|l| l.iter().filter(|l| l["done"] == json!(true)).count())
        .unwrap_or(0);
    json!({
        "course": course,
        "enrolled": enrolled,
        "lesson_count": lessons,
        "done_count": done,
        "error": error,
    })
}

async fn course(State(state): State<AppState>, visit: Visit, Path(course_id): Path<String>) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    match visit.get(&state, &format!("/api/v1/catalog/{}", seg(&course_id))).await {
        Ok(course) => {
            visit
                .render(&state, "course", "learner/course", course_data(course, None))
                .await
        }
        Err(e) => problem(&state, &visit, e, ("/catalog", "course.back")).await,
    }
}

async fn enroll(State(state): State<AppState>, Path(course_id): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    let page = format!("/catalog/{}", seg(&course_id));
    if visit.caller.is_none() {
        return sign_in_redirect(&page);
    }
    let api = format!("/api/v1/catalog/{}/enroll", seg(&course_id));
    match visit.api(&state, Method::POST, &api, None).await {
        Ok(reply) => match reply.body["outcome"].as_str() {
            Some("pending_approval") => visit.done(&page, "done.enroll_requested"),
            Some("already_enrolled") => visit.done(&format!("/learn/{}", seg(&course_id)), "done.already_enrolled"),
            _ => visit.done(&format!("/learn/{}", seg(&course_id)), "done.enrolled"),
        },
        Err(PageError::SignIn(_)) => sign_in_redirect(&page),
        Err(e) => {
            // The course page again, with the refusal above the form.
            let error = error_value(&state, &e);
            match visit.get(&state, &format!("/api/v1/catalog/{}", seg(&course_id))).await {
                Ok(course) => {
                    visit
                        .render_status(
                            &state,
                            status_of(&e),
                            "course",
                            "learner/course",
                            course_data(course, Some(error)),
                        )
                        .await
                }
                Err(_) => problem(&state, visit, e, ("/catalog", "course.back")).await,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// My learning

/// An enrollment as the pages show it: the API's fields, with days instead of times.
fn enrollment_view(e: &Value) -> Value {
    let mut v = e.clone();
    v["due_day"] = day(&e["due_at"]);
    v["completed_day"] = day(&e["completed_at"]);
    v["started_day"] = day(&e["started_at"]);
    v
}

async fn learning(State(state): State<AppState>, visit: Visit) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    let enrollments = match visit.get(&state, "/api/v1/me/enrollments").await {
        Ok(v) => v,
        Err(e) => return visit.error(&state, e).await,
    };
    let all: Vec<Value> = enrollments
        .as_array()
        .map(|a| a.iter().map(enrollment_view).collect())
        .unwrap_or_default();
    let (done, open): (Vec<Value>, Vec<Value>) = all.into_iter().partition(|e| e["status"] == "completed");
    let data = json!({ "open": open, "completed": done, "any": !(open.is_empty() && done.is_empty()) });
    visit.render(&state, "learning", "learner/learning", data).await
}

async fn course_lessons(State(state): State<AppState>, visit: Visit, Path(course_id): Path<String>) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    let mine = match visit
        .get(&state, &format!("/api/v1/me/courses/{}", seg(&course_id)))
        .await
    {
        Ok(v) => v,
        Err(PageError::Api { code, .. }) if code == "not_enrolled" => {
            return Redirect::to(&format!("/catalog/{}", seg(&course_id))).into_response();
        }
        Err(e) => return problem(&state, &visit, e, ("/learn", "learn.back")).await,
    };
    let lessons: Vec<Value> = mine["lessons"].as_array().cloned().unwrap_or_default();
    let next = lessons.iter().find(|l| l["done"] != json!(true)).cloned();
    let data = json!({
        "enrollment": enrollment_view(&mine["enrollment"]),
        "lessons": lessons,
        "next": next,
    });
    visit.render(&state, "learning", "learner/lessons", data).await
}

// ---------------------------------------------------------------------------------------------------------
// Lessons and quizzes

/// How a media URL is shown: `video` or `audio` for a file of that kind, `link` otherwise (the CSP allows no
/// frames from other sites, so players of video sites are linked to, not embedded).
fn media_kind(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "mp4" | "m4v" | "webm" | "ogv" | "mov" => "video",
        "mp3" | "m4a" | "aac" | "oga" | "ogg" | "opus" | "wav" | "flac" => "audio",
        _ => "link",
    }
}

/// The quiz's questions as form data: names `q0`, `q1`, … with the choices' indexes as values, and the
/// choices `picked` (when the form is shown again).
fn quiz_view(questions: &Value, picked: &[Vec<usize>]) -> Value {
    questions
        .as_array()
        .map(|qs| {
            qs.iter()
                .enumerate()
                .map(|(i, q)| {
                    let chosen = picked.get(i).cloned().unwrap_or_default();
                    let choices: Vec<Value> = q["choices"]
                        .as_array()
                        .map(|cs| {
                            cs.iter()
                                .enumerate()
                                .map(|(j, c)| {
                                    json!({
                                        "id": format!("q{i}-c{j}"), "value": j, "label": c,
                                        "checked": chosen.contains(&j),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    json!({
                        "name": format!("q{i}"), "number": i + 1, "prompt": q["prompt"],
                        "multiple": q["multiple"], "choices": choices,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The lesson page's data: the lesson, its place in the course (previous and next), the quiz form.
async fn lesson_data(
    state: &AppState,
    visit: &Visit,
    course_id: &str,
    lesson: Value,
    picked: &[Vec<usize>],
    error: Option<Value>,
) -> Value {
    let outline = visit
        .get(state, &format!("/api/v1/catalog/{}", seg(course_id)))
        .await
        .ok();
    let lessons: Vec<Value> = outline
        .as_ref()
        .and_then(|c| c["lessons"].as_array())
        .cloned()
        .unwrap_or_default();
    let at = lessons.iter().position(|l| l["id"] == lesson["id"]);
    let prev = at.and_then(|i| i.checked_sub(1)).and_then(|i| lessons.get(i)).cloned();
    let next = at.and_then(|i| lessons.get(i + 1)).cloned();
    let media = lesson["media_url"]
        .as_str()
        .map(|url| json!({ "url": url, "kind": media_kind(url) }));
    let max = lesson["max_attempts"].as_i64();
    let used = lesson["attempts_used"].as_i64().unwrap_or(0);
    let attempts_left = max.map(|m| (m - used).max(0));
    let is_quiz = lesson["kind"] == "quiz";
    let done = lesson["done"] == json!(true);
    json!({
        "course_id": course_id,
        "course_title": outline.as_ref().map(|c| c["title"].clone()),
        "lesson": lesson,
        "is_quiz": is_quiz,
        "media": media,
        "questions": quiz_view(&lesson["questions"], picked),
        "attempts_left": attempts_left,
        "can_attempt": is_quiz && !done && attempts_left != Some(0),
        "position": at.map(|i| i + 1),
        "count": lessons.len(),
        "prev": prev,
        "next": next,
        "error": error,
    })
}

fn lesson_api(course_id: &str, lesson_id: &str) -> String {
    format!("/api/v1/me/courses/{}/lessons/{}", seg(course_id), seg(lesson_id))
}

async fn lesson(
    State(state): State<AppState>,
    visit: Visit,
    Path((course_id, lesson_id)): Path<(String, String)>,
) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    let back = format!("/catalog/{}", seg(&course_id));
    match visit.get(&state, &lesson_api(&course_id, &lesson_id)).await {
        Ok(lesson) => {
            let data = lesson_data(&state, &visit, &course_id, lesson, &[], None).await;
            visit.render(&state, "lesson", "learner/lesson", data).await
        }
        Err(e) => problem(&state, &visit, e, (&back, "lesson.back")).await,
    }
}

async fn complete(
    State(state): State<AppState>,
    Path((course_id, lesson_id)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    let page = format!("/learn/{}/{}", seg(&course_id), seg(&lesson_id));
    if visit.caller.is_none() {
        return sign_in_redirect(&page);
    }
    let api = format!("{}/complete", lesson_api(&course_id, &lesson_id));
    match visit.api(&state, Method::POST, &api, None).await {
        Ok(reply) => {
            let notice = if reply.body["status"] == "completed" {
                "done.course_completed"
            } else {
                "done.lesson_completed"
            };
            visit.done(&format!("/learn/{}", seg(&course_id)), notice)
        }
        Err(PageError::SignIn(_)) => sign_in_redirect(&page),
        Err(e) => problem(&state, visit, e, (&page, "lesson.back_to_lesson")).await,
    }
}

async fn quiz(
    State(state): State<AppState>,
    Path((course_id, lesson_id)): Path<(String, String)>,
    form: Posted,
) -> Response {
    let visit = &form.visit;
    let page = format!("/learn/{}/{}", seg(&course_id), seg(&lesson_id));
    if visit.caller.is_none() {
        return sign_in_redirect(&page);
    }
    let back = format!("/catalog/{}", seg(&course_id));
    // The number of questions, to send one answer (maybe empty) for each.
    let lesson = match visit.get(&state, &lesson_api(&course_id, &lesson_id)).await {
        Ok(l) => l,
        Err(e) => return problem(&state, visit, e, (&back, "lesson.back")).await,
    };
    let count = lesson["questions"].as_array().map(Vec::len).unwrap_or(0);
    let answers: Vec<Vec<usize>> = (0..count)
        .map(|i| {
            let mut picked: Vec<usize> = form
                .all(&format!("q{i}"))
                .iter()
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            picked.sort_unstable();
            picked.dedup();
            picked
        })
        .collect();
    let api = format!("{}/attempts", lesson_api(&course_id, &lesson_id));
    match visit
        .api(&state, Method::POST, &api, Some(json!({ "answers": answers })))
        .await
    {
        Ok(reply) => {
            let result = reply.body;
            // The lesson as it is now (done when passed), for the way on.
            let lesson = visit
                .get(&state, &lesson_api(&course_id, &lesson_id))
                .await
                .unwrap_or(lesson);
            let mut data = lesson_data(&state, visit, &course_id, lesson, &[], None).await;
            data["unlimited"] = json!(result["attempts_left"].is_null());
            data["result"] = result;
            visit.render(&state, "lesson", "learner/quiz_result", data).await
        }
        Err(PageError::SignIn(_)) => sign_in_redirect(&page),
        Err(e) => {
            let status = status_of(&e);
            let error = error_value(&state, &e);
            let data = lesson_data(&state, visit, &course_id, lesson, &answers, Some(error)).await;
            visit
                .render_status(&state, status, "lesson", "learner/lesson", data)
                .await
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Certificates

fn certificate_view(c: &Value) -> Value {
    let mut v = c.clone();
    v["issued_day"] = day(&c["issued_at"]);
    v["expires_day"] = day(&c["expires_at"]);
    v["revoked_day"] = day(&c["revoked_at"]);
    v["verify_path"] = json!(format!(
        "/certificates/verify/{}",
        seg(c["code"].as_str().unwrap_or(""))
    ));
    v
}

async fn certificates(State(state): State<AppState>, visit: Visit) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    let list = match visit.get(&state, "/api/v1/me/certificates").await {
        Ok(v) => v,
        Err(e) => return visit.error(&state, e).await,
    };
    let certificates: Vec<Value> = list
        .as_array()
        .map(|a| a.iter().map(certificate_view).collect())
        .unwrap_or_default();
    let data = json!({ "certificates": certificates });
    visit.render(&state, "certificates", "learner/certificates", data).await
}

#[derive(Deserialize)]
struct CodeQuery {
    code: Option<String>,
}

/// The verification form (`?code=` leads to the certificate's page).
async fn verify_lookup(State(state): State<AppState>, visit: Visit, Query(q): Query<CodeQuery>) -> Response {
    match q.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(code) => Redirect::to(&format!("/certificates/verify/{}", seg(code))).into_response(),
        None => {
            let data = json!({ "code": "", "looked_up": false });
            visit.render(&state, "verify", "learner/verify", data).await
        }
    }
}

/// A certificate's public check, for anyone (signed in or not).
async fn verify(State(state): State<AppState>, visit: Visit, Path(code): Path<String>) -> Response {
    let code = code.trim().to_owned();
    let api = format!("/api/v1/certificates/verify/{}", seg(&code));
    let (status, data) = match visit.api(&state, Method::GET, &api, None).await {
        Ok(reply) => {
            let mut c = reply.body;
            c["issued_day"] = day(&c["issued_at"]);
            c["expires_day"] = day(&c["expires_at"]);
            (
                StatusCode::OK,
                json!({ "code": code, "looked_up": true, "certificate": c }),
            )
        }
        Err(e @ PageError::Api { .. }) if status_of(&e) == StatusCode::NOT_FOUND => (
            StatusCode::NOT_FOUND,
            json!({ "code": code, "looked_up": true, "certificate": null }),
        ),
        Err(e) => {
            let status = status_of(&e);
            let status = if status == StatusCode::UNAUTHORIZED {
                StatusCode::BAD_GATEWAY
            } else {
                status
            };
            (
                status,
                json!({ "code": code, "looked_up": true, "certificate": null, "error": error_value(&state, &e) }),
            )
        }
    };
    visit
        .render_status(&state, status, "verify", "learner/verify", data)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_is_shown_as_its_kind() {
        assert_eq!(media_kind("https://cdn.example.com/intro.MP4?x=1"), "video");
        assert_eq!(media_kind("https://cdn.example.com/talk.mp3#t=3"), "audio");
        assert_eq!(media_kind("https://www.example.com/videos/intro"), "link");
        assert_eq!(media_kind("https://youtube.com/watch?v=abc.mp4"), "link");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("abc-DEF_1.2~"), "abc-DEF_1.2~");
        assert_eq!(seg("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(day(&json!("2026-11-25T10:00:00.000Z")), json!("2026-11-25"));
        assert_eq!(day(&Value::Null), Value::Null);
    }

    #[test]
    fn quiz_questions_become_named_fields() {
        let qs = json!([{"prompt": "Which?", "choices": ["a", "b"], "multiple": true}]);
        let v = quiz_view(&qs, &[vec![1]]);
        assert_eq!(v[0]["name"], "q0");
        assert_eq!(v[0]["choices"][1]["id"], "q0-c1");
        assert_eq!(v[0]["choices"][1]["checked"], true);
        assert_eq!(v[0]["choices"][0]["checked"], false);
    }
}
