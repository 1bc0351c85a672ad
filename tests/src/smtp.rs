//! A small SMTP server for tests: a real listener on 127.0.0.1 that the host's mailer talks to over TCP, and
//! a mailbox of what it received.
//!
//! It speaks the part of RFC 5321 a submitting client needs — `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA`
//! (with dot-unstuffing), `RSET`, `NOOP`, `QUIT` — over plain TCP (the host's `smtp_tls = none`), several
//! messages per connection, several connections at once.
//!
//! [`SmtpServer::start_with`] starts one that misbehaves once, as a server (or a network) can in the middle
//! of a message: it stops answering after taking a message ([`Stall::AfterDot`]) or stops reading in the
//! middle of one ([`Stall::BeforeDot`]), so tests can kill a client at exactly that point.
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
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The largest message accepted; a client sending more is told so and the message is dropped.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// The longest command line accepted (RFC 5321 allows 512 octets; extensions add a little).
const MAX_LINE_BYTES: usize = 4096;
/// The receive buffer of connections to a server started with [`SmtpServer::start_with`]. Kept small (and
/// so fixed: the kernel does not grow it) so that a server that stops reading soon stops the client's
/// writes too.
const STALL_RECEIVE_BUFFER: u32 = 64 * 1024;

/// How the server misbehaves, once: at the `message`-th message (1-based, counted over every connection
/// from the moment the stall was set). The connection it happens on then stays open, without another byte
/// read or written, until the server is dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stall {
    /// Behave (the default).
    #[default]
    Never,
    /// Read the message whole, final `.` included, and record it as received (a server is responsible for
    /// a message once it has the dot), then never answer it.
    AfterDot {
        /// Which message (1 is the first).
        message: usize,
    },
    /// Stop reading in the middle of the message's content, right after its header block: the final `.`
    /// never arrives, so the message is not received. The client is left waiting in the middle of the
    /// content only if the rest of the message is larger than what the connection buffers (the client's
    /// send buffer plus this server's small receive buffer); a shorter message is written whole, dot
    /// included, into those buffers, and the client cannot tell this stall from [`Stall::AfterDot`].
    BeforeDot {
        /// Which message (1 is the first).
        message: usize,
    },
}

/// Where the server stalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    /// Which message (1 is the first).
    pub message: usize,
    /// Its `Message-ID` header, angle brackets included, if it had one.
    pub message_id: Option<String>,
    /// Whether it was received (after the dot) or not (before it).
    pub received: bool,
}

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

    /// The `Message-ID` header, angle brackets included.
    pub fn message_id(&self) -> Option<String> {
        self.header("message-id")
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

/// What every connection shares: the messages received, and the stall with the number of messages begun
/// since it was set.
struct Mailbox {
    messages: Mutex<Vec<Received>>,
    stall: Mutex<(Stall, usize)>,
    stalled: watch::Sender<Option<Stalled>>,
}

impl Mailbox {
    fn new(stall: Stall) -> Mailbox {
        Mailbox {
            messages: Mutex::new(Vec::new()),
            stall: Mutex::new((stall, 0)),
            stalled: watch::channel(None).0,
        }
    }

    /// Count one more message begun; its number, and whether it is the one to stall on.
    fn begin_message(&self) -> (usize, Stall) {
        let mut stall = self.stall.lock().expect("stall lock");
        stall.1 += 1;
        let n = stall.1;
        match stall.0 {
            Stall::AfterDot { message } | Stall::BeforeDot { message } if message == n => (n, stall.0),
            _ => (n, Stall::Never),
        }
    }
}

/// A running SMTP server. Dropping it stops the listener and every open connection.
pub struct SmtpServer {
    addr: SocketAddr,
    mailbox: Arc<Mailbox>,
    count: watch::Receiver<usize>,
    stalled: watch::Receiver<Option<Stalled>>,
    task: JoinHandle<()>,
}

impl SmtpServer {
    /// Listen on 127.0.0.1 and a free port.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test SMTP server");
        SmtpServer::serve(listener, Stall::Never)
    }

    /// Listen on 127.0.0.1 and a free port, with connections whose receive buffer is small, and stall as
    /// `stall` says ([`SmtpServer::set_stall`] changes it later).
    pub async fn start_with(stall: Stall) -> SmtpServer {
        let socket = TcpSocket::new_v4().expect("a socket for the test SMTP server");
        socket
            .set_recv_buffer_size(STALL_RECEIVE_BUFFER)
            .expect("set the test SMTP server's receive buffer");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind the test SMTP server");
        let listener = socket.listen(128).expect("listen on the test SMTP server");
        SmtpServer::serve(listener, stall)
    }

    fn serve(listener: TcpListener, stall: Stall) -> SmtpServer {
        let addr = listener.local_addr().expect("the SMTP server's address");
        let mailbox = Arc::new(Mailbox::new(stall));
        let stalled = mailbox.stalled.subscribe();
        let (tx, count) = watch::channel(0usize);
        let task = tokio::spawn(accept(listener, mailbox.clone(), tx));
        SmtpServer {
            addr,
            mailbox,
            count,
            stalled,
            task,
        }
    }

    /// Stall as `stall` says from now on, counting messages afresh (`Stall::Never`: behave). A connection
    /// that already stalled stays stalled; new messages and connections behave as told here.
    pub fn set_stall(&self, stall: Stall) {
        *self.mailbox.stall.lock().expect("stall lock") = (stall, 0);
        self.mailbox.stalled.send_replace(None);
    }

    /// Wait until the server stalls, and say where; panics, saying how many messages arrived, when `timeout`
    /// passes first.
    pub async fn wait_stalled(&self, timeout: Duration) -> Stalled {
        let mut stalled = self.stalled.clone();
        match tokio::time::timeout(timeout, stalled.wait_for(Option::is_some)).await {
            Ok(Ok(s)) => s.clone().expect("waited for a stall"),
            _ => panic!(
                "the server did not stall within {timeout:?}; {} message(s) arrived",
                self.messages().len()
            ),
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
                let (number, stall) = mailbox.begin_message();
                reply!("354 end data with <CR><LF>.<CR><LF>");
                let done = std::mem::take(&mut envelope);
                if matches!(stall, Stall::BeforeDot { .. }) {
                    let Some(head) = read_head(&mut read).await else { return };
                    let head = Received {
                        from: done.from.unwrap_or_default(),
                        to: done.to,
                        data: head,
                    };
                    mailbox.stalled.send_replace(Some(Stalled {
                        message: number,
                        message_id: head.message_id(),
                        received: false,
                    }));
                    return std::future::pending().await;
                }
                let Some(data) = read_data(&mut read).await else { return };
                match data {
                    Some(data) => {
                        let received = Received {
                            from: done.from.unwrap_or_default(),
                            to: done.to,
                            data,
                        };
                        let message_id = received.message_id();
                        let n = {
                            let mut messages = mailbox.messages.lock().expect("mailbox lock");
                            messages.push(received);
                            messages.len()
                        };
                        count.send_replace(n);
                        if matches!(stall, Stall::AfterDot { .. }) {
                            mailbox.stalled.send_replace(Some(Stalled {
                                message: number,
                                message_id,
                                received: true,
                            }));
                            return std::future::pending().await;
                        }
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

/// The header block of the message after `DATA`, up to and without the empty line that ends it (or the
/// line holding only `.`, if that comes first); `None` when the client is gone first.
async fn read_head(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = Vec::new();
        let n = read.read_until(b'\n', &mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line);
        let content = text.trim_end_matches(['\r', '\n']);
        if content.is_empty() || content == "." || head.len() > MAX_MESSAGE_BYTES {
            return Some(head);
        }
        head.push_str(content.strip_prefix('.').unwrap_or(content));
        head.push_str("\r\n");
    }
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
