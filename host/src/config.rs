//! Configuration: defaults, then an optional TOML file, then `AULA_*` environment variables, then flags.

use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// A value that never prints.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::db::backend::redact_url(&self.0))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the host can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite:aula.db` (default) or `postgres://…`.
    pub database_url: Secret,
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
    /// How long an authenticated caller is reused without looking the credential up again (0: never).
    /// Changes made through this process clear it at once; other replicas see them within this time.
    pub auth_cache_ms: u64,
    /// Plugin limits and storage (`[plugins]`, with `[plugins.limits.<kind>]`).
    pub plugins: crate::plugins::limits::PluginSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: Secret::new("sqlite:aula.db"),
            max_connections: 0,
            base_domain: "localhost".into(),
            log_format: LogFormat::Text,
            cookie_secure: true,
            session_hours: 12,
            max_body_bytes: 2 * 1024 * 1024,
            trust_forwarded_host: false,
            login_max_failures: 5,
            login_window_secs: 900,
            auth_cache_ms: 2000,
            plugins: Default::default(),
        }
    }
}

impl Config {
    /// Load defaults, then the file (if given), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.plugins.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// Override from `AULA_*` variables.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, v: String) -> anyhow::Result<T> {
            v.parse()
                .map_err(|_| anyhow::anyhow!("environment variable {name} has an invalid value"))
        }
        if let Some(v) = get("AULA_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("AULA_DATABASE_URL") {
            self.database_url = Secret::new(v);
        }
        if let Some(v) = get("AULA_MAX_CONNECTIONS") {
            self.max_connections = parse("AULA_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = get("AULA_BASE_DOMAIN") {
            self.base_domain = v;
        }
        if let Some(v) = get("AULA_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => anyhow::bail!("AULA_LOG_FORMAT must be text or json"),
            };
        }
        if let Some(v) = get("AULA_COOKIE_SECURE") {
            self.cookie_secure = parse("AULA_COOKIE_SECURE", v)?;
        }
        if let Some(v) = get("AULA_AUTH_CACHE_MS") {
            self.auth_cache_ms = parse("AULA_AUTH_CACHE_MS", v)?;
        }
        if let Some(v) = get("AULA_PLUGIN_FILES_DIR") {
            self.plugins.files_dir = v;
        }
        if let Some(v) = get("AULA_TRUST_FORWARDED_HOST") {
            self.trust_forwarded_host = parse("AULA_TRUST_FORWARDED_HOST", v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "AULA_DATABASE_URL").then(|| "postgres://aula:hunter2@db/aula".to_owned()))
            .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("aula:****@db"), "{printed}");
    }

    #[test]
    fn bad_env_value_is_named() {
        let mut c = Config::default();
        let err = c
            .apply_env(|k| (k == "AULA_MAX_CONNECTIONS").then(|| "many".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("AULA_MAX_CONNECTIONS"));
    }
}
