//! Reading the audit log (tenant admins).

use super::api::{Api, Op};
use super::common::{Page, PageParams, Query};
use crate::auth::Caller;
use crate::db::{Sql, rfc3339};
use crate::error::ApiResult;
use crate::scope::Permission;
use axum::extract::OriginalUri;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

pub fn routes(api: &mut Api) {
    api.tag("audit");
    api.op_out::<Page<AuditEntry>>(
        Op::get("/api/v1/audit", "The academy's audit log, newest first")
            .permission("audit.read")
            .query(&[
                ("limit", "page size"),
                ("cursor", "from next_cursor"),
                ("action", "e.g. user.create"),
                ("actor_id", "who"),
                ("target_type", "user, org, …"),
                ("target_id", "which"),
                ("since", "RFC 3339 time"),
                ("until", "RFC 3339 time"),
            ])
            .query_schema(
                "since",
                serde_json::json!({"type": "string", "pattern": crate::fields::pattern::TIME}),
            )
            .query_schema(
                "until",
                serde_json::json!({"type": "string", "pattern": crate::fields::pattern::TIME}),
            )
            // Actors and targets are not all UUIDs (a claimed domain, a template's kind and language).
            .query_schema("actor_id", serde_json::json!({"type": "string"}))
            .query_schema("target_id", serde_json::json!({"type": "string"})),
        get(list),
    );
}

/// One change.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    id: String,
    at: String,
    actor_type: String,
    actor_id: Option<String>,
    actor_label: String,
    action: String,
    target_type: String,
    target_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    limit: Option<i64>,
    cursor: Option<String>,
    action: Option<String>,
    actor_id: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn parse_time(field: &str, v: &str) -> ApiResult<i64> {
    Ok(super::common::time_field(field, v)?)
}

async fn list(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<Params>,
) -> ApiResult<axum::Json<Page<AuditEntry>>> {
    caller.require_tenant_wide(Permission::AuditRead)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut sql = Sql::tenant(
        "SELECT id, at, actor_type, actor_id, actor_label, action, target_type, target_id, before, after, request_id \
         FROM audit_log WHERE tenant_id = $1",
    );
    for (col, v) in [
        ("action", &p.action),
        ("actor_id", &p.actor_id),
        ("target_type", &p.target_type),
        ("target_id", &p.target_id),
    ] {
        if let Some(v) = v {
            sql.push(&format!(" AND {col} = ")).push_bind(v.as_str());
        }
    }
    if let Some(s) = &p.since {
        sql.push(" AND at >= ").push_bind(parse_time("since", s)?);
    }
    if let Some(u) = &p.until {
        sql.push(" AND at < ").push_bind(parse_time("until", u)?);
    }
    if let Some(c) = &p.cursor {
        sql.push(" AND id < ").push_bind(c.as_str());
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut tx = caller.db().begin_read().await?;
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let parse = |v: Option<String>| v.and_then(|s| serde_json::from_str(&s).ok());
    let items = rows
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at: rfc3339(r.try_get("at")?),
                actor_type: r.try_get("actor_type")?,
                actor_id: r.try_get("actor_id")?,
                actor_label: r.try_get("actor_label")?,
                action: r.try_get("action")?,
                target_type: r.try_get("target_type")?,
                target_id: r.try_get("target_id")?,
                before: parse(r.try_get("before")?),
                after: parse(r.try_get("after")?),
                request_id: r.try_get("request_id")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |e| e.id.clone())))
}
