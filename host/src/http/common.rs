//! What every resource module uses: the JSON body extractor with precise errors, query parsing,
//! pagination, and field checks.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A JSON body. Malformed JSON, unknown fields, wrong types and oversized bodies become precise 4xx errors.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || (v.starts_with("application/") && v.ends_with("+json")));
        if !json_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::TooLarge),
            Err(e) => {
                return Err(ApiError::BadRequest {
                    code: "bad_body",
                    message: e.body_text(),
                    field: None,
                });
            }
        };
        // Every request body of the API is one JSON object: serde would also read a struct from an array of
        // its fields in order, which no client means.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::BadRequest {
                code: "malformed_json",
                message: "the body must be one JSON object".into(),
                field: None,
            });
        }
        // No text the API stores may hold a NUL character (PostgreSQL cannot, and no client means one). The
        // scan of the raw bytes is a cheap filter; the parsed value says which field holds one, if any does.
        if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
            && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(field) = nul_in(&value)
        {
            return Err(ApiError::BadRequest {
                code: "invalid_field",
                message: format!(
                    "{} must not contain the NUL character (\\u0000)",
                    if field.is_empty() { "the body" } else { &field }
                ),
                field: (!field.is_empty()).then_some(field),
            });
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

/// Where in `value` a string (or a key) holds a NUL character, as a path (`a.b[2]`; empty: the value itself).
fn nul_in(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item).map(|rest| format!("[{i}]{}", continued(rest)))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(String::new());
            }
            nul_in(item).map(|rest| format!("{key}{}", continued(rest)))
        }),
        _ => None,
    }
}

/// The rest of a path after a step: `.b` for `b`, `[2]` as it is.
fn continued(rest: String) -> String {
    if rest.is_empty() || rest.starts_with('[') {
        rest
    } else {
        format!(".{rest}")
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde names the path and the problem: "users[2].email: unknown field `x`, expected …"
            let text = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text());
            let (field, message) = match text.split_once(": ") {
                Some((path, msg)) if !path.contains(' ') => (Some(path.to_owned()), msg.to_owned()),
                _ => (None, text.clone()),
            };
            // The path of an unknown field already ends with the field; a missing field's path is its parent's.
            let join = |path: Option<String>, name: String| match path {
                Some(p) if p == name || p.ends_with(&format!(".{name}")) => p,
                Some(p) if p != "." => format!("{p}.{name}"),
                _ => name,
            };
            let (code, field) = if let Some(name) = message.strip_prefix("unknown field `") {
                let name = name.split('`').next().unwrap_or_default().to_owned();
                ("unknown_field", Some(join(field, name)))
            } else if let Some(name) = message.strip_prefix("missing field `") {
                let name = name.split('`').next().unwrap_or_default().to_owned();
                ("missing_field", Some(join(field, name)))
            } else {
                ("invalid_field", field.filter(|f| f != "."))
            };
            ApiError::BadRequest { code, message, field }
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
            code: "malformed_json",
            message: format!(
                "the body is not valid JSON: {}",
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
            ),
            field: None,
        },
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge
        }
        other => ApiError::BadRequest {
            code: "bad_body",
            message: other.body_text(),
            field: None,
        },
    }
}

/// Path parameters, with the same error shape as bodies (a malformed segment is a 400 naming it).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Ids are UUIDs: anything else names nothing (404, as an id of another academy does), and never reaches
        // the database as text it cannot hold. No other part of a path may hold a control character.
        if let Ok(params) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            for (name, value) in &params {
                if value.chars().any(char::is_control) {
                    return Err(ApiError::BadRequest {
                        code: "invalid_path",
                        message: format!("{name} must not contain control characters"),
                        field: Some(name.to_owned()),
                    });
                }
                if (name == "id" || name.ends_with("_id")) && uuid::Uuid::parse_str(value).is_err() {
                    return Err(ApiError::NotFound { what: "id" });
                }
            }
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => Err(ApiError::BadRequest {
                code: "invalid_path",
                message: rejection.body_text(),
                field: None,
            }),
        }
    }
}

/// Query parameters, with the same error shape as bodies.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(query) = parts.uri.query()
            && form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::BadRequest {
                code: "invalid_parameter",
                message: "query parameters must not contain the NUL character".into(),
                field: None,
            });
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let text = e.body_text();
                let message = text
                    .trim_start_matches("Failed to deserialize query string: ")
                    .to_owned();
                // serde names the parameter first: "colour: unknown field `colour`, …", "limit: invalid digit …".
                let (param, rest) = match message.split_once(": ") {
                    Some((p, rest)) if !p.is_empty() && !p.contains(' ') => (Some(p.to_owned()), rest),
                    _ => (None, message.as_str()),
                };
                let unknown = rest
                    .strip_prefix("unknown field `")
                    .map(|n| n.split('`').next().unwrap_or_default().to_owned());
                Err(ApiError::BadRequest {
                    code: if unknown.is_some() {
                        "unknown_parameter"
                    } else {
                        "invalid_parameter"
                    },
                    field: unknown.or(param),
                    message,
                })
            }
            Err(other) => Err(ApiError::BadRequest {
                code: "invalid_parameter",
                message: other.body_text(),
                field: None,
            }),
        }
    }
}

/// Pagination parameters shared by every list.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageParams {
    /// 1–500, default 50.
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// The limit, checked.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=500).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid("limit", "must be between 1 and 500")),
        }
    }
}

/// One page of a list, in a stable order, with a link to the next page.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
    /// The URL of the next page, if there is one.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Build a page from up to `limit + 1` fetched rows (the extra row only says there is more);
    /// `key` gives the cursor of an item.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, uri: &axum::http::Uri, key: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        Page::new(rows, more, uri, key)
    }

    /// Build a page from items already cut to the limit.
    pub fn new(items: Vec<T>, more: bool, uri: &axum::http::Uri, key: impl Fn(&T) -> String) -> Page<T> {
        let next_cursor = if more { items.last().map(&key) } else { None };
        let next = next_cursor.as_ref().map(|c| next_link(uri, c));
        Page {
            items,
            next_cursor,
            next,
        }
    }
}

fn next_link(uri: &axum::http::Uri, cursor: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(query) = uri.query() {
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if k != "cursor" {
                q.append_pair(&k, &v);
            }
        }
    }
    q.append_pair("cursor", cursor);
    format!("{}?{}", uri.path(), q.finish())
}

pub use crate::fields::{double_option, email, opt_text, text, time_field};

/// The academy of a public request's host (sign-in, sign-up, password reset): 404 for a host that names no
/// academy, `tenant_host_required` on the platform's own host, 403 for a suspended academy. `doing` completes
/// "… on your academy's address" (e.g. "sign in").
pub fn public_academy(host: crate::tenancy::HostTenant, doing: &str) -> Result<crate::tenancy::Tenant, ApiError> {
    use crate::tenancy::HostTenant;
    let tenant = match host {
        HostTenant::Tenant(t) => *t,
        HostTenant::Unknown => return Err(ApiError::NotFound { what: "academy" }),
        HostTenant::Platform => {
            return Err(ApiError::rule(
                "tenant_host_required",
                None,
                format!("{doing} on your academy's address"),
            ));
        }
    };
    if tenant.suspended() {
        return Err(ApiError::Forbidden {
            code: "tenant_suspended",
            message: "this academy is suspended".into(),
        });
    }
    Ok(tenant)
}

/// The context in which the academy's rules and enrollment plugins act on a caller's change: the caller, and
/// what they reach with `users.write` (plugin actions outside it are refused).
pub fn rules_context(caller: &crate::auth::Caller) -> crate::learning::automation::Context {
    crate::learning::automation::Context::person(
        caller.actor(),
        &caller.user_id,
        caller.grants.reach(crate::scope::Permission::UsersWrite),
    )
}

/// An uploaded body (an archive, a CSV file), or the error for one that was too large (`413`) or could not be
/// read.
pub fn upload(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    match body {
        Ok(b) => Ok(b),
        Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge),
        Err(e) => Err(ApiError::BadRequest {
            code: "bad_body",
            message: e.body_text(),
            field: None,
        }),
    }
}
