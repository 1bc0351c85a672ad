//! Invitation links to an organization: whoever has the link may sign up (or, with an account already,
//! join the organization) while it is active. A link may be limited in uses and time, hold its sign-ups for
//! approval, and be withdrawn; sign-ups already made stay.
//!
//! The link's secret is shown once, when the invitation is made; the database keeps only its SHA-256 (in the
//! `token` column), like API tokens, so neither a copy of the database nor an export holds a working link.

use super::{Error, Result};
use crate::db::{Flag, TenantTx, Timestamp, new_id, now_ms};
use crate::directory::orgs::{self, OrgRow};
use crate::scope::Reach;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{FromRow, Row};

/// An invitation as stored.
#[derive(Debug, Clone, FromRow)]
pub struct Invitation {
    /// Id.
    pub id: String,
    /// The organization it leads into.
    pub org_id: String,
    /// The SHA-256 of the link's secret (hex).
    pub token: String,
    /// Most sign-ups it allows.
    pub max_uses: Option<i64>,
    /// Sign-ups made through it.
    pub uses: i64,
    /// Sign-ups through it wait for approval.
    #[sqlx(try_from = "Flag")]
    pub hold: bool,
    /// When it stops working (unix milliseconds).
    pub expires_at: Option<i64>,
    /// When it was withdrawn.
    pub revoked_at: Option<i64>,
    /// Who made it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: i64,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    /// It can be used.
    Active,
    /// Past its expiry.
    Expired,
    /// Used as often as it allows.
    UsedUp,
    /// Withdrawn.
    Revoked,
}

impl InvitationStatus {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Active => "active",
            InvitationStatus::Expired => "expired",
            InvitationStatus::UsedUp => "used_up",
            InvitationStatus::Revoked => "revoked",
        }
    }

    /// The code of the refusal to use an invitation in this state.
    pub fn code(self) -> &'static str {
        match self {
            InvitationStatus::Active => "invitation_active",
            InvitationStatus::Expired => "invitation_expired",
            InvitationStatus::UsedUp => "invitation_used_up",
            InvitationStatus::Revoked => "invitation_revoked",
        }
    }

    /// What the refusal to use an invitation in this state says.
    pub fn refusal(self) -> &'static str {
        match self {
            InvitationStatus::Active => "this invitation can be used",
            InvitationStatus::Expired => "this invitation has expired; ask for a new one",
            InvitationStatus::UsedUp => "this invitation has been used as often as it allows; ask for a new one",
            InvitationStatus::Revoked => "this invitation has been withdrawn; ask for a new one",
        }
    }
}

impl Invitation {
    /// Its state at `now`. Revocation wins over everything else: it is the one an admin chose.
    pub fn status(&self, now: i64) -> InvitationStatus {
        if self.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            InvitationStatus::Expired
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            InvitationStatus::UsedUp
        } else {
            InvitationStatus::Active
        }
    }

    /// `Ok` when it can be used at `now`, else the refusal.
    fn usable_at(self, now: i64) -> Result<Invitation> {
        match self.status(now) {
            InvitationStatus::Active => Ok(self),
            status => Err(Error::Invitation(status)),
        }
    }
}

/// The `SELECT` list of [`Invitation`], for the table aliased `i`.
const COLUMNS: &str =
    "i.id, i.org_id, i.token, i.max_uses, i.uses, i.hold, i.expires_at, i.revoked_at, i.created_by, i.created_at";

/// The invitation with this token, if any.
pub async fn by_token(tx: &mut TenantTx, token: &str) -> Result<Option<Invitation>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM invitations i WHERE i.tenant_id = $1 AND i.token = $2");
    tx.query(&sql)
        .bind(crate::auth::secret_hash(token))
        .fetch_optional(tx.conn())
        .await?
        .as_ref()
        .map(Invitation::from_row)
        .transpose()
}

/// The invitation with this id, if any.
async fn by_id(tx: &mut TenantTx, id: &str) -> Result<Option<Invitation>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM invitations i WHERE i.tenant_id = $1 AND i.id = $2");
    tx.query(&sql)
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .as_ref()
        .map(Invitation::from_row)
        .transpose()
}

/// A usable invitation by token, or the refusal that says why it cannot be used.
pub async fn usable(tx: &mut TenantTx, token: &str) -> Result<Invitation> {
    by_token(tx, token)
        .await?
        .ok_or(Error::UnknownInvitation)?
        .usable_at(now_ms())
}

/// Spend one use of an invitation. The check and the increment are one statement, so concurrent sign-ups
/// cannot together pass `max_uses` (PostgreSQL re-checks the condition on the row it waited for; SQLite
/// writers are serialized). When nothing was updated, the refusal names what changed meanwhile.
pub async fn spend(tx: &mut TenantTx, id: &str) -> Result<()> {
    let now = now_ms();
    let n = tx
        .query(
            "UPDATE invitations SET uses = uses + 1 WHERE tenant_id = $1 AND id = $2 \
             AND (max_uses IS NULL OR uses < max_uses) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(id.to_owned())
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 1 {
        return Ok(());
    }
    let current = by_id(tx, id).await?.ok_or(Error::UnknownInvitation)?;
    match current.status(now) {
        InvitationStatus::Active => Err(Error::Invitation(InvitationStatus::UsedUp)),
        status => Err(Error::Invitation(status)),
    }
}

/// The sign-up address of an invitation on an academy host.
pub fn link(host: &str, token: &str) -> String {
    format!("https://{host}/signup?invitation={token}")
}

/// A new invitation token: 24 random bytes, 32 URL-safe characters.
fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An invitation link to an organization, as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct InvitationOut {
    pub(crate) id: String,
    org_id: String,
    org_name: String,
    /// The secret of the link, shown only when the invitation is made: whoever has it may sign up (or join)
    /// while the invitation is active. Later reads show `null`; only its hash is kept.
    token: Option<String>,
    /// The sign-up address to share, on the academy address the invitation was made on; only when made.
    link: Option<String>,
    uses: i64,
    max_uses: Option<i64>,
    /// Sign-ups through it wait for approval.
    hold: bool,
    expires_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
    /// `active`, `expired`, `used_up` or `revoked`.
    status: String,
    created_by: Option<String>,
    created_at: Timestamp,
}

impl InvitationOut {
    /// The invitation with its organization's name; with its secret and its link on `host` when it was just
    /// made (`secret`).
    pub fn new(i: Invitation, org_name: String, secret: Option<(&str, &str)>) -> InvitationOut {
        InvitationOut {
            status: i.status(now_ms()).as_str().to_owned(),
            link: secret.map(|(token, host)| link(host, token)),
            token: secret.map(|(token, _)| token.to_owned()),
            id: i.id,
            org_id: i.org_id,
            org_name,
            uses: i.uses,
            max_uses: i.max_uses,
            hold: i.hold,
            expires_at: i.expires_at.map(Timestamp::from_ms),
            revoked_at: i.revoked_at.map(Timestamp::from_ms),
            created_by: i.created_by,
            created_at: Timestamp::from_ms(i.created_at),
        }
    }

    /// What the audit log keeps: everything but the secret.
    pub fn audited(&self) -> Value {
        let mut v = json!(self);
        if let Some(o) = v.as_object_mut() {
            o.remove("token");
            o.remove("link");
        }
        v
    }
}

/// An invitation of an organization within `reach` (the caller's `members.write`), with the organization's
/// name; anything else is not found.
pub async fn find_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> Result<(Invitation, String)> {
    let sql = format!(
        "SELECT {COLUMNS}, o.name AS org_name, o.path AS org_path FROM invitations i \
         JOIN orgs o ON o.id = i.org_id AND o.tenant_id = $1 WHERE i.tenant_id = $1 AND i.id = $2"
    );
    let row = tx
        .query(&sql)
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(crate::directory::Error::NotFound("invitation"))?;
    let path: String = row.try_get("org_path")?;
    if !reach.covers_org_path(&path) {
        return Err(crate::directory::Error::NotFound("invitation").into());
    }
    Ok((Invitation::from_row(&row)?, row.try_get("org_name")?))
}

/// A new invitation.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// How many sign-ups it allows, 1–100000; unlimited when absent.
    #[schemars(range(min = 1, max = 100000))]
    max_uses: Option<i64>,
    /// When it stops working, RFC 3339, in the future. Give this or `expires_in_days`, not both.
    #[schemars(regex(pattern = crate::fields::pattern::TIME))]
    expires_at: Option<String>,
    /// Days until it stops working, 1–3650.
    #[schemars(range(min = 1, max = 3650))]
    expires_in_days: Option<i64>,
    /// Sign-ups through it wait for approval.
    #[serde(default)]
    hold: bool,
}

/// Create an invitation to an organization within `reach`, made by `creator`; returns it with the
/// organization and the link's secret (shown this once).
pub async fn create(
    tx: &mut TenantTx,
    reach: &Reach,
    org_id: &str,
    creator: &str,
    req: &NewInvitation,
) -> Result<(Invitation, OrgRow, String)> {
    if req.max_uses.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return Err(Error::invalid("max_uses", "must be between 1 and 100000, or left out"));
    }
    let now = now_ms();
    let expires_at = match (&req.expires_at, req.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "expires_in_days",
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(at), None) => {
            let at = Timestamp::parse(at)
                .ok_or_else(|| {
                    Error::invalid("expires_at", "must be a time in RFC 3339, such as 2026-12-31T23:59:00Z")
                })?
                .ms();
            if at <= now {
                return Err(Error::invalid("expires_at", "must be in the future"));
            }
            Some(at)
        }
        (None, Some(days)) if (1..=3650).contains(&days) => Some(now + days * crate::learning::DAY_MS),
        (None, Some(_)) => return Err(Error::invalid("expires_in_days", "must be between 1 and 3650")),
        (None, None) => None,
    };
    let org = orgs::find_in_reach(tx, reach, org_id).await?;
    let secret = new_token();
    let invitation = Invitation {
        id: new_id(),
        org_id: org.id.clone(),
        token: crate::auth::secret_hash(&secret),
        max_uses: req.max_uses,
        uses: 0,
        hold: req.hold,
        expires_at,
        revoked_at: None,
        created_by: Some(creator.to_owned()),
        created_at: now,
    };
    tx.query(
        "INSERT INTO invitations (id, tenant_id, org_id, token, max_uses, uses, hold, expires_at, revoked_at, created_by, created_at) \
         VALUES ($2, $1, $3, $4, $5, 0, $6, $7, NULL, $8, $9)",
    )
    .bind(invitation.id.clone())
    .bind(invitation.org_id.clone())
    .bind(invitation.token.clone())
    .bind(invitation.max_uses)
    .bind(i64::from(invitation.hold))
    .bind(invitation.expires_at)
    .bind(invitation.created_by.clone())
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok((invitation, org, secret))
}

/// Whether `token` is the secret of this invitation (for its QR code, which only the link's holder may ask
/// for).
pub fn holds(invitation: &Invitation, token: &str) -> bool {
    crate::auth::secret_hash(token) == invitation.token
}

/// Keep only the hash of invitation secrets stored in the clear by earlier versions (a hash is 64 hex
/// digits, a secret 32 URL-safe characters). Run once at start-up; does nothing when there are none.
pub async fn hash_stored_tokens(db: &crate::db::Db) -> Result<u64, sqlx::Error> {
    let mut tx = db.platform().begin().await?;
    let rows = sqlx::query("SELECT id, token FROM invitations WHERE length(token) <> 64")
        .fetch_all(tx.conn())
        .await?;
    let mut done = 0;
    for row in rows {
        let (id, token): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        done += sqlx::query("UPDATE invitations SET token = $1 WHERE id = $2")
            .bind(crate::auth::secret_hash(&token))
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(done)
}

/// The invitations to an organization within `reach`, newest first, with the organization.
pub async fn of_org(tx: &mut TenantTx, reach: &Reach, org_id: &str) -> Result<(Vec<Invitation>, OrgRow)> {
    let org = orgs::find_in_reach(tx, reach, org_id).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM invitations i WHERE i.tenant_id = $1 AND i.org_id = $2 ORDER BY i.created_at DESC, i.id DESC"
    );
    let rows = tx.query(&sql).bind(org.id.clone()).fetch_all(tx.conn()).await?;
    let invitations = rows.iter().map(Invitation::from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((invitations, org))
}

/// Withdraw an invitation within `reach`. Returns it before and after (the same when it was withdrawn
/// already), with its organization's name.
pub async fn revoke(tx: &mut TenantTx, reach: &Reach, id: &str) -> Result<(Invitation, Invitation, String)> {
    let (before, org_name) = find_in_reach(tx, reach, id).await?;
    let mut after = before.clone();
    if before.revoked_at.is_none() {
        let now = now_ms();
        tx.query("UPDATE invitations SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(id.to_owned())
            .bind(now)
            .execute(tx.conn())
            .await?;
        after.revoked_at = Some(now);
    }
    Ok((before, after, org_name))
}

/// The organization joined with an invitation.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AcceptOut {
    pub(crate) org_id: String,
    org_name: String,
    /// `false` when you were a member already (the invitation was not used).
    pub(crate) joined: bool,
    /// The invitation spent.
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) invitation_id: String,
}

/// Join the organization of an invitation with an existing account. An existing account was admitted to the
/// academy already: the invitation's hold, which is about admitting newcomers, does not apply to it.
pub async fn accept(
    tx: &mut TenantTx,
    settings: &crate::tenancy::TenantSettings,
    user_id: &str,
    token: &str,
) -> Result<AcceptOut> {
    let invitation = usable(tx, token).await?;
    if settings.signup == "closed" {
        return Err(Error::Closed);
    }
    let org = orgs::find(tx, &invitation.org_id)
        .await?
        .ok_or(Error::UnknownInvitation)?;
    let member = tx
        .query("SELECT 1 FROM memberships WHERE tenant_id = $1 AND user_id = $2 AND org_id = $3")
        .bind(user_id.to_owned())
        .bind(org.id.clone())
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    if !member {
        spend(tx, &invitation.id).await?;
        orgs::add_member(tx, &org, user_id).await?;
    }
    Ok(AcceptOut {
        org_id: org.id,
        org_name: org.name,
        joined: !member,
        invitation_id: invitation.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_wins_then_expiry_then_uses() {
        let mut i = Invitation {
            id: "i".into(),
            org_id: "o".into(),
            token: "t".into(),
            max_uses: Some(1),
            uses: 1,
            hold: false,
            expires_at: Some(10),
            revoked_at: None,
            created_by: None,
            created_at: 0,
        };
        assert_eq!(i.status(5), InvitationStatus::UsedUp);
        assert_eq!(i.status(10), InvitationStatus::Expired);
        i.revoked_at = Some(1);
        assert_eq!(i.status(5), InvitationStatus::Revoked);
        i.revoked_at = None;
        i.uses = 0;
        assert_eq!(i.status(5), InvitationStatus::Active);
    }
}
