//! What plugins did: their log lines and faults, and the notices the runtime leaves for admins.

use super::super::common::{Page, PageParams, Path, Query};
use crate::auth::Caller;
use crate::db::{Sql, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::plugins::store::plugin_out;
use crate::scope::Permission;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// One log line.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogOut {
    id: String,
    at: String,
    version_id: String,
    level: String,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// One page of a plugin's history table (`plugin_logs`, `plugin_faults`), newest first, each row decoded
/// by `decode`.
pub(super) async fn history<T>(
    caller: &Caller,
    uri: &axum::http::Uri,
    id: &str,
    select: &str,
    p: ListParams,
    decode: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
    key: impl Fn(&T) -> String,
) -> ApiResult<axum::Json<Page<T>>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut tx = caller.db().begin_read().await?;
    plugin_out(&mut tx, id).await?;
    let mut sql = Sql::tenant(select);
    sql.push(" WHERE tenant_id = $1 AND plugin_id = ").push_bind(id);
    if let Some(c) = &p.cursor {
        sql.push(" AND id < ").push_bind(c.as_str());
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let items = rows.iter().map(decode).collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(Page::from_rows(items, limit, uri, key)))
}

pub(super) async fn logs(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<LogOut>>> {
    let select = "SELECT id, at, version_id, level, message FROM plugin_logs";
    let decode = |r: &sqlx::any::AnyRow| {
        Ok(LogOut {
            id: r.try_get("id")?,
            at: rfc3339(r.try_get("at")?),
            version_id: r.try_get("version_id")?,
            level: r.try_get("level")?,
            message: r.try_get("message")?,
        })
    };
    history(&caller, &uri, &id, select, p, decode, |l| l.id.clone()).await
}

/// One recorded fault.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FaultOut {
    id: String,
    at: String,
    version_id: String,
    hook: String,
    kind: String,
    message: String,
    elapsed_ms: i64,
    /// Whether it counts toward disabling the plugin: not when the wall clock stopped a call the host kept
    /// waiting (other calls, the database).
    counted: bool,
}

pub(super) async fn faults(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Page<FaultOut>>> {
    let select = "SELECT id, at, version_id, hook, kind, message, elapsed_ms, counted FROM plugin_faults";
    let decode = |r: &sqlx::any::AnyRow| {
        Ok(FaultOut {
            id: r.try_get("id")?,
            at: rfc3339(r.try_get("at")?),
            version_id: r.try_get("version_id")?,
            hook: r.try_get("hook")?,
            kind: r.try_get("kind")?,
            message: r.try_get("message")?,
            elapsed_ms: r.try_get("elapsed_ms")?,
            counted: r.try_get::<crate::db::Flag, _>("counted")?.0,
        })
    };
    history(&caller, &uri, &id, select, p, decode, |f| f.id.clone()).await
}

/// A notice for the academy's admins.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct NoticeOut {
    id: String,
    kind: String,
    subject: String,
    body: String,
    target_type: Option<String>,
    target_id: Option<String>,
    created_at: String,
    read_at: Option<String>,
}

pub(super) async fn notices(caller: Caller) -> ApiResult<axum::Json<Vec<NoticeOut>>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query(
            "SELECT id, kind, subject, body, target_type, target_id, created_at, read_at FROM notices \
             WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 200",
        )
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(NoticeOut {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                body: r.try_get("body")?,
                target_type: r.try_get("target_type")?,
                target_id: r.try_get("target_id")?,
                created_at: rfc3339(r.try_get("created_at")?),
                read_at: r.try_get::<Option<i64>, _>("read_at")?.map(rfc3339),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(out))
}

pub(super) async fn read_notice(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin().await?;
    let changed = tx
        .query("UPDATE notices SET read_at = coalesce(read_at, $3) WHERE tenant_id = $1 AND id = $2")
        .bind(id)
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(ApiError::NotFound { what: "notice" });
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
