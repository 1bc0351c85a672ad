//! Demo data for `aula serve --demo`: two academies that tell the story of the product.
//!
//! - **acme**: a company's internal academy. Divisions > departments > teams, staff placed by department,
//!   managers who see only their department, UK staff as a segment with a manager and a reporter.
//! - **globex**: a partner-training academy on its own domain. Each partner company is an organization with
//!   its own manager and member limit.
//!
//! Seeding is idempotent: an existing `acme` tenant means the demo is already there.

use crate::auth::{Actor, password};
use crate::db::{Db, TenantTx, new_id, now_ms};
use crate::tenancy::TenantSettings;
use anyhow::Context;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashMap;
use std::fmt;

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "aula-demo-2026";

/// One account to log in with.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    /// Tenant slug (empty for the operator).
    pub tenant: String,
    /// E-mail.
    pub email: String,
    /// What they are.
    pub role: String,
}

/// What the demo created (or found).
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// The accounts.
    pub logins: Vec<DemoLogin>,
    /// Custom domains by tenant.
    pub domains: Vec<(String, String)>,
    /// The address the server listens on, filled in by `serve`.
    pub port: u16,
    /// The base domain.
    pub base_domain: String,
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port;
        let base = &self.base_domain;
        writeln!(
            f,
            "Demo academies are ready. Every account's password is {DEMO_PASSWORD:?}."
        )?;
        for tenant in ["acme", "globex"] {
            writeln!(f, "\n  {tenant}: http://{tenant}.{base}:{port}/")?;
            for (t, d) in self.domains.iter().filter(|(t, _)| t == tenant) {
                writeln!(f, "    (also {d}, mapped as the custom domain of {t})")?;
            }
            for l in self.logins.iter().filter(|l| l.tenant == tenant) {
                writeln!(f, "    {:<28} {}", l.email, l.role)?;
            }
        }
        writeln!(f, "\n  Sign in (the session cookie lands in demo.cookies):")?;
        writeln!(
            f,
            "    curl -c demo.cookies -H 'content-type: application/json' \\\n      -d '{{\"email\":\"emea.manager@acme.test\",\"password\":\"{DEMO_PASSWORD}\"}}' \\\n      http://acme.{base}:{port}/api/v1/auth/login"
        )?;
        writeln!(
            f,
            "    curl -b demo.cookies http://acme.{base}:{port}/api/v1/users   # only Sales EMEA"
        )?;
        writeln!(f, "\n  Platform operator (tenant lifecycle): operator@aula.test")?;
        write!(f, "  API reference: http://{base}:{port}/api/openapi.json")
    }
}

/// A demo employee of acme: e-mail, name, locale, team, tags, department.
type Staff = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
);
/// A demo partner learner of globex: e-mail, name, locale, org, tags, tier, country.
type Partner = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
);

struct Seed<'a> {
    tx: TenantTx,
    hash: &'a str,
    orgs: HashMap<&'static str, (String, String)>,
    tags: HashMap<&'static str, String>,
    roles: HashMap<String, String>,
    now: i64,
}

impl Seed<'_> {
    async fn org(
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

    async fn tag(&mut self, name: &'static str, description: &str) -> anyhow::Result<()> {
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

    async fn field(&mut self, key: &str, label: &str, kind: &str, choices: &[&str]) -> anyhow::Result<()> {
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

    async fn segment(&mut self, name: &str, definition: Value) -> anyhow::Result<String> {
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

    async fn load_roles(&mut self) -> anyhow::Result<()> {
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
    async fn user(
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

    async fn grant(&mut self, user: &str, role: &str, org: Option<&str>, segment: Option<&str>) -> anyhow::Result<()> {
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
    async fn branding(
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

    async fn finish(mut self, label: &str) -> anyhow::Result<()> {
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

/// Create the demo academies and operator, unless they exist already.
pub async fn seed(db: &Db) -> anyhow::Result<DemoSummary> {
    let mut summary = DemoSummary::default();
    let mut ptx = db.platform().begin().await?;
    let exists = crate::tenancy::by_slug(&mut ptx, "acme").await?.is_some();
    ptx.commit().await?;
    let login = |tenant: &str, email: &str, role: &str| DemoLogin {
        tenant: tenant.into(),
        email: email.into(),
        role: role.into(),
    };
    summary.logins = vec![
        login("acme", "admin@acme.test", "academy admin"),
        login(
            "acme",
            "emea.manager@acme.test",
            "org manager of Sales EMEA (sees only that department)",
        ),
        login("acme", "eng.manager@acme.test", "org manager of Engineering"),
        login("acme", "uk.lead@acme.test", "segment manager of 'UK staff'"),
        login(
            "acme",
            "uk.reporter@acme.test",
            "segment reporter of 'UK staff' (read-only)",
        ),
        login("acme", "instructor@acme.test", "instructor"),
        login("acme", "nora.north@acme.test", "learner (Sales EMEA > Team North)"),
        login("globex", "admin@globex.test", "academy admin"),
        login("globex", "manager@initech.test", "org manager of partner Initech"),
        login("globex", "manager@umbrella.test", "org manager of partner Umbrella"),
        login(
            "globex",
            "reporter@globex.test",
            "segment reporter of 'Certified partners'",
        ),
        login("globex", "instructor@globex.test", "instructor"),
        login("globex", "ines@initech.test", "learner (Initech Berlin)"),
    ];
    summary.domains = vec![("globex".into(), "learn.globex.test".into())];
    if exists {
        return Ok(summary);
    }
    let hash = password::hash(DEMO_PASSWORD.to_owned()).await?;

    // The operator and both tenants, in one platform transaction each step.
    let mut ptx = db.platform().begin().await?;
    let acme_settings = TenantSettings {
        default_locale: "en".into(),
        allowed_locales: vec!["en".into(), "de".into()],
        signup: "domain".into(),
        signup_requires_approval: false,
        seat_limit: None,
    };
    let globex_settings = TenantSettings {
        default_locale: "en".into(),
        allowed_locales: vec!["en".into(), "fr".into(), "es".into()],
        signup: "invitation".into(),
        signup_requires_approval: true,
        seat_limit: None,
    };
    let acme = crate::tenancy::insert(&mut ptx, "acme", "Acme Academy", &acme_settings).await?;
    let globex = crate::tenancy::insert(&mut ptx, "globex", "Globex Partner Training", &globex_settings).await?;
    sqlx::query("INSERT INTO tenant_domains (domain, tenant_id, created_at) VALUES ($1, $2, $3)")
        .bind("learn.globex.test")
        .bind(globex.clone())
        .bind(now_ms())
        .execute(ptx.conn())
        .await?;
    let has_operator: Option<String> =
        sqlx::query_scalar("SELECT id FROM operators WHERE lower(email) = 'operator@aula.test'")
            .fetch_optional(ptx.conn())
            .await?;
    if has_operator.is_none() {
        sqlx::query("INSERT INTO operators (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(new_id())
            .bind("operator@aula.test")
            .bind("Platform Operator")
            .bind(hash.clone())
            .bind(now_ms())
            .execute(ptx.conn())
            .await?;
    }
    ptx.commit().await?;

    seed_acme(db, &acme, &hash).await?;
    seed_globex(db, &globex, &hash).await?;
    Ok(summary)
}

async fn seed_acme(db: &Db, tenant_id: &str, hash: &str) -> anyhow::Result<()> {
    let tx = db.tenant(tenant_id).begin().await?;
    let mut s = Seed {
        tx,
        hash,
        orgs: HashMap::new(),
        tags: HashMap::new(),
        roles: HashMap::new(),
        now: now_ms(),
    };
    s.load_roles().await?;
    s.org("acme", "Acme", None, None).await?;
    s.org("sales", "Sales", Some("acme"), None).await?;
    s.org("emea", "Sales EMEA", Some("sales"), None).await?;
    s.org("north", "Team North", Some("emea"), None).await?;
    s.org("south", "Team South", Some("emea"), None).await?;
    s.org("americas", "Sales Americas", Some("sales"), None).await?;
    s.org("west", "Team West", Some("americas"), None).await?;
    s.org("eng", "Engineering", Some("acme"), None).await?;
    s.org("platform", "Platform", Some("eng"), None).await?;
    s.org("sre", "SRE", Some("platform"), None).await?;
    s.org("product", "Product", Some("eng"), None).await?;
    for (tag, d) in [
        ("REGION_UK", "Based in the United Kingdom"),
        ("REGION_DE", "Based in Germany"),
        ("REGION_US", "Based in the United States"),
        ("COHORT_Q2_2026", "Joined in Q2 2026"),
        ("ROLE_MANAGER", "People managers"),
    ] {
        s.tag(tag, d).await?;
    }
    s.field("employee_id", "Employee ID", "text", &[]).await?;
    s.field(
        "department",
        "Department",
        "choice",
        &["Sales", "Engineering", "Operations"],
    )
    .await?;
    s.field("job_title", "Job title", "text", &[]).await?;
    s.field("start_date", "Start date", "date", &[]).await?;
    s.field(
        "employment_status",
        "Employment status",
        "choice",
        &["active", "terminated", "seconded"],
    )
    .await?;
    let uk = s
        .segment("UK staff", json!({"tags_any": [s.tags["REGION_UK"]]}))
        .await?;
    s.segment(
        "New hires Q2 2026",
        json!({"tags_all": [s.tags["COHORT_Q2_2026"]], "statuses": ["active"]}),
    )
    .await?;

    let p = |n: u32, dept: &str, title: &str| json!({"employee_id": format!("A{n:04}"), "department": dept, "job_title": title, "start_date": "2026-04-01", "employment_status": "active"});
    let admin = s
        .user(
            "admin@acme.test",
            "Alice Admin",
            "en",
            &["acme"],
            &[],
            p(1, "Operations", "L&D lead"),
        )
        .await?;
    s.grant(&admin, "tenant_admin", None, None).await?;
    let emea = s
        .user(
            "emea.manager@acme.test",
            "Elena Manager",
            "de",
            &["emea"],
            &["REGION_DE", "ROLE_MANAGER"],
            p(2, "Sales", "Head of Sales EMEA"),
        )
        .await?;
    s.grant(&emea, "org_manager", Some("emea"), None).await?;
    let eng = s
        .user(
            "eng.manager@acme.test",
            "Erik Engineer",
            "en",
            &["eng"],
            &["REGION_US", "ROLE_MANAGER"],
            p(3, "Engineering", "VP Engineering"),
        )
        .await?;
    s.grant(&eng, "org_manager", Some("eng"), None).await?;
    let lead = s
        .user(
            "uk.lead@acme.test",
            "Uma Lead",
            "en",
            &["north"],
            &["REGION_UK", "ROLE_MANAGER"],
            p(4, "Sales", "UK compliance lead"),
        )
        .await?;
    s.grant(&lead, "segment_manager", None, Some(&uk)).await?;
    let reporter = s
        .user(
            "uk.reporter@acme.test",
            "Ravi Reporter",
            "en",
            &["acme"],
            &[],
            p(5, "Operations", "Analyst"),
        )
        .await?;
    s.grant(&reporter, "segment_reporter", None, Some(&uk)).await?;
    let instructor = s
        .user(
            "instructor@acme.test",
            "Ivy Instructor",
            "en",
            &["acme"],
            &[],
            p(6, "Operations", "Trainer"),
        )
        .await?;
    s.grant(&instructor, "instructor", None, None).await?;
    let people: [Staff; 14] = [
        (
            "nora.north@acme.test",
            "Nora North",
            "en",
            "north",
            &["REGION_UK", "COHORT_Q2_2026"],
            "Sales",
        ),
        (
            "noah.north@acme.test",
            "Noah North",
            "en",
            "north",
            &["REGION_UK"],
            "Sales",
        ),
        (
            "nina.north@acme.test",
            "Nina North",
            "de",
            "north",
            &["REGION_DE"],
            "Sales",
        ),
        (
            "sam.south@acme.test",
            "Sam South",
            "en",
            "south",
            &["REGION_UK", "COHORT_Q2_2026"],
            "Sales",
        ),
        (
            "sara.south@acme.test",
            "Sara South",
            "de",
            "south",
            &["REGION_DE"],
            "Sales",
        ),
        (
            "will.west@acme.test",
            "Will West",
            "en",
            "west",
            &["REGION_US"],
            "Sales",
        ),
        (
            "wanda.west@acme.test",
            "Wanda West",
            "en",
            "west",
            &["REGION_US", "COHORT_Q2_2026"],
            "Sales",
        ),
        (
            "pia.platform@acme.test",
            "Pia Platform",
            "de",
            "platform",
            &["REGION_DE"],
            "Engineering",
        ),
        (
            "seth.sre@acme.test",
            "Seth SRE",
            "en",
            "sre",
            &["REGION_UK"],
            "Engineering",
        ),
        (
            "sofia.sre@acme.test",
            "Sofia SRE",
            "en",
            "sre",
            &["REGION_US", "COHORT_Q2_2026"],
            "Engineering",
        ),
        (
            "paul.product@acme.test",
            "Paul Product",
            "en",
            "product",
            &["REGION_UK"],
            "Engineering",
        ),
        (
            "priya.product@acme.test",
            "Priya Product",
            "en",
            "product",
            &["REGION_US"],
            "Engineering",
        ),
        (
            "omar.ops@acme.test",
            "Omar Ops",
            "en",
            "acme",
            &["REGION_UK"],
            "Operations",
        ),
        (
            "olga.ops@acme.test",
            "Olga Ops",
            "de",
            "acme",
            &["REGION_DE", "COHORT_Q2_2026"],
            "Operations",
        ),
    ];
    for (i, (email, name, locale, org, tags, dept)) in people.iter().enumerate() {
        s.user(email, name, locale, &[org], tags, p(100 + i as u32, dept, "Specialist"))
            .await?;
    }
    s.branding(
        json!({
            "colors": { "accent": "#0b7285", "link": "#0b7285" },
            "wording": {
                "*": { "catalog.title": "Acme course catalog", "home.lead": "Everything Acme people learn, in one place." },
                "de": { "catalog.title": "Acme-Kurskatalog", "home.lead": "Alles, was man bei Acme lernt, an einem Ort." }
            },
        }),
        &[("eng", json!({ "colors": { "accent": "#2f9e44" }, "wording": { "*": { "home.lead": "Courses for Acme engineers." } } }))],
        &[],
    )
    .await?;
    s.finish("acme").await
}

async fn seed_globex(db: &Db, tenant_id: &str, hash: &str) -> anyhow::Result<()> {
    let tx = db.tenant(tenant_id).begin().await?;
    let mut s = Seed {
        tx,
        hash,
        orgs: HashMap::new(),
        tags: HashMap::new(),
        roles: HashMap::new(),
        now: now_ms(),
    };
    s.load_roles().await?;
    s.org("root", "Globex Partners", None, None).await?;
    s.org("initech", "Initech", Some("root"), Some(25)).await?;
    s.org("initech_emea", "Initech EMEA", Some("initech"), None).await?;
    s.org("initech_berlin", "Initech Berlin", Some("initech_emea"), None)
        .await?;
    s.org("umbrella", "Umbrella", Some("root"), Some(10)).await?;
    s.org("umbrella_apac", "Umbrella APAC", Some("umbrella"), None).await?;
    s.org("umbrella_tokyo", "Umbrella Tokyo", Some("umbrella_apac"), None)
        .await?;
    s.org("hooli", "Hooli", Some("root"), Some(15)).await?;
    s.org("hooli_na", "Hooli North America", Some("hooli"), None).await?;
    for (tag, d) in [
        ("CERTIFIED_2026", "Holds the 2026 partner certification"),
        ("TIER_GOLD", "Gold partner"),
        ("TIER_SILVER", "Silver partner"),
        ("SALES_ENGINEER", "Partner sales engineers"),
    ] {
        s.tag(tag, d).await?;
    }
    s.field("partner_tier", "Partner tier", "choice", &["gold", "silver", "bronze"])
        .await?;
    s.field("country", "Country", "text", &[]).await?;
    s.field("certified_on", "Certified on", "date", &[]).await?;
    let certified = s
        .segment("Certified partners", json!({"tags_all": [s.tags["CERTIFIED_2026"]]}))
        .await?;
    s.segment(
        "Gold tier",
        json!({"fields": [{"key": "partner_tier", "op": "eq", "values": ["gold"]}]}),
    )
    .await?;

    let admin = s
        .user(
            "admin@globex.test",
            "Gina Globex",
            "en",
            &["root"],
            &[],
            json!({"country": "US"}),
        )
        .await?;
    s.grant(&admin, "tenant_admin", None, None).await?;
    let im = s
        .user(
            "manager@initech.test",
            "Ian Initech",
            "en",
            &["initech"],
            &["TIER_GOLD"],
            json!({"partner_tier": "gold", "country": "DE"}),
        )
        .await?;
    s.grant(&im, "org_manager", Some("initech"), None).await?;
    let um = s
        .user(
            "manager@umbrella.test",
            "Umi Umbrella",
            "fr",
            &["umbrella"],
            &["TIER_SILVER"],
            json!({"partner_tier": "silver", "country": "JP"}),
        )
        .await?;
    s.grant(&um, "org_manager", Some("umbrella"), None).await?;
    let rep = s
        .user(
            "reporter@globex.test",
            "Rita Reporter",
            "en",
            &["root"],
            &[],
            json!({"country": "US"}),
        )
        .await?;
    s.grant(&rep, "segment_reporter", None, Some(&certified)).await?;
    let ins = s
        .user(
            "instructor@globex.test",
            "Igor Instructor",
            "es",
            &["root"],
            &[],
            json!({"country": "ES"}),
        )
        .await?;
    s.grant(&ins, "instructor", None, None).await?;
    let people: [Partner; 10] = [
        (
            "ines@initech.test",
            "Ines Initech",
            "en",
            "initech_berlin",
            &["CERTIFIED_2026", "TIER_GOLD"],
            "gold",
            "DE",
        ),
        (
            "ivo@initech.test",
            "Ivo Initech",
            "en",
            "initech_berlin",
            &["TIER_GOLD"],
            "gold",
            "DE",
        ),
        (
            "iris@initech.test",
            "Iris Initech",
            "fr",
            "initech_emea",
            &["CERTIFIED_2026", "SALES_ENGINEER"],
            "gold",
            "FR",
        ),
        (
            "ulla@umbrella.test",
            "Ulla Umbrella",
            "en",
            "umbrella_tokyo",
            &["TIER_SILVER"],
            "silver",
            "JP",
        ),
        (
            "ugo@umbrella.test",
            "Ugo Umbrella",
            "es",
            "umbrella_tokyo",
            &["CERTIFIED_2026", "TIER_SILVER"],
            "silver",
            "JP",
        ),
        (
            "uma@umbrella.test",
            "Uma Umbrella",
            "en",
            "umbrella_apac",
            &["SALES_ENGINEER"],
            "silver",
            "SG",
        ),
        (
            "hank@hooli.test",
            "Hank Hooli",
            "en",
            "hooli_na",
            &["CERTIFIED_2026"],
            "bronze",
            "US",
        ),
        ("hera@hooli.test", "Hera Hooli", "es", "hooli_na", &[], "bronze", "MX"),
        (
            "hugo@hooli.test",
            "Hugo Hooli",
            "fr",
            "hooli",
            &["SALES_ENGINEER"],
            "bronze",
            "CA",
        ),
        (
            "holly@hooli.test",
            "Holly Hooli",
            "en",
            "hooli_na",
            &["CERTIFIED_2026"],
            "bronze",
            "US",
        ),
    ];
    for (email, name, locale, org, tags, tier, country) in people {
        s.user(
            email,
            name,
            locale,
            &[org],
            tags,
            json!({"partner_tier": tier, "country": country}),
        )
        .await?;
    }
    s.branding(
        json!({
            "logo_url": "/theme/img/globex.svg",
            "colors": { "accent": "#5f3dc4", "accent-text": "#ffffff", "link": "#5f3dc4", "background": "#f8f7fc" },
            "font_family": "Georgia, \"Times New Roman\", serif",
            "wording": {
                "*": { "catalog.title": "Partner curriculum", "nav.catalog": "Curriculum", "home.lead": "Training for Globex partners: install, sell and support." }
            },
            "landing": "# Globex Partner Training\n\nCertification paths for installers, sellers and support staff of our partner companies.",
        }),
        &[("umbrella", json!({ "colors": { "accent": "#c92a2a" } }))],
        &[("assets/img/globex.svg", GLOBEX_LOGO)],
    )
    .await?;
    s.finish("globex").await
}

/// The globex demo's uploaded logo (a theme file).
const GLOBEX_LOGO: &[u8] = br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><circle cx="20" cy="20" r="19" fill="#ffffff"/><circle cx="20" cy="20" r="15" fill="none" stroke="#5f3dc4" stroke-width="3"/><path d="M5 20h30M20 5c-6 8-6 22 0 30M20 5c6 8 6 22 0 30" fill="none" stroke="#5f3dc4" stroke-width="2"/></svg>"##;

/// A demo course: code, title, language.
type DemoCourse = (&'static str, &'static str, &'static str);

/// The demo's courses per academy (slug, name, courses).
const DEMO_COURSES: &[(&str, &str, &[DemoCourse])] = &[
    (
        "acme",
        "Acme Academy",
        &[
            ("ONBOARD-100", "Welcome to Acme", "en"),
            ("SAFE-101", "Workplace safety", "en"),
            ("SALES-201", "Consultative selling", "en"),
            ("SEC-110", "Security basics", "de"),
        ],
    ),
    (
        "globex",
        "Globex Partner Training",
        &[
            ("PARTNER-101", "Partner onboarding", "en"),
            ("CERT-300", "Globex certified installer", "en"),
            ("PROD-120", "Présentation des produits", "fr"),
        ],
    ),
];

/// Which example plugin each demo academy runs, with its settings: the two academies differ, so the
/// difference shows (acme gets reminders, globex does not; colors, wording and placement differ).
fn demo_plugins(tenant: &str) -> Vec<(&'static str, &'static str, Value)> {
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
fn demo_manifest(name: &str) -> Option<&'static str> {
    match name {
        "org-branding" => Some(include_str!("../../plugins/org-branding/aula-plugin.toml")),
        "domain-placement" => Some(include_str!("../../plugins/domain-placement/aula-plugin.toml")),
        "localized-reminders" => Some(include_str!("../../plugins/localized-reminders/aula-plugin.toml")),
        "completion-by-org" => Some(include_str!("../../plugins/completion-by-org/aula-plugin.toml")),
        _ => None,
    }
}

/// Seed the demo courses (with some enrollments) and deploy the example plugins from `wasm_dir` (where
/// `cargo build --target wasm32-wasip2` put them) to the demo academies. Does nothing where it was done.
pub async fn deploy_plugins(state: &crate::state::AppState, wasm_dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let db = &state.db;
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
            crate::plugins::store::deploy(&state.plugins, &tenant_db, &actor, manifest, bytes, settings)
                .await
                .map_err(|e| anyhow::anyhow!("deploying {name} to {slug}: {e}"))?;
            deployed.push(format!("{slug}: {name}"));
        }
    }
    Ok(deployed)
}

/// Every demo course gets a reading, a video and a short quiz; the second course certifies for a year and is
/// due a month after enrolling.
async fn seed_lessons(tx: &mut crate::db::TenantTx, courses: &[String], now: i64) -> anyhow::Result<()> {
    let quiz = serde_json::json!([
        {"prompt": "Who can see your academy's data?", "choices": ["Anyone", "Your academy only"], "correct": [1]},
        {"prompt": "Which of these are safe habits?", "choices": ["Locking your screen", "Sharing passwords", "Reporting incidents"], "correct": [0, 2]}
    ]);
    for course in courses {
        let lessons = [
            (
                "text",
                "Read me first",
                "## Welcome\n\nThis course takes about **ten minutes**. Work through each lesson, then take the quiz.",
                None,
            ),
            (
                "media",
                "Watch: the short version",
                "",
                Some("https://www.example.com/videos/intro"),
            ),
            ("quiz", "Check what you know", "", None),
        ];
        for (position, (kind, title, body, url)) in lessons.into_iter().enumerate() {
            tx.query(
                "INSERT INTO lessons (id, tenant_id, course_id, position, kind, title, body, media_url, questions, pass_percent, max_attempts, created_at, updated_at) \
                 VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
            )
            .bind(new_id())
            .bind(course.clone())
            .bind(position as i64 + 1)
            .bind(kind)
            .bind(title)
            .bind(body)
            .bind(url)
            .bind(if kind == "quiz" { quiz.to_string() } else { "[]".into() })
            .bind(if kind == "quiz" { Some(100i64) } else { None })
            .bind(if kind == "quiz" { Some(3i64) } else { None })
            .bind(now)
            .execute(tx.conn())
            .await?;
        }
    }
    if let Some(second) = courses.get(1) {
        tx.query("UPDATE courses SET certificate_valid_days = 365, due_days = 30 WHERE tenant_id = $1 AND id = $2")
            .bind(second.clone())
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

async fn seed_courses(tenant: &crate::db::TenantDb, courses: &[(&str, &str, &str)]) -> anyhow::Result<()> {
    let mut tx = tenant.begin().await?;
    let any = tx
        .query("SELECT 1 FROM courses WHERE tenant_id = $1 LIMIT 1")
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    if any {
        return Ok(());
    }
    let now = now_ms();
    let mut ids = Vec::new();
    for (code, title, language) in courses {
        let id = new_id();
        tx.query(
            "INSERT INTO courses (id, tenant_id, code, title, language, status, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, 'published', $6, $6)",
        )
        .bind(id.clone())
        .bind(*code)
        .bind(*title)
        .bind(*language)
        .bind(now)
        .execute(tx.conn())
        .await?;
        ids.push(id);
    }
    seed_lessons(&mut tx, &ids, now).await?;
    // New people are enrolled in the first course by a built-in rule, due in two weeks.
    tx.query(
        "INSERT INTO rules (id, tenant_id, name, definition, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, $5)",
    )
    .bind(new_id())
    .bind("Everyone new takes the first course")
    .bind(
        serde_json::json!({"on": ["user_created"], "then": [{"type": "enroll", "course_id": ids[0], "due_in_days": 14}]})
            .to_string(),
    )
    .bind(now)
    .execute(tx.conn())
    .await?;
    // Every learner is enrolled in the first course; every third completed it, every other one is in progress.
    let users = tx
        .query("SELECT id FROM users WHERE tenant_id = $1 ORDER BY email")
        .fetch_all(tx.conn())
        .await?;
    for (i, row) in users.iter().enumerate() {
        let user: String = row.try_get(0)?;
        let (status, progress, completed) = match i % 3 {
            0 => ("completed", 100, Some(now - 86_400_000 * (i as i64 % 20 + 1))),
            1 => ("in_progress", 40, None),
            _ => ("enrolled", 0, None),
        };
        tx.query(
            "INSERT INTO enrollments (id, tenant_id, user_id, course_id, status, progress, due_at, completed_at, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(new_id())
        .bind(user)
        .bind(ids[0].clone())
        .bind(status)
        .bind(progress as i64)
        .bind(now + 86_400_000 * 14)
        .bind(completed)
        .bind(now)
        .execute(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
