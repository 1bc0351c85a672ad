//! Organizations: a tree of any depth inside a tenant, stored with materialized paths (`/root/…/id/`) so a
//! subtree is one prefix match. Names are unique among siblings.
//!
//! Deleting: an organization with sub-organizations or members is refused unless `mode=reparent`, which
//! moves its children and members up to its parent (a root organization cannot be reparented away).

use super::api::{Api, Op};
use super::common::Path;
use super::common::{Json, Page, PageParams, Query, double_option, opt_text, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Backend, Sql, TenantTx, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::learning::automation::{self, Event};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::OriginalUri;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

pub fn routes(api: &mut Api) {
    api.tag("orgs");
    api.op_out::<Page<OrgOut>>(
        Op::get("/api/v1/orgs", "List organizations within your scope")
            .permission("orgs.read")
            .query(&[
                ("limit", "page size, 1–500"),
                ("cursor", "from next_cursor"),
                ("parent", "children of this organization; `root` for top-level ones"),
                ("q", "part of the name"),
            ]),
        get(list),
    );
    api.op_io::<NewOrg, OrgOut>(
        Op::post("/api/v1/orgs", "Create an organization")
            .permission("orgs.write")
            .status(201),
        post(create),
    );
    api.op_out::<OrgOut>(
        Op::get("/api/v1/orgs/{id}", "Read an organization").permission("orgs.read"),
        get(read),
    );
    api.op_io::<OrgPatch, OrgOut>(
        Op::patch(
            "/api/v1/orgs/{id}",
            "Rename, move (parent_id) or change an organization",
        )
        .permission("orgs.write"),
        patch(update),
    );
    api.op(
        Op::delete("/api/v1/orgs/{id}", "Delete an organization")
            .permission("orgs.write")
            .query(&[("mode", "`reparent` moves children and members to the parent first")]),
        delete(remove),
    );
    api.op_out::<Page<MemberOut>>(
        Op::get("/api/v1/orgs/{id}/members", "Members, including sub-organizations")
            .permission("orgs.read")
            .query(&[
                ("limit", "page size"),
                ("cursor", "from next_cursor"),
                ("direct", "`true`: only direct members"),
                ("status", "user status"),
                ("role", "holding this role key"),
                ("sub_org", "only members of this sub-organization (and below)"),
            ]),
        get(members),
    );
    api.op_io::<NewMember, MemberOut>(
        Op::post("/api/v1/orgs/{id}/members", "Add a user to the organization")
            .permission("members.write")
            .status(201),
        post(add_member_handler),
    );
    api.op(
        Op::delete(
            "/api/v1/orgs/{id}/members/{user_id}",
            "Remove a user from the organization",
        )
        .permission("members.write"),
        delete(remove_member),
    );
}

/// An organization.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OrgOut {
    id: String,
    parent_id: Option<String>,
    name: String,
    depth: i64,
    external_id: Option<String>,
    member_limit: Option<i64>,
    /// Direct members.
    member_count: i64,
    /// Distinct members of this organization and every sub-organization.
    member_count_total: i64,
    created_at: String,
    updated_at: String,
}

/// An organization as stored, for internal checks.
#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub path: String,
    pub depth: i64,
    pub member_limit: Option<i64>,
}

const ORG_COLUMNS: &str = "o.id, o.parent_id, o.name, o.path, o.depth, o.external_id, o.member_limit, o.created_at, o.updated_at, \
    (SELECT COUNT(*) FROM memberships dm WHERE dm.tenant_id = $1 AND dm.org_id = o.id) AS member_count, \
    (SELECT COUNT(DISTINCT tm.user_id) FROM memberships tm JOIN orgs t ON t.id = tm.org_id \
      WHERE tm.tenant_id = $1 AND t.tenant_id = $1 AND t.path LIKE o.path || '%') AS member_count_total";

fn org_from_row(row: &AnyRow) -> Result<OrgOut, sqlx::Error> {
    Ok(OrgOut {
        id: row.try_get("id")?,
        parent_id: row.try_get("parent_id")?,
        name: row.try_get("name")?,
        depth: row.try_get("depth")?,
        external_id: row.try_get("external_id")?,
        member_limit: row.try_get("member_limit")?,
        member_count: row.try_get("member_count")?,
        member_count_total: row.try_get("member_count_total")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// Find an organization of this tenant.
pub async fn find(tx: &mut TenantTx, id: &str) -> Result<Option<OrgRow>, sqlx::Error> {
    let row = tx
        .query("SELECT id, parent_id, name, path, depth, member_limit FROM orgs WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    row.map(|r| {
        Ok(OrgRow {
            id: r.try_get("id")?,
            parent_id: r.try_get("parent_id")?,
            name: r.try_get("name")?,
            path: r.try_get("path")?,
            depth: r.try_get("depth")?,
            member_limit: r.try_get("member_limit")?,
        })
    })
    .transpose()
}

/// Find an organization the caller reaches with `perm`, or 404 (outside the scope looks like nowhere).
pub(crate) async fn find_in_reach(tx: &mut TenantTx, caller: &Caller, perm: Permission, id: &str) -> ApiResult<OrgRow> {
    let reach = caller.grants.reach(perm);
    find(tx, id)
        .await?
        .filter(|o| reach.covers_org_path(&o.path))
        .ok_or(ApiError::NotFound { what: "organization" })
}

async fn load_out(tx: &mut TenantTx, id: &str) -> ApiResult<OrgOut> {
    let mut sql = Sql::tenant(&format!(
        "SELECT {ORG_COLUMNS} FROM orgs o WHERE o.tenant_id = $1 AND o.id = "
    ));
    sql.push_bind(id);
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "organization" })?;
    Ok(org_from_row(&row)?)
}

/// Lock the rows of these organizations until the transaction ends (PostgreSQL; SQLite already holds the
/// database write lock), so concurrent additions cannot both pass a member limit.
async fn lock_orgs(tx: &mut TenantTx, ids: &[&str]) -> Result<(), sqlx::Error> {
    if tx.backend() != Backend::Postgres || ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::tenant("SELECT id FROM orgs WHERE tenant_id = $1 AND id IN (");
    super::users::push_ids(&mut sql, ids.iter().copied());
    sql.push(") ORDER BY id FOR UPDATE");
    tx.fetch_all_sql(&sql).await?;
    Ok(())
}

fn ancestors(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Refuse when adding `adding` distinct users below `path` would exceed the limit of it or any ancestor.
async fn check_limits(tx: &mut TenantTx, path: &str, new_users: &[&str]) -> ApiResult<()> {
    let chain = ancestors(path);
    lock_orgs(tx, &chain).await?;
    for org_id in chain {
        let Some(org) = find(tx, org_id).await? else { continue };
        let Some(limit) = org.member_limit else { continue };
        let mut sql = Sql::tenant(
            "SELECT COUNT(DISTINCT m.user_id) FROM memberships m JOIN orgs t ON t.id = m.org_id \
             WHERE m.tenant_id = $1 AND t.path LIKE ",
        );
        sql.push_bind(format!("{}%", org.path));
        let current: i64 = tx
            .fetch_optional_sql(&sql)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let mut sql = Sql::tenant(
            "SELECT COUNT(DISTINCT m.user_id) FROM memberships m JOIN orgs t ON t.id = m.org_id \
             WHERE m.tenant_id = $1 AND t.path LIKE ",
        );
        sql.push_bind(format!("{}%", org.path)).push(" AND m.user_id IN (");
        super::users::push_ids(&mut sql, new_users.iter().copied());
        sql.push(")");
        let already: i64 = if new_users.is_empty() {
            0
        } else {
            tx.fetch_optional_sql(&sql)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0)
        };
        let after = current + new_users.len() as i64 - already;
        if after > limit && after > current {
            return Err(ApiError::Unprocessable {
                code: "member_limit_reached",
                message: format!("{} allows at most {limit} members and has {current}", org.name),
                field: None,
                details: Some(json!({"org_id": org.id, "member_limit": limit, "members": current})),
            });
        }
    }
    Ok(())
}

/// Add a member (idempotent), enforcing member limits of the organization and its ancestors.
pub async fn add_member(tx: &mut TenantTx, org: &OrgRow, user_id: &str) -> ApiResult<bool> {
    check_limits(tx, &org.path, &[user_id]).await?;
    let n = tx
        .query("INSERT INTO memberships (tenant_id, user_id, org_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(user_id.to_owned())
        .bind(org.id.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(n > 0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    parent: Option<String>,
    q: Option<String>,
}

async fn list(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<OrgOut>>> {
    let reach = caller.require(Permission::OrgsRead)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(&format!("SELECT {ORG_COLUMNS} FROM orgs o WHERE o.tenant_id = $1"));
    reach.push_org_filter(&mut sql);
    match p.parent.as_deref() {
        Some("root") => {
            sql.push(" AND o.parent_id IS NULL");
        }
        Some(parent) => {
            sql.push(" AND o.parent_id = ").push_bind(parent);
        }
        None => {}
    }
    if let Some(q) = p.q.as_deref().filter(|q| !q.is_empty()) {
        sql.push(" AND lower(o.name) LIKE ")
            .push_bind(format!("%{}%", q.to_lowercase()));
    }
    if let Some(cursor) = &p.cursor {
        sql.push(" AND o.id > ").push_bind(cursor.as_str());
    }
    sql.push(" ORDER BY o.id LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let orgs = rows.iter().map(org_from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(Page::from_rows(orgs, limit, &uri, |o| o.id.clone())))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<OrgOut>> {
    caller.require(Permission::OrgsRead)?;
    let mut tx = caller.db().begin_read().await?;
    find_in_reach(&mut tx, &caller, Permission::OrgsRead, &id).await?;
    let out = load_out(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
    /// The parent; omit for a top-level organization (needs tenant-wide rights).
    parent_id: Option<String>,
    external_id: Option<String>,
    /// Most distinct members this organization and its sub-organizations may have.
    member_limit: Option<i64>,
}

fn org_conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(k) if k.contains("orgs_sibling_name") => ApiError::duplicate(
            "name",
            "an organization with this name already exists under the same parent",
        ),
        Some(k) if k.contains("external_id") => {
            ApiError::duplicate("external_id", "an organization has this external id already")
        }
        _ => e.into(),
    }
}

fn check_limit_value(limit: Option<i64>) -> ApiResult<()> {
    match limit {
        Some(n) if !(0..=10_000_000).contains(&n) => {
            Err(ApiError::invalid("member_limit", "must be between 0 and 10000000"))
        }
        _ => Ok(()),
    }
}

async fn create(caller: Caller, Json(req): Json<NewOrg>) -> ApiResult<(StatusCode, axum::Json<OrgOut>)> {
    let reach = caller.require(Permission::OrgsWrite)?;
    let name = text("name", &req.name, 200)?;
    let external_id = opt_text("external_id", req.external_id.as_deref(), 200)?;
    check_limit_value(req.member_limit)?;
    let mut tx = caller.db().begin().await?;
    let id = new_id();
    let (path, depth) = match &req.parent_id {
        Some(parent_id) => {
            let parent = find(&mut tx, parent_id)
                .await?
                .filter(|p| reach.covers_org_path(&p.path))
                .ok_or_else(|| ApiError::invalid("parent_id", "no such organization within your scope"))?;
            (format!("{}{id}/", parent.path), parent.depth + 1)
        }
        None if reach.all => (format!("/{id}/"), 0),
        None => return Err(ApiError::invalid("parent_id", "name a parent within your scope")),
    };
    let now = now_ms();
    let inserted = tx
        .query(
            "INSERT INTO orgs (id, tenant_id, parent_id, name, path, depth, external_id, member_limit, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(id.clone())
        .bind(req.parent_id.clone())
        .bind(name)
        .bind(path)
        .bind(depth)
        .bind(external_id)
        .bind(req.member_limit)
        .bind(now)
        .execute(tx.conn())
        .await;
    inserted.map_err(org_conflict)?;
    let out = load_out(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("org.create", "org", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OrgPatch {
    name: Option<String>,
    /// Move under another organization; `null` makes it top-level.
    #[serde(default, deserialize_with = "double_option")]
    parent_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    member_limit: Option<Option<i64>>,
}

async fn update(caller: Caller, Path(id): Path<String>, Json(req): Json<OrgPatch>) -> ApiResult<axum::Json<OrgOut>> {
    let reach = caller.require(Permission::OrgsWrite)?;
    let mut tx = caller.db().begin().await?;
    let org = find_in_reach(&mut tx, &caller, Permission::OrgsWrite, &id).await?;
    let before = load_out(&mut tx, &id).await?;
    let name = match &req.name {
        Some(n) => text("name", n, 200)?,
        None => org.name.clone(),
    };
    let external_id = match &req.external_id {
        Some(e) => opt_text("external_id", e.as_deref(), 200)?,
        None => before.external_id.clone(),
    };
    let member_limit = match req.member_limit {
        Some(l) => {
            check_limit_value(l)?;
            // A limit binds the organization's own managers: only someone above it may set or lift it.
            if l != org.member_limit && !reach.all {
                let parent = match &org.parent_id {
                    Some(p) => find(&mut tx, p).await?,
                    None => None,
                };
                if !parent.is_some_and(|p| reach.covers_org_path(&p.path)) {
                    return Err(ApiError::forbidden(
                        "the member limit of an organization is set from above it; ask whoever manages its parent",
                    ));
                }
            }
            l
        }
        None => org.member_limit,
    };
    let now = now_ms();
    tx.query("UPDATE orgs SET name = $3, external_id = $4, member_limit = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .bind(name)
        .bind(external_id)
        .bind(member_limit)
        .bind(now)
        .execute(tx.conn())
        .await
        .map_err(org_conflict)?;
    if let Some(new_parent) = &req.parent_id {
        if new_parent.as_deref() != org.parent_id.as_deref() {
            move_org(&mut tx, &reach, &org, new_parent.as_deref()).await?;
        }
    }
    let after = load_out(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("org.update", "org", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

/// Move `org` (and its subtree) under `new_parent`, refusing cycles and moves out of the caller's scope.
async fn move_org(
    tx: &mut TenantTx,
    reach: &crate::scope::Reach,
    org: &OrgRow,
    new_parent: Option<&str>,
) -> ApiResult<()> {
    let (new_path, new_depth) = match new_parent {
        Some(pid) => {
            let parent = find(tx, pid)
                .await?
                .filter(|p| reach.covers_org_path(&p.path))
                .ok_or_else(|| ApiError::invalid("parent_id", "no such organization within your scope"))?;
            if parent.path.starts_with(&org.path) {
                return Err(ApiError::rule(
                    "org_cycle",
                    Some("parent_id"),
                    "an organization cannot be moved under itself or one of its sub-organizations",
                ));
            }
            // Members of the moved subtree now count towards the new ancestors' limits.
            let mut sql = Sql::tenant(
                "SELECT DISTINCT m.user_id FROM memberships m JOIN orgs t ON t.id = m.org_id WHERE m.tenant_id = $1 AND t.path LIKE ",
            );
            sql.push_bind(format!("{}%", org.path));
            let moving: Vec<String> = tx
                .fetch_all_sql(&sql)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&str> = moving.iter().map(String::as_str).collect();
            check_limits(tx, &parent.path, &refs).await?;
            (format!("{}{}/", parent.path, org.id), parent.depth + 1)
        }
        None if reach.all => (format!("/{}/", org.id), 0),
        None => {
            return Err(ApiError::invalid(
                "parent_id",
                "only academy admins can make an organization top-level",
            ));
        }
    };
    let depth_delta = new_depth - org.depth;
    let old_len = org.path.chars().count() as i64;
    tx.query("UPDATE orgs SET parent_id = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(org.id.clone())
        .bind(new_parent.map(str::to_owned))
        .execute(tx.conn())
        .await
        .map_err(org_conflict)?;
    // Rewrite the path prefix of the whole subtree in one statement.
    tx.query(
        "UPDATE orgs SET path = $2 || substr(path, CAST($3 AS INTEGER)), depth = depth + $4, updated_at = $5 \
         WHERE tenant_id = $1 AND path LIKE $6",
    )
    .bind(new_path)
    .bind(old_len + 1)
    .bind(depth_delta)
    .bind(now_ms())
    .bind(format!("{}%", org.path))
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    mode: Option<String>,
}

async fn remove(caller: Caller, Path(id): Path<String>, Query(p): Query<DeleteParams>) -> ApiResult<StatusCode> {
    caller.require(Permission::OrgsWrite)?;
    let reparent = match p.mode.as_deref() {
        None => false,
        Some("reparent") => true,
        Some(_) => return Err(ApiError::invalid("mode", "must be reparent, or left out")),
    };
    let mut tx = caller.db().begin().await?;
    let org = find_in_reach(&mut tx, &caller, Permission::OrgsWrite, &id).await?;
    let before = load_out(&mut tx, &id).await?;
    let children: i64 = tx
        .query("SELECT COUNT(*) FROM orgs WHERE tenant_id = $1 AND parent_id = $2")
        .bind(id.clone())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if (children > 0 || before.member_count > 0) && !reparent {
        return Err(ApiError::Conflict {
            code: "org_not_empty",
            message: format!(
                "{} has {children} sub-organizations and {} members; move them first or delete with mode=reparent",
                org.name, before.member_count
            ),
            field: None,
        });
    }
    if reparent && (children > 0 || before.member_count > 0) {
        let Some(parent_id) = org.parent_id.clone() else {
            return Err(ApiError::rule(
                "org_is_root",
                Some("mode"),
                "a top-level organization has no parent to move its content to",
            ));
        };
        let parent = find(&mut tx, &parent_id)
            .await?
            .ok_or(ApiError::NotFound { what: "organization" })?;
        let reach = caller.grants.reach(Permission::OrgsWrite);
        if !reach.covers_org_path(&parent.path) {
            return Err(ApiError::forbidden("the parent organization is outside your scope"));
        }
        let kids: Vec<String> = tx
            .query("SELECT id FROM orgs WHERE tenant_id = $1 AND parent_id = $2")
            .bind(id.clone())
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        for kid in kids {
            let kid = find(&mut tx, &kid)
                .await?
                .ok_or(ApiError::NotFound { what: "organization" })?;
            move_org(&mut tx, &reach, &kid, Some(&parent_id)).await?;
        }
        tx.query(
            "INSERT INTO memberships (tenant_id, user_id, org_id, created_at) \
             SELECT $1, user_id, $3, created_at FROM memberships WHERE tenant_id = $1 AND org_id = $2 ON CONFLICT DO NOTHING",
        )
        .bind(id.clone())
        .bind(parent_id)
        .execute(tx.conn())
        .await?;
    }
    tx.query("DELETE FROM memberships WHERE tenant_id = $1 AND org_id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    // What the learning core keeps about the organization goes with it: its claimed domains, its invitations
    // (sign-up records keep their e-mail and decision), and the courses offered to it stop being offered.
    for sql in [
        "UPDATE signups SET invitation_id = NULL WHERE tenant_id = $1 AND invitation_id IN (SELECT id FROM invitations WHERE tenant_id = $1 AND org_id = $2)",
        "UPDATE signups SET org_id = NULL WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM invitations WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM org_domains WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM course_orgs WHERE tenant_id = $1 AND org_id = $2",
    ] {
        tx.query(sql).bind(id.clone()).execute(tx.conn()).await?;
    }
    tx.query("DELETE FROM grants WHERE tenant_id = $1 AND org_id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    tx.query("DELETE FROM orgs WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("org.delete", "org", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member of an organization.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct MemberOut {
    user_id: String,
    email: String,
    name: String,
    status: String,
    /// The organization (this one or a sub-organization) the membership is in.
    org_id: String,
    org_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberParams {
    limit: Option<i64>,
    cursor: Option<String>,
    direct: Option<bool>,
    status: Option<String>,
    role: Option<String>,
    sub_org: Option<String>,
}

async fn members(
    caller: Caller,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<MemberParams>,
) -> ApiResult<axum::Json<Page<MemberOut>>> {
    caller.require(Permission::OrgsRead)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    let org = find_in_reach(&mut tx, &caller, Permission::OrgsRead, &id).await?;
    let within = match &p.sub_org {
        Some(sub) => {
            find(&mut tx, sub)
                .await?
                .filter(|s| s.path.starts_with(&org.path))
                .ok_or_else(|| ApiError::invalid("sub_org", "no such sub-organization"))?
                .path
        }
        None => org.path.clone(),
    };
    // Cursor is "<user_id>|<org_id>" so the order is stable across pages.
    let mut sql = Sql::tenant(
        "SELECT u.id AS user_id, u.email, u.name, u.status, o.id AS org_id, o.name AS org_name \
         FROM memberships m JOIN users u ON u.id = m.user_id JOIN orgs o ON o.id = m.org_id \
         WHERE m.tenant_id = $1 AND u.tenant_id = $1",
    );
    if p.direct == Some(true) {
        sql.push(" AND o.id = ").push_bind(org.id.as_str());
    } else {
        sql.push(" AND o.path LIKE ").push_bind(format!("{within}%"));
    }
    if let Some(status) = &p.status {
        sql.push(" AND u.status = ").push_bind(status.as_str());
    }
    if let Some(role) = &p.role {
        sql.push(
            " AND EXISTS (SELECT 1 FROM grants g JOIN roles r ON r.id = g.role_id WHERE g.tenant_id = $1 AND g.user_id = u.id AND r.key = ",
        )
        .push_bind(role.as_str())
        .push(")");
    }
    if let Some(cursor) = &p.cursor {
        let (u, o) = cursor
            .split_once('|')
            .ok_or_else(|| ApiError::invalid("cursor", "not a cursor from this list"))?;
        sql.push(" AND (u.id > ")
            .push_bind(u)
            .push(" OR (u.id = ")
            .push_bind(u)
            .push(" AND o.id > ")
            .push_bind(o)
            .push("))");
    }
    sql.push(" ORDER BY u.id, o.id LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(MemberOut {
                user_id: r.try_get("user_id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                status: r.try_get("status")?,
                org_id: r.try_get("org_id")?,
                org_name: r.try_get("org_name")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |m| {
        format!("{}|{}", m.user_id, m.org_id)
    })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewMember {
    user_id: String,
}

async fn add_member_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<NewMember>,
) -> ApiResult<(StatusCode, axum::Json<MemberOut>)> {
    caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin().await?;
    let org = find_in_reach(&mut tx, &caller, Permission::MembersWrite, &id).await?;
    // The user must be someone the caller already manages: a manager cannot pull people in from elsewhere
    // (and would then manage them), nor turn read access to someone into write access.
    let user = super::users::load_in_reach(&mut tx, &caller.grants.reach(Permission::UsersWrite), &req.user_id)
        .await
        .map_err(|_| ApiError::invalid("user_id", "no such user within your scope"))?;
    let added = add_member(&mut tx, &org, &req.user_id).await?;
    if added {
        record(
            &mut tx,
            &caller.actor(),
            Change::created("membership.add", "org", &id, json!({"user_id": req.user_id})),
        )
        .await?;
    }
    let changed = if added {
        vec![Event::changed(&req.user_id)]
    } else {
        Vec::new()
    };
    let pending = automation::run_rules(&mut tx, changed, super::enrollments::context(&caller)).await?;
    tx.commit().await?;
    automation::after_commit(&state, caller.db(), pending).await;
    let u = json!(user);
    Ok((
        if added { StatusCode::CREATED } else { StatusCode::OK },
        axum::Json(MemberOut {
            user_id: req.user_id,
            email: u["email"].as_str().unwrap_or_default().to_owned(),
            name: u["name"].as_str().unwrap_or_default().to_owned(),
            status: u["status"].as_str().unwrap_or_default().to_owned(),
            org_id: org.id,
            org_name: org.name,
        }),
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin().await?;
    find_in_reach(&mut tx, &caller, Permission::MembersWrite, &id).await?;
    let n = tx
        .query("DELETE FROM memberships WHERE tenant_id = $1 AND org_id = $2 AND user_id = $3")
        .bind(id.clone())
        .bind(user_id.clone())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound { what: "membership" });
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("membership.remove", "org", &id, json!({"user_id": user_id})),
    )
    .await?;
    let pending = automation::run_rules(
        &mut tx,
        vec![Event::changed(&user_id)],
        super::enrollments::context(&caller),
    )
    .await?;
    tx.commit().await?;
    automation::after_commit(&state, caller.db(), pending).await;
    Ok(StatusCode::NO_CONTENT)
}
