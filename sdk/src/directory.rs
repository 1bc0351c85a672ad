//! Read-only view of the academy's people and structure (needs the `directory` capability).
//!
//! When a user triggered the call (a manager running a report, say), only what that user may see is
//! visible: anything else answers `None` or is left out of lists, exactly as if it did not exist.
//!
//! ```no_run
//! use aula_sdk::directory::{self, UserQuery};
//!
//! // Every user of the Sales organization and the organizations below it, across pages.
//! for sales in directory::find_orgs("Sales") {
//!     for user in directory::users(UserQuery::default().in_org(&sales.id)) {
//!         println!("{} <{}>", user.name, user.email);
//!     }
//! }
//! ```

use std::collections::VecDeque;

use crate::sys;
use crate::{Course, Org, Segment, Tag, User};

pub use crate::__bindings::host::aula::plugin::directory::{UserPage, UserQuery};

/// Users per page unless [`UserQuery::page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

impl Default for UserQuery {
    /// Every visible user, [`DEFAULT_PAGE_SIZE`] a page.
    fn default() -> Self {
        UserQuery {
            org_id: None,
            tag: None,
            segment_id: None,
            search: None,
            cursor: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

impl UserQuery {
    /// Only members of organization `org_id` or of any organization below it.
    pub fn in_org(mut self, org_id: impl Into<String>) -> Self {
        self.org_id = Some(org_id.into());
        self
    }

    /// Only users carrying the tag named `tag`.
    pub fn tagged(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only users matching segment `segment_id`.
    pub fn in_segment(mut self, segment_id: impl Into<String>) -> Self {
        self.segment_id = Some(segment_id.into());
        self
    }

    /// Only users whose e-mail or name contains `text`.
    pub fn matching(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// Users per page (1–500).
    pub fn page_size(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Start after a previous page (its `next`).
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// One user by id.
pub fn user(id: &str) -> Option<User> {
    sys::get_user(id)
}

/// One user by e-mail address (case-insensitive).
pub fn user_by_email(email: &str) -> Option<User> {
    sys::find_user_by_email(email)
}

/// Every user matching `query`, ordered by id, fetched a page at a time as the iterator advances.
pub fn users(query: UserQuery) -> Users {
    Users {
        query,
        buffer: VecDeque::new(),
        done: false,
    }
}

/// One page of users matching `query`; pass its `next` to [`UserQuery::after`] for the following page.
pub fn users_page(query: &UserQuery) -> UserPage {
    sys::list_users(query)
}

/// Iterator over every user matching a query, returned by [`users`].
#[derive(Debug)]
pub struct Users {
    query: UserQuery,
    buffer: VecDeque<User>,
    done: bool,
}

impl Iterator for Users {
    type Item = User;

    fn next(&mut self) -> Option<User> {
        loop {
            if let Some(user) = self.buffer.pop_front() {
                return Some(user);
            }
            if self.done {
                return None;
            }
            let page = sys::list_users(&self.query);
            // A cursor that does not move would repeat the same page for ever.
            self.done = page.next.is_none() || page.next == self.query.cursor;
            self.query.cursor = page.next;
            self.buffer = page.users.into();
        }
    }
}

/// One organization by id.
pub fn org(id: &str) -> Option<Org> {
    sys::get_org(id)
}

/// Children of `parent` (the top-level organizations when `None`), ordered by name.
pub fn orgs(parent: Option<&str>) -> Vec<Org> {
    sys::list_orgs(parent)
}

/// Every visible organization, depth-first from the top (each organization before its children, siblings
/// by name), fetched one level at a time as the iterator advances.
pub fn all_orgs() -> OrgWalk {
    OrgWalk::from_stack(orgs(None).into_iter().rev().collect())
}

/// The depth-first walk of [`all_orgs`], which can also start from any organization with
/// [`OrgWalk::resume_at`].
#[derive(Debug)]
pub struct OrgWalk {
    /// Organizations still to visit, the next one last.
    stack: Vec<Org>,
}

impl OrgWalk {
    fn from_stack(stack: Vec<Org>) -> Self {
        OrgWalk { stack }
    }

    /// The rest of the depth-first walk of [`all_orgs`] starting at organization `org_id` (inclusive): what
    /// a walk interrupted just before `org_id` would still visit. Lets a report page through the tree with
    /// the next organization's id as its cursor. Empty when `org_id` is not visible.
    pub fn resume_at(org_id: &str) -> Self {
        let Some(start) = org(org_id) else {
            return OrgWalk::from_stack(Vec::new());
        };
        // After `start` and its subtree, the walk continues with the later siblings of `start`, then those
        // of its parent, and so on up to the top level; the stack holds them innermost last.
        let mut stack = Vec::new();
        let mut parent: Option<&str> = None;
        for id in &start.path {
            let later: Vec<Org> = orgs(parent).into_iter().skip_while(|o| &o.id != id).skip(1).collect();
            stack.extend(later.into_iter().rev());
            parent = Some(id);
        }
        stack.push(start);
        OrgWalk::from_stack(stack)
    }
}

impl Iterator for OrgWalk {
    type Item = Org;

    fn next(&mut self) -> Option<Org> {
        let org = self.stack.pop()?;
        self.stack.extend(orgs(Some(&org.id)).into_iter().rev());
        Some(org)
    }
}

/// Every visible organization whose name or external id equals `key` (case-insensitive).
pub fn find_orgs(key: &str) -> Vec<Org> {
    sys::find_orgs(key)
}

/// Every tag of the academy, ordered by name.
pub fn tags() -> Vec<Tag> {
    sys::list_tags()
}

/// Every segment of the academy, ordered by name.
pub fn segments() -> Vec<Segment> {
    sys::list_segments()
}

/// Whether user `user_id` matches segment `segment_id` right now.
pub fn in_segment(user_id: &str, segment_id: &str) -> bool {
    sys::in_segment(user_id, segment_id)
}

/// One course by id.
pub fn course(id: &str) -> Option<Course> {
    sys::get_course(id)
}

/// Every course of the academy, ordered by code.
pub fn courses() -> Vec<Course> {
    sys::list_courses()
}

/// The course whose code is `code` (compared without regard to ASCII case).
pub fn course_by_code(code: &str) -> Option<Course> {
    courses().into_iter().find(|c| c.code.eq_ignore_ascii_case(code))
}
