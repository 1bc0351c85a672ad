//! The records a [`FakeHost`] holds, shaped like the JSON fixture (and built the same way in code), and the
//! fixture reader with its checks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

use super::FakeHost;
use crate::{EnrollmentStatus, FieldValue, ProfileField, UserStatus};

/// An organization: `{"id", "name", "parent", "external_id"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeOrg {
    pub(super) id: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) parent: Option<String>,
    #[serde(default)]
    pub(super) external_id: Option<String>,
}

impl FakeOrg {
    /// A top-level organization.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        FakeOrg {
            id: id.into(),
            name: name.into(),
            parent: None,
            external_id: None,
        }
    }

    /// Places it below organization `parent_id`.
    pub fn parent(mut self, parent_id: impl Into<String>) -> Self {
        self.parent = Some(parent_id.into());
        self
    }

    /// Gives it an external id (from an HR system, say).
    pub fn external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }
}

/// A user: `{"id", "email", "name", "locale", "status", "orgs", "tags", "profile", "external_id",
/// "manager_id"}`; only `id` and `email` are required, `status` defaults to `active`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeUser {
    pub(super) id: String,
    pub(super) email: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) locale: Option<String>,
    #[serde(default = "active", deserialize_with = "user_status")]
    pub(super) status: UserStatus,
    #[serde(default)]
    pub(super) orgs: Vec<String>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    #[serde(default, deserialize_with = "profile")]
    pub(super) profile: Vec<ProfileField>,
    #[serde(default)]
    pub(super) external_id: Option<String>,
    #[serde(default)]
    pub(super) manager_id: Option<String>,
}

impl FakeUser {
    /// An active user with no name, organizations, tags or profile yet.
    pub fn new(id: impl Into<String>, email: impl Into<String>) -> Self {
        FakeUser {
            id: id.into(),
            email: email.into(),
            name: String::new(),
            locale: None,
            status: UserStatus::Active,
            orgs: Vec::new(),
            tags: Vec::new(),
            profile: Vec::new(),
            external_id: None,
            manager_id: None,
        }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the locale (a BCP 47 tag such as `de-CH`).
    pub fn locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = Some(locale.into());
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: UserStatus) -> Self {
        self.status = status;
        self
    }

    /// Makes the user a direct member of organization `org_id`.
    pub fn org(mut self, org_id: impl Into<String>) -> Self {
        self.orgs.push(org_id.into());
        self
    }

    /// Adds the tag named `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets a profile field.
    pub fn field(mut self, key: impl Into<String>, value: FieldValue) -> Self {
        let key = key.into();
        self.profile.retain(|f| f.key != key);
        self.profile.push(ProfileField { key, value });
        self
    }

    /// Sets the external id.
    pub fn external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// Sets the manager.
    pub fn manager(mut self, manager_id: impl Into<String>) -> Self {
        self.manager_id = Some(manager_id.into());
        self
    }
}

/// A segment with its members listed: `{"id", "name", "members"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeSegment {
    pub(super) id: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) members: Vec<String>,
}

impl FakeSegment {
    /// A segment whose members are the users `members` (the host evaluates a filter; the fake lists them).
    pub fn new<I, S>(id: impl Into<String>, name: impl Into<String>, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FakeSegment {
            id: id.into(),
            name: name.into(),
            members: members.into_iter().map(Into::into).collect(),
        }
    }
}

/// A course: `{"id", "code", "title", "language"}`; `language` defaults to `en`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeCourse {
    pub(super) id: String,
    pub(super) code: String,
    pub(super) title: String,
    #[serde(default = "english")]
    pub(super) language: String,
}

impl FakeCourse {
    /// A course in English.
    pub fn new(id: impl Into<String>, code: impl Into<String>, title: impl Into<String>) -> Self {
        FakeCourse {
            id: id.into(),
            code: code.into(),
            title: title.into(),
            language: english(),
        }
    }

    /// Sets the course's language.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = language.into();
        self
    }
}

/// An enrollment: `{"user", "course", "status", "due_at", "completed_at", "progress"}`; `status` defaults
/// to `enrolled`, `progress` (0–100) to 0.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeEnrollment {
    pub(super) user: String,
    pub(super) course: String,
    #[serde(default = "enrolled", deserialize_with = "enrollment_status")]
    pub(super) status: EnrollmentStatus,
    #[serde(default)]
    pub(super) due_at: Option<String>,
    #[serde(default)]
    pub(super) completed_at: Option<String>,
    #[serde(default)]
    pub(super) progress: u8,
}

impl FakeEnrollment {
    /// User `user_id` enrolled in course `course_id`, not started.
    pub fn new(user_id: impl Into<String>, course_id: impl Into<String>) -> Self {
        FakeEnrollment {
            user: user_id.into(),
            course: course_id.into(),
            status: EnrollmentStatus::Enrolled,
            due_at: None,
            completed_at: None,
            progress: 0,
        }
    }

    /// Sets the status.
    pub fn status(mut self, status: EnrollmentStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the progress in percent.
    pub fn progress(mut self, percent: u8) -> Self {
        self.progress = percent;
        self
    }

    /// Sets the due date (RFC 3339).
    pub fn due_at(mut self, due_at: impl Into<String>) -> Self {
        self.due_at = Some(due_at.into());
        self
    }

    /// Marks it completed at `completed_at` (RFC 3339), with full progress.
    pub fn completed_at(mut self, completed_at: impl Into<String>) -> Self {
        self.status = EnrollmentStatus::Completed;
        self.progress = 100;
        self.completed_at = Some(completed_at.into());
        self
    }
}

fn active() -> UserStatus {
    UserStatus::Active
}

fn enrolled() -> EnrollmentStatus {
    EnrollmentStatus::Enrolled
}

fn english() -> String {
    "en".to_owned()
}

fn user_status<'de, D: Deserializer<'de>>(d: D) -> Result<UserStatus, D::Error> {
    let name = String::deserialize(d)?;
    UserStatus::parse(&name).ok_or_else(|| {
        D::Error::custom(format!(
            "unknown user status `{name}` (active, pending, suspended or terminated)"
        ))
    })
}

fn enrollment_status<'de, D: Deserializer<'de>>(d: D) -> Result<EnrollmentStatus, D::Error> {
    let name = String::deserialize(d)?;
    EnrollmentStatus::parse(&name).ok_or_else(|| {
        D::Error::custom(format!(
            "unknown enrollment status `{name}` (enrolled, in-progress, completed or dropped)"
        ))
    })
}

/// `{"region": "north", "age": 31}`: strings become text fields, numbers number fields.
fn profile<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ProfileField>, D::Error> {
    let fields = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    fields
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(s) => FieldValue::Text(s),
                serde_json::Value::Number(n) => FieldValue::Number(n.as_f64().unwrap_or(f64::NAN)),
                other => {
                    return Err(D::Error::custom(format!(
                        "profile field `{key}`: {other} is neither a string nor a number"
                    )));
                }
            };
            Ok(ProfileField { key, value })
        })
        .collect()
}

/// The JSON fixture: every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[serde(default)]
    orgs: Vec<FakeOrg>,
    #[serde(default)]
    users: Vec<FakeUser>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    segments: Vec<FakeSegment>,
    #[serde(default)]
    courses: Vec<FakeCourse>,
    #[serde(default)]
    enrollments: Vec<FakeEnrollment>,
    #[serde(default)]
    config: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    kv: BTreeMap<String, String>,
}

/// A fixture that is not valid JSON of the fixture's shape, or whose records do not fit together.
#[derive(Debug)]
pub struct FixtureError(String);

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fixture: {}", self.0)
    }
}

impl std::error::Error for FixtureError {}

impl FakeHost {
    /// A fake holding the academy described by a JSON fixture (see the [module docs](super) for its shape),
    /// checked as by [`FakeHost::check`].
    pub fn from_json(json: &str) -> Result<Self, FixtureError> {
        let fixture: Fixture = serde_json::from_str(json).map_err(|e| FixtureError(e.to_string()))?;
        let mut host = FakeHost {
            orgs: fixture.orgs,
            users: fixture.users,
            tags: fixture.tags,
            segments: fixture.segments,
            courses: fixture.courses,
            enrollments: fixture.enrollments,
            config: fixture.config,
            secrets: fixture.secrets,
            kv: BTreeMap::new(),
            logs: Vec::new(),
        };
        host.kv = fixture.kv.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        host.check()?;
        Ok(host)
    }

    /// Checks that the records fit together as they would in an academy: ids unique, e-mail addresses unique
    /// (ignoring case), parents, organizations, members, managers, users and courses that exist, no cycle in
    /// the organization tree, progress at most 100.
    pub fn check(&self) -> Result<(), FixtureError> {
        let fail = |msg: String| Err(FixtureError(msg));
        let orgs = unique("orgs", self.orgs.iter().map(|o| o.id.as_str()))?;
        let users = unique("users", self.users.iter().map(|u| u.id.as_str()))?;
        unique("segments", self.segments.iter().map(|s| s.id.as_str()))?;
        let courses = unique("courses", self.courses.iter().map(|c| c.id.as_str()))?;
        let emails: Vec<String> = self.users.iter().map(|u| u.email.to_lowercase()).collect();
        unique("users (e-mail)", emails.iter().map(String::as_str))?;

        for (i, org) in self.orgs.iter().enumerate() {
            if let Some(parent) = &org.parent
                && !orgs.contains(parent.as_str())
            {
                return fail(format!("orgs[{i}].parent: no organization `{parent}`"));
            }
            // Walking up from any organization must reach the top within as many steps as there are orgs.
            let mut at = org.parent.as_deref();
            for _ in 0..=self.orgs.len() {
                at = self
                    .orgs
                    .iter()
                    .find(|o| Some(o.id.as_str()) == at)
                    .and_then(|o| o.parent.as_deref());
            }
            if at.is_some() {
                return fail(format!("orgs[{i}]: the organizations above `{}` form a cycle", org.id));
            }
        }
        for (i, user) in self.users.iter().enumerate() {
            if let Some(org) = user.orgs.iter().find(|o| !orgs.contains(o.as_str())) {
                return fail(format!("users[{i}].orgs: no organization `{org}`"));
            }
            if let Some(manager) = user.manager_id.as_ref().filter(|m| !users.contains(m.as_str())) {
                return fail(format!("users[{i}].manager_id: no user `{manager}`"));
            }
        }
        for (i, segment) in self.segments.iter().enumerate() {
            if let Some(member) = segment.members.iter().find(|m| !users.contains(m.as_str())) {
                return fail(format!("segments[{i}].members: no user `{member}`"));
            }
        }
        let mut pairs = BTreeSet::new();
        for (i, e) in self.enrollments.iter().enumerate() {
            if !users.contains(e.user.as_str()) {
                return fail(format!("enrollments[{i}].user: no user `{}`", e.user));
            }
            if !courses.contains(e.course.as_str()) {
                return fail(format!("enrollments[{i}].course: no course `{}`", e.course));
            }
            if e.progress > 100 {
                return fail(format!("enrollments[{i}].progress: {} is more than 100", e.progress));
            }
            if !pairs.insert((&e.user, &e.course)) {
                return fail(format!(
                    "enrollments[{i}]: `{}` is enrolled in `{}` twice",
                    e.user, e.course
                ));
            }
        }
        Ok(())
    }
}

fn unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>) -> Result<BTreeSet<&'a str>, FixtureError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(FixtureError(format!("{what}: `{id}` appears twice")));
        }
    }
    Ok(seen)
}
