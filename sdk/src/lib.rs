//! The guest SDK for Aula plugins.
//!
//! An Aula plugin is a WebAssembly component of one kind — branding, enrollment, notifications or
//! reports — that an academy's admin uploads and the host runs in a sandbox. This crate is all a plugin
//! depends on: a trait per kind ([`branding::Branding`], [`enrollment::Enrollment`],
//! [`notifications::Notifications`], [`reports::Reports`]), one [`register!`] macro that makes a type the
//! component's implementation, typed access to what the host offers ([`log`], [`config`], [`kv`],
//! [`directory`], [`records`]) and, in native builds, a fake host for unit tests ([`testing`]).
//!
//! A whole enrollment plugin that tags sign-ups from one domain:
//!
//! ```
//! use aula_sdk::enrollment::{Action, Enrollment, Signup, SignupOutcome};
//! use aula_sdk::{config, log};
//!
//! pub struct PartnerTag;
//!
//! impl Enrollment for PartnerTag {
//!     fn on_signup(signup: Signup) -> Result<SignupOutcome, String> {
//!         let partner: String = config::get("partner_domain").unwrap_or_default();
//!         if signup.email_domain() != Some(partner) {
//!             return Ok(SignupOutcome::approve());
//!         }
//!         log::info(format_args!("tagging {} as partner", signup.email));
//!         Ok(SignupOutcome::approve().with(Action::AddTag("partner".into())))
//!     }
//! }
//!
//! aula_sdk::register!(enrollment: PartnerTag);
//!
//! // A native unit test of the same logic:
//! use aula_sdk::testing::FakeHost;
//!
//! let host = FakeHost::new().config("partner_domain", "globex.test").install();
//! let signup = Signup {
//!     email: "di@globex.test".into(),
//!     name: "Di".into(),
//!     locale: None,
//!     profile: vec![],
//!     invited_to: None,
//! };
//! let outcome = PartnerTag::on_signup(signup)?;
//! assert_eq!(outcome.actions, [Action::AddTag("partner".into())]);
//! assert_eq!(host.log_messages(), ["tagging di@globex.test as partner"]);
//! # Ok::<(), String>(())
//! ```
//!
//! Build it as a component with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`). The
//! component imports only the host interfaces its code calls (here `log` and `config`), and its manifest,
//! `aula-plugin.toml`, must ask for exactly those capabilities; `plugins/README.md` in the Aula repository
//! describes the manifest and the examples there show each kind.
//!
//! Besides the host interfaces, a component may use what the Rust standard library needs from WASI
//! (clocks, random numbers, stdout and stderr, which go to the plugin's log). There is no network, no
//! environment, and no filesystem except the plugin's own directory when the `files` capability is granted.
#![deny(missing_docs)]

// Generated code: raw ABI lifting and lowering needs `unsafe`, which the rest of the crate denies.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
#[path = "bindings.rs"]
pub mod __bindings;

pub mod branding;
pub mod config;
pub mod directory;
pub mod enrollment;
pub mod kv;
pub mod log;
pub mod notifications;
pub mod records;
pub mod reports;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

mod sys;
mod types;

pub use __bindings::host::aula::plugin::types::{
    Course, Enrollment, EnrollmentStatus, FieldValue, Id, Org, ProfileField, Segment, Tag, User, UserStatus,
};

/// Version of the `aula:plugin` WIT package this SDK targets.
pub const INTERFACE_VERSION: &str = "0.1.0";

/// Makes a type the plugin's implementation of one kind, and the component's exports.
///
/// Use it once per plugin, at the top level of the crate, naming the kind and a type that implements its
/// trait:
///
/// | kind | trait |
/// |---|---|
/// | `branding` | [`branding::Branding`] |
/// | `enrollment` | [`enrollment::Enrollment`] |
/// | `notifications` | [`notifications::Notifications`] |
/// | `reports` | [`reports::Reports`] |
///
/// ```
/// use aula_sdk::branding::Branding;
///
/// struct Plain;
/// impl Branding for Plain {}
///
/// aula_sdk::register!(branding: Plain);
/// ```
///
/// The component then exports exactly that kind's hooks interface (`aula:plugin/branding-hooks`, …). In
/// native builds (unit tests, a benchmark linking the plugin as a library) it only checks that the type
/// implements the trait, and exports nothing.
#[macro_export]
macro_rules! register {
    (branding: $plugin:ty $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type AulaPlugin = $crate::branding::__Export<$plugin>;
    $crate::__bindings::branding::export!(AulaPlugin with_types_in $crate::__bindings::branding);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::branding::__check::<$plugin>();
    };
    (enrollment: $plugin:ty $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type AulaPlugin = $crate::enrollment::__Export<$plugin>;
    $crate::__bindings::enrollment::export!(AulaPlugin with_types_in $crate::__bindings::enrollment);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::enrollment::__check::<$plugin>();
    };
    (notifications: $plugin:ty $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type AulaPlugin = $crate::notifications::__Export<$plugin>;
    $crate::__bindings::notifications::export!(AulaPlugin with_types_in $crate::__bindings::notifications);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::notifications::__check::<$plugin>();
    };
    (reports: $plugin:ty $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type AulaPlugin = $crate::reports::__Export<$plugin>;
    $crate::__bindings::reports::export!(AulaPlugin with_types_in $crate::__bindings::reports);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::reports::__check::<$plugin>();
    };
}
