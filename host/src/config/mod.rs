//! Settings, layered: defaults, then an optional TOML file, then `AULA_*` environment variables, then the
//! command line's flags (which `cli` applies).
//!
//! Every key has an environment name: its path in the file joined by `_` (`AULA_MAIL_SMTP_PORT` for
//! `[mail] smtp_port`, `AULA_PLUGINS_LIMITS_BRANDING_TIMEOUT_MS`) or by `__`. Values from the environment are
//! text and become the key's type when the settings are read, so a password of digits stays a password.
//!
//! This module is a leaf: it imports nothing else of the host, so anything may read settings.

pub mod mail;
pub mod notify;
pub mod plugins;
pub mod sso;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The database URL. It may carry a password, so it prints with the password replaced.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// Wrap a URL.
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(SecretString::from(url.into()))
    }
    /// The URL itself, for the one place that connects.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Everything but the password: it says which database is meant.
        f.write_str(&redact_url(self.expose()))
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&redact_url(self.expose()))
    }
}

/// Serialize a secret as whether it is set, never as itself.
pub(crate) fn redacted<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.expose_secret().is_empty() { "" } else { "****" })
}

/// A URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:****{}", &url[..scheme + 3], &creds[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Everything the host can be told.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite:aula.db` (default) or `postgres://…`.
    pub database_url: DatabaseUrl,
    /// Pooled connections; 0 picks per backend (SQLite: twice the cores, since each connection is a thread
    /// and only one writes at a time; PostgreSQL: 16).
    pub max_connections: u32,
    /// Tenants are reachable as `<slug>.<base_domain>`.
    pub base_domain: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Mark cookies `Secure` (keep on outside local development: browsers treat `*.localhost` as secure).
    pub cookie_secure: bool,
    /// Session lifetime in hours.
    pub session_hours: i64,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Take the host from `X-Forwarded-Host` (only behind a proxy that sets it).
    pub trust_forwarded_host: bool,
    /// Failed logins per e-mail within the window before login is refused for the rest of it.
    pub login_max_failures: i64,
    /// The failed-login window in seconds.
    pub login_window_secs: i64,
    /// Requests of one academy (by the host they name) in progress at once; more wait their turn.
    pub max_requests_per_academy: u32,
    /// Requests in progress at once for the whole process.
    pub max_requests: u32,
    /// How long a request waits for its turn before it is answered `429` (its academy's share is full) or
    /// `503` (the host's is).
    pub request_wait_ms: u32,
    /// How long a client may take to send a request's headers before the connection is closed.
    pub header_read_timeout_ms: u32,
    /// How long a request may take, from its turn to its answer's head (reading its body included), before
    /// it is stopped and answered `503`. Probes are exempt; a streamed answer's body is not counted.
    pub request_timeout_ms: u32,
    /// How long an authenticated caller is reused without looking the credential up again (0: never).
    /// Changes made through this process clear it at once; other replicas see them within this time.
    pub auth_cache_ms: u64,
    /// Plugin limits and storage (`[plugins]`, with `[plugins.limits.<kind>]`).
    pub plugins: plugins::PluginSettings,
    /// Outgoing mail (`[mail]`); off unless configured.
    pub mail: mail::MailSettings,
    /// The outbox, delivery and the notification scheduler (`[notifications]`).
    pub notifications: notify::NotifySettings,
    /// Calls to academies' identity providers (`[sso]`).
    pub sso: sso::SsoSettings,
    /// Where this replica keeps its copy of academies' uploaded theme files (the database holds the
    /// originals; the copy is rebuilt when missing).
    pub themes_dir: String,
    /// `AULA_*` variables that name no setting (a typo, or a setting of another version), to be logged.
    #[serde(skip)]
    pub unknown_env: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: DatabaseUrl::new("sqlite:aula.db"),
            max_connections: 0,
            base_domain: "localhost".into(),
            log_format: LogFormat::Text,
            cookie_secure: true,
            session_hours: 12,
            max_body_bytes: 2 * 1024 * 1024,
            trust_forwarded_host: false,
            themes_dir: "aula-themes".into(),
            login_max_failures: 5,
            login_window_secs: 900,
            max_requests_per_academy: 32,
            max_requests: 512,
            request_wait_ms: 10_000,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            auth_cache_ms: 2000,
            plugins: Default::default(),
            mail: Default::default(),
            notifications: Default::default(),
            sso: Default::default(),
            unknown_env: Vec::new(),
        }
    }
}

/// Environment names that are not settings of this file: the file's own path, and the test suite's.
const NOT_SETTINGS: &[&str] = &["AULA_CONFIG"];
const NOT_SETTINGS_PREFIXES: &[&str] = &["AULA_TEST_", "AULA_BENCH_"];

/// Names kept from earlier versions.
const ALIASES: &[(&str, &str)] = &[("AULA_PLUGIN_FILES_DIR", "plugins.files_dir")];

impl Config {
    /// Load defaults, then the file (if given), then the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Config::load_from(file, std::env::vars())
    }

    /// Load defaults, then the file (if given), then these environment variables.
    pub fn load_from(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Config> {
        let mut builder = ::config::Config::builder();
        if let Some(path) = file {
            if !path.is_file() {
                anyhow::bail!("cannot read config file {}: no such file", path.display());
            }
            builder = builder.add_source(::config::File::from(path).format(::config::FileFormat::Toml));
        }
        let keys = Config::env_keys();
        let mut from_env: BTreeMap<String, String> = BTreeMap::new();
        let mut unknown_env = Vec::new();
        for (name, value) in env {
            if !name.starts_with("AULA_")
                || NOT_SETTINGS.contains(&name.as_str())
                || NOT_SETTINGS_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                continue;
            }
            match keys.get(&name) {
                Some(key) => {
                    builder = builder.set_override(key.as_str(), value)?;
                    from_env.insert(key.clone(), name);
                }
                None => unknown_env.push(name),
            }
        }
        let built = builder.build().map_err(|e| describe(e, file, &from_env))?;
        let mut config: Config = built.try_deserialize().map_err(|e| describe(e, file, &from_env))?;
        config.normalize();
        unknown_env.sort();
        config.unknown_env = unknown_env;
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// Every setting's environment names (`AULA_MAIL_SMTP_PORT` and `AULA_MAIL__SMTP_PORT`) → its key path
    /// (`mail.smtp_port`), from the keys the defaults have.
    pub fn env_keys() -> BTreeMap<String, String> {
        fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        let path = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&path, v, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let mut paths = Vec::new();
        if let Ok(defaults) = serde_json::to_value(Config::default()) {
            walk("", &defaults, &mut paths);
        }
        let mut out = BTreeMap::new();
        for path in paths {
            let upper = path.to_ascii_uppercase();
            out.insert(format!("AULA_{}", upper.replace('.', "_")), path.clone());
            out.insert(format!("AULA_{}", upper.replace('.', "__")), path);
        }
        for (name, path) in ALIASES {
            out.insert((*name).to_owned(), (*path).to_owned());
        }
        out
    }

    /// An empty text from the environment means "not set" for the optional settings.
    fn normalize(&mut self) {
        for value in [&mut self.mail.smtp_username, &mut self.mail.from_address] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *value = None;
            }
        }
    }

    /// Check the settings, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_requests == 0 || self.max_requests > 100_000 {
            return Err("max_requests must be 1–100000".into());
        }
        if self.max_requests_per_academy == 0 {
            return Err("max_requests_per_academy must be at least 1 (it is capped at max_requests)".into());
        }
        if self.header_read_timeout_ms == 0 || self.header_read_timeout_ms > 600_000 {
            return Err("header_read_timeout_ms must be 1–600000".into());
        }
        if self.request_timeout_ms == 0 || self.request_timeout_ms > 3_600_000 {
            return Err("request_timeout_ms must be 1–3600000".into());
        }
        if self.request_wait_ms == 0 || self.request_wait_ms > 600_000 {
            return Err("request_wait_ms must be 1–600000".into());
        }
        self.plugins.validate()?;
        self.mail.validate()?;
        self.notifications.validate()?;
        self.sso.validate()?;
        Ok(())
    }
}

/// A settings error that names where the bad value came from: the file, or the environment variable.
fn describe(err: ::config::ConfigError, file: Option<&Path>, from_env: &BTreeMap<String, String>) -> anyhow::Error {
    let text = err.to_string();
    // The library names the key in backquotes; a key set from the environment is named by its variable.
    if let Some(name) = from_env
        .iter()
        .find_map(|(key, name)| text.contains(&format!("`{key}`")).then_some(name))
    {
        return anyhow::anyhow!("environment variable {name} has an invalid value: {text}");
    }
    match file {
        Some(path) => anyhow::anyhow!("config file {}: {text}", path.display()),
        None => anyhow::anyhow!("settings: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::load_from(None, env(&[("AULA_DATABASE_URL", "postgres://aula:hunter2@db/aula")])).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("aula:****@db"), "{printed}");
        assert_eq!(c.database_url.expose(), "postgres://aula:hunter2@db/aula");
    }

    #[test]
    fn mail_settings_come_from_the_environment_and_the_password_never_prints() {
        let c = Config::load_from(
            None,
            env(&[
                ("AULA_MAIL_TRANSPORT", "smtp"),
                ("AULA_MAIL_SMTP_HOST", "mail.example.com"),
                ("AULA_MAIL_SMTP_PORT", "465"),
                ("AULA_MAIL_SMTP_TLS", "tls"),
                ("AULA_MAIL_SMTP_USERNAME", "aula"),
                // Digits only: still a password, not a number.
                ("AULA_MAIL_SMTP_PASSWORD", "31415926"),
                ("AULA_MAIL_FROM_ADDRESS", "academy@example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(c.mail.transport, mail::MailTransport::Smtp);
        assert_eq!(c.mail.smtp_port, 465);
        assert_eq!(c.mail.smtp_tls, mail::SmtpTls::Tls);
        assert_eq!(c.mail.smtp_password.expose_secret(), "31415926");
        let printed = format!("{c:?}");
        assert!(!printed.contains("31415926"), "{printed}");
        assert!(printed.contains("sqlite:aula.db"), "{printed}");
        let err = Config::load_from(None, env(&[("AULA_MAIL_SMTP_TLS", "ssl")])).unwrap_err();
        assert!(err.to_string().contains("AULA_MAIL_SMTP_TLS"), "{err}");
    }

    #[test]
    fn every_key_has_an_environment_name() {
        let c = Config::load_from(
            None,
            env(&[
                ("AULA_SESSION_HOURS", "3"),
                ("AULA_MAX_BODY_BYTES", "1000"),
                ("AULA_LOGIN_MAX_FAILURES", "9"),
                ("AULA_PLUGINS_LIMITS_BRANDING_TIMEOUT_MS", "250"),
                ("AULA_PLUGINS__LIMITS__REPORTS__MEMORY_MIB", "32"),
                ("AULA_PLUGINS_MAX_CONCURRENT_CALLS", "64"),
                ("AULA_PLUGIN_FILES_DIR", "/srv/plugin-files"),
                ("AULA_NOTIFICATIONS_LINK_PORT", "8443"),
                ("AULA_MAIL_SMTP_USERNAME", ""),
                ("AULA_TEST_POSTGRES_URL", "postgres://elsewhere"),
                ("AULA_SESION_HOURS", "4"),
            ]),
        )
        .unwrap();
        assert_eq!(c.session_hours, 3);
        assert_eq!(c.max_body_bytes, 1000);
        assert_eq!(c.login_max_failures, 9);
        assert_eq!(c.plugins.limits.branding.timeout_ms, 250);
        assert_eq!(c.plugins.limits.reports.memory_mib, 32);
        assert_eq!(c.plugins.limits.enrollment, plugins::Limits::ENROLLMENT);
        assert_eq!(c.plugins.max_concurrent_calls, 64);
        assert_eq!(c.plugins.files_dir, "/srv/plugin-files");
        assert_eq!(c.notifications.link_port, Some(8443));
        assert_eq!(c.mail.smtp_username, None);
        assert_eq!(c.unknown_env, vec!["AULA_SESION_HOURS".to_owned()]);
        // No two settings share an environment name.
        let keys = Config::env_keys();
        let mut names: Vec<String> = keys
            .values()
            .map(|path| path.replace('.', "_"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let paths = keys.values().collect::<std::collections::BTreeSet<_>>().len();
        names.dedup();
        assert_eq!(names.len(), paths);
    }

    #[test]
    fn the_file_is_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("aula-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("aula.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\n[mail]\ntransport = \"file\"\nfile_dir = \"/tmp/mail\"\n\
             from_address = \"noreply@acme.test\"\n[plugins.limits.branding]\ntimeout_ms = 150\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), env(&[("AULA_LISTEN", "127.0.0.1:9001")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9001", "the environment wins over the file");
        assert_eq!(c.mail.transport, mail::MailTransport::File);
        assert_eq!(c.mail.file_dir, "/tmp/mail");
        assert_eq!(c.mail.smtp_port, 587);
        assert_eq!(c.plugins.limits.branding.timeout_ms, 150);
        assert_eq!(
            c.plugins.limits.branding.memory_mib,
            plugins::Limits::BRANDING.memory_mib
        );
        std::fs::write(&path, "[mail]\ntransport = \"pigeon\"\n").unwrap();
        assert!(Config::load_from(Some(&path), env(&[])).is_err());
        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        let err = Config::load_from(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_env_value_is_named() {
        let err = Config::load_from(None, env(&[("AULA_MAX_CONNECTIONS", "many")])).unwrap_err();
        assert!(err.to_string().contains("AULA_MAX_CONNECTIONS"), "{err}");
        let err = Config::load_from(None, env(&[("AULA_PLUGINS_FAULT_LIMIT", "0")])).unwrap_err();
        assert!(err.to_string().contains("plugins.fault_limit"), "{err}");
    }
}
