use aula_sdk::testing::{FakeHost, FakeOrg};
use serde_json::json;

use super::*;

fn academy() -> FakeHost {
    FakeHost::new()
        .org(FakeOrg::new("o-acme", "Acme"))
        .org(FakeOrg::new("o-sales", "Sales").parent("o-acme").external_id("S1"))
        .org(FakeOrg::new("o-north", "North").parent("o-sales"))
        .org(FakeOrg::new("o-eng", "Engineering").parent("o-acme").external_id("ENG"))
        .config("accent", "#123456")
        .config(
            "wording",
            json!({"*": {"catalog.title": "Courses"}, "de": {"catalog.title": "Kurse"}}),
        )
        .config(
            "orgs",
            json!([
                {"org": "sales", "colors": {"accent": "#d9480f"}, "logo_url": "/logos/sales.svg",
                 "wording": {"*": {"home.welcome": "Sell more"}, "de": {"home.welcome": "Mehr verkaufen"},
                             "de-CH": {"home.welcome": "Meh verchaufe"}}},
                {"org": "o-north", "colors": {"accent": "#2f9e44"}},
                {"org": "ENG", "colors": {"accent": "#5f3dc4", "accent-text": "#ffffff"}}
            ]),
        )
}

fn page(locale: &str, orgs: &[&[&str]]) -> PageContext {
    PageContext {
        page: "catalog".into(),
        locale: locale.into(),
        org_paths: orgs.iter().map(|p| p.iter().map(|s| s.to_string()).collect()).collect(),
        user_id: (!orgs.is_empty()).then(|| "u1".into()),
    }
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn signed_out_page_gets_the_academy_look_in_its_language() {
    let _host = academy().install();
    let theme = OrgBranding::brand(page("de", &[])).unwrap();
    assert_eq!(theme.colors, [("accent".to_string(), "#123456".to_string())]);
    assert_eq!(get(&theme.wording, "catalog.title"), Some("Kurse"));
    assert_eq!(theme.logo_url, None);

    let theme = OrgBranding::brand(page("fr", &[])).unwrap();
    assert_eq!(get(&theme.wording, "catalog.title"), Some("Courses"));
}

#[test]
fn learner_in_an_org_named_by_name_gets_its_look() {
    let _host = academy().install();
    let theme = OrgBranding::brand(page("en", &[&["o-acme", "o-sales"]])).unwrap();
    assert_eq!(get(&theme.colors, "accent"), Some("#d9480f"));
    assert_eq!(theme.logo_url.as_deref(), Some("/logos/sales.svg"));
    assert_eq!(get(&theme.wording, "home.welcome"), Some("Sell more"));
    assert_eq!(get(&theme.wording, "catalog.title"), Some("Courses"));
}

#[test]
fn most_specific_locale_wins() {
    let _host = academy().install();
    let swiss = OrgBranding::brand(page("de-CH", &[&["o-acme", "o-sales"]])).unwrap();
    assert_eq!(get(&swiss.wording, "home.welcome"), Some("Meh verchaufe"));
    assert_eq!(get(&swiss.wording, "catalog.title"), Some("Kurse"));
    let german = OrgBranding::brand(page("de-DE", &[&["o-acme", "o-sales"]])).unwrap();
    assert_eq!(get(&german.wording, "home.welcome"), Some("Mehr verkaufen"));
}

#[test]
fn nearest_org_on_the_path_wins() {
    let _host = academy().install();
    // North (by id) is below Sales (by name): North's accent, and nothing of Sales.
    let theme = OrgBranding::brand(page("en", &[&["o-acme", "o-sales", "o-north"]])).unwrap();
    assert_eq!(get(&theme.colors, "accent"), Some("#2f9e44"));
    assert_eq!(theme.logo_url, None);

    // Two organizations: the deeper match wins whichever path comes first.
    let theme = OrgBranding::brand(page("en", &[&["o-acme", "o-eng"], &["o-acme", "o-sales", "o-north"]])).unwrap();
    assert_eq!(get(&theme.colors, "accent"), Some("#2f9e44"));
    // Equal depth: the first path's.
    let theme = OrgBranding::brand(page("en", &[&["o-acme", "o-eng"], &["o-acme", "o-sales"]])).unwrap();
    assert_eq!(get(&theme.colors, "accent"), Some("#5f3dc4"));
    assert_eq!(get(&theme.colors, "accent-text"), Some("#ffffff"));
}

#[test]
fn learner_outside_every_rule_gets_the_default() {
    let _host = academy().install();
    let theme = OrgBranding::brand(page("en", &[&["o-acme"]])).unwrap();
    assert_eq!(theme.colors, [("accent".to_string(), "#123456".to_string())]);
}

#[test]
fn malformed_settings_are_logged_and_skipped() {
    let host = academy().config("orgs", json!({"not": "a list"})).install();
    let theme = OrgBranding::brand(page("en", &[&["o-acme", "o-sales"]])).unwrap();
    assert_eq!(get(&theme.colors, "accent"), Some("#123456"));
    assert!(host.log_messages()[0].contains("setting `orgs`"));
}
