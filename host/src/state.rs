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
    /// Authenticated callers, cached for a moment.
    pub callers: Arc<crate::auth::CallerCache>,
    /// Host → tenant, cached for a few seconds.
    pub tenants: Arc<TenantCache>,
    /// The OpenAPI document, built with the router.
    pub openapi: Arc<serde_json::Value>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// A password hash used when a login names no user, so both paths cost the same.
    pub dummy_hash: Arc<String>,
    /// The one door into plugins (runtime, engine, loaded plugin versions, and recording their calls).
    pub plugins: Arc<crate::plugins::host::PluginHost>,
    /// Outgoing mail.
    pub mailer: Arc<crate::mail::Mailer>,
    /// The branded portal (themes, languages, branding caches).
    pub portal: Arc<crate::portal::Portal>,
    /// What running reports needs: the report plugins and the reports kept for their later JSON pages.
    pub reports: crate::reports::Runner,
    /// Requests in progress, in fair shares per academy.
    pub requests: Arc<crate::fair::FairShare>,
    /// Single sign-on: the relying party that talks to academies' identity providers.
    pub sso: Arc<crate::identity::Sso>,
}

impl AppState {
    /// The state for a database and configuration, with the OpenAPI document of the router it serves.
    pub fn new(db: Db, config: Config, openapi: serde_json::Value) -> AppState {
        let plugins = crate::plugins::runtime::Runtime::new(config.plugins.clone())
            .unwrap_or_else(|e| panic!("the plugin runtime cannot start: {e:#}"));
        let mailer = crate::mail::Mailer::new(&config.mail, &config.base_domain)
            .unwrap_or_else(|e| panic!("the mailer cannot start: {e}"));
        let portal = crate::portal::Portal::new(&config.themes_dir)
            .unwrap_or_else(|e| panic!("the portal's default theme is broken: {e:#}"));
        let plugins = Arc::new(crate::plugins::host::PluginHost::new(Arc::new(plugins), db.clone()));
        let requests = crate::fair::FairShare::new(
            "requests",
            config.max_requests as usize,
            config.max_requests_per_academy.min(config.max_requests) as usize,
            std::time::Duration::from_millis(config.request_wait_ms.into()),
        );
        let sso = crate::identity::Sso::new(config.sso.clone())
            .unwrap_or_else(|e| panic!("the single sign-on client cannot start: {e:#}"));
        AppState {
            sso: Arc::new(sso),
            requests: Arc::new(requests),
            reports: crate::reports::Runner {
                plugins: plugins.clone(),
                snapshots: Arc::default(),
            },
            plugins,
            portal: Arc::new(portal),
            mailer: Arc::new(mailer),
            db,
            tenants: Arc::new(TenantCache::new(&config.base_domain)),
            callers: Arc::new(crate::auth::CallerCache::new(
                std::time::Duration::from_millis(config.auth_cache_ms),
                crate::auth::MAX_CALLERS,
            )),
            config: Arc::new(config),
            openapi: Arc::new(openapi),
            metrics: crate::metrics_handle(),
            dummy_hash: Arc::new(crate::dummy_hash().to_owned()),
        }
    }

    /// The outbox, delivery and scheduler's part of the state.
    pub fn notifier(&self) -> crate::notify::Notifier {
        crate::notify::Notifier {
            db: self.db.clone(),
            config: self.config.clone(),
            plugins: self.plugins.clone(),
        }
    }
}
