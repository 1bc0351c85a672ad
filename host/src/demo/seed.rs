//! The helper every academy's seed writes through: organizations, users, tags, roles, courses, in one
//! transaction.

use crate::auth::Actor;
use crate::db::{TenantTx, new_id};
use serde_json::{Value, json};
use std::collections::HashMap;

pub(super) struct Seed<'a> {
    pub(super) tx: TenantTx,
    pub(super) hash: &'a str,
    pub(super) orgs: HashMap<&'static str, (String, String)>,
    pub(super) tags: HashMap<&'static str, String>,
    pub(super) roles: HashMap<String, String>,
    pub(super) now: i64,
}

impl Seed<'_> {
    pub(super) async fn org(
        &mut self,
        key: &'static str,
        name: &str,
        parent: Option<&str>,
        limit: Option<i64>,
    ) -> anyhow::Result<()> {
        let id = new_id();
        let (parent_id, path, depth) = match parent {
            Some(p) => {
                let (pid, ppath) = self.orgs[p].clone();
                let depth = ppath.matches('/').count() as i64 - 1;
                (Some(pid), format!("{ppath}{id}/"), depth)
            }
            None => (None, format!("/{id}/"), 0),
        };
        self.tx
            .query(
                "INSERT INTO orgs (id, tenant_id, parent_id, name, path, depth, member_limit, created_at, updated_at) \
                 VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(id.clone())
            .bind(parent_id)
            .bind(name.to_owned())
            .bind(path.clone())
            .bind(depth)
            .bind(limit)
            .bind(self.now)
            .execute(self.tx.conn())
            .await?;
        self.orgs.insert(key, (id, path));
        Ok(())
    }

    pub(super) async fn tag(&mut self, name: &'static str, description: &str) -> anyhow::Result<()> {
        let id = new_id();
        self.tx
            .query("INSERT INTO tags (id, tenant_id, name, description, created_at) VALUES ($2, $1, $3, $4, $5)")
            .bind(id.clone())
            .bind(name)
            .bind(description.to_owned())
            .bind(self.now)
            .execute(self.tx.conn())
            .await?;
        self.tags.insert(name, id);
        Ok(())
    }

    pub(super) async fn field(&mut self, key: &str, label: &str, kind: &str, choices: &[&str]) -> anyhow::Result<()> {
        self.tx
            .query(
                "INSERT INTO profile_fields (id, tenant_id, key, label, field_type, choices, required, created_at) \
                 VALUES ($2, $1, $3, $4, $5, $6, 0, $7)",
            )
            .bind(new_id())
            .bind(key.to_owned())
            .bind(label.to_owned())
            .bind(kind.to_owned())
            .bind(serde_json::to_string(choices)?)
            .bind(self.now)
            .execute(self.tx.conn())
            .await?;
        Ok(())
    }

    pub(super) async fn segment(&mut self, name: &str, definition: Value) -> anyhow::Result<String> {
        let id = new_id();
        self.tx
            .query(
                "INSERT INTO segments (id, tenant_id, name, description, definition, created_at, updated_at) \
                 VALUES ($2, $1, $3, NULL, $4, $5, $5)",
            )
            .bind(id.clone())
            .bind(name.to_owned())
            .bind(definition.to_string())
            .bind(self.now)
            .execute(self.tx.conn())
            .await?;
        Ok(id)
    }

    pub(super) async fn load_roles(&mut self) -> anyhow::Result<()> {
        use sqlx::Row;
        let rows = self
            .tx
            .query("SELECT id, key FROM roles WHERE tenant_id = $1")
            .fetch_all(self.tx.conn())
            .await?;
        for r in rows {
            self.roles.insert(r.try_get("key")?, r.try_get("id")?);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn user(
        &mut self,
        email: &str,
        name: &str,
        locale: &str,
        orgs: &[&str],
        tags: &[&str],
        profile: Value,
    ) -> anyhow::Result<String> {
        let id = new_id();
        self.tx
            .query(
                "INSERT INTO users (id, tenant_id, email, name, locale, status, profile, password_hash, created_at, updated_at) \
                 VALUES ($2, $1, $3, $4, $5, 'active', $6, $7, $8, $8)",
            )
            .bind(id.clone())
            .bind(email.to_owned())
            .bind(name.to_owned())
            .bind(locale.to_owned())
            .bind(profile.to_string())
            .bind(self.hash.to_owned())
            .bind(self.now)
            .execute(self.tx.conn())
            .await?;
        for org in orgs {
            self.tx
                .query("INSERT INTO memberships (tenant_id, user_id, org_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id.clone())
                .bind(self.orgs[org].0.clone())
                .bind(self.now)
                .execute(self.tx.conn())
                .await?;
        }
        for tag in tags {
            self.tx
                .query("INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id.clone())
                .bind(self.tags[tag].clone())
                .bind(self.now)
                .execute(self.tx.conn())
                .await?;
        }
        self.grant(&id, "learner", None, None).await?;
        Ok(id)
    }

    pub(super) async fn grant(
        &mut self,
        user: &str,
        role: &str,
        org: Option<&str>,
        segment: Option<&str>,
    ) -> anyhow::Result<()> {
        let scope_type = if org.is_some() {
            "org"
        } else if segment.is_some() {
            "segment"
        } else {
            "tenant"
        };
        self.tx
            .query(
                "INSERT INTO grants (id, tenant_id, user_id, role_id, scope_type, org_id, segment_id, created_at) \
                 VALUES ($2, $1, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new_id())
            .bind(user.to_owned())
            .bind(self.roles[role].clone())
            .bind(scope_type)
            .bind(org.map(|o| self.orgs[o].0.clone()))
            .bind(segment.map(str::to_owned))
            .bind(self.now)
            .execute(self.tx.conn())
            .await?;
        Ok(())
    }

    /// The academy's branding, organizations' overrides (by seed key) and uploaded theme files.
    pub(super) async fn branding(
        &mut self,
        settings: Value,
        orgs: &[(&str, Value)],
        files: &[(&str, &[u8])],
    ) -> anyhow::Result<()> {
        self.tx
            .query(
                "INSERT INTO tenant_branding (tenant_id, settings, theme_version, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(settings.to_string())
            .bind(i64::from(!files.is_empty()))
            .bind(self.now)
            .execute(self.tx.conn())
            .await?;
        for (key, settings) in orgs {
            let org_id = self.orgs[key].0.clone();
            self.tx
                .query("INSERT INTO org_branding (tenant_id, org_id, settings, updated_at) VALUES ($1, $2, $3, $4)")
                .bind(org_id)
                .bind(settings.to_string())
                .bind(self.now)
                .execute(self.tx.conn())
                .await?;
        }
        for (path, content) in files {
            self.tx
                .query(
                    "INSERT INTO theme_files (tenant_id, path, content, size, updated_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(path.to_string())
                .bind(content.to_vec())
                .bind(content.len() as i64)
                .bind(self.now)
                .execute(self.tx.conn())
                .await?;
        }
        Ok(())
    }

    pub(super) async fn finish(mut self, label: &str) -> anyhow::Result<()> {
        crate::audit::record(
            &mut self.tx,
            &Actor::system("demo"),
            crate::audit::Change {
                action: "demo.seed",
                target_type: "tenant",
                target_id: None,
                before: None,
                after: Some(json!({"seeded": label})),
            },
        )
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
