//! `aula tenant|operator|user|token …`: the operator's commands, through the same lifecycle code as the
//! platform API, audited as the actor `system` (labelled `cli`).

use super::*;
use crate::config::Config;
use crate::lifecycle::{self, NewAccount, TenantStatus};
use crate::tenancy::TenantSettings;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

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

pub(super) async fn tenant(config: &Config, command: TenantCommand) -> anyhow::Result<()> {
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
            let id = lifecycle::delete_tenant(&db, &slug)
                .await
                .map_err(plain)
                .with_context(|| format!("cannot delete {slug}"))?;
            let files = crate::plugins::files::academy_dir(std::path::Path::new(&config.plugins.files_dir), &id)?;
            crate::plugins::files::remove(&files).with_context(|| {
                format!(
                    "academy {slug} deleted, but its plugin files in {} stay",
                    files.display()
                )
            })?;
            println!("academy {slug} deleted");
        }
    }
    db.close().await;
    Ok(())
}
