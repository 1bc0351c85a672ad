//! A copy of every stored row a request could change, to prove that a refused request changed nothing.
//!
//! Volatile bookkeeping is left out on purpose: last-seen and last-used times (touched by any authenticated
//! read), sign-in times and failed sign-ins (touched by signing in).

use aula::db::Db;
use std::collections::BTreeMap;
use std::fmt;

/// Table → its rows, each rendered as one line, sorted.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<&'static str, Vec<String>>);

const TABLES: &[(&str, &[&str])] = &[
    ("tenants", &["id", "slug", "name", "status", "settings", "updated_at"]),
    ("tenant_domains", &["domain", "tenant_id"]),
    (
        "orgs",
        &[
            "id",
            "tenant_id",
            "parent_id",
            "name",
            "path",
            "depth",
            "external_id",
            "member_limit",
            "updated_at",
        ],
    ),
    (
        "users",
        &[
            "id",
            "tenant_id",
            "email",
            "name",
            "locale",
            "status",
            "external_id",
            "manager_id",
            "profile",
            "password_hash",
            "updated_at",
        ],
    ),
    ("memberships", &["tenant_id", "user_id", "org_id"]),
    ("tags", &["id", "tenant_id", "name", "description"]),
    ("user_tags", &["tenant_id", "user_id", "tag_id"]),
    (
        "profile_fields",
        &["id", "tenant_id", "key", "label", "field_type", "choices", "required"],
    ),
    (
        "segments",
        &["id", "tenant_id", "name", "description", "definition", "updated_at"],
    ),
    (
        "roles",
        &["id", "tenant_id", "key", "name", "permissions", "updated_at"],
    ),
    (
        "grants",
        &[
            "id",
            "tenant_id",
            "user_id",
            "role_id",
            "scope_type",
            "org_id",
            "segment_id",
        ],
    ),
    ("sessions", &["id_hash", "tenant_id", "user_id", "expires_at"]),
    (
        "api_tokens",
        &["id", "tenant_id", "user_id", "name", "expires_at", "revoked_at"],
    ),
    ("audit_log", &["id", "tenant_id", "action", "target_id"]),
    ("courses", &["id", "tenant_id", "code", "title", "status", "updated_at"]),
    (
        "enrollments",
        &[
            "id",
            "tenant_id",
            "user_id",
            "course_id",
            "status",
            "progress",
            "updated_at",
        ],
    ),
    (
        "plugins",
        &[
            "id",
            "tenant_id",
            "name",
            "kind",
            "status",
            "active_version_id",
            "capabilities",
            "settings",
            "secrets",
            "consecutive_faults",
            "disabled_reason",
            "revision",
        ],
    ),
    ("plugin_blobs", &["hash", "tenant_id", "size"]),
    (
        "plugin_versions",
        &["id", "tenant_id", "plugin_id", "version", "hash", "faults"],
    ),
    ("plugin_kv", &["tenant_id", "plugin_id", "key", "updated_at"]),
    ("plugin_logs", &["id", "tenant_id", "plugin_id"]),
    ("plugin_faults", &["id", "tenant_id", "plugin_id", "kind"]),
    ("notices", &["id", "tenant_id", "kind", "target_id", "read_at"]),
    (
        "tenant_branding",
        &["tenant_id", "settings", "theme_version", "updated_at"],
    ),
    ("org_branding", &["tenant_id", "org_id", "settings", "updated_at"]),
    ("theme_files", &["tenant_id", "path", "size", "updated_at"]),
    (
        "password_resets",
        &["id", "tenant_id", "user_id", "email", "expires_at"],
    ),
    ("notification_preferences", &["tenant_id", "user_id", "kind", "mode"]),
    (
        "notification_settings",
        &["tenant_id", "sender_name", "sender_address", "updated_at"],
    ),
    (
        "notification_templates",
        &["id", "tenant_id", "kind", "locale", "subject", "updated_at"],
    ),
    ("outbox_events", &["id", "tenant_id", "kind", "user_id", "processed_at"]),
    (
        "messages",
        &["id", "tenant_id", "kind", "recipient_id", "status", "attempts"],
    ),
    ("message_attempts", &["id", "tenant_id", "message_id", "outcome"]),
    ("schedule_slots", &["tenant_id", "job", "slot"]),
    ("login_events", &["id", "tenant_id", "user_id"]),
    ("scim_tokens", &["id", "tenant_id", "name", "created_by", "revoked_at"]),
    (
        "scim_users",
        &["tenant_id", "user_id", "user_name", "attributes", "removed_at"],
    ),
    ("scim_groups", &["tenant_id", "org_id", "attributes", "provisioned"]),
    (
        "report_presets",
        &["id", "tenant_id", "owner_id", "name", "params", "updated_at"],
    ),
    (
        "report_schedules",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "params",
            "next_run_at",
            "updated_at",
        ],
    ),
];

impl Snapshot {
    /// Read every table listed above with platform rights.
    pub async fn take(db: &Db) -> Snapshot {
        let mut tx = db.platform().begin().await.expect("platform transaction");
        let mut out = BTreeMap::new();
        for (table, columns) in TABLES {
            // One text line per row, the same SQL on both backends.
            let line = columns
                .iter()
                .map(|c| format!("coalesce(CAST({c} AS TEXT), '-')"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let sql = format!("SELECT {line} FROM {table}");
            let mut rows: Vec<String> = sqlx::query_scalar(&sql)
                .fetch_all(tx.conn())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.sort();
            out.insert(*table, rows);
        }
        tx.commit().await.expect("commit");
        Snapshot(out)
    }

    /// Panic, listing the differences, unless nothing changed since `self`.
    pub fn assert_unchanged(&self, after: &Snapshot, context: &str) {
        if self == after {
            return;
        }
        let mut report = String::new();
        for (table, rows) in &self.0 {
            let now = &after.0[table];
            for r in rows.iter().filter(|r| !now.contains(r)) {
                report.push_str(&format!("  {table} lost:  {r}\n"));
            }
            for r in now.iter().filter(|r| !rows.contains(r)) {
                report.push_str(&format!("  {table} added: {r}\n"));
            }
        }
        panic!("{context}: stored data changed:\n{report}");
    }

    /// Every row added or lost since `self`, as `table: row`.
    pub fn changes(&self, after: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (table, rows) in &self.0 {
            let now = &after.0[table];
            out.extend(
                rows.iter()
                    .filter(|r| !now.contains(r))
                    .map(|r| format!("{table} lost: {r}")),
            );
            out.extend(
                now.iter()
                    .filter(|r| !rows.contains(r))
                    .map(|r| format!("{table} added: {r}")),
            );
        }
        out
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (table, rows) in &self.0 {
            writeln!(f, "{table}: {} rows", rows.len())?;
        }
        Ok(())
    }
}
