//! `aula plugin …`: tools for plugin developers.

use crate::config::Config;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

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

pub(super) async fn plugin(config: &Config, command: PluginCommand) -> anyhow::Result<()> {
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
