//! The registry of tenant-owned tables: what export, import, clone and delete walk over.
//!
//! Every table with a `tenant_id` column must be listed here, in dependency order (a table after the tables
//! it references), with exactly its columns. [`mismatches`] compares the registry with the live catalog, so a
//! migration that adds a table or a column without registering it fails the test suite instead of silently
//! leaving data out of exports or behind after a delete.

use crate::db::Db;
use sqlx::Row;
use std::collections::BTreeSet;

/// What a column holds, which decides how it travels in an archive and how it is remapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The row's own id (a UUID): every value gets a new id on import and clone.
    Id,
    /// The id of another row of the same tenant: it follows its row's new id.
    Ref,
    /// The owning tenant: always the tenant being written.
    Tenant,
    /// Text (ids found inside it are remapped too, e.g. org paths and JSON definitions).
    Text,
    /// A 64-bit integer (times, counters, flags).
    Int,
    /// A float.
    Real,
    /// Binary data (component bytes, plugin key-value data); base64 in archives, never remapped.
    Bytes,
    /// Secrets (a JSON object): they never leave the host; exports and clones carry an empty object.
    Secret,
    /// A credential kept as a hash (a password, an invitation link): it never leaves the host. Exports carry
    /// a random value in its place, which matches nothing, so a restored account sets its password again
    /// through a reset link and a restored invitation works for nobody.
    Withheld,
}

/// One column of a registered table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The column's name.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
}

/// One tenant-owned table.
#[derive(Debug)]
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// Every column, in declaration order.
    pub columns: &'static [Column],
    /// Exported into archives. Credentials (sessions, API tokens, login failures) never leave the host.
    pub export: bool,
    /// Copied when a tenant is cloned: the academy's structure and configuration, never its people.
    pub clone: bool,
}

impl Table {
    /// Is this column an id (own or referenced)?
    pub fn is_id(&self, column: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.name == column && matches!(c.kind, Kind::Id | Kind::Ref))
    }

    /// The column names, comma-separated, for a SELECT or INSERT.
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
    }
}

const fn id(name: &'static str) -> Column {
    Column { name, kind: Kind::Id }
}
const fn r(name: &'static str) -> Column {
    Column { name, kind: Kind::Ref }
}
const fn text(name: &'static str) -> Column {
    Column { name, kind: Kind::Text }
}
const fn int(name: &'static str) -> Column {
    Column { name, kind: Kind::Int }
}
const fn secret(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Secret,
    }
}
const fn withheld(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Withheld,
    }
}
const fn bytes(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Bytes,
    }
}
const TENANT: Column = Column {
    name: "tenant_id",
    kind: Kind::Tenant,
};

/// Exported and copied on clone.
const EXPORT_CLONE: (bool, bool) = (true, true);
/// Exported, not copied on clone.
const EXPORT: (bool, bool) = (true, false);
/// Neither exported nor cloned (credentials); still deleted with the tenant.
const PRIVATE: (bool, bool) = (false, false);

const fn table(name: &'static str, columns: &'static [Column], (export, clone): (bool, bool)) -> Table {
    Table {
        name,
        columns,
        export,
        clone,
    }
}

/// Every tenant-owned table, parents before children. Adding a table is one entry here.
#[rustfmt::skip]
pub const TABLES: &[Table] = &[
    table("tenant_domains", &[text("domain"), TENANT, int("created_at")], EXPORT),
    table("orgs", &[id("id"), TENANT, r("parent_id"), text("name"), text("path"), int("depth"), text("external_id"), int("member_limit"), int("created_at"), int("updated_at")], EXPORT_CLONE),
    table("users", &[id("id"), TENANT, text("email"), text("name"), text("locale"), text("status"), text("external_id"), r("manager_id"), text("profile"), withheld("password_hash"), int("first_login_at"), int("last_login_at"), int("created_at"), int("updated_at")], EXPORT),
    table("memberships", &[TENANT, r("user_id"), r("org_id"), int("created_at")], EXPORT),
    table("tags", &[id("id"), TENANT, text("name"), text("description"), int("created_at")], EXPORT_CLONE),
    table("user_tags", &[TENANT, r("user_id"), r("tag_id"), int("created_at")], EXPORT),
    table("profile_fields", &[id("id"), TENANT, text("key"), text("label"), text("field_type"), text("choices"), int("required"), int("created_at")], EXPORT_CLONE),
    table("segments", &[id("id"), TENANT, text("name"), text("description"), text("definition"), int("created_at"), int("updated_at")], EXPORT_CLONE),
    table("roles", &[id("id"), TENANT, text("key"), text("name"), text("permissions"), int("builtin"), int("created_at"), int("updated_at")], EXPORT_CLONE),
    table("grants", &[id("id"), TENANT, r("user_id"), r("role_id"), text("scope_type"), r("org_id"), r("segment_id"), int("created_at")], EXPORT),
    table("sessions", &[text("id_hash"), TENANT, r("user_id"), int("created_at"), int("expires_at"), int("last_seen_at")], PRIVATE),
    table("api_tokens", &[id("id"), TENANT, r("user_id"), text("name"), text("prefix"), text("token_hash"), int("created_at"), int("expires_at"), int("revoked_at"), int("last_used_at")], PRIVATE),
    table("login_failures", &[id("id"), TENANT, text("email"), text("ip"), int("at")], PRIVATE),
    // Password reset links are credentials; a person's notification preferences are theirs (exported only).
    table("password_resets", &[id("id"), TENANT, r("user_id"), text("email"), text("secret_hash"), int("created_at"), int("expires_at"), int("used_at")], PRIVATE),
    // A sign-up waiting for its e-mail address to be proven holds a password hash and a link's secret.
    table("signup_verifications", &[id("id"), TENANT, text("token_hash"), text("email"), text("name"), text("locale"), text("profile"), text("password_hash"), int("created_at"), int("expires_at")], PRIVATE),
    table("notification_preferences", &[TENANT, r("user_id"), text("kind"), text("mode"), int("updated_at")], EXPORT),
    // actor_id stays Text: it may name an operator, who is not part of the tenant; a user's id inside it is
    // still remapped because every text value is.
    // The academy's content (courses, lessons, programs, catalog visibility), its sign-up set-up and its rules
    // are cloned; people's enrollments, progress, certificates, invitations and sign-ups are exported only.
    table("courses", &[id("id"), TENANT, text("code"), text("title"), text("summary"), text("language"), text("status"), int("created_at"), int("updated_at"), int("estimated_minutes"), text("visibility"), int("self_enroll"), int("approval_required"), int("due_days"), int("certificate_valid_days"), int("issues_certificate")], EXPORT_CLONE),
    table("enrollments", &[id("id"), TENANT, r("user_id"), r("course_id"), text("status"), int("progress"), int("due_at"), int("completed_at"), int("created_at"), int("updated_at"), text("source"), int("started_at"), int("cycle")], EXPORT),
    table("course_orgs", &[TENANT, r("course_id"), r("org_id"), int("created_at")], EXPORT_CLONE),
    table("lessons", &[id("id"), TENANT, r("course_id"), int("position"), text("kind"), text("title"), text("body"), text("media_url"), int("required"), text("questions"), int("pass_percent"), int("max_attempts"), int("created_at"), int("updated_at")], EXPORT_CLONE),
    table("programs", &[id("id"), TENANT, text("code"), text("title"), text("summary"), text("status"), int("created_at"), int("updated_at")], EXPORT_CLONE),
    table("program_courses", &[TENANT, r("program_id"), r("course_id"), int("position")], EXPORT_CLONE),
    table("program_enrollments", &[id("id"), TENANT, r("user_id"), r("program_id"), text("status"), int("due_at"), int("completed_at"), int("created_at"), int("updated_at")], EXPORT),
    table("enrollment_history", &[id("id"), TENANT, r("enrollment_id"), int("at"), text("action"), text("status"), text("detail"), text("cause")], EXPORT),
    table("enrollment_requests", &[id("id"), TENANT, r("user_id"), r("course_id"), text("status"), text("note"), text("decided_by"), int("decided_at"), int("created_at")], EXPORT),
    table("lesson_progress", &[TENANT, r("enrollment_id"), r("lesson_id"), int("completed_at"), int("score")], EXPORT),
    table("quiz_attempts", &[id("id"), TENANT, r("enrollment_id"), r("lesson_id"), int("cycle"), text("answers"), int("score"), int("passed"), int("at")], EXPORT),
    table("certificates", &[id("id"), TENANT, r("user_id"), r("course_id"), r("enrollment_id"), text("code"), int("issued_at"), int("expires_at"), int("revoked_at"), int("renewed_at")], EXPORT),
    table("org_domains", &[TENANT, text("domain"), r("org_id"), int("hold"), int("created_at")], EXPORT_CLONE),
    table("identity_providers", &[id("id"), TENANT, text("name"), text("protocol"), text("issuer"), text("client_id"), withheld("client_secret"), text("scopes"), text("email_domains"), int("password_signin"), int("create_users"), text("mapping"), int("enabled"), int("created_at"), int("updated_at")], EXPORT),
    table("sso_requests", &[text("state_hash"), TENANT, r("provider_id"), text("nonce"), text("pkce_verifier"), text("redirect_uri"), text("next"), int("created_at"), int("expires_at")], PRIVATE),
    table("user_identities", &[TENANT, r("provider_id"), text("subject"), r("user_id"), text("owned"), int("created_at"), int("last_login_at")], EXPORT),
    // SCIM tokens are credentials (never exported); what a SCIM client wrote about people and groups is the
    // academy's data (exported, not cloned: it belongs to the people it describes).
    table("scim_tokens", &[id("id"), TENANT, text("name"), text("prefix"), text("token_hash"), r("created_by"), int("created_at"), int("expires_at"), int("revoked_at"), int("last_used_at")], PRIVATE),
    table("scim_users", &[TENANT, r("user_id"), text("user_name"), text("attributes"), int("removed_at"), int("created_at"), int("updated_at")], EXPORT),
    table("scim_groups", &[TENANT, r("org_id"), text("attributes"), int("provisioned"), int("created_at"), int("updated_at")], EXPORT),
    table("import_members", &[TENANT, text("data_set"), r("user_id"), text("import_id"), int("updated_at")], EXPORT),
    table("invitations", &[id("id"), TENANT, r("org_id"), withheld("token"), int("max_uses"), int("uses"), int("hold"), int("expires_at"), int("revoked_at"), text("created_by"), int("created_at")], EXPORT),
    table("signups", &[id("id"), TENANT, r("user_id"), text("email"), text("via"), r("org_id"), r("invitation_id"), text("status"), text("reason"), text("actions"), text("decided_by"), int("decided_at"), int("created_at")], EXPORT),
    table("rules", &[id("id"), TENANT, text("name"), int("enabled"), text("definition"), int("max_fires_per_user"), int("created_at"), int("updated_at")], EXPORT_CLONE),
    // The academy's look (branding, organizations' overrides, uploaded theme files) is cloned with it.
    table("tenant_branding", &[TENANT, text("settings"), int("theme_version"), int("updated_at")], EXPORT_CLONE),
    table("org_branding", &[TENANT, r("org_id"), text("settings"), int("updated_at")], EXPORT_CLONE),
    table("theme_files", &[TENANT, text("path"), bytes("content"), int("size"), int("updated_at")], EXPORT_CLONE),
    table("rule_firings", &[TENANT, r("rule_id"), r("user_id"), int("fires"), int("last_at")], EXPORT),
    table("automation_log", &[id("id"), TENANT, int("at"), text("user_id"), text("source"), text("trigger_name"), text("action"), text("outcome"), text("message")], EXPORT),
    table("jobs", &[id("id"), TENANT, text("kind"), text("status"), text("params"), text("result"), text("error"), text("created_by"), int("created_at"), int("started_at"), int("finished_at")], PRIVATE),
    // Plugins travel with their versions, component bytes and settings, but not their secrets (set them again
    // on the copy); their key-value data is the academy's data (exported, not cloned); logs and faults are
    // operational history and stay behind.
    table("plugins", &[id("id"), TENANT, text("name"), text("kind"), text("status"), r("active_version_id"), text("capabilities"), text("settings"), secret("secrets"), int("consecutive_faults"), text("disabled_reason"), int("revision"), int("created_at"), int("updated_at")], EXPORT_CLONE),
    table("plugin_blobs", &[text("hash"), TENANT, bytes("bytes"), int("size"), int("created_at")], EXPORT_CLONE),
    table("plugin_versions", &[id("id"), TENANT, r("plugin_id"), text("version"), text("manifest"), text("hash"), int("size"), text("imports"), int("faults"), int("created_at")], EXPORT_CLONE),
    table("plugin_kv", &[TENANT, r("plugin_id"), text("key"), bytes("value"), int("updated_at")], EXPORT),
    table("plugin_logs", &[id("id"), TENANT, r("plugin_id"), r("version_id"), int("at"), text("level"), text("message")], PRIVATE),
    table("plugin_faults", &[id("id"), TENANT, r("plugin_id"), r("version_id"), int("at"), text("hook"), text("kind"), text("message"), int("elapsed_ms"), int("counted")], PRIVATE),
    table("notices", &[id("id"), TENANT, text("kind"), text("subject"), text("body"), text("target_type"), text("target_id"), int("created_at"), int("read_at")], EXPORT),
    // Notifications: the academy's sender settings and mail templates are configuration (cloned); the
    // outbox, messages and their delivery attempts are operational and may hold secret links (reset mails),
    // so they never leave the host. Sign-in events, report presets and report schedules belong to people
    // (exported, not cloned: a schedule runs with its owner's scope and mails its chosen recipients).
    table("notification_settings", &[TENANT, text("sender_name"), text("sender_address"), text("reply_to"), int("due_soon_days"), int("digest_hour"), int("updated_at")], EXPORT_CLONE),
    table("notification_templates", &[id("id"), TENANT, text("kind"), text("locale"), text("subject"), text("body_text"), text("body_html"), int("created_at"), int("updated_at")], EXPORT_CLONE),
    table("outbox_events", &[id("id"), TENANT, text("kind"), text("user_id"), text("course_id"), text("enrollment_id"), text("actor_id"), text("data"), text("dedupe_key"), int("created_at"), int("claimed_until"), int("attempts"), text("last_error"), int("processed_at")], PRIVATE),
    table("messages", &[id("id"), TENANT, text("event_id"), text("kind"), text("recipient_id"), text("to_address"), text("to_name"), text("locale"), text("subject"), text("body_text"), text("body_html"), text("attachment_name"), text("attachment_type"), bytes("attachment"), text("source"), text("status"), text("reason"), int("attempts"), int("next_attempt_at"), int("lease_until"), text("digest_id"), text("message_id"), int("created_at"), int("sent_at")], PRIVATE),
    table("message_attempts", &[id("id"), TENANT, r("message_id"), int("attempt"), int("started_at"), int("finished_at"), text("outcome"), text("detail")], PRIVATE),
    table("schedule_slots", &[TENANT, text("job"), text("slot"), int("claimed_at")], PRIVATE),
    table("login_events", &[id("id"), TENANT, r("user_id"), int("at")], EXPORT),
    table("report_presets", &[id("id"), TENANT, r("owner_id"), text("name"), text("report"), text("params"), int("created_at"), int("updated_at")], EXPORT),
    table("report_schedules", &[id("id"), TENANT, r("owner_id"), text("name"), text("report"), text("params"), text("format"), text("frequency"), int("hour"), int("weekday"), int("monthday"), text("recipients"), int("active"), int("next_run_at"), int("last_run_at"), text("last_status"), int("created_at"), int("updated_at")], EXPORT),
    table("audit_log", &[id("id"), TENANT, int("at"), text("actor_type"), text("actor_id"), text("actor_label"), text("action"), text("target_type"), r("target_id"), text("before"), text("after"), text("request_id")], EXPORT),
];

/// The registered table of this name.
pub fn find(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// Differences between the registry and the database's catalog, in plain words; empty when they agree.
pub async fn mismatches(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let backend = db.backend();
    let mut tx = db.platform().begin().await?;
    let catalog: BTreeSet<String> = sqlx::query(backend.tenant_tables_sql())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    let mut problems = Vec::new();
    for name in &catalog {
        if find(name).is_none() {
            problems.push(format!(
                "table {name} has a tenant_id column but is not in lifecycle::tables::TABLES"
            ));
        }
    }
    for table in TABLES {
        if !catalog.contains(table.name) {
            problems.push(format!(
                "registered table {} does not exist (or has no tenant_id column)",
                table.name
            ));
            continue;
        }
        let real: BTreeSet<String> = sqlx::query(backend.columns_sql())
            .bind(table.name.to_owned())
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let registered: BTreeSet<String> = table.columns.iter().map(|c| c.name.to_owned()).collect();
        for missing in real.difference(&registered) {
            problems.push(format!("column {}.{missing} is not registered", table.name));
        }
        for extra in registered.difference(&real) {
            problems.push(format!("registered column {}.{extra} does not exist", table.name));
        }
        if registered.len() != table.columns.len() {
            problems.push(format!("table {} registers a column twice", table.name));
        }
        let tenant_columns = table.columns.iter().filter(|c| c.kind == Kind::Tenant).count();
        if tenant_columns != 1
            || !table
                .columns
                .iter()
                .any(|c| c.kind == Kind::Tenant && c.name == "tenant_id")
        {
            problems.push(format!(
                "table {} must register tenant_id, once, as the tenant column",
                table.name
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for table in TABLES {
        if !seen.insert(table.name) {
            problems.push(format!("table {} is registered twice", table.name));
        }
    }
    tx.commit().await?;
    Ok(problems)
}
