//! The guest SDK for Aula plugins.
//!
//! Plugin authors depend on this crate to build WebAssembly components that Aula runs in a sandbox.
//! The plugin interface is drafted in `sdk/wit/` (one WIT package, a world per plugin kind); the typed
//! traits over it and the host runtime that runs plugins are not built yet, so this crate only carries the
//! interface version.
#![deny(missing_docs)]

/// Version of the `aula:plugin` WIT package this SDK targets.
pub const INTERFACE_VERSION: &str = "0.1.0";
