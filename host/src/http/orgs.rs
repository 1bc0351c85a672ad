//! Organizations: the tree, its members, and member limits. The directory does the work; these handlers
//! check permissions, run the academy's rules on membership changes, and audit.

use super::api::{Api, Op};
use super::common::{Json, Page, PageParams, Path, Query, rules_context};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::directory::orgs::{self, MemberFilter, MemberOut, NewOrg, OrgFilter, OrgOut, OrgPatch};
use crate::directory::users;
use crate::error::{ApiError, ApiResult};
use crate::learning::automation::{self, Event};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::json;

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
        Op::post(
            "/api/v1/orgs/{id}/members",
            "Add a user to the organization (idempotent: 200 when already a member)",
        )
        .permission("members.write")
        .status(201)
        .also(200),
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
    let filter = OrgFilter {
        parent: p.parent.as_deref(),
        q: p.q.as_deref(),
        after: p.cursor.as_deref(),
    };
    let mut tx = caller.db().begin_read().await?;
    let items = orgs::list(&mut tx, &reach, &filter, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |o| o.id.clone())))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<OrgOut>> {
    let reach = caller.require(Permission::OrgsRead)?;
    let mut tx = caller.db().begin_read().await?;
    orgs::find_in_reach(&mut tx, &reach, &id).await?;
    let out = orgs::load_out(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn create(caller: Caller, Json(req): Json<NewOrg>) -> ApiResult<(StatusCode, axum::Json<OrgOut>)> {
    let reach = caller.require(Permission::OrgsWrite)?;
    let mut tx = caller.db().begin().await?;
    let out = orgs::create(&mut tx, &reach, &req).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("org.create", "org", &out.id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn update(caller: Caller, Path(id): Path<String>, Json(req): Json<OrgPatch>) -> ApiResult<axum::Json<OrgOut>> {
    let reach = caller.require(Permission::OrgsWrite)?;
    let mut tx = caller.db().begin().await?;
    let (before, after) = orgs::update(&mut tx, &reach, &id, &req).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("org.update", "org", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    mode: Option<String>,
}

async fn remove(caller: Caller, Path(id): Path<String>, Query(p): Query<DeleteParams>) -> ApiResult<StatusCode> {
    let reach = caller.require(Permission::OrgsWrite)?;
    let reparent = match p.mode.as_deref() {
        None => false,
        Some("reparent") => true,
        Some(_) => return Err(ApiError::invalid("mode", "must be reparent, or left out")),
    };
    let mut tx = caller.db().begin().await?;
    let before = orgs::delete(&mut tx, &reach, &id, reparent).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("org.delete", "org", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
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
    let reach = caller.require(Permission::OrgsRead)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let filter = MemberFilter {
        direct: p.direct == Some(true),
        status: p.status.as_deref(),
        role: p.role.as_deref(),
        sub_org: p.sub_org.as_deref(),
        after: p.cursor.as_deref(),
    };
    let mut tx = caller.db().begin_read().await?;
    let items = orgs::members(&mut tx, &reach, &id, &filter, limit).await?;
    tx.commit().await?;
    // The cursor is "<user_id>|<org_id>" so the order is stable across pages.
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |m| {
        format!("{}|{}", m.user_id, m.org_id)
    })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewMember {
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    user_id: String,
}

async fn add_member_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<NewMember>,
) -> ApiResult<(StatusCode, axum::Json<MemberOut>)> {
    let reach = caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin().await?;
    let org = orgs::find_in_reach(&mut tx, &reach, &id).await?;
    // The user must be someone the caller already manages: a manager cannot pull people in from elsewhere
    // (and would then manage them), nor turn read access to someone into write access.
    let user = users::load_in_reach(&mut tx, &caller.grants.reach(Permission::UsersWrite), &req.user_id)
        .await
        .map_err(|_| ApiError::invalid("user_id", "no such user within your scope"))?;
    let added = orgs::add_member(&mut tx, &org, &req.user_id).await?;
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
    let pending = automation::run_rules(&mut tx, changed, rules_context(&caller)).await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok((
        if added { StatusCode::CREATED } else { StatusCode::OK },
        axum::Json(MemberOut::new(&user, org)),
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let reach = caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin().await?;
    orgs::find_in_reach(&mut tx, &reach, &id).await?;
    orgs::remove_member(&mut tx, &id, &user_id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("membership.remove", "org", &id, json!({"user_id": user_id})),
    )
    .await?;
    let pending = automation::run_rules(&mut tx, vec![Event::changed(&user_id)], rules_context(&caller)).await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok(StatusCode::NO_CONTENT)
}
