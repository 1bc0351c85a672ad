//! Gives each part of the academy its own look: colors, logo and wording by the learner's organization and
//! locale, over a tenant-wide accent color.
//!
//! Every page starts from the `accent` setting and the `wording` for the page's locale. When a signed-in
//! learner belongs to an organization named by a rule in `orgs` (by id, name or external id), that rule's
//! colors, logo and wording apply on top; with several candidates the organization nearest to the learner
//! wins (deepest on the learner's organization path), then the earlier rule.
//!
//! Wording is given per locale: `{"*": {...}, "de": {...}, "de-CH": {...}}` — the entries for every locale
//! (`*`) apply first, then those of the language, then those of the exact locale, so the most specific wins.
//!
//! Branding fails open: with a malformed setting the plugin logs a warning and renders with what is valid.

use std::collections::BTreeMap;

use aula_sdk::branding::{Branding, PageContext, ThemeOverrides};
use aula_sdk::{config, directory, log};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Wording keys of the theme and their replacement text, per locale (`*` for every locale).
pub type Wording = BTreeMap<String, BTreeMap<String, String>>;

/// The look of one organization (and the organizations below it).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrgRule {
    /// The organization: its id, name or external id.
    pub org: String,
    /// CSS custom properties without the leading `--`, e.g. `{"accent": "#d9480f"}`.
    #[serde(default)]
    pub colors: BTreeMap<String, String>,
    /// The logo to show instead of the academy's.
    #[serde(default)]
    pub logo_url: Option<String>,
    /// Wording for this organization's learners, per locale.
    #[serde(default)]
    pub wording: Wording,
}

/// The plugin's settings, with the defaults `aula-plugin.toml` declares.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The academy-wide accent color.
    pub accent: String,
    /// Wording for everyone, per locale.
    pub wording: Wording,
    /// Looks by organization.
    pub orgs: Vec<OrgRule>,
}

impl Settings {
    /// The settings from the host; a malformed one is logged and left at its default.
    pub fn load() -> Settings {
        fn setting<T: DeserializeOwned>(key: &str, default: T) -> T {
            config::try_get(key)
                .unwrap_or_else(|e| {
                    log::warn(format_args!("{e}; ignoring it"));
                    None
                })
                .unwrap_or(default)
        }
        Settings {
            accent: setting("accent", "#1c7ed6".to_owned()),
            wording: setting("wording", Wording::new()),
            orgs: setting("orgs", Vec::new()),
        }
    }
}

/// Applies the wording for `locale`: every locale's first, then the language's, then the exact locale's.
fn apply_wording(mut theme: ThemeOverrides, wording: &Wording, locale: &str) -> ThemeOverrides {
    let language = locale.split(['-', '_']).next().unwrap_or_default();
    let mut scopes = vec!["*", language];
    if locale != language {
        scopes.push(locale);
    }
    for scope in scopes {
        let texts = wording.iter().find(|(l, _)| l.eq_ignore_ascii_case(scope));
        for (key, text) in texts.into_iter().flat_map(|(_, texts)| texts) {
            theme = theme.wording(key, text);
        }
    }
    theme
}

/// The rule for the organization nearest the learner: the deepest match on any of their organization
/// paths (earlier paths and earlier rules first on a tie). `ids_of(rule)` gives the organization ids a
/// rule names.
fn nearest_rule<'a>(
    org_paths: &[Vec<String>],
    rules: &'a [OrgRule],
    ids_of: impl Fn(&OrgRule) -> Vec<String>,
) -> Option<&'a OrgRule> {
    let named: Vec<(Vec<String>, &OrgRule)> = rules.iter().map(|r| (ids_of(r), r)).collect();
    let mut best: Option<(usize, &OrgRule)> = None;
    for path in org_paths {
        for (depth, org_id) in path.iter().enumerate().rev() {
            let Some((_, rule)) = named.iter().find(|(ids, _)| ids.contains(org_id)) else {
                continue;
            };
            if best.is_none_or(|(best_depth, _)| depth > best_depth) {
                best = Some((depth, rule));
            }
            break; // anything higher on this path is farther away
        }
    }
    best.map(|(_, rule)| rule)
}

/// The theme for a page, given the settings and how to find the organizations a rule names.
pub fn theme_for(
    context: &PageContext,
    settings: &Settings,
    ids_of: impl Fn(&OrgRule) -> Vec<String>,
) -> ThemeOverrides {
    let mut theme = ThemeOverrides::default().color("accent", &settings.accent);
    theme = apply_wording(theme, &settings.wording, &context.locale);
    if let Some(rule) = nearest_rule(&context.org_paths, &settings.orgs, ids_of) {
        for (name, value) in &rule.colors {
            theme = theme.color(name, value);
        }
        if let Some(url) = &rule.logo_url {
            theme = theme.logo_url(url);
        }
        theme = apply_wording(theme, &rule.wording, &context.locale);
    }
    theme
}

/// The plugin as registered with the host.
pub struct OrgBranding;

impl Branding for OrgBranding {
    fn brand(context: PageContext) -> Result<ThemeOverrides, String> {
        let settings = Settings::load();
        // A rule names its organization by id, or by name or external id (which the directory resolves).
        // Signed-out pages have no organizations, and then no lookups are made.
        let ids_of = |rule: &OrgRule| {
            let mut ids = vec![rule.org.clone()];
            ids.extend(directory::find_orgs(&rule.org).into_iter().map(|o| o.id));
            ids
        };
        Ok(theme_for(&context, &settings, ids_of))
    }
}

aula_sdk::register!(branding: OrgBranding);

#[cfg(test)]
mod tests;
