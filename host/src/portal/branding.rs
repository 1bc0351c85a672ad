//! Branding: how an academy looks, for whom.
//!
//! An academy's branding (`tenant_branding`) sets its name, logo, colors, fonts, custom CSS, wording and
//! landing page. Organizations may override any of it for their members (`org_branding`); what an
//! organization leaves unset it inherits from the organizations above it and from the academy. Active
//! branding plugins come last: per page they return overrides, which are checked like stored settings.
//!
//! A page's [`Look`] is resolved once per (academy state, learner's organization, language, page, and, with a
//! branding plugin, learner) and cached briefly. A plugin that errs or faults is recorded and ignored: the
//! page renders with the static branding.

use super::i18n::Locales;
use crate::cache::AcademyCache;
use crate::db::TenantDb;
use crate::error::ApiError;
use crate::plugins::hooks::branding as hooks;
use crate::plugins::host_api::View;
use crate::plugins::manifest::Kind;
use crate::plugins::runtime::Loaded;
use crate::state::AppState;
use crate::tenancy::Tenant;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The color names a theme styles with, as CSS custom properties (`--accent`, …).
pub const COLORS: &[&str] = &[
    "accent",
    "accent-text",
    "background",
    "surface",
    "text",
    "muted",
    "link",
    "danger",
    "success",
];

/// Named blocks of restricted HTML a branding plugin may fill.
pub const BLOCKS: &[&str] = &["banner", "footer", "catalog-intro"];

const MAX_CSS: usize = 64 * 1024;
const MAX_TEXT: usize = 2_000;
const MAX_LANDING: usize = 20_000;

/// Branding settings of the academy or of one organization. Everything is optional: unset inherits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BrandingSettings {
    /// The name in the header (the academy's name when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The logo: an `https://` address or a path of an uploaded asset (`/theme/img/logo.png`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// Colors by name (`accent`, `accent-text`, `background`, `surface`, `text`, `muted`, `link`, `danger`,
    /// `success`) as `#rgb`, `#rrggbb`, `#rrggbbaa`, `rgb(…)`/`hsl(…)` or a CSS color keyword.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub colors: BTreeMap<String, String>,
    /// Body font stack, e.g. `"Source Sans 3", sans-serif`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font_family: Option<String>,
    /// Heading font stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heading_font: Option<String>,
    /// Extra CSS added to every page (it cannot leave its style element).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_css: Option<String>,
    /// Wording overrides per language: `{"*": {"catalog.title": "Library"}, "de": {…}}`; the most specific
    /// language wins. Keys are the theme's wording keys (`GET /api/v1/branding/wording`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub wording: BTreeMap<String, BTreeMap<String, String>>,
    /// The landing page's text (Markdown), shown at `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landing: Option<String>,
    /// The language of members' pages when they chose none (organizations only; the academy's default is
    /// `settings.default_locale`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_locale: Option<String>,
}

/// A CSS color value that cannot leave its declaration.
pub fn valid_color(v: &str) -> bool {
    let v = v.trim();
    if let Some(hex) = v.strip_prefix('#') {
        return matches!(hex.len(), 3 | 4 | 6 | 8) && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some((func, rest)) = v.split_once('(') {
        return matches!(func, "rgb" | "rgba" | "hsl" | "hsla")
            && rest.strip_suffix(')').is_some_and(|args| {
                args.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | ' ' | '%' | '/'))
            });
    }
    (3..=20).contains(&v.len()) && v.chars().all(|c| c.is_ascii_lowercase())
}

/// A font stack that cannot leave its declaration.
fn valid_font(v: &str) -> bool {
    !v.trim().is_empty()
        && v.len() <= 200
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | ',' | '-' | '"' | '\''))
}

/// A logo address: https, or a path on the academy's own host.
fn valid_logo(v: &str) -> bool {
    (v.starts_with("https://") || (v.starts_with('/') && !v.starts_with("//")))
        && v.len() <= 500
        && !v
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '\\' | '(' | ')'))
}

/// CSS placed inside a `<style>` element: `<` is written as the CSS escape `\3c `, so no `</style>` (or any
/// other tag) can end the element, whatever the text.
pub fn contain_css(css: &str) -> String {
    css.replace('<', "\\3c ")
}

impl BrandingSettings {
    /// Check every field, naming the first bad one (`colors.accent`, `wording.de.catalog.title`, …).
    pub fn validate(&self, locales: &Locales) -> Result<(), ApiError> {
        let text = |field: &str, v: &Option<String>, max: usize| match v {
            Some(v) if v.trim().is_empty() || v.len() > max => Err(ApiError::invalid(
                field,
                format!("must be 1–{max} characters (leave it out to inherit)"),
            )),
            _ => Ok(()),
        };
        text("name", &self.name, 200)?;
        text("landing", &self.landing, MAX_LANDING)?;
        if let Some(css) = &self.custom_css
            && css.len() > MAX_CSS
        {
            return Err(ApiError::invalid(
                "custom_css",
                format!("must be at most {MAX_CSS} bytes"),
            ));
        }
        if let Some(logo) = &self.logo_url
            && !valid_logo(logo)
        {
            return Err(ApiError::invalid(
                "logo_url",
                "must be an https:// address or a path on this academy (/theme/…), without quotes or spaces",
            ));
        }
        for (name, value) in &self.colors {
            if !COLORS.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    format!("colors.{name}"),
                    format!("is not a theme color; known: {}", COLORS.join(", ")),
                ));
            }
            if !valid_color(value) {
                return Err(ApiError::invalid(
                    format!("colors.{name}"),
                    "must be a CSS color such as #1c7ed6, rgb(28 126 214) or teal",
                ));
            }
        }
        for (field, font) in [("font_family", &self.font_family), ("heading_font", &self.heading_font)] {
            if let Some(font) = font
                && !valid_font(font)
            {
                return Err(ApiError::invalid(
                    field,
                    "must be a font list of letters, digits, spaces, commas, hyphens and quotes",
                ));
            }
        }
        for (language, words) in &self.wording {
            if language != "*" && !crate::tenancy::valid_locale(language) {
                return Err(ApiError::invalid(
                    format!("wording.{language}"),
                    "must be `*` or a language tag such as de or de-CH",
                ));
            }
            for (key, value) in words {
                if !locales.has_key(key) {
                    return Err(ApiError::invalid(
                        format!("wording.{language}.{key}"),
                        "is not a wording key of the theme (see GET /api/v1/branding/wording)",
                    ));
                }
                if value.trim().is_empty() || value.len() > MAX_TEXT {
                    return Err(ApiError::invalid(
                        format!("wording.{language}.{key}"),
                        format!("must be 1–{MAX_TEXT} characters"),
                    ));
                }
            }
        }
        if let Some(locale) = &self.default_locale
            && !crate::tenancy::valid_locale(locale)
        {
            return Err(ApiError::invalid(
                "default_locale",
                "must be a language tag such as de or de-CH",
            ));
        }
        Ok(())
    }
}

/// What a page looks like, resolved for one viewer and page.
#[derive(Debug, Clone, Serialize)]
pub struct Look {
    /// The name in the header.
    pub name: String,
    /// The logo's address.
    pub logo_url: Option<String>,
    /// `--name: value;` declarations for `:root`.
    pub colors: String,
    /// Body font stack.
    pub font_family: Option<String>,
    /// Heading font stack.
    pub heading_font: Option<String>,
    /// Custom CSS, contained.
    pub css: String,
    /// The landing page, as sanitized HTML.
    pub landing_html: Option<String>,
    /// Plugin blocks, as sanitized HTML.
    pub blocks: BTreeMap<String, String>,
    /// Wording (not serialized into page data: the `t` helper reads it).
    #[serde(skip)]
    pub words: Arc<Map<String, Value>>,
}

/// Colors, fonts, logo and wording as they build up, applied from the academy down to the viewer.
struct Layers<'a> {
    locale: &'a str,
    name: String,
    logo_url: Option<String>,
    colors: BTreeMap<String, String>,
    font_family: Option<String>,
    heading_font: Option<String>,
    css: Vec<String>,
    landing: Option<String>,
    words: Map<String, Value>,
}

impl Layers<'_> {
    fn apply(&mut self, s: &BrandingSettings) {
        if let Some(name) = &s.name {
            self.name = name.clone();
        }
        if let Some(logo) = &s.logo_url {
            self.logo_url = Some(logo.clone());
        }
        self.colors.extend(s.colors.iter().map(|(k, v)| (k.clone(), v.clone())));
        if s.font_family.is_some() {
            self.font_family = s.font_family.clone();
        }
        if s.heading_font.is_some() {
            self.heading_font = s.heading_font.clone();
        }
        if let Some(css) = &s.custom_css {
            self.css.push(css.clone());
        }
        if s.landing.is_some() {
            self.landing = s.landing.clone();
        }
        self.apply_wording(&s.wording);
    }

    fn apply_wording(&mut self, wording: &BTreeMap<String, BTreeMap<String, String>>) {
        let language = self.locale.split('-').next().unwrap_or(self.locale);
        let mut tags = vec!["*", language];
        if language != self.locale {
            tags.push(self.locale);
        }
        for tag in tags {
            if let Some(words) = wording.get(tag) {
                for (k, v) in words {
                    self.words.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
    }

    fn finish(self, blocks: BTreeMap<String, String>) -> Look {
        let colors = self
            .colors
            .iter()
            .map(|(k, v)| format!("--{k}: {v};"))
            .collect::<Vec<_>>()
            .join(" ");
        Look {
            name: self.name,
            logo_url: self.logo_url,
            colors,
            font_family: self.font_family,
            heading_font: self.heading_font,
            css: contain_css(&self.css.join("\n")),
            landing_html: self.landing.as_deref().map(crate::learning::content::render_markdown),
            blocks,
            words: Arc::new(self.words),
        }
    }
}

/// An academy's stored branding, as read (and cached briefly).
pub struct Academy {
    /// The academy-wide settings.
    pub settings: BrandingSettings,
    /// Organizations' overrides.
    pub orgs: HashMap<String, BrandingSettings>,
    /// Version of the uploaded theme files.
    pub theme_version: i64,
    /// Changes whenever any of this changes (the latest `updated_at`).
    pub stamp: i64,
}

impl Academy {
    /// The nearest organization's default language on a path (ids from the top), if any sets one.
    pub fn org_locale(&self, path: &[String]) -> Option<&str> {
        path.iter()
            .rev()
            .find_map(|org| self.orgs.get(org)?.default_locale.as_deref())
    }
}

/// Read an academy's branding.
pub async fn read_academy(db: &TenantDb) -> Result<Academy, ApiError> {
    let mut tx = db.begin_read().await?;
    let row = tx
        .query("SELECT settings, theme_version, updated_at FROM tenant_branding WHERE tenant_id = $1")
        .fetch_optional(tx.conn())
        .await?;
    let orgs = tx
        .query("SELECT org_id, settings, updated_at FROM org_branding WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let parse = |text: String| -> Result<BrandingSettings, ApiError> {
        serde_json::from_str(&text).map_err(|e| ApiError::Internal(anyhow::anyhow!("stored branding: {e}")))
    };
    let (settings, theme_version, mut stamp) = match row {
        Some(r) => (parse(r.try_get(0)?)?, r.try_get(1)?, r.try_get::<i64, _>(2)?),
        None => (BrandingSettings::default(), 0, 0),
    };
    let mut by_org = HashMap::with_capacity(orgs.len());
    for r in orgs {
        stamp = stamp.max(r.try_get::<i64, _>(2)?);
        by_org.insert(r.try_get(0)?, parse(r.try_get(1)?)?);
    }
    // Deleting an organization's override lowers nothing; the count tells that apart.
    stamp = stamp.wrapping_mul(31).wrapping_add(by_org.len() as i64);
    Ok(Academy {
        settings,
        orgs: by_org,
        theme_version,
        stamp,
    })
}

/// Who is looking: their organizations and language choice, as read (and cached briefly).
#[derive(Debug, Clone, Default)]
pub struct Person {
    /// The learner's own language choice.
    pub locale: Option<String>,
    /// The organization path (ids from the top) whose branding applies: their first membership.
    pub org_path: Vec<String>,
    /// Every membership's path, for the branding plugin.
    pub org_paths: Vec<Vec<String>>,
}

/// Read a user's language and organization paths.
pub async fn read_person(db: &TenantDb, user_id: &str) -> Result<Person, ApiError> {
    let mut tx = db.begin_read().await?;
    let locale: Option<String> = tx
        .query("SELECT locale FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .flatten();
    let rows = tx
        .query(
            "SELECT o.path FROM memberships m JOIN orgs o ON o.tenant_id = $1 AND o.id = m.org_id \
             WHERE m.tenant_id = $1 AND m.user_id = $2 ORDER BY m.created_at, o.path",
        )
        .bind(user_id.to_owned())
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let mut org_paths = Vec::with_capacity(rows.len());
    for r in rows {
        let path: String = r.try_get(0)?;
        org_paths.push(
            path.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        );
    }
    Ok(Person {
        locale,
        org_path: org_paths.first().cloned().unwrap_or_default(),
        org_paths,
    })
}

/// The static look: theme wording, the academy's settings, then each organization on the path.
pub fn static_look(locales: &Locales, tenant: &Tenant, academy: &Academy, org_path: &[String], locale: &str) -> Look {
    let mut layers = Layers {
        locale,
        name: tenant.name.clone(),
        logo_url: None,
        colors: BTreeMap::new(),
        font_family: None,
        heading_font: None,
        css: Vec::new(),
        landing: None,
        words: locales.words(locale),
    };
    layers.apply(&academy.settings);
    for org in org_path {
        if let Some(settings) = academy.orgs.get(org) {
            layers.apply(settings);
        }
    }
    layers.finish(BTreeMap::new())
}

/// Apply a plugin's overrides, dropping (and reporting) what would not pass as stored settings.
fn apply_overrides(look: &mut Look, locales: &Locales, o: hooks::Overrides) -> Vec<String> {
    let mut refused = Vec::new();
    let mut colors: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in o.colors {
        if COLORS.contains(&name.as_str()) && valid_color(&value) {
            colors.insert(name, value);
        } else {
            refused.push(format!("color {name}"));
        }
    }
    if !colors.is_empty() {
        let extra: Vec<String> = colors.iter().map(|(k, v)| format!("--{k}: {v};")).collect();
        look.colors = format!("{} {}", look.colors, extra.join(" "));
    }
    match o.logo_url {
        Some(logo) if valid_logo(&logo) => look.logo_url = Some(logo),
        Some(_) => refused.push("logo-url".into()),
        None => {}
    }
    for (key, text) in o.wording {
        if locales.has_key(&key) && !text.trim().is_empty() && text.len() <= MAX_TEXT {
            Arc::make_mut(&mut look.words).insert(key, Value::String(text));
        } else {
            refused.push(format!("wording {key}"));
        }
    }
    if let Some(css) = o.css {
        if css.len() <= MAX_CSS {
            look.css = format!("{}\n{}", look.css, contain_css(&css));
        } else {
            refused.push("css (too long)".into());
        }
    }
    for (name, html) in o.blocks {
        if BLOCKS.contains(&name.as_str()) && html.len() <= MAX_LANDING {
            look.blocks.insert(name, ammonia::clean(&html));
        } else {
            refused.push(format!("block {name}"));
        }
    }
    refused
}

/// Key of a resolved look.
#[derive(Clone, PartialEq, Eq, Hash)]
struct LookKey {
    tenant: String,
    stamp: i64,
    plugins: String,
    org_path: String,
    locale: String,
    page: &'static str,
    user: Option<String>,
}

/// Caches of branding, per replica, by academy. Each entry lives briefly; a write through this replica forgets
/// its academy's entries (and only those).
pub struct BrandingCache {
    academies: AcademyCache<(), Arc<Academy>>,
    people: AcademyCache<String, Arc<Person>>,
    plugins: AcademyCache<(), Arc<Vec<Arc<Loaded>>>>,
    looks: AcademyCache<LookKey, Arc<Look>>,
}

/// How long stored branding may be stale on another replica.
const STALE: Duration = Duration::from_secs(5);
/// How long a plugin's answer for one page and viewer is reused.
const PLUGIN_ANSWER: Duration = Duration::from_secs(60);

impl Default for BrandingCache {
    fn default() -> Self {
        BrandingCache {
            academies: AcademyCache::new(STALE, 10_000),
            people: AcademyCache::new(STALE, 100_000),
            plugins: AcademyCache::new(STALE, 10_000),
            looks: AcademyCache::new(PLUGIN_ANSWER, 100_000),
        }
    }
}

impl BrandingCache {
    /// Forget everything (after a write on the platform's host).
    pub fn clear(&self) {
        self.academies.clear();
        self.people.clear();
        self.plugins.clear();
        self.looks.clear();
    }

    /// Forget one academy's branding (after a write in it).
    pub fn forget(&self, academy: &str) {
        self.academies.forget(academy);
        self.people.forget(academy);
        self.plugins.forget(academy);
        self.looks.forget(academy);
    }

    /// The academy's branding.
    pub async fn academy(&self, db: &TenantDb) -> Result<Arc<Academy>, ApiError> {
        let version = self.academies.version(db.tenant_id());
        if let Some(a) = self.academies.get(db.tenant_id(), &()) {
            return Ok(a);
        }
        let a = Arc::new(read_academy(db).await?);
        self.academies.put(db.tenant_id(), version, (), a.clone(), STALE);
        Ok(a)
    }

    /// A signed-in user's language and organizations.
    pub async fn person(&self, db: &TenantDb, user_id: &str) -> Result<Arc<Person>, ApiError> {
        let version = self.people.version(db.tenant_id());
        let key = user_id.to_owned();
        if let Some(p) = self.people.get(db.tenant_id(), &key) {
            return Ok(p);
        }
        let p = Arc::new(read_person(db, user_id).await?);
        self.people.put(db.tenant_id(), version, key, p.clone(), STALE);
        Ok(p)
    }

    async fn active_plugins(&self, state: &AppState, db: &TenantDb) -> Result<Arc<Vec<Arc<Loaded>>>, ApiError> {
        let version = self.plugins.version(db.tenant_id());
        if let Some(p) = self.plugins.get(db.tenant_id(), &()) {
            return Ok(p);
        }
        let p = Arc::new(state.plugins.active(db, Kind::Branding).await?);
        self.plugins.put(db.tenant_id(), version, (), p.clone(), STALE);
        Ok(p)
    }

    /// The look of one page for one viewer: cached; a miss builds the static look and asks the academy's
    /// branding plugins (failing open).
    #[allow(clippy::too_many_arguments)]
    pub async fn look(
        &self,
        state: &AppState,
        locales: &Locales,
        tenant: &Tenant,
        academy: &Academy,
        person: Option<(&str, &Person)>,
        locale: &str,
        page: &'static str,
    ) -> Result<Arc<Look>, ApiError> {
        let db = state.db.tenant(&tenant.id);
        let version = self.looks.version(&tenant.id);
        let plugins = self.active_plugins(state, &db).await?;
        let org_path = person.map(|(_, p)| p.org_path.as_slice()).unwrap_or(&[]);
        let key = LookKey {
            tenant: tenant.id.clone(),
            stamp: academy.stamp,
            plugins: plugins
                .iter()
                .map(|p| format!("{}@{}", p.version_id, p.revision))
                .collect::<Vec<_>>()
                .join(","),
            org_path: org_path.join("/"),
            locale: locale.to_owned(),
            page,
            // Plugins may brand by learner; without plugins the look is the same for everyone of the org.
            user: (!plugins.is_empty())
                .then(|| person.map(|(id, _)| id.to_owned()))
                .flatten(),
        };
        if let Some(look) = self.looks.get(&tenant.id, &key) {
            return Ok(look);
        }
        let mut look = static_look(locales, tenant, academy, org_path, locale);
        let mut answer_for = PLUGIN_ANSWER;
        for loaded in plugins.iter() {
            let context = hooks::Page {
                page: page.to_owned(),
                locale: locale.to_owned(),
                org_paths: person.map(|(_, p)| p.org_paths.clone()).unwrap_or_default(),
                user_id: person.map(|(id, _)| id.to_owned()),
            };
            let view = match person {
                Some((id, _)) => View::User {
                    user_id: id.to_owned(),
                    reach: crate::scope::Reach::default(),
                },
                None => View::Anonymous,
            };
            match state.plugins.brand(&db, loaded, view, context).await {
                Ok(overrides) => {
                    let refused = apply_overrides(&mut look, locales, overrides);
                    if !refused.is_empty() {
                        tracing::warn!(plugin = %loaded.plugin_id, refused = ?refused, "branding overrides refused");
                    }
                }
                // Recorded by the plugin host (log line or fault); the page keeps the static look. When the
                // host was too busy to run the plugin, that look is kept only briefly.
                Err(e) => {
                    if matches!(e, crate::plugins::runtime::HookError::Busy(_)) {
                        answer_for = STALE;
                    }
                    tracing::debug!(plugin = %loaded.plugin_id, error = %e, "branding plugin failed; static theme used")
                }
            }
        }
        let look = Arc::new(look);
        self.looks.put(&tenant.id, version, key, look.clone(), answer_for);
        Ok(look)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_and_fonts_cannot_leave_their_declarations() {
        for ok in ["#1c7ed6", "#abc", "rgb(28 126 214)", "hsla(10, 20%, 30%, 0.5)", "teal"] {
            assert!(valid_color(ok), "{ok}");
        }
        for bad in [
            "red;}",
            "#12345",
            "url(x)",
            "rgb(1,2,3);x",
            "expression(alert(1))",
            "</style>",
        ] {
            assert!(!valid_color(bad), "{bad}");
        }
        assert!(!valid_font("Arial; } body { color: red"));
        assert!(valid_font("\"Source Sans 3\", sans-serif"));
        assert!(!valid_logo("javascript:alert(1)"));
        assert!(!valid_logo("//evil.test/x.png"));
        assert!(valid_logo("/theme/img/logo.svg"));
    }

    #[test]
    fn custom_css_cannot_close_its_style_element() {
        let css = contain_css("a{} </style><script>alert(1)</script>");
        assert!(!css.contains('<'));
        assert!(css.contains("\\3c /style>"));
    }

    #[test]
    fn organizations_inherit_what_they_leave_unset() {
        let locales = Locales::load().unwrap();
        let tenant = Tenant {
            id: "t".into(),
            slug: "acme".into(),
            name: "Acme Academy".into(),
            status: "active".into(),
            settings: Default::default(),
            domains: Vec::new(),
            created_at: String::new(),
        };
        let mut academy = Academy {
            settings: BrandingSettings {
                colors: [("accent".into(), "#111111".into()), ("link".into(), "#222222".into())].into(),
                logo_url: Some("/theme/img/acme.svg".into()),
                ..Default::default()
            },
            orgs: HashMap::new(),
            theme_version: 0,
            stamp: 1,
        };
        academy.orgs.insert(
            "sales".into(),
            BrandingSettings {
                colors: [("accent".into(), "#333333".into())].into(),
                wording: [("*".into(), [("catalog.title".into(), "Sales courses".into())].into())].into(),
                ..Default::default()
            },
        );
        let look = static_look(&locales, &tenant, &academy, &["root".into(), "sales".into()], "en");
        assert!(look.colors.contains("--accent: #333333;"));
        assert!(look.colors.contains("--link: #222222;"));
        assert_eq!(look.logo_url.as_deref(), Some("/theme/img/acme.svg"));
        assert_eq!(look.words["catalog.title"], "Sales courses");
        let outside = static_look(&locales, &tenant, &academy, &["root".into()], "en");
        assert!(outside.colors.contains("--accent: #111111;"));
        assert_ne!(outside.words["catalog.title"], "Sales courses");
    }
}
