//! The directory of an academy: its organization tree and memberships ([`orgs`]), its people ([`users`],
//! with their profile fields and the authority rule for account-wide changes) and its segments
//! ([`segments`]).
//!
//! Everything here works inside the caller's transaction and within a [`crate::scope::Reach`] the edge
//! computed; it answers with [`Error`], which says what went wrong in the directory's own words. The HTTP
//! edge maps it to a status; the learning core and the plugin host call the same functions.

pub mod accounts;
pub mod orgs;
pub mod profile;
pub mod segments;
pub mod users;

use crate::error::ApiError;
use crate::fields::FieldError;
use serde_json::json;

/// What the directory refuses, and why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such thing in this academy, or outside the caller's reach: the two look alike on purpose.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A field is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the request names it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A profile field the academy does not define.
    #[error("this academy has no profile field {key:?}")]
    UnknownProfileField {
        /// The key given.
        key: String,
    },
    /// A value that must be unique is taken.
    #[error("{field}: {message}")]
    Duplicate {
        /// The field.
        field: &'static str,
        /// Which rule of uniqueness.
        message: String,
    },
    /// A rule of the directory refuses the change (`org_cycle`, `org_is_root`, `self_lockout`, …).
    #[error("{message}")]
    Refused {
        /// The stable code clients branch on.
        code: &'static str,
        /// The field at fault, if one is.
        field: Option<&'static str>,
        /// Why.
        message: String,
    },
    /// Adding these people would take an organization (or an ancestor) over its member limit.
    #[error("{name} allows at most {limit} members and has {members}")]
    MemberLimit {
        /// The organization whose limit it is.
        org_id: String,
        /// Its name.
        name: String,
        /// The limit.
        limit: i64,
        /// Members it has now.
        members: i64,
    },
    /// An organization still has sub-organizations or members.
    #[error(
        "{name} has {children} sub-organizations and {members} members; move them first or delete with mode=reparent"
    )]
    NotEmpty {
        /// The organization.
        name: String,
        /// Its sub-organizations.
        children: i64,
        /// Its direct members.
        members: i64,
    },
    /// Segments still use what is being deleted; they would silently reach other people.
    #[error("{what} is used by the segments {}; change them first", segments.join(", "))]
    InUse {
        /// What is being deleted.
        what: String,
        /// The segments' names.
        segments: Vec<String>,
    },
    /// The caller's grants do not cover this change.
    #[error("{0}")]
    Forbidden(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Shorthand for directory results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A field is not acceptable.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A rule refuses the change.
    pub fn refused(code: &'static str, field: Option<&'static str>, message: impl Into<String>) -> Error {
        Error::Refused {
            code,
            field,
            message: message.into(),
        }
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Error {
        Error::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let message = e.to_string();
        match e {
            Error::NotFound(what) => ApiError::NotFound { what },
            Error::Invalid { field, message } => ApiError::invalid(field, message),
            Error::UnknownProfileField { key } => ApiError::BadRequest {
                code: "unknown_field",
                message,
                field: Some(format!("profile.{key}")),
            },
            Error::Duplicate { field, message } => ApiError::duplicate(field, message),
            Error::Refused { code, field, message } => ApiError::rule(code, field, message),
            Error::MemberLimit {
                org_id, limit, members, ..
            } => ApiError::Unprocessable {
                code: "member_limit_reached",
                message,
                field: None,
                details: Some(json!({"org_id": org_id, "member_limit": limit, "members": members})),
            },
            Error::NotEmpty { .. } => ApiError::Conflict {
                code: "org_not_empty",
                message,
                field: None,
            },
            Error::InUse { .. } => ApiError::Conflict {
                code: "in_use",
                message,
                field: None,
            },
            Error::Forbidden(message) => ApiError::forbidden(message),
            Error::Db(e) => e.into(),
        }
    }
}
