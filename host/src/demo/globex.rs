//! globex: a partner-training academy on its own domain. Each partner company is an organization with its own
//! manager and member limit.

use super::seed::*;
use super::*;
use crate::db::{Db, now_ms};
use serde_json::json;
use std::collections::HashMap;

pub(super) async fn seed_globex(db: &Db, tenant_id: &str, hash: &str) -> anyhow::Result<()> {
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
pub(super) const GLOBEX_LOGO: &[u8] = br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><circle cx="20" cy="20" r="19" fill="#ffffff"/><circle cx="20" cy="20" r="15" fill="none" stroke="#5f3dc4" stroke-width="3"/><path d="M5 20h30M20 5c-6 8-6 22 0 30M20 5c6 8 6 22 0 30" fill="none" stroke="#5f3dc4" stroke-width="2"/></svg>"##;
