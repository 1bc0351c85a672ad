//! A small SMTP client (RFC 5321, with STARTTLS or implicit TLS and AUTH PLAIN) whose message transaction
//! comes in two steps: [`Connection::begin`] sends the envelope and the whole content but not the final
//! `.` line, and [`Connection::finish`] sends that line and reads the server's verdict.
//!
//! The split is what lets the outbox deliver exactly once across crashes. A server takes responsibility for
//! a message only once it has the final `.`; until then, a dropped connection discards it. So the deliverer
//! records "handed over" in the database between the two steps: a crash before that record means the
//! server never had the message (it is sent again); a crash after it means it may have (it is never sent
//! again). What is left is the few microseconds between the record's commit and writing five bytes.

use crate::config::mail::{MailSettings, SmtpTls};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long one step of the conversation may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest reply accepted.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What went wrong, and whether the message may have reached the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpError {
    /// The server refused for now (4xx), or the connection failed before the message was handed over:
    /// try again later.
    #[error("{0}")]
    Transient(String),
    /// The server refused for good (5xx): do not try again.
    #[error("{0}")]
    Permanent(String),
}

/// A server's reply: its code and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of every line, joined by spaces.
    pub text: String,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The error this reply means when it is not a success.
    fn error(&self, doing: &str) -> SmtpError {
        let message = format!("{doing}: the server answered {} {}", self.code, self.text);
        if self.code >= 500 {
            SmtpError::Permanent(message)
        } else {
            SmtpError::Transient(message)
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One open SMTP session.
pub struct Connection {
    stream: Stream,
    buffer: Vec<u8>,
    extensions: Vec<String>,
}

fn io(doing: &str, e: impl std::fmt::Display) -> SmtpError {
    SmtpError::Transient(format!("{doing}: {e}"))
}

async fn timed<T>(doing: &str, f: impl Future<Output = Result<T, SmtpError>>) -> Result<T, SmtpError> {
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .map_err(|_| SmtpError::Transient(format!("{doing}: no answer within {} s", STEP_TIMEOUT.as_secs())))?
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn wrap(host: &str, tcp: TcpStream) -> Result<Stream, SmtpError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| SmtpError::Permanent(format!("mail.smtp_host {host:?} is not a TLS server name: {e}")))?;
    let tls = timed("TLS handshake", async {
        tls_connector()
            .connect(name, tcp)
            .await
            .map_err(|e| io("TLS handshake", e))
    })
    .await?;
    Ok(Stream::Tls(Box::new(tls)))
}

impl Connection {
    /// Connect, greet, secure the connection as configured and authenticate.
    pub async fn open(settings: &MailSettings, helo: &str) -> Result<Connection, SmtpError> {
        let host = settings.smtp_host.trim();
        let tcp = timed("connecting", async {
            TcpStream::connect((host, settings.smtp_port))
                .await
                .map_err(|e| io(&format!("connecting to {host}:{}", settings.smtp_port), e))
        })
        .await?;
        tcp.set_nodelay(true).ok();
        let stream = match settings.smtp_tls {
            SmtpTls::Tls => wrap(host, tcp).await?,
            SmtpTls::None | SmtpTls::Starttls => Stream::Plain(tcp),
        };
        let mut conn = Connection {
            stream,
            buffer: Vec::new(),
            extensions: Vec::new(),
        };
        let greeting = conn.reply("greeting").await?;
        if greeting.code != 220 {
            return Err(greeting.error("greeting"));
        }
        conn.ehlo(helo).await?;
        if settings.smtp_tls == SmtpTls::Starttls {
            if !conn.has_extension("STARTTLS") {
                return Err(SmtpError::Permanent(
                    "the server does not offer STARTTLS, which mail.smtp_tls = starttls requires".into(),
                ));
            }
            conn.command("STARTTLS", "STARTTLS").await?;
            let Stream::Plain(tcp) = conn.stream else {
                unreachable!("STARTTLS runs on a plain connection");
            };
            conn.stream = wrap(host, tcp).await?;
            conn.buffer.clear();
            conn.ehlo(helo).await?;
        }
        if let Some(user) = settings.smtp_username.as_deref().filter(|u| !u.is_empty()) {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!(
                "\0{user}\0{}",
                secrecy::ExposeSecret::expose_secret(&settings.smtp_password)
            ));
            conn.command(&format!("AUTH PLAIN {token}"), "authenticating").await?;
        }
        Ok(conn)
    }

    async fn ehlo(&mut self, helo: &str) -> Result<(), SmtpError> {
        let reply = self.command(&format!("EHLO {helo}"), "EHLO").await?;
        self.extensions = reply
            .text
            .split('\n')
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_ascii_uppercase())
            .collect();
        Ok(())
    }

    fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e == name)
    }

    /// Send the envelope and the content (CRLF lines, dot-stuffed here), everything but the final `.`.
    pub async fn begin(&mut self, from: &str, to: &str, content: &[u8]) -> Result<(), SmtpError> {
        self.command(&format!("MAIL FROM:<{from}>"), "MAIL FROM").await?;
        self.command(&format!("RCPT TO:<{to}>"), "RCPT TO").await?;
        let reply = self.send_line("DATA", "DATA").await?;
        if reply.code != 354 {
            return Err(reply.error("DATA"));
        }
        let mut data = Vec::with_capacity(content.len() + 64);
        for (i, line) in content.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if i > 0 {
                data.extend_from_slice(b"\r\n");
            }
            if line.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        timed("sending the message", self.write(&data)).await
    }

    /// Send the final `.` and read the verdict. An error means the verdict is unknown: the server may or may
    /// not have taken the message.
    pub async fn finish(&mut self) -> Result<Reply, String> {
        timed("ending the message", self.write(b".\r\n"))
            .await
            .map_err(|e| e.to_string())?;
        self.reply("the message").await.map_err(|e| e.to_string())
    }

    /// Forget the current transaction (after a refusal), keeping the connection.
    pub async fn reset(&mut self) -> Result<(), SmtpError> {
        self.command("RSET", "RSET").await.map(|_| ())
    }

    /// Say goodbye; errors do not matter any more.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.send_line("QUIT", "QUIT")).await;
    }

    async fn command(&mut self, line: &str, doing: &str) -> Result<Reply, SmtpError> {
        let reply = self.send_line(line, doing).await?;
        if reply.ok() { Ok(reply) } else { Err(reply.error(doing)) }
    }

    async fn send_line(&mut self, line: &str, doing: &str) -> Result<Reply, SmtpError> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        timed(doing, self.write(&bytes)).await?;
        self.reply(doing).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        let result = match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).await.and(s.flush().await),
            Stream::Tls(s) => s.write_all(bytes).await.and(s.flush().await),
        };
        result.map_err(|e| io("writing to the server", e))
    }

    /// Read one reply, all its lines.
    async fn reply(&mut self, doing: &str) -> Result<Reply, SmtpError> {
        timed(doing, async {
            let mut lines: Vec<String> = Vec::new();
            loop {
                let line = self.line().await?;
                if line.len() < 3 {
                    return Err(SmtpError::Transient(format!("{doing}: a malformed reply {line:?}")));
                }
                let code: u16 = line[..3]
                    .parse()
                    .map_err(|_| SmtpError::Transient(format!("{doing}: a malformed reply {line:?}")))?;
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line.get(4..).unwrap_or_default().to_owned());
                if last {
                    return Ok(Reply {
                        code,
                        text: lines.join("\n"),
                    });
                }
            }
        })
        .await
    }

    async fn line(&mut self) -> Result<String, SmtpError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            if self.buffer.len() > MAX_REPLY_BYTES {
                return Err(SmtpError::Transient("the server's reply is too long".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut chunk).await,
                Stream::Tls(s) => s.read(&mut chunk).await,
            }
            .map_err(|e| io("reading from the server", e))?;
            if n == 0 {
                return Err(SmtpError::Transient("the server closed the connection".into()));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_sort_into_retry_and_give_up() {
        let busy = Reply {
            code: 451,
            text: "try later".into(),
        };
        assert!(matches!(busy.error("RCPT TO"), SmtpError::Transient(m) if m.contains("451")));
        let unknown = Reply {
            code: 550,
            text: "no such user".into(),
        };
        assert!(matches!(unknown.error("RCPT TO"), SmtpError::Permanent(m) if m.contains("no such user")));
        assert!(
            Reply {
                code: 250,
                text: String::new()
            }
            .ok()
        );
    }
}
