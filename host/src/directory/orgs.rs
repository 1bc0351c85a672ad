//! Organizations: a tree of any depth inside an academy, stored with materialized paths (`/root/…/id/`) so
//! a subtree is one prefix match. Names are unique among siblings. Member limits count the distinct members
//! of a whole subtree and bind every ancestor.
//!
//! Deleting: an organization with sub-organizations or members is refused unless it is reparented, which
//! moves its children and members up to its parent (a root organization cannot be reparented away).

use super::{Error, Result};
use crate::db::{Backend, Constraints, ResultExt, Sql, TenantTx, Timestamp, new_id, now_ms};
use crate::fields::{opt_text, text};
use crate::scope::Reach;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, Row};

/// An organization as the API shows it, with its member counts.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct OrgOut {
    pub(crate) id: String,
    parent_id: Option<String>,
    name: String,
    depth: i64,
    pub(crate) external_id: Option<String>,
    member_limit: Option<i64>,
    /// Direct members.
    pub(crate) member_count: i64,
    /// Distinct members of this organization and every sub-organization.
    member_count_total: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// An organization as stored, for checks and placement.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    /// Id.
    pub id: String,
    /// Parent, if not top-level.
    pub parent_id: Option<String>,
    /// Name.
    pub name: String,
    /// Materialized path (`/root/…/id/`).
    pub path: String,
    /// Depth (0 for top-level).
    pub depth: i64,
    /// Most distinct members of the subtree.
    pub member_limit: Option<i64>,
}

const ORG_COLUMNS: &str = "o.id, o.parent_id, o.name, o.path, o.depth, o.external_id, o.member_limit, o.created_at, o.updated_at, \
    (SELECT COUNT(*) FROM memberships dm WHERE dm.tenant_id = $1 AND dm.org_id = o.id) AS member_count, \
    (SELECT COUNT(DISTINCT tm.user_id) FROM memberships tm JOIN orgs t ON t.id = tm.org_id \
      WHERE tm.tenant_id = $1 AND t.tenant_id = $1 AND t.path LIKE o.path || '%') AS member_count_total";

/// Find an organization of this academy.
pub async fn find(tx: &mut TenantTx, id: &str) -> Result<Option<OrgRow>, sqlx::Error> {
    tx.query("SELECT id, parent_id, name, path, depth, member_limit FROM orgs WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| OrgRow::from_row(&r))
        .transpose()
}

/// Find an organization within `reach`, or not found (outside the scope looks like nowhere).
pub async fn find_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> Result<OrgRow> {
    find(tx, id)
        .await?
        .filter(|o| reach.covers_org_path(&o.path))
        .ok_or(Error::NotFound("organization"))
}

/// An organization with its counts.
pub async fn load_out(tx: &mut TenantTx, id: &str) -> Result<OrgOut> {
    let mut sql = Sql::tenant(&format!(
        "SELECT {ORG_COLUMNS} FROM orgs o WHERE o.tenant_id = $1 AND o.id = "
    ));
    sql.push_bind(id);
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(Error::NotFound("organization"))?;
    Ok(OrgOut::from_row(&row)?)
}

/// Filters of the organization list.
#[derive(Debug, Default)]
pub struct OrgFilter<'a> {
    /// Children of this organization; `root` for top-level ones.
    pub parent: Option<&'a str>,
    /// Part of the name.
    pub q: Option<&'a str>,
    /// After this id (the previous page's cursor).
    pub after: Option<&'a str>,
}

/// Organizations within `reach`, by id, up to `limit + 1` (the extra one says there is a next page).
pub async fn list(tx: &mut TenantTx, reach: &Reach, filter: &OrgFilter<'_>, limit: i64) -> Result<Vec<OrgOut>> {
    let mut sql = Sql::tenant(&format!("SELECT {ORG_COLUMNS} FROM orgs o WHERE o.tenant_id = $1"));
    reach.push_org_filter(&mut sql);
    match filter.parent {
        Some("root") => {
            sql.push(" AND o.parent_id IS NULL");
        }
        Some(parent) => {
            sql.push(" AND o.parent_id = ").push_bind(parent);
        }
        None => {}
    }
    if let Some(q) = filter.q.filter(|q| !q.is_empty()) {
        sql.push(" AND lower(o.name) LIKE ")
            .push_bind(format!("%{}%", q.to_lowercase()));
    }
    if let Some(after) = filter.after {
        sql.push(" AND o.id > ").push_bind(after);
    }
    sql.push(" ORDER BY o.id LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    Ok(rows.iter().map(OrgOut::from_row).collect::<Result<Vec<_>, _>>()?)
}

/// Lock the rows of these organizations until the transaction ends (PostgreSQL; SQLite already holds the
/// database write lock), so concurrent additions cannot both pass a member limit.
async fn lock_orgs(tx: &mut TenantTx, ids: &[&str]) -> Result<(), sqlx::Error> {
    if tx.backend() != Backend::Postgres || ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::tenant("SELECT id FROM orgs WHERE tenant_id = $1 AND id IN (");
    sql.push_list(ids.iter().copied());
    sql.push(") ORDER BY id FOR UPDATE");
    tx.fetch_all_sql(&sql).await?;
    Ok(())
}

fn ancestors(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Refuse when adding `new_users` below `path` would exceed the limit of it or any ancestor.
async fn check_limits(tx: &mut TenantTx, path: &str, new_users: &[&str]) -> Result<()> {
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
        let already: i64 = if new_users.is_empty() {
            0
        } else {
            let mut sql = Sql::tenant(
                "SELECT COUNT(DISTINCT m.user_id) FROM memberships m JOIN orgs t ON t.id = m.org_id \
                 WHERE m.tenant_id = $1 AND t.path LIKE ",
            );
            sql.push_bind(format!("{}%", org.path)).push(" AND m.user_id IN (");
            sql.push_list(new_users.iter().copied());
            sql.push(")");
            tx.fetch_optional_sql(&sql)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0)
        };
        let after = current + new_users.len() as i64 - already;
        if after > limit && after > current {
            return Err(Error::MemberLimit {
                org_id: org.id,
                name: org.name,
                limit,
                members: current,
            });
        }
    }
    Ok(())
}

/// Add a member (idempotent), enforcing member limits of the organization and its ancestors. `true` when
/// the user was not a member yet.
pub async fn add_member(tx: &mut TenantTx, org: &OrgRow, user_id: &str) -> Result<bool> {
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

/// Take a user out of one organization (not its sub-organizations).
pub async fn remove_member(tx: &mut TenantTx, org_id: &str, user_id: &str) -> Result<()> {
    let n = tx
        .query("DELETE FROM memberships WHERE tenant_id = $1 AND org_id = $2 AND user_id = $3")
        .bind(org_id.to_owned())
        .bind(user_id.to_owned())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(Error::NotFound("membership"));
    }
    Ok(())
}

/// A new organization.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    /// The parent; omit for a top-level organization (needs tenant-wide rights).
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    parent_id: Option<String>,
    #[schemars(length(max = 200), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    external_id: Option<String>,
    /// Most distinct members this organization and its sub-organizations may have.
    #[schemars(range(min = 0, max = 10000000))]
    member_limit: Option<i64>,
}

/// A change to an organization; absent fields stay as they are.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    /// Move under another organization; `null` makes it top-level.
    #[serde(default, deserialize_with = "crate::fields::double_option")]
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    parent_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::fields::double_option")]
    #[schemars(length(max = 200), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::fields::double_option")]
    #[schemars(range(min = 0, max = 10000000))]
    member_limit: Option<Option<i64>>,
}

impl NewOrg {
    /// An organization with a name under a parent (none: top-level), and nothing else set.
    pub fn named(name: &str, parent_id: Option<String>) -> NewOrg {
        NewOrg {
            name: name.to_owned(),
            parent_id,
            external_id: None,
            member_limit: None,
        }
    }
}

const CONSTRAINTS: Constraints<Error> = &[
    ("orgs_sibling_name", || Error::Duplicate {
        field: "name",
        message: "an organization with this name already exists under the same parent".into(),
    }),
    ("external_id", || Error::Duplicate {
        field: "external_id",
        message: "an organization has this external id already".into(),
    }),
];

fn check_limit_value(limit: Option<i64>) -> Result<()> {
    match limit {
        Some(n) if !(0..=10_000_000).contains(&n) => {
            Err(Error::invalid("member_limit", "must be between 0 and 10000000"))
        }
        _ => Ok(()),
    }
}

/// Create an organization under a parent within `reach` (top-level only with the whole academy in reach).
pub async fn create(tx: &mut TenantTx, reach: &Reach, req: &NewOrg) -> Result<OrgOut> {
    let name = text("name", &req.name, 200)?;
    let external_id = opt_text("external_id", req.external_id.as_deref(), 200)?;
    check_limit_value(req.member_limit)?;
    let id = new_id();
    let (path, depth) = match &req.parent_id {
        Some(parent_id) => {
            let parent = find(tx, parent_id)
                .await?
                .filter(|p| reach.covers_org_path(&p.path))
                .ok_or_else(|| Error::invalid("parent_id", "no such organization within your scope"))?;
            (format!("{}{id}/", parent.path), parent.depth + 1)
        }
        None if reach.all => (format!("/{id}/"), 0),
        None => return Err(Error::invalid("parent_id", "name a parent within your scope")),
    };
    tx.query(
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
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .on_constraint(CONSTRAINTS)?;
    load_out(tx, &id).await
}

/// Rename, move or change an organization within `reach`; returns it before and after.
pub async fn update(tx: &mut TenantTx, reach: &Reach, id: &str, req: &OrgPatch) -> Result<(OrgOut, OrgOut)> {
    let org = find_in_reach(tx, reach, id).await?;
    let before = load_out(tx, id).await?;
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
                    Some(p) => find(tx, p).await?,
                    None => None,
                };
                if !parent.is_some_and(|p| reach.covers_org_path(&p.path)) {
                    return Err(Error::Forbidden(
                        "the member limit of an organization is set from above it; ask whoever manages its parent"
                            .into(),
                    ));
                }
            }
            l
        }
        None => org.member_limit,
    };
    tx.query("UPDATE orgs SET name = $3, external_id = $4, member_limit = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .bind(name)
        .bind(external_id)
        .bind(member_limit)
        .bind(now_ms())
        .execute(tx.conn())
        .await
        .on_constraint(CONSTRAINTS)?;
    if let Some(new_parent) = &req.parent_id
        && new_parent.as_deref() != org.parent_id.as_deref()
    {
        move_org(tx, reach, &org, new_parent.as_deref()).await?;
    }
    let after = load_out(tx, id).await?;
    Ok((before, after))
}

/// Move `org` (and its subtree) under `new_parent`, refusing cycles and moves out of `reach`.
async fn move_org(tx: &mut TenantTx, reach: &Reach, org: &OrgRow, new_parent: Option<&str>) -> Result<()> {
    let (new_path, new_depth) = match new_parent {
        Some(pid) => {
            let parent = find(tx, pid)
                .await?
                .filter(|p| reach.covers_org_path(&p.path))
                .ok_or_else(|| Error::invalid("parent_id", "no such organization within your scope"))?;
            if parent.path.starts_with(&org.path) {
                return Err(Error::refused(
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
            return Err(Error::invalid(
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
        .on_constraint(CONSTRAINTS)?;
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

/// Delete an organization within `reach`. With `reparent`, its children and members move to its parent
/// first; without, a non-empty organization is refused. Returns it as it was.
pub async fn delete(tx: &mut TenantTx, reach: &Reach, id: &str, reparent: bool) -> Result<OrgOut> {
    let org = find_in_reach(tx, reach, id).await?;
    let before = load_out(tx, id).await?;
    let children: i64 = tx
        .query("SELECT COUNT(*) FROM orgs WHERE tenant_id = $1 AND parent_id = $2")
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    let empty = children == 0 && before.member_count == 0;
    if !empty && !reparent {
        return Err(Error::NotEmpty {
            name: org.name,
            children,
            members: before.member_count,
        });
    }
    if reparent && !empty {
        let Some(parent_id) = org.parent_id.clone() else {
            return Err(Error::refused(
                "org_is_root",
                Some("mode"),
                "a top-level organization has no parent to move its content to",
            ));
        };
        let parent = find(tx, &parent_id).await?.ok_or(Error::NotFound("organization"))?;
        if !reach.covers_org_path(&parent.path) {
            return Err(Error::Forbidden("the parent organization is outside your scope".into()));
        }
        let kids: Vec<String> = tx
            .query("SELECT id FROM orgs WHERE tenant_id = $1 AND parent_id = $2")
            .bind(id.to_owned())
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        for kid in kids {
            let kid = find(tx, &kid).await?.ok_or(Error::NotFound("organization"))?;
            move_org(tx, reach, &kid, Some(&parent_id)).await?;
        }
        tx.query(
            "INSERT INTO memberships (tenant_id, user_id, org_id, created_at) \
             SELECT $1, user_id, $3, created_at FROM memberships WHERE tenant_id = $1 AND org_id = $2 ON CONFLICT DO NOTHING",
        )
        .bind(id.to_owned())
        .bind(parent_id)
        .execute(tx.conn())
        .await?;
    }
    // What the learning core keeps about the organization goes with it: its claimed domains, its invitations
    // (sign-up records keep their e-mail and decision), its branding, and the courses offered to it stop being
    // offered.
    for sql in [
        "DELETE FROM memberships WHERE tenant_id = $1 AND org_id = $2",
        "UPDATE signups SET invitation_id = NULL WHERE tenant_id = $1 AND invitation_id IN (SELECT id FROM invitations WHERE tenant_id = $1 AND org_id = $2)",
        "UPDATE signups SET org_id = NULL WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM invitations WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM org_domains WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM course_orgs WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM org_branding WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM scim_groups WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM grants WHERE tenant_id = $1 AND org_id = $2",
        "DELETE FROM orgs WHERE tenant_id = $1 AND id = $2",
    ] {
        tx.query(sql).bind(id.to_owned()).execute(tx.conn()).await?;
    }
    Ok(before)
}

/// A member of an organization.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct MemberOut {
    pub(crate) user_id: String,
    email: String,
    name: String,
    status: String,
    /// The organization (this one or a sub-organization) the membership is in.
    pub(crate) org_id: String,
    org_name: String,
}

impl MemberOut {
    /// A membership of a user just added.
    pub fn new(user: &super::users::UserOut, org: OrgRow) -> MemberOut {
        MemberOut {
            user_id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            status: user.status.clone(),
            org_id: org.id,
            org_name: org.name,
        }
    }
}

/// Filters of a member list.
#[derive(Debug, Default)]
pub struct MemberFilter<'a> {
    /// Only direct members.
    pub direct: bool,
    /// User status.
    pub status: Option<&'a str>,
    /// Holding this role key.
    pub role: Option<&'a str>,
    /// Only members of this sub-organization (and below).
    pub sub_org: Option<&'a str>,
    /// After this `<user_id>|<org_id>` (the previous page's cursor).
    pub after: Option<&'a str>,
}

/// Members of an organization within `reach` (including its sub-organizations unless `direct`), ordered by
/// user and organization, up to `limit + 1`.
pub async fn members(
    tx: &mut TenantTx,
    reach: &Reach,
    id: &str,
    filter: &MemberFilter<'_>,
    limit: i64,
) -> Result<Vec<MemberOut>> {
    let org = find_in_reach(tx, reach, id).await?;
    let within = match filter.sub_org {
        Some(sub) => {
            find(tx, sub)
                .await?
                .filter(|s| s.path.starts_with(&org.path))
                .ok_or_else(|| Error::invalid("sub_org", "no such sub-organization"))?
                .path
        }
        None => org.path.clone(),
    };
    let mut sql = Sql::tenant(
        "SELECT u.id AS user_id, u.email, u.name, u.status, o.id AS org_id, o.name AS org_name \
         FROM memberships m JOIN users u ON u.id = m.user_id JOIN orgs o ON o.id = m.org_id \
         WHERE m.tenant_id = $1 AND u.tenant_id = $1",
    );
    if filter.direct {
        sql.push(" AND o.id = ").push_bind(org.id.as_str());
    } else {
        sql.push(" AND o.path LIKE ").push_bind(format!("{within}%"));
    }
    if let Some(status) = filter.status {
        sql.push(" AND u.status = ").push_bind(status);
    }
    if let Some(role) = filter.role {
        sql.push(
            " AND EXISTS (SELECT 1 FROM grants g JOIN roles r ON r.id = g.role_id WHERE g.tenant_id = $1 AND g.user_id = u.id AND r.key = ",
        )
        .push_bind(role)
        .push(")");
    }
    if let Some(cursor) = filter.after {
        let (u, o) = cursor
            .split_once('|')
            .ok_or_else(|| Error::invalid("cursor", "not a cursor from this list"))?;
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
    Ok(rows.iter().map(MemberOut::from_row).collect::<Result<Vec<_>, _>>()?)
}
