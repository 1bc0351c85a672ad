//! Demo data for `aula serve --demo`: two academies that tell the story of the product.
//!
//! - **acme**: a company's internal academy. Divisions > departments > teams, staff placed by department,
//!   managers who see only their department, UK staff as a segment with a manager and a reporter.
//! - **globex**: a partner-training academy on its own domain. Each partner company is an organization with
//!   its own manager and member limit.
//!
//! Seeding is idempotent: an existing `acme` tenant means the demo is already there.

use crate::auth::password;
use crate::db::{Db, new_id, now_ms};
use crate::tenancy::TenantSettings;
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

mod acme;
mod content;
mod globex;
mod plugins;
mod seed;

use acme::seed_acme;
use globex::seed_globex;
pub use plugins::deploy_plugins;

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
    let hash = password::hash("", DEMO_PASSWORD.to_owned()).await?;

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
