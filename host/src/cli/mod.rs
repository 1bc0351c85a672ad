//! The command line: `aula serve`, `aula migrate`, and the operator's tenant, user and token commands.
//!
//! Every command that changes an academy goes through [`crate::lifecycle`], the same code as the platform API,
//! and is audited with the actor `system` (labelled `cli`).

mod plugin;
mod serve;
mod tenant;

pub use plugin::PluginCommand;
use plugin::plugin;
use serve::serve;
use tenant::tenant;
pub use tenant::{OperatorCommand, TenantCommand, TokenCommand, UserCommand};

use crate::auth::Actor;
use crate::config::{Config, DatabaseUrl, LogFormat};
use crate::db::Db;
use crate::error::ApiError;
use crate::lifecycle::{self, NewAccount};
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

pub(crate) async fn connect(config: &Config) -> anyhow::Result<Db> {
    // A command does one thing at a time; two connections leave room for the platform look-up.
    Db::connect(config.database_url.expose(), 2).await.with_context(|| {
        format!(
            "cannot open the database {}",
            crate::config::redact_url(config.database_url.expose())
        )
    })
}

/// Write the archive next to its destination first, so an interrupted export leaves no half file behind.
pub(super) async fn write_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
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

pub(super) fn actor() -> Actor {
    Actor::system("cli")
}

/// An API error in plain words for the terminal: the field it concerns, then what is wrong.
pub(crate) fn plain(err: ApiError) -> anyhow::Error {
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
