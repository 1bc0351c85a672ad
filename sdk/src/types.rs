//! Helpers on the data types every interface shares.

use std::fmt;

use crate::{EnrollmentStatus, FieldValue, Org, ProfileField, User, UserStatus};

impl User {
    /// The value of profile field `key`, when set.
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        field(&self.profile, key)
    }

    /// Whether the user carries the tag named `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The part of the e-mail address after the `@`, lowercased.
    pub fn email_domain(&self) -> Option<String> {
        email_domain(&self.email)
    }

    /// The language part of the user's locale, lowercased (`de` for `de-CH`); `None` when the user has no
    /// locale of their own and gets the academy's default.
    pub fn language(&self) -> Option<String> {
        self.locale.as_deref().map(language)
    }
}

impl Org {
    /// Whether this organization is `org_id` or lies below it.
    pub fn is_within(&self, org_id: &str) -> bool {
        self.path.iter().any(|id| id == org_id)
    }
}

impl FieldValue {
    /// The text, date or choice as given; `None` for a number (which `to_string` writes as text).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Text(s) | FieldValue::Date(s) | FieldValue::Choice(s) => Some(s),
            FieldValue::Number(_) => None,
        }
    }

    /// The number, for a number field.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            FieldValue::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// Text, dates and choices as they are; whole numbers without a fraction (`31`, not `31.0`).
impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Text(s) | FieldValue::Date(s) | FieldValue::Choice(s) => f.write_str(s),
            FieldValue::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            FieldValue::Number(n) => write!(f, "{n}"),
        }
    }
}

impl ProfileField {
    /// A text field.
    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Self {
        ProfileField {
            key: key.into(),
            value: FieldValue::Text(value.into()),
        }
    }

    /// A number field.
    pub fn number(key: impl Into<String>, value: f64) -> Self {
        ProfileField {
            key: key.into(),
            value: FieldValue::Number(value),
        }
    }
}

impl UserStatus {
    /// The status as the WIT spells it: `active`, `pending`, `suspended` or `terminated`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Pending => "pending",
            UserStatus::Suspended => "suspended",
            UserStatus::Terminated => "terminated",
        }
    }

    /// The status named `name` (as [`as_str`](UserStatus::as_str) spells it).
    pub fn parse(name: &str) -> Option<Self> {
        [
            UserStatus::Active,
            UserStatus::Pending,
            UserStatus::Suspended,
            UserStatus::Terminated,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl EnrollmentStatus {
    /// The status as the WIT spells it: `enrolled`, `in-progress`, `completed` or `dropped`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentStatus::Enrolled => "enrolled",
            EnrollmentStatus::InProgress => "in-progress",
            EnrollmentStatus::Completed => "completed",
            EnrollmentStatus::Dropped => "dropped",
        }
    }

    /// The status named `name` (as [`as_str`](EnrollmentStatus::as_str) spells it).
    pub fn parse(name: &str) -> Option<Self> {
        [
            EnrollmentStatus::Enrolled,
            EnrollmentStatus::InProgress,
            EnrollmentStatus::Completed,
            EnrollmentStatus::Dropped,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

pub(crate) fn field<'a>(profile: &'a [ProfileField], key: &str) -> Option<&'a FieldValue> {
    profile.iter().find(|f| f.key == key).map(|f| &f.value)
}

pub(crate) fn email_domain(email: &str) -> Option<String> {
    email
        .rsplit_once('@')
        .map(|(_, domain)| domain.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

pub(crate) fn language(locale: &str) -> String {
    locale.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_display_without_a_needless_fraction() {
        assert_eq!(FieldValue::Number(31.0).to_string(), "31");
        assert_eq!(FieldValue::Number(2.5).to_string(), "2.5");
        assert_eq!(FieldValue::Choice("north".into()).to_string(), "north");
        assert_eq!(FieldValue::Date("2026-01-05".into()).as_str(), Some("2026-01-05"));
        assert_eq!(FieldValue::Number(1.0).as_str(), None);
    }

    #[test]
    fn domains_and_languages() {
        assert_eq!(email_domain("Ann@ACME.test").as_deref(), Some("acme.test"));
        assert_eq!(email_domain("nobody"), None);
        assert_eq!(language("de-CH"), "de");
        assert_eq!(language("FR"), "fr");
    }

    #[test]
    fn statuses_round_trip() {
        assert_eq!(UserStatus::parse("suspended"), Some(UserStatus::Suspended));
        assert_eq!(
            EnrollmentStatus::parse("in-progress"),
            Some(EnrollmentStatus::InProgress)
        );
        assert_eq!(EnrollmentStatus::parse("done"), None);
    }
}
