//! The branded portal: server-rendered pages for learners and for the people running an academy, on the
//! academy's own host, in its theme, its branding and the viewer's language.
//!
//! - [`theme`]: the default theme embedded in the binary, and each academy's uploaded overrides.
//! - [`branding`]: name, logo, colors, fonts, CSS and wording by academy and organization, and the branding
//!   plugins; resolved per page and cached.
//! - [`i18n`]: the theme's languages and the choice of a page's language.
//! - [`page`]: the request ([`page::Visit`]), rendering, CSRF-checked forms, and the in-process API client
//!   pages read and write through.
//! - `account`, `learner`, `admin`: the pages.
//!
//! Pages work without JavaScript; every response carries a Content-Security-Policy without scripts.

pub mod branding;
pub mod guard;
pub mod helpers;
pub mod i18n;
pub mod page;
pub mod preview;
pub mod theme;

mod account;
mod admin;
mod branding_page;
mod learner;
mod sso;

use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::{OnceLock, Weak};

/// Permissions that open the admin pages (any one of them, anywhere).
pub const ADMIN_PERMISSIONS: &[&str] = &[
    "users.read",
    "orgs.read",
    "roles.read",
    "courses.read",
    "enrollments.write",
    "tenant.manage",
    "plugins.manage",
    "audit.read",
];

/// The portal's shared parts.
pub struct Portal {
    /// Templates and files.
    pub themes: theme::Themes,
    /// The theme's languages.
    pub locales: i18n::Locales,
    /// Branding caches.
    pub branding: branding::BrandingCache,
    /// The application's router, for the in-process API calls of pages (weak: the application owns it).
    router: OnceLock<Weak<Router>>,
}

impl Portal {
    /// The portal with academies' theme copies kept below `themes_dir`.
    pub fn new(themes_dir: &str) -> anyhow::Result<Portal> {
        Ok(Portal {
            themes: theme::Themes::new(themes_dir)?,
            locales: i18n::Locales::load()?,
            branding: branding::BrandingCache::default(),
            router: OnceLock::new(),
        })
    }

    /// Give the portal the application's router (once, when the application is assembled).
    pub fn attach(&self, router: Weak<Router>) {
        let _ = self.router.set(router);
    }

    /// Run a request through the whole application, as if it had come over the network (marked
    /// [`InProcess`]: the page that makes it already holds its academy's turn).
    pub async fn dispatch(&self, mut req: Request) -> Response {
        use tower::ServiceExt;
        req.extensions_mut().insert(InProcess);
        match self.router.get().and_then(Weak::upgrade) {
            Some(router) => match (*router).clone().oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
}

/// Marks a request a page makes through the application in-process. It cannot come from the network (it
/// is a request extension), and it takes no turn of its own among the academy's requests in progress: the
/// page's request holds one, and waiting for a second would let a full share wait on itself.
#[derive(Debug, Clone, Copy)]
pub struct InProcess;

/// The portal's Content-Security-Policy: no scripts at all, styles from the academy's host (and inline
/// styles only with this response's nonce), images from the host, https and data URLs, forms posting only to
/// the host, framing only by the host (the branding preview).
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let style = match nonce {
        Some(n) => format!("'self' 'nonce-{n}'"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'none'; style-src {style}; img-src 'self' https: data:; media-src 'self' https:; \
         font-src 'self' https:; form-action 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'"
    )
}

/// The Content-Security-Policy of admin pages: as [`content_security_policy`], but images, media and fonts
/// only from the academy's own host (and data URLs), so that no stylesheet can carry what an admin page shows
/// to another site.
pub fn admin_content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'none'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; media-src 'self'; \
         font-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'"
    )
}

/// Every portal route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/theme/{*path}", get(asset))
        .merge(account::routes())
        .merge(sso::routes())
        .merge(learner::routes())
        .merge(admin::routes())
        .merge(branding_page::routes())
        .layer(axum::middleware::from_fn_with_state((), security_headers))
}

/// The usual security headers on every portal response (pages set their own CSP with a nonce first).
async fn security_headers(State(()): State<()>, req: Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &str| {
        if !headers.contains_key(&name)
            && let Ok(v) = HeaderValue::from_str(value)
        {
            headers.insert(name, v);
        }
    };
    set(header::CONTENT_SECURITY_POLICY, &content_security_policy(None));
    set(header::X_FRAME_OPTIONS, "SAMEORIGIN");
    set(header::REFERRER_POLICY, "same-origin");
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    set(HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    response
}

/// A theme file: the academy's uploaded `assets/…` first, else the default theme's. Cached by browsers for an
/// hour, and revalidated by ETag.
async fn asset(
    State(state): State<AppState>,
    visit: page::Visit,
    Path(path): Path<String>,
    request_headers: axum::http::HeaderMap,
) -> Response {
    let file = format!("assets/{path}");
    let Some(content_type) = theme::asset_type(&file).filter(|_| theme::check_path(&file).is_ok()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let db = state.db.tenant(&visit.tenant.id);
    let uploaded = match state.portal.themes.tenant(&db, visit.academy.theme_version).await {
        Ok(theme) => theme.asset(&file),
        Err(e) => {
            tracing::error!(error = %e, "theme files could not be read");
            None
        }
    };
    let bytes: Vec<u8> = match uploaded {
        Some(b) => b,
        None => match theme::default_file(&file) {
            Some(b) => b.into_owned(),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let etag = {
        use sha2::{Digest, Sha256};
        format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..8]))
    };
    if request_headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CACHE_CONTROL, "public, max-age=3600".to_owned()),
            (header::ETAG, etag),
            // An uploaded SVG opened directly must not run anything.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; sandbox".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response()
}
