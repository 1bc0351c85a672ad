//! `[mail]`: where outgoing mail goes.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Where messages go.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Nowhere: each message is logged (recipient and subject, never the body) and dropped.
    #[default]
    Off,
    /// To an SMTP server (`smtp_host`, `smtp_port`, `smtp_tls`, optional credentials).
    Smtp,
    /// Into `file_dir`, one `.eml` file per message (development, or a pickup folder).
    File,
}

impl std::str::FromStr for MailTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(MailTransport::Off),
            "smtp" => Ok(MailTransport::Smtp),
            "file" => Ok(MailTransport::File),
            _ => Err("must be smtp, file or off".into()),
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on the same machine or network only).
    None,
    /// Upgrade with STARTTLS, and refuse a server that does not offer it (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

impl std::str::FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::Starttls),
            "tls" => Ok(SmtpTls::Tls),
            _ => Err("must be none, starttls or tls".into()),
        }
    }
}

/// The `[mail]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `smtp`, `file` or `off` (default: messages are logged without their body and dropped).
    pub transport: MailTransport,
    /// The SMTP server.
    pub smtp_host: String,
    /// Its port (default 587).
    pub smtp_port: u16,
    /// `none`, `starttls` (default) or `tls`.
    pub smtp_tls: SmtpTls,
    /// User name for SMTP authentication; none: no authentication.
    pub smtp_username: Option<String>,
    /// Password for SMTP authentication.
    #[serde(serialize_with = "super::redacted")]
    pub smtp_password: SecretString,
    /// The folder the `file` transport writes into.
    pub file_dir: String,
    /// The sender address; default `noreply@<base_domain>`. The sender's name is the academy's name.
    pub from_address: Option<String>,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            transport: MailTransport::Off,
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_tls: SmtpTls::Starttls,
            smtp_username: None,
            smtp_password: SecretString::default(),
            file_dir: String::new(),
            from_address: None,
        }
    }
}

impl MailSettings {
    /// Check the settings, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        match self.transport {
            MailTransport::Smtp if self.smtp_host.trim().is_empty() => {
                return Err("mail.smtp_host is required when mail.transport is smtp".into());
            }
            MailTransport::File if self.file_dir.trim().is_empty() => {
                return Err("mail.file_dir is required when mail.transport is file".into());
            }
            _ => {}
        }
        if let Some(from) = &self.from_address {
            from.parse::<lettre::Address>()
                .map_err(|e| format!("mail.from_address {from:?} is not an e-mail address: {e}"))?;
        }
        Ok(())
    }
}
