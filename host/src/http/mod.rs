//! The HTTP edge: one module per resource, each adding its operations to the [`api::Api`] table, merged
//! here with the operational endpoints and the middleware.

pub mod api;
pub mod common;
pub mod serve;

mod account;
mod audit;
mod auth;
mod branding;
mod certificates;
mod courses;
mod enrollments;
mod grants;
mod identity_providers;
mod imports;
mod invitations;
mod learn;
mod lessons;
mod notifications;
mod ops;
mod org_domains;
mod orgs;
mod platform;
mod plugins;
mod profile_fields;
mod program_enrollments;
mod programs;
mod reports;
mod requests;
mod roles;
mod rules;
mod scim;
mod scim_tokens;
mod segments;
mod signup;
mod tags;
mod tenant;
mod tokens;
mod users;

use crate::state::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Every API operation, in one table.
pub fn api() -> api::Api {
    let mut api = api::Api::new();
    auth::routes(&mut api);
    account::routes(&mut api);
    tenant::routes(&mut api);
    branding::routes(&mut api);
    users::routes(&mut api);
    orgs::routes(&mut api);
    tags::routes(&mut api);
    segments::routes(&mut api);
    signup::routes(&mut api);
    invitations::routes(&mut api);
    org_domains::routes(&mut api);
    profile_fields::routes(&mut api);
    roles::routes(&mut api);
    grants::routes(&mut api);
    identity_providers::routes(&mut api);
    scim_tokens::routes(&mut api);
    imports::routes(&mut api);
    tokens::routes(&mut api);
    audit::routes(&mut api);
    plugins::routes(&mut api);
    enrollments::routes(&mut api);
    requests::routes(&mut api);
    program_enrollments::routes(&mut api);
    certificates::routes(&mut api);
    learn::routes(&mut api);
    notifications::routes(&mut api);
    rules::routes(&mut api);
    platform::routes(&mut api);
    courses::routes(&mut api);
    lessons::routes(&mut api);
    programs::routes(&mut api);
    reports::routes(&mut api);
    api
}

/// The complete router with middleware, given the state (which holds the OpenAPI document of `api`).
pub fn router(api_router: Router<AppState>, state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let body_limit = state.config.max_body_bytes;
    let hsts = state.config.cookie_secure;
    Router::new()
        .merge(api_router)
        .merge(ops::router())
        .merge(crate::portal::routes())
        .merge(scim::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), forget_callers_on_write))
        .layer(middleware::from_fn_with_state(state.clone(), take_turns))
        .layer(middleware::from_fn(track_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        // Served over HTTPS (the Secure cookie says so): browsers keep to HTTPS for a year.
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            move |_: &Response| hsts.then(|| HeaderValue::from_static("max-age=31536000; includeSubDomains")),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Every request but the probes (and a page's in-process API calls, whose page holds the turn) runs in its academy's share of the requests in progress (the platform's
/// host and hosts that name no academy have a share each): one academy's flood of requests waits in its own
/// queue, and is answered `429` past the wait, instead of taking the server's time from the others. A turn
/// lasts at most `request_timeout_ms`.
async fn take_turns(axum::extract::State(state): axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics")
        || req.extensions().get::<crate::portal::InProcess>().is_some()
    {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let share = match crate::auth::extract::host_tenant(&parts, &state).await {
        Ok(crate::tenancy::HostTenant::Tenant(tenant)) => tenant.id,
        Ok(crate::tenancy::HostTenant::Platform) => "platform".to_owned(),
        Ok(crate::tenancy::HostTenant::Unknown) => "unknown hosts".to_owned(),
        // The host could not be looked up (the lookups are busy, or the database failed): say so now.
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let _turn = match state.requests.acquire(&share).await {
        Ok(turn) => turn,
        Err(busy) => return axum::response::IntoResponse::into_response(crate::error::ApiError::from(busy)),
    };
    // A request that takes too long (a body trickled in, a slow plugin, a lock held elsewhere) is stopped: its
    // transaction is rolled back when the handler is dropped, and its turn goes to the next.
    let limit = std::time::Duration::from_millis(state.config.request_timeout_ms.into());
    match tokio::time::timeout(limit, next.run(Request::from_parts(parts, body))).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(share = %share, limit_ms = state.config.request_timeout_ms, "a request ran out of time");
            axum::response::IntoResponse::into_response(crate::error::ApiError::Unavailable {
                message: format!(
                    "the request took longer than {} ms and was stopped; try again",
                    state.config.request_timeout_ms
                ),
                retry_after_secs: 1,
            })
        }
    }
}

/// Any successful change may have touched what authentication and branding depend on (a token, a grant, a
/// user's status, an organization's place in the tree, the academy's look): forget what is cached of the
/// academy the change was made in, so its next request looks again. Other academies' cached callers and
/// branding stay: one academy's writes cannot keep emptying the caches the others' requests depend on. A
/// change on the platform's host (an operator's, or an API token's naming its academy) forgets everything.
async fn forget_callers_on_write(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let reads = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if reads {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let academy = match crate::auth::extract::host_tenant(&parts, &state).await {
        Ok(crate::tenancy::HostTenant::Tenant(tenant)) => Some(tenant.id),
        _ => None,
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    if response.status().is_success() {
        match academy {
            Some(id) => {
                state.callers.forget(&id);
                // Callers met on the platform's host may be this academy's people.
                state.callers.forget("");
                state.portal.branding.forget(&id);
            }
            None => {
                state.callers.clear();
                state.portal.branding.clear();
            }
        }
    }
    response
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("aula_http_requests_total", &labels).increment(1);
    metrics::histogram!("aula_http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    response
}
