//! For plugin developers: `aula plugin check` (what a component is and imports) and `aula plugin test`
//! (run one hook against fixture data in a throwaway academy, with the real runtime and limits).

use super::host_api::View;
use super::inspect::Inspection;
use super::manifest::{Kind, Manifest};
use super::runtime::{HookCall, HookError, Runtime};
use super::store;
use crate::auth::Actor;
use crate::config::Config;
use crate::db::{Db, TenantDb, new_id, now_ms, rfc3339};
use crate::tenancy::TenantSettings;
use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;

/// Read a manifest file, or the `aula-plugin.toml` beside the component or in the current directory.
pub fn find_manifest(wasm: &Path, manifest: Option<&Path>) -> anyhow::Result<Option<Manifest>> {
    let candidates: Vec<std::path::PathBuf> = match manifest {
        Some(path) => vec![path.to_owned()],
        None => vec![
            wasm.with_file_name("aula-plugin.toml"),
            std::path::PathBuf::from("aula-plugin.toml"),
        ],
    };
    for path in candidates {
        if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let manifest = Manifest::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            return Ok(Some(manifest));
        } else if manifest.is_some() {
            anyhow::bail!("{} does not exist", path.display());
        }
    }
    Ok(None)
}

/// `aula plugin check`: the component's world, interface version and imports, and what a manifest would
/// need. Returns the report and whether the component can be uploaded as it stands.
pub fn check(config: &Config, wasm: &Path, manifest: Option<&Path>) -> anyhow::Result<(Value, bool)> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let runtime = Runtime::new(config.plugins.clone())?;
    let (_, _, inspection) = runtime
        .compile(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid WebAssembly component: {e:#}", wasm.display()))?;
    let manifest = find_manifest(wasm, manifest)?;
    let problems = match (&manifest, inspection.world) {
        (Some(m), _) => inspection.problems(m.kind, m.requested(), m.requested()),
        (None, Some(world)) => inspection.problems(world, inspection.needs(), inspection.needs()),
        (None, None) => inspection.problems(Kind::Branding, inspection.needs(), inspection.needs()),
    };
    let report = json!({
        "file": wasm.display().to_string(),
        "size": bytes.len(),
        "world": inspection.world,
        "interface": format!("aula:plugin@{}", super::inspect::PACKAGE_VERSION),
        "imports": inspection.imports,
        "unknown_imports": inspection.unknown,
        "exports": inspection.exports,
        "capabilities_needed": inspection.needs().list(),
        "manifest": manifest,
        "problems": problems,
    });
    Ok((report, problems.is_empty()))
}

/// Tenant data for `aula plugin test --fixture` (the same JSON the SDK's `FakeHost::from_json` reads).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fixture {
    orgs: Vec<FixtureOrg>,
    users: Vec<FixtureUser>,
    tags: Vec<String>,
    segments: Vec<Value>,
    courses: Vec<FixtureCourse>,
    enrollments: Vec<FixtureEnrollment>,
    config: Map<String, Value>,
    secrets: Map<String, Value>,
    kv: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureOrg {
    id: String,
    name: String,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureUser {
    id: String,
    email: String,
    name: String,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    orgs: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    profile: Map<String, Value>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    manager_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureCourse {
    id: String,
    code: String,
    title: String,
    #[serde(default)]
    language: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureEnrollment {
    user: String,
    course: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    due_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
    #[serde(default)]
    progress: Option<i64>,
}

fn parse_time(field: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| anyhow::anyhow!("fixture {field}: {s} is not an RFC 3339 time"))
        })
        .transpose()
}

async fn load_fixture(tenant: &TenantDb, fixture: &Fixture) -> anyhow::Result<()> {
    let mut tx = tenant.begin().await?;
    let now = now_ms();
    let mut paths: HashMap<String, String> = HashMap::new();
    let mut pending: Vec<&FixtureOrg> = fixture.orgs.iter().collect();
    // Parents first, whatever order the fixture lists them in.
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for org in pending {
            let parent_path = match &org.parent {
                None => Some(String::from("/")),
                Some(p) => paths.get(p).cloned(),
            };
            let Some(parent_path) = parent_path else {
                rest.push(org);
                continue;
            };
            let path = format!("{parent_path}{}/", org.id);
            tx.query(
                "INSERT INTO orgs (id, tenant_id, parent_id, name, path, depth, external_id, created_at, updated_at) \
                 VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(org.id.clone())
            .bind(org.parent.clone())
            .bind(org.name.clone())
            .bind(path.clone())
            .bind(path.matches('/').count() as i64 - 2)
            .bind(org.external_id.clone())
            .bind(now)
            .execute(tx.conn())
            .await
            .with_context(|| format!("fixture org {}", org.id))?;
            paths.insert(org.id.clone(), path);
        }
        anyhow::ensure!(
            rest.len() < before,
            "fixture orgs: a parent is missing or the tree has a cycle"
        );
        pending = rest;
    }
    let mut tag_ids: HashMap<String, String> = HashMap::new();
    let all_tags = fixture
        .tags
        .iter()
        .chain(fixture.users.iter().flat_map(|u| u.tags.iter()));
    for tag in all_tags {
        if tag_ids.contains_key(&tag.to_lowercase()) {
            continue;
        }
        let id = new_id();
        tx.query("INSERT INTO tags (id, tenant_id, name, created_at) VALUES ($2, $1, $3, $4)")
            .bind(id.clone())
            .bind(tag.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
        tag_ids.insert(tag.to_lowercase(), id);
    }
    for user in &fixture.users {
        tx.query(
            "INSERT INTO users (id, tenant_id, email, name, locale, status, external_id, manager_id, profile, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(user.id.clone())
        .bind(user.email.clone())
        .bind(user.name.clone())
        .bind(user.locale.clone())
        .bind(user.status.clone().unwrap_or_else(|| "active".into()))
        .bind(user.external_id.clone())
        .bind(user.manager_id.clone())
        .bind(Value::Object(user.profile.clone()).to_string())
        .bind(now)
        .execute(tx.conn())
        .await
        .with_context(|| format!("fixture user {}", user.id))?;
        for org in &user.orgs {
            tx.query("INSERT INTO memberships (tenant_id, user_id, org_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(user.id.clone())
                .bind(org.clone())
                .bind(now)
                .execute(tx.conn())
                .await
                .with_context(|| format!("fixture user {}: org {org}", user.id))?;
        }
        for tag in &user.tags {
            tx.query("INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(user.id.clone())
                .bind(tag_ids[&tag.to_lowercase()].clone())
                .bind(now)
                .execute(tx.conn())
                .await?;
        }
    }
    for course in &fixture.courses {
        tx.query(
            "INSERT INTO courses (id, tenant_id, code, title, language, status, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, 'published', $6, $6)",
        )
        .bind(course.id.clone())
        .bind(course.code.clone())
        .bind(course.title.clone())
        .bind(course.language.clone().unwrap_or_else(|| "en".into()))
        .bind(now)
        .execute(tx.conn())
        .await
        .with_context(|| format!("fixture course {}", course.id))?;
    }
    for e in &fixture.enrollments {
        let status = e.status.clone().unwrap_or_else(|| "enrolled".into()).replace('-', "_");
        tx.query(
            "INSERT INTO enrollments (id, tenant_id, user_id, course_id, status, progress, due_at, completed_at, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(new_id())
        .bind(e.user.clone())
        .bind(e.course.clone())
        .bind(status)
        .bind(e.progress.unwrap_or(0))
        .bind(parse_time("due_at", &e.due_at)?)
        .bind(parse_time("completed_at", &e.completed_at)?)
        .bind(now)
        .execute(tx.conn())
        .await
        .with_context(|| format!("fixture enrollment {} in {}", e.user, e.course))?;
    }
    tx.commit().await?;
    Ok(())
}

/// `aula plugin test`: run one hook in a throwaway academy holding the fixture's data and print what it
/// answered and how close it came to each limit.
pub async fn test(
    config: &Config,
    wasm: &Path,
    manifest: Option<&Path>,
    hook: &str,
    input: Value,
    fixture: Option<&Path>,
) -> anyhow::Result<Value> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let fixture: Fixture = match fixture {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("fixture {}: {e}", path.display()))?
        }
        None => Fixture::default(),
    };
    let runtime = std::sync::Arc::new(Runtime::new(config.plugins.clone())?);
    let manifest = match find_manifest(wasm, manifest)? {
        Some(m) => m,
        None => {
            let (_, _, inspection) = runtime.compile(&bytes)?;
            synthesized(&inspection)?
        }
    };
    let call = HookCall::from_json(hook, input).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        call.kind() == manifest.kind,
        "{hook} is not a hook of a {} plugin (its hooks: {})",
        manifest.kind,
        manifest.kind.hooks().join(", ")
    );
    let dir = std::env::temp_dir().join(format!("aula-plugin-test-{}", new_id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_test(&runtime, &dir, manifest, bytes, call, &fixture).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn synthesized(inspection: &Inspection) -> anyhow::Result<Manifest> {
    let kind = inspection
        .world
        .context("the component implements no aula:plugin world, and there is no aula-plugin.toml to say more")?;
    Ok(Manifest {
        name: "local-test".into(),
        version: "0.0.0".into(),
        kind,
        description: String::new(),
        capabilities: inspection.needs().list(),
        config: Default::default(),
    })
}

async fn run_test(
    runtime: &std::sync::Arc<Runtime>,
    dir: &Path,
    manifest: Manifest,
    bytes: Vec<u8>,
    call: HookCall,
    fixture: &Fixture,
) -> anyhow::Result<Value> {
    let url = format!("sqlite:{}", dir.join("test.db").display());
    let db = Db::connect(&url, 2).await?;
    let actor = Actor::system("plugin test");
    let tenant = crate::lifecycle::create_tenant(
        &db,
        "plugin-test",
        "Plugin test",
        &[],
        TenantSettings::default(),
        &actor,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant_db = db.tenant(&tenant.id);
    load_fixture(&tenant_db, fixture).await?;
    if !fixture.segments.is_empty() {
        eprintln!("note: fixture segments are used by the SDK's FakeHost only; `aula plugin test` ignores them");
    }
    let settings = fixture.config.clone();
    let secrets = fixture.secrets.clone();
    let host = super::host::PluginHost::new(runtime.clone(), db.clone());
    let uploaded = store::deploy(&host, &tenant_db, &actor, manifest.clone(), bytes, settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let plugin_id = uploaded.plugin.id.clone();
    let mut tx = tenant_db.begin().await?;
    tx.query("UPDATE plugins SET secrets = $3, revision = revision + 1 WHERE tenant_id = $1 AND id = $2")
        .bind(plugin_id.clone())
        .bind(Value::Object(secrets).to_string())
        .execute(tx.conn())
        .await?;
    for (key, value) in &fixture.kv {
        let bytes = match value {
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        tx.query("INSERT INTO plugin_kv (tenant_id, plugin_id, key, value, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(plugin_id.clone())
            .bind(key.clone())
            .bind(bytes)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
    }
    tx.commit().await?;
    let loaded = host
        .load_active(&tenant_db, &plugin_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hook = call.name();
    let (result, stats) = runtime.invoke(&tenant_db, &loaded, View::Tenant, call).await;
    let limits = stats.limits;
    let percent = |used: usize, limit: usize| (used as f64 * 1000.0 / limit.max(1) as f64).round() / 10.0;
    let (outcome, output, error) = match result {
        Ok(output) => ("ok", serde_json::to_value(&output)?, None),
        Err(HookError::Plugin(m)) => ("plugin_error", Value::Null, Some(m)),
        Err(HookError::Fault { kind, message, .. }) => {
            ("fault", Value::Null, Some(format!("{}: {message}", kind.as_str())))
        }
        Err(HookError::Unavailable(m)) => ("unavailable", Value::Null, Some(m)),
        Err(HookError::Busy(busy)) => ("unavailable", Value::Null, Some(busy.to_string())),
    };
    let elapsed_ms = stats.elapsed.as_secs_f64() * 1000.0;
    db.close().await;
    Ok(json!({
        "hook": hook,
        "outcome": outcome,
        "output": output,
        "error": error,
        "measured": {
            "time_ms": (elapsed_ms * 1000.0).round() / 1000.0,
            "fuel": stats.fuel,
            "waited_for_turns_ms": stats.waited.as_secs_f64() * 1000.0,
            "in_host_ms": stats.in_host.as_secs_f64() * 1000.0,
            "peak_memory_bytes": stats.peak_memory,
            "host_data_bytes": stats.host_data,
            "output_bytes": stats.output,
        },
        "limits": {
            "time_ms": limits.timeout_ms,
            "fuel": limits.fuel(),
            "memory_bytes": limits.memory_bytes(),
            "host_data_bytes": limits.host_data_bytes(),
            "output_bytes": limits.output_bytes(),
        },
        "percent_of_limit": {
            "time": percent((elapsed_ms * 1000.0) as usize, limits.timeout_ms as usize * 1000),
            "fuel": percent(stats.fuel as usize, limits.fuel() as usize),
            "memory": percent(stats.peak_memory, limits.memory_bytes()),
            "host_data": percent(stats.host_data, limits.host_data_bytes()),
            "output": percent(stats.output, limits.output_bytes()),
        },
        "log": stats.log.iter().map(|l| json!({"level": l.level, "message": l.message})).collect::<Vec<_>>(),
        "log_dropped": stats.log_dropped,
        "ran_at": rfc3339(now_ms()),
        "capabilities": manifest.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
    }))
}
