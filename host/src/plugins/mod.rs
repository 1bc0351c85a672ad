//! Plugins: tenant-deployed WebAssembly components, sandboxed and capability-scoped.
pub mod bindings;
pub mod devtools;
pub mod engine;
pub mod files;
pub mod hooks;
pub mod host;
pub mod host_api;
pub mod inspect;
pub mod manifest;
pub mod meter;
pub mod output;
pub mod runtime;
pub mod store;
