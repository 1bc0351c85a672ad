//! Sign-up: which e-mail domains an organization may claim, where a newcomer lands (invitation, claimed
//! domain or nowhere), invitations and their uses, and licence seats counted at first sign-in.
//!
//! The HTTP edge (`http/signup.rs`) checks input and scope; the functions here read and write inside the
//! caller's transaction so that a sign-up, its placement and the invitation use it spends commit together.

use crate::db::{Backend, TenantTx, now_ms};
use crate::directory::orgs::OrgRow;
use crate::error::{ApiError, ApiResult};
use crate::tenancy::TenantSettings;
use sqlx::Row;

/// Mail domains anyone can get an address at. Claiming one would hand an organization of the academy to
/// the whole internet, so they cannot be claimed.
pub const PUBLIC_DOMAINS: &[&str] = &[
    "163.com",
    "126.com",
    "aim.com",
    "aol.com",
    "fastmail.com",
    "gmail.com",
    "gmx.at",
    "gmx.ch",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hey.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.de",
    "hotmail.fr",
    "icloud.com",
    "laposte.net",
    "libero.it",
    "live.com",
    "live.de",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "naver.com",
    "orange.fr",
    "outlook.com",
    "outlook.de",
    "posteo.de",
    "pm.me",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "rambler.ru",
    "t-online.de",
    "tutanota.com",
    "web.de",
    "yahoo.co.jp",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.de",
    "yahoo.fr",
    "yandex.com",
    "yandex.ru",
    "ymail.com",
    "zoho.com",
];

/// Is this a public mail provider's domain?
pub fn is_public_domain(domain: &str) -> bool {
    PUBLIC_DOMAINS.contains(&domain)
}

/// A domain to claim, checked and lower-cased (a leading `@` is forgiven). Public mail domains are refused.
pub fn claimable_domain(field: &str, value: &str) -> ApiResult<String> {
    let domain = value.trim().trim_start_matches('@').to_ascii_lowercase();
    if !crate::tenancy::valid_domain(&domain) {
        return Err(ApiError::invalid(field, "must be a mail domain such as example.com"));
    }
    if is_public_domain(&domain) {
        return Err(ApiError::rule(
            "public_domain",
            Some(field),
            format!("{domain} is a public mail provider; anyone can have an address there, so it cannot be claimed"),
        ));
    }
    Ok(domain)
}

/// The domain part of a checked e-mail address.
pub fn email_domain(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
}

/// An invitation as stored.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    pub token: String,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub hold: bool,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Active,
    Expired,
    UsedUp,
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

    /// The refusal for using an invitation in this state (`None` when it can be used).
    pub fn refusal(self) -> Option<ApiError> {
        let (code, message) = match self {
            InvitationStatus::Active => return None,
            InvitationStatus::Expired => ("invitation_expired", "this invitation has expired; ask for a new one"),
            InvitationStatus::UsedUp => (
                "invitation_used_up",
                "this invitation has been used as often as it allows; ask for a new one",
            ),
            InvitationStatus::Revoked => (
                "invitation_revoked",
                "this invitation has been withdrawn; ask for a new one",
            ),
        };
        Some(ApiError::rule(code, Some("invitation"), message))
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
}

/// The `SELECT` list of [`Invitation`], for the table aliased `i`.
pub const INVITATION_COLUMNS: &str =
    "i.id, i.org_id, i.token, i.max_uses, i.uses, i.hold, i.expires_at, i.revoked_at, i.created_by, i.created_at";

/// Read an [`Invitation`] from a row selected with [`INVITATION_COLUMNS`].
pub fn invitation_from_row(row: &sqlx::any::AnyRow) -> Result<Invitation, sqlx::Error> {
    Ok(Invitation {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        token: row.try_get("token")?,
        max_uses: row.try_get("max_uses")?,
        uses: row.try_get("uses")?,
        hold: row.try_get::<i64, _>("hold")? != 0,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The invitation with this token, if any.
pub async fn invitation_by_token(tx: &mut TenantTx, token: &str) -> Result<Option<Invitation>, sqlx::Error> {
    let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations i WHERE i.tenant_id = $1 AND i.token = $2");
    tx.query(&sql)
        .bind(token.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .as_ref()
        .map(invitation_from_row)
        .transpose()
}

/// The invitation with this id, if any.
pub async fn invitation_by_id(tx: &mut TenantTx, id: &str) -> Result<Option<Invitation>, sqlx::Error> {
    let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations i WHERE i.tenant_id = $1 AND i.id = $2");
    tx.query(&sql)
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .as_ref()
        .map(invitation_from_row)
        .transpose()
}

/// The refusal for an invitation token that names nothing. Told apart from other refusals by the edge,
/// which answers it as 404 `invitation_invalid`.
pub fn unknown_invitation() -> ApiError {
    ApiError::NotFound {
        what: UNKNOWN_INVITATION,
    }
}

/// What [`unknown_invitation`] says is missing.
pub const UNKNOWN_INVITATION: &str = "invitation link";

/// Find a usable invitation by token, or the refusal that says why it cannot be used.
pub async fn usable_invitation(tx: &mut TenantTx, token: &str) -> ApiResult<Invitation> {
    let invitation = invitation_by_token(tx, token).await?.ok_or_else(unknown_invitation)?;
    match invitation.status(now_ms()).refusal() {
        Some(refusal) => Err(refusal),
        None => Ok(invitation),
    }
}

/// Spend one use of an invitation. The check and the increment are one statement, so concurrent sign-ups
/// cannot together pass `max_uses` (PostgreSQL re-checks the condition on the row it waited for; SQLite
/// writers are serialized). When nothing was updated, the refusal names what changed meanwhile.
pub async fn spend_invitation(tx: &mut TenantTx, id: &str) -> ApiResult<()> {
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
    let current = invitation_by_id(tx, id).await?.ok_or_else(unknown_invitation)?;
    Err(current
        .status(now)
        .refusal()
        .unwrap_or_else(|| InvitationStatus::UsedUp.refusal().expect("used up is a refusal")))
}

/// How someone came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Open,
    Domain,
    Invitation,
}

impl Via {
    /// Its name in `signups.via`.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Open => "open",
            Via::Domain => "domain",
            Via::Invitation => "invitation",
        }
    }
}

/// Where a sign-up lands, and whether the way in holds it for approval.
#[derive(Debug, Clone)]
pub struct Placement {
    pub via: Via,
    pub org: Option<OrgRow>,
    pub invitation: Option<Invitation>,
    /// The invitation or the claimed domain holds sign-ups for approval.
    pub hold: bool,
}

/// The organization that claimed this domain, and whether it holds sign-ups.
pub async fn claimed_domain(tx: &mut TenantTx, domain: &str) -> ApiResult<Option<(OrgRow, bool)>> {
    let row = tx
        .query("SELECT org_id, hold FROM org_domains WHERE tenant_id = $1 AND domain = $2")
        .bind(domain.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let org_id: String = row.try_get("org_id")?;
    let hold = row.try_get::<i64, _>("hold")? != 0;
    Ok(crate::directory::orgs::find(tx, &org_id).await?.map(|o| (o, hold)))
}

/// The refusal when the academy takes no sign-ups at all.
pub fn signup_closed() -> ApiError {
    ApiError::rule(
        "signup_closed",
        None,
        "this academy does not take sign-ups; ask its administrators for an account",
    )
}

/// Decide where a sign-up with this (checked) e-mail and optional invitation token lands under the academy's
/// policy, or why it may not sign up.
pub async fn place(
    tx: &mut TenantTx,
    settings: &TenantSettings,
    email: &str,
    invitation: Option<&str>,
) -> ApiResult<Placement> {
    if settings.signup == "closed" {
        return Err(signup_closed());
    }
    if let Some(token) = invitation {
        let invitation = usable_invitation(tx, token).await?;
        let org = crate::directory::orgs::find(tx, &invitation.org_id)
            .await?
            .ok_or_else(unknown_invitation)?;
        return Ok(Placement {
            via: Via::Invitation,
            hold: invitation.hold,
            org: Some(org),
            invitation: Some(invitation),
        });
    }
    if settings.signup == "invitation" {
        return Err(ApiError::rule(
            "invitation_required",
            Some("invitation"),
            "this academy takes sign-ups by invitation only; use the link you were sent",
        ));
    }
    match claimed_domain(tx, email_domain(email)).await? {
        Some((org, hold)) => Ok(Placement {
            via: Via::Domain,
            org: Some(org),
            invitation: None,
            hold,
        }),
        None if settings.signup == "open" => Ok(Placement {
            via: Via::Open,
            org: None,
            invitation: None,
            hold: false,
        }),
        None => Err(ApiError::rule(
            "domain_not_allowed",
            Some("email"),
            "this academy takes sign-ups from its organizations' e-mail domains only, or by invitation",
        )),
    }
}

/// Count a licence seat for a user signing in: the first sign-in of each user takes one, and none is taken
/// once `limit` users have signed in. Call inside the write transaction that records the sign-in; on SQLite
/// that transaction already holds the write lock, on PostgreSQL a transaction-scoped advisory lock on the
/// tenant queues concurrent first sign-ins, so two of them cannot both take the last seat.
pub async fn claim_seat(tx: &mut TenantTx, limit: Option<u32>, user_id: &str) -> ApiResult<()> {
    let Some(limit) = limit else { return Ok(()) };
    let first: Option<i64> = tx
        .query("SELECT first_login_at FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .flatten();
    if first.is_some() {
        return Ok(());
    }
    if tx.backend() == Backend::Postgres {
        // The two-key form keeps this lock apart from single-key advisory locks taken elsewhere.
        tx.query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(7301, hashtext($1))) AS seat_lock")
            .execute(tx.conn())
            .await?;
    }
    let taken: i64 = tx
        .query("SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND first_login_at IS NOT NULL")
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if taken >= i64::from(limit) {
        return Err(ApiError::Forbidden {
            code: "licence_seats_exhausted",
            message: format!(
                "all {limit} licence seats of this academy are taken; ask its administrators to free or add seats"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_and_public_ones_refused() {
        assert_eq!(
            claimable_domain("domain", " @Acme-Corp.COM ").ok().as_deref(),
            Some("acme-corp.com")
        );
        assert!(claimable_domain("domain", "gmail.com").is_err());
        assert!(claimable_domain("domain", "localhost").is_err());
        assert!(claimable_domain("domain", "a b.com").is_err());
        assert!(PUBLIC_DOMAINS.len() >= 40);
        assert_eq!(email_domain("ann@sub.acme.test"), "sub.acme.test");
    }

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
