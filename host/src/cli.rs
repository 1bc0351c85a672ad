//! The command line: `aula serve`, `aula migrate`, and the operator's tenant, user and token commands.
//!
//! Every command that changes an academy goes through [`crate::lifecycle`], the same code as the platform API,
//! and is audited with the actor `system` (labelled `cli`).

use crate::auth::Actor;
use crate::config::{Config, DatabaseUrl, LogFormat};
use crate::db::Db;
use crate::error::ApiError;
use crate::lifecycle::{self, NewAccount, TenantStatus};
use crate::tenancy::TenantSettings;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Aula: a multi-tenant learning platform host.
#[derive(Debug, Parser)]
#[command(name = "aula", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "AULA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite:… or postgres://…); overrides the configuration.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server until Ctrl-C or SIGTERM.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Academies are reachable as <slug>.<base domain>.
        #[arg(long, value_name = "DOMAIN")]
        base_domain: Option<String>,
        /// Seed the demo academies (acme, globex) and print how to sign in.
        #[arg(long)]
        demo: bool,
        /// With --demo: deploy the example plugins built into this directory
        /// (`cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml`).
        #[arg(long, value_name = "DIR", requires = "demo")]
        demo_plugins: Option<PathBuf>,
    },
    /// Run the database migrations and exit.
    Migrate,
    /// Manage academies.
    Tenant {
        /// The tenant command.
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage platform operators.
    Operator {
        /// The operator command.
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Manage an academy's users.
    User {
        /// The user command.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens.
    Token {
        /// The token command.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Tools for plugin developers.
    Plugin {
        /// The plugin command.
        #[command(subcommand)]
        command: PluginCommand,
    },
}

/// `aula plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a component's world, interface version and imports, and whether its manifest fits it.
    Check {
        /// The component (.wasm).
        wasm: PathBuf,
        /// The manifest (default: aula-plugin.toml beside the component or in the current directory).
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
    /// Run one hook locally against fixture data and print the output, time, peak memory and limits.
    Test {
        /// The component (.wasm).
        wasm: PathBuf,
        /// The hook: brand, on-signup, on-events, on-notice, on-tick, list-reports, run-report.
        #[arg(long)]
        hook: String,
        /// The hook's input as JSON (or @file to read it from a file).
        #[arg(long, default_value = "null")]
        input: String,
        /// Tenant data (orgs, users, tags, courses, enrollments, config, secrets, kv) as JSON.
        #[arg(long, value_name = "FILE")]
        fixture: Option<PathBuf>,
        /// The manifest (default: aula-plugin.toml beside the component or in the current directory).
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
}

async fn plugin(config: &Config, command: PluginCommand) -> anyhow::Result<()> {
    use crate::plugins::devtools;
    match command {
        PluginCommand::Check { wasm, manifest } => {
            let (report, ok) = devtools::check(config, &wasm, manifest.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            anyhow::ensure!(ok, "the component cannot be uploaded as it stands (see problems)");
            Ok(())
        }
        PluginCommand::Test {
            wasm,
            hook,
            input,
            fixture,
            manifest,
        } => {
            let input = match input.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
                None => input,
            };
            let input: serde_json::Value =
                serde_json::from_str(&input).map_err(|e| anyhow::anyhow!("--input is not JSON: {e}"))?;
            let report = devtools::test(config, &wasm, manifest.as_deref(), &hook, input, fixture.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

/// `aula tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create an academy, optionally with its first admin.
    Create {
        /// Slug: <slug>.<base domain>.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A custom domain (repeat for several).
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
        /// E-mail of the first admin (granted tenant_admin for the whole academy).
        #[arg(long, requires = "admin_name")]
        admin_email: Option<String>,
        /// Name of the first admin.
        #[arg(long, requires = "admin_email")]
        admin_name: Option<String>,
        /// Password of the first admin (at least 10 characters); prefer the environment variable.
        #[arg(long, env = "AULA_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
    },
    /// List academies.
    List,
    /// Copy an academy's structure and configuration into a new academy.
    Clone {
        /// The academy to copy.
        #[arg(long)]
        from: String,
        /// The new academy's slug.
        #[arg(long)]
        slug: String,
        /// The new academy's name.
        #[arg(long)]
        name: String,
    },
    /// Suspend an academy: nobody signs in, nothing is deleted.
    Suspend {
        /// The academy.
        slug: String,
    },
    /// Resume a suspended academy.
    Resume {
        /// The academy.
        slug: String,
    },
    /// Export an academy to a tar.gz archive (credentials excluded).
    Export {
        /// The academy.
        slug: String,
        /// Where to write the archive.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Import an archive as a new academy (every row gets a new id).
    Import {
        /// The archive.
        file: PathBuf,
        /// The new academy's slug.
        #[arg(long)]
        slug: String,
        /// The new academy's name (default: as in the archive).
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete an academy and everything in it.
    Delete {
        /// The academy.
        slug: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

/// `aula operator …`
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create a platform operator.
    Create {
        /// E-mail (the sign-in name).
        #[arg(long)]
        email: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Password (at least 10 characters); prefer the environment variable.
        #[arg(long, env = "AULA_OPERATOR_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

/// `aula user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (every user is a learner; --role adds a role for the whole academy).
    Create {
        /// The academy's slug.
        #[arg(long)]
        tenant: String,
        /// E-mail.
        #[arg(long)]
        email: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Initial password (at least 10 characters).
        #[arg(long)]
        password: Option<String>,
        /// A role key, e.g. tenant_admin, instructor.
        #[arg(long, value_name = "ROLE_KEY")]
        role: Option<String>,
    },
}

/// `aula token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue an API token for a user; it is printed once and stored only as a hash.
    Create {
        /// The academy's slug.
        #[arg(long)]
        tenant: String,
        /// The user's e-mail.
        #[arg(long)]
        email: String,
        /// A name that says what the token is for.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until it expires (1–365).
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
}

/// Parse the command line, run it on a multi-threaded runtime, and say how it ended.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(url) = cli.database_url {
        config.database_url = DatabaseUrl::new(url);
    }
    if let Some(format) = cli.log_format {
        config.log_format = format;
    }
    crate::telemetry::init(config.log_format);
    for name in &config.unknown_env {
        tracing::warn!(variable = %name, "this environment variable names no setting and is ignored");
    }
    match cli.command {
        Command::Serve {
            listen,
            base_domain,
            demo,
            demo_plugins,
        } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            if let Some(base) = base_domain {
                config.base_domain = base;
            }
            serve(config, demo, demo_plugins).await
        }
        Command::Plugin { command } => plugin(&config, command).await,
        Command::Migrate => {
            let db = connect(&config).await?;
            db.close().await;
            println!("database is up to date");
            Ok(())
        }
        Command::Tenant { command } => tenant(&config, command).await,
        Command::Operator {
            command: OperatorCommand::Create { email, name, password },
        } => {
            let password = password.context("give --password or set AULA_OPERATOR_PASSWORD")?;
            let db = connect(&config).await?;
            lifecycle::create_operator(&db, &email, &name, &password)
                .await
                .map_err(plain)
                .context("cannot create the operator")?;
            println!("operator {} created", email.trim().to_lowercase());
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    tenant,
                    email,
                    name,
                    password,
                    role,
                },
        } => {
            let db = connect(&config).await?;
            let account = NewAccount {
                email: email.clone(),
                name,
                password,
            };
            let id = lifecycle::create_user(&db, &tenant, &account, role.as_deref(), &actor())
                .await
                .map_err(plain)
                .with_context(|| format!("cannot create the user in {tenant}"))?;
            println!("user {} created in {tenant} (id {id})", email.trim().to_lowercase());
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    tenant,
                    email,
                    name,
                    days,
                },
        } => {
            let db = connect(&config).await?;
            let issued = lifecycle::create_api_token(&db, &tenant, &email, &name, days, &actor())
                .await
                .map_err(plain)
                .with_context(|| format!("cannot create a token for {email} in {tenant}"))?;
            eprintln!(
                "token for {email} in {tenant}, expires {}; it is shown only now:",
                crate::db::rfc3339(issued.expires_at)
            );
            println!("{}", issued.token);
            Ok(())
        }
    }
}

async fn tenant(config: &Config, command: TenantCommand) -> anyhow::Result<()> {
    let db = connect(config).await?;
    let actor = actor();
    match command {
        TenantCommand::Create {
            slug,
            name,
            domains,
            admin_email,
            admin_name,
            admin_password,
        } => {
            let mut checked = Vec::with_capacity(domains.len());
            for (i, d) in domains.iter().enumerate() {
                let field = format!("domains[{i}]");
                let d = lifecycle::check_domain(&field, d).map_err(plain)?;
                lifecycle::check_domain_outside_base(&field, &d, &config.base_domain).map_err(plain)?;
                checked.push(d);
            }
            let admin = match (admin_email, admin_name) {
                (Some(email), Some(name)) => {
                    let password = admin_password.context("give --admin-password or set AULA_ADMIN_PASSWORD")?;
                    Some(NewAccount {
                        email,
                        name,
                        password: Some(password),
                    })
                }
                _ => None,
            };
            let created = lifecycle::create_tenant_with_admin(
                &db,
                &slug,
                &name,
                &checked,
                TenantSettings::default(),
                admin.as_ref(),
                &actor,
            )
            .await
            .map_err(plain)
            .context("cannot create the academy")?;
            println!(
                "academy {} created: http://{}.{}/",
                created.slug, created.slug, config.base_domain
            );
            if let Some(admin) = admin {
                println!("admin {} can sign in there", admin.email.trim().to_lowercase());
            }
        }
        TenantCommand::List => {
            let tenants = lifecycle::list_tenants(&db).await.map_err(plain)?;
            if tenants.is_empty() {
                println!("no academies yet; create one with `aula tenant create`");
            }
            for t in tenants {
                println!("{:<24} {:<10} {}  {}", t.slug, t.status, t.name, t.domains.join(" "));
            }
        }
        TenantCommand::Clone { from, slug, name } => {
            let created = lifecycle::clone_tenant(&db, &from, &slug, &name, &actor)
                .await
                .map_err(plain)
                .with_context(|| format!("cannot clone {from}"))?;
            println!("academy {from} cloned to {}", created.slug);
        }
        TenantCommand::Suspend { slug } => {
            lifecycle::set_status(&db, &slug, TenantStatus::Suspended, &actor)
                .await
                .map_err(plain)
                .with_context(|| format!("cannot suspend {slug}"))?;
            println!("academy {slug} suspended");
        }
        TenantCommand::Resume { slug } => {
            lifecycle::set_status(&db, &slug, TenantStatus::Active, &actor)
                .await
                .map_err(plain)
                .with_context(|| format!("cannot resume {slug}"))?;
            println!("academy {slug} resumed");
        }
        TenantCommand::Export { slug, out } => {
            let bytes = lifecycle::export_tenant(&db, &slug, &actor)
                .await
                .map_err(plain)
                .with_context(|| format!("cannot export {slug}"))?;
            write_file(&out, &bytes).await?;
            println!("academy {slug} exported to {} ({} bytes)", out.display(), bytes.len());
        }
        TenantCommand::Import { file, slug, name } => {
            let size = tokio::fs::metadata(&file)
                .await
                .with_context(|| format!("cannot read {}", file.display()))?
                .len();
            if size > lifecycle::MAX_ARCHIVE_BYTES as u64 {
                anyhow::bail!(
                    "{} is {size} bytes; archives of at most {} MiB are accepted",
                    file.display(),
                    lifecycle::MAX_ARCHIVE_BYTES / (1024 * 1024)
                );
            }
            let bytes = tokio::fs::read(&file)
                .await
                .with_context(|| format!("cannot read {}", file.display()))?;
            let created = lifecycle::import_tenant(&db, &bytes, &slug, name.as_deref(), &actor)
                .await
                .map_err(plain)
                .with_context(|| format!("cannot import {}", file.display()))?;
            println!("academy {} imported from {}", created.slug, file.display());
        }
        TenantCommand::Delete { slug, yes } => {
            if !yes {
                anyhow::bail!(
                    "deleting {slug} removes every user, record and log entry of it for good; add --yes to confirm"
                );
            }
            lifecycle::delete_tenant(&db, &slug)
                .await
                .map_err(plain)
                .with_context(|| format!("cannot delete {slug}"))?;
            println!("academy {slug} deleted");
        }
    }
    db.close().await;
    Ok(())
}

async fn serve(mut config: Config, demo: bool, demo_plugins: Option<PathBuf>) -> anyhow::Result<()> {
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
                let deployed = crate::demo::deploy_plugins(app.state(), dir)
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
async fn shutdown_signal() {
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

async fn connect(config: &Config) -> anyhow::Result<Db> {
    // A command does one thing at a time; two connections leave room for the platform look-up.
    Db::connect(config.database_url.expose(), 2).await.with_context(|| {
        format!(
            "cannot open the database {}",
            crate::config::redact_url(config.database_url.expose())
        )
    })
}

/// Write the archive next to its destination first, so an interrupted export leaves no half file behind.
async fn write_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    tokio::fs::write(&partial, bytes)
        .await
        .with_context(|| format!("cannot write {}", partial.display()))?;
    tokio::fs::rename(&partial, path)
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn actor() -> Actor {
    Actor::system("cli")
}

/// An API error in plain words for the terminal: the field it concerns, then what is wrong.
fn plain(err: ApiError) -> anyhow::Error {
    match err {
        ApiError::BadRequest {
            message,
            field: Some(field),
            ..
        }
        | ApiError::Conflict {
            message,
            field: Some(field),
            ..
        }
        | ApiError::Unprocessable {
            message,
            field: Some(field),
            ..
        } => anyhow::anyhow!("{field}: {message}"),
        ApiError::NotFound { what } => anyhow::anyhow!("no such {what}"),
        ApiError::TooLarge => anyhow::anyhow!(
            "the archive is larger than {} MiB",
            lifecycle::MAX_ARCHIVE_BYTES / (1024 * 1024)
        ),
        ApiError::Unauthenticated { message, .. } => anyhow::anyhow!("{message}"),
        ApiError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn delete_needs_yes_and_options_parse() {
        let cli = Cli::try_parse_from(["aula", "tenant", "delete", "acme"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Tenant {
                command: TenantCommand::Delete { yes: false, .. }
            }
        ));
        let cli = Cli::try_parse_from([
            "aula",
            "--database-url",
            "sqlite:x.db",
            "tenant",
            "create",
            "--slug",
            "acme",
            "--name",
            "Acme",
            "--domain",
            "a.example.com",
            "--domain",
            "b.example.com",
        ])
        .expect("parses");
        assert_eq!(cli.database_url.as_deref(), Some("sqlite:x.db"));
        match cli.command {
            Command::Tenant {
                command: TenantCommand::Create { domains, .. },
            } => assert_eq!(domains.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Cli::try_parse_from([
                "aula",
                "tenant",
                "create",
                "--slug",
                "a",
                "--name",
                "A",
                "--admin-email",
                "x@y.z"
            ])
            .is_err()
        );
    }

    #[test]
    fn api_errors_read_plainly() {
        let e = plain(ApiError::duplicate("slug", "taken"));
        assert_eq!(e.to_string(), "slug: taken");
        assert_eq!(
            plain(ApiError::NotFound { what: "tenant" }).to_string(),
            "no such tenant"
        );
    }
}
