//! A small SMTP server for tests: a real listener on 127.0.0.1 that the host's mailer talks to over TCP, and
//! a mailbox of what it received.
//!
//! It speaks the part of RFC 5321 a submitting client needs — `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA`
//! (with dot-unstuffing), `RSET`, `NOOP`, `QUIT` — over plain TCP (the host's `smtp_tls = none`), several
//! messages per connection, several connections at once.
//!
//! ```no_run
//! # async fn example() {
//! let smtp = aula_tests::smtp::SmtpServer::start().await;
//! // … point the host at 127.0.0.1:smtp.port() and make it send …
//! let mail = smtp.wait_for(1, std::time::Duration::from_secs(10)).await;
//! assert_eq!(mail[0].to, ["ada@example.com"]);
//! # }
//! ```

use base64::Engine;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The largest message accepted; a client sending more is told so and the message is dropped.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// The longest command line accepted (RFC 5321 allows 512 octets; extensions add a little).
const MAX_LINE_BYTES: usize = 4096;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order, without angle brackets.
    pub to: Vec<String>,
    /// The message as sent after `DATA`: headers and body, CRLF line ends, dots unstuffed, without the
    /// final `.` line.
    pub data: String,
}

impl Received {
    /// The header block and the body, split at the first empty line.
    fn parts(&self) -> (&str, &str) {
        self.data.split_once("\r\n\r\n").unwrap_or((self.data.as_str(), ""))
    }

    /// A header's value (the first one of that name, any case), unfolded, encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.parts();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(value) = found.as_mut() {
                    value.push_str(line);
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((key, value)) = line.split_once(':')
                && key.trim().eq_ignore_ascii_case(name)
            {
                found = Some(value.trim().to_owned());
            }
        }
        found.map(|v| decode_words(&v))
    }

    /// The decoded subject.
    pub fn subject(&self) -> String {
        self.header("subject").unwrap_or_default()
    }

    /// The body as text, decoded from its `Content-Transfer-Encoding` (7bit, 8bit, quoted-printable or
    /// base64), with LF line ends.
    pub fn text(&self) -> String {
        let (_, body) = self.parts();
        let encoding = self
            .header("content-transfer-encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap_or_else(|e| panic!("the base64 body does not decode: {e}"))
            }
            "quoted-printable" => decode_quoted_printable(body),
            _ => body.as_bytes().to_vec(),
        };
        String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
    }
}

/// `=?utf-8?b?…?=` and `=?utf-8?q?…?=` words (RFC 2047) as text; anything else as it is.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        // Whitespace between two encoded words is not part of the text.
        if !(after_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let parts: Vec<&str> = word[2..].splitn(3, '?').collect();
        let end = parts.get(2).and_then(|p| p.find("?="));
        match (parts.as_slice(), end) {
            ([_charset, encoding, encoded], Some(end)) => {
                let text = &encoded[..end];
                let bytes = if encoding.eq_ignore_ascii_case("b") {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .unwrap_or_default()
                } else {
                    decode_quoted_printable(&text.replace('_', " "))
                };
                out.push_str(&String::from_utf8_lossy(&bytes));
                let consumed = 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
                rest = &word[consumed..];
                after_word = true;
            }
            _ => {
                out.push_str("=?");
                rest = &word[2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Quoted-printable (RFC 2045) to bytes: `=XX` escapes, `=` at a line end joins the lines.
fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        if bytes[i + 1..].starts_with(b"\r\n") {
            i += 3;
        } else if bytes[i + 1..].starts_with(b"\n") {
            i += 2;
        } else if let Some(byte) = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(b'=');
            i += 1;
        }
    }
    out
}

#[derive(Default)]
struct Mailbox {
    messages: Mutex<Vec<Received>>,
}

/// A running SMTP server. Dropping it stops the listener and every open connection.
pub struct SmtpServer {
    addr: SocketAddr,
    mailbox: Arc<Mailbox>,
    count: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl SmtpServer {
    /// Listen on 127.0.0.1 and a free port.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test SMTP server");
        let addr = listener.local_addr().expect("the SMTP server's address");
        let mailbox = Arc::new(Mailbox::default());
        let (tx, count) = watch::channel(0usize);
        let task = tokio::spawn(accept(listener, mailbox.clone(), tx));
        SmtpServer {
            addr,
            mailbox,
            count,
            task,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message received so far, in order of arrival.
    pub fn messages(&self) -> Vec<Received> {
        self.mailbox.messages.lock().expect("mailbox lock").clone()
    }

    /// The messages received so far with `address` among their recipients (any case).
    pub fn messages_to(&self, address: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Wait until at least `n` messages have arrived in all, then return every message received; panics,
    /// listing what did arrive, when `timeout` passes first.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let mut count = self.count.clone();
        let arrived = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        if !matches!(arrived, Ok(Ok(_))) {
            let got: Vec<String> = self
                .messages()
                .iter()
                .map(|m| format!("to {:?}: {:?}", m.to, m.subject()))
                .collect();
            panic!(
                "expected {n} message(s) within {timeout:?}; {} arrived: {got:#?}",
                got.len()
            );
        }
        self.messages()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accept connections until aborted; the connections live in the `JoinSet`, so aborting this task (and
/// so dropping the set) ends them too.
async fn accept(listener: TcpListener, mailbox: Arc<Mailbox>, count: watch::Sender<usize>) {
    let count = Arc::new(count);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(session(stream, mailbox.clone(), count.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One message being assembled.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

/// One client connection: a command loop until `QUIT` or the client goes away.
async fn session(stream: TcpStream, mailbox: Arc<Mailbox>, count: Arc<watch::Sender<usize>>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut greeted = false;
    let mut envelope = Envelope::default();
    macro_rules! reply {
        ($text:expr) => {
            if write
                .write_all(format!("{}\r\n", $text).as_bytes())
                .await
                .is_err()
            {
                return;
            }
        };
    }
    reply!("220 aula-test ESMTP ready");
    loop {
        let Some(line) = read_line(&mut read).await else { return };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => {
                greeted = true;
                envelope = Envelope::default();
                reply!("250-aula-test greets you");
                reply!("250-8BITMIME");
                reply!(format!("250 SIZE {MAX_MESSAGE_BYTES}"));
            }
            "HELO" => {
                greeted = true;
                envelope = Envelope::default();
                reply!("250 aula-test");
            }
            "MAIL" if !greeted => reply!("503 5.5.1 say EHLO first"),
            "MAIL" => match path_arg(&arg, "FROM:") {
                Some(from) => {
                    envelope = Envelope {
                        from: Some(from),
                        to: Vec::new(),
                    };
                    reply!("250 2.1.0 OK");
                }
                None => reply!("501 5.5.4 expected MAIL FROM:<address>"),
            },
            "RCPT" if envelope.from.is_none() => reply!("503 5.5.1 MAIL FROM first"),
            "RCPT" => match path_arg(&arg, "TO:").filter(|to| !to.is_empty()) {
                Some(to) => {
                    envelope.to.push(to);
                    reply!("250 2.1.5 OK");
                }
                None => reply!("501 5.5.4 expected RCPT TO:<address>"),
            },
            "DATA" if envelope.to.is_empty() => reply!("503 5.5.1 RCPT TO first"),
            "DATA" => {
                reply!("354 end data with <CR><LF>.<CR><LF>");
                let Some(data) = read_data(&mut read).await else { return };
                let done = std::mem::take(&mut envelope);
                match data {
                    Some(data) => {
                        let n = {
                            let mut messages = mailbox.messages.lock().expect("mailbox lock");
                            messages.push(Received {
                                from: done.from.unwrap_or_default(),
                                to: done.to,
                                data,
                            });
                            messages.len()
                        };
                        count.send_replace(n);
                        reply!(format!("250 2.0.0 OK queued as {n}"));
                    }
                    None => reply!("552 5.3.4 message too big"),
                }
            }
            "RSET" => {
                envelope = Envelope::default();
                reply!("250 2.0.0 OK");
            }
            "NOOP" => reply!("250 2.0.0 OK"),
            "QUIT" => {
                reply!("221 2.0.0 bye");
                let _ = write.shutdown().await;
                return;
            }
            _ => reply!("502 5.5.2 command not implemented"),
        }
    }
}

/// The address of `FROM:<a@b> PARAM=…` or `TO:<a@b>`, without brackets (`<>` is the empty address).
fn path_arg(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// One command line without its line end; `None` when the client is gone or sends an overlong line.
async fn read_line(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut buf = Vec::new();
    let n = read.read_until(b'\n', &mut buf).await.ok()?;
    if n == 0 || buf.len() > MAX_LINE_BYTES {
        return None;
    }
    Some(String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_owned())
}

/// The message after `DATA`, up to the line holding only `.`, with leading dots unstuffed. `None` when the
/// client is gone; `Some(None)` when the message was too big (it is read to its end and dropped).
async fn read_data(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Option<String>> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let mut line = Vec::new();
        let n = read.read_until(b'\n', &mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content == b"." {
            break;
        }
        let unstuffed = content.strip_prefix(b".").unwrap_or(content);
        if data.len() + unstuffed.len() + 2 > MAX_MESSAGE_BYTES {
            too_big = true;
        }
        if !too_big {
            data.extend_from_slice(unstuffed);
            data.extend_from_slice(b"\r\n");
        }
    }
    if too_big {
        return Some(None);
    }
    Some(Some(String::from_utf8_lossy(&data).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn command(stream: &mut BufReader<TcpStream>, line: &str) -> String {
        stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        last_reply(stream).await
    }

    /// Read one (possibly multi-line) reply and return its last line.
    async fn last_reply(stream: &mut BufReader<TcpStream>) -> String {
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }

    #[tokio::test]
    async fn receives_messages_with_dots_unstuffed_and_resets() {
        let server = SmtpServer::start().await;
        let mut client = BufReader::new(TcpStream::connect(server.addr()).await.unwrap());
        assert!(last_reply(&mut client).await.starts_with("220"));
        assert!(command(&mut client, "MAIL FROM:<a@x.test>").await.starts_with("503"));
        assert!(command(&mut client, "EHLO client.test").await.starts_with("250 "));
        assert!(command(&mut client, "RCPT TO:<b@x.test>").await.starts_with("503"));
        assert!(
            command(&mut client, "MAIL FROM:<a@x.test> BODY=8BITMIME")
                .await
                .starts_with("250")
        );
        assert!(command(&mut client, "RCPT TO:<b@x.test>").await.starts_with("250"));
        assert!(command(&mut client, "RSET").await.starts_with("250"));
        assert!(
            command(&mut client, "DATA").await.starts_with("503"),
            "RSET forgot the recipients"
        );
        assert!(command(&mut client, "NOOP").await.starts_with("250"));
        command(&mut client, "MAIL FROM:<a@x.test>").await;
        command(&mut client, "RCPT TO:<b@x.test>").await;
        command(&mut client, "RCPT TO:<c@x.test>").await;
        assert!(command(&mut client, "DATA").await.starts_with("354"));
        let body = "Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                    ..one dot\r\nK=C3=A4se =\r\nand more\r\n.\r\n";
        client.get_mut().write_all(body.as_bytes()).await.unwrap();
        assert!(last_reply(&mut client).await.starts_with("250"));
        assert!(command(&mut client, "QUIT").await.starts_with("221"));

        let got = server.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(got[0].from, "a@x.test");
        assert_eq!(got[0].to, ["b@x.test", "c@x.test"]);
        assert_eq!(got[0].subject(), "Grüße");
        assert_eq!(got[0].text(), ".one dot\nKäse and more\n");
        assert_eq!(server.messages_to("C@X.test").len(), 1);
    }

    #[test]
    fn encoded_words_decode() {
        assert_eq!(decode_words("plain"), "plain");
        assert_eq!(
            decode_words("=?utf-8?q?Neues_Passwort_f=C3=BCr?= Acme"),
            "Neues Passwort für Acme"
        );
        assert_eq!(decode_words("=?utf-8?b?QQ==?= =?utf-8?b?Qg==?="), "AB");
    }
}
