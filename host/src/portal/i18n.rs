//! Languages of the portal: the default theme's wording per language (`themes/default/locales/<lang>/*.json`,
//! flat objects of `key: text`), and which language a page is shown in.
//!
//! A page's language is the first of: the learner's own choice, their organization's default (the nearest
//! organization that sets one), the browser's `Accept-Language`, the academy's default, English. Only the
//! academy's allowed languages are picked from the first three.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// The wording of every language the default theme has.
pub struct Locales {
    bundles: HashMap<String, Map<String, Value>>,
}

/// The language every key exists in; others fall back to it key by key.
pub const BASE: &str = "en";

impl Locales {
    /// Read the default theme's locale files. Fails on a file that is not a flat object of strings.
    pub fn load() -> anyhow::Result<Locales> {
        let mut bundles: HashMap<String, Map<String, Value>> = HashMap::new();
        for path in super::theme::default_paths() {
            let Some(rest) = path.strip_prefix("locales/") else {
                continue;
            };
            let Some((lang, file)) = rest.split_once('/') else {
                continue;
            };
            if !file.ends_with(".json") {
                continue;
            }
            let bytes = super::theme::default_file(&path).expect("listed files exist");
            let words: Map<String, Value> = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("theme locale file {path} is not a JSON object: {e}"))?;
            if let Some((key, _)) = words.iter().find(|(_, v)| !v.is_string()) {
                anyhow::bail!("theme locale file {path}: {key} is not a string");
            }
            bundles.entry(lang.to_owned()).or_default().extend(words);
        }
        anyhow::ensure!(bundles.contains_key(BASE), "the default theme has no {BASE} wording");
        Ok(Locales { bundles })
    }

    /// Is `key` a wording key of the theme?
    pub fn has_key(&self, key: &str) -> bool {
        self.bundles[BASE].contains_key(key)
    }

    /// Does the theme have wording in this locale's language?
    pub fn speaks(&self, locale: &str) -> bool {
        self.bundles.contains_key(locale.split('-').next().unwrap_or(locale))
    }

    /// The languages the theme speaks.
    pub fn languages(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.bundles.keys().map(String::as_str).collect();
        out.sort_unstable();
        out
    }

    /// Every key's text for `locale`: English, then the language (`de`), then the exact locale (`de-CH`).
    pub fn words(&self, locale: &str) -> Map<String, Value> {
        let mut words = self.bundles[BASE].clone();
        let language = locale.split('-').next().unwrap_or(locale);
        for tag in [language, locale] {
            if tag != BASE
                && let Some(bundle) = self.bundles.get(tag)
            {
                words.extend(bundle.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        words
    }
}

/// `wanted` if the academy allows it: exactly, or by its language (`de-CH` → `de`), or an allowed regional
/// form of it (`de` → `de-CH`).
pub fn allowed(allowed: &[String], wanted: &str) -> Option<String> {
    let wanted = wanted.trim();
    if wanted.is_empty() {
        return None;
    }
    let language = wanted.split('-').next().unwrap_or(wanted);
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(wanted))
        .or_else(|| allowed.iter().find(|a| a.eq_ignore_ascii_case(language)))
        .or_else(|| {
            allowed
                .iter()
                .find(|a| a.split('-').next().is_some_and(|l| l.eq_ignore_ascii_case(language)))
        })
        .cloned()
}

/// The first allowed language of an `Accept-Language` header, by quality (`de-CH, de;q=0.9, en;q=0.8`).
pub fn from_accept_language(header: &str, allowed_locales: &[String]) -> Option<String> {
    let mut ranges: Vec<(f32, usize, &str)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (!tag.is_empty() && tag != "*" && q > 0.0).then_some((q, i, tag))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.into_iter().find_map(|(_, _, tag)| allowed(allowed_locales, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accept_language_takes_the_best_allowed() {
        let allowed = langs(&["en", "de"]);
        assert_eq!(
            from_accept_language("fr-CH, fr;q=0.9, de;q=0.8, en;q=0.7", &allowed).as_deref(),
            Some("de")
        );
        assert_eq!(from_accept_language("de-AT", &allowed).as_deref(), Some("de"));
        assert_eq!(
            from_accept_language("en;q=0.1, de;q=0.5", &allowed).as_deref(),
            Some("de")
        );
        assert_eq!(from_accept_language("fr, *;q=0.5", &allowed), None);
        assert_eq!(from_accept_language("de;q=0", &allowed), None);
        assert_eq!(allowed_or(&langs(&["de-CH"]), "de").as_deref(), Some("de-CH"));
    }

    fn allowed_or(a: &[String], w: &str) -> Option<String> {
        allowed(a, w)
    }

    #[test]
    fn the_theme_speaks_english_and_german_with_the_same_keys() {
        let locales = Locales::load().unwrap();
        assert!(locales.languages().contains(&"de"));
        let en = &locales.bundles[BASE];
        let de = &locales.bundles["de"];
        let missing: Vec<&String> = en.keys().filter(|k| !de.contains_key(*k)).collect();
        assert!(missing.is_empty(), "German lacks: {missing:?}");
        let extra: Vec<&String> = de.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(extra.is_empty(), "German has keys English lacks: {extra:?}");
    }
}
