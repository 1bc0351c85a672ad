//! Enrollment plugins: decide sign-ups and act on users as they are created, changed or complete courses.
//!
//! - [`Enrollment::on_signup`] approves, holds or refuses a sign-up and lists [`Action`]s to apply once
//!   the user exists. It fails closed: on an error or fault the sign-up is held for an admin.
//! - [`Enrollment::on_events`] answers a batch of [`Event`]s (a bulk import arrives as one call) with one
//!   list of actions per event. It fails open: the changes stand and no action is taken.
//!
//! Every action is checked by the host within the academy and the scope of the trigger.
//!
//! ```
//! use aula_sdk::enrollment::{Action, Enrollment, Signup, SignupOutcome};
//!
//! struct StaffOnly;
//!
//! impl Enrollment for StaffOnly {
//!     fn on_signup(signup: Signup) -> Result<SignupOutcome, String> {
//!         Ok(match signup.email_domain().as_deref() {
//!             Some("acme.test") => SignupOutcome::approve().with(Action::AddTag("staff".into())),
//!             _ => SignupOutcome::hold("not a staff address"),
//!         })
//!     }
//! }
//!
//! aula_sdk::register!(enrollment: StaffOnly);
//! ```

use std::marker::PhantomData;

use crate::__bindings::enrollment::exports::aula::plugin::enrollment_hooks as hooks;
use crate::{FieldValue, User};

pub use hooks::{Action, Completion, Decision, Enroll, Event, Signup, SignupOutcome, UserChange};

/// An enrollment plugin. Register the implementing type with [`register!`](crate::register)`(enrollment: …)`.
pub trait Enrollment {
    /// Decides a sign-up. The default approves it with no actions.
    fn on_signup(signup: Signup) -> Result<SignupOutcome, String> {
        let _ = signup;
        Ok(SignupOutcome::default())
    }

    /// Actions for one event. The default takes none.
    fn on_event(event: Event) -> Result<Vec<Action>, String> {
        let _ = event;
        Ok(Vec::new())
    }

    /// Actions for a batch of events, one list per event in the same order. The default calls
    /// [`on_event`](Enrollment::on_event) for each; override it to share work (settings, lookups) across a
    /// batch. An error fails the whole batch.
    fn on_events(events: Vec<Event>) -> Result<Vec<Vec<Action>>, String> {
        events.into_iter().map(Self::on_event).collect()
    }
}

impl Default for SignupOutcome {
    /// Approve, with no actions.
    fn default() -> Self {
        SignupOutcome::approve()
    }
}

impl SignupOutcome {
    /// Approve the sign-up.
    pub fn approve() -> Self {
        SignupOutcome {
            decision: Decision::Approve,
            actions: Vec::new(),
        }
    }

    /// Keep the new user pending until an admin approves; `reason` is shown to the admin.
    pub fn hold(reason: impl Into<String>) -> Self {
        SignupOutcome {
            decision: Decision::Hold(reason.into()),
            actions: Vec::new(),
        }
    }

    /// Refuse the sign-up; `reason` is shown to the person signing up.
    pub fn refuse(reason: impl Into<String>) -> Self {
        SignupOutcome {
            decision: Decision::Refuse(reason.into()),
            actions: Vec::new(),
        }
    }

    /// Adds an action, applied once the user exists (after approval when held).
    pub fn with(mut self, action: Action) -> Self {
        self.actions.push(action);
        self
    }

    /// Adds several actions.
    pub fn with_all(mut self, actions: impl IntoIterator<Item = Action>) -> Self {
        self.actions.extend(actions);
        self
    }
}

impl Action {
    /// Enroll in course `course_id`, due `due_in_days` days from now when given.
    pub fn enroll(course_id: impl Into<String>, due_in_days: Option<u32>) -> Self {
        Action::Enroll(Enroll {
            course_id: course_id.into(),
            due_in_days,
        })
    }
}

impl Signup {
    /// The part of the e-mail address after the `@`, lowercased; `None` when there is no `@`.
    pub fn email_domain(&self) -> Option<String> {
        crate::types::email_domain(&self.email)
    }

    /// The value of profile field `key`, when given.
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        crate::types::field(&self.profile, key)
    }
}

impl Event {
    /// The user the event is about (as they are now, for a change).
    pub fn user(&self) -> &User {
        match self {
            Event::UserCreated(user) => user,
            Event::UserChanged(change) => &change.after,
            Event::CourseCompleted(completion) => &completion.user,
        }
    }
}

#[doc(hidden)]
pub struct __Export<T>(PhantomData<T>);

/// What [`register!`](crate::register) checks in native builds, where nothing is exported.
#[doc(hidden)]
pub const fn __check<T: Enrollment>() {}

impl<T: Enrollment> hooks::Guest for __Export<T> {
    fn on_signup(request: Signup) -> Result<SignupOutcome, String> {
        T::on_signup(request)
    }

    fn on_events(events: Vec<Event>) -> Result<Vec<Vec<Action>>, String> {
        T::on_events(events)
    }
}
