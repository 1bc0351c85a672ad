//! Jobs: long work a client polls (bulk enrollments, rules applied retroactively).
//!
//! A job is a row the client can read (`GET /api/v1/jobs/{id}`) and a task on this replica. Jobs wait in a
//! queue with a fair share per academy: one job of an academy runs at a time, and as many academies' jobs as
//! the host has cores, so one academy's bulk work queues behind itself and never holds the others'. An
//! academy has at most [`MAX_PENDING`] jobs queued or running; past that a new one is refused `429`. A job
//! commits its work in batches of [`BATCH`] users, each its own short transaction, so it never holds the
//! database's write lock for long. What jobs do is idempotent: a job that failed part-way (its error says
//! so) or was running when its process stopped (marked failed by the hourly-stale check) kept the batches
//! it committed, and running it again finishes the rest.

use crate::db::{Db, TenantDb, TenantTx, new_id, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::fair::FairShare;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

/// Jobs of one academy queued or running at once, across replicas.
pub const MAX_PENDING: i64 = 8;

/// Users per transaction of a job.
pub const BATCH: usize = 500;

/// Running jobs: one per academy, one per core for the host. A queued job waits for its turn up to the
/// hour after which an unfinished job counts as lost.
static RUNNING: LazyLock<FairShare> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    FairShare::new(
        "background jobs",
        cores.max(2),
        1,
        Duration::from_millis(STALE_AFTER_MS as u64),
    )
});

/// Record a job, queued, and run `work` in the background when its academy's turn comes; returns the job's
/// id. `work`'s value is the job's result, its error the job's error.
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
    start_with_id(tenant, kind, params, created_by, |_| work).await
}

/// [`start`], for work that needs its job's id (to write its progress there).
pub async fn start_with_id<W, F>(
    tenant: &TenantDb,
    kind: &str,
    params: Value,
    created_by: Option<String>,
    work: W,
) -> ApiResult<String>
where
    W: FnOnce(String) -> F,
    F: Future<Output = ApiResult<Value>> + Send + 'static,
{
    let id = new_id();
    let mut tx = tenant.begin().await?;
    // Queued only while the academy has fewer than MAX_PENDING unfinished jobs (one statement, so that two
    // requests at once cannot both take the last place on SQLite).
    let queued = tx
        .query(
            "INSERT INTO jobs (id, tenant_id, kind, status, params, created_by, created_at) \
             SELECT $2, $1, $3, 'queued', $4, $5, $6 WHERE (SELECT COUNT(*) FROM jobs \
             WHERE tenant_id = $1 AND status IN ('queued', 'running')) < $7",
        )
        .bind(id.clone())
        .bind(kind.to_owned())
        .bind(params.to_string())
        .bind(created_by)
        .bind(now_ms())
        .bind(MAX_PENDING)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if queued == 0 {
        return Err(ApiError::TooManyRequests {
            message: format!(
                "this academy has {MAX_PENDING} jobs queued or running, as many as it may; try again when one has finished"
            ),
            retry_after_secs: 10,
        });
    }
    tx.commit().await?;
    let tenant = tenant.clone();
    let job = id.clone();
    let work = work(id.clone());
    tokio::spawn(async move {
        let outcome = match RUNNING.acquire(tenant.tenant_id()).await {
            Err(busy) => Err(ApiError::from(busy)),
            Ok(_turn) => match mark_running(&tenant, &job).await {
                // Given up meanwhile (the stale check): nothing to do.
                Ok(false) => return,
                Ok(true) => work.await,
                Err(e) => Err(e.into()),
            },
        };
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

/// A running job's progress (`{"progress": {"done": …, "total": …}}` in its result until it finishes).
pub async fn progress(tenant: &TenantDb, job: &str, done: usize, total: usize) -> Result<(), sqlx::Error> {
    let mut tx = tenant.begin().await?;
    tx.query("UPDATE jobs SET result = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'running'")
        .bind(job.to_owned())
        .bind(serde_json::json!({"progress": {"done": done, "total": total}}).to_string())
        .execute(tx.conn())
        .await?;
    tx.commit().await
}

/// A queued job starts running; false when it is no longer queued.
async fn mark_running(tenant: &TenantDb, job: &str) -> Result<bool, sqlx::Error> {
    let mut tx = tenant.begin().await?;
    let n = tx
        .query("UPDATE jobs SET status = 'running', started_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'queued'")
        .bind(job.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// A job running this long has lost its process (jobs finish in seconds to minutes).
const STALE_AFTER_MS: i64 = 3_600_000;

/// Jobs left running by a process that stopped will not finish; say so. Any replica may do this.
pub async fn fail_stale(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let mut tx = db.platform().begin().await?;
    let n = sqlx::query(
        "UPDATE jobs SET status = 'failed', finished_at = $1, \
         error = 'the server stopped while this job waited or ran; run it again to finish it (what it did is kept and is not done twice)' \
         WHERE status IN ('queued', 'running') AND COALESCE(started_at, created_at) < $2",
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
    /// queued, running, done or failed.
    status: String,
    params: Value,
    /// What it did, once done.
    result: Option<Value>,
    error: Option<String>,
    created_at: String,
    finished_at: Option<String>,
}

impl JobOut {
    /// What the job does (`bulk_enroll`, `import_users`, …).
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// Its result, once done (its progress while it runs).
    pub fn result_value(&self) -> Option<&Value> {
        self.result.as_ref()
    }
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
