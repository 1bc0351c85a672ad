//! Single sign-on in the browser: `/sso/<provider>` sends the person to the academy's identity provider,
//! `/sso/callback` takes them back, signs them in (creating or linking their account) and goes on to where
//! they were going. A refusal is the sign-in page again with the reason, and a line in the audit log.

use super::account::{login_page, safe_next};
use super::page::Visit;
use crate::identity::{Callback, SsoError, provision};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/callback", get(callback))
        .route("/sso/{id}", get(start))
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// The status a refusal is shown with.
fn status_of(e: &SsoError) -> StatusCode {
    match e {
        SsoError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        SsoError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        SsoError::ProviderGone => StatusCode::NOT_FOUND,
        SsoError::DomainNotAllowed(_) | SsoError::NoAccount(_) | SsoError::Inactive(_) | SsoError::Refusal(_) => {
            StatusCode::FORBIDDEN
        }
        SsoError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn refused(state: &AppState, visit: &Visit, e: &SsoError) -> Response {
    if let SsoError::Internal(cause) = e {
        tracing::error!(tenant = %visit.tenant.id, error = %cause, "single sign-on failed");
    }
    let mut response = login_page(state, visit, status_of(e), "/learn", "", Some(&e.to_string())).await;
    if let SsoError::Busy(secs) = e {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
    }
    response
}

async fn start(
    State(state): State<AppState>,
    visit: Visit,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Next>,
) -> Response {
    let next = safe_next(q.next.as_deref()).to_owned();
    if visit.caller.is_some() {
        return Redirect::to(&next).into_response();
    }
    let db = state.db.tenant(&visit.tenant.id);
    let provider = match db.begin_read().await {
        Ok(mut tx) => {
            let found = crate::identity::providers::find(&mut tx, &id).await;
            let _ = tx.commit().await;
            found
        }
        Err(e) => Err(e),
    };
    let provider = match provider {
        Ok(Some(p)) if p.enabled => p,
        Ok(_) => return refused(&state, &visit, &SsoError::ProviderGone).await,
        Err(e) => return refused(&state, &visit, &SsoError::from(e)).await,
    };
    // The provider sends the person back to the address they started on: the academy's own host.
    let scheme = if state.config.cookie_secure { "https" } else { "http" };
    let host = crate::auth::extract::link_host(&headers, &state.config, &visit.tenant);
    let redirect_uri = format!("{scheme}://{host}/sso/callback");
    match state.sso.begin(&db, &provider, &redirect_uri, &next).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            // Anyone can start a sign-in: a failed start (the provider down, the academy busy) is logged, not
            // audited, so visitors cannot grow the audit log while the provider is away.
            tracing::warn!(tenant = %visit.tenant.id, provider = %provider.id, reason = e.code(), error = %e,
                "single sign-on could not start");
            refused(&state, &visit, &e).await
        }
    }
}

async fn callback(
    State(state): State<AppState>,
    visit: Visit,
    headers: HeaderMap,
    Query(cb): Query<Callback>,
) -> Response {
    let db = state.db.tenant(&visit.tenant.id);
    let request_id = crate::auth::extract::request_id(&headers);
    let (provider, claims, next) = match state.sso.finish(&db, &cb).await {
        Ok(done) => done,
        Err(e) => {
            // A state nobody issued is noise anyone can make: it is not worth an audit line.
            if !matches!(e, SsoError::UnknownState)
                && let Err(audit) = provision::record_refusal(&db, None, None, &e, request_id).await
            {
                tracing::error!(error = %audit, "recording a refused sign-in failed");
            }
            return refused(&state, &visit, &e).await;
        }
    };
    let signed = provision::sign_in(
        &db,
        &state.config,
        &state.plugins,
        &visit.tenant,
        &provider,
        &claims,
        request_id.clone(),
    )
    .await;
    match signed {
        Ok(signed) => {
            let mut response = Redirect::to(safe_next(Some(&next))).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&signed.cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(e) => {
            if let Err(audit) =
                provision::record_refusal(&db, Some(&provider), claims.email.as_deref(), &e, request_id).await
            {
                tracing::error!(error = %audit, "recording a refused sign-in failed");
            }
            refused(&state, &visit, &e).await
        }
    }
}
