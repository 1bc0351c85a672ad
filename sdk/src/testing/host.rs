//! The host functions as the fake answers them, following what the WIT promises of the real host.

use std::cmp::Ordering;

use super::{FakeHost, LogLine};
use crate::directory::{UserPage, UserQuery};
use crate::log::Level;
use crate::records::{EnrollmentPage, EnrollmentQuery};
use crate::testing::fixture::{FakeOrg, FakeUser};
use crate::{Course, Enrollment, Org, Segment, Tag, User};

/// Limits the host applies, kept here so tests meet them before a deployment does.
const MAX_KEY_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 64 * 1024;
const MAX_PAGE: u32 = 500;
const MAX_LIST: usize = 1000;

impl FakeHost {
    pub(crate) fn log_write(&mut self, level: Level, message: &str) {
        // Shown when a test fails (the test harness captures it otherwise).
        eprintln!("plugin log [{level}] {message}");
        self.logs.push(LogLine {
            level,
            message: message.to_owned(),
        });
    }

    pub(crate) fn config_get(&self, key: &str) -> Option<String> {
        self.config.get(key).map(|v| v.to_string())
    }

    pub(crate) fn config_secret(&self, key: &str) -> Option<String> {
        self.secrets.get(key).cloned()
    }

    pub(crate) fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.kv.get(key).cloned()
    }

    pub(crate) fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        if key.len() > MAX_KEY_BYTES {
            return Err(format!("key is longer than {MAX_KEY_BYTES} bytes"));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!("value is larger than {MAX_VALUE_BYTES} bytes"));
        }
        self.kv.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    pub(crate) fn kv_delete(&mut self, key: &str) {
        self.kv.remove(key);
    }

    pub(crate) fn kv_keys(&self, prefix: &str, limit: u32) -> Vec<String> {
        self.kv
            .range(prefix.to_owned()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .take(limit as usize)
            .cloned()
            .collect()
    }

    pub(crate) fn get_user(&self, id: &str) -> Option<User> {
        self.users.iter().find(|u| u.id == id).map(|u| self.user_record(u))
    }

    pub(crate) fn find_user_by_email(&self, email: &str) -> Option<User> {
        let email = email.to_lowercase();
        self.users
            .iter()
            .find(|u| u.email.to_lowercase() == email)
            .map(|u| self.user_record(u))
    }

    pub(crate) fn list_users(&self, query: &UserQuery) -> UserPage {
        let search = query.search.as_ref().map(|s| s.to_lowercase());
        let mut users: Vec<&FakeUser> = self
            .users
            .iter()
            .filter(|u| query.cursor.as_ref().is_none_or(|after| u.id > *after))
            .filter(|u| query.org_id.as_ref().is_none_or(|org| self.is_member_within(u, org)))
            .filter(|u| query.tag.as_ref().is_none_or(|tag| u.tags.contains(tag)))
            .filter(|u| query.segment_id.as_ref().is_none_or(|s| self.is_in_segment(&u.id, s)))
            .filter(|u| {
                search
                    .as_ref()
                    .is_none_or(|s| u.email.to_lowercase().contains(s) || u.name.to_lowercase().contains(s))
            })
            .collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        let (users, next) = page(users, query.limit, |u| u.id.clone());
        UserPage {
            users: users.into_iter().map(|u| self.user_record(u)).collect(),
            next,
        }
    }

    pub(crate) fn get_org(&self, id: &str) -> Option<Org> {
        self.orgs.iter().find(|o| o.id == id).map(|o| self.org_record(o))
    }

    pub(crate) fn list_orgs(&self, parent: Option<&str>) -> Vec<Org> {
        let children = self.orgs.iter().filter(|o| o.parent.as_deref() == parent);
        self.sorted_orgs(children)
    }

    pub(crate) fn find_orgs(&self, key: &str) -> Vec<Org> {
        let key = key.to_lowercase();
        let found = self.orgs.iter().filter(|o| {
            o.name.to_lowercase() == key || o.external_id.as_ref().is_some_and(|x| x.to_lowercase() == key)
        });
        self.sorted_orgs(found)
    }

    pub(crate) fn list_tags(&self) -> Vec<Tag> {
        let mut names: Vec<&String> = self
            .tags
            .iter()
            .chain(self.users.iter().flat_map(|u| &u.tags))
            .collect();
        names.sort_by(|a, b| by_name(a, b));
        names.dedup();
        // The fake has no separate tag ids: a tag's id is its name.
        names
            .into_iter()
            .map(|name| Tag {
                id: name.clone(),
                name: name.clone(),
            })
            .collect()
    }

    pub(crate) fn list_segments(&self) -> Vec<Segment> {
        let mut segments: Vec<Segment> = self
            .segments
            .iter()
            .map(|s| Segment {
                id: s.id.clone(),
                name: s.name.clone(),
            })
            .collect();
        segments.sort_by(|a, b| by_name(&a.name, &b.name).then_with(|| a.id.cmp(&b.id)));
        segments
    }

    pub(crate) fn in_segment(&self, user_id: &str, segment_id: &str) -> bool {
        self.is_in_segment(user_id, segment_id)
    }

    pub(crate) fn get_course(&self, id: &str) -> Option<Course> {
        self.courses.iter().find(|c| c.id == id).map(|c| Course {
            id: c.id.clone(),
            code: c.code.clone(),
            title: c.title.clone(),
            language: c.language.clone(),
        })
    }

    pub(crate) fn list_courses(&self) -> Vec<Course> {
        let mut courses: Vec<Course> = self.courses.iter().filter_map(|c| self.get_course(&c.id)).collect();
        courses.sort_by(|a, b| a.code.cmp(&b.code).then_with(|| a.id.cmp(&b.id)));
        courses.truncate(MAX_LIST);
        courses
    }

    pub(crate) fn list_enrollments(&self, query: &EnrollmentQuery) -> EnrollmentPage {
        // The cursor is the last (user, course) pair of the previous page, as a JSON array; one that does not
        // parse yields an empty page, as a stale cursor would.
        let after: Option<(String, String)> = match &query.cursor {
            None => None,
            Some(cursor) => match serde_json::from_str(cursor) {
                Ok(pair) => Some(pair),
                Err(_) => {
                    return EnrollmentPage {
                        enrollments: Vec::new(),
                        next: None,
                    };
                }
            },
        };
        let mut enrollments: Vec<_> = self
            .enrollments
            .iter()
            .filter(|e| {
                after
                    .as_ref()
                    .is_none_or(|(u, c)| (e.user.as_str(), e.course.as_str()) > (u.as_str(), c.as_str()))
            })
            .filter(|e| query.user_id.as_ref().is_none_or(|u| e.user == *u))
            .filter(|e| query.course_id.as_ref().is_none_or(|c| e.course == *c))
            .filter(|e| {
                query.org_id.as_ref().is_none_or(|org| {
                    self.users
                        .iter()
                        .find(|u| u.id == e.user)
                        .is_some_and(|u| self.is_member_within(u, org))
                })
            })
            .collect();
        enrollments.sort_by(|a, b| (&a.user, &a.course).cmp(&(&b.user, &b.course)));
        let (enrollments, next) = page(enrollments, query.limit, |e| {
            serde_json::to_string(&(&e.user, &e.course)).unwrap_or_default()
        });
        EnrollmentPage {
            enrollments: enrollments
                .into_iter()
                .map(|e| Enrollment {
                    user_id: e.user.clone(),
                    course_id: e.course.clone(),
                    status: e.status,
                    due_at: e.due_at.clone(),
                    completed_at: e.completed_at.clone(),
                    progress_percent: e.progress,
                })
                .collect(),
            next,
        }
    }

    /// Ids from the top-level organization down to `id` (inclusive).
    fn org_path(&self, id: &str) -> Vec<String> {
        let mut path = vec![id.to_owned()];
        let mut at = self.orgs.iter().find(|o| o.id == id);
        while let Some(parent) = at.and_then(|o| o.parent.as_ref()) {
            if path.contains(parent) || path.len() > self.orgs.len() {
                break; // a cycle; `check` reports it
            }
            path.push(parent.clone());
            at = self.orgs.iter().find(|o| o.id == *parent);
        }
        path.reverse();
        path
    }

    fn org_record(&self, org: &FakeOrg) -> Org {
        Org {
            id: org.id.clone(),
            parent_id: org.parent.clone(),
            name: org.name.clone(),
            path: self.org_path(&org.id),
            external_id: org.external_id.clone(),
            member_limit: None,
        }
    }

    fn sorted_orgs<'a>(&self, orgs: impl Iterator<Item = &'a FakeOrg>) -> Vec<Org> {
        let mut orgs: Vec<&FakeOrg> = orgs.collect();
        orgs.sort_by(|a, b| by_name(&a.name, &b.name).then_with(|| a.id.cmp(&b.id)));
        orgs.truncate(MAX_LIST);
        orgs.into_iter().map(|o| self.org_record(o)).collect()
    }

    fn user_record(&self, user: &FakeUser) -> User {
        User {
            id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            locale: user.locale.clone(),
            status: user.status,
            external_id: user.external_id.clone(),
            manager_id: user.manager_id.clone(),
            org_ids: user.orgs.clone(),
            tags: user.tags.clone(),
            profile: user.profile.clone(),
        }
    }

    /// Whether `user` is a member of `org_id` or of an organization below it.
    fn is_member_within(&self, user: &FakeUser, org_id: &str) -> bool {
        user.orgs.iter().any(|o| self.org_path(o).iter().any(|p| p == org_id))
    }

    fn is_in_segment(&self, user_id: &str, segment_id: &str) -> bool {
        self.segments
            .iter()
            .any(|s| s.id == segment_id && s.members.iter().any(|m| m == user_id))
    }
}

/// Names ordered as a person reads them: ignoring case first, then exactly.
fn by_name(a: &str, b: &str) -> Ordering {
    a.to_lowercase().cmp(&b.to_lowercase()).then_with(|| a.cmp(b))
}

/// The first page of `items` (already filtered past the cursor and sorted): at most `limit` (1–500) items,
/// and the cursor of the next page when more remain.
fn page<T>(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let limit = limit.clamp(1, MAX_PAGE) as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(cursor_of) } else { None };
    (items, next)
}
