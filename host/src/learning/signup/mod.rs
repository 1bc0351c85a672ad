//! Sign-up: who may create their own account in an academy, where they land, and whether they wait for
//! approval.
//!
//! - [`domains`]: the e-mail domains organizations claim, so that newcomers from them land there;
//! - [`invitations`]: invitation links to an organization, with use limits and expiry;
//! - [`place`] (here): where a sign-up lands under the academy's policy (`TenantSettings::signup`);
//! - [`workflow`]: the public sign-up itself, enrollment plugins included, all or nothing;
//! - [`approval`]: the queue of held sign-ups, approved or rejected by those who manage their place;
//! - [`seats`]: licence seats, taken at a user's first sign-in.

pub mod approval;
pub mod domains;
pub mod invitations;
pub mod seats;
pub mod workflow;

use crate::db::TenantTx;
use crate::directory::orgs::OrgRow;
use crate::error::ApiError;
use crate::tenancy::TenantSettings;
use invitations::{Invitation, InvitationStatus};

/// Why a sign-up (or the use of an invitation, or a sign-in's seat) is refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An invitation token that names nothing: a link that leads nowhere.
    #[error("this invitation link is not valid; check that it was copied whole, or ask for a new one")]
    UnknownInvitation,
    /// An invitation that cannot be used any more.
    #[error("{}", .0.refusal())]
    Invitation(InvitationStatus),
    /// The academy takes no sign-ups.
    #[error("this academy does not take sign-ups; ask its administrators for an account")]
    Closed,
    /// The academy takes sign-ups by invitation only.
    #[error("this academy takes sign-ups by invitation only; use the link you were sent")]
    InvitationRequired,
    /// The e-mail's domain is claimed by no organization and the academy is not open.
    #[error("this academy takes sign-ups from its organizations' e-mail domains only, or by invitation")]
    DomainNotAllowed,
    /// A public mail provider's domain cannot be claimed.
    #[error("{domain} is a public mail provider; anyone can have an address there, so it cannot be claimed")]
    PublicDomain {
        /// The field that named it.
        field: String,
        /// The domain.
        domain: String,
    },
    /// Every licence seat is taken.
    #[error("all {limit} licence seats of this academy are taken; ask its administrators to free or add seats")]
    SeatsExhausted {
        /// The academy's seats.
        limit: u32,
    },
    /// The e-mail has an account already (said no more plainly than the sign-in form would).
    #[error("this e-mail address cannot sign up here; if it already has an account, sign in instead")]
    EmailTaken,
    /// An enrollment plugin turned the sign-up away, with its reason.
    #[error("{0}")]
    Refused(String),
    /// The sign-up was decided already.
    #[error("{0}")]
    NotPending(String),
    /// An address-confirmation link that is unknown, used or expired.
    #[error("this confirmation link is not valid: it was used already or has expired; sign up again to get a new one")]
    VerificationInvalid,
    /// The directory refused something (a field, a member limit, an organization out of reach).
    #[error(transparent)]
    Directory(#[from] crate::directory::Error),
    /// The host's password hashing is at its bound for now.
    #[error(transparent)]
    Busy(#[from] crate::fair::Busy),
    /// The password could not be hashed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::auth::password::HashError> for Error {
    fn from(e: crate::auth::password::HashError) -> Error {
        match e {
            crate::auth::password::HashError::Busy(busy) => Error::Busy(busy),
            crate::auth::password::HashError::Failed(e) => Error::Internal(e),
        }
    }
}

/// Shorthand for sign-up results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Directory(e.into())
    }
}

impl From<crate::fields::FieldError> for Error {
    fn from(e: crate::fields::FieldError) -> Error {
        Error::Directory(e.into())
    }
}

impl Error {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Directory(crate::directory::Error::invalid(field, message))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let message = e.to_string();
        match e {
            Error::UnknownInvitation => ApiError::Missing {
                code: "invitation_invalid",
                message,
                field: Some("invitation".into()),
            },
            Error::Invitation(status) => ApiError::rule(status.code(), Some("invitation"), message),
            Error::Closed => ApiError::rule("signup_closed", None, message),
            Error::InvitationRequired => ApiError::rule("invitation_required", Some("invitation"), message),
            Error::DomainNotAllowed => ApiError::rule("domain_not_allowed", Some("email"), message),
            Error::PublicDomain { field, .. } => ApiError::Unprocessable {
                code: "public_domain",
                message,
                field: Some(field),
                details: None,
            },
            Error::SeatsExhausted { .. } => ApiError::Forbidden {
                code: "licence_seats_exhausted",
                message,
            },
            Error::EmailTaken => ApiError::duplicate("email", message),
            Error::Refused(reason) => ApiError::rule("signup_refused", None, reason),
            Error::NotPending(message) => ApiError::rule("signup_not_pending", None, message),
            Error::VerificationInvalid => ApiError::BadRequest {
                code: "verification_link_invalid",
                message,
                field: Some("token".into()),
            },
            Error::Directory(e) => e.into(),
            Error::Busy(busy) => busy.into(),
            Error::Internal(e) => ApiError::Internal(e),
        }
    }
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

/// Decide where a sign-up with this (checked) e-mail and optional invitation token lands under the academy's
/// policy, or why it may not sign up.
pub async fn place(
    tx: &mut TenantTx,
    settings: &TenantSettings,
    email: &str,
    invitation: Option<&str>,
) -> Result<Placement> {
    if settings.signup == "closed" {
        return Err(Error::Closed);
    }
    if let Some(token) = invitation {
        let invitation = invitations::usable(tx, token).await?;
        let org = crate::directory::orgs::find(tx, &invitation.org_id)
            .await?
            .ok_or(Error::UnknownInvitation)?;
        return Ok(Placement {
            via: Via::Invitation,
            hold: invitation.hold,
            org: Some(org),
            invitation: Some(invitation),
        });
    }
    if settings.signup == "invitation" {
        return Err(Error::InvitationRequired);
    }
    match domains::claimed(tx, domains::email_domain(email)).await? {
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
        None => Err(Error::DomainNotAllowed),
    }
}

/// Why a sign-up waits for approval, if it does.
pub fn hold_reason(
    placement: &Placement,
    settings: &TenantSettings,
    decision: &crate::learning::automation::Decision,
) -> Option<String> {
    use crate::learning::automation::Decision;
    match decision {
        Decision::Hold(reason) => Some(reason.clone()),
        _ if placement.hold && placement.invitation.is_some() => {
            Some("the invitation holds sign-ups for approval".to_owned())
        }
        _ if placement.hold => Some("the organization holds sign-ups from this domain for approval".to_owned()),
        _ if settings.signup_requires_approval => Some("the academy approves every sign-up".to_owned()),
        _ => None,
    }
}
