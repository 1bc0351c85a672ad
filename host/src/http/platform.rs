//! Platform endpoints for operators: sign-in, and the tenant lifecycle (create, change, suspend, domains,
//! clone, export, import, delete). The work itself lives in [`crate::lifecycle`], shared with the CLI; these
//! handlers check the request, call it, and drop the host → tenant cache after a change.

use super::api::{Api, Auth, Op};
use super::common::Path;
use super::common::{Json, Page, PageParams, Query};
use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::lifecycle::{self, TenantChange, TenantStatus};
use crate::state::AppState;
use crate::tenancy::{Tenant, TenantSettings};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};

pub fn routes(api: &mut Api) {
    api.tag("platform");
    api.op_io::<LoginRequest, LoginResponse>(
        Op::post(
            "/api/v1/platform/auth/login",
            "Sign in as an operator; returns a 12-hour operator token",
        )
        .auth(Auth::Public),
        post(login),
    );
    api.op_out::<Page<Tenant>>(
        Op::get("/api/v1/platform/tenants", "List academies")
            .auth(Auth::Operator)
            .query(&[
                ("limit", "page size, 1–500 (default 50)"),
                ("cursor", "from the previous page's next_cursor"),
                ("q", "part of the slug or name"),
                ("status", "active or suspended"),
            ]),
        get(list),
    );
    api.op_io::<NewTenant, Tenant>(
        Op::post("/api/v1/platform/tenants", "Create an academy with the built-in roles")
            .auth(Auth::Operator)
            .status(201),
        post(create),
    );
    api.op_out::<Tenant>(
        Op::get("/api/v1/platform/tenants/{slug}", "Read an academy").auth(Auth::Operator),
        get(read),
    );
    api.op_io::<TenantPatch, Tenant>(
        Op::patch(
            "/api/v1/platform/tenants/{slug}",
            "Rename, suspend or resume an academy, or change its settings",
        )
        .auth(Auth::Operator),
        patch(update),
    );
    api.op(
        Op::delete(
            "/api/v1/platform/tenants/{slug}",
            "Delete an academy and everything in it",
        )
        .auth(Auth::Operator),
        delete(remove),
    );
    api.op_io::<CloneRequest, Tenant>(
        Op::post(
            "/api/v1/platform/tenants/{slug}/clone",
            "Copy an academy's structure and configuration (no people, grants, domains or history) into a new one",
        )
        .auth(Auth::Operator)
        .status(201),
        post(clone),
    );
    api.op(
        Op::get(
            "/api/v1/platform/tenants/{slug}/export",
            "Export an academy as a tar.gz archive (credentials excluded)",
        )
        .auth(Auth::Operator)
        .response_body_type("application/gzip"),
        get(export),
    );
    api.op_out::<Tenant>(
        Op::post(
            "/api/v1/platform/tenants/import",
            "Import an exported archive as a new academy, with new ids",
        )
        .auth(Auth::Operator)
        .status(201)
        .request_body_type("application/gzip")
        .query(&[
            ("slug", "the new academy's slug (required)"),
            ("name", "its name (default: as in the archive)"),
        ]),
        // Archives are far larger than JSON bodies; this route alone takes up to the archive cap.
        post(import).layer(DefaultBodyLimit::max(lifecycle::MAX_ARCHIVE_BYTES)),
    );
    api.op_io::<DomainRequest, Tenant>(
        Op::post(
            "/api/v1/platform/tenants/{slug}/domains",
            "Map a custom domain to an academy",
        )
        .auth(Auth::Operator)
        .status(201),
        post(add_domain),
    );
    api.op(
        Op::delete(
            "/api/v1/platform/tenants/{slug}/domains/{domain}",
            "Unmap a custom domain",
        )
        .auth(Auth::Operator),
        delete(remove_domain),
    );
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    #[schemars(length(min = 1, max = 254), regex(pattern = r"\S"))]
    email: String,
    #[schemars(length(max = 256))]
    password: String,
}

/// An operator token.
#[derive(Serialize, schemars::JsonSchema)]
struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    /// RFC 3339.
    expires_at: String,
}

async fn login(State(state): State<AppState>, Json(req): Json<LoginRequest>) -> ApiResult<axum::Json<LoginResponse>> {
    let limits = lifecycle::LoginLimits {
        max_failures: state.config.login_max_failures,
        window_secs: state.config.login_window_secs,
    };
    let issued = lifecycle::operator_login(&state.db, &req.email, &req.password, &state.dummy_hash, limits).await?;
    Ok(axum::Json(LoginResponse {
        token: issued.token,
        expires_at: crate::db::rfc3339(issued.expires_at),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    q: Option<String>,
    status: Option<TenantStatus>,
}

async fn list(
    State(state): State<AppState>,
    _operator: Operator,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<Tenant>>> {
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let q = p.q.as_deref().map(str::to_lowercase).filter(|q| !q.is_empty());
    // Tenants number in the hundreds, not millions: filtering the sorted list in memory is simpler than SQL
    // and keeps one definition of a tenant (with its domains) in tenancy.rs.
    let mut all = lifecycle::list_tenants(&state.db).await?;
    // Byte order, the same order the cursor comparison below uses (the database's collation may differ).
    all.sort_by(|a, b| a.slug.cmp(&b.slug));
    let tenants: Vec<Tenant> = all
        .into_iter()
        .filter(|t| p.cursor.as_ref().is_none_or(|c| t.slug.as_str() > c.as_str()))
        .filter(|t| p.status.is_none_or(|s| t.status == s.as_str()))
        .filter(|t| {
            q.as_ref()
                .is_none_or(|q| t.slug.contains(q.as_str()) || t.name.to_lowercase().contains(q.as_str()))
        })
        .take(limit as usize + 1)
        .collect();
    Ok(axum::Json(Page::from_rows(tenants, limit, &uri, |t| t.slug.clone())))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    /// `<slug>.<base domain>`: 2–40 lower-case letters, digits or hyphens.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])$"))]
    slug: String,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    /// Custom domains.
    #[serde(default)]
    domains: Vec<String>,
    /// Default settings when absent.
    settings: Option<TenantSettings>,
}

async fn create(
    State(state): State<AppState>,
    operator: Operator,
    Json(req): Json<NewTenant>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    for (i, d) in req.domains.iter().enumerate() {
        let field = format!("domains[{i}]");
        let d = lifecycle::check_domain(&field, d)?;
        lifecycle::check_domain_outside_base(&field, &d, &state.config.base_domain)?;
    }
    let settings = req.settings.unwrap_or_default();
    let tenant = lifecycle::create_tenant(
        &state.db,
        &req.slug,
        &req.name,
        &req.domains,
        settings,
        &operator.actor(),
    )
    .await?;
    state.tenants.clear();
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}

async fn read(
    State(state): State<AppState>,
    _operator: Operator,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Tenant>> {
    Ok(axum::Json(lifecycle::get_tenant(&state.db, &slug).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    /// `active` or `suspended`: a suspended academy refuses every sign-in and request.
    status: Option<TenantStatus>,
    /// Replaces the settings as a whole.
    settings: Option<TenantSettings>,
}

async fn update(
    State(state): State<AppState>,
    operator: Operator,
    Path(slug): Path<String>,
    Json(req): Json<TenantPatch>,
) -> ApiResult<axum::Json<Tenant>> {
    let change = TenantChange {
        name: req.name,
        status: req.status,
        settings: req.settings,
    };
    let tenant = lifecycle::update_tenant(&state.db, &slug, change, &operator.actor()).await?;
    state.tenants.clear();
    Ok(axum::Json(tenant))
}

async fn remove(State(state): State<AppState>, operator: Operator, Path(slug): Path<String>) -> ApiResult<StatusCode> {
    let id = lifecycle::delete_tenant(&state.db, &slug).await?;
    tracing::info!(tenant = %slug, operator = %operator.email, "tenant deleted by operator");
    if let Err(e) = state.plugins.runtime().remove_files(&id, None) {
        tracing::warn!(tenant = %slug, error = %format!("{e:#}"), "the deleted academy's plugin files stay");
    }
    state.tenants.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CloneRequest {
    /// The new academy's slug.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])$"))]
    slug: String,
    /// The new academy's name.
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
}

async fn clone(
    State(state): State<AppState>,
    operator: Operator,
    Path(slug): Path<String>,
    Json(req): Json<CloneRequest>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    let tenant = lifecycle::clone_tenant(&state.db, &slug, &req.slug, &req.name, &operator.actor()).await?;
    state.tenants.clear();
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}

async fn export(State(state): State<AppState>, operator: Operator, Path(slug): Path<String>) -> ApiResult<Response> {
    let tenant = lifecycle::get_tenant(&state.db, &slug).await?;
    let bytes = lifecycle::export_tenant(&state.db, &tenant.slug, &operator.actor()).await?;
    // The slug is checked to be [a-z0-9-] when stored, so it is safe inside the header.
    let disposition = format!("attachment; filename=\"{}-export.tar.gz\"", tenant.slug);
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportParams {
    slug: String,
    name: Option<String>,
}

async fn import(
    State(state): State<AppState>,
    operator: Operator,
    Query(p): Query<ImportParams>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    let body = super::common::upload(body)?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "send the archive (tar.gz) as the request body",
        ));
    }
    let tenant = lifecycle::import_tenant(&state.db, &body, &p.slug, p.name.as_deref(), &operator.actor()).await?;
    state.tenants.clear();
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DomainRequest {
    /// A host name such as learn.example.com, outside the base domain.
    domain: String,
}

async fn add_domain(
    State(state): State<AppState>,
    operator: Operator,
    Path(slug): Path<String>,
    Json(req): Json<DomainRequest>,
) -> ApiResult<(StatusCode, axum::Json<Tenant>)> {
    let domain = lifecycle::check_domain("domain", &req.domain)?;
    lifecycle::check_domain_outside_base("domain", &domain, &state.config.base_domain)?;
    let tenant = lifecycle::add_domain(&state.db, &slug, &domain, &operator.actor()).await?;
    state.tenants.clear();
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}

async fn remove_domain(
    State(state): State<AppState>,
    operator: Operator,
    Path((slug, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    lifecycle::remove_domain(&state.db, &slug, &domain, &operator.actor()).await?;
    state.tenants.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::state::AppState;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    struct Harness {
        router: axum::Router,
        dir: std::path::PathBuf,
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn harness() -> Harness {
        let dir = std::env::temp_dir().join(format!("aula-platform-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = crate::db::Db::connect(&format!("sqlite:{}/t.db", dir.display()), 4)
            .await
            .expect("database");
        let config = Config::default();
        let (api_router, openapi) = crate::http::api().finish();
        let state = AppState::new(db, config, openapi);
        crate::lifecycle::create_operator(&state.db, "op@example.com", "Op", "a-long-password")
            .await
            .expect("operator");
        Harness {
            router: crate::http::router(api_router, state),
            dir,
        }
    }

    impl Harness {
        async fn call(
            &self,
            method: Method,
            uri: &str,
            token: Option<&str>,
            body: Body,
            json: bool,
        ) -> (StatusCode, Vec<u8>) {
            let mut req = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::HOST, "localhost");
            if let Some(token) = token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            if json {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            let response = self
                .router
                .clone()
                .oneshot(req.body(body).expect("request"))
                .await
                .expect("response");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            (status, bytes.to_vec())
        }

        async fn json(
            &self,
            method: Method,
            uri: &str,
            token: Option<&str>,
            body: Option<Value>,
        ) -> (StatusCode, Value) {
            let (status, bytes) = match body {
                Some(b) => self.call(method, uri, token, Body::from(b.to_string()), true).await,
                None => self.call(method, uri, token, Body::empty(), false).await,
            };
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }
    }

    #[test]
    fn platform_operations_are_documented() {
        let (_, doc) = crate::http::api().finish();
        let import = &doc["paths"]["/api/v1/platform/tenants/import"]["post"];
        assert!(
            import["requestBody"]["content"]["application/gzip"].is_object(),
            "{import}"
        );
        assert_eq!(import["security"][0]["operator"], json!([]));
        for (path, method) in [
            ("/api/v1/platform/auth/login", "post"),
            ("/api/v1/platform/tenants", "get"),
            ("/api/v1/platform/tenants", "post"),
            ("/api/v1/platform/tenants/{slug}", "patch"),
            ("/api/v1/platform/tenants/{slug}", "delete"),
            ("/api/v1/platform/tenants/{slug}/clone", "post"),
            ("/api/v1/platform/tenants/{slug}/export", "get"),
            ("/api/v1/platform/tenants/{slug}/domains", "post"),
            ("/api/v1/platform/tenants/{slug}/domains/{domain}", "delete"),
        ] {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is not documented"
            );
        }
    }

    #[tokio::test]
    async fn operators_run_the_tenant_lifecycle_over_http() {
        let h = harness().await;
        let login = "/api/v1/platform/auth/login";
        let (status, body) = h
            .json(
                Method::POST,
                login,
                None,
                Some(json!({"email": "op@example.com", "password": "nope-nope-nope"})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
        );
        let (status, body) = h
            .json(
                Method::POST,
                login,
                None,
                Some(json!({"email": "op@example.com", "password": "a-long-password"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["token"].as_str().expect("token").to_owned();
        let t = Some(token.as_str());

        let tenants = "/api/v1/platform/tenants";
        let (status, _) = h.json(Method::GET, tenants, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let new = json!({"slug": "acme", "name": "Acme", "domains": ["learn.acme.test"]});
        let (status, body) = h.json(Method::POST, tenants, t, Some(new.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = h.json(Method::POST, tenants, t, Some(new)).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (StatusCode::CONFLICT, Some("slug"))
        );
        let (status, body) = h
            .json(
                Method::POST,
                tenants,
                t,
                Some(json!({"slug": "x1", "name": "X", "domains": ["x1.localhost"]})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("domains[0]"))
        );
        let (status, body) = h.json(Method::GET, tenants, t, None).await;
        assert_eq!(
            (status, body["items"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(1))
        );

        let (status, body) = h
            .json(
                Method::PATCH,
                "/api/v1/platform/tenants/acme",
                t,
                Some(json!({"status": "suspended"})),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("suspended")),
            "{body}"
        );
        let (status, body) = h
            .json(
                Method::PATCH,
                "/api/v1/platform/tenants/acme",
                t,
                Some(json!({"status": "gone"})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("status")),
            "{body}"
        );
        let (status, body) = h
            .json(
                Method::POST,
                "/api/v1/platform/tenants/acme/domains",
                t,
                Some(json!({"domain": "academy.acme.test"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, _) = h
            .json(
                Method::DELETE,
                "/api/v1/platform/tenants/acme/domains/academy.acme.test",
                t,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        let (status, body) = h
            .json(
                Method::POST,
                "/api/v1/platform/tenants/acme/clone",
                t,
                Some(json!({"slug": "template", "name": "Template"})),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::CREATED, Some("active")),
            "{body}"
        );

        let (status, archive) = h
            .call(
                Method::GET,
                "/api/v1/platform/tenants/template/export",
                t,
                Body::empty(),
                false,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(archive.get(..2), Some(&[0x1f, 0x8b][..]), "a gzip stream");
        let (status, body) = h
            .call(
                Method::POST,
                "/api/v1/platform/tenants/import?slug=restored",
                t,
                Body::from(archive),
                false,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
        // Larger than the 2 MiB JSON limit: the import route still reads it, and refuses it for what it is.
        let (status, body) = h
            .call(
                Method::POST,
                "/api/v1/platform/tenants/import?slug=junk",
                t,
                Body::from(vec![7u8; 3 << 20]),
                false,
            )
            .await;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_archive"))
        );

        let (status, _) = h.json(Method::DELETE, "/api/v1/platform/tenants/acme", t, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = h.json(Method::GET, "/api/v1/platform/tenants/acme", t, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
