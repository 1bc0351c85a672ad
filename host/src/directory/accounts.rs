//! Changing people's accounts: creating them, changing them, tagging them, erasing them, and the rule of
//! authority that account-wide changes (e-mail, status, password, deletion) must pass.
//!
//! What the academy's rules do about a change is the learning core's part: the edge runs them in the same
//! transaction, after the change and before the audit entry.

use super::orgs::{self, OrgRow};
use super::users::{check_status, load_in_reach};
use super::{Error, Result, profile};
use crate::db::{Constraints, ResultExt, TenantTx, new_id, now_ms};
use crate::fields::{email, opt_text, text};
use crate::scope::{Grants, Permission, Reach};
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::Row;

/// May someone holding `grants` make account-wide changes to this user (e-mail, status, password,
/// deletion)? Those reach beyond the caller's part of the academy, so the caller needs more than the user
/// being in reach: every organization of the user must be within the caller's `users.write` reach (or that
/// reach is the whole academy), and the caller must hold every permission the user holds, over the same
/// scopes — a manager cannot take over an admin's account by resetting its password.
pub async fn ensure_account_authority(tx: &mut TenantTx, grants: &Grants, user_id: &str) -> Result<()> {
    let reach = grants.reach(Permission::UsersWrite);
    if !reach.all {
        let paths: Vec<String> = tx
            .query("SELECT o.path FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE m.tenant_id = $1 AND m.user_id = $2")
            .bind(user_id.to_owned())
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if paths.is_empty() || paths.iter().any(|p| !reach.covers_org_path(p)) {
            return Err(Error::Forbidden(
                "this user also belongs to organizations outside your scope; an academy admin can change their account"
                    .into(),
            ));
        }
    }
    let theirs = crate::auth::load_grants(tx, user_id).await?;
    for grant in &theirs.0 {
        if let Some(p) = grants.holds_all_over(&grant.permissions, &grant.scope) {
            return Err(Error::Forbidden(format!(
                "this user holds {} where you do not; an academy admin can change their account",
                p.as_str()
            )));
        }
    }
    Ok(())
}

const CONSTRAINTS: Constraints<Error> = &[
    ("users_email_key", email_taken),
    ("users.email", email_taken),
    ("external_id", || Error::Duplicate {
        field: "external_id",
        message: "a user with this external id already exists in this academy".into(),
    }),
];

fn email_taken() -> Error {
    Error::Duplicate {
        field: "email",
        message: "a user with this e-mail already exists in this academy".into(),
    }
}

fn check_locale(locale: Option<String>) -> Result<Option<String>> {
    if locale.as_deref().is_some_and(|l| !crate::tenancy::valid_locale(l)) {
        return Err(Error::invalid("locale", "must be a language tag such as en or de-CH"));
    }
    Ok(locale)
}

/// A new user.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schemars(length(max = 254), regex(pattern = crate::fields::pattern::EMAIL))]
    email: String,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    #[schemars(length(max = 20), regex(pattern = crate::fields::pattern::LOCALE))]
    locale: Option<String>,
    /// Default `active`.
    #[schemars(extend("enum" = ["active", "pending", "suspended", "terminated"]))]
    status: Option<String>,
    #[schemars(length(max = 200), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    external_id: Option<String>,
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    manager_id: Option<String>,
    #[serde(default)]
    profile: Map<String, Value>,
    /// Optional initial password (at least 10 characters).
    #[schemars(length(min = 10, max = 200))]
    pub password: Option<String>,
    /// Organizations to place the user in. Required when your scope is an organization subtree.
    #[serde(default)]
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    org_ids: Vec<String>,
    /// Tag ids to give the user.
    #[serde(default)]
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    tag_ids: Vec<String>,
    /// E-mail the user an invitation with a link to choose their password (it works once, for 7 days).
    #[serde(default)]
    pub invite: bool,
}

/// A [`NewUser`] whose fields have been checked.
pub struct CheckedNewUser<'a> {
    req: &'a NewUser,
    /// The e-mail, lower-cased.
    pub email: String,
    name: String,
    locale: Option<String>,
    status: String,
    external_id: Option<String>,
}

impl NewUser {
    /// Check the fields that need no database, naming the first one at fault.
    pub fn check(&self, reach: &Reach) -> Result<CheckedNewUser<'_>> {
        let email = email("email", &self.email)?;
        let name = text("name", &self.name, 200)?;
        let locale = check_locale(opt_text("locale", self.locale.as_deref(), 20)?)?;
        let status = self.status.clone().unwrap_or_else(|| "active".into());
        check_status("status", &status)?;
        let external_id = opt_text("external_id", self.external_id.as_deref(), 200)?;
        if !reach.all && self.org_ids.is_empty() {
            return Err(Error::invalid(
                "org_ids",
                "name at least one organization within your scope",
            ));
        }
        Ok(CheckedNewUser {
            req: self,
            email,
            name,
            locale,
            status,
            external_id,
        })
    }
}

/// A line manager must be someone the caller sees: an id outside their scope is no user at all.
async fn manager_in_reach(tx: &mut TenantTx, grants: &Grants, id: &str) -> Result<()> {
    load_in_reach(tx, &grants.reach(Permission::UsersRead), id)
        .await
        .map(|_| ())
        .map_err(|_| Error::invalid("manager_id", "no such user within your scope"))
}

async fn tag_exists(tx: &mut TenantTx, id: &str) -> Result<bool> {
    Ok(tx
        .query("SELECT 1 FROM tags WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .is_some())
}

/// Create a user (with its organizations, tags and the learner role) for someone holding `grants`;
/// `password_hash` is the hash of the initial password, if one was given. Returns the new id.
pub async fn create(
    tx: &mut TenantTx,
    grants: &Grants,
    user: &CheckedNewUser<'_>,
    password_hash: Option<String>,
) -> Result<String> {
    let req = user.req;
    let profile = profile::validate(tx, &req.profile, None).await?;
    if let Some(manager) = &req.manager_id {
        manager_in_reach(tx, grants, manager).await?;
    }
    let org_reach = grants.reach(Permission::UsersWrite);
    let mut orgs: Vec<OrgRow> = Vec::new();
    for (i, org_id) in req.org_ids.iter().enumerate() {
        let org = orgs::find(tx, org_id)
            .await?
            .filter(|o| org_reach.covers_org_path(&o.path))
            .ok_or_else(|| Error::invalid(format!("org_ids[{i}]"), "no such organization within your scope"))?;
        orgs.push(org);
    }
    let id = new_id();
    let now = now_ms();
    tx.query(
        "INSERT INTO users (id, tenant_id, email, name, locale, status, external_id, manager_id, profile, password_hash, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(id.clone())
    .bind(user.email.clone())
    .bind(user.name.clone())
    .bind(user.locale.clone())
    .bind(user.status.clone())
    .bind(user.external_id.clone())
    .bind(req.manager_id.clone())
    .bind(Value::Object(profile).to_string())
    .bind(password_hash)
    .bind(now)
    .execute(tx.conn())
    .await
    .on_constraint(CONSTRAINTS)?;
    for org in &orgs {
        orgs::add_member(tx, org, &id).await?;
    }
    for (i, tag_id) in req.tag_ids.iter().enumerate() {
        if !tag_exists(tx, tag_id).await? {
            return Err(Error::invalid(format!("tag_ids[{i}]"), "no such tag"));
        }
        tx.query("INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(id.clone())
            .bind(tag_id.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
    }
    grant_learner(tx, &id, now).await?;
    Ok(id)
}

/// Every user is a learner.
pub async fn grant_learner(tx: &mut TenantTx, user_id: &str, now: i64) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO grants (id, tenant_id, user_id, role_id, scope_type, created_at) \
         SELECT $2, $1, $3, r.id, 'tenant', $4 FROM roles r WHERE r.tenant_id = $1 AND r.key = 'learner'",
    )
    .bind(new_id())
    .bind(user_id.to_owned())
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// How long an invitation's password link works.
const INVITATION_LINK_MS: i64 = 7 * 86_400_000;

/// Invite a new user to choose a password: a link (a password reset link that lives longer; only its hash
/// is stored) e-mailed through the outbox. `academy_url` is the academy's address the link leads to.
pub async fn invite(
    tx: &mut TenantTx,
    user_id: &str,
    email: &str,
    academy_url: &str,
    invited_by: &str,
) -> Result<(), sqlx::Error> {
    let token = crate::auth::random_secret();
    let now = now_ms();
    tx.query(
        "INSERT INTO password_resets (id, tenant_id, user_id, email, secret_hash, created_at, expires_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(user_id.to_owned())
    .bind(email.to_owned())
    .bind(crate::auth::secret_hash(&token))
    .bind(now)
    .bind(now + INVITATION_LINK_MS)
    .execute(tx.conn())
    .await?;
    let event = crate::outbox::Event::about(crate::outbox::Kind::Invited, user_id)
        .by(Some(invited_by))
        .with("link", format!("{academy_url}/password-reset/{token}"));
    crate::outbox::emit(tx, &[event]).await
}

/// A change to a user; absent fields stay as they are.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[schemars(length(max = 254), regex(pattern = crate::fields::pattern::EMAIL))]
    email: Option<String>,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::fields::double_option")]
    #[schemars(length(max = 20), regex(pattern = crate::fields::pattern::LOCALE))]
    locale: Option<Option<String>>,
    #[schemars(extend("enum" = ["active", "pending", "suspended", "terminated"]))]
    status: Option<String>,
    #[serde(default, deserialize_with = "crate::fields::double_option")]
    #[schemars(length(max = 200), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::fields::double_option")]
    #[schemars(regex(pattern = crate::fields::pattern::ID))]
    manager_id: Option<Option<String>>,
    /// Keys to set; `null` removes a key.
    profile: Option<Map<String, Value>>,
    /// Set a new password for the user (ends their sessions).
    #[schemars(length(min = 10, max = 200))]
    pub password: Option<String>,
}

/// Change a user within `users.write` reach for `actor_id`, who holds `grants`; `password_hash` is the hash
/// of the new password, if one was given. A new password or a lost account ends every session and token of
/// the user. Returns the user before the change (with the organizations the actor may see).
pub async fn update(
    tx: &mut TenantTx,
    grants: &Grants,
    actor_id: &str,
    id: &str,
    req: &UserPatch,
    password_hash: Option<String>,
) -> Result<super::users::UserOut> {
    let reach = grants.reach(Permission::UsersWrite);
    let mut before = load_in_reach(tx, &reach, id).await?;
    super::users::attach(
        std::slice::from_mut(&mut before),
        actor_id,
        &grants.reach(Permission::OrgsRead),
    );
    let account_wide = req.password.is_some()
        || req
            .email
            .as_deref()
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case(&before.email))
        || req.status.as_deref().is_some_and(|s| s != before.status);
    if account_wide && id != actor_id {
        ensure_account_authority(tx, grants, id).await?;
    }
    let email = match &req.email {
        Some(e) => email("email", e)?,
        None => before.email.clone(),
    };
    let name = match &req.name {
        Some(n) => text("name", n, 200)?,
        None => before.name.clone(),
    };
    let locale = match &req.locale {
        Some(l) => check_locale(opt_text("locale", l.as_deref(), 20)?)?,
        None => before.locale.clone(),
    };
    let status = req.status.clone().unwrap_or_else(|| before.status.clone());
    check_status("status", &status)?;
    if id == actor_id && status != "active" {
        return Err(Error::refused(
            "self_lockout",
            Some("status"),
            "you cannot suspend or terminate your own account",
        ));
    }
    // A session or token alone must not be enough to take over its account: one's own password changes
    // only where the current one is asked for.
    if id == actor_id && req.password.is_some() {
        return Err(Error::refused(
            "own_password",
            Some("password"),
            "change your own password at /api/v1/me/password, which asks for the current one",
        ));
    }
    let external_id = match &req.external_id {
        Some(e) => opt_text("external_id", e.as_deref(), 200)?,
        None => before.external_id.clone(),
    };
    let manager_id = match &req.manager_id {
        Some(Some(m)) => {
            if m == id {
                return Err(Error::invalid("manager_id", "a user cannot be their own manager"));
            }
            manager_in_reach(tx, grants, m).await?;
            Some(m.clone())
        }
        Some(None) => None,
        None => before.manager_id.clone(),
    };
    let profile = match &req.profile {
        Some(changes) => profile::validate(tx, changes, Some(&before.profile)).await?,
        None => before.profile.clone(),
    };
    let ends_sessions = password_hash.is_some() || status != "active";
    tx.query(
        "UPDATE users SET email = $3, name = $4, locale = $5, status = $6, external_id = $7, manager_id = $8, \
         profile = $9, password_hash = coalesce($10, password_hash), updated_at = $11 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.to_owned())
    .bind(email)
    .bind(name)
    .bind(locale)
    .bind(status)
    .bind(external_id)
    .bind(manager_id)
    .bind(Value::Object(profile).to_string())
    .bind(password_hash)
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .on_constraint(CONSTRAINTS)?;
    if ends_sessions {
        crate::auth::session::end_all(tx, id).await?;
    }
    Ok(before)
}

/// Delete a user within `users.write` reach, with everything attached to them. Returns them as they were.
pub async fn delete(tx: &mut TenantTx, grants: &Grants, actor_id: &str, id: &str) -> Result<super::users::UserOut> {
    if id == actor_id {
        return Err(Error::refused(
            "self_delete",
            None,
            "you cannot delete your own account",
        ));
    }
    let before = load_in_reach(tx, &grants.reach(Permission::UsersWrite), id).await?;
    ensure_account_authority(tx, grants, id).await?;
    erase(tx, id).await?;
    Ok(before)
}

/// Remove a user and every row of every part of the host that belongs to them. Sign-up records keep their
/// e-mail and decision without the account.
pub async fn erase(tx: &mut TenantTx, user_id: &str) -> Result<(), sqlx::Error> {
    for sql in [
        // Learning: enrollments with their history, progress and attempts; certificates, requests, programs.
        "DELETE FROM enrollment_history WHERE tenant_id = $1 AND enrollment_id IN (SELECT id FROM enrollments WHERE tenant_id = $1 AND user_id = $2)",
        "DELETE FROM lesson_progress WHERE tenant_id = $1 AND enrollment_id IN (SELECT id FROM enrollments WHERE tenant_id = $1 AND user_id = $2)",
        "DELETE FROM quiz_attempts WHERE tenant_id = $1 AND enrollment_id IN (SELECT id FROM enrollments WHERE tenant_id = $1 AND user_id = $2)",
        "DELETE FROM certificates WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM enrollment_requests WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM program_enrollments WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM rule_firings WHERE tenant_id = $1 AND user_id = $2",
        "UPDATE signups SET user_id = NULL WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM enrollments WHERE tenant_id = $1 AND user_id = $2",
        // Account: reset links, preferences, sign-ins, saved and scheduled reports, messages to them.
        "DELETE FROM password_resets WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM notification_preferences WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM login_events WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM report_presets WHERE tenant_id = $1 AND owner_id = $2",
        "DELETE FROM report_schedules WHERE tenant_id = $1 AND owner_id = $2",
        "DELETE FROM message_attempts WHERE tenant_id = $1 AND message_id IN \
         (SELECT id FROM messages WHERE tenant_id = $1 AND recipient_id = $2)",
        "DELETE FROM messages WHERE tenant_id = $1 AND recipient_id = $2",
        "DELETE FROM outbox_events WHERE tenant_id = $1 AND user_id = $2",
        // Directory: memberships, tags, roles, credentials, and the user.
        "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM user_tags WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM grants WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM api_tokens WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM user_identities WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM scim_users WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM import_members WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM scim_tokens WHERE tenant_id = $1 AND created_by = $2",
        "UPDATE users SET manager_id = NULL WHERE tenant_id = $1 AND manager_id = $2",
        "DELETE FROM users WHERE tenant_id = $1 AND id = $2",
    ] {
        tx.query(sql).bind(user_id.to_owned()).execute(tx.conn()).await?;
    }
    Ok(())
}

/// Put a tag on a user within `reach`; `true` when the user did not carry it yet.
pub async fn add_tag(tx: &mut TenantTx, reach: &Reach, user_id: &str, tag_id: &str) -> Result<bool> {
    load_in_reach(tx, reach, user_id).await?;
    if !tag_exists(tx, tag_id).await? {
        return Err(Error::invalid("tag_id", "no such tag in this academy"));
    }
    let added = tx
        .query(
            "INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(user_id.to_owned())
        .bind(tag_id.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(added > 0)
}

/// Take a tag off a user within `reach`.
pub async fn remove_tag(tx: &mut TenantTx, reach: &Reach, user_id: &str, tag_id: &str) -> Result<()> {
    load_in_reach(tx, reach, user_id).await?;
    let n = tx
        .query("DELETE FROM user_tags WHERE tenant_id = $1 AND user_id = $2 AND tag_id = $3")
        .bind(user_id.to_owned())
        .bind(tag_id.to_owned())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(Error::NotFound("tag on this user"));
    }
    Ok(())
}
