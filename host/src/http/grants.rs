//! Grants: a role given to a user at a scope (the tenant, an organization subtree, or a segment).
//! Nobody grants more than they hold: every permission of the role must be the granter's over that scope.

use super::api::{Api, Op};
use super::common::Path;
use super::common::{Json, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{TenantTx, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::scope::{GrantScope, Permission, Reach, ScopeRef};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

pub fn routes(api: &mut Api) {
    api.tag("grants");
    api.op_out::<Vec<GrantOut>>(
        Op::get("/api/v1/grants", "List grants of users within your scope")
            .permission("roles.read")
            .query(&[("user_id", "only this user's grants")]),
        get(list),
    );
    api.op_io::<NewGrant, GrantOut>(
        Op::post("/api/v1/grants", "Grant a role at a scope")
            .permission("grants.write")
            .status(201),
        post(create),
    );
    api.op(
        Op::delete("/api/v1/grants/{id}", "Revoke a grant").permission("grants.write"),
        delete(remove),
    );
}

/// A grant.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct GrantOut {
    id: String,
    user_id: String,
    role: String,
    scope: ScopeRef,
    created_at: String,
}

const COLUMNS: &str = "g.id, g.user_id, r.key AS role, g.scope_type, g.org_id, g.segment_id, g.created_at";

fn from_row(row: &AnyRow) -> Result<GrantOut, sqlx::Error> {
    let scope_type: String = row.try_get("scope_type")?;
    let scope = match scope_type.as_str() {
        "tenant" => ScopeRef::Tenant,
        "org" => ScopeRef::Org {
            id: row.try_get("org_id")?,
        },
        _ => ScopeRef::Segment {
            id: row.try_get("segment_id")?,
        },
    };
    Ok(GrantOut {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        role: row.try_get("role")?,
        scope,
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    user_id: Option<String>,
}

async fn list(caller: Caller, Query(p): Query<ListParams>) -> ApiResult<axum::Json<Vec<GrantOut>>> {
    caller.require(Permission::RolesRead)?;
    let users = caller.grants.reach(Permission::UsersRead);
    let mut tx = caller.db().begin_read().await?;
    let mut sql = crate::db::Sql::tenant(&format!(
        "SELECT {COLUMNS} FROM grants g JOIN roles r ON r.id = g.role_id JOIN users u ON u.id = g.user_id WHERE g.tenant_id = $1"
    ));
    users.push_user_filter(&mut sql, tx.backend());
    if let Some(user) = &p.user_id {
        sql.push(" AND g.user_id = ").push_bind(user.as_str());
    }
    sql.push(" ORDER BY g.user_id, g.id LIMIT 5000");
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    Ok(axum::Json(rows.iter().map(from_row).collect::<Result<_, _>>()?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    user_id: String,
    /// Role key (e.g. `org_manager`) or id.
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    role: String,
    scope: ScopeRef,
}

async fn resolve_scope(tx: &mut TenantTx, scope: &ScopeRef) -> ApiResult<GrantScope> {
    Ok(match scope {
        ScopeRef::Tenant => GrantScope::Tenant,
        ScopeRef::Org { id } => {
            let org = crate::directory::orgs::find(tx, id)
                .await?
                .ok_or_else(|| ApiError::invalid("scope.id", "no such organization"))?;
            GrantScope::Org {
                id: org.id,
                path: org.path,
            }
        }
        ScopeRef::Segment { id } => {
            let def = crate::directory::segments::load_def(tx, id)
                .await?
                .ok_or_else(|| ApiError::invalid("scope.id", "no such segment"))?;
            GrantScope::Segment { id: id.clone(), def }
        }
    })
}

async fn create(caller: Caller, Json(req): Json<NewGrant>) -> ApiResult<(StatusCode, axum::Json<GrantOut>)> {
    let reach = caller.require(Permission::GrantsWrite)?;
    let mut tx = caller.db().begin().await?;
    crate::directory::users::load_in_reach(&mut tx, &caller.grants.reach(Permission::UsersRead), &req.user_id)
        .await
        .map_err(|_| ApiError::invalid("user_id", "no such user within your scope"))?;
    let role = super::roles::find(&mut tx, &req.role)
        .await
        .map_err(|_| ApiError::invalid("role", "no such role"))?;
    let scope = resolve_scope(&mut tx, &req.scope).await?;
    // Out-of-scope targets look like missing ones.
    if !reach.covers_scope(&scope) {
        return Err(ApiError::invalid("scope.id", "no such scope within your reach"));
    }
    let perms: Vec<Permission> = role.permissions.iter().filter_map(|p| Permission::parse(p)).collect();
    if let Some(missing) = caller.grants.holds_all_over(&perms, &scope) {
        return Err(ApiError::forbidden(format!(
            "you cannot grant {}: it holds {}, which you do not hold over that scope",
            role.key,
            missing.as_str()
        )));
    }
    let (scope_type, org_id, segment_id) = match &req.scope {
        ScopeRef::Tenant => ("tenant", None, None),
        ScopeRef::Org { id } => ("org", Some(id.clone()), None),
        ScopeRef::Segment { id } => ("segment", None, Some(id.clone())),
    };
    let id = new_id();
    tx.query(
        "INSERT INTO grants (id, tenant_id, user_id, role_id, scope_type, org_id, segment_id, created_at) VALUES ($2, $1, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.clone())
    .bind(req.user_id.clone())
    .bind(role.id_str().to_owned())
    .bind(scope_type)
    .bind(org_id)
    .bind(segment_id)
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => ApiError::duplicate("role", "the user already holds this role at this scope"),
        None => e.into(),
    })?;
    let out = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("grant.create", "user", &req.user_id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn find(tx: &mut TenantTx, id: &str) -> ApiResult<GrantOut> {
    let row = tx
        .query(&format!(
            "SELECT {COLUMNS} FROM grants g JOIN roles r ON r.id = g.role_id WHERE g.tenant_id = $1 AND g.id = $2"
        ))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "grant" })?;
    Ok(from_row(&row)?)
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let reach: Reach = caller.require(Permission::GrantsWrite)?;
    let mut tx = caller.db().begin().await?;
    let grant = find(&mut tx, &id).await?;
    let scope = resolve_scope(&mut tx, &grant.scope).await?;
    let user_visible =
        crate::directory::users::load_in_reach(&mut tx, &caller.grants.reach(Permission::UsersRead), &grant.user_id)
            .await
            .is_ok();
    if !reach.covers_scope(&scope) || !user_visible {
        return Err(ApiError::NotFound { what: "grant" });
    }
    if grant.user_id == caller.user_id && grant.role == "tenant_admin" {
        return Err(ApiError::rule(
            "self_lockout",
            None,
            "you cannot revoke your own academy admin role",
        ));
    }
    tx.query("DELETE FROM grants WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("grant.delete", "user", &grant.user_id, json!(grant)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
