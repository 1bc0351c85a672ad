//! Identity providers: an academy admin configures single sign-on (OpenID Connect); the sign-in page lists
//! the enabled ones. The flow itself (`/sso/…`) is the portal's: it is a browser's round trip.

use super::api::{Api, Auth, Op};
use super::common::{Json, Path};
use crate::audit::{Change, record};
use crate::auth::{Caller, RequestHost};
use crate::error::{ApiError, ApiResult};
use crate::identity::providers::{self, NewProvider, Provider, ProviderOut, ProviderPatch};
use crate::scope::Permission;
use crate::state::AppState;
use crate::tenancy::Tenant;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::Serialize;
use serde_json::json;

pub fn routes(api: &mut Api) {
    api.tag("single sign-on");
    api.op_out::<Vec<ProviderOut>>(
        Op::get("/api/v1/identity-providers", "The academy's identity providers").permission("tenant.manage"),
        get(list),
    );
    api.op_io::<NewProvider, ProviderOut>(
        Op::post(
            "/api/v1/identity-providers",
            "Add an OpenID Connect identity provider (its discovery document is read at the first sign-in)",
        )
        .permission("tenant.manage")
        .status(201),
        post(create),
    );
    api.op_out::<ProviderOut>(
        Op::get("/api/v1/identity-providers/{id}", "Read an identity provider").permission("tenant.manage"),
        get(read),
    );
    api.op_io::<ProviderPatch, ProviderOut>(
        Op::patch(
            "/api/v1/identity-providers/{id}",
            "Change an identity provider (a new secret, domains, mapping, …)",
        )
        .permission("tenant.manage"),
        patch(update),
    );
    api.op(
        Op::delete(
            "/api/v1/identity-providers/{id}",
            "Remove an identity provider (accounts stay; their links to it go)",
        )
        .permission("tenant.manage"),
        delete(remove),
    );
    api.op_out::<Vec<SignInOption>>(
        Op::get(
            "/api/v1/auth/providers",
            "The identity providers people of this academy can sign in through",
        )
        .auth(Auth::Public),
        get(sign_in_options),
    );
}

/// The redirect URIs to register at a provider: `/sso/callback` on every address of the academy.
fn redirect_uris(state: &AppState, tenant: &Tenant) -> Vec<String> {
    let scheme = if state.config.cookie_secure { "https" } else { "http" };
    let port = state
        .config
        .notifications
        .link_port
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    tenant
        .domains
        .iter()
        .cloned()
        .chain([format!("{}.{}", tenant.slug, state.config.base_domain)])
        .map(|host| format!("{scheme}://{host}{port}/sso/callback"))
        .collect()
}

fn out(state: &AppState, caller: &Caller, p: &Provider) -> ProviderOut {
    p.out(redirect_uris(state, &caller.tenant))
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Vec<ProviderOut>>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let all = providers::list(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(all.iter().map(|p| out(&state, &caller, p)).collect()))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ProviderOut>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let found = providers::find(&mut tx, &id).await?.ok_or(ApiError::NotFound {
        what: "identity provider",
    })?;
    tx.commit().await?;
    Ok(axum::Json(out(&state, &caller, &found)))
}

/// What the audit log keeps of a provider: everything but the secret.
fn audited(p: &ProviderOut) -> serde_json::Value {
    json!(p)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewProvider>,
) -> ApiResult<(StatusCode, axum::Json<ProviderOut>)> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let allow_private = state.config.sso.allow_private_addresses;
    let mut tx = caller.db().begin().await?;
    let created = providers::create(&mut tx, &req, allow_private).await?;
    let shown = out(&state, &caller, &created);
    record(
        &mut tx,
        &caller.actor(),
        Change::created(
            "identity_provider.create",
            "identity_provider",
            &created.id,
            audited(&shown),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(shown)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<ProviderPatch>,
) -> ApiResult<axum::Json<ProviderOut>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let allow_private = state.config.sso.allow_private_addresses;
    let mut tx = caller.db().begin().await?;
    let (before, after) = providers::update(&mut tx, &id, &req, allow_private).await?;
    let (before, shown) = (out(&state, &caller, &before), out(&state, &caller, &after));
    let mut change = json!({"after": audited(&shown)});
    if req.client_secret.is_some() {
        change["client_secret"] = json!("replaced");
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "identity_provider.update",
            "identity_provider",
            &id,
            audited(&before),
            change,
        ),
    )
    .await?;
    tx.commit().await?;
    state.sso.forget(&id);
    Ok(axum::Json(shown))
}

async fn remove(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin().await?;
    let before = providers::delete(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted(
            "identity_provider.delete",
            "identity_provider",
            &id,
            audited(&out(&state, &caller, &before)),
        ),
    )
    .await?;
    tx.commit().await?;
    state.sso.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// A way to sign in, as the sign-in page offers it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SignInOption {
    pub id: String,
    /// The button's text.
    pub name: String,
    /// Where the browser goes to start (`/sso/<id>`; add `?next=/path` to come back there).
    pub start: String,
    /// The e-mail domains it is for (none: anyone it vouches for).
    pub email_domains: Vec<String>,
    /// Whether people of those domains may also sign in with a password.
    pub password_signin: bool,
}

async fn sign_in_options(
    State(state): State<AppState>,
    RequestHost(host): RequestHost,
) -> ApiResult<axum::Json<Vec<SignInOption>>> {
    let tenant = super::common::public_academy(host, "sign in")?;
    let db = state.db.tenant(&tenant.id);
    let mut tx = db.begin_read().await?;
    let all = providers::list(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(
        all.into_iter()
            .filter(|p| p.enabled)
            .map(|p| SignInOption {
                start: format!("/sso/{}", p.id),
                id: p.id,
                name: p.name,
                email_domains: p.email_domains,
                password_signin: p.password_signin,
            })
            .collect(),
    ))
}
