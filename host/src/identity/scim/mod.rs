//! Provisioning over SCIM 2.0 (RFC 7643, RFC 7644): an academy's identity provider or HR system creates,
//! changes and deactivates its people, and keeps its groups (Aula's organizations) and their members, through
//! `/scim/v2` on the academy's own host.
//!
//! - A SCIM token ([`tokens`]) opens one academy's `/scim/v2` and nothing else. It acts with the authority of
//!   the admin who created it, as that authority stands at each request: users need `users.write`, groups
//!   `orgs.write` and `members.write`, over the whole academy.
//! - Every user of the academy is a SCIM User ([`users`]); every organization is a SCIM Group ([`groups`]).
//!   What SCIM says and Aula has a column for (the e-mail address, name, status, external id, language,
//!   manager, and the profile fields `department` and `employee_number` where the academy defines them)
//!   lands in that column, so rules, plugins and reports see it; the rest of what the client wrote is kept
//!   beside the account and given back as written.
//! - Deactivation (`active: false`) suspends the account; DELETE suspends it too and hides it from SCIM.
//!   Nothing a SCIM client does erases a person.
//! - PATCH ([`patch`]) works on the resource as SCIM shows it, and the result is written like a PUT, so both
//!   go through the same checks.

pub mod filter;
pub mod groups;
pub mod patch;
pub mod schema;
pub mod tokens;
pub mod users;

use crate::auth::Actor;
use crate::db::TenantDb;
use crate::scope::Grants;
use crate::tenancy::Tenant;
use serde_json::{Map, Value, json};

/// The core User schema.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension (employee number, department, manager, …).
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// A list answer.
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// A PATCH request.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// A search request (`POST …/.search`).
pub const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// An error answer.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Most resources in one page (`count` above it is lowered to it, as RFC 7644 §3.4.2.4 allows).
pub const MAX_RESULTS: i64 = 200;
/// Most operations in one PATCH request.
pub const MAX_OPERATIONS: usize = 100;
/// Most bytes of attributes kept for one resource beyond Aula's own columns.
pub const MAX_KEPT_BYTES: usize = 16 * 1024;

/// A refusal in SCIM's terms: the HTTP status, the `scimType` where RFC 7644 §3.12 names one, and what was
/// wrong, naming the attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    /// The HTTP status.
    pub status: u16,
    /// `invalidFilter`, `invalidPath`, `invalidValue`, `uniqueness`, `mutability`, `noTarget`, `invalidSyntax`, `tooMany`.
    pub scim_type: Option<&'static str>,
    /// What was wrong.
    pub detail: String,
}

impl ScimError {
    fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> ScimError {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidValue"), detail)
    }
    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidSyntax"), detail)
    }
    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidFilter"), detail)
    }
    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("invalidPath"), detail)
    }
    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("noTarget"), detail)
    }
    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("mutability"), detail)
    }
    /// 400 `tooMany`.
    pub fn too_many(detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some("tooMany"), detail)
    }
    /// 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> ScimError {
        ScimError::new(409, Some("uniqueness"), detail)
    }
    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> ScimError {
        ScimError::new(401, None, detail)
    }
    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> ScimError {
        ScimError::new(403, None, detail)
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> ScimError {
        ScimError::new(404, None, detail)
    }
    /// 412: the resource changed since the version the client named in `If-Match`.
    pub fn precondition(detail: impl Into<String>) -> ScimError {
        ScimError::new(412, None, detail)
    }
    /// 501.
    pub fn not_implemented(detail: impl Into<String>) -> ScimError {
        ScimError::new(501, None, detail)
    }
    /// Any status, no `scimType`.
    pub fn status(status: u16, detail: impl Into<String>) -> ScimError {
        ScimError::new(status, None, detail)
    }

    /// The error as SCIM's JSON.
    pub fn body(&self) -> Value {
        let mut body = json!({"schemas": [ERROR], "status": self.status.to_string(), "detail": self.detail});
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        body
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> ScimError {
        tracing::error!(error = %e, "SCIM request failed in the database");
        ScimError::status(500, "the request failed inside the server; nothing was changed")
    }
}

impl From<crate::directory::Error> for ScimError {
    fn from(e: crate::directory::Error) -> ScimError {
        use crate::directory::Error as E;
        match e {
            E::NotFound(what) => ScimError::not_found(format!("{what} not found")),
            E::Invalid { field, message } => ScimError::invalid_value(format!("{}: {message}", scim_name(&field))),
            E::UnknownProfileField { key } => {
                ScimError::invalid_value(format!("this academy has no profile field {key:?}"))
            }
            E::Duplicate { field, message } => ScimError::uniqueness(format!("{}: {message}", scim_name(field))),
            E::Forbidden(message) => ScimError::forbidden(message),
            E::Db(e) => e.into(),
            other => ScimError::invalid_value(other.to_string()),
        }
    }
}

/// The SCIM attribute that stands for an Aula field, for error messages.
fn scim_name(field: &str) -> &str {
    match field {
        "email" => "emails",
        "name" => "displayName",
        "external_id" => "externalId",
        "manager_id" => "manager",
        "locale" => "preferredLanguage",
        "status" => "active",
        other => other,
    }
}

/// The SCIM client of one request: the academy, its database, and the token's authority.
#[derive(Debug, Clone)]
pub struct Client {
    /// The academy.
    pub tenant: Tenant,
    /// Its database.
    pub db: TenantDb,
    /// The grants of the admin who created the token, as they stand now.
    pub grants: Grants,
    /// That admin's id.
    pub admin_id: String,
    /// Who the audit log names: the token (kind `scim`).
    pub actor: Actor,
    /// `https://academy…/scim/v2`, for `meta.location` and `$ref`.
    pub base: String,
}

/// A key of `obj` equal to `name` but for case (attribute names are case-insensitive in SCIM).
pub(crate) fn key_of(obj: &Map<String, Value>, name: &str) -> Option<String> {
    if obj.contains_key(name) {
        return Some(name.to_owned());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// The value of attribute `name` of `obj`, whatever its case.
pub(crate) fn get<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    key_of(obj, name).and_then(|k| obj.get(&k))
}

/// A text attribute: absent and `null` are `None`; anything but text is refused, naming the attribute.
pub(crate) fn text_of(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match get(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

/// A weak entity tag for a resource as shown (without `meta`): any change a client can see changes it.
pub fn version_of(resource: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut shown = resource.clone();
    if let Some(obj) = shown.as_object_mut() {
        obj.remove("meta");
    }
    let digest = Sha256::digest(shown.to_string().as_bytes());
    format!("W/\"{}\"", hex::encode(&digest[..12]))
}

pub(crate) use crate::db::rfc3339;

/// A resource with its `meta`: its type, creation and last change (unix milliseconds), location, and version.
pub(crate) fn with_meta(mut resource: Value, kind: &str, (created, modified): (i64, i64), location: String) -> Value {
    let version = version_of(&resource);
    resource["meta"] = json!({
        "resourceType": kind,
        "created": rfc3339(created),
        "lastModified": rfc3339(modified),
        "location": location,
        "version": version,
    });
    resource
}

/// A page of resources: 1-based `start_index`, at most `count` (itself at most [`MAX_RESULTS`]).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// 1-based index of the first resource.
    pub start_index: i64,
    /// How many at most.
    pub count: i64,
}

impl Window {
    /// The window `startIndex` and `count` ask for (RFC 7644 §3.4.2.4: a start below 1 is 1, a negative
    /// count is 0, a count above the maximum is the maximum).
    pub fn new(start_index: Option<i64>, count: Option<i64>) -> Window {
        Window {
            start_index: start_index.unwrap_or(1).max(1),
            count: count.unwrap_or(100).clamp(0, MAX_RESULTS),
        }
    }
}

/// A list answer.
pub fn list_response(total: i64, window: Window, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": window.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

impl From<crate::fields::FieldError> for ScimError {
    fn from(e: crate::fields::FieldError) -> ScimError {
        ScimError::invalid_value(format!("{}: {}", scim_name(&e.field), e.message))
    }
}

/// Refuse unless the client's `If-Match` names the resource's current version (RFC 7644 §3.14).
pub fn check_version(if_match: Option<&str>, current: &Value) -> Result<(), ScimError> {
    let Some(wanted) = if_match.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let version = version_of(current);
    let strip = |v: &str| v.trim().trim_start_matches("W/").to_owned();
    if wanted == "*" || wanted.split(',').any(|v| strip(v) == strip(&version)) {
        Ok(())
    } else {
        Err(ScimError::precondition(format!(
            "the resource changed: its version is now {version}; read it again"
        )))
    }
}

/// A resource with the attributes a client may send but not change taken out, for PATCH to work on.
pub(crate) fn writable(resource: &Value, read_only: &[&str]) -> Map<String, Value> {
    let mut obj = resource.as_object().cloned().unwrap_or_default();
    obj.retain(|k, _| !read_only.iter().any(|r| r.eq_ignore_ascii_case(k)));
    obj
}
