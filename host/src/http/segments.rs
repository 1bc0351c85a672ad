//! Segments: saved filters over organizations, tags, status and profile fields, evaluated live.

use super::api::{Api, Op};
use super::common::{Json, Page, PageParams, Path, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::directory::segments::{self, NewSegment, SegmentMember, SegmentOut, SegmentPatch};
use crate::error::{ApiError, ApiResult};
use crate::scope::Permission;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::json;

pub fn routes(api: &mut Api) {
    api.tag("segments");
    api.op_out::<Vec<SegmentOut>>(
        Op::get("/api/v1/segments", "List segments").permission("segments.read"),
        get(list),
    );
    api.op_io::<NewSegment, SegmentOut>(
        Op::post("/api/v1/segments", "Create a segment")
            .permission("segments.write")
            .status(201),
        post(create),
    );
    api.op_out::<SegmentOut>(
        Op::get("/api/v1/segments/{id}", "Read a segment").permission("segments.read"),
        get(read),
    );
    api.op_io::<SegmentPatch, SegmentOut>(
        Op::patch("/api/v1/segments/{id}", "Change a segment").permission("segments.write"),
        patch(update),
    );
    api.op(
        Op::delete(
            "/api/v1/segments/{id}",
            "Delete a segment (and the grants scoped to it)",
        )
        .permission("segments.write"),
        delete(remove),
    );
    api.op_out::<Page<SegmentMember>>(
        Op::get(
            "/api/v1/segments/{id}/members",
            "Users the segment matches now, within your scope",
        )
        .permission("segments.read")
        .query(&[("limit", "page size"), ("cursor", "from next_cursor")]),
        get(members),
    );
}

async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<SegmentOut>>> {
    let reach = caller.require(Permission::SegmentsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = segments::list(&mut tx, &reach).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<SegmentOut>> {
    let reach = caller.require(Permission::SegmentsRead)?;
    if !segments::visible(&reach, &id) {
        return Err(ApiError::NotFound { what: "segment" });
    }
    let mut tx = caller.db().begin_read().await?;
    let out = segments::find(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

async fn create(caller: Caller, Json(req): Json<NewSegment>) -> ApiResult<(StatusCode, axum::Json<SegmentOut>)> {
    caller.require_tenant_wide(Permission::SegmentsWrite)?;
    let mut tx = caller.db().begin().await?;
    let out = segments::create(&mut tx, &req).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("segment.create", "segment", &out.id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn update(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<SegmentPatch>,
) -> ApiResult<axum::Json<SegmentOut>> {
    caller.require_tenant_wide(Permission::SegmentsWrite)?;
    let mut tx = caller.db().begin().await?;
    let (before, after) = segments::update(&mut tx, &caller.grants, &id, &req).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("segment.update", "segment", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::SegmentsWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = segments::delete(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("segment.delete", "segment", &id, json!(before)),
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
}

async fn members(
    caller: Caller,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<MemberParams>,
) -> ApiResult<axum::Json<Page<SegmentMember>>> {
    let reach = caller.require(Permission::SegmentsRead)?;
    if !segments::visible(&reach, &id) {
        return Err(ApiError::NotFound { what: "segment" });
    }
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    let items = segments::members(
        &mut tx,
        &caller.grants.reach(Permission::UsersRead),
        &id,
        p.cursor.as_deref(),
        limit,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |m| m.id.clone())))
}
