//! Checks of one input field: trimmed text of a bounded length, e-mail addresses, times. Each refusal names
//! the field. A leaf: the HTTP edge and the domain (tenant lifecycle, the directory) both use it.

/// A field that failed its check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field, as the request names it (`name`, `org_ids[2]`, `profile.department`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field and what is wrong with it.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<FieldError> for crate::error::ApiError {
    fn from(e: FieldError) -> crate::error::ApiError {
        crate::error::ApiError::invalid(e.field, e.message)
    }
}

/// Check a required text field: trimmed, not empty, at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(FieldError::new(field, format!("must have at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(v.to_owned())
}

/// Check an optional text field.
pub fn opt_text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, FieldError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => text(field, v, max).map(Some),
    }
}

/// Check an e-mail address (shape only; delivery proves the rest). Returns it lower-cased.
pub fn email(field: &str, value: &str) -> Result<String, FieldError> {
    let v = text(field, value, 254)?.to_lowercase();
    let ok = v.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    }) && !v.contains(char::is_whitespace)
        && v.matches('@').count() == 1;
    if !ok {
        return Err(FieldError::new(
            field,
            "must be an e-mail address such as ada@example.com",
        ));
    }
    Ok(v)
}

/// Deserialize a field that may be absent, `null` (clear it) or a value: `Option<Option<T>>`.
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

/// Read an RFC 3339 time from a request field, as unix milliseconds.
pub fn time_field(field: &str, v: &str) -> Result<i64, FieldError> {
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| FieldError::new(field, "must be an RFC 3339 time such as 2026-01-31T12:00:00Z"))
}

/// Read an optional RFC 3339 time from a request field, as unix milliseconds.
pub fn opt_time_field(field: &str, v: Option<&str>) -> Result<Option<i64>, FieldError> {
    v.map(|v| time_field(field, v)).transpose()
}
