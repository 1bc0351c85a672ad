//! Users: list with filters, create, read, change, delete, and their tags.

use super::api::{Api, Op};
use super::common::{Json, Page, PageParams, Query, double_option, email, opt_text, text};
use crate::audit::{Change, record};
use crate::auth::{Caller, password};
use crate::db::{Sql, TenantTx, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::scope::{GrantScope, Permission, Reach};
use axum::extract::{OriginalUri, Path};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

pub fn routes(api: &mut Api) {
    api.tag("users");
    api.op_out::<Page<UserOut>>(
        Op::get("/api/v1/users", "List users within your scope")
            .permission("users.read")
            .query(&[
                ("limit", "page size, 1–500 (default 50)"),
                ("cursor", "from the previous page's next_cursor"),
                ("q", "part of the e-mail or name"),
                ("status", "active, pending, suspended or terminated"),
                ("org", "members of this organization or its sub-organizations"),
                ("tag", "carrying this tag (id)"),
                ("segment", "matching this segment (id)"),
                ("external_id", "exact external id"),
            ]),
        get(list),
    );
    api.op_io::<NewUser, UserOut>(
        Op::post("/api/v1/users", "Create a user")
            .permission("users.write")
            .status(201),
        post(create),
    );
    api.op_out::<UserOut>(
        Op::get("/api/v1/users/{id}", "Read a user").permission("users.read"),
        get(read),
    );
    api.op_io::<UserPatch, UserOut>(
        Op::patch("/api/v1/users/{id}", "Change a user").permission("users.write"),
        patch(update),
    );
    api.op(
        Op::delete("/api/v1/users/{id}", "Delete a user and everything attached to them").permission("users.write"),
        delete(remove),
    );
    api.op_io::<TagRequest, UserOut>(
        Op::post("/api/v1/users/{id}/tags", "Tag a user").permission("users.write"),
        post(add_tag),
    );
    api.op(
        Op::delete("/api/v1/users/{id}/tags/{tag_id}", "Remove a tag from a user").permission("users.write"),
        delete(remove_tag),
    );
}

/// A user as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct UserOut {
    id: String,
    email: String,
    name: String,
    locale: Option<String>,
    status: String,
    external_id: Option<String>,
    manager_id: Option<String>,
    /// Custom profile fields, by key.
    profile: Map<String, Value>,
    /// Organizations the user belongs to (only those you can see).
    orgs: Vec<NamedRef>,
    /// Tags the user carries.
    tags: Vec<NamedRef>,
    first_login_at: Option<String>,
    last_login_at: Option<String>,
    created_at: String,
    updated_at: String,
}

/// An id with its name.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NamedRef {
    id: String,
    name: String,
}

const USER_COLUMNS: &str = "u.id, u.email, u.name, u.locale, u.status, u.external_id, u.manager_id, u.profile, \
    u.first_login_at, u.last_login_at, u.created_at, u.updated_at";

fn user_from_row(row: &AnyRow) -> Result<UserOut, sqlx::Error> {
    let profile: String = row.try_get("profile")?;
    Ok(UserOut {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        locale: row.try_get("locale")?,
        status: row.try_get("status")?,
        external_id: row.try_get("external_id")?,
        manager_id: row.try_get("manager_id")?,
        profile: serde_json::from_str(&profile).unwrap_or_default(),
        orgs: Vec::new(),
        tags: Vec::new(),
        first_login_at: row.try_get::<Option<i64>, _>("first_login_at")?.map(rfc3339),
        last_login_at: row.try_get::<Option<i64>, _>("last_login_at")?.map(rfc3339),
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// Fill in orgs (those the caller can see) and tags for a batch of users, with two queries.
async fn attach(tx: &mut TenantTx, caller: &Caller, users: &mut [UserOut]) -> Result<(), sqlx::Error> {
    if users.is_empty() {
        return Ok(());
    }
    let org_reach = caller.grants.reach(Permission::OrgsRead);
    let mut sql = Sql::tenant(
        "SELECT m.user_id, o.id, o.name, o.path FROM memberships m JOIN orgs o ON o.id = m.org_id \
         WHERE m.tenant_id = $1 AND m.user_id IN (",
    );
    push_ids(&mut sql, users.iter().map(|u| u.id.as_str()));
    sql.push(") ORDER BY o.name");
    let mut orgs: HashMap<String, Vec<NamedRef>> = HashMap::new();
    for row in tx.fetch_all_sql(&sql).await? {
        let path: String = row.try_get("path")?;
        let user_id: String = row.try_get("user_id")?;
        // Everyone may see their own organizations; others only those in their reach.
        if org_reach.covers_org_path(&path) || user_id == caller.user_id {
            orgs.entry(user_id).or_default().push(NamedRef {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
            });
        }
    }
    let mut sql = Sql::tenant(
        "SELECT ut.user_id, t.id, t.name FROM user_tags ut JOIN tags t ON t.id = ut.tag_id \
         WHERE ut.tenant_id = $1 AND ut.user_id IN (",
    );
    push_ids(&mut sql, users.iter().map(|u| u.id.as_str()));
    sql.push(") ORDER BY t.name");
    let mut tags: HashMap<String, Vec<NamedRef>> = HashMap::new();
    for row in tx.fetch_all_sql(&sql).await? {
        tags.entry(row.try_get("user_id")?).or_default().push(NamedRef {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
        });
    }
    for u in users.iter_mut() {
        u.orgs = orgs.remove(&u.id).unwrap_or_default();
        u.tags = tags.remove(&u.id).unwrap_or_default();
    }
    Ok(())
}

pub(crate) fn push_ids<'a>(sql: &mut Sql, ids: impl Iterator<Item = &'a str>) {
    for (i, id) in ids.enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push_bind(id);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    q: Option<String>,
    status: Option<String>,
    org: Option<String>,
    tag: Option<String>,
    segment: Option<String>,
    external_id: Option<String>,
}

async fn list(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<UserOut>>> {
    let reach = caller.require(Permission::UsersRead)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1"));
    reach.push_user_filter(&mut sql, tx.backend());
    if let Some(cursor) = &p.cursor {
        sql.push(" AND u.id > ").push_bind(cursor.as_str());
    }
    if let Some(q) = p.q.as_deref().filter(|q| !q.is_empty()) {
        let like = format!("%{}%", q.to_lowercase());
        sql.push(" AND (lower(u.email) LIKE ")
            .push_bind(like.clone())
            .push(" OR lower(u.name) LIKE ")
            .push_bind(like)
            .push(")");
    }
    if let Some(status) = &p.status {
        check_status("status", status)?;
        sql.push(" AND u.status = ").push_bind(status.as_str());
    }
    if let Some(external_id) = &p.external_id {
        sql.push(" AND u.external_id = ").push_bind(external_id.as_str());
    }
    if let Some(org) = &p.org {
        // An org the caller cannot see filters to nothing, like an org that does not exist.
        sql.push(
            " AND EXISTS (SELECT 1 FROM memberships fm JOIN orgs fo ON fo.id = fm.org_id \
             JOIN orgs fr ON fr.tenant_id = $1 AND fo.path LIKE fr.path || '%' \
             WHERE fm.tenant_id = $1 AND fm.user_id = u.id AND fr.id = ",
        )
        .push_bind(org.as_str())
        .push(")");
    }
    if let Some(tag) = &p.tag {
        sql.push(
            " AND EXISTS (SELECT 1 FROM user_tags ft WHERE ft.tenant_id = $1 AND ft.user_id = u.id AND ft.tag_id = ",
        )
        .push_bind(tag.as_str())
        .push(")");
    }
    if let Some(segment) = &p.segment {
        // Filtering by a segment needs to be able to read it, or to hold a grant scoped to it.
        let readable = caller.grants.reach(Permission::SegmentsRead).all
            || caller
                .grants
                .0
                .iter()
                .any(|g| matches!(&g.scope, GrantScope::Segment { id, .. } if id == segment));
        if !readable {
            return Err(ApiError::NotFound { what: "segment" });
        }
        let def = crate::http::segments::load_def(&mut tx, segment)
            .await?
            .ok_or(ApiError::NotFound { what: "segment" })?;
        sql.push(" AND (");
        def.push_condition(&mut sql, tx.backend());
        sql.push(")");
    }
    sql.push(" ORDER BY u.id LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    let mut users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
    let more = users.len() as i64 > limit;
    users.truncate(limit as usize);
    attach(&mut tx, &caller, &mut users).await?;
    tx.commit().await?;
    Ok(axum::Json(Page::new(users, more, &uri, |u| u.id.clone())))
}

fn check_status(field: &str, status: &str) -> Result<(), ApiError> {
    if ["active", "pending", "suspended", "terminated"].contains(&status) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be active, pending, suspended or terminated",
        ))
    }
}

/// Load one user the caller reaches with `reach`, or 404.
pub(crate) async fn load_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> ApiResult<UserOut> {
    let mut sql = Sql::tenant(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = $1 AND u.id = "
    ));
    sql.push_bind(id);
    reach.push_user_filter(&mut sql, tx.backend());
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?;
    Ok(user_from_row(&row)?)
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<UserOut>> {
    let mut tx = caller.db().begin_read().await?;
    let mut user = if id == caller.user_id {
        load_in_reach(
            &mut tx,
            &Reach {
                all: true,
                ..Reach::default()
            },
            &id,
        )
        .await?
    } else {
        let reach = caller.grants.reach(Permission::UsersRead);
        load_in_reach(&mut tx, &reach, &id).await?
    };
    attach(&mut tx, &caller, std::slice::from_mut(&mut user)).await?;
    tx.commit().await?;
    Ok(axum::Json(user))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    name: String,
    locale: Option<String>,
    /// Default `active`.
    status: Option<String>,
    external_id: Option<String>,
    manager_id: Option<String>,
    #[serde(default)]
    profile: Map<String, Value>,
    /// Optional initial password (at least 10 characters).
    password: Option<String>,
    /// Organizations to place the user in. Required when your scope is an organization subtree.
    #[serde(default)]
    org_ids: Vec<String>,
    /// Tag ids to give the user.
    #[serde(default)]
    tag_ids: Vec<String>,
}

async fn create(caller: Caller, Json(req): Json<NewUser>) -> ApiResult<(StatusCode, axum::Json<UserOut>)> {
    let reach = caller.require(Permission::UsersWrite)?;
    let email = email("email", &req.email)?;
    let name = text("name", &req.name, 200)?;
    let locale = opt_text("locale", req.locale.as_deref(), 20)?;
    if let Some(l) = &locale {
        if !crate::tenancy::valid_locale(l) {
            return Err(ApiError::invalid(
                "locale",
                "must be a language tag such as en or de-CH",
            ));
        }
    }
    let status = req.status.unwrap_or_else(|| "active".into());
    check_status("status", &status)?;
    let external_id = opt_text("external_id", req.external_id.as_deref(), 200)?;
    if !reach.all && req.org_ids.is_empty() {
        return Err(ApiError::invalid(
            "org_ids",
            "name at least one organization within your scope",
        ));
    }
    let hash = match req.password {
        Some(p) => {
            password::check_new("password", &p)?;
            Some(password::hash(p).await?)
        }
        None => None,
    };
    let mut tx = caller.db().begin().await?;
    let profile = validate_profile(&mut tx, &req.profile, None).await?;
    if let Some(manager) = &req.manager_id {
        manager_in_reach(&mut tx, &caller, manager).await?;
    }
    let org_reach = caller.grants.reach(Permission::UsersWrite);
    let mut orgs = Vec::new();
    for (i, org_id) in req.org_ids.iter().enumerate() {
        let org = super::orgs::find(&mut tx, org_id)
            .await?
            .filter(|o| org_reach.covers_org_path(&o.path))
            .ok_or_else(|| ApiError::invalid(format!("org_ids[{i}]"), "no such organization within your scope"))?;
        orgs.push(org);
    }
    let id = new_id();
    let now = now_ms();
    let inserted = tx
        .query(
            "INSERT INTO users (id, tenant_id, email, name, locale, status, external_id, manager_id, profile, password_hash, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(id.clone())
        .bind(email.clone())
        .bind(name)
        .bind(locale)
        .bind(status)
        .bind(external_id)
        .bind(req.manager_id.clone())
        .bind(Value::Object(profile).to_string())
        .bind(hash)
        .bind(now)
        .execute(tx.conn())
        .await;
    if let Err(e) = inserted {
        return Err(user_conflict(e));
    }
    for org in &orgs {
        super::orgs::add_member(&mut tx, org, &id).await?;
    }
    for (i, tag_id) in req.tag_ids.iter().enumerate() {
        tag_exists(&mut tx, tag_id)
            .await
            .map_err(|_| ApiError::invalid(format!("tag_ids[{i}]"), "no such tag"))?;
        tx.query("INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(id.clone())
            .bind(tag_id.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
    }
    // Every user is a learner.
    tx.query(
        "INSERT INTO grants (id, tenant_id, user_id, role_id, scope_type, created_at) \
         SELECT $2, $1, $3, r.id, 'tenant', $4 FROM roles r WHERE r.tenant_id = $1 AND r.key = 'learner'",
    )
    .bind(new_id())
    .bind(id.clone())
    .bind(now)
    .execute(tx.conn())
    .await?;
    let mut user = load_in_reach(
        &mut tx,
        &Reach {
            all: true,
            ..Reach::default()
        },
        &id,
    )
    .await?;
    attach(&mut tx, &caller, std::slice::from_mut(&mut user)).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change {
            action: "user.create",
            target_type: "user",
            target_id: Some(&id),
            before: None,
            after: Some(json!(user)),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

fn user_conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(key) if key.contains("users_email_key") || key.contains("users.email") => {
            ApiError::duplicate("email", "a user with this e-mail already exists in this academy")
        }
        Some(key) if key.contains("external_id") => ApiError::duplicate(
            "external_id",
            "a user with this external id already exists in this academy",
        ),
        _ => e.into(),
    }
}

/// A line manager must be someone the caller sees: an id outside their scope is no user at all.
async fn manager_in_reach(tx: &mut TenantTx, caller: &Caller, id: &str) -> ApiResult<()> {
    load_in_reach(tx, &caller.grants.reach(Permission::UsersRead), id)
        .await
        .map(|_| ())
        .map_err(|_| ApiError::invalid("manager_id", "no such user within your scope"))
}

async fn tag_exists(tx: &mut TenantTx, id: &str) -> ApiResult<()> {
    tx.query("SELECT 1 FROM tags WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|_| ())
        .ok_or(ApiError::NotFound { what: "tag" })
}

/// Check custom profile values against the tenant's field definitions. `current` is merged under `changes`
/// (a `null` value removes a key).
pub(crate) async fn validate_profile(
    tx: &mut TenantTx,
    changes: &Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> ApiResult<Map<String, Value>> {
    let defs = tx
        .query("SELECT key, field_type, choices, required FROM profile_fields WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await?;
    let mut by_key: HashMap<String, (String, Vec<String>, bool)> = HashMap::new();
    for d in defs {
        let choices: String = d.try_get("choices")?;
        by_key.insert(
            d.try_get("key")?,
            (
                d.try_get("field_type")?,
                serde_json::from_str(&choices).unwrap_or_default(),
                d.try_get::<i64, _>("required")? != 0,
            ),
        );
    }
    let mut out = current.cloned().unwrap_or_default();
    for (key, value) in changes {
        let field = format!("profile.{key}");
        let Some((kind, choices, _)) = by_key.get(key) else {
            return Err(ApiError::BadRequest {
                code: "unknown_field",
                message: format!("this academy has no profile field {key:?}"),
                field: Some(field),
            });
        };
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let ok = match kind.as_str() {
            "number" => value.is_number(),
            "date" => value.as_str().is_some_and(|s| {
                time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
            }),
            "choice" => value.as_str().is_some_and(|s| choices.iter().any(|c| c == s)),
            _ => value.as_str().is_some_and(|s| s.chars().count() <= 1000),
        };
        if !ok {
            let expected = match kind.as_str() {
                "number" => "a number".to_owned(),
                "date" => "a date as YYYY-MM-DD".to_owned(),
                "choice" => format!("one of {}", choices.join(", ")),
                _ => "text of at most 1000 characters".to_owned(),
            };
            return Err(ApiError::invalid(field, format!("must be {expected}")));
        }
        out.insert(key.clone(), value.clone());
    }
    for (key, (_, _, required)) in &by_key {
        if *required && !out.contains_key(key) {
            return Err(ApiError::invalid(format!("profile.{key}"), "is required"));
        }
    }
    Ok(out)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    email: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    locale: Option<Option<String>>,
    status: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    manager_id: Option<Option<String>>,
    /// Keys to set; `null` removes a key.
    profile: Option<Map<String, Value>>,
    /// Set a new password for the user (ends their sessions).
    password: Option<String>,
}

async fn update(caller: Caller, Path(id): Path<String>, Json(req): Json<UserPatch>) -> ApiResult<axum::Json<UserOut>> {
    let reach = caller.require(Permission::UsersWrite)?;
    let hash = match &req.password {
        Some(p) => {
            password::check_new("password", p)?;
            Some(password::hash(p.clone()).await?)
        }
        None => None,
    };
    let mut tx = caller.db().begin().await?;
    let mut before = load_in_reach(&mut tx, &reach, &id).await?;
    attach(&mut tx, &caller, std::slice::from_mut(&mut before)).await?;
    let email = match &req.email {
        Some(e) => email("email", e)?,
        None => before.email.clone(),
    };
    let name = match &req.name {
        Some(n) => text("name", n, 200)?,
        None => before.name.clone(),
    };
    let locale = match &req.locale {
        Some(l) => {
            let l = opt_text("locale", l.as_deref(), 20)?;
            if l.as_deref().is_some_and(|l| !crate::tenancy::valid_locale(l)) {
                return Err(ApiError::invalid(
                    "locale",
                    "must be a language tag such as en or de-CH",
                ));
            }
            l
        }
        None => before.locale.clone(),
    };
    let status = req.status.clone().unwrap_or_else(|| before.status.clone());
    check_status("status", &status)?;
    if id == caller.user_id && status != "active" {
        return Err(ApiError::rule(
            "self_lockout",
            Some("status"),
            "you cannot suspend or terminate your own account",
        ));
    }
    let external_id = match &req.external_id {
        Some(e) => opt_text("external_id", e.as_deref(), 200)?,
        None => before.external_id.clone(),
    };
    let manager_id = match &req.manager_id {
        Some(Some(m)) => {
            if *m == id {
                return Err(ApiError::invalid("manager_id", "a user cannot be their own manager"));
            }
            manager_in_reach(&mut tx, &caller, m).await?;
            Some(m.clone())
        }
        Some(None) => None,
        None => before.manager_id.clone(),
    };
    let profile = match &req.profile {
        Some(changes) => validate_profile(&mut tx, changes, Some(&before.profile)).await?,
        None => before.profile.clone(),
    };
    let result = tx
        .query(
            "UPDATE users SET email = $3, name = $4, locale = $5, status = $6, external_id = $7, manager_id = $8, \
             profile = $9, password_hash = coalesce($10, password_hash), updated_at = $11 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(id.clone())
        .bind(email)
        .bind(name)
        .bind(locale)
        .bind(status.clone())
        .bind(external_id)
        .bind(manager_id)
        .bind(Value::Object(profile).to_string())
        .bind(hash.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await;
    if let Err(e) = result {
        return Err(user_conflict(e));
    }
    if hash.is_some() || status != "active" {
        // A new password or a lost account ends every session and token of the user.
        tx.query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
            .bind(id.clone())
            .execute(tx.conn())
            .await?;
    }
    let mut after = load_in_reach(
        &mut tx,
        &Reach {
            all: true,
            ..Reach::default()
        },
        &id,
    )
    .await?;
    attach(&mut tx, &caller, std::slice::from_mut(&mut after)).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change {
            action: "user.update",
            target_type: "user",
            target_id: Some(&id),
            before: Some(json!(before)),
            after: Some(json!(after)),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let reach = caller.require(Permission::UsersWrite)?;
    if id == caller.user_id {
        return Err(ApiError::rule(
            "self_delete",
            None,
            "you cannot delete your own account",
        ));
    }
    let mut tx = caller.db().begin().await?;
    let before = load_in_reach(&mut tx, &reach, &id).await?;
    for sql in [
        "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM user_tags WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM grants WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM api_tokens WHERE tenant_id = $1 AND user_id = $2",
        "UPDATE users SET manager_id = NULL WHERE tenant_id = $1 AND manager_id = $2",
        "DELETE FROM users WHERE tenant_id = $1 AND id = $2",
    ] {
        tx.query(sql).bind(id.clone()).execute(tx.conn()).await?;
    }
    record(
        &mut tx,
        &caller.actor(),
        Change {
            action: "user.delete",
            target_type: "user",
            target_id: Some(&id),
            before: Some(json!(before)),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TagRequest {
    tag_id: String,
}

async fn add_tag(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<TagRequest>,
) -> ApiResult<axum::Json<UserOut>> {
    let reach = caller.require(Permission::UsersWrite)?;
    let mut tx = caller.db().begin().await?;
    load_in_reach(&mut tx, &reach, &id).await?;
    tag_exists(&mut tx, &req.tag_id)
        .await
        .map_err(|_| ApiError::invalid("tag_id", "no such tag in this academy"))?;
    tx.query(
        "INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(id.clone())
    .bind(req.tag_id.clone())
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change {
            action: "user.tag",
            target_type: "user",
            target_id: Some(&id),
            before: None,
            after: Some(json!({"tag_id": req.tag_id})),
        },
    )
    .await?;
    let mut user = load_in_reach(&mut tx, &reach, &id).await?;
    attach(&mut tx, &caller, std::slice::from_mut(&mut user)).await?;
    tx.commit().await?;
    Ok(axum::Json(user))
}

async fn remove_tag(caller: Caller, Path((id, tag_id)): Path<(String, String)>) -> ApiResult<StatusCode> {
    let reach = caller.require(Permission::UsersWrite)?;
    let mut tx = caller.db().begin().await?;
    load_in_reach(&mut tx, &reach, &id).await?;
    let n = tx
        .query("DELETE FROM user_tags WHERE tenant_id = $1 AND user_id = $2 AND tag_id = $3")
        .bind(id.clone())
        .bind(tag_id.clone())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound {
            what: "tag on this user",
        });
    }
    record(
        &mut tx,
        &caller.actor(),
        Change {
            action: "user.untag",
            target_type: "user",
            target_id: Some(&id),
            before: Some(json!({"tag_id": tag_id})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
