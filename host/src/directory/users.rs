//! Users as a caller may see them: one user, or a page of the list with filters, each with the
//! organizations the caller may see; and the rule of authority for changes to a whole account.

use super::{Error, Result};
use crate::db::{Backend, Sql, TenantTx, rfc3339};
use crate::scope::{GrantScope, Grants, Permission, Reach};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sqlx::Row;
use std::borrow::Cow;

/// A user as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct UserOut {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) locale: Option<String>,
    pub(crate) status: String,
    pub(crate) external_id: Option<String>,
    pub(crate) manager_id: Option<String>,
    /// Custom profile fields, by key.
    pub(crate) profile: Map<String, Value>,
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

/// Show each user's organizations as a viewer may see them: everyone sees their own, others only those in
/// the viewer's `orgs.read` reach.
pub fn attach(users: &mut [UserOut], viewer_id: &str, org_reach: &Reach) {
    for u in users.iter_mut() {
        let own = u.id == viewer_id;
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

/// Filters of the users list.
#[derive(Debug, Default)]
pub struct UserFilter<'a> {
    /// After this id (the previous page's cursor).
    pub after: Option<&'a str>,
    /// Part of the e-mail or name.
    pub q: Option<&'a str>,
    /// A user status.
    pub status: Option<&'a str>,
    /// Exact external id.
    pub external_id: Option<&'a str>,
    /// Members of this organization or its sub-organizations.
    pub org: Option<&'a str>,
    /// Carrying this tag (id).
    pub tag: Option<&'a str>,
    /// Matching this segment (id).
    pub segment: Option<&'a str>,
    /// With each user's organizations and tags.
    pub expand: bool,
}

/// A page of users, up to `limit + 1` (the extra one says there is a next page).
pub enum UserList {
    /// The database's JSON array of [`PlainUser`]s, to be answered nearly as it is.
    Plain(String),
    /// Users with organizations (as the viewer may see them) and tags.
    Expanded(Vec<UserOut>),
}

/// The users within `reach` that match `filter`, by id. `grants` decide which segments may filter; the
/// organizations shown are those `viewer_id` may see.
pub async fn list(
    tx: &mut TenantTx,
    grants: &Grants,
    viewer_id: &str,
    reach: &Reach,
    filter: &UserFilter<'_>,
    limit: i64,
) -> Result<UserList> {
    let mut sql = Sql::tenant(&format!(
        "{} WHERE u.tenant_id = $1",
        user_select(tx.backend(), filter.expand)
    ));
    reach.push_user_filter(&mut sql, tx.backend());
    if let Some(after) = filter.after {
        sql.push(" AND u.id > ").push_bind(after);
    }
    if let Some(q) = filter.q.filter(|q| !q.is_empty()) {
        let like = format!("%{}%", q.to_lowercase());
        sql.push(" AND (lower(u.email) LIKE ")
            .push_bind(like.clone())
            .push(" OR lower(u.name) LIKE ")
            .push_bind(like)
            .push(")");
    }
    if let Some(status) = filter.status {
        check_status("status", status)?;
        sql.push(" AND u.status = ").push_bind(status);
    }
    if let Some(external_id) = filter.external_id {
        sql.push(" AND u.external_id = ").push_bind(external_id);
    }
    if let Some(org) = filter.org {
        // An org the caller cannot see filters to nothing, like an org that does not exist.
        sql.push(
            " AND EXISTS (SELECT 1 FROM memberships fm JOIN orgs fo ON fo.id = fm.org_id \
             JOIN orgs fr ON fr.tenant_id = $1 AND fo.path LIKE fr.path || '%' \
             WHERE fm.tenant_id = $1 AND fm.user_id = u.id AND fr.id = ",
        )
        .push_bind(org)
        .push(")");
    }
    if let Some(tag) = filter.tag {
        sql.push(
            " AND EXISTS (SELECT 1 FROM user_tags ft WHERE ft.tenant_id = $1 AND ft.user_id = u.id AND ft.tag_id = ",
        )
        .push_bind(tag)
        .push(")");
    }
    if let Some(segment) = filter.segment {
        // Filtering by a segment needs to be able to read it, or to hold a grant scoped to it.
        let readable = grants.reach(Permission::SegmentsRead).all
            || grants
                .0
                .iter()
                .any(|g| matches!(&g.scope, GrantScope::Segment { id, .. } if id == segment));
        if !readable {
            return Err(Error::NotFound("segment"));
        }
        let def = super::segments::load_def(tx, segment)
            .await?
            .ok_or(Error::NotFound("segment"))?;
        sql.push(" AND (");
        def.push_condition(&mut sql, tx.backend());
        sql.push(")");
    }
    sql.push(" ORDER BY u.id LIMIT ").push_bind(limit + 1);
    // The whole page comes back as one JSON value: decoding rows one by one through the driver cost more
    // than everything else in this request put together (see docs/BENCHMARKS.md).
    if !filter.expand {
        // Nothing to filter per item: the database's JSON is answered nearly as it is.
        let fields: Vec<(&str, &str, bool)> = PAGE_FIELDS
            .iter()
            .copied()
            .filter(|(k, _, _)| !matches!(*k, "orgs" | "tags"))
            .collect();
        let page = sql.wrap(&format!("{} FROM (", tx.backend().json_page(&fields, "u.id")), ") u");
        return Ok(UserList::Plain(fetch_page_json(tx, &page).await?));
    }
    let mut users = fetch_users(tx, &sql).await?;
    attach(&mut users, viewer_id, &grants.reach(Permission::OrgsRead));
    Ok(UserList::Expanded(users))
}

/// Read a page of [`UserList::Plain`].
pub fn plain_page(json: &str) -> Result<Vec<PlainUser<'_>>> {
    serde_json::from_str(json).map_err(page_error)
}

/// The users a `SELECT` from [`user_select`] (with `expand`) finds, in its order, as one JSON value from the
/// database.
async fn fetch_users(tx: &mut TenantTx, select: &Sql) -> Result<Vec<UserOut>> {
    let page = select.wrap(
        &format!("{} FROM (", tx.backend().json_page(&PAGE_FIELDS, "u.id")),
        ") u",
    );
    let json = fetch_page_json(tx, &page).await?;
    let rows: Vec<UserRow> = serde_json::from_str(&json).map_err(page_error)?;
    Ok(rows.into_iter().map(UserOut::from).collect())
}

async fn fetch_page_json(tx: &mut TenantTx, page: &Sql) -> Result<String> {
    let json: Option<String> = tx.fetch_optional_sql(page).await?.map(|r| r.try_get(0)).transpose()?;
    Ok(json.unwrap_or_else(|| "[]".to_owned()))
}

fn page_error(e: serde_json::Error) -> Error {
    Error::Db(sqlx::Error::Decode(
        format!("user page JSON from the database: {e}").into(),
    ))
}

/// A user of a plain page, borrowed from the database's JSON; serializes exactly like [`UserOut`] without
/// `orgs` and `tags`.
#[derive(Deserialize, Serialize)]
pub struct PlainUser<'a> {
    /// The id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
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

/// A user status, checked.
pub fn check_status(field: &str, status: &str) -> Result<()> {
    if ["active", "pending", "suspended", "terminated"].contains(&status) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be active, pending, suspended or terminated",
        ))
    }
}

/// Load one user within `reach`, or not found.
pub async fn load_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> Result<UserOut> {
    let mut sql = Sql::tenant(&format!(
        "{} WHERE u.tenant_id = $1 AND u.id = ",
        user_select(tx.backend(), true)
    ));
    sql.push_bind(id);
    reach.push_user_filter(&mut sql, tx.backend());
    fetch_users(tx, &sql).await?.pop().ok_or(Error::NotFound("user"))
}

/// Load one user of the academy, whoever they are.
pub async fn load(tx: &mut TenantTx, id: &str) -> Result<UserOut> {
    load_in_reach(tx, &Reach::everything(), id).await
}
