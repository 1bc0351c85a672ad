//! Users: list with filters, create, read, change, delete, and their tags. The directory does the work;
//! these handlers check permissions, run the academy's rules on what changed, and audit.

use super::api::{Api, Op};
use super::common::{Json, Page, PageParams, Path, Query, rules_context};
use crate::audit::{Change, record};
use crate::auth::{Caller, password};
use crate::directory::accounts::{self, NewUser, UserPatch};
use crate::directory::users::{self, UserFilter, UserList, UserOut};
use crate::error::{ApiError, ApiResult};
use crate::learning::automation::{self, Event};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::json;

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
            ])
            .query_schema(
                "status",
                serde_json::json!({"type": "string", "enum": ["active", "pending", "suspended", "terminated"]}),
            ),
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
    let filter = UserFilter {
        after: p.cursor.as_deref(),
        q: p.q.as_deref(),
        status: p.status.as_deref(),
        external_id: p.external_id.as_deref(),
        org: p.org.as_deref(),
        tag: p.tag.as_deref(),
        segment: p.segment.as_deref(),
        expand,
    };
    let mut tx = caller.db().begin_read().await?;
    let page = users::list(&mut tx, &caller.grants, &caller.user_id, &reach, &filter, limit).await?;
    tx.commit().await?;
    match page {
        UserList::Plain(json) => {
            // Answered nearly as the database built it, borrowing every string and rendering only the times.
            let mut items = users::plain_page(&json)?;
            let more = items.len() as i64 > limit;
            items.truncate(limit as usize);
            Ok(axum::Json(Page::new(items, more, &uri, |u| u.id.to_string())).into_response())
        }
        UserList::Expanded(mut items) => {
            let more = items.len() as i64 > limit;
            items.truncate(limit as usize);
            Ok(axum::Json(Page::new(items, more, &uri, |u| u.id.clone())).into_response())
        }
    }
}

/// A user as the caller sees them: their own account always, others within `users.read`.
async fn load_for(caller: &Caller, tx: &mut crate::db::TenantTx, id: &str) -> ApiResult<UserOut> {
    let mut user = if id == caller.user_id {
        users::load(tx, id).await?
    } else {
        users::load_in_reach(tx, &caller.grants.reach(Permission::UsersRead), id).await?
    };
    users::attach(
        std::slice::from_mut(&mut user),
        &caller.user_id,
        &caller.grants.reach(Permission::OrgsRead),
    );
    Ok(user)
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<UserOut>> {
    let mut tx = caller.db().begin_read().await?;
    let user = load_for(&caller, &mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(user))
}

/// The user after a change, with the organizations the caller may see (whatever their reach now).
async fn after_change(caller: &Caller, tx: &mut crate::db::TenantTx, id: &str) -> ApiResult<UserOut> {
    let mut user = users::load(tx, id).await?;
    users::attach(
        std::slice::from_mut(&mut user),
        &caller.user_id,
        &caller.grants.reach(Permission::OrgsRead),
    );
    Ok(user)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<UserOut>)> {
    let reach = caller.require(Permission::UsersWrite)?;
    let checked = req.check(&reach)?;
    let hash = match &req.password {
        Some(p) => {
            password::check_new("password", p)?;
            Some(password::hash(&caller.tenant.id, p.clone()).await?)
        }
        None => None,
    };
    let mut tx = caller.db().begin().await?;
    let id = accounts::create(&mut tx, &caller.grants, &checked, hash).await?;
    // The academy's rules act inside this transaction; its enrollment plugins once it has committed.
    let pending = automation::run_rules(&mut tx, vec![Event::created(&id)], rules_context(&caller)).await?;
    let user = after_change(&caller, &mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("user.create", "user", &id, json!(user)),
    )
    .await?;
    if req.invite {
        let academy = crate::tenancy::academy_url(&state.config, &caller.tenant);
        accounts::invite(&mut tx, &id, &checked.email, &academy, &caller.user_id).await?;
    }
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<UserPatch>,
) -> ApiResult<axum::Json<UserOut>> {
    caller.require(Permission::UsersWrite)?;
    let hash = match &req.password {
        Some(p) => {
            password::check_new("password", p)?;
            Some(password::hash(&caller.tenant.id, p.clone()).await?)
        }
        None => None,
    };
    let mut tx = caller.db().begin().await?;
    let before = accounts::update(&mut tx, &caller.grants, &caller.user_id, &id, &req, hash).await?;
    let pending = automation::run_rules(&mut tx, vec![Event::changed(&id)], rules_context(&caller)).await?;
    let after = after_change(&caller, &mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("user.update", "user", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok(axum::Json(after))
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Permission::UsersWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = accounts::delete(&mut tx, &caller.grants, &caller.user_id, &id).await?;
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
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
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
    let added = accounts::add_tag(&mut tx, &reach, &id, &req.tag_id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("user.tag", "user", &id, json!({"tag_id": req.tag_id})),
    )
    .await?;
    // Only a tag that was not there yet is a change for the rules.
    let changed = if added { vec![Event::changed(&id)] } else { Vec::new() };
    let pending = automation::run_rules(&mut tx, changed, rules_context(&caller)).await?;
    let mut user = users::load_in_reach(&mut tx, &reach, &id).await?;
    users::attach(
        std::slice::from_mut(&mut user),
        &caller.user_id,
        &caller.grants.reach(Permission::OrgsRead),
    );
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok(axum::Json(user))
}

async fn remove_tag(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, tag_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let reach = caller.require(Permission::UsersWrite)?;
    let mut tx = caller.db().begin().await?;
    accounts::remove_tag(&mut tx, &reach, &id, &tag_id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("user.untag", "user", &id, json!({"tag_id": tag_id})),
    )
    .await?;
    let pending = automation::run_rules(&mut tx, vec![Event::changed(&id)], rules_context(&caller)).await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok(StatusCode::NO_CONTENT)
}
