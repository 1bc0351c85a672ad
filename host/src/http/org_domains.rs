//! E-mail domains that organizations claim for sign-up.

use super::api::{Api, Op};
use super::common::{Json, Path};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::learning::signup::domains::{self, Claimed, DomainClaim, DomainOut};
use crate::scope::{Permission, Reach};
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use serde_json::json;

pub fn routes(api: &mut Api) {
    api.tag("signup");
    api.op_out::<Vec<DomainOut>>(
        Op::get(
            "/api/v1/orgs/{id}/domains",
            "E-mail domains an organization claims for sign-up",
        )
        .permission("orgs.read"),
        get(list_org_domains),
    );
    api.op_io::<DomainClaim, DomainOut>(
        Op::put(
            "/api/v1/orgs/{id}/domains/{domain}",
            "Claim an e-mail domain for an organization, or change the claim (also needs tenant.manage academy-wide)",
        )
        .permission("orgs.write")
        .status(201)
        .also(200),
        put(claim_domain),
    );
    api.op(
        Op::delete(
            "/api/v1/orgs/{id}/domains/{domain}",
            "Release an organization's claim on an e-mail domain (also needs tenant.manage academy-wide)",
        )
        .permission("orgs.write"),
        delete(release_domain),
    );
    api.op_out::<Vec<DomainOut>>(
        Op::get(
            "/api/v1/org-domains",
            "Every claimed e-mail domain of the academy (orgs.read academy-wide)",
        )
        .permission("orgs.read"),
        get(list_all_domains),
    );
}

async fn list_org_domains(caller: Caller, Path(org_id): Path<String>) -> ApiResult<axum::Json<Vec<DomainOut>>> {
    let reach = caller.require(Permission::OrgsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = domains::of_org(&mut tx, &reach, &org_id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn list_all_domains(caller: Caller) -> ApiResult<axum::Json<Vec<DomainOut>>> {
    caller.require_tenant_wide(Permission::OrgsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = domains::all(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

/// A claim decides where strangers land in the whole academy, so beyond the organization in reach it needs
/// the academy-wide right to change settings.
fn require_claim_rights(caller: &Caller) -> ApiResult<Reach> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    caller.require(Permission::OrgsWrite)
}

async fn claim_domain(
    caller: Caller,
    Path((org_id, domain)): Path<(String, String)>,
    Json(req): Json<DomainClaim>,
) -> ApiResult<(StatusCode, axum::Json<DomainOut>)> {
    let reach = require_claim_rights(&caller)?;
    let domain = domains::claimable("domain", &domain)?;
    let mut tx = caller.db().begin().await?;
    let (status, out) = match domains::claim(&mut tx, &reach, &org_id, &domain, &req).await? {
        Claimed::New(out) => {
            record(
                &mut tx,
                &caller.actor(),
                Change::created("org_domain.claim", "org", &org_id, json!(out)),
            )
            .await?;
            (StatusCode::CREATED, out)
        }
        Claimed::Changed(before, after) => {
            record(
                &mut tx,
                &caller.actor(),
                Change::updated("org_domain.update", "org", &org_id, json!(before), json!(after)),
            )
            .await?;
            (StatusCode::OK, after)
        }
    };
    tx.commit().await?;
    Ok((status, axum::Json(out)))
}

async fn release_domain(caller: Caller, Path((org_id, domain)): Path<(String, String)>) -> ApiResult<StatusCode> {
    let reach = require_claim_rights(&caller)?;
    let domain = domain.trim().trim_start_matches('@').to_ascii_lowercase();
    let mut tx = caller.db().begin().await?;
    let org = domains::release(&mut tx, &reach, &org_id, &domain).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("org_domain.release", "org", &org.id, json!({"domain": domain})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
