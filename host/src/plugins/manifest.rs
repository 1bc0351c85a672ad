//! The plugin manifest (`aula-plugin.toml`): what a plugin is, which capabilities it asks for, and the
//! schema of the settings an admin may give it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The four kinds of plugin, one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Theme overrides per page, org and locale.
    Branding,
    /// Sign-up decisions and actions on user events.
    Enrollment,
    /// Messages for domain events and schedule ticks.
    Notifications,
    /// Report definitions and rows.
    Reports,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Branding, Kind::Enrollment, Kind::Notifications, Kind::Reports];

    /// The manifest and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Branding => "branding",
            Kind::Enrollment => "enrollment",
            Kind::Notifications => "notifications",
            Kind::Reports => "reports",
        }
    }

    /// This kind's limits among the configured ones.
    pub fn limits(self, all: &crate::config::plugins::KindLimits) -> crate::config::plugins::Limits {
        match self {
            Kind::Branding => all.branding,
            Kind::Enrollment => all.enrollment,
            Kind::Notifications => all.notifications,
            Kind::Reports => all.reports,
        }
    }

    /// Parse a manifest or API name.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The interface the world exports (without the package version).
    pub fn export_interface(self) -> &'static str {
        match self {
            Kind::Branding => "branding-hooks",
            Kind::Enrollment => "enrollment-hooks",
            Kind::Notifications => "notification-hooks",
            Kind::Reports => "report-hooks",
        }
    }

    /// The hooks of this kind, as `aula plugin test --hook` names them.
    pub fn hooks(self) -> &'static [&'static str] {
        match self {
            Kind::Branding => &["brand"],
            Kind::Enrollment => &["on-signup", "on-events"],
            Kind::Notifications => &["on-notice", "on-tick"],
            Kind::Reports => &["list-reports", "run-report"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host interface a plugin may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Write to the plugin's log.
    Log,
    /// Read the settings and secrets the admin set.
    Config,
    /// The plugin's own key-value store.
    Kv,
    /// Read users, orgs, tags, segments, courses (scoped).
    Directory,
    /// Read enrollments and progress (scoped).
    Records,
    /// A private directory of this tenant and plugin, through WASI filesystem.
    Files,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 6] = [
        Capability::Log,
        Capability::Config,
        Capability::Kv,
        Capability::Directory,
        Capability::Records,
        Capability::Files,
    ];

    /// The manifest and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Config => "config",
            Capability::Kv => "kv",
            Capability::Directory => "directory",
            Capability::Records => "records",
            Capability::Files => "files",
        }
    }

    /// Parse a manifest or API name.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The `aula:plugin` interface this capability links, if it is one (`files` is WASI's filesystem).
    pub fn interface(self) -> Option<&'static str> {
        match self {
            Capability::Log => Some("log"),
            Capability::Config => Some("config"),
            Capability::Kv => Some("kv"),
            Capability::Directory => Some("directory"),
            Capability::Records => Some("records"),
            Capability::Files => None,
        }
    }

    /// The capability that grants an `aula:plugin` interface.
    pub fn for_interface(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.interface() == Some(name))
    }

    /// One bit per capability, for linker caches.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities as a bit mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapSet(pub u8);

impl CapSet {
    /// Does the set hold `cap`?
    pub fn has(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }
    /// The set with `cap` added.
    pub fn with(self, cap: Capability) -> CapSet {
        CapSet(self.0 | cap.bit())
    }
    /// The set with `cap` removed.
    pub fn without(self, cap: Capability) -> CapSet {
        CapSet(self.0 & !cap.bit())
    }
    /// The capabilities, in order.
    pub fn list(self) -> Vec<Capability> {
        Capability::ALL.into_iter().filter(|c| self.has(*c)).collect()
    }
    /// The capabilities of this set that `allowed` lacks, by name.
    pub fn beyond(self, allowed: CapSet) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|c| !allowed.has(*c))
            .map(|c| c.to_string())
            .collect()
    }
    /// From a list.
    pub fn from_list<'a>(caps: impl IntoIterator<Item = &'a Capability>) -> CapSet {
        caps.into_iter().fold(CapSet::default(), |s, c| s.with(*c))
    }
}

/// The type of one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A string.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// Any JSON value.
    Json,
    /// A secret string: set by the admin, readable by the plugin, never shown back.
    Secret,
}

/// One setting the plugin accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigField {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The value when the admin set none (never for secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Must the admin set it before the plugin can be activated?
    #[serde(default)]
    pub required: bool,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lowercase letters, digits and `-`, 1–64 characters; unique per tenant.
    pub name: String,
    /// Semantic version, unique per plugin.
    pub version: String,
    /// Which world the component implements.
    pub kind: Kind,
    /// One line for admins.
    #[serde(default)]
    pub description: String,
    /// The host interfaces the plugin asks for.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// The settings it accepts, by key.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigField>,
}

/// Why a manifest was refused; `field` names the manifest key.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestError {
    /// The manifest key at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manifest {}: {}", self.field, self.message)
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        message: message.into(),
    }
}

impl Manifest {
    /// Parse TOML (as written in `aula-plugin.toml`) and validate it.
    pub fn from_toml(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let named = message
                .split('`')
                .nth(1)
                .filter(|_| message.contains("unknown field") || message.contains("missing field"))
                .map(str::to_owned);
            let field = named
                .or_else(|| e.span().and_then(|span| key_at(text, span.start)))
                .unwrap_or_else(|| "(file)".to_owned());
            err(field, message)
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Check every field.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || self.name.starts_with('-')
        {
            return Err(err(
                "name",
                "must be 1–64 lowercase letters, digits or '-', not starting with '-'",
            ));
        }
        if !valid_semver(&self.version) {
            return Err(err("version", "must be a semantic version such as 1.0.0"));
        }
        if self.description.len() > 500 {
            return Err(err("description", "must be at most 500 characters"));
        }
        let mut seen = CapSet::default();
        for cap in &self.capabilities {
            if seen.has(*cap) {
                return Err(err("capabilities", format!("lists {cap} twice")));
            }
            seen = seen.with(*cap);
        }
        if self.config.len() > 100 {
            return Err(err("config", "declares more than 100 settings"));
        }
        for (key, field) in &self.config {
            let name = format!("config.{key}");
            if key.is_empty()
                || key.len() > 64
                || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(err(name, "setting keys are 1–64 letters, digits, '_' or '-'"));
            }
            match (&field.kind, &field.default) {
                (FieldType::Secret, Some(_)) => return Err(err(name, "a secret cannot have a default")),
                (kind, Some(value)) => {
                    check_value(*kind, value).map_err(|m| err(format!("{name}.default"), m))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The capability set requested.
    pub fn requested(&self) -> CapSet {
        CapSet::from_list(&self.capabilities)
    }

    /// Check settings an admin wants to store: known keys, right types, no secrets among them.
    pub fn check_settings(&self, values: &Map<String, Value>) -> Result<(), ManifestError> {
        for (key, value) in values {
            let field = self
                .config
                .get(key)
                .ok_or_else(|| err(format!("config.{key}"), "the plugin declares no such setting"))?;
            if field.kind == FieldType::Secret {
                return Err(err(
                    format!("config.{key}"),
                    "is a secret; set it through the secrets endpoint",
                ));
            }
            if !value.is_null() {
                check_value(field.kind, value).map_err(|m| err(format!("config.{key}"), m))?;
            }
        }
        Ok(())
    }

    /// Check secret keys an admin wants to store.
    pub fn check_secrets<'a>(&self, keys: impl IntoIterator<Item = &'a String>) -> Result<(), ManifestError> {
        for key in keys {
            match self.config.get(key) {
                Some(f) if f.kind == FieldType::Secret => {}
                Some(_) => return Err(err(format!("secrets.{key}"), "is a setting, not a secret")),
                None => return Err(err(format!("secrets.{key}"), "the plugin declares no such secret")),
            }
        }
        Ok(())
    }

    /// Required settings that have neither a value nor a default.
    pub fn missing_required(&self, settings: &Map<String, Value>, secrets: &Map<String, Value>) -> Vec<String> {
        self.config
            .iter()
            .filter(|(key, field)| {
                field.required
                    && field.default.is_none()
                    && settings.get(*key).is_none_or(Value::is_null)
                    && secrets.get(*key).is_none_or(Value::is_null)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The value a plugin reads for `key`: the admin's setting, else the default.
    pub fn effective(&self, settings: &Map<String, Value>, key: &str) -> Option<Value> {
        let field = self.config.get(key)?;
        if field.kind == FieldType::Secret {
            return None;
        }
        settings
            .get(key)
            .filter(|v| !v.is_null())
            .cloned()
            .or_else(|| field.default.clone())
    }
}

/// The dotted key whose value sits at byte `at` of a TOML text (`kind`, `config.due_in_days.default`).
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut table = None;
    for line in before[..line_start].lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = Some(header.trim().to_owned());
        }
    }
    let line = &text[line_start..];
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') || key.contains(char::is_whitespace) {
        return table;
    }
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    })
}

fn check_value(kind: FieldType, value: &Value) -> Result<(), String> {
    let ok = match kind {
        FieldType::String | FieldType::Secret => value.is_string(),
        FieldType::Integer => value.is_i64() || value.is_u64(),
        FieldType::Number => value.is_number(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Json => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("must be {}", type_words(kind)))
    }
}

fn type_words(kind: FieldType) -> &'static str {
    match kind {
        FieldType::String | FieldType::Secret => "a string",
        FieldType::Integer => "a whole number",
        FieldType::Number => "a number",
        FieldType::Boolean => "true or false",
        FieldType::Json => "JSON",
    }
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre` and `+build` part (Semantic Versioning 2.0.0), at most 64
/// characters.
pub fn valid_semver(v: &str) -> bool {
    v.len() <= 64 && semver::Version::parse(v).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "domain-placement"
version = "1.2.0"
kind = "enrollment"
description = "Places new users"
capabilities = ["log", "directory"]

[config.due_in_days]
type = "integer"
default = 14

[config.api_key]
type = "secret"
"#;

    #[test]
    fn parses_and_validates() {
        let m = Manifest::from_toml(GOOD).unwrap();
        assert_eq!(m.kind, Kind::Enrollment);
        assert!(m.requested().has(Capability::Directory));
        assert!(!m.requested().has(Capability::Kv));
        assert_eq!(m.effective(&Map::new(), "due_in_days"), Some(Value::from(14)));
        assert_eq!(m.effective(&Map::new(), "api_key"), None);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = GOOD.replace("1.2.0", "1.2");
        assert_eq!(Manifest::from_toml(&bad).unwrap_err().field, "version");
        let bad = GOOD.replace("\"directory\"]", "\"network\"]");
        assert!(Manifest::from_toml(&bad).unwrap_err().message.contains("network"));
        let bad = GOOD.replace("default = 14", "default = \"soon\"");
        assert_eq!(
            Manifest::from_toml(&bad).unwrap_err().field,
            "config.due_in_days.default"
        );
        let bad = GOOD.replace("kind = \"enrollment\"", "kind = \"enrollment\"\ncolour = 1");
        assert_eq!(Manifest::from_toml(&bad).unwrap_err().field, "colour");
        let bad = GOOD.replace("kind = \"enrollment\"", "kind = \"quiz\"");
        assert_eq!(Manifest::from_toml(&bad).unwrap_err().field, "kind");
        let bad = GOOD.replace("\"directory\"]", "\"network\"]");
        assert_eq!(Manifest::from_toml(&bad).unwrap_err().field, "capabilities");
        let bad = GOOD.replace("type = \"integer\"", "type = \"date\"");
        assert_eq!(Manifest::from_toml(&bad).unwrap_err().field, "config.due_in_days.type");
    }

    #[test]
    fn settings_are_checked_against_the_schema() {
        let m = Manifest::from_toml(GOOD).unwrap();
        let mut values = Map::new();
        values.insert("due_in_days".into(), Value::from("x"));
        assert_eq!(m.check_settings(&values).unwrap_err().field, "config.due_in_days");
        values.clear();
        values.insert("api_key".into(), Value::from("x"));
        assert!(m.check_settings(&values).unwrap_err().message.contains("secret"));
        values.clear();
        values.insert("nope".into(), Value::from(1));
        assert!(m.check_settings(&values).is_err());
    }

    #[test]
    fn semver() {
        for ok in ["0.1.0", "1.2.3", "1.0.0-beta.1", "2.0.0+build.5"] {
            assert!(valid_semver(ok), "{ok}");
        }
        for bad in ["1.2", "01.2.3", "a.b.c", "1.2.3.4", ""] {
            assert!(!valid_semver(bad), "{bad}");
        }
    }
}
