//! The approval queue: sign-ups held for an admin, seen and decided by those whose `users.write` reach covers
//! the organization the sign-up was placed in (one placed nowhere: academy-wide rights only).
//!
//! Approving activates the account and applies what the enrollment plugins asked for; rejecting removes the
//! account, which never was in use, and keeps the record of the decision.

use super::{Error, Result};
use crate::db::{JsonText, Sql, TenantTx, Timestamp, now_ms};
use crate::directory::accounts;
use crate::learning::Source;
use crate::learning::automation::{self, Action, Context, Event, Pending};
use crate::scope::Reach;
use serde::Serialize;
use serde_json::Value;
use sqlx::{FromRow, Row};

/// A sign-up: how it came in, where it was placed, what was decided and why.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, FromRow)]
pub struct SignupRecord {
    pub(crate) id: String,
    /// The account; absent when the sign-up was refused or rejected.
    user_id: Option<String>,
    email: String,
    /// `open`, `domain` or `invitation`.
    via: String,
    org_id: Option<String>,
    org_name: Option<String>,
    invitation_id: Option<String>,
    /// `pending`, `approved` or `rejected`.
    status: String,
    reason: Option<String>,
    /// What the enrollment plugins asked for, applied at approval.
    actions: JsonText<Value>,
    decided_by: Option<String>,
    decided_at: Option<Timestamp>,
    created_at: Timestamp,
    /// The organization's path, to check reach.
    #[serde(skip)]
    #[schemars(skip)]
    org_path: Option<String>,
}

const SELECT: &str = "SELECT s.id, s.user_id, s.email, s.via, s.org_id, o.name AS org_name, o.path AS org_path, \
     s.invitation_id, s.status, s.reason, s.actions, s.decided_by, s.decided_at, s.created_at \
     FROM signups s LEFT JOIN orgs o ON o.id = s.org_id AND o.tenant_id = $1 WHERE s.tenant_id = $1";

/// Does the reach cover a sign-up? Through its organization; one placed in no organization only with
/// academy-wide rights.
fn covers(reach: &Reach, org_path: Option<&str>) -> bool {
    reach.all || org_path.is_some_and(|p| reach.covers_org_path(p))
}

/// Sign-ups within `reach`, by id, up to `limit + 1`, optionally of one status.
pub async fn list(
    tx: &mut TenantTx,
    reach: &Reach,
    status: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<SignupRecord>> {
    if let Some(status) = status
        && !["pending", "approved", "rejected"].contains(&status)
    {
        return Err(Error::invalid("status", "must be pending, approved or rejected"));
    }
    let mut sql = Sql::tenant(SELECT);
    if let Some(status) = status {
        sql.push(" AND s.status = ").push_bind(status);
    }
    if !reach.all {
        reach.push_org_filter(&mut sql);
    }
    if let Some(after) = after {
        sql.push(" AND s.id > ").push_bind(after);
    }
    sql.push(" ORDER BY s.id LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    Ok(rows.iter().map(SignupRecord::from_row).collect::<Result<Vec<_>, _>>()?)
}

async fn reload(tx: &mut TenantTx, id: &str) -> Result<SignupRecord> {
    let row = tx
        .query(&format!("{SELECT} AND s.id = $2"))
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?;
    Ok(SignupRecord::from_row(&row)?)
}

/// A pending sign-up within `reach`, with its account, or not found (or not pending when it was decided).
async fn pending_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> Result<(SignupRecord, String)> {
    let row = tx
        .query(&format!("{SELECT} AND s.id = $2"))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(crate::directory::Error::NotFound("sign-up"))?;
    let signup = SignupRecord::from_row(&row)?;
    if !covers(reach, signup.org_path.as_deref()) {
        return Err(crate::directory::Error::NotFound("sign-up").into());
    }
    let user_id = match (&signup.user_id, signup.status.as_str()) {
        (Some(user), "pending") => user.clone(),
        _ => return Err(Error::NotPending(format!("this sign-up was {} already", signup.status))),
    };
    let status: Option<String> = tx
        .query("SELECT status FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.clone())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if status.as_deref() != Some("pending") {
        return Err(Error::NotPending(
            "the account of this sign-up is no longer pending; its status was changed directly".into(),
        ));
    }
    Ok((signup, user_id))
}

fn decided_meanwhile() -> Error {
    Error::NotPending("this sign-up was decided meanwhile".into())
}

/// Approve a pending sign-up within `reach` as `decider` (acting in `context`): the account becomes active,
/// the plugins' actions are applied and the rules run. Returns the record before and after, the account, and
/// what the enrollment plugins still have to see once the transaction commits.
pub async fn approve(
    tx: &mut TenantTx,
    reach: &Reach,
    decider: &str,
    context: Context,
    id: &str,
) -> Result<(SignupRecord, SignupRecord, String, Vec<Pending>)> {
    let (before, user_id) = pending_in_reach(tx, reach, id).await?;
    let now = now_ms();
    // Both updates are conditional: of two approvals at once only one finds the sign-up still pending.
    let n = tx
        .query("UPDATE signups SET status = 'approved', decided_by = $3, decided_at = $4 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'")
        .bind(id.to_owned())
        .bind(decider.to_owned())
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    let m = tx
        .query("UPDATE users SET status = 'active', updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'")
        .bind(user_id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n != 1 || m != 1 {
        return Err(decided_meanwhile());
    }
    let actions: Vec<(Source, Action)> = automation::actions_from_json(&before.actions.0.to_string());
    let p1 = automation::apply_actions(tx, &user_id, &actions, context.clone()).await?;
    let p2 = automation::run_rules(tx, vec![Event::created(&user_id)], context).await?;
    let after = reload(tx, id).await?;
    let event = crate::outbox::Event::about(crate::outbox::Kind::Approved, &user_id).by(Some(decider));
    crate::outbox::emit(tx, &[event]).await?;
    Ok((before, after, user_id, vec![p1, p2]))
}

/// Reject a pending sign-up within `reach` as `decider`, with an optional reason: the held account goes,
/// with everything attached to it; the record stays (without the account) so that the decision can be read
/// later. Returns the record before and after.
pub async fn reject(
    tx: &mut TenantTx,
    reach: &Reach,
    decider: &str,
    id: &str,
    reason: Option<String>,
) -> Result<(SignupRecord, SignupRecord)> {
    let (before, user_id) = pending_in_reach(tx, reach, id).await?;
    let n = tx
        .query(
            "UPDATE signups SET status = 'rejected', reason = coalesce($3, reason), decided_by = $4, decided_at = $5 \
             WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(id.to_owned())
        .bind(reason)
        .bind(decider.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n != 1 {
        return Err(decided_meanwhile());
    }
    accounts::erase(tx, &user_id).await?;
    let after = reload(tx, id).await?;
    Ok((before, after))
}
