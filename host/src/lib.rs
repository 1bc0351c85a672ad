//! Aula: a multi-tenant learning platform host.
//!
//! `main.rs` only parses the command line; everything the tests start is here: [`Application::build`]
//! connects the database and assembles the router, [`Application::run_until`] serves until shutdown.

pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod directory;
pub mod error;
pub mod fair;
pub mod fields;
pub mod http;
pub mod identity;
pub mod learning;
pub mod lifecycle;
pub mod mail;
pub mod notify;
pub mod outbox;
pub mod plugins;
pub mod portal;
pub mod reports;
pub mod scope;
pub mod state;
pub mod telemetry;
pub mod tenancy;

use crate::config::Config;
use crate::db::Db;
use crate::state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use tokio::net::TcpListener;

/// A built server, bound to its listener, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Shared with the portal (weakly), which runs its pages' API calls through it.
    router: std::sync::Arc<axum::Router>,
}

impl Application {
    /// Connect the database (running migrations) and bind the configured address.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let db = Db::connect(config.database_url.expose(), config.max_connections).await?;
        let hashed = learning::signup::invitations::hash_stored_tokens(&db).await?;
        if hashed > 0 {
            tracing::info!(
                hashed,
                "invitation links stored in the clear by an earlier version are now kept as hashes"
            );
        }
        Ok(Application::with(listener, db, config))
    }

    /// Assemble the application on an already-connected database and bound listener.
    pub fn with(listener: TcpListener, db: Db, config: Config) -> Application {
        let (api_router, openapi) = http::api().finish();
        let state = AppState::new(db, config, openapi);
        let router = std::sync::Arc::new(http::router(api_router, state.clone()));
        state.portal.attach(std::sync::Arc::downgrade(&router));
        Application {
            listener,
            state,
            router,
        }
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The shared state (database handle, configuration).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` completes, then finish the requests in flight.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let upkeep = tokio::spawn(learning::jobs::upkeep(self.state.db.clone()));
        let notifications = tokio::spawn(notify::run(self.state.notifier()));
        let scheduled_reports = self.state.config.notifications.enabled.then(|| {
            let every = std::time::Duration::from_millis(self.state.config.notifications.schedule_ms);
            tokio::spawn(reports::schedules::run(
                self.state.db.clone(),
                self.state.reports.clone(),
                every,
            ))
        });
        let header_timeout = std::time::Duration::from_millis(self.state.config.header_read_timeout_ms.into());
        http::serve::serve(self.listener, (*self.router).clone(), shutdown, header_timeout).await?;
        upkeep.abort();
        notifications.abort();
        if let Some(task) = scheduled_reports {
            task.abort();
        }
        Ok(())
    }
}

/// The process-wide Prometheus recorder (installed once, shared by every application in the process).
pub(crate) fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program); then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub(crate) fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| auth::password::hash_blocking("not a password anyone has").unwrap_or_default())
}
