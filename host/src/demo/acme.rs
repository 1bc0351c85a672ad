//! acme: a company's internal academy. Divisions > departments > teams, staff placed by department, managers
//! who see only their department, UK staff as a segment with a manager and a reporter.

use super::seed::*;
use super::*;
use crate::db::{Db, now_ms};
use serde_json::json;
use std::collections::HashMap;

pub(super) async fn seed_acme(db: &Db, tenant_id: &str, hash: &str) -> anyhow::Result<()> {
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
