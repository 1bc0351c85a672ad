//! Seed a database for the load benchmarks: N tenants with U users each (orgs, memberships, tags), plus one
//! tenant-admin API token per tenant, printed as `slug token` lines.
//!
//! `cargo run --release -p aula --example bench_seed -- sqlite:/tmp/bench.db 2 10000`

use aula::db::{Db, new_id, now_ms};
use aula::tenancy::TenantSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "sqlite:/tmp/aula-bench.db".into());
    let tenants: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let users: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let db = Db::connect(&url, 4).await?;
    let hash = aula::auth::password::hash_blocking("bench-password-123")?;
    for t in 0..tenants {
        let slug = format!("bench{t}");
        let mut ptx = db.platform().begin().await?;
        let tenant_id =
            aula::tenancy::insert(&mut ptx, &slug, &format!("Bench {t}"), &TenantSettings::default()).await?;
        ptx.commit().await?;
        let mut tx = db.tenant(&tenant_id).begin().await?;
        let now = now_ms();
        // Ten top-level orgs with ten children each.
        let mut leaves = Vec::new();
        for d in 0..10 {
            let root = new_id();
            tx.query("INSERT INTO orgs (id, tenant_id, parent_id, name, path, depth, created_at, updated_at) VALUES ($2, $1, NULL, $3, $4, 0, $5, $5)")
                .bind(root.clone()).bind(format!("Division {d}")).bind(format!("/{root}/")).bind(now)
                .execute(tx.conn()).await?;
            for k in 0..10 {
                let leaf = new_id();
                tx.query("INSERT INTO orgs (id, tenant_id, parent_id, name, path, depth, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, 1, $6, $6)")
                    .bind(leaf.clone()).bind(root.clone()).bind(format!("Team {d}.{k}")).bind(format!("/{root}/{leaf}/")).bind(now)
                    .execute(tx.conn()).await?;
                leaves.push(leaf);
            }
        }
        let tag = new_id();
        tx.query("INSERT INTO tags (id, tenant_id, name, created_at) VALUES ($2, $1, 'BENCH', $3)")
            .bind(tag.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
        let mut admin = String::new();
        for i in 0..users {
            let id = new_id();
            if i == 0 {
                admin = id.clone();
            }
            tx.query("INSERT INTO users (id, tenant_id, email, name, locale, status, profile, password_hash, created_at, updated_at) VALUES ($2, $1, $3, $4, 'en', 'active', '{}', $5, $6, $6)")
                .bind(id.clone()).bind(format!("user{i}@{slug}.test")).bind(format!("User {i}")).bind(hash.clone()).bind(now)
                .execute(tx.conn()).await?;
            tx.query("INSERT INTO memberships (tenant_id, user_id, org_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id.clone())
                .bind(leaves[i % leaves.len()].clone())
                .bind(now)
                .execute(tx.conn())
                .await?;
            if i % 3 == 0 {
                tx.query("INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(id.clone())
                    .bind(tag.clone())
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
            }
        }
        tx.query("INSERT INTO grants (id, tenant_id, user_id, role_id, scope_type, created_at) SELECT $2, $1, $3, id, 'tenant', $4 FROM roles WHERE tenant_id = $1 AND key = 'tenant_admin'")
            .bind(new_id()).bind(admin.clone()).bind(now).execute(tx.conn()).await?;
        let token = aula::auth::issue_token(&mut tx, &admin, "bench", 1).await?.token;
        tx.commit().await?;
        println!("{slug} {token}");
    }
    db.close().await;
    Ok(())
}
