//! The example plugins of `plugins/`, deployed to the demo academies with their settings.

use super::content::{DEMO_COURSES, seed_courses};
use crate::auth::Actor;
use crate::db::Db;
use anyhow::Context;
use serde_json::{Value, json};

/// Which example plugin each demo academy runs, with its settings: the two academies differ, so the
/// difference shows (acme gets reminders, globex does not; colors, wording and placement differ).
pub(super) fn demo_plugins(tenant: &str) -> Vec<(&'static str, &'static str, Value)> {
    match tenant {
        "acme" => vec![
            (
                "org-branding",
                "org_branding",
                json!({
                    "accent": "#d9480f",
                    "wording": {
                        "*": { "home.lead": "Welcome to Acme Academy" },
                        "de": { "home.lead": "Willkommen in der Acme Academy" }
                    },
                    "orgs": [ { "org": "Engineering", "colors": { "accent": "#2f9e44" },
                                "wording": { "*": { "home.lead": "Welcome, engineers" } } } ]
                }),
            ),
            (
                "domain-placement",
                "domain_placement",
                json!({
                    "domains": { "acme.test": "Sales", "eng.acme.test": "Engineering" },
                    "tags": ["self-signup"],
                    "courses": ["ONBOARD-100", "SAFE-101"],
                    "due_in_days": 30,
                    "hold_unknown_domains": true,
                    "blocked_domains": ["mailinator.com"],
                    "follow_up": { "ONBOARD-100": "SALES-201" }
                }),
            ),
            (
                "localized-reminders",
                "localized_reminders",
                json!({ "opt_out_tag": "no-reminders" }),
            ),
            ("completion-by-org", "completion_by_org", json!({})),
        ],
        _ => vec![
            (
                "org-branding",
                "org_branding",
                json!({
                    "accent": "#5f3dc4",
                    "wording": {
                        "*": { "home.lead": "Globex partner training" },
                        "fr": { "home.lead": "Formation des partenaires Globex", "catalog.title": "Parcours partenaires" }
                    },
                    "orgs": [ { "org": "Umbrella", "colors": { "accent": "#c92a2a" } } ]
                }),
            ),
            (
                "domain-placement",
                "domain_placement",
                json!({
                    "domains": { "initech.test": "Initech", "umbrella.test": "Umbrella", "hooli.test": "Hooli" },
                    "courses": ["PARTNER-101"],
                    "due_in_days": 14
                }),
            ),
            ("completion-by-org", "completion_by_org", json!({})),
        ],
    }
}

/// The example plugins' manifests, embedded so the demo needs only the built components.
pub(super) fn demo_manifest(name: &str) -> Option<&'static str> {
    match name {
        "org-branding" => Some(include_str!("../../../plugins/org-branding/aula-plugin.toml")),
        "domain-placement" => Some(include_str!("../../../plugins/domain-placement/aula-plugin.toml")),
        "localized-reminders" => Some(include_str!("../../../plugins/localized-reminders/aula-plugin.toml")),
        "completion-by-org" => Some(include_str!("../../../plugins/completion-by-org/aula-plugin.toml")),
        _ => None,
    }
}

/// Seed the demo courses (with some enrollments) and deploy the example plugins from `wasm_dir` (where
/// `cargo build --target wasm32-wasip2` put them) to the demo academies. Does nothing where it was done.
pub async fn deploy_plugins(
    db: &Db,
    plugins: &crate::plugins::host::PluginHost,
    wasm_dir: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    let actor = Actor::system("demo");
    let mut deployed = Vec::new();
    for (slug, _, courses) in DEMO_COURSES {
        let mut ptx = db.platform().begin().await?;
        let Some(tenant) = crate::tenancy::by_slug(&mut ptx, slug).await? else {
            continue;
        };
        ptx.commit().await?;
        let tenant_db = db.tenant(&tenant.id);
        seed_courses(&tenant_db, courses).await?;
        for (name, file, settings) in demo_plugins(slug) {
            let mut tx = tenant_db.begin_read().await?;
            let exists = tx
                .query("SELECT 1 FROM plugins WHERE tenant_id = $1 AND name = $2")
                .bind(name)
                .fetch_optional(tx.conn())
                .await?
                .is_some();
            tx.commit().await?;
            if exists {
                continue;
            }
            let path = wasm_dir.join(format!("{file}.wasm"));
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let manifest = crate::plugins::manifest::Manifest::from_toml(demo_manifest(name).unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            let Value::Object(settings) = settings else { continue };
            crate::plugins::store::deploy(plugins, &tenant_db, &actor, manifest, bytes, settings)
                .await
                .map_err(|e| anyhow::anyhow!("deploying {name} to {slug}: {e}"))?;
            deployed.push(format!("{slug}: {name}"));
        }
    }
    Ok(deployed)
}
