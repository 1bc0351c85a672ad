//! `aula serve`: the server until Ctrl-C or SIGTERM, with the demo academies on request.

use crate::config::Config;
use crate::lifecycle::{self};
use anyhow::Context;
use std::path::PathBuf;

pub(super) async fn serve(mut config: Config, demo: bool, demo_plugins: Option<PathBuf>) -> anyhow::Result<()> {
    if demo && config.base_domain == "localhost" && config.cookie_secure {
        // The demo is plain HTTP on *.localhost: browsers accept Secure cookies there, curl does not.
        tracing::info!("demo on localhost: the session cookie is sent without the Secure flag");
        config.cookie_secure = false;
    }
    let base_domain = config.base_domain.clone();
    let app = crate::Application::build(config).await?;
    let addr = app.local_addr();
    match lifecycle::registry_mismatches(&app.state().db).await {
        Ok(problems) if problems.is_empty() => {}
        Ok(problems) => {
            // Exports would miss data and deletes would fail; say so loudly, but keep serving requests.
            tracing::error!(problems = ?problems, "the tenant table registry does not match the database");
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot compare the tenant table registry with the database")
        }
    }
    if demo {
        let mut summary = crate::demo::seed(&app.state().db)
            .await
            .context("cannot seed the demo")?;
        summary.port = addr.port();
        summary.base_domain = base_domain;
        println!("{summary}");
        match &demo_plugins {
            Some(dir) => {
                let deployed = crate::demo::deploy_plugins(&app.state().db, &app.state().plugins, dir)
                    .await
                    .context("cannot deploy the demo plugins")?;
                if !deployed.is_empty() {
                    println!("\n  Plugins deployed: {}", deployed.join(", "));
                }
                println!(
                    "  Plugins:  curl -b demo.cookies http://acme.localhost:{}/api/v1/plugins   (as admin@acme.test)",
                    addr.port()
                );
            }
            None => println!("\n  (no plugins: run .ci/demo to build and deploy the example plugins)"),
        }
    }
    println!("aula listening on http://{addr}");
    tracing::info!(%addr, "listening");
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM; requests in flight then finish.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
