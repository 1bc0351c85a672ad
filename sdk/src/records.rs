//! Read-only view of enrollments and progress (needs the `records` capability), limited like
//! [`directory`](crate::directory) to what the triggering user may see.
//!
//! ```no_run
//! use aula_sdk::records::{self, EnrollmentQuery};
//! use aula_sdk::EnrollmentStatus;
//!
//! let completed = records::enrollments(EnrollmentQuery::default().in_org("o-sales"))
//!     .filter(|e| e.status == EnrollmentStatus::Completed)
//!     .count();
//! ```

use std::collections::VecDeque;

use crate::Enrollment;
use crate::sys;

pub use crate::__bindings::host::aula::plugin::records::{EnrollmentPage, EnrollmentQuery};

/// Enrollments per page unless [`EnrollmentQuery::page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

impl Default for EnrollmentQuery {
    /// Every visible enrollment, [`DEFAULT_PAGE_SIZE`] a page.
    fn default() -> Self {
        EnrollmentQuery {
            user_id: None,
            course_id: None,
            org_id: None,
            cursor: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

impl EnrollmentQuery {
    /// Only enrollments of user `user_id`.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Only enrollments in course `course_id`.
    pub fn course(mut self, course_id: impl Into<String>) -> Self {
        self.course_id = Some(course_id.into());
        self
    }

    /// Only enrollments of members of organization `org_id` or of any organization below it.
    pub fn in_org(mut self, org_id: impl Into<String>) -> Self {
        self.org_id = Some(org_id.into());
        self
    }

    /// Enrollments per page (1–500).
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

/// Every enrollment matching `query`, ordered by user and course, fetched a page at a time as the iterator
/// advances.
pub fn enrollments(query: EnrollmentQuery) -> Enrollments {
    Enrollments {
        query,
        buffer: VecDeque::new(),
        done: false,
    }
}

/// One page of enrollments matching `query`; pass its `next` to [`EnrollmentQuery::after`] for the
/// following page.
pub fn enrollments_page(query: &EnrollmentQuery) -> EnrollmentPage {
    sys::list_enrollments(query)
}

/// Iterator over every enrollment matching a query, returned by [`enrollments`].
#[derive(Debug)]
pub struct Enrollments {
    query: EnrollmentQuery,
    buffer: VecDeque<Enrollment>,
    done: bool,
}

impl Iterator for Enrollments {
    type Item = Enrollment;

    fn next(&mut self) -> Option<Enrollment> {
        loop {
            if let Some(enrollment) = self.buffer.pop_front() {
                return Some(enrollment);
            }
            if self.done {
                return None;
            }
            let page = sys::list_enrollments(&self.query);
            // A cursor that does not move would repeat the same page for ever.
            self.done = page.next.is_none() || page.next == self.query.cursor;
            self.query.cursor = page.next;
            self.buffer = page.enrollments.into();
        }
    }
}
