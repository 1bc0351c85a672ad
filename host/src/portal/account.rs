//! Signing in and out, the academy's landing page, signing up, resetting a forgotten password, and the
//! signed-in person's profile (name, language, notifications, password).

use super::learner::{error_value, language_choices, seg, status_of};
use super::page::{PageError, Posted, Visit, sign_in_redirect};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/signup", get(signup_form).post(signup))
        .route("/signup/verify/{token}", get(verify_form).post(verify))
        .route("/password-reset", get(reset_form).post(reset_request))
        .route("/password-reset/{token}", get(reset_confirm_form).post(reset_confirm))
        .route("/profile", get(profile).post(save_profile))
        .route("/profile/notifications", post(save_notifications))
        .route("/profile/password", post(change_password))
}

/// Where to go after signing in: a path on this academy, never another site.
pub fn safe_next(next: Option<&str>) -> &str {
    // Only a path of this academy: one `/`, then a character that cannot start another host (browsers skip
    // tabs and newlines and read `\` as `/`, so `/\tevil.example` and `/\\evil.example` would leave), and
    // nothing that is not a plain printable character anywhere.
    let ok = |n: &str| {
        let mut chars = n.chars();
        chars.next() == Some('/')
            && chars.next().is_none_or(|c| c != '/' && c != '\\')
            && n.chars().all(|c| c.is_ascii_graphic())
            && !n.contains('\\')
    };
    match next {
        Some(n) if ok(n) => n,
        _ => "/learn",
    }
}

async fn home(State(state): State<AppState>, visit: Visit) -> Response {
    visit.render(&state, "home", "home", json!({})).await
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn login_form(State(state): State<AppState>, visit: Visit, Query(q): Query<Next>) -> Response {
    if visit.caller.is_some() {
        return Redirect::to(safe_next(q.next.as_deref())).into_response();
    }
    login_page(&state, &visit, StatusCode::OK, safe_next(q.next.as_deref()), "", None).await
}

/// The sign-in page: the academy's identity providers (each a link that starts single sign-on and comes back
/// to `next`), then the e-mail and password form; with an error when a sign-in failed.
pub(super) async fn login_page(
    state: &AppState,
    visit: &Visit,
    status: StatusCode,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    let next_param: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let providers = match visit.get(state, "/api/v1/auth/providers").await {
        Ok(Value::Array(list)) => list
            .into_iter()
            .map(|mut p| {
                let start = format!("{}?next={next_param}", p["start"].as_str().unwrap_or_default());
                p["start"] = json!(start);
                p
            })
            .collect(),
        _ => Vec::new(),
    };
    let data = json!({
        "next": next,
        "email": email,
        "providers": providers,
        "error": error.map(|message| json!({ "message": message, "field": null })),
    });
    visit.render_status(state, status, "login", "account/login", data).await
}

async fn login(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    let next = safe_next(form.opt("next")).to_owned();
    let body = json!({ "email": form.field("email").trim(), "password": form.field("password") });
    match visit.api(&state, Method::POST, "/api/v1/auth/login", Some(body)).await {
        Ok(reply) => {
            let mut response = Redirect::to(&next).into_response();
            for cookie in reply.headers.get_all(header::SET_COOKIE) {
                response.headers_mut().append(header::SET_COOKIE, cookie.clone());
            }
            response
        }
        Err(e) => {
            let status = match &e {
                PageError::Api { status, .. } => *status,
                PageError::SignIn(_) => StatusCode::UNAUTHORIZED,
            };
            // A wrong password is answered 401 by the API; here it is the same form again, with the message.
            let message = match &e {
                PageError::SignIn(_) => "The e-mail or password is not right.".to_owned(),
                other => other.message().to_owned(),
            };
            login_page(&state, visit, status, &next, form.field("email"), Some(&message)).await
        }
    }
}

async fn logout(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    let mut response = Redirect::to("/").into_response();
    if visit.caller.is_some()
        && let Ok(reply) = visit.api(&state, Method::POST, "/api/v1/auth/logout", None).await
    {
        for cookie in reply.headers.get_all(header::SET_COOKIE) {
            response.headers_mut().append(header::SET_COOKIE, cookie.clone());
        }
    }
    response
}

/// Pass the session cookies an API answer set on to the browser.
fn pass_cookies(response: &mut Response, headers: &axum::http::HeaderMap) {
    for cookie in headers.get_all(header::SET_COOKIE) {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
}

// ---------------------------------------------------------------------------------------------------------
// Sign-up

#[derive(Deserialize)]
struct SignupQuery {
    /// An invitation token (`/signup?invite=…`).
    invite: Option<String>,
    /// The same, as the API's invitation links name it (`/signup?invitation=…`).
    invitation: Option<String>,
}

/// What the sign-up form shows: what was typed (never the password), the academy's languages and its
/// sign-up policy (a hint only: the API decides).
fn signup_data(
    visit: &Visit,
    name: &str,
    email: &str,
    locale: Option<&str>,
    invitation: &str,
    error: Option<Value>,
) -> Value {
    let current = locale.unwrap_or(&visit.locale);
    json!({
        "name": name,
        "email": email,
        "invitation": invitation,
        "locales": language_choices(visit, Some(current)),
        "policy": visit.tenant.settings.signup,
        "error": error,
    })
}

async fn signup_form(State(state): State<AppState>, visit: Visit, Query(q): Query<SignupQuery>) -> Response {
    if visit.caller.is_some() {
        return Redirect::to("/learn").into_response();
    }
    let invitation = q.invitation.or(q.invite).unwrap_or_default();
    let data = signup_data(&visit, "", "", None, invitation.trim(), None);
    visit.render(&state, "signup", "account/signup", data).await
}

async fn signup(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    let email = form.field("email").trim().to_owned();
    let mut body = json!({ "name": form.field("name"), "email": email, "password": form.field("password") });
    if let Some(locale) = form.opt("locale") {
        body["locale"] = json!(locale);
    }
    if let Some(invitation) = form.opt("invitation") {
        body["invitation"] = json!(invitation);
    }
    match visit.api(&state, Method::POST, "/api/v1/signup", Some(body)).await {
        Ok(reply) => {
            let status = reply.body["status"].as_str().unwrap_or("");
            if status == "active" && reply.body["signed_in"] == json!(true) {
                // The API signed the new account in; its session cookie goes on to the browser. (Should an
                // answer ever come without it, signing in with the same e-mail and password gets one.)
                let mut headers = reply.headers;
                if !headers.contains_key(header::SET_COOKIE) {
                    let login = json!({ "email": email, "password": form.field("password") });
                    if let Ok(r) = visit.api(&state, Method::POST, "/api/v1/auth/login", Some(login)).await {
                        headers = r.headers;
                    }
                }
                let mut response = visit.done("/learn", "done.signed_up");
                pass_cookies(&mut response, &headers);
                return response;
            }
            // Awaiting approval, or ready but without a free licence seat: nobody is signed in.
            let data = json!({ "status": status, "email": email, "message": reply.body["message"] });
            visit.render(&state, "signup", "account/signup_done", data).await
        }
        Err(e) => {
            let data = signup_data(
                visit,
                form.field("name"),
                &email,
                form.opt("locale"),
                form.field("invitation").trim(),
                Some(error_value(&state, &e)),
            );
            visit
                .render_status(&state, status_of(&e), "signup", "account/signup", data)
                .await
        }
    }
}

/// The page a confirmation link opens: one button, so that a mail scanner following the link confirms
/// nothing.
async fn verify_form(State(state): State<AppState>, visit: Visit, Path(token): Path<String>) -> Response {
    let data = json!({ "action": format!("/signup/verify/{}", seg(&token)), "error": null });
    visit.render(&state, "signup", "account/signup_verify", data).await
}

async fn verify(State(state): State<AppState>, Path(token): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    let body = json!({ "token": token });
    match visit
        .api(&state, Method::POST, "/api/v1/signup/verify", Some(body))
        .await
    {
        Ok(reply) => {
            if reply.body["signed_in"] == json!(true) {
                let mut response = visit.done("/learn", "done.signed_up");
                pass_cookies(&mut response, &reply.headers);
                return response;
            }
            let data = json!({ "status": reply.body["status"], "message": reply.body["message"] });
            visit.render(&state, "signup", "account/signup_done", data).await
        }
        Err(e) => {
            let data = json!({ "action": format!("/signup/verify/{}", seg(&token)), "error": error_value(&state, &e) });
            visit
                .render_status(&state, status_of(&e), "signup", "account/signup_verify", data)
                .await
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Password reset

#[derive(Deserialize)]
struct EmailQuery {
    email: Option<String>,
}

async fn reset_form(State(state): State<AppState>, visit: Visit, Query(q): Query<EmailQuery>) -> Response {
    let data = json!({ "email": q.email.unwrap_or_default(), "error": null });
    visit
        .render(&state, "password-reset", "account/password_reset", data)
        .await
}

async fn reset_request(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    let email = form.field("email").trim().to_owned();
    let body = json!({ "email": email });
    match visit
        .api(&state, Method::POST, "/api/v1/auth/password-reset", Some(body))
        .await
    {
        // The same answer whether or not the account exists.
        Ok(_) => {
            let data = json!({ "email": email });
            visit
                .render(&state, "password-reset", "account/password_reset_sent", data)
                .await
        }
        Err(e) => {
            let data = json!({ "email": email, "error": error_value(&state, &e) });
            visit
                .render_status(&state, status_of(&e), "password-reset", "account/password_reset", data)
                .await
        }
    }
}

fn reset_confirm_data(token: &str, error: Option<Value>) -> Value {
    json!({ "action": format!("/password-reset/{}", seg(token)), "error": error })
}

async fn reset_confirm_form(State(state): State<AppState>, visit: Visit, Path(token): Path<String>) -> Response {
    // Whether the link still works is known only when it is used (the API has no look-up for it).
    let data = reset_confirm_data(&token, None);
    visit
        .render(&state, "password-reset", "account/password_reset_confirm", data)
        .await
}

async fn reset_confirm(State(state): State<AppState>, Path(token): Path<String>, form: Posted) -> Response {
    let visit = &form.visit;
    let api = format!("/api/v1/auth/password-reset/{}", seg(&token));
    let body = json!({ "new_password": form.field("new_password") });
    match visit.api(&state, Method::POST, &api, Some(body)).await {
        Ok(_) => visit.done("/login", "done.password_reset"),
        Err(PageError::Api { ref code, .. }) if code == "reset_link_invalid" => {
            visit
                .render_status(
                    &state,
                    StatusCode::BAD_REQUEST,
                    "password-reset",
                    "account/password_reset_invalid",
                    json!({}),
                )
                .await
        }
        Err(e) => {
            let data = reset_confirm_data(&token, Some(error_value(&state, &e)));
            visit
                .render_status(
                    &state,
                    status_of(&e),
                    "password-reset",
                    "account/password_reset_confirm",
                    data,
                )
                .await
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Profile

/// Which of the profile page's forms an error belongs to.
#[derive(Clone, Copy)]
enum ProfileForm {
    Profile,
    Notifications,
    Password,
}

impl ProfileForm {
    fn as_str(self) -> &'static str {
        match self {
            ProfileForm::Profile => "profile",
            ProfileForm::Notifications => "notifications",
            ProfileForm::Password => "password",
        }
    }
}

const DELIVERY_MODES: &[&str] = &["immediately", "digest", "never"];

/// The order the notification kinds are shown in.
const KIND_ORDER: &[&str] = &[
    "enrolled",
    "due_soon",
    "overdue",
    "completed",
    "certificate_issued",
    "approval",
];

/// The profile page: the person's name and language choice, their notification preferences as the API
/// gives them (one choice per kind), and a form error if there is one.
async fn profile_page(
    state: &AppState,
    visit: &Visit,
    status: StatusCode,
    typed: Option<(&str, Option<&str>)>,
    error: Option<(ProfileForm, PageError)>,
) -> Response {
    let Some(caller) = visit.caller.as_ref() else {
        return sign_in_redirect("/profile");
    };
    let prefs = match visit.get(state, "/api/v1/me/notification-preferences").await {
        Ok(p) => p,
        Err(e) => return visit.error(state, e).await,
    };
    let locales = &state.portal.locales;
    // The kinds in the order a person thinks of them (any kind not named here comes after, as the API
    // lists it).
    let mut entries: Vec<(&String, &Value)> = prefs.as_object().map(|o| o.iter().collect()).unwrap_or_default();
    entries.sort_by_key(|(kind, _)| KIND_ORDER.iter().position(|k| k == kind).unwrap_or(KIND_ORDER.len()));
    let kinds: Vec<Value> = entries
        .into_iter()
        .map(|(kind, mode)| {
            let key = format!("notify.kind.{kind}");
            let modes: Vec<Value> = DELIVERY_MODES
                .iter()
                .map(|m| json!({ "value": m, "selected": mode == m }))
                .collect();
            json!({ "kind": kind, "key": locales.has_key(&key).then_some(key), "modes": modes })
        })
        .collect();
    // The person's own language choice (`None`: the academy's default applies), as the portal read it for
    // this request.
    let chosen = visit.person.as_ref().and_then(|p| p.locale.clone());
    let (name, locale) = match typed {
        Some((name, locale)) => (name.to_owned(), locale.map(str::to_owned)),
        None => (caller.name.clone(), chosen),
    };
    let (error_form, error) = match &error {
        Some((form, e)) => (Some(form.as_str()), Some(error_value(state, e))),
        None => (None, None),
    };
    let data = json!({
        "name": name,
        "email": caller.email,
        "locale": locale,
        "locales": language_choices(visit, locale.as_deref()),
        "kinds": kinds,
        "error_form": error_form,
        "error": error,
    });
    visit
        .render_status(state, status, "profile", "account/profile", data)
        .await
}

async fn profile(State(state): State<AppState>, visit: Visit) -> Response {
    if let Err(e) = visit.require_user() {
        return visit.error(&state, e).await;
    }
    profile_page(&state, &visit, StatusCode::OK, None, None).await
}

async fn save_profile(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if visit.caller.is_none() {
        return sign_in_redirect("/profile");
    }
    // An empty choice is the academy's default: the API clears the person's own choice on `null`.
    let locale = form.opt("locale");
    let body = json!({ "name": form.field("name"), "locale": locale });
    match visit.api(&state, Method::PATCH, "/api/v1/me", Some(body)).await {
        Ok(_) => visit.done("/profile", "done.profile_saved"),
        Err(PageError::SignIn(_)) => sign_in_redirect("/profile"),
        Err(e) => {
            let status = status_of(&e);
            let typed = Some((form.field("name"), locale));
            profile_page(&state, visit, status, typed, Some((ProfileForm::Profile, e))).await
        }
    }
}

async fn save_notifications(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if visit.caller.is_none() {
        return sign_in_redirect("/profile");
    }
    // One field per kind, named by the kind; the API checks the kinds and the modes.
    let prefs: serde_json::Map<String, Value> = form
        .fields
        .iter()
        .filter(|(k, _)| k != super::page::CSRF_FIELD)
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let api = "/api/v1/me/notification-preferences";
    match visit.api(&state, Method::PUT, api, Some(Value::Object(prefs))).await {
        Ok(_) => visit.done("/profile", "done.notifications_saved"),
        Err(PageError::SignIn(_)) => sign_in_redirect("/profile"),
        Err(e) => {
            let status = status_of(&e);
            profile_page(&state, visit, status, None, Some((ProfileForm::Notifications, e))).await
        }
    }
}

async fn change_password(State(state): State<AppState>, form: Posted) -> Response {
    let visit = &form.visit;
    if visit.caller.is_none() {
        return sign_in_redirect("/profile");
    }
    let body = json!({
        "current_password": form.field("current_password"),
        "new_password": form.field("new_password"),
    });
    match visit.api(&state, Method::POST, "/api/v1/me/password", Some(body)).await {
        Ok(_) => visit.done("/profile", "done.password_changed"),
        Err(PageError::SignIn(_)) => sign_in_redirect("/profile"),
        Err(e) => {
            let status = status_of(&e);
            profile_page(&state, visit, status, None, Some((ProfileForm::Password, e))).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn sign_in_leads_only_to_this_academy() {
        for ok in ["/learn", "/learn/courses/7?tab=2", "/", "/admin/users?q=a%40b"] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\\evil.example",
            "/\\\\evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "evil.example",
            "/ /evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/learn", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/learn");
    }
}
