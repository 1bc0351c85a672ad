//! Notification plugins: rewrite or suppress the host's message drafts, and add messages on schedule ticks.
//!
//! - [`Notifications::on_notice`] sees each domain event (`enrolled`, `due-soon`, `overdue`, `completed`,
//!   `invited`, …) with the drafts the host would send, and keeps, replaces or suppresses them.
//! - [`Notifications::on_tick`] runs on the host's schedule and returns messages to send now.
//!
//! Both fail open: on an error or fault the drafts go out as they are and nothing is added.
//!
//! ```
//! use aula_sdk::notifications::{Message, Notice, Notifications, Outcome};
//!
//! struct QuietWeekends;
//!
//! impl Notifications for QuietWeekends {
//!     fn on_notice(notice: Notice, drafts: Vec<Message>) -> Result<Outcome, String> {
//!         Ok(match notice.get("weekend") {
//!             Some("true") => Outcome::Suppress,
//!             _ => Outcome::Keep,
//!         })
//!     }
//! }
//!
//! aula_sdk::register!(notifications: QuietWeekends);
//! ```

use std::marker::PhantomData;

use crate::__bindings::notifications::exports::aula::plugin::notification_hooks as hooks;

pub use hooks::{Message, Notice, Outcome};

/// A notification plugin. Register the implementing type with
/// [`register!`](crate::register)`(notifications: …)`.
pub trait Notifications {
    /// What to do with the drafts for one event. The default keeps them.
    fn on_notice(notice: Notice, drafts: Vec<Message>) -> Result<Outcome, String> {
        let _ = (notice, drafts);
        Ok(Outcome::Keep)
    }

    /// Messages to send at a schedule tick; `now` is RFC 3339. The default sends nothing.
    fn on_tick(now: String) -> Result<Vec<Message>, String> {
        let _ = now;
        Ok(Vec::new())
    }
}

impl Notice {
    /// The event data under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl Message {
    /// A plain-text message to `recipient_id`.
    pub fn text(
        recipient_id: impl Into<String>,
        locale: impl Into<String>,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Message {
            recipient_id: recipient_id.into(),
            locale: locale.into(),
            subject: subject.into(),
            body_text: body.into(),
            body_html: None,
        }
    }

    /// Adds an HTML body (sanitized by the host) next to the text one.
    pub fn html(mut self, body_html: impl Into<String>) -> Self {
        self.body_html = Some(body_html.into());
        self
    }
}

#[doc(hidden)]
pub struct __Export<T>(PhantomData<T>);

/// What [`register!`](crate::register) checks in native builds, where nothing is exported.
#[doc(hidden)]
pub const fn __check<T: Notifications>() {}

impl<T: Notifications> hooks::Guest for __Export<T> {
    fn on_notice(notice: Notice, drafts: Vec<Message>) -> Result<Outcome, String> {
        T::on_notice(notice, drafts)
    }

    fn on_tick(now: String) -> Result<Vec<Message>, String> {
        T::on_tick(now)
    }
}
