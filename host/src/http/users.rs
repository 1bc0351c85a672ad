//! Users: list with filters, create, read, change, delete, and their tags.

use super::api::{Api, Op};
use super::common::Path;
use super::common::{Json, Page, PageParams, Query, double_option, email, opt_text, text};
use crate::audit::{Change, record};
use crate::auth::{Caller, password};
use crate::db::{Backend, Sql, TenantTx, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::learning::automation::{self, Event};
use crate::scope::{GrantScope, Permission, Reach};
use crate::state::AppState;
use axum::extract::OriginalUri;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sqlx::Row;
use std::borrow::Cow;
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
                (
                    "expand",
                    "`orgs,tags` (either or both): include each user's organizations and tags",
                ),
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
    /// Organizations the user belongs to (only those you can see). In lists only with `expand=orgs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    orgs: Option<Vec<NamedRef>>,
    /// Tags the user carries. In lists only with `expand=tags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<NamedRef>>,
    /// Every organization of the user, with paths; `orgs` is the caller's view of it.
    #[serde(skip)]
    #[schemars(skip)]
    all_orgs: Option<Vec<OrgEntry>>,
    first_login_at: Option<String>,
    last_login_at: Option<String>,
    created_at: String,
    updated_at: String,
}

/// An id with its name.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NamedRef {
    id: String,
    name: String,
}

/// `SELECT … FROM users u`, with each user's organizations (with paths, filtered to the caller's view by
/// [`attach`]) and tags as JSON columns when `expand`; without it they are NULL, which keeps the plain list
/// cheap (the correlated subqueries are most of its cost).
fn user_select(backend: Backend, expand: bool) -> String {
    if !expand {
        return "SELECT u.id, u.email, u.name, u.locale, u.status, u.external_id, u.manager_id, u.profile, \
                u.first_login_at, u.last_login_at, u.created_at, u.updated_at, NULL AS orgs_json, NULL AS tags_json FROM users u"
            .to_owned();
    }
    let orgs = backend.json_rows(
        &[("id", "o.id"), ("name", "o.name"), ("path", "o.path")],
        "FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE m.tenant_id = $1 AND m.user_id = u.id",
        "o.name",
    );
    let tags = backend.json_rows(
        &[("id", "t.id"), ("name", "t.name")],
        "FROM user_tags ut JOIN tags t ON t.id = ut.tag_id WHERE ut.tenant_id = $1 AND ut.user_id = u.id",
        "t.name",
    );
    format!(
        "SELECT u.id, u.email, u.name, u.locale, u.status, u.external_id, u.manager_id, u.profile, \
         u.first_login_at, u.last_login_at, u.created_at, u.updated_at, {orgs} AS orgs_json, {tags} AS tags_json FROM users u"
    )
}

/// The fields of a user page built as JSON by the database ([`list`]), as `(key, expression)` over the
/// select of [`user_select`] aliased `u`. `profile`, `orgs_json` and `tags_json` are JSON texts.
const PAGE_FIELDS: [(&str, &str, bool); 14] = [
    ("id", "u.id", false),
    ("email", "u.email", false),
    ("name", "u.name", false),
    ("locale", "u.locale", false),
    ("status", "u.status", false),
    ("external_id", "u.external_id", false),
    ("manager_id", "u.manager_id", false),
    ("profile", "u.profile", true),
    ("first_login_at", "u.first_login_at", false),
    ("last_login_at", "u.last_login_at", false),
    ("created_at", "u.created_at", false),
    ("updated_at", "u.updated_at", false),
    ("orgs", "u.orgs_json", true),
    ("tags", "u.tags_json", true),
];

/// One user of a page, as the database's JSON has it.
#[derive(Deserialize)]
struct UserRow {
    id: String,
    email: String,
    name: String,
    locale: Option<String>,
    status: String,
    external_id: Option<String>,
    manager_id: Option<String>,
    profile: Option<Map<String, Value>>,
    first_login_at: Option<i64>,
    last_login_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    orgs: Option<Vec<OrgEntry>>,
    tags: Option<Vec<NamedRef>>,
}

impl From<UserRow> for UserOut {
    fn from(r: UserRow) -> UserOut {
        UserOut {
            id: r.id,
            email: r.email,
            name: r.name,
            locale: r.locale,
            status: r.status,
            external_id: r.external_id,
            manager_id: r.manager_id,
            profile: r.profile.unwrap_or_default(),
            orgs: None,
            all_orgs: r.orgs,
            tags: r.tags,
            first_login_at: r.first_login_at.map(rfc3339),
            last_login_at: r.last_login_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// An organization of a user as stored, before the caller's view is applied.
#[derive(Debug, Clone, Deserialize)]
struct OrgEntry {
    id: String,
    name: String,
    path: String,
}

/// Show each user's organizations as the caller may see them: everyone sees their own, others only those
/// in their `orgs.read` reach.
fn attach(caller: &Caller, users: &mut [UserOut]) {
    let org_reach = caller.grants.reach(Permission::OrgsRead);
    for u in users.iter_mut() {
        let own = u.id == caller.user_id;
        u.orgs = u.all_orgs.as_ref().map(|all| {
            all.iter()
                .filter(|o| own || org_reach.covers_org_path(&o.path))
                .map(|o| NamedRef {
                    id: o.id.clone(),
                    name: o.name.clone(),
                })
                .collect()
        });
    }
}

pub(crate) fn push_ids<'a>(sql: &mut Sql, ids: impl Iterator<Item = &'a str>) {
    sql.push_list(ids);
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
    expand: Option<String>,
}

async fn list(caller: Caller, OriginalUri(uri): OriginalUri, Query(p): Query<ListParams>) -> ApiResult<Response> {
    let reach = caller.require(Permission::UsersRead)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    let expand = match p.expand.as_deref() {
        None | Some("") => false,
        Some(e) if e.split(',').all(|x| matches!(x.trim(), "orgs" | "tags")) => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "expand",
                "must list orgs and/or tags, comma-separated",
            ));
        }
    };
    let mut sql = Sql::tenant(&format!("{} WHERE u.tenant_id = $1", user_select(tx.backend(), expand)));
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
    // The whole page comes back as one JSON value: decoding rows one by one through the driver cost more
    // than everything else in this request put together (see docs/BENCHMARKS.md).
    let backend = tx.backend();
    if !expand {
        // Nothing to filter per item: the database's JSON is answered nearly as it is, borrowing every
        // string from it and rendering only the times.
        let fields: Vec<(&str, &str, bool)> = PAGE_FIELDS
            .iter()
            .copied()
            .filter(|(k, _, _)| !matches!(*k, "orgs" | "tags"))
            .collect();
        let page = sql.wrap(&format!("{} FROM (", backend.json_page(&fields, "u.id")), ") u");
        let json = fetch_page_json(&mut tx, &page).await?;
        tx.commit().await?;
        let mut items: Vec<PlainUser<'_>> = serde_json::from_str(&json).map_err(page_error)?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        return Ok(axum::Json(Page::new(items, more, &uri, |u| u.id.to_string())).into_response());
    }
    let mut users = fetch_users(&mut tx, &sql).await?;
    let more = users.len() as i64 > limit;
    users.truncate(limit as usize);
    attach(&caller, &mut users);
    tx.commit().await?;
    Ok(axum::Json(Page::new(users, more, &uri, |u| u.id.clone())).into_response())
}

/// The users a `SELECT` from [`user_select`] (with `expand`) finds, in its order, as one JSON value from the
/// database.
async fn fetch_users(tx: &mut TenantTx, select: &Sql) -> ApiResult<Vec<UserOut>> {
    let page = select.wrap(
        &format!("{} FROM (", tx.backend().json_page(&PAGE_FIELDS, "u.id")),
        ") u",
    );
    let json = fetch_page_json(tx, &page).await?;
    let rows: Vec<UserRow> = serde_json::from_str(&json).map_err(page_error)?;
    Ok(rows.into_iter().map(UserOut::from).collect())
}

async fn fetch_page_json(tx: &mut TenantTx, page: &Sql) -> ApiResult<String> {
    let json: Option<String> = tx.fetch_optional_sql(page).await?.map(|r| r.try_get(0)).transpose()?;
    Ok(json.unwrap_or_else(|| "[]".to_owned()))
}

fn page_error(e: serde_json::Error) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("user page JSON from the database: {e}"))
}

/// A user of a plain page, borrowed from the database's JSON; serializes exactly like [`UserOut`] without
/// `orgs` and `tags`.
#[derive(Deserialize, Serialize)]
struct PlainUser<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    email: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    locale: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    external_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    manager_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    profile: &'a RawValue,
    #[serde(serialize_with = "opt_time")]
    first_login_at: Option<i64>,
    #[serde(serialize_with = "opt_time")]
    last_login_at: Option<i64>,
    #[serde(serialize_with = "time")]
    created_at: i64,
    #[serde(serialize_with = "time")]
    updated_at: i64,
}

fn time<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

fn opt_time<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

/// May the caller make account-wide changes to this user (e-mail, status, password, deletion)? Those
/// reach beyond the caller's part of the academy, so the caller needs more than the user being in reach:
/// every organization of the user must be within the caller's `users.write` reach (or that reach is the
/// whole academy), and the caller must hold every permission the user holds, over the same scopes — a
/// manager cannot take over an admin's account by resetting its password.
pub(crate) async fn ensure_account_authority(tx: &mut TenantTx, caller: &Caller, user_id: &str) -> ApiResult<()> {
    let reach = caller.grants.reach(Permission::UsersWrite);
    if !reach.all {
        let paths: Vec<String> = tx
            .query("SELECT o.path FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE m.tenant_id = $1 AND m.user_id = $2")
            .bind(user_id.to_owned())
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if paths.is_empty() || paths.iter().any(|p| !reach.covers_org_path(p)) {
            return Err(ApiError::forbidden(
                "this user also belongs to organizations outside your scope; an academy admin can change their account",
            ));
        }
    }
    let theirs = crate::auth::load_grants(tx, user_id).await?;
    for grant in &theirs.0 {
        if let Some(p) = caller.grants.holds_all_over(&grant.permissions, &grant.scope) {
            return Err(ApiError::forbidden(format!(
                "this user holds {} where you do not; an academy admin can change their account",
                p.as_str()
            )));
        }
    }
    Ok(())
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
        "{} WHERE u.tenant_id = $1 AND u.id = ",
        user_select(tx.backend(), true)
    ));
    sql.push_bind(id);
    reach.push_user_filter(&mut sql, tx.backend());
    fetch_users(tx, &sql)
        .await?
        .pop()
        .ok_or(ApiError::NotFound { what: "user" })
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
    attach(&caller, std::slice::from_mut(&mut user));
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
    /// E-mail the user an invitation with a link to choose their password (it works once, for 7 days).
    #[serde(default)]
    invite: bool,
}

/// How long an invitation's password link works.
const INVITATION_LINK_MS: i64 = 7 * 86_400_000;

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<UserOut>)> {
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
    // The academy's rules act inside this transaction; its enrollment plugins once it has committed.
    let pending =
        automation::run_rules(&mut tx, vec![Event::created(&id)], super::enrollments::context(&caller)).await?;
    let mut user = load_in_reach(
        &mut tx,
        &Reach {
            all: true,
            ..Reach::default()
        },
        &id,
    )
    .await?;
    attach(&caller, std::slice::from_mut(&mut user));
    record(
        &mut tx,
        &caller.actor(),
        Change::created("user.create", "user", &id, json!(user)),
    )
    .await?;
    if req.invite {
        // The link is a password reset link that lives longer; only its hash is stored.
        let token = crate::auth::random_secret();
        let now = crate::db::now_ms();
        tx.query(
            "INSERT INTO password_resets (id, tenant_id, user_id, email, secret_hash, created_at, expires_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7)",
        )
        .bind(crate::db::new_id())
        .bind(id.clone())
        .bind(email.clone())
        .bind(crate::auth::secret_hash(&token))
        .bind(now)
        .bind(now + INVITATION_LINK_MS)
        .execute(tx.conn())
        .await?;
        let link = format!(
            "{}/password-reset/{token}",
            crate::notify::academy_url(&state, &caller.tenant)
        );
        let event = crate::outbox::Event::about(crate::outbox::Kind::Invited, &id)
            .by(Some(&caller.user_id))
            .with("link", link);
        crate::outbox::emit(&mut tx, &[event]).await?;
    }
    tx.commit().await?;
    automation::after_commit(&state, caller.db(), pending).await;
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

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<UserPatch>,
) -> ApiResult<axum::Json<UserOut>> {
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
    attach(&caller, std::slice::from_mut(&mut before));
    let account_wide = req.password.is_some()
        || req
            .email
            .as_deref()
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case(&before.email))
        || req.status.as_deref().is_some_and(|s| s != before.status);
    if account_wide && id != caller.user_id {
        ensure_account_authority(&mut tx, &caller, &id).await?;
    }
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
        tx.query("UPDATE api_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL")
            .bind(id.clone())
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
    }
    let pending =
        automation::run_rules(&mut tx, vec![Event::changed(&id)], super::enrollments::context(&caller)).await?;
    let mut after = load_in_reach(
        &mut tx,
        &Reach {
            all: true,
            ..Reach::default()
        },
        &id,
    )
    .await?;
    attach(&caller, std::slice::from_mut(&mut after));
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("user.update", "user", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    automation::after_commit(&state, caller.db(), pending).await;
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
    ensure_account_authority(&mut tx, &caller, &id).await?;
    crate::learning::enroll::forget_user(&mut tx, &id).await?;
    super::account::forget_user(&mut tx, &id).await?;
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
        Change::deleted("user.delete", "user", &id, json!(before)),
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
    State(state): State<AppState>,
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
    let added = tx.query(
        "INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(id.clone())
    .bind(req.tag_id.clone())
    .bind(now_ms())
    .execute(tx.conn())
    .await?
    .rows_affected();
    record(
        &mut tx,
        &caller.actor(),
        Change::created("user.tag", "user", &id, json!({"tag_id": req.tag_id})),
    )
    .await?;
    // Only a tag that was not there yet is a change for the rules.
    let changed = if added > 0 {
        vec![Event::changed(&id)]
    } else {
        Vec::new()
    };
    let pending = automation::run_rules(&mut tx, changed, super::enrollments::context(&caller)).await?;
    let mut user = load_in_reach(&mut tx, &reach, &id).await?;
    attach(&caller, std::slice::from_mut(&mut user));
    tx.commit().await?;
    automation::after_commit(&state, caller.db(), pending).await;
    Ok(axum::Json(user))
}

async fn remove_tag(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, tag_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
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
        Change::deleted("user.untag", "user", &id, json!({"tag_id": tag_id})),
    )
    .await?;
    let pending =
        automation::run_rules(&mut tx, vec![Event::changed(&id)], super::enrollments::context(&caller)).await?;
    tx.commit().await?;
    automation::after_commit(&state, caller.db(), pending).await;
    Ok(StatusCode::NO_CONTENT)
}
