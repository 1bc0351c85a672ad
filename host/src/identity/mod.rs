//! Single sign-on per academy: the identity providers an academy's admins configure (OpenID Connect), the
//! sign-in through one of them, and the accounts it finds, links or creates (just-in-time provisioning, with
//! a mapping from the provider's claims to organizations, tags, profile fields, language and manager).
//!
//! Provisioning over SCIM 2.0 ([`scim`]) lets the academy's identity provider or HR system keep its people
//! and organizations up to date.
//!
//! One provider configuration serves one academy only: providers, sign-ins under way and links to accounts
//! are rows of that academy, and the provider sends people back to the academy's own host.

pub mod import;
pub mod oidc;
pub mod providers;
pub mod provision;
pub mod scim;

pub use oidc::{Callback, Claims, Sso, SsoError};
