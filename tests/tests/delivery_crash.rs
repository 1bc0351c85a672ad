//! Kill `aula serve` in the middle of delivering a batch, restart it on the same database: every message is
//! sent exactly once.
//!
//! The real binary delivers a batch of messages to a real SMTP server on loopback
//! ([`aula_tests::smtp::SmtpServer`]) that stalls at one message of the batch:
//!
//! - [`Stall::AfterDot`]: the server takes the message whole, final `.` included (from then on it is
//!   responsible for it), and never answers. The host has recorded the message `handed_over` before writing
//!   the dot, so after the restart it is marked `sent` with an `unconfirmed` attempt and never sent again.
//!   A naive at-least-once deliverer (mark sent after the server's reply, resend whatever was not marked)
//!   sends this message a second time, and this test fails on it: the server receives it twice.
//! - [`Stall::BeforeDot`]: the server stops reading in the middle of the message's content, so the host is
//!   still writing it (`sending`) when it is killed; the dot never arrives and the server discards the
//!   partial message. After the restart it is sent again: an `interrupted` attempt, then an `accepted` one.
//!   A deliverer that recorded "handed over" before the server had the whole content would lose it.
//!
//! The host is killed with SIGKILL while it waits on the stalled server, the server is told to behave, and
//! a second process on the same database takes over once the first one's lease has run out. Then the
//! server must have received every queued Message-ID exactly once, every message must be `sent`, and the
//! attempts must tell what happened.
//!
//! Runs on a fresh SQLite file, and on a fresh PostgreSQL database when `AULA_TEST_POSTGRES_URL` names a
//! server (`postgres://postgres@127.0.0.1:5432/postgres`); the database is dropped afterwards.

use aula::db::{Db, now_ms};
use aula::notify::templates::Composer;
use aula::notify::{Attachment, NewMessage};
use aula::outbox::Kind;
use aula_tests::smtp::{SmtpServer, Stall, Stalled};
use futures::FutureExt;
use sqlx::{Connection, Executor, Row};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Messages queued. All of them are claimed in one batch (`notifications.batch` is 100 by default), so the
/// crash leaves messages after the stalled one claimed but not yet tried.
const MESSAGES: usize = 40;
/// The message the server stalls at (1-based, in the order they are sent).
const STALL_AT: usize = 17;
/// How long the host may take to reach the stall, and the restarted host to send everything.
const DEADLINE: Duration = Duration::from_secs(90);
/// The test SMTP server's size limit (`aula_tests::smtp`); the large message must fit when it is resent.
const SERVER_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
const POSTGRES_ENV: &str = "AULA_TEST_POSTGRES_URL";

#[tokio::test]
async fn after_dot_sqlite() {
    on_sqlite(Stall::AfterDot { message: STALL_AT }).await;
}

#[tokio::test]
async fn after_dot_postgres() {
    on_postgres(Stall::AfterDot { message: STALL_AT }).await;
}

#[tokio::test]
async fn before_dot_sqlite() {
    on_sqlite(Stall::BeforeDot { message: STALL_AT }).await;
}

#[tokio::test]
async fn before_dot_postgres() {
    on_postgres(Stall::BeforeDot { message: STALL_AT }).await;
}

async fn on_sqlite(stall: Stall) {
    let dir = scratch_dir();
    let path = dir.join("aula.db");
    let url = format!("sqlite:{}", path.display());
    let outcome = run(&dir, &url, stall).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn on_postgres(stall: Stall) {
    let Some(admin_url) = std::env::var(POSTGRES_ENV).ok().filter(|v| !v.trim().is_empty()) else {
        assert!(
            std::env::var("AULA_TEST_SQLITE_ONLY").is_ok_and(|v| v == "1"),
            "{POSTGRES_ENV} is not set; set it, or AULA_TEST_SQLITE_ONLY=1 to run on SQLite alone"
        );
        eprintln!("note: {POSTGRES_ENV} is not set; the PostgreSQL variant is skipped (AULA_TEST_SQLITE_ONLY=1)");
        return;
    };
    let name = format!("aula_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::postgres::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV}: {e}"));
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create the test database");
    let dir = scratch_dir();
    let outcome = run(&dir, &with_database(&admin_url, &name), stall).await;
    // WITH (FORCE): the killed host's connections may not be gone yet.
    if let Err(e) = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
    {
        eprintln!("note: could not drop test database {name}: {e}");
    }
    admin.close().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A directory of this test's own: the SQLite file, the hosts' theme and plugin files, their logs.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aula-delivery-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// `postgres://u@h:5432/postgres?x=y` with another database name.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Run the scenario (its hosts are killed when it ends, however it ends); when it fails, print what the
/// hosts logged. The caller removes the database and re-raises the failure.
async fn run(dir: &Path, url: &str, stall: Stall) -> std::thread::Result<()> {
    let outcome = std::panic::AssertUnwindSafe(scenario(dir, url, stall))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        for log in ["host-1.log", "host-2.log"] {
            if let Ok(text) = std::fs::read_to_string(dir.join(log)) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(60)..];
                eprintln!("---- {log} (last lines) ----\n{}", tail.join("\n"));
            }
        }
    }
    outcome
}

/// One queued message.
struct Queued {
    id: String,
    message_id: String,
}

async fn scenario(dir: &Path, url: &str, stall: Stall) {
    let before_dot = matches!(stall, Stall::BeforeDot { .. });
    let db = Db::connect(url, 4)
        .await
        .expect("connect and migrate the test database");
    aula::demo::seed(&db).await.expect("seed the demo academies");
    let tenant = {
        let mut tx = db.platform().begin().await.expect("platform transaction");
        let acme = aula::tenancy::by_slug(&mut tx, "acme")
            .await
            .expect("look the demo academy up")
            .expect("the demo academy acme");
        tx.commit().await.expect("commit");
        acme.id
    };
    // Before the dot, the stalled message must be larger than what the connection buffers, or the host
    // writes it whole, dot included, and is waiting for the verdict (after the dot) when it is killed.
    let large = before_dot.then(large_attachment_bytes);
    let queued = queue(&db, &tenant, large).await;

    let smtp = SmtpServer::start_with(stall).await;
    let env = host_env(dir, url, smtp.port());

    // The first host sends the batch until the server stalls, and is killed there.
    let mut first = spawn_host(dir, &env, "host-1.log");
    let stalled = tokio::select! {
        stalled = smtp.wait_stalled(DEADLINE) => stalled,
        exit = first.wait() => panic!("the first host exited before the server stalled: {exit:?}"),
    };
    let target = &queued[STALL_AT - 1];
    assert_eq!(
        stalled,
        Stalled {
            message: STALL_AT,
            message_id: Some(target.message_id.clone()),
            received: !before_dot,
        },
        "the server stalls at the {STALL_AT}th message queued"
    );
    first.kill().await.expect("kill the first host");

    // What the crash left: the messages before the stalled one are sent, the stalled one is handed over
    // (after the dot) or still being sent (before it), the rest of the batch is claimed.
    let rows = messages(&db, &tenant).await;
    for (i, q) in queued.iter().enumerate() {
        let expected = match (i + 1).cmp(&STALL_AT) {
            std::cmp::Ordering::Less => "sent",
            std::cmp::Ordering::Equal if before_dot => "sending",
            std::cmp::Ordering::Equal => "handed_over",
            std::cmp::Ordering::Greater => "sending",
        };
        assert_eq!(rows[&q.id].status, expected, "message {} after the crash", i + 1);
    }
    let before_restart = smtp.messages().len();
    assert_eq!(
        before_restart,
        if before_dot { STALL_AT - 1 } else { STALL_AT },
        "messages the server had when the host was killed"
    );

    // The server behaves again; a second host on the same database takes over when the lease runs out.
    smtp.set_stall(Stall::Never);
    let mut second = spawn_host(dir, &env, "host-2.log");
    let started = Instant::now();
    loop {
        if let Some(exit) = second.try_wait().expect("poll the second host") {
            panic!("the second host exited: {exit}");
        }
        let rows = messages(&db, &tenant).await;
        if rows.values().all(|r| r.status == "sent") {
            break;
        }
        if started.elapsed() > DEADLINE {
            let mut statuses: HashMap<&str, usize> = HashMap::new();
            for r in rows.values() {
                *statuses.entry(r.status.as_str()).or_default() += 1;
            }
            panic!("not every message was sent within {DEADLINE:?}: {statuses:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Exactly once: every queued Message-ID once at the server, none twice, nothing else.
    let mut received: HashMap<String, usize> = HashMap::new();
    for m in smtp.messages() {
        let id = m.message_id().expect("every message has a Message-ID");
        *received.entry(id).or_default() += 1;
    }
    let twice: Vec<(&String, &usize)> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "messages received more than once: {twice:?}");
    let missing: Vec<&str> = queued
        .iter()
        .filter(|q| !received.contains_key(&q.message_id))
        .map(|q| q.message_id.as_str())
        .collect();
    assert!(missing.is_empty(), "messages never received: {missing:?}");
    assert_eq!(received.len(), MESSAGES, "the server received only the queued messages");
    if let Some(size) = large {
        let copy = smtp
            .messages()
            .into_iter()
            .find(|m| m.message_id().as_deref() == Some(target.message_id.as_str()))
            .expect("the stalled message arrived after the restart");
        assert!(
            copy.data.len() > size * 4 / 3,
            "the resent message is whole: {} bytes for a {size}-byte attachment",
            copy.data.len()
        );
    }

    // Every message is sent, nothing else was queued, and the attempts tell what happened.
    let rows = messages(&db, &tenant).await;
    assert_eq!(rows.len(), MESSAGES);
    let mut tx = db.platform().begin().await.expect("platform transaction");
    let everywhere: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(tx.conn())
        .await
        .expect("count messages");
    tx.commit().await.expect("commit");
    assert_eq!(everywhere, MESSAGES as i64, "no message besides the queued ones");
    let attempts = attempts(&db, &tenant).await;
    for (i, q) in queued.iter().enumerate() {
        let expected: &[&str] = match (i + 1).cmp(&STALL_AT) {
            // Sent by the first host.
            std::cmp::Ordering::Less => &["accepted"],
            // The server had it: not sent again.
            std::cmp::Ordering::Equal if !before_dot => &["unconfirmed"],
            // The server never had it whole: sent again by the second host.
            std::cmp::Ordering::Equal => &["interrupted", "accepted"],
            // Claimed by the first host, never tried: sent by the second.
            std::cmp::Ordering::Greater => &["interrupted", "accepted"],
        };
        let row = &rows[&q.id];
        assert_eq!(row.status, "sent", "message {}", i + 1);
        assert_eq!(
            attempts.get(&q.id).map(Vec::as_slice).unwrap_or_default(),
            expected,
            "the attempts of message {}",
            i + 1
        );
        assert_eq!(
            row.attempts,
            expected.len() as i64,
            "the attempt count of message {}",
            i + 1
        );
    }

    second.kill().await.expect("stop the second host");
    db.close().await;
}

/// An attachment larger than what a loopback connection buffers: the client's send buffer can grow to
/// `net.ipv4.tcp_wmem`'s maximum; the test server's receive buffer is small and fixed.
fn large_attachment_bytes() -> usize {
    let send_buffer_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse::<usize>().ok()))
        .unwrap_or(4 * 1024 * 1024);
    let size = send_buffer_max + 1024 * 1024;
    // Base64 with line ends, plus the rest of the message.
    let on_the_wire = size / 3 * 4 * 78 / 76 + 64 * 1024;
    assert!(
        on_the_wire < SERVER_MAX_MESSAGE_BYTES,
        "net.ipv4.tcp_wmem allows a {send_buffer_max}-byte send buffer: a message that outgrows it is larger \
         than the test SMTP server accepts"
    );
    size
}

/// Queue `MESSAGES` report messages to the academy's people, the `STALL_AT`th with an attachment of
/// `large` bytes if given. Returns them in the order they are sent.
async fn queue(db: &Db, tenant: &str, large: Option<usize>) -> Vec<Queued> {
    let mut tx = db.tenant(tenant).begin().await.expect("tenant transaction");
    let people: Vec<String> = tx
        .query("SELECT id FROM users WHERE tenant_id = $1 AND status = 'active' ORDER BY email")
        .fetch_all(tx.conn())
        .await
        .expect("the academy's people")
        .iter()
        .map(|r| r.try_get::<String, _>(0).expect("user id"))
        .collect();
    assert!(!people.is_empty(), "the demo academy has active people");
    let composer = Composer::for_tenant(&mut tx).await.expect("the academy's templates");
    let first = now_ms() - 60_000;
    let mut queued = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let person = aula::notify::dispatch::person(&mut tx, &people[i % people.len()])
            .await
            .expect("read a person")
            .expect("the person exists");
        let file = format!("delivery-check-{}.bin", i + 1);
        let vars = serde_json::json!({
            "report": { "title": format!("Delivery check {}", i + 1), "schedule": "Crash test", "file": file },
        });
        let draft = composer.compose(Kind::Report, &person, &vars);
        let attachment = large.filter(|_| i + 1 == STALL_AT).map(|size| Attachment {
            name: file,
            content_type: "application/octet-stream".into(),
            bytes: (0..size).map(|b| (b % 251) as u8).collect(),
        });
        let id = aula::notify::insert_message(
            &mut tx,
            &NewMessage {
                kind: Kind::Report,
                event_id: None,
                recipient: person,
                draft,
                source: "host".into(),
                status: "queued",
                reason: None,
                attachment,
            },
        )
        .await
        .expect("queue a message");
        // Messages queued in the same millisecond share `created_at`, and a batch is sent in `created_at`
        // order: give each its own, so the k-th message sent is the k-th queued.
        tx.query("UPDATE messages SET created_at = $2, next_attempt_at = $2 WHERE tenant_id = $1 AND id = $3")
            .bind(first + i as i64)
            .bind(id.clone())
            .execute(tx.conn())
            .await
            .expect("order the message");
        let message_id: String = tx
            .query("SELECT message_id FROM messages WHERE tenant_id = $1 AND id = $2")
            .bind(id.clone())
            .fetch_one(tx.conn())
            .await
            .expect("read the message back")
            .try_get(0)
            .expect("message_id");
        queued.push(Queued { id, message_id });
    }
    tx.commit().await.expect("commit the messages");
    let distinct: std::collections::HashSet<&str> = queued.iter().map(|q| q.message_id.as_str()).collect();
    assert_eq!(distinct.len(), MESSAGES, "every message has a Message-ID of its own");
    queued
}

/// The environment of `aula serve` for this test: its database, the test SMTP server, a fast poll and a
/// short lease (so the restarted host takes over quickly), files in the test's directory.
fn host_env(dir: &Path, url: &str, smtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AULA_DATABASE_URL", url.to_owned()),
        ("AULA_LISTEN", "127.0.0.1:0".to_owned()),
        ("AULA_MAX_CONNECTIONS", "4".to_owned()),
        ("AULA_THEMES_DIR", dir.join("themes").display().to_string()),
        ("AULA_PLUGIN_FILES_DIR", dir.join("plugins").display().to_string()),
        ("AULA_MAIL_TRANSPORT", "smtp".to_owned()),
        ("AULA_MAIL_SMTP_HOST", "127.0.0.1".to_owned()),
        ("AULA_MAIL_SMTP_PORT", smtp_port.to_string()),
        ("AULA_MAIL_SMTP_TLS", "none".to_owned()),
        ("AULA_MAIL_FROM_ADDRESS", "noreply@aula.test".to_owned()),
        ("AULA_NOTIFICATIONS_POLL_MS", "100".to_owned()),
        ("AULA_NOTIFICATIONS_LEASE_MS", "2000".to_owned()),
        ("RUST_LOG", "info,sqlx=warn".to_owned()),
    ]
}

/// Start `aula serve` with only this test's `AULA_*` settings, logging to `log` in the test's directory.
/// Dropping the child (a failed assertion) kills it.
fn spawn_host(dir: &Path, env: &[(&'static str, String)], log: &str) -> Child {
    let log = std::fs::File::create(dir.join(log)).expect("create the host's log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_aula-under-test"));
    command
        .arg("serve")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("share the log file"))
        .stderr(log)
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AULA_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command.spawn().expect("start aula serve")
}

/// A message's delivery state.
struct Delivery {
    status: String,
    attempts: i64,
}

/// The academy's messages by id.
async fn messages(db: &Db, tenant: &str) -> HashMap<String, Delivery> {
    let mut tx = db.tenant(tenant).begin_read().await.expect("read transaction");
    let rows = tx
        .query("SELECT id, status, attempts FROM messages WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await
        .expect("read the messages");
    tx.commit().await.expect("end the read");
    rows.iter()
        .map(|r| {
            (
                r.try_get("id").expect("id"),
                Delivery {
                    status: r.try_get("status").expect("status"),
                    attempts: r.try_get("attempts").expect("attempts"),
                },
            )
        })
        .collect()
}

/// The outcomes of each message's attempts, in order.
async fn attempts(db: &Db, tenant: &str) -> HashMap<String, Vec<String>> {
    let mut tx = db.tenant(tenant).begin_read().await.expect("read transaction");
    let rows = tx
        .query("SELECT message_id, outcome FROM message_attempts WHERE tenant_id = $1 ORDER BY message_id, attempt")
        .fetch_all(tx.conn())
        .await
        .expect("read the attempts");
    tx.commit().await.expect("end the read");
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        out.entry(r.try_get("message_id").expect("message_id"))
            .or_default()
            .push(r.try_get("outcome").expect("outcome"));
    }
    out
}

/// The stalls this test relies on, checked against the server alone with a hand-written client.
mod stalls {
    use aula_tests::smtp::{Received, SmtpServer, Stall, Stalled};
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

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

    /// Open a connection, greet, and start a message to `b@x.test`: the reply to `DATA`.
    async fn begin_message(server: &SmtpServer) -> (BufReader<TcpStream>, String) {
        let mut client = BufReader::new(TcpStream::connect(server.addr()).await.unwrap());
        assert!(last_reply(&mut client).await.starts_with("220"));
        command(&mut client, "EHLO client.test").await;
        command(&mut client, "MAIL FROM:<a@x.test>").await;
        command(&mut client, "RCPT TO:<b@x.test>").await;
        let data = command(&mut client, "DATA").await;
        (client, data)
    }

    fn message(n: usize) -> String {
        format!("Message-ID: <{n}@x.test>\r\nSubject: {n}\r\n\r\nbody {n}\r\n")
    }

    #[tokio::test]
    async fn stalls_after_the_dot_with_the_message_received() {
        let server = SmtpServer::start_with(Stall::AfterDot { message: 2 }).await;
        let (mut client, data) = begin_message(&server).await;
        assert!(data.starts_with("354"));
        client
            .get_mut()
            .write_all(format!("{}.\r\n", message(1)).as_bytes())
            .await
            .unwrap();
        assert!(
            last_reply(&mut client).await.starts_with("250"),
            "the first message is answered"
        );
        command(&mut client, "MAIL FROM:<a@x.test>").await;
        command(&mut client, "RCPT TO:<b@x.test>").await;
        assert!(command(&mut client, "DATA").await.starts_with("354"));
        client
            .get_mut()
            .write_all(format!("{}.\r\n", message(2)).as_bytes())
            .await
            .unwrap();
        let stalled = server.wait_stalled(Duration::from_secs(5)).await;
        assert_eq!(
            stalled,
            Stalled {
                message: 2,
                message_id: Some("<2@x.test>".into()),
                received: true
            }
        );
        let ids: Vec<Option<String>> = server.messages().iter().map(Received::message_id).collect();
        assert_eq!(ids, [Some("<1@x.test>".into()), Some("<2@x.test>".into())]);

        // Told to behave, it answers new connections (and counts afresh).
        server.set_stall(Stall::Never);
        let (mut other, data) = begin_message(&server).await;
        assert!(data.starts_with("354"));
        other
            .get_mut()
            .write_all(format!("{}.\r\n", message(3)).as_bytes())
            .await
            .unwrap();
        assert!(last_reply(&mut other).await.starts_with("250"));
        assert_eq!(server.messages().len(), 3);
    }

    #[tokio::test]
    async fn stalls_before_the_dot_without_the_message() {
        let server = SmtpServer::start_with(Stall::BeforeDot { message: 1 }).await;
        let (mut client, data) = begin_message(&server).await;
        assert!(data.starts_with("354"));
        client.get_mut().write_all(message(1).as_bytes()).await.unwrap();
        let stalled = server.wait_stalled(Duration::from_secs(5)).await;
        assert_eq!(
            stalled,
            Stalled {
                message: 1,
                message_id: Some("<1@x.test>".into()),
                received: false
            }
        );
        // The dot arrives at a server that no longer reads: the message is never received, while the next
        // one, on a new connection, is.
        client.get_mut().write_all(b".\r\n").await.unwrap();
        let (mut other, data) = begin_message(&server).await;
        assert!(data.starts_with("354"));
        other
            .get_mut()
            .write_all(format!("{}.\r\n", message(2)).as_bytes())
            .await
            .unwrap();
        assert!(last_reply(&mut other).await.starts_with("250"));
        let ids: Vec<Option<String>> = server.messages().iter().map(Received::message_id).collect();
        assert_eq!(ids, [Some("<2@x.test>".into())]);
    }
}
