//! Enrollment automation over many new users: the built-in rules alone, then the rules plus the example
//! enrollment plugin (domain-placement), each over the same number of new users in one academy on SQLite.
//! Prints users per second, the plugin's share of the time, and the process's peak memory.
//!
//! Needs the example plugins built as components (`benches/learning.sh` builds them and runs this).
//! `AULA_BENCH_USERS` sets the number of users per run (default 100000).

use aula::auth::Actor;
use aula::db::{Db, Sql, TenantDb, new_id, now_ms};
use aula::learning::automation::{self, Context, Event};
use aula::plugins::manifest::Manifest;
use aula::state::AppState;
use serde_json::json;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// New users per transaction, as an HR import would send them.
const BATCH: usize = 1000;
/// Rows per multi-row insert, as the host writes them (`learning::CHUNK`).
const ROWS_PER_INSERT: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users: usize = std::env::var("AULA_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = root.join("target/wasm/wasm32-wasip2/release/domain_placement.wasm");
    let bytes = std::fs::read(&wasm).map_err(|_| {
        anyhow::anyhow!(
            "{} is missing: run benches/learning.sh, which builds the example plugins first",
            wasm.display()
        )
    })?;
    let dir = std::env::temp_dir().join(format!("aula-bench-automation-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = Db::connect(&format!("sqlite:{}", dir.join("bench.db").display()), 4).await?;
    let actor = Actor::system("bench");
    let tenant = aula::lifecycle::create_tenant(&db, "bench", "Bench", &[], Default::default(), &actor)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant = db.tenant(&tenant.id);
    let staff = seed(&tenant).await?;
    let state = AppState::new(db.clone(), aula::config::Config::default(), json!({}));

    let rules_only = run(&state, &tenant, &staff, "r", users).await?;
    let manifest = Manifest::from_toml(&std::fs::read_to_string(
        root.join("plugins/domain-placement/aula-plugin.toml"),
    )?)
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings = json!({ "domains": { "acme.test": "Sales" }, "courses": ["SEC-1"], "due_in_days": 14 });
    let serde_json::Value::Object(settings) = settings else {
        unreachable!()
    };
    aula::plugins::store::deploy(&state.plugins, &tenant, &actor, manifest, bytes, settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let with_plugin = run(&state, &tenant, &staff, "p", users).await?;

    let rate = |d: Duration| users as f64 / d.as_secs_f64();
    let share = 1.0 - rules_only.as_secs_f64() / with_plugin.as_secs_f64();
    println!("users per run:            {users}");
    println!(
        "rules only:               {:>8.0} users/s ({:.2} s)",
        rate(rules_only),
        rules_only.as_secs_f64()
    );
    println!(
        "rules + enrollment plugin:{:>8.0} users/s ({:.2} s)",
        rate(with_plugin),
        with_plugin.as_secs_f64()
    );
    println!("plugin's share of time:   {:>7.1} %", share * 100.0);
    println!("peak memory (VmHWM):      {}", peak_memory());
    verify(&tenant, users).await?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Two organizations, a tag, three courses and three rules that chain: a new member of Staff is enrolled in
/// onboarding; an acme.test address is tagged, which (a change) enrolls in the second course.
async fn seed(tenant: &TenantDb) -> anyhow::Result<String> {
    let now = now_ms();
    let mut tx = tenant.begin().await?;
    let staff = new_id();
    let sales = new_id();
    for (id, parent, name, path, depth) in [
        (&staff, None, "Staff", format!("/{staff}/"), 0),
        (&sales, Some(&staff), "Sales", format!("/{staff}/{sales}/"), 1),
    ] {
        tx.query("INSERT INTO orgs (id, tenant_id, parent_id, name, path, depth, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, $6, $7, $7)")
            .bind(id.clone()).bind(parent.cloned()).bind(name).bind(path).bind(depth).bind(now)
            .execute(tx.conn()).await?;
    }
    tx.query("INSERT INTO tags (id, tenant_id, name, created_at) VALUES ($2, $1, 'onboarding', $3)")
        .bind(new_id())
        .bind(now)
        .execute(tx.conn())
        .await?;
    let mut courses = Vec::new();
    for code in ["ONB-1", "ONB-2", "SEC-1"] {
        let id = new_id();
        tx.query("INSERT INTO courses (id, tenant_id, code, title, status, created_at, updated_at) VALUES ($2, $1, $3, $3, 'published', $4, $4)")
            .bind(id.clone()).bind(code).bind(now).execute(tx.conn()).await?;
        courses.push(id);
    }
    let rules = [
        (
            "Staff onboarding",
            json!({"on": ["user_created"], "when": {"org_id": staff}, "then": [{"type": "enroll", "course_id": courses[0], "due_in_days": 30}]}),
        ),
        (
            "acme.test addresses",
            json!({"on": ["user_created"], "when": {"email_domain": "acme.test"}, "then": [{"type": "add_tag", "tag": "onboarding"}]}),
        ),
        (
            "Tagged onboarding",
            json!({"on": ["user_changed"], "when": {"tag": "onboarding"}, "then": [{"type": "enroll", "course_id": courses[1], "due_in_days": 60}]}),
        ),
    ];
    for (name, def) in rules {
        tx.query("INSERT INTO rules (id, tenant_id, name, definition, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, $5)")
            .bind(new_id()).bind(name).bind(def.to_string()).bind(now).execute(tx.conn()).await?;
    }
    tx.commit().await?;
    Ok(staff)
}

/// Create `users` new members of Staff in batches; each batch commits with what the rules did, then the
/// enrollment plugins run on it.
async fn run(state: &AppState, tenant: &TenantDb, staff: &str, prefix: &str, users: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut made = 0;
    while made < users {
        let n = BATCH.min(users - made);
        let ids: Vec<String> = (0..n).map(|_| new_id()).collect();
        let now = now_ms();
        let mut tx = tenant.begin().await?;
        for (at, chunk) in ids.chunks(ROWS_PER_INSERT).enumerate() {
            let first = made + at * ROWS_PER_INSERT;
            let mut sql = Sql::tenant(
                "INSERT INTO users (tenant_id, id, email, name, status, profile, created_at, updated_at) VALUES ",
            );
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("($1, ").push_bind(id.as_str()).push(", ");
                sql.push_bind(format!("{prefix}{}@acme.test", first + i)).push(", ");
                sql.push_bind(format!("Learner {}", first + i))
                    .push(", 'active', '{}', ")
                    .push_bind(now)
                    .push(", ")
                    .push_bind(now)
                    .push(")");
            }
            tx.execute_sql(&sql).await?;
            let mut sql = Sql::tenant("INSERT INTO memberships (tenant_id, user_id, org_id, created_at) VALUES ");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("($1, ")
                    .push_bind(id.as_str())
                    .push(", ")
                    .push_bind(staff)
                    .push(", ")
                    .push_bind(now)
                    .push(")");
            }
            tx.execute_sql(&sql).await?;
        }
        let events = ids.iter().map(|id| Event::created(id)).collect();
        let pending = automation::run_rules(&mut tx, events, Context::academy(Actor::system("import"))).await?;
        tx.commit().await?;
        automation::after_commit(&state.plugins, tenant, pending).await;
        made += n;
    }
    Ok(started.elapsed())
}

/// The figures mean something only if the work was done: every user of both runs has both onboarding
/// enrollments, and every user of the plugin's run was placed in Sales and enrolled in SEC-1 by the plugin.
async fn verify(tenant: &TenantDb, users: usize) -> anyhow::Result<()> {
    let mut tx = tenant.begin_read().await?;
    let by_source: Vec<(String, i64)> = tx
        .query("SELECT source, COUNT(*) FROM enrollments WHERE tenant_id = $1 GROUP BY source ORDER BY source")
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| Ok((sqlx::Row::try_get(r, 0)?, sqlx::Row::try_get(r, 1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    tx.commit().await?;
    println!("enrollments by source:    {by_source:?}");
    let rule = by_source.iter().find(|(s, _)| s == "rule").map_or(0, |(_, n)| *n);
    let plugin = by_source.iter().find(|(s, _)| s == "plugin").map_or(0, |(_, n)| *n);
    anyhow::ensure!(
        rule == 4 * users as i64,
        "expected {} rule enrollments, found {rule}",
        4 * users
    );
    anyhow::ensure!(
        plugin == users as i64,
        "expected {users} plugin enrollments, found {plugin}"
    );
    Ok(())
}

fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
