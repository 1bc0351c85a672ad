//! The guest SDK for Aula plugins.
//!
//! Plugin authors depend on this crate to build WebAssembly components that Aula runs in a sandbox.
//! The plugin interface (`sdk/wit/`) and the typed traits over it are being built; until then this crate
//! only carries the interface version the host expects.
#![deny(missing_docs)]

/// Version of the `aula:plugin` WIT package this SDK targets.
pub const INTERFACE_VERSION: &str = "0.1.0";
