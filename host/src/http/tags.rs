//! Tags: a tenant-wide vocabulary (REGION_UK, COHORT_Q2_2026, …) put on users.

use super::api::{Api, Op};
use super::common::Path;
use super::common::{Json, opt_text, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::Timestamp;
use crate::db::{TenantTx, new_id, now_ms, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::scope::Permission;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::FromRow;

pub fn routes(api: &mut Api) {
    api.tag("tags");
    api.op_out::<Vec<TagOut>>(Op::get("/api/v1/tags", "List tags").permission("tags.read"), get(list));
    api.op_io::<NewTag, TagOut>(
        Op::post("/api/v1/tags", "Create a tag")
            .permission("tags.write")
            .status(201),
        post(create),
    );
    api.op_out::<TagOut>(
        Op::get("/api/v1/tags/{id}", "Read a tag").permission("tags.read"),
        get(read),
    );
    api.op_io::<TagPatch, TagOut>(
        Op::patch("/api/v1/tags/{id}", "Rename or describe a tag").permission("tags.write"),
        patch(update),
    );
    api.op(
        Op::delete("/api/v1/tags/{id}", "Delete a tag (it is removed from every user)").permission("tags.write"),
        delete(remove),
    );
}

/// A tag.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct TagOut {
    id: String,
    name: String,
    description: Option<String>,
    created_at: Timestamp,
}

async fn find(tx: &mut TenantTx, id: &str) -> ApiResult<TagOut> {
    let row = tx
        .query("SELECT id, name, description, created_at FROM tags WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "tag" })?;
    Ok(TagOut::from_row(&row)?)
}

/// Tag names: letters, digits, `_`, `-`, `.`, `:`; up to 100 characters.
fn tag_name(value: &str) -> ApiResult<String> {
    let name = text("name", value, 100)?;
    if !name.chars().all(|c| c.is_alphanumeric() || "_-.:".contains(c)) {
        return Err(ApiError::invalid("name", "may hold letters, digits and _ - . : only"));
    }
    Ok(name)
}

fn conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(k) if k.contains("tags_name") => ApiError::duplicate("name", "a tag with this name already exists"),
        _ => e.into(),
    }
}

async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<TagOut>>> {
    caller.require(Permission::TagsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query("SELECT id, name, description, created_at FROM tags WHERE tenant_id = $1 ORDER BY name")
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(axum::Json(rows.iter().map(TagOut::from_row).collect::<Result<_, _>>()?))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<TagOut>> {
    caller.require(Permission::TagsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let out = find(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewTag {
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = r"^[^\s\x00-\x2c\x2f\x3b-\x40\x5b-\x5e\x60\x7b-\x9f]+$")
    )]
    name: String,
    #[schemars(length(max = 1000), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    description: Option<String>,
}

async fn create(caller: Caller, Json(req): Json<NewTag>) -> ApiResult<(StatusCode, axum::Json<TagOut>)> {
    caller.require_tenant_wide(Permission::TagsWrite)?;
    let name = tag_name(&req.name)?;
    let description = opt_text("description", req.description.as_deref(), 1000)?;
    let mut tx = caller.db().begin().await?;
    let id = new_id();
    tx.query("INSERT INTO tags (id, tenant_id, name, description, created_at) VALUES ($2, $1, $3, $4, $5)")
        .bind(id.clone())
        .bind(name)
        .bind(description)
        .bind(now_ms())
        .execute(tx.conn())
        .await
        .map_err(conflict)?;
    let out = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("tag.create", "tag", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TagPatch {
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = r"^[^\s\x00-\x2c\x2f\x3b-\x40\x5b-\x5e\x60\x7b-\x9f]+$")
    )]
    name: Option<String>,
    #[schemars(length(max = 1000), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    description: Option<String>,
}

async fn update(caller: Caller, Path(id): Path<String>, Json(req): Json<TagPatch>) -> ApiResult<axum::Json<TagOut>> {
    caller.require_tenant_wide(Permission::TagsWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    let name = match &req.name {
        Some(n) => tag_name(n)?,
        None => before.name.clone(),
    };
    let description = match &req.description {
        Some(d) => opt_text("description", Some(d), 1000)?,
        None => before.description.clone(),
    };
    tx.query("UPDATE tags SET name = $3, description = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .bind(name)
        .bind(description)
        .execute(tx.conn())
        .await
        .map_err(conflict)?;
    let after = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("tag.update", "tag", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::TagsWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    let using = crate::directory::segments::segments_using(&mut tx, |d| d.tag_ids().any(|t| *t == id)).await?;
    if !using.is_empty() {
        return Err(crate::directory::Error::InUse {
            what: "this tag".into(),
            segments: using,
        }
        .into());
    }
    tx.query("DELETE FROM user_tags WHERE tenant_id = $1 AND tag_id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    tx.query("DELETE FROM tags WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("tag.delete", "tag", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
