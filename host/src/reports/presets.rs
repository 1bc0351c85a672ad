//! Report presets: a report with its filters, saved under a name by the person who runs it. A preset is its
//! owner's alone; anyone else's id answers 404, like an id that does not exist.

use crate::db::{TenantTx, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// A saved report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PresetOut {
    /// Id.
    pub id: String,
    /// Name (unique among the owner's presets, ignoring case).
    pub name: String,
    /// The report's key.
    pub report: String,
    /// Its filters, as checked when saved: ids for org, segment, tag and course.
    pub params: BTreeMap<String, String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

const SELECT: &str = "SELECT id, name, report, params, created_at, updated_at FROM report_presets";

/// Stored parameters (a JSON object of strings); anything unreadable counts as no filter at all, and is then
/// checked again like every stored filter when the preset runs.
pub fn params_of(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn from_row(row: &AnyRow) -> Result<PresetOut, sqlx::Error> {
    Ok(PresetOut {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        report: row.try_get("report")?,
        params: params_of(&row.try_get::<String, _>("params")?),
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// The owner's preset `id`, or 404.
pub async fn find(tx: &mut TenantTx, owner: &str, id: &str) -> ApiResult<PresetOut> {
    let row = tx
        .query(&format!("{SELECT} WHERE tenant_id = $1 AND id = $2 AND owner_id = $3"))
        .bind(id.to_owned())
        .bind(owner.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "report preset" })?;
    Ok(from_row(&row)?)
}

/// The owner's presets, by name.
pub async fn list(tx: &mut TenantTx, owner: &str) -> ApiResult<Vec<PresetOut>> {
    let rows = tx
        .query(&format!(
            "{SELECT} WHERE tenant_id = $1 AND owner_id = $2 ORDER BY lower(name), id"
        ))
        .bind(owner.to_owned())
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Map the unique name index to 409 on `name`.
pub fn conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(k) if k.contains("report_presets_name") => {
            ApiError::duplicate("name", "you already have a preset with this name")
        }
        _ => e.into(),
    }
}

/// Store a new preset (already checked).
pub async fn insert(
    tx: &mut TenantTx,
    owner: &str,
    name: &str,
    report: &str,
    params: &BTreeMap<String, String>,
    now: i64,
) -> ApiResult<String> {
    let id = crate::db::new_id();
    tx.query(
        "INSERT INTO report_presets (id, tenant_id, owner_id, name, report, params, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id.clone())
    .bind(owner.to_owned())
    .bind(name.to_owned())
    .bind(report.to_owned())
    .bind(serde_json::to_string(params).unwrap_or_else(|_| "{}".into()))
    .bind(now)
    .execute(tx.conn())
    .await
    .map_err(conflict)?;
    Ok(id)
}

/// Replace a preset's name, report and parameters (already checked).
pub async fn update(
    tx: &mut TenantTx,
    id: &str,
    name: &str,
    report: &str,
    params: &BTreeMap<String, String>,
    now: i64,
) -> ApiResult<()> {
    tx.query("UPDATE report_presets SET name = $3, report = $4, params = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .bind(name.to_owned())
        .bind(report.to_owned())
        .bind(serde_json::to_string(params).unwrap_or_else(|_| "{}".into()))
        .bind(now)
        .execute(tx.conn())
        .await
        .map_err(conflict)?;
    Ok(())
}

/// Remove a preset.
pub async fn delete(tx: &mut TenantTx, id: &str) -> ApiResult<()> {
    tx.query("DELETE FROM report_presets WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .execute(tx.conn())
        .await?;
    Ok(())
}
