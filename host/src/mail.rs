//! Outgoing mail: one [`Mailer`], built from the `[mail]` settings, that sends plain-text messages over SMTP,
//! writes them into a folder, or (the default) only logs that they were due.
//!
//! Callers build an [`Outgoing`] message and hand it to [`Mailer::send`] after their transaction has
//! committed; nothing here touches the database, so an outbox with retries can be put in front of it later.

use crate::config::mail::{MailSettings, MailTransport, SmtpTls};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use std::fmt;
use std::time::Duration;

/// How long one SMTP conversation may take before it is given up.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One message to send: plain text, from the academy to one person.
#[derive(Clone)]
pub struct Outgoing {
    /// The recipient's address.
    pub to: String,
    /// The recipient's name, shown beside the address.
    pub to_name: Option<String>,
    /// The sender's display name (the academy's name); the address is the configured `from_address`.
    pub from_name: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body. It may carry a secret link, so it is never logged or printed.
    pub text: String,
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("to", &self.to)
            .field("from_name", &self.from_name)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address (recipient or sender) is not one.
    #[error("{which} address {address:?} is not valid: {reason}")]
    Address {
        /// `recipient` or `sender`.
        which: &'static str,
        /// The address.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The message could not be put together.
    #[error("the message cannot be built: {0}")]
    Build(#[from] lettre::error::Error),
    /// The SMTP server could not be reached, or refused the message.
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The file transport could not write the message.
    #[error("writing the message file failed: {0}")]
    File(#[from] lettre::transport::file::Error),
}

enum Transport {
    Off,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Sends mail the way the settings say. Built once at start-up and shared.
pub struct Mailer {
    transport: Transport,
    from: Address,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Off => "off",
            Transport::Smtp(_) => "smtp",
            Transport::File(_) => "file",
        };
        f.debug_struct("Mailer")
            .field("transport", &transport)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// The mailer for these settings; the sender address defaults to `noreply@<base_domain>`.
    pub fn new(settings: &MailSettings, base_domain: &str) -> Result<Mailer, MailError> {
        let from = settings
            .from_address
            .clone()
            .unwrap_or_else(|| format!("noreply@{base_domain}"));
        let from = parse_address("sender", &from)?;
        let transport = match settings.transport {
            MailTransport::Off => Transport::Off,
            MailTransport::File => Transport::File(AsyncFileTransport::new(&settings.file_dir)),
            MailTransport::Smtp => {
                let host = settings.smtp_host.trim();
                let tls = match settings.smtp_tls {
                    SmtpTls::None => Tls::None,
                    SmtpTls::Starttls => Tls::Required(TlsParameters::new(host.to_owned())?),
                    SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(host.to_owned())?),
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(settings.smtp_port)
                    .tls(tls)
                    .timeout(Some(SMTP_TIMEOUT));
                if let Some(user) = settings.smtp_username.as_deref().filter(|u| !u.is_empty()) {
                    builder = builder.credentials(Credentials::new(
                        user.to_owned(),
                        settings.smtp_password.expose_secret().to_owned(),
                    ));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Mailer { transport, from })
    }

    /// Send one message now. With the `off` transport it is logged (never its body) and dropped.
    pub async fn send(&self, msg: Outgoing) -> Result<(), MailError> {
        let to = parse_address("recipient", &msg.to)?;
        let message = Message::builder()
            .from(Mailbox::new(Some(msg.from_name.clone()), self.from.clone()))
            .to(Mailbox::new(msg.to_name.clone(), to))
            .subject(msg.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(msg.text)?;
        match &self.transport {
            Transport::Off => {
                tracing::info!(to = %msg.to, subject = %msg.subject, "mail transport is off; message dropped");
            }
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::File(file) => {
                file.send(message).await?;
            }
        }
        Ok(())
    }
}

fn parse_address(which: &'static str, address: &str) -> Result<Address, MailError> {
    address
        .trim()
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Address {
            which,
            address: address.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_off_and_valid() {
        let s = MailSettings::default();
        assert_eq!(s.transport, MailTransport::Off);
        assert_eq!(s.smtp_port, 587);
        assert_eq!(s.smtp_tls, SmtpTls::Starttls);
        s.validate().unwrap();
        let mailer = Mailer::new(&s, "localhost").unwrap();
        assert_eq!(mailer.from.to_string(), "noreply@localhost");
    }

    #[test]
    fn settings_name_what_is_missing() {
        let s = MailSettings {
            transport: MailTransport::Smtp,
            ..MailSettings::default()
        };
        assert!(s.validate().unwrap_err().contains("mail.smtp_host"));
        let s = MailSettings {
            transport: MailTransport::File,
            ..MailSettings::default()
        };
        assert!(s.validate().unwrap_err().contains("mail.file_dir"));
        let s = MailSettings {
            from_address: Some("not an address".into()),
            ..MailSettings::default()
        };
        assert!(s.validate().unwrap_err().contains("mail.from_address"));
    }

    #[test]
    fn the_body_never_prints() {
        let msg = Outgoing {
            to: "ada@example.com".into(),
            to_name: None,
            from_name: "Acme Academy".into(),
            subject: "Reset your password".into(),
            text: "https://acme.example.com/password-reset/SECRET".into(),
        };
        let printed = format!("{msg:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("ada@example.com"), "{printed}");
    }

    #[tokio::test]
    async fn the_file_transport_writes_one_file_per_message() {
        let dir = std::env::temp_dir().join(format!("aula-mail-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = MailSettings {
            transport: MailTransport::File,
            file_dir: dir.display().to_string(),
            from_address: Some("academy@example.com".into()),
            ..MailSettings::default()
        };
        let mailer = Mailer::new(&settings, "localhost").unwrap();
        mailer
            .send(Outgoing {
                to: "ada@example.com".into(),
                to_name: Some("Ada".into()),
                from_name: "Acme Academy".into(),
                subject: "Hello".into(),
                text: "Hello Ada".into(),
            })
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(text.contains("From: \"Acme Academy\" <academy@example.com>"), "{text}");
        assert!(
            text.contains("To: \"Ada\" <ada@example.com>") || text.contains("To: Ada <ada@example.com>"),
            "{text}"
        );
        assert!(text.contains("Hello Ada"), "{text}");
    }
}
