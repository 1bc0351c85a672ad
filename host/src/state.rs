//! The application state every handler receives.

use crate::config::Config;
use crate::db::Db;
use crate::tenancy::TenantCache;
use std::sync::Arc;

/// Cloned into every request; everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Configuration.
    pub config: Arc<Config>,
    /// Host → tenant, cached for a few seconds.
    pub tenants: Arc<TenantCache>,
    /// The OpenAPI document, built with the router.
    pub openapi: Arc<serde_json::Value>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// A password hash used when a login names no user, so both paths cost the same.
    pub dummy_hash: Arc<String>,
}
