//! The harness every integration test uses.
//!
//! Each test starts the real host on port 0 with a database of its own (a fresh SQLite file, or a fresh
//! PostgreSQL database created for it and dropped after it), seeds the demo academies (acme and globex, see
//! `host/src/demo.rs`) and talks to it over HTTP, choosing the tenant with the `Host` header exactly like a
//! browser would. A test is one `async fn scenario(app: &TestApp)`; [`scenarios!`] turns it into a SQLite
//! test and a PostgreSQL test.

#![allow(dead_code, unused_imports)]

pub mod browser;
mod client;
mod fixture;
pub mod oidc;
pub mod openapi;
pub mod resources;
mod snapshot;

pub use client::{Body, Client, Form, Reply};
pub use fixture::{Directory, Needles};
pub use snapshot::Snapshot;

use aula::config::{Config, DatabaseUrl};
use aula::db::Db;
use sqlx::{Connection, Executor};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The variable that names a PostgreSQL server (an admin URL) to also run every scenario against.
pub const POSTGRES_ENV: &str = "AULA_TEST_POSTGRES_URL";

/// Turn scenarios into tests: `scenarios!(a, b)` makes `a_sqlite`, `a_postgres`, `b_sqlite`, `b_postgres`.
/// The PostgreSQL variant fails when `AULA_TEST_POSTGRES_URL` is unset, unless `AULA_TEST_SQLITE_ONLY=1`
/// (then it notes that it was skipped).
/// `scenarios!(with configure => a, b)` starts each host with the configuration changed by
/// `configure: fn(&mut Config)` (shorter plugin time limits, a lower fault limit, …).
macro_rules! scenarios {
    (with $configure:path => $($name:ident),* $(,)?) => {$(
        pastey::paste! {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn [<$name _sqlite>]() {
                let app = $crate::common::TestApp::sqlite_with($configure).await;
                app.run(|app| Box::pin($name(app))).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn [<$name _postgres>]() {
                let Some(url) = $crate::common::postgres_url() else {
                    eprintln!(
                        "note: {} is not set; {} did not run on PostgreSQL",
                        $crate::common::POSTGRES_ENV,
                        stringify!($name)
                    );
                    return;
                };
                let app = $crate::common::TestApp::postgres_with(&url, $configure).await;
                app.run(|app| Box::pin($name(app))).await;
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        pastey::paste! {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn [<$name _sqlite>]() {
                let app = $crate::common::TestApp::sqlite().await;
                app.run(|app| Box::pin($name(app))).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn [<$name _postgres>]() {
                let Some(url) = $crate::common::postgres_url() else {
                    eprintln!(
                        "note: {} is not set; {} did not run on PostgreSQL",
                        $crate::common::POSTGRES_ENV,
                        stringify!($name)
                    );
                    return;
                };
                let app = $crate::common::TestApp::postgres(&url).await;
                app.run(|app| Box::pin($name(app))).await;
            }
        }
    )*};
}
pub(crate) use scenarios;

/// Set to `1` to run the suite on SQLite alone, on purpose.
pub const SQLITE_ONLY_ENV: &str = "AULA_TEST_SQLITE_ONLY";

/// The PostgreSQL admin URL. When it is not set, the PostgreSQL variants fail, unless `AULA_TEST_SQLITE_ONLY=1`
/// says this run is on SQLite alone on purpose: a missing database must not pass for a passing test.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV).ok().filter(|v| !v.trim().is_empty()) {
        Some(url) => Some(url),
        None if std::env::var(SQLITE_ONLY_ENV).is_ok_and(|v| v == "1") => None,
        None => panic!(
            "{POSTGRES_ENV} is not set, so the PostgreSQL variant cannot run; point it at a server \
             (postgres://postgres@127.0.0.1:5432/postgres) or set {SQLITE_ONLY_ENV}=1 to run on SQLite alone"
        ),
    }
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// What to remove when the test is over.
enum Cleanup {
    SqliteFile(PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

impl Cleanup {
    /// Remove the test's database (best effort: a leftover is reported, never fatal).
    async fn remove(&self) {
        match self {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                if let Ok(mut admin) = sqlx::postgres::PgConnection::connect(admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = admin.execute(drop.as_str()).await {
                        eprintln!("note: could not drop test database {name}: {e}");
                    }
                    admin.close().await.ok();
                }
            }
        }
    }
}

/// A change to the host's configuration before it starts.
pub type Configure = fn(&mut Config);

/// Leaves the configuration as the harness sets it up.
fn unchanged(_: &mut Config) {}

/// What [`TestApp::boot`] started.
struct Booted {
    addr: SocketAddr,
    db: Db,
    http: reqwest::Client,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
    callers: std::sync::Arc<aula::auth::CallerCache>,
    mail: aula_tests::smtp::SmtpServer,
}

/// One running host with its own database and the demo academies.
pub struct TestApp {
    /// The bound address (127.0.0.1 and a port of its own).
    pub addr: SocketAddr,
    /// The database, for the few checks that read or arrange state directly.
    pub db: Db,
    /// Which backend.
    pub backend: Backend,
    /// The directory this host keeps plugin files in (`plugins.files_dir`), removed after the test.
    pub files_dir: PathBuf,
    /// The SMTP server this host sends its mail to (`mail.transport = smtp`, no TLS), with what it received.
    pub mail: aula_tests::smtp::SmtpServer,
    http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    cleanup: Cleanup,
    callers: std::sync::Arc<aula::auth::CallerCache>,
}

/// A future borrowing the app, as the scenario functions return them.
pub type ScenarioFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

impl TestApp {
    /// A host on a fresh SQLite file.
    pub async fn sqlite() -> TestApp {
        TestApp::sqlite_with(unchanged).await
    }

    /// A host on a fresh SQLite file, with its configuration changed by `configure`.
    pub async fn sqlite_with(configure: Configure) -> TestApp {
        let path = std::env::temp_dir().join(format!("aula-test-{}.db", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite:{}", path.display());
        TestApp::start(&url, Backend::Sqlite, Cleanup::SqliteFile(path), configure).await
    }

    /// A host on a fresh PostgreSQL database created on the server `admin_url` points at.
    pub async fn postgres(admin_url: &str) -> TestApp {
        TestApp::postgres_with(admin_url, unchanged).await
    }

    /// A host on a fresh PostgreSQL database, with its configuration changed by `configure`.
    pub async fn postgres_with(admin_url: &str, configure: Configure) -> TestApp {
        let name = format!("aula_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::postgres::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV}: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = with_database(admin_url, &name);
        TestApp::start(
            &url,
            Backend::Postgres,
            Cleanup::PostgresDatabase {
                admin_url: admin_url.to_owned(),
                name,
            },
            configure,
        )
        .await
    }

    /// Boot the host; if that fails, remove the database and the files directory before failing the test.
    async fn start(url: &str, backend: Backend, cleanup: Cleanup, configure: Configure) -> TestApp {
        use futures::FutureExt;
        let files_dir = std::env::temp_dir().join(format!("aula-test-files-{}", uuid::Uuid::new_v4().simple()));
        match std::panic::AssertUnwindSafe(TestApp::boot(url, &files_dir, configure))
            .catch_unwind()
            .await
        {
            Ok(b) => TestApp {
                addr: b.addr,
                db: b.db,
                backend,
                files_dir,
                http: b.http,
                shutdown: Some(b.shutdown),
                server: Some(b.server),
                cleanup,
                callers: b.callers,
                mail: b.mail,
            },
            Err(panic) => {
                cleanup.remove().await;
                let _ = std::fs::remove_dir_all(&files_dir);
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Connect and migrate, seed the demo, bind port 0 and serve.
    async fn boot(url: &str, files_dir: &std::path::Path, configure: Configure) -> Booted {
        let db = Db::connect(url, 8)
            .await
            .expect("connect and migrate the test database");
        aula::demo::seed(&db).await.expect("seed the demo academies");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("bound address");
        let mut config = Config {
            listen: addr.to_string(),
            database_url: DatabaseUrl::new(url),
            // Plain HTTP in tests; the cookie is sent by hand anyway.
            cookie_secure: false,
            ..Config::default()
        };
        // Plugin files of this host only, never in the working directory.
        config.plugins.files_dir = files_dir.display().to_string();
        // This host's copies of academies' theme files, removed with the plugin files.
        config.themes_dir = files_dir.join("themes").display().to_string();
        // Mail goes to an SMTP server of this host only, over plain TCP.
        let mail = aula_tests::smtp::SmtpServer::start().await;
        config.mail = aula::config::mail::MailSettings {
            transport: aula::config::mail::MailTransport::Smtp,
            smtp_host: "127.0.0.1".into(),
            smtp_port: mail.port(),
            smtp_tls: aula::config::mail::SmtpTls::None,
            ..Default::default()
        };
        configure(&mut config);
        let app = aula::Application::with(listener, db.clone(), config);
        let callers = app.state().callers.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            // A hung request fails the test instead of hanging the suite.
            .timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Booted {
            addr,
            db,
            http,
            shutdown: tx,
            server,
            callers,
            mail,
        }
    }

    /// Run a scenario, then stop the host and remove its database whatever the scenario did (a failed
    /// assertion is re-raised after the cleanup).
    pub async fn run(self, scenario: impl for<'a> FnOnce(&'a TestApp) -> ScenarioFuture<'a>) {
        use futures::FutureExt;
        let outcome = std::panic::AssertUnwindSafe(scenario(&self)).catch_unwind().await;
        self.teardown().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    async fn teardown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            // Graceful shutdown waits for open connections; do not let a stuck one hold the suite.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        }
        self.db.close().await;
        self.cleanup.remove().await;
        let _ = std::fs::remove_dir_all(&self.files_dir);
    }

    /// The port the host listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `acme.localhost:PORT`: the address of a tenant's academy.
    pub fn tenant_host(&self, slug: &str) -> String {
        format!("{slug}.localhost:{}", self.port())
    }

    /// The platform's own address (the base domain, no tenant).
    pub fn platform_host(&self) -> String {
        format!("localhost:{}", self.port())
    }

    /// A visitor without credentials on a tenant's academy.
    pub fn visitor(&self, slug: &str) -> Client {
        self.client_on(&self.tenant_host(slug))
    }

    /// A visitor without credentials on any host (a custom domain, the platform host, …).
    pub fn client_on(&self, host: &str) -> Client {
        Client::new(self.http.clone(), format!("http://{}", self.addr), host.to_owned())
    }

    /// Sign in as a demo user on their academy; panics (naming the account) if sign-in fails.
    pub async fn login(&self, slug: &str, email: &str) -> Client {
        self.login_with(slug, email, aula::demo::DEMO_PASSWORD).await
    }

    /// Sign in with a password; panics if sign-in fails.
    pub async fn login_with(&self, slug: &str, email: &str, password: &str) -> Client {
        let visitor = self.visitor(slug);
        let reply = visitor.sign_in(email, password).await;
        assert_eq!(reply.status, 200, "sign-in of {email} on {slug} failed: {}", reply.text);
        let cookie = reply
            .session_cookie()
            .unwrap_or_else(|| panic!("sign-in of {email} set no session cookie"));
        visitor.with_session(&cookie)
    }

    /// A client presenting an API token on a tenant's academy.
    pub fn with_token(&self, slug: &str, token: &str) -> Client {
        self.visitor(slug).with_token(token)
    }

    /// Run one statement with platform rights (arranging state the API cannot, e.g. an expired token).
    /// Let the moment pass for which the host reuses authenticated callers (`auth_cache_ms`), as it has
    /// by the time a change made behind its back (another replica, SQL) must be seen.
    pub fn let_auth_cache_expire(&self) {
        self.callers.clear();
    }

    pub async fn exec(&self, sql: &str, args: &[&str]) -> u64 {
        let mut tx = self.db.platform().begin().await.expect("platform transaction");
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(a.to_string());
        }
        let n = q
            .execute(tx.conn())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows_affected();
        tx.commit().await.expect("commit");
        n
    }

    /// The first column of the first row, as text, with platform rights; panics when there is no row.
    pub async fn text(&self, sql: &str, args: &[&str]) -> String {
        let mut tx = self.db.platform().begin().await.expect("platform transaction");
        let mut q = sqlx::query_scalar::<_, String>(sql);
        for a in args {
            q = q.bind(a.to_string());
        }
        let v = q
            .fetch_optional(tx.conn())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql} {args:?}: no row"));
        tx.commit().await.expect("commit");
        v
    }

    /// Count rows with platform rights (`SELECT COUNT(*) …`).
    pub async fn count(&self, sql: &str, args: &[&str]) -> i64 {
        let mut tx = self.db.platform().begin().await.expect("platform transaction");
        let mut q = sqlx::query_scalar::<_, i64>(sql);
        for a in args {
            q = q.bind(a.to_string());
        }
        let n = q.fetch_one(tx.conn()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        tx.commit().await.expect("commit");
        n
    }

    /// Entries in the audit log of every tenant.
    pub async fn audit_count(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM audit_log", &[]).await
    }

    /// Every stored row that a request could change (volatile bookkeeping such as last-seen times left out).
    pub async fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.db).await
    }
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
