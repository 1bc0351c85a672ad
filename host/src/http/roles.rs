//! Roles: the built-in ones every tenant has, and custom roles made from the permission list.

use super::api::{Api, Auth, Op};
use super::common::Path;
use super::common::{Json, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Flag, JsonText, TenantTx, Timestamp, new_id, now_ms, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::scope::Permission;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{FromRow, Row};

pub fn routes(api: &mut Api) {
    api.tag("roles");
    api.op_out::<Vec<PermissionOut>>(
        Op::get("/api/v1/permissions", "The permissions a role can hold").auth(Auth::Tenant),
        get(permissions),
    );
    api.op_out::<Vec<RoleOut>>(
        Op::get("/api/v1/roles", "List roles").permission("roles.read"),
        get(list),
    );
    api.op_io::<NewRole, RoleOut>(
        Op::post("/api/v1/roles", "Create a custom role")
            .permission("roles.write")
            .status(201),
        post(create),
    );
    api.op_out::<RoleOut>(
        Op::get("/api/v1/roles/{id}", "Read a role").permission("roles.read"),
        get(read),
    );
    api.op_io::<RolePatch, RoleOut>(
        Op::patch("/api/v1/roles/{id}", "Change a custom role").permission("roles.write"),
        patch(update),
    );
    api.op(
        Op::delete("/api/v1/roles/{id}", "Delete a custom role that nobody holds").permission("roles.write"),
        delete(remove),
    );
}

/// A permission and what it allows.
#[derive(Serialize, schemars::JsonSchema)]
pub struct PermissionOut {
    name: &'static str,
    description: &'static str,
}

/// A role.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct RoleOut {
    id: String,
    pub(crate) key: String,
    name: String,
    pub(crate) permissions: JsonText<Vec<String>>,
    /// Built-in roles cannot be changed or deleted.
    #[sqlx(try_from = "Flag")]
    builtin: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl RoleOut {
    /// The role's id.
    pub fn id_str(&self) -> &str {
        &self.id
    }
}

const COLUMNS: &str = "id, key, name, permissions, builtin, created_at, updated_at";

/// Find a role by id or key.
pub async fn find(tx: &mut TenantTx, id_or_key: &str) -> ApiResult<RoleOut> {
    let row = tx
        .query(&format!(
            "SELECT {COLUMNS} FROM roles WHERE tenant_id = $1 AND (id = $2 OR key = $2)"
        ))
        .bind(id_or_key.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "role" })?;
    Ok(RoleOut::from_row(&row)?)
}

async fn permissions(_caller: Caller) -> axum::Json<Vec<PermissionOut>> {
    axum::Json(
        Permission::ALL
            .iter()
            .map(|p| PermissionOut {
                name: p.as_str(),
                description: p.description(),
            })
            .collect(),
    )
}

async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<RoleOut>>> {
    caller.require(Permission::RolesRead)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query(&format!(
            "SELECT {COLUMNS} FROM roles WHERE tenant_id = $1 ORDER BY builtin DESC, key"
        ))
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(RoleOut::from_row).collect::<Result<_, _>>()?,
    ))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<RoleOut>> {
    caller.require(Permission::RolesRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = find(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

fn check_permissions(names: &[String]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let p = Permission::parse(n).ok_or_else(|| {
            ApiError::invalid(
                format!("permissions[{i}]"),
                format!("{n:?} is not a permission; GET /api/v1/permissions lists them"),
            )
        })?;
        if !out.iter().any(|o: &String| o == p.as_str()) {
            out.push(p.as_str().to_owned());
        }
    }
    Ok(out)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewRole {
    /// Lower-case letters, digits and `_`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9_]+$"))]
    key: String,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    permissions: Vec<String>,
}

async fn create(caller: Caller, Json(req): Json<NewRole>) -> ApiResult<(StatusCode, axum::Json<RoleOut>)> {
    caller.require_tenant_wide(Permission::RolesWrite)?;
    let key = text("key", &req.key, 64)?;
    if !key
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(ApiError::invalid("key", "use lower-case letters, digits and _"));
    }
    let name = text("name", &req.name, 200)?;
    let perms = check_permissions(&req.permissions)?;
    let mut tx = caller.db().begin().await?;
    let id = new_id();
    tx.query("INSERT INTO roles (id, tenant_id, key, name, permissions, builtin, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, 0, $6, $6)")
        .bind(id.clone())
        .bind(key)
        .bind(name)
        .bind(serde_json::to_string(&perms).unwrap_or_default())
        .bind(now_ms())
        .execute(tx.conn())
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => ApiError::duplicate("key", "a role with this key already exists"),
            None => e.into(),
        })?;
    let out = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("role.create", "role", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RolePatch {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    permissions: Option<Vec<String>>,
}

async fn update(caller: Caller, Path(id): Path<String>, Json(req): Json<RolePatch>) -> ApiResult<axum::Json<RoleOut>> {
    caller.require_tenant_wide(Permission::RolesWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    if before.builtin {
        return Err(ApiError::rule(
            "builtin_role",
            None,
            "built-in roles cannot be changed; make a custom role instead",
        ));
    }
    let name = match &req.name {
        Some(n) => text("name", n, 200)?,
        None => before.name.clone(),
    };
    let perms = match &req.permissions {
        Some(p) => check_permissions(p)?,
        None => before.permissions.0.clone(),
    };
    // Changing a role changes what everyone holding it may do; nobody hands out more than they hold.
    let added: Vec<Permission> = perms
        .iter()
        .filter(|p| !before.permissions.contains(p))
        .filter_map(|p| Permission::parse(p))
        .collect();
    if let Some(missing) = caller.grants.holds_all_over(&added, &crate::scope::GrantScope::Tenant) {
        return Err(ApiError::forbidden(format!(
            "you cannot add {} to a role: you do not hold it for the whole academy",
            missing.as_str()
        )));
    }
    tx.query("UPDATE roles SET name = $3, permissions = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2")
        .bind(before.id.clone())
        .bind(name)
        .bind(serde_json::to_string(&perms).unwrap_or_default())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    let after = find(&mut tx, &before.id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("role.update", "role", &before.id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::RolesWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    if before.builtin {
        return Err(ApiError::rule("builtin_role", None, "built-in roles cannot be deleted"));
    }
    let holders: i64 = tx
        .query("SELECT COUNT(*) FROM grants WHERE tenant_id = $1 AND role_id = $2")
        .bind(before.id.clone())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if holders > 0 {
        return Err(ApiError::Conflict {
            code: "role_in_use",
            message: format!("{holders} grants still use this role; revoke them first"),
            field: None,
        });
    }
    tx.query("DELETE FROM roles WHERE tenant_id = $1 AND id = $2")
        .bind(before.id.clone())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("role.delete", "role", &before.id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
