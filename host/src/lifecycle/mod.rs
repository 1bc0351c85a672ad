//! Tenant lifecycle.
