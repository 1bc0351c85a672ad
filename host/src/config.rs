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
        // A database URL shows everything but its password (it says which database is meant); any other
        // secret (a mail password) shows only whether it is set.
        if ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| self.0.starts_with(p))
        {
            f.write_str(&crate::db::backend::redact_url(&self.0))
        } else if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("****")
        }
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
    /// Outgoing mail (`[mail]`); off unless configured.
    pub mail: crate::mail::MailSettings,
    /// The outbox, delivery and the notification scheduler (`[notifications]`).
    pub notifications: crate::notify::NotifySettings,
    /// Where this replica keeps its copy of academies' uploaded theme files (the database holds the
    /// originals; the copy is rebuilt when missing).
    pub themes_dir: String,
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
            themes_dir: "aula-themes".into(),
            login_max_failures: 5,
            login_window_secs: 900,
            auth_cache_ms: 2000,
            plugins: Default::default(),
            mail: Default::default(),
            notifications: Default::default(),
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
        config.mail.validate().map_err(anyhow::Error::msg)?;
        config.notifications.validate().map_err(anyhow::Error::msg)?;
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
        if let Some(v) = get("AULA_THEMES_DIR") {
            self.themes_dir = v;
        }
        if let Some(v) = get("AULA_PLUGIN_FILES_DIR") {
            self.plugins.files_dir = v;
        }
        if let Some(v) = get("AULA_TRUST_FORWARDED_HOST") {
            self.trust_forwarded_host = parse("AULA_TRUST_FORWARDED_HOST", v)?;
        }
        if let Some(v) = get("AULA_MAIL_TRANSPORT") {
            self.mail.transport = v.parse().map_err(|e| anyhow::anyhow!("AULA_MAIL_TRANSPORT {e}"))?;
        }
        if let Some(v) = get("AULA_MAIL_SMTP_HOST") {
            self.mail.smtp_host = v;
        }
        if let Some(v) = get("AULA_MAIL_SMTP_PORT") {
            self.mail.smtp_port = parse("AULA_MAIL_SMTP_PORT", v)?;
        }
        if let Some(v) = get("AULA_MAIL_SMTP_TLS") {
            self.mail.smtp_tls = v.parse().map_err(|e| anyhow::anyhow!("AULA_MAIL_SMTP_TLS {e}"))?;
        }
        if let Some(v) = get("AULA_MAIL_SMTP_USERNAME") {
            self.mail.smtp_username = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = get("AULA_MAIL_SMTP_PASSWORD") {
            self.mail.smtp_password = Secret::new(v);
        }
        if let Some(v) = get("AULA_MAIL_FILE_DIR") {
            self.mail.file_dir = v;
        }
        if let Some(v) = get("AULA_MAIL_FROM_ADDRESS") {
            self.mail.from_address = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = get("AULA_NOTIFICATIONS_ENABLED") {
            self.notifications.enabled = parse("AULA_NOTIFICATIONS_ENABLED", v)?;
        }
        if let Some(v) = get("AULA_NOTIFICATIONS_POLL_MS") {
            self.notifications.poll_ms = parse("AULA_NOTIFICATIONS_POLL_MS", v)?;
        }
        if let Some(v) = get("AULA_NOTIFICATIONS_SCHEDULE_MS") {
            self.notifications.schedule_ms = parse("AULA_NOTIFICATIONS_SCHEDULE_MS", v)?;
        }
        if let Some(v) = get("AULA_NOTIFICATIONS_LEASE_MS") {
            self.notifications.lease_ms = parse("AULA_NOTIFICATIONS_LEASE_MS", v)?;
        }
        if let Some(v) = get("AULA_NOTIFICATIONS_LINK_PORT") {
            self.notifications.link_port = Some(parse("AULA_NOTIFICATIONS_LINK_PORT", v)?);
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
    fn mail_settings_come_from_the_environment_and_the_password_never_prints() {
        let mut c = Config::default();
        let env = [
            ("AULA_MAIL_TRANSPORT", "smtp"),
            ("AULA_MAIL_SMTP_HOST", "mail.example.com"),
            ("AULA_MAIL_SMTP_PORT", "465"),
            ("AULA_MAIL_SMTP_TLS", "tls"),
            ("AULA_MAIL_SMTP_USERNAME", "aula"),
            ("AULA_MAIL_SMTP_PASSWORD", "hunter2"),
            ("AULA_MAIL_FROM_ADDRESS", "academy@example.com"),
        ];
        c.apply_env(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
            .unwrap();
        assert_eq!(c.mail.transport, crate::mail::MailTransport::Smtp);
        assert_eq!(c.mail.smtp_port, 465);
        assert_eq!(c.mail.smtp_tls, crate::mail::SmtpTls::Tls);
        assert_eq!(c.mail.smtp_password.expose(), "hunter2");
        c.mail.validate().unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("sqlite:aula.db"), "{printed}");
        let err = c
            .apply_env(|k| (k == "AULA_MAIL_SMTP_TLS").then(|| "ssl".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("AULA_MAIL_SMTP_TLS"), "{err}");
    }

    #[test]
    fn mail_section_reads_from_the_file() {
        let c: Config = toml::from_str(
            "[mail]\ntransport = \"file\"\nfile_dir = \"/tmp/mail\"\nfrom_address = \"noreply@acme.test\"\n",
        )
        .unwrap();
        assert_eq!(c.mail.transport, crate::mail::MailTransport::File);
        assert_eq!(c.mail.file_dir, "/tmp/mail");
        assert_eq!(c.mail.smtp_port, 587);
        assert!(toml::from_str::<Config>("[mail]\ntransport = \"pigeon\"\n").is_err());
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
