//! Certificates: those of users within scope, revoking one, and public verification by code.

use super::api::{Api, Auth, Op};
use super::common::{Path, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Sql, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::learning::records::*;
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub fn routes(api: &mut Api) {
    api.tag("enrollments");
    api.op_out::<Vec<CertificateOut>>(
        Op::get("/api/v1/certificates", "Certificates of users within your scope")
            .permission("progress.read")
            .query(&[("user_id", "Only this user"), ("course_id", "Only this course")]),
        get(certificates),
    );
    api.op_out::<CertificateOut>(
        Op::post("/api/v1/certificates/{id}/revoke", "Revoke a certificate").permission("certificates.manage"),
        post(revoke_certificate),
    );
    api.op_out::<Verification>(
        Op::get(
            "/api/v1/certificates/verify/{code}",
            "Check a certificate by its verification code (anyone, on the academy's host)",
        )
        .auth(Auth::Public),
        get(verify),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateParams {
    user_id: Option<String>,
    course_id: Option<String>,
}

async fn certificates(
    caller: Caller,
    Query(p): Query<CertificateParams>,
) -> ApiResult<axum::Json<Vec<CertificateOut>>> {
    let reach = caller.require(Permission::ProgressRead)?;
    let mut tx = caller.db().begin_read().await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    if let Some(u) = &p.user_id {
        sql.push(" AND ct.user_id = ").push_bind(u);
    }
    if let Some(c) = &p.course_id {
        sql.push(" AND ct.course_id = ").push_bind(c);
    }
    reach.push_user_filter(&mut sql, tx.backend());
    sql.push(" ORDER BY ct.issued_at DESC, ct.id LIMIT 1000");
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(certificate_from_row).collect::<Result<_, _>>()?,
    ))
}

async fn revoke_certificate(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<CertificateOut>> {
    let reach = caller.require(Permission::CertificatesManage)?;
    let mut tx = caller.db().begin().await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    sql.push(" AND ct.id = ").push_bind(id.as_str());
    reach.push_user_filter(&mut sql, tx.backend());
    let before = certificate_from_row(
        &tx.fetch_optional_sql(&sql)
            .await?
            .ok_or(ApiError::NotFound { what: "certificate" })?,
    )?;
    tx.query("UPDATE certificates SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    sql.push(" AND ct.id = ").push_bind(id.as_str());
    let after = certificate_from_row(
        &tx.fetch_optional_sql(&sql)
            .await?
            .ok_or(ApiError::NotFound { what: "certificate" })?,
    )?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("certificate.revoke", "certificate", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

/// What anyone may learn from a verification code: whose, which course, and whether it holds.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Verification {
    code: String,
    /// valid, expired or revoked.
    state: String,
    holder: String,
    course: String,
    academy: String,
    issued_at: String,
    expires_at: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
    crate::auth::RequestHost(host): crate::auth::RequestHost,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Verification>> {
    let crate::tenancy::HostTenant::Tenant(tenant) = host else {
        return Err(ApiError::NotFound { what: "certificate" });
    };
    let db = state.db.tenant(&tenant.id);
    let mut tx = db.begin_read().await?;
    let mut sql = Sql::tenant(CERTIFICATE_SELECT);
    sql.push(" AND ct.code = ").push_bind(code.trim().to_uppercase());
    let row = tx
        .fetch_optional_sql(&sql)
        .await?
        .ok_or(ApiError::NotFound { what: "certificate" })?;
    tx.commit().await?;
    let c = certificate_from_row(&row)?;
    Ok(axum::Json(Verification {
        code: c.code,
        state: c.state,
        holder: c.user_name,
        course: c.course_title,
        academy: tenant.name,
        issued_at: c.issued_at,
        expires_at: c.expires_at,
    }))
}
