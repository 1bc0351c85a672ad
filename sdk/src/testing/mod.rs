//! Unit-test plugin logic natively, without wasm: a [`FakeHost`] answers the host interfaces from data you
//! give it, in code or as a JSON fixture, and records what the plugin logged and stored.
//!
//! In a native build every host call (`log`, `config`, `kv`, `directory`, `records`) goes to the fake
//! installed on the current thread; with none installed it panics, naming what to do. Inside a wasm
//! component the same calls reach the real host, and this module does not exist.
//!
//! ```
//! use aula_sdk::testing::{FakeHost, FakeOrg, FakeUser};
//! use aula_sdk::{directory, log};
//!
//! let host = FakeHost::new()
//!     .org(FakeOrg::new("o-acme", "Acme"))
//!     .org(FakeOrg::new("o-sales", "Sales").parent("o-acme").external_id("S1"))
//!     .user(FakeUser::new("u1", "ann@acme.test").name("Ann").org("o-sales"))
//!     .config("due_in_days", 14)
//!     .install();
//!
//! // Code under test calls the host as it would inside a component.
//! let sales = directory::find_orgs("s1");
//! assert_eq!(sales[0].path, ["o-acme", "o-sales"]);
//! assert_eq!(aula_sdk::config::get::<u32>("due_in_days"), Some(14));
//! log::info("checked");
//!
//! assert_eq!(host.log_messages(), ["checked"]);
//! ```
//!
//! The same data as a fixture (every top-level key optional), which `aula plugin test --fixture` reads too:
//!
//! ```
//! # use aula_sdk::testing::FakeHost;
//! let host = FakeHost::from_json(r#"{
//!     "orgs": [{"id": "o-sales", "name": "Sales", "parent": null, "external_id": "S1"}],
//!     "users": [{"id": "u1", "email": "ann@acme.test", "name": "Ann", "locale": "de", "status": "active",
//!                "orgs": ["o-sales"], "tags": ["new"], "profile": {"region": "north", "age": 31},
//!                "external_id": null, "manager_id": null}],
//!     "tags": ["new"],
//!     "segments": [{"id": "s1", "name": "North", "members": ["u1"]}],
//!     "courses": [{"id": "c1", "code": "SAFE-101", "title": "Safety", "language": "en"}],
//!     "enrollments": [{"user": "u1", "course": "c1", "status": "completed", "due_at": null,
//!                      "completed_at": "2026-01-05T10:00:00.000Z", "progress": 100}],
//!     "config": {"due_in_days": 14}, "secrets": {"api_key": "x"}, "kv": {"seen": "1"}
//! }"#)?;
//! # Ok::<(), aula_sdk::testing::FixtureError>(())
//! ```

mod fixture;
mod host;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::Serialize;

pub use fixture::{FakeCourse, FakeEnrollment, FakeOrg, FakeSegment, FakeUser, FixtureError};

use crate::log::Level;

/// A stand-in for the Aula host in native tests: the academy's data, the plugin's settings, secrets and
/// key-value store, and the lines it logged.
///
/// It answers like the host does for a call that no user triggered (everything in the academy is visible):
/// lists in the order the WIT states, pages by cursor, organization filters that include the organizations
/// below. Build it with the chained methods or [`FakeHost::from_json`], then [`install`](FakeHost::install)
/// it on the test's thread.
#[derive(Clone, Debug, Default)]
pub struct FakeHost {
    orgs: Vec<FakeOrg>,
    users: Vec<FakeUser>,
    tags: Vec<String>,
    segments: Vec<FakeSegment>,
    courses: Vec<FakeCourse>,
    enrollments: Vec<FakeEnrollment>,
    config: BTreeMap<String, serde_json::Value>,
    secrets: BTreeMap<String, String>,
    kv: BTreeMap<String, Vec<u8>>,
    logs: Vec<LogLine>,
}

/// One line the plugin logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// How important the line is.
    pub level: Level,
    /// The text.
    pub message: String,
}

impl FakeHost {
    /// An academy with nothing in it.
    pub fn new() -> Self {
        FakeHost::default()
    }

    /// Adds an organization (replacing one with the same id).
    pub fn org(mut self, org: FakeOrg) -> Self {
        upsert(&mut self.orgs, org, |o| o.id.clone());
        self
    }

    /// Adds a user (replacing one with the same id).
    pub fn user(mut self, user: FakeUser) -> Self {
        upsert(&mut self.users, user, |u| u.id.clone());
        self
    }

    /// Adds a tag. Tags that users carry exist without being added.
    pub fn tag(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.tags.contains(&name) {
            self.tags.push(name);
        }
        self
    }

    /// Adds a segment (replacing one with the same id).
    pub fn segment(mut self, segment: FakeSegment) -> Self {
        upsert(&mut self.segments, segment, |s| s.id.clone());
        self
    }

    /// Adds a course (replacing one with the same id).
    pub fn course(mut self, course: FakeCourse) -> Self {
        upsert(&mut self.courses, course, |c| c.id.clone());
        self
    }

    /// Adds an enrollment (replacing the same user's enrollment in the same course).
    pub fn enrollment(mut self, enrollment: FakeEnrollment) -> Self {
        upsert(&mut self.enrollments, enrollment, |e| {
            (e.user.clone(), e.course.clone())
        });
        self
    }

    /// Sets the plugin setting `key`; the plugin reads it back as JSON, as from the host.
    ///
    /// # Panics
    /// When `value` cannot be represented as JSON (a map with non-string keys, say).
    pub fn config(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        let value = serde_json::to_value(value).unwrap_or_else(|e| panic!("config `{key}`: {e}"));
        self.config.insert(key, value);
        self
    }

    /// Sets the secret `key`.
    pub fn secret(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(key.into(), value.into());
        self
    }

    /// Stores `value` under `key` in the plugin's key-value store.
    pub fn kv(mut self, key: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.kv.insert(key.into(), value.as_ref().to_vec());
        self
    }

    /// The lines logged so far.
    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }

    /// The text of the lines logged so far.
    pub fn log_messages(&self) -> Vec<String> {
        self.logs.iter().map(|l| l.message.clone()).collect()
    }

    /// The plugin's key-value store.
    pub fn kv_entries(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.kv
    }

    /// The value stored under `key`, as text.
    pub fn kv_string(&self, key: &str) -> Option<String> {
        self.kv.get(key).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Makes this fake the host for every host call on the current thread until the returned guard is
    /// dropped (then the fake installed before, if any, is back).
    pub fn install(self) -> Installed {
        let previous = INSTALLED.with(|slot| slot.borrow_mut().replace(self));
        Installed {
            previous: Some(previous),
            _same_thread: PhantomData,
        }
    }

    /// Runs `f` with this fake installed, and returns its result.
    pub fn with<R>(self, f: impl FnOnce() -> R) -> R {
        let _installed = self.install();
        f()
    }
}

fn upsert<T, K: PartialEq>(items: &mut Vec<T>, item: T, key: impl Fn(&T) -> K) {
    let k = key(&item);
    match items.iter_mut().find(|i| key(i) == k) {
        Some(existing) => *existing = item,
        None => items.push(item),
    }
}

thread_local! {
    static INSTALLED: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
}

/// Runs `f` on the fake installed on this thread; every host call of a native build comes here.
pub(crate) fn with_installed<R>(f: impl FnOnce(&mut FakeHost) -> R) -> R {
    INSTALLED.with(|slot| {
        let mut slot = slot.borrow_mut();
        let host = slot.as_mut().unwrap_or_else(|| {
            panic!(
                "aula_sdk: a host function was called in a native build with no fake host installed; \
                 start the test with `let host = aula_sdk::testing::FakeHost::new().install();` \
                 (only a wasm component reaches the real host)"
            )
        });
        f(host)
    })
}

/// The guard [`FakeHost::install`] returns: the fake stays installed on this thread while it lives, and
/// it lets the test look at (and change) the fake meanwhile.
#[must_use = "the fake is uninstalled when the guard is dropped"]
#[derive(Debug)]
pub struct Installed {
    /// What was installed before, restored on drop; `None` once restored.
    previous: Option<Option<FakeHost>>,
    /// Host calls go to the fake of the thread that installed it.
    _same_thread: PhantomData<*const ()>,
}

impl Installed {
    /// The lines logged so far.
    pub fn logs(&self) -> Vec<LogLine> {
        with_installed(|h| h.logs.clone())
    }

    /// The text of the lines logged so far.
    pub fn log_messages(&self) -> Vec<String> {
        with_installed(|h| h.log_messages())
    }

    /// The plugin's key-value store as it is now.
    pub fn kv_entries(&self) -> BTreeMap<String, Vec<u8>> {
        with_installed(|h| h.kv.clone())
    }

    /// The value stored under `key` now, as text.
    pub fn kv_string(&self, key: &str) -> Option<String> {
        with_installed(|h| h.kv_string(key))
    }

    /// Changes the installed fake, e.g. to add a user between two hook calls.
    pub fn update(&self, f: impl FnOnce(FakeHost) -> FakeHost) {
        with_installed(|h| *h = f(std::mem::take(h)));
    }

    /// Uninstalls the fake and hands it back (with its logs and store).
    pub fn uninstall(mut self) -> FakeHost {
        self.restore().expect("the guard holds an installed fake until dropped")
    }

    fn restore(&mut self) -> Option<FakeHost> {
        let previous = self.previous.take()?;
        INSTALLED.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), previous))
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.restore();
    }
}
