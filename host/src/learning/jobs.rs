//! Jobs: long work a client polls (bulk enrollments, rules applied retroactively).
//!
//! A job is a row the client can read (`GET /api/v1/jobs/{id}`) and a task on this replica that does the
//! work in one transaction, so a job either did everything it reports or nothing. A job that was running
//! when its process stopped is marked failed by the hourly-stale check, saying so; running it again is safe because
//! what jobs do is idempotent.

use crate::db::{Db, TenantDb, TenantTx, new_id, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use std::future::Future;

/// Record a job and run `work` in the background; returns the job's id. `work`'s value is the job's result,
/// its error the job's error.
pub async fn start<F>(
    tenant: &TenantDb,
    kind: &str,
    params: Value,
    created_by: Option<String>,
    work: F,
) -> ApiResult<String>
where
    F: Future<Output = ApiResult<Value>> + Send + 'static,
{
    let id = new_id();
    let mut tx = tenant.begin().await?;
    tx.query(
        "INSERT INTO jobs (id, tenant_id, kind, status, params, created_by, created_at, started_at) \
         VALUES ($2, $1, $3, 'running', $4, $5, $6, $6)",
    )
    .bind(id.clone())
    .bind(kind.to_owned())
    .bind(params.to_string())
    .bind(created_by)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    let tenant = tenant.clone();
    let job = id.clone();
    tokio::spawn(async move {
        let outcome = work.await;
        let (status, result, error) = match outcome {
            Ok(result) => ("done", Some(result.to_string()), None),
            Err(e) => ("failed", None, Some(e.public_message())),
        };
        let finish = async {
            let mut tx = tenant.begin().await?;
            tx.query("UPDATE jobs SET status = $3, result = $4, error = $5, finished_at = $6 WHERE tenant_id = $1 AND id = $2")
                .bind(job.clone())
                .bind(status)
                .bind(result)
                .bind(error)
                .bind(now_ms())
                .execute(tx.conn())
                .await?;
            tx.commit().await
        };
        if let Err(e) = finish.await {
            tracing::error!(job = %job, error = %e, "recording a job's end failed");
        }
    });
    Ok(id)
}

/// A job running this long has lost its process (jobs finish in seconds to minutes).
const STALE_AFTER_MS: i64 = 3_600_000;

/// Jobs left running by a process that stopped will not finish; say so. Any replica may do this.
pub async fn fail_stale(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let mut tx = db.platform().begin().await?;
    let n = sqlx::query(
        "UPDATE jobs SET status = 'failed', finished_at = $1, \
         error = 'the server stopped while this job ran; nothing of it was kept, run it again' \
         WHERE status IN ('queued', 'running') AND started_at < $2",
    )
    .bind(now)
    .bind(now - STALE_AFTER_MS)
    .execute(tx.conn())
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n)
}

/// Background upkeep, once a minute: stale jobs, and recertification of expired certificates in every
/// academy that has some. Safe with several replicas: each step claims its rows with a conditional update.
pub async fn upkeep(db: Db) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = upkeep_once(&db, now_ms()).await {
            tracing::warn!(error = %e, "upkeep failed; it runs again in a minute");
        }
    }
}

/// One round of [`upkeep`].
pub async fn upkeep_once(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    fail_stale(db, now).await?;
    let mut tx = db.platform().begin().await?;
    let tenants: Vec<String> = sqlx::query(
        "SELECT DISTINCT tenant_id FROM certificates WHERE expires_at IS NOT NULL AND expires_at <= $1 \
         AND renewed_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .fetch_all(tx.conn())
    .await?
    .iter()
    .map(|r| sqlx::Row::try_get::<String, _>(r, 0))
    .collect::<Result<_, _>>()?;
    tx.commit().await?;
    for tenant in tenants {
        let db = db.tenant(&tenant);
        let mut tx = db.begin().await?;
        let n = super::progress::renew_expired(&mut tx, now).await?;
        tx.commit().await?;
        if n > 0 {
            tracing::info!(tenant = %tenant, renewed = n, "expired certificates started a new round of their courses");
        }
    }
    Ok(())
}

/// A job.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JobOut {
    id: String,
    kind: String,
    /// running, done or failed.
    status: String,
    params: Value,
    /// What it did, once done.
    result: Option<Value>,
    error: Option<String>,
    created_at: String,
    finished_at: Option<String>,
}

pub async fn job_out(tx: &mut TenantTx, id: &str) -> ApiResult<(JobOut, Option<String>)> {
    let row = tx
        .query("SELECT id, kind, status, params, result, error, created_by, created_at, finished_at FROM jobs WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "job" })?;
    let params: String = row.try_get("params")?;
    let result: Option<String> = row.try_get("result")?;
    Ok((
        JobOut {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            status: row.try_get("status")?,
            params: serde_json::from_str(&params).unwrap_or(Value::Null),
            result: result.and_then(|r| serde_json::from_str(&r).ok()),
            error: row.try_get("error")?,
            created_at: rfc3339(row.try_get("created_at")?),
            finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(rfc3339),
        },
        row.try_get("created_by")?,
    ))
}

/// A job as clients read it.
pub async fn read_job(db: &crate::db::TenantDb, id: &str) -> ApiResult<JobOut> {
    let mut tx = db.begin_read().await?;
    let (out, _) = job_out(&mut tx, id).await?;
    tx.commit().await?;
    Ok(out)
}
