//! Typed hook calls, one file per plugin kind, with the host's own types on both sides. Every conversion
//! between those types and the types generated from `sdk/wit` is here, beside the bindings, so no code
//! outside `plugins/` names a generated type.
//!
//! Each call goes through [`super::host::PluginHost::call`], which records its outcome; what a failed call
//! means (fail open, fail closed) is the caller's policy.

pub mod branding;
pub mod enrollment;
pub mod notifications;
pub mod reports;

use super::runtime::{HookError, HookOutput};

/// The answer of another hook than the one called: the runtime's dispatch makes this impossible, but a
/// caller should not have to trust that.
fn unexpected(hook: &str, output: &HookOutput) -> HookError {
    HookError::Unavailable(format!(
        "{hook} answered with the output of another hook ({})",
        serde_json::to_value(output)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(",")))
            .unwrap_or_default()
    ))
}
