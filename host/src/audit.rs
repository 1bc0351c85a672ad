//! The per-tenant audit log: every change, by whom, before and after, in the same transaction as the change.

use crate::auth::Actor;
use crate::db::{TenantTx, new_id, now_ms};
use serde_json::Value;

/// What changed.
pub struct Change<'a> {
    /// Verb, e.g. `user.create`.
    pub action: &'a str,
    /// Kind of thing changed, e.g. `user`.
    pub target_type: &'a str,
    /// Its id.
    pub target_id: Option<&'a str>,
    /// State before (none for creations).
    pub before: Option<Value>,
    /// State after (none for deletions).
    pub after: Option<Value>,
}

impl<'a> Change<'a> {
    /// Something was created; `after` is its state.
    pub fn created(action: &'a str, target_type: &'a str, target_id: &'a str, after: Value) -> Change<'a> {
        Change {
            action,
            target_type,
            target_id: Some(target_id),
            before: None,
            after: Some(after),
        }
    }

    /// Something changed from `before` to `after`.
    pub fn updated(
        action: &'a str,
        target_type: &'a str,
        target_id: &'a str,
        before: Value,
        after: Value,
    ) -> Change<'a> {
        Change {
            action,
            target_type,
            target_id: Some(target_id),
            before: Some(before),
            after: Some(after),
        }
    }

    /// Something was removed; `before` was its state.
    pub fn deleted(action: &'a str, target_type: &'a str, target_id: &'a str, before: Value) -> Change<'a> {
        Change {
            action,
            target_type,
            target_id: Some(target_id),
            before: Some(before),
            after: None,
        }
    }
}

/// Write one audit entry inside the change's transaction.
pub async fn record(tx: &mut TenantTx, actor: &Actor, change: Change<'_>) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO audit_log (id, tenant_id, at, actor_type, actor_id, actor_label, action, target_type, target_id, before, after, request_id) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(new_id())
    .bind(now_ms())
    .bind(actor.kind)
    .bind(actor.id.clone())
    .bind(actor.label.clone())
    .bind(change.action.to_owned())
    .bind(change.target_type.to_owned())
    .bind(change.target_id.map(str::to_owned))
    .bind(change.before.map(|v| v.to_string()))
    .bind(change.after.map(|v| v.to_string()))
    .bind(actor.request_id.clone())
    .execute(tx.conn())
    .await?;
    Ok(())
}
