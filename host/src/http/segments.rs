//! Segments: saved filters over organizations, tags, status and profile fields, evaluated live.

use super::api::{Api, Op};
use super::common::Path;
use super::common::{Json, Page, PageParams, Query, opt_text, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Sql, TenantTx, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::scope::Permission;
use crate::segments::SegmentDef;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

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

/// A segment.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SegmentOut {
    id: String,
    name: String,
    description: Option<String>,
    definition: SegmentDef,
    created_at: String,
    updated_at: String,
}

fn from_row(row: &AnyRow) -> Result<SegmentOut, sqlx::Error> {
    let def: String = row.try_get("definition")?;
    Ok(SegmentOut {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        definition: SegmentDef::parse_stored(&def),
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// Names of the segments whose definition uses something, by a test on the definition. Deleting a tag or a
/// profile field that a segment uses would silently change who the segment (and every grant scoped to it)
/// reaches, so such deletions are refused with these names.
pub async fn segments_using(tx: &mut TenantTx, uses: impl Fn(&SegmentDef) -> bool) -> Result<Vec<String>, sqlx::Error> {
    let rows = tx
        .query("SELECT name, definition FROM segments WHERE tenant_id = $1 ORDER BY name")
        .fetch_all(tx.conn())
        .await?;
    let mut names = Vec::new();
    for row in rows {
        let def: String = row.try_get("definition")?;
        if uses(&SegmentDef::parse_stored(&def)) {
            names.push(row.try_get("name")?);
        }
    }
    Ok(names)
}

/// 409 naming the segments that still use the thing being deleted.
pub fn in_use(what: &str, segments: &[String]) -> ApiError {
    ApiError::Conflict {
        code: "in_use",
        message: format!(
            "{what} is used by the segments {}; change them first",
            segments.join(", ")
        ),
        field: None,
    }
}

/// A segment's definition, if the segment exists in this tenant.
pub async fn load_def(tx: &mut TenantTx, id: &str) -> Result<Option<SegmentDef>, sqlx::Error> {
    let def: Option<String> = tx
        .query("SELECT definition FROM segments WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(def.map(|d| SegmentDef::parse_stored(&d)))
}

async fn find(tx: &mut TenantTx, id: &str) -> ApiResult<SegmentOut> {
    let row = tx
        .query("SELECT id, name, description, definition, created_at, updated_at FROM segments WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "segment" })?;
    Ok(from_row(&row)?)
}

/// Segment-scoped callers see only the segments they were granted.
fn visible(caller: &Caller, id: &str) -> bool {
    let reach = caller.grants.reach(Permission::SegmentsRead);
    reach.all || reach.segments.iter().any(|(s, _)| s == id)
}

async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<SegmentOut>>> {
    caller.require(Permission::SegmentsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query("SELECT id, name, description, definition, created_at, updated_at FROM segments WHERE tenant_id = $1 ORDER BY name")
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let all = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(
        all.into_iter().filter(|s| visible(&caller, &s.id)).collect(),
    ))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<SegmentOut>> {
    caller.require(Permission::SegmentsRead)?;
    if !visible(&caller, &id) {
        return Err(ApiError::NotFound { what: "segment" });
    }
    let mut tx = caller.db().begin_read().await?;
    let out = find(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

/// Check a definition: every referenced org, tag and profile field must exist in this tenant.
async fn validate(tx: &mut TenantTx, def: &SegmentDef) -> ApiResult<()> {
    for (i, org) in def.orgs.iter().enumerate() {
        if super::orgs::find(tx, org).await?.is_none() {
            return Err(ApiError::invalid(
                format!("definition.orgs[{i}]"),
                "no such organization in this academy",
            ));
        }
    }
    for (list, ids) in [
        ("tags_all", &def.tags_all),
        ("tags_any", &def.tags_any),
        ("tags_none", &def.tags_none),
    ] {
        for (i, tag) in ids.iter().enumerate() {
            let found = tx
                .query("SELECT 1 FROM tags WHERE tenant_id = $1 AND id = $2")
                .bind(tag.clone())
                .fetch_optional(tx.conn())
                .await?;
            if found.is_none() {
                return Err(ApiError::invalid(
                    format!("definition.{list}[{i}]"),
                    "no such tag in this academy",
                ));
            }
        }
    }
    for (i, s) in def.statuses.iter().enumerate() {
        if !["active", "pending", "suspended", "terminated"].contains(&s.as_str()) {
            return Err(ApiError::invalid(
                format!("definition.statuses[{i}]"),
                "must be a user status",
            ));
        }
    }
    for (i, cond) in def.fields.iter().enumerate() {
        let found = tx
            .query("SELECT 1 FROM profile_fields WHERE tenant_id = $1 AND key = $2")
            .bind(cond.key.clone())
            .fetch_optional(tx.conn())
            .await?;
        if found.is_none() {
            return Err(ApiError::invalid(
                format!("definition.fields[{i}].key"),
                "no such profile field in this academy",
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewSegment {
    name: String,
    description: Option<String>,
    definition: SegmentDef,
}

fn conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(k) if k.contains("segments_name") => {
            ApiError::duplicate("name", "a segment with this name already exists")
        }
        _ => e.into(),
    }
}

async fn create(caller: Caller, Json(req): Json<NewSegment>) -> ApiResult<(StatusCode, axum::Json<SegmentOut>)> {
    caller.require_tenant_wide(Permission::SegmentsWrite)?;
    let name = text("name", &req.name, 200)?;
    let description = opt_text("description", req.description.as_deref(), 2000)?;
    let mut tx = caller.db().begin().await?;
    validate(&mut tx, &req.definition).await?;
    let id = new_id();
    tx.query(
        "INSERT INTO segments (id, tenant_id, name, description, definition, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, $6, $6)",
    )
    .bind(id.clone())
    .bind(name)
    .bind(description)
    .bind(serde_json::to_string(&req.definition).unwrap_or_default())
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .map_err(conflict)?;
    let out = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("segment.create", "segment", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SegmentPatch {
    name: Option<String>,
    description: Option<String>,
    definition: Option<SegmentDef>,
}

async fn update(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<SegmentPatch>,
) -> ApiResult<axum::Json<SegmentOut>> {
    caller.require_tenant_wide(Permission::SegmentsWrite)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    let name = match &req.name {
        Some(n) => text("name", n, 200)?,
        None => before.name.clone(),
    };
    let description = match &req.description {
        Some(d) => opt_text("description", Some(d), 2000)?,
        None => before.description.clone(),
    };
    let definition = req.definition.clone().unwrap_or_else(|| before.definition.clone());
    if definition.unreadable {
        return Err(ApiError::invalid(
            "definition",
            "the stored definition cannot be read; send a new one",
        ));
    }
    validate(&mut tx, &definition).await?;
    if definition != before.definition {
        // Grants scoped to this segment follow its definition: whoever changes it must hold, for the whole
        // academy, everything those grants give.
        let rows = tx
            .query("SELECT r.permissions FROM grants g JOIN roles r ON r.id = g.role_id WHERE g.tenant_id = $1 AND g.segment_id = $2")
            .bind(id.clone())
            .fetch_all(tx.conn())
            .await?;
        let mut granted = Vec::new();
        for row in rows {
            let names: String = row.try_get(0)?;
            let names: Vec<String> = serde_json::from_str(&names).unwrap_or_default();
            granted.extend(names.iter().filter_map(|n| Permission::parse(n)));
        }
        if let Some(missing) = caller
            .grants
            .holds_all_over(&granted, &crate::scope::GrantScope::Tenant)
        {
            return Err(ApiError::forbidden(format!(
                "roles granted on this segment hold {}, which you do not hold for the whole academy",
                missing.as_str()
            )));
        }
    }
    tx.query("UPDATE segments SET name = $3, description = $4, definition = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .bind(name)
        .bind(description)
        .bind(serde_json::to_string(&definition).unwrap_or_default())
        .bind(now_ms())
        .execute(tx.conn())
        .await
        .map_err(conflict)?;
    let after = find(&mut tx, &id).await?;
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
    let before = find(&mut tx, &id).await?;
    tx.query("DELETE FROM grants WHERE tenant_id = $1 AND segment_id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    tx.query("DELETE FROM segments WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("segment.delete", "segment", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user a segment matches.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SegmentMember {
    id: String,
    email: String,
    name: String,
    status: String,
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
    caller.require(Permission::SegmentsRead)?;
    if !visible(&caller, &id) {
        return Err(ApiError::NotFound { what: "segment" });
    }
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let users_reach = caller.grants.reach(Permission::UsersRead);
    let mut tx = caller.db().begin_read().await?;
    let def = load_def(&mut tx, &id)
        .await?
        .ok_or(ApiError::NotFound { what: "segment" })?;
    let mut sql = Sql::tenant("SELECT u.id, u.email, u.name, u.status FROM users u WHERE u.tenant_id = $1 AND (");
    def.push_condition(&mut sql, tx.backend());
    sql.push(")");
    users_reach.push_user_filter(&mut sql, tx.backend());
    if let Some(c) = &p.cursor {
        sql.push(" AND u.id > ").push_bind(c.as_str());
    }
    sql.push(" ORDER BY u.id LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(SegmentMember {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                status: r.try_get("status")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |m| m.id.clone())))
}
