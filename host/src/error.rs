//! The one error type of the HTTP edge, and the one error shape every failure has:
//! `{"error": {"code": "…", "message": "…", "field": "…", "details": …}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a field is invalid.
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// 401: no valid credentials.
    #[error("authentication required")]
    Unauthenticated { code: &'static str, message: String },
    /// 403: authenticated, but not allowed.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404: no such thing — also for ids of other tenants and ids outside the caller's scope.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// 404 with a code of its own, for a thing a client names by a secret (an invitation link) and may want
    /// to tell apart.
    #[error("{message}")]
    Missing {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// 409: the change conflicts with what is stored.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// 405: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 415: the body is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 413: the body is too large.
    #[error("request body too large")]
    TooLarge,
    /// 422: well-formed, but a rule refuses it.
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        field: Option<String>,
        details: Option<Value>,
    },
    /// 429: too many attempts, or more at once than the academy's share.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    /// 503: the host is busy (a shared resource stayed full for longer than its wait bound).
    #[error("{message}")]
    Unavailable { message: String, retry_after_secs: u64 },
    /// 500: our fault; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A field failed validation.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// The caller lacks a permission.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            code: "forbidden",
            message: message.into(),
        }
    }

    /// A uniqueness conflict on a field.
    pub fn duplicate(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            code: "duplicate",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// A rule refused the change.
    pub fn rule(code: &'static str, field: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            code,
            message: message.into(),
            field: field.map(str::to_owned),
            details: None,
        }
    }

    fn parts(&self) -> (StatusCode, &str, String, Option<&str>, Option<&Value>) {
        match self {
            ApiError::BadRequest { code, message, field } => {
                (StatusCode::BAD_REQUEST, code, message.clone(), field.as_deref(), None)
            }
            ApiError::Unauthenticated { code, message } => {
                (StatusCode::UNAUTHORIZED, code, message.clone(), None, None)
            }
            ApiError::Forbidden { code, message } => (StatusCode::FORBIDDEN, code, message.clone(), None, None),
            ApiError::NotFound { what } => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
                None,
                None,
            ),
            ApiError::Missing { code, message, field } => {
                (StatusCode::NOT_FOUND, code, message.clone(), field.as_deref(), None)
            }
            ApiError::Conflict { code, message, field } => {
                (StatusCode::CONFLICT, code, message.clone(), field.as_deref(), None)
            }
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this address does not answer to this method; the OpenAPI document lists the ones it does".into(),
                None,
                None,
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json".into(),
                None,
                None,
            ),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the server accepts".into(),
                None,
                None,
            ),
            ApiError::Unprocessable {
                code,
                message,
                field,
                details,
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                message.clone(),
                field.as_deref(),
                details.as_ref(),
            ),
            ApiError::TooManyRequests { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                message.clone(),
                None,
                None,
            ),
            ApiError::Unavailable { message, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "busy", message.clone(), None, None)
            }
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong on our side; the request id identifies it in our logs".into(),
                None,
                None,
            ),
        }
    }
}

impl ApiError {
    /// `code: message` as a client may see it (internal errors say only that something went wrong, and are
    /// logged).
    pub fn public_message(&self) -> String {
        if let ApiError::Internal(err) = self {
            tracing::error!(error = ?err, "background work failed");
        }
        let (_, code, message, field, _) = self.parts();
        match field {
            Some(field) => format!("{code} ({field}): {message}"),
            None => format!("{code}: {message}"),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    /// Two outcomes of changes made at the same moment are the caller's to retry, not our fault: a row the
    /// change refers to was deleted meanwhile (a foreign key, e.g. an academy deleted while one of its
    /// requests ran), and on PostgreSQL a transaction that lost to a concurrent one (serialization failure,
    /// deadlock). Everything else is a 500.
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_foreign_key_violation() {
                // Logged: where no concurrent change explains it, it is a bug to find.
                tracing::warn!(error = %db, "a foreign key refused a change");
                return ApiError::Conflict {
                    code: "changed_meanwhile",
                    message: "something this change refers to, or that refers to it, changed meanwhile; reload and \
                              try again"
                        .into(),
                    field: None,
                };
            }
            if matches!(db.code().as_deref(), Some("40001" | "40P01")) {
                return ApiError::Unavailable {
                    message: "a change made at the same moment got in the way; try again".into(),
                    retry_after_secs: 1,
                };
            }
        }
        ApiError::Internal(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = ?err, "request failed");
        }
        let (status, code, message, field, details) = self.parts();
        let mut body = json!({ "code": code, "message": message });
        if let Some(field) = field {
            body["field"] = json!(field);
        }
        if let Some(details) = details {
            body["details"] = details.clone();
        }
        let mut response = (status, axum::Json(json!({ "error": body }))).into_response();
        if let ApiError::TooManyRequests { retry_after_secs, .. } | ApiError::Unavailable { retry_after_secs, .. } =
            &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}
