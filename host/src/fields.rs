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

/// Check text that may span lines (a summary, a Markdown body, a mail template): line breaks and tabs are
/// fine, other control characters are not. Blank text is empty; trailing space is dropped.
pub fn long_text(field: &str, value: Option<&str>, max: usize) -> Result<String, FieldError> {
    let v = value.unwrap_or("");
    if v.trim().is_empty() {
        return Ok(String::new());
    }
    if v.chars().count() > max {
        return Err(FieldError::new(field, format!("must have at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(v.trim_end().to_owned())
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

/// The checks above as JSON Schema patterns (ECMA 262), so the OpenAPI document states what the server
/// enforces: request fields carry them with `#[schemars(regex(pattern = crate::fields::pattern::TEXT))]`.
/// A pattern may be a little stricter than its check (a schema counts the spaces [`text`] trims), never
/// looser.
pub mod pattern {
    /// [`super::text`]: something besides spaces, and no control characters.
    pub const TEXT: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
    /// [`super::opt_text`]: no control characters (blank text means none).
    pub const OPT_TEXT: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";
    /// Text that may span lines: no control characters but line breaks and tabs.
    pub const LONG_TEXT: &str = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$";
    /// Text that may span lines and must hold something besides spaces.
    pub const LONG_TEXT_REQUIRED: &str =
        r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$";
    /// [`super::email`]: one `@`, no spaces, a dot inside the domain.
    pub const EMAIL: &str = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s.\x00-\x1f\x7f-\x9f]$";
    /// An id: a UUID.
    pub const ID: &str = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
    /// A language tag as the tenancy's locale check takes it (`en`, `de-CH`).
    pub const LOCALE: &str = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$";
    /// A code of a course or program: ASCII letters, digits, `-` and `_`.
    pub const CODE: &str = r"^[A-Za-z0-9_-]+$";
    /// A key of a role or profile field: lower-case letters, digits and `_`.
    pub const KEY: &str = r"^[a-z][a-z0-9_]*$";
    /// An RFC 3339 time such as `2026-01-31T12:00:00Z`.
    pub const TIME: &str =
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pattern agrees with its check on the cases that tell them apart.
    #[test]
    fn patterns_agree_with_their_checks() {
        let re = |p: &str| regex::Regex::new(p).unwrap();
        for (value, ok) in [
            ("Ada", true),
            (" Ada ", true),
            ("  ", false),
            ("", false),
            ("a\u{7}b", false),
        ] {
            assert_eq!(re(pattern::TEXT).is_match(value), ok, "{value:?}");
            assert_eq!(text("f", value, 10).is_ok(), ok, "{value:?}");
        }
        for (value, ok) in [
            ("ada@example.com", true),
            ("a@b.c", true),
            ("a@b", false),
            ("a@.b", false),
            ("a@b.", false),
            ("a b@c.d", false),
            ("a@b@c.d", false),
            ("@b.c", false),
        ] {
            assert_eq!(re(pattern::EMAIL).is_match(value), ok, "{value:?}");
            assert_eq!(email("f", value).is_ok(), ok, "{value:?}");
        }
        for (value, ok) in [
            ("2026-01-31T12:00:00Z", true),
            ("2026-01-31T12:00:00.5+01:00", true),
            ("2026-01-31", false),
        ] {
            assert_eq!(re(pattern::TIME).is_match(value), ok, "{value:?}");
            assert_eq!(time_field("f", value).is_ok(), ok, "{value:?}");
        }
        assert!(re(pattern::LONG_TEXT).is_match("# T\n\n\tx"));
        assert!(!re(pattern::LONG_TEXT).is_match("a\u{0}b"));
    }
}
