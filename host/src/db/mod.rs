//! Database access.
//!
//! The whole host speaks to the database through three handles, so that a tenant query cannot be written
//! without its tenant:
//! - [`TenantDb`] holds one tenant's id. Every statement it prepares has the tenant bound as `$1`, and on
//!   PostgreSQL every transaction it opens sets `aula.tenant_id`, which the row-level security policies check.
//! - [`PlatformDb`] is for the few places that work across tenants (resolving a host or a token, the
//!   operator's tenant lifecycle). On PostgreSQL its transactions act as the role `aula_platform`.
//! - [`Db`] is the pool itself; only this module and start-up code touch it directly.
//!
//! What differs between SQLite and PostgreSQL lives in [`backend`] and in `migrations/<backend>/`.

pub mod backend;
mod sql;
mod time;
mod values;

pub use backend::Backend;
pub use sql::{Arg, Sql};
pub use time::{Timestamp, now_ms, rfc3339};
pub use values::{Flag, JsonText};

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Arguments, Transaction};
use std::time::Duration;

/// Rows per multi-row statement: well under SQLite's and PostgreSQL's limits on bound values. On SQLite the
/// placeholders are bound by position (`sql::positional`), so a larger statement costs no more per value;
/// 200 rows measured faster than 50 (a round trip to the database thread each) and than 500.
pub const CHUNK: usize = 200;

/// A query with the arguments bound so far.
pub type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// The connection pool and which backend it speaks to.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connect, create the SQLite file if needed, and run the migrations of the backend.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = backend.normalize_url(url);
        backend.migrate(&url).await?;
        let max_connections = if max_connections == 0 {
            backend.default_pool_size()
        } else {
            max_connections
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| Box::pin(async move { backend.prepare_connection(conn).await }))
            .connect(&url)
            .await?;
        Ok(Db { pool, backend })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A handle for one tenant's data.
    pub fn tenant(&self, tenant_id: &str) -> TenantDb {
        TenantDb {
            db: self.clone(),
            tenant_id: tenant_id.to_owned(),
        }
    }

    /// A handle for work across tenants (operator actions, host and token resolution).
    pub fn platform(&self) -> PlatformDb {
        PlatformDb { db: self.clone() }
    }

    /// Is the database reachable? Used by `/readyz`.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Close every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self, wall: Wall<'_>) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.begin_with(self.backend.begin_statement(), wall).await
    }

    async fn begin_with(
        &self,
        statement: &'static str,
        wall: Wall<'_>,
    ) -> Result<Transaction<'static, Any>, sqlx::Error> {
        let mut tx = self.pool.begin_with(statement).await?;
        match wall {
            Wall::Tenant(id) => {
                if let Some(sql) = self.backend.wall_sql(false) {
                    sqlx::query(sql).bind(id.to_owned()).execute(&mut *tx).await?;
                }
            }
            Wall::Platform => {
                if let Some(sql) = self.backend.wall_sql(true) {
                    sqlx::query(sql).execute(&mut *tx).await?;
                }
            }
        }
        Ok(tx)
    }
}

/// Which rows a transaction may reach under row-level security.
#[derive(Clone, Copy)]
enum Wall<'a> {
    Tenant(&'a str),
    Platform,
}

/// One tenant's view of the database.
#[derive(Clone)]
pub struct TenantDb {
    db: Db,
    tenant_id: String,
}

impl std::fmt::Debug for TenantDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantDb").field("tenant_id", &self.tenant_id).finish()
    }
}

impl TenantDb {
    /// The tenant this handle is bound to.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The backend behind this handle.
    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    /// Open a transaction bound to this tenant.
    pub async fn begin(&self) -> Result<TenantTx, sqlx::Error> {
        let tx = Conn::Tx(self.db.begin(Wall::Tenant(&self.tenant_id)).await?);
        Ok(TenantTx {
            tx,
            tenant_id: self.tenant_id.clone(),
            backend: self.db.backend,
        })
    }

    /// Open a transaction bound to this tenant with the platform's rights: the operator's work on an academy
    /// as a whole (creating or deleting its `tenants` row, mapping its domains, restoring it), which the
    /// academy's own transactions may not do. Statements still bind the tenant as `$1`.
    pub async fn begin_operator(&self) -> Result<TenantTx, sqlx::Error> {
        let tx = Conn::Tx(self.db.begin(Wall::Platform).await?);
        Ok(TenantTx {
            tx,
            tenant_id: self.tenant_id.clone(),
            backend: self.db.backend,
        })
    }

    /// Open a read transaction that sees one consistent moment across every statement (exports, clones).
    /// SQLite's deferred read transactions already do; PostgreSQL needs REPEATABLE READ.
    pub async fn begin_snapshot(&self) -> Result<TenantTx, sqlx::Error> {
        let tx = self
            .db
            .begin_with(
                self.db.backend.snapshot_begin_statement(),
                Wall::Tenant(&self.tenant_id),
            )
            .await?;
        let tx = Conn::Tx(tx);
        Ok(TenantTx {
            tx,
            tenant_id: self.tenant_id.clone(),
            backend: self.db.backend,
        })
    }

    /// Open a handle for reading only: on PostgreSQL a transaction (the row-level security setting is
    /// transaction-local), on SQLite an autocommit connection that takes no lock at all. Statements of one
    /// read may see different moments on SQLite; use [`TenantDb::begin_snapshot`] where that matters.
    pub async fn begin_read(&self) -> Result<TenantTx, sqlx::Error> {
        let tx = match self.db.backend {
            Backend::Sqlite => Conn::Plain(self.db.pool.acquire().await?),
            Backend::Postgres => Conn::Tx(self.db.begin_with("BEGIN", Wall::Tenant(&self.tenant_id)).await?),
        };
        Ok(TenantTx {
            tx,
            tenant_id: self.tenant_id.clone(),
            backend: self.db.backend,
        })
    }
}

/// A transaction bound to one tenant. Statements made through it have the tenant bound as `$1`.
pub struct TenantTx {
    tx: Conn,
    tenant_id: String,
    backend: Backend,
}

/// What a [`TenantTx`] runs on: a real transaction, or (for plain reads on SQLite, where there is no
/// per-transaction setting to make) a pooled connection in autocommit mode, which saves two round trips to
/// SQLite's worker thread on every read request.
enum Conn {
    Tx(Transaction<'static, Any>),
    Plain(PoolConnection<Any>),
}

impl std::ops::Deref for Conn {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        match self {
            Conn::Tx(tx) => tx,
            Conn::Plain(c) => c,
        }
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Conn::Tx(tx) => &mut *tx,
            Conn::Plain(c) => &mut *c,
        }
    }
}

impl TenantTx {
    /// The tenant of this transaction.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The backend behind this transaction.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Prepare a statement whose `$1` is this tenant. The SQL must use `$1` as the tenant filter (or the
    /// tenant column of an insert); further arguments start at `$2`.
    pub fn query<'q>(&self, sql: &'q str) -> Query<'q> {
        debug_assert!(sql.contains("$1"), "tenant statement without $1: {sql}");
        sqlx::query(sql).bind(self.tenant_id.clone())
    }

    /// Run a statement built with [`Sql`] (which reserves `$1` for the tenant).
    pub async fn fetch_all_sql(&mut self, sql: &Sql) -> Result<Vec<AnyRow>, sqlx::Error> {
        debug_assert!(sql.text().contains("$1"), "tenant statement without $1: {}", sql.text());
        let (text, args) = sql.prepared(self.backend, Some(&self.tenant_id));
        sqlx::query_with(&text, args).fetch_all(&mut *self.tx).await
    }

    /// Run a statement built with [`Sql`] and return the first row, if any.
    pub async fn fetch_optional_sql(&mut self, sql: &Sql) -> Result<Option<AnyRow>, sqlx::Error> {
        let (text, args) = sql.prepared(self.backend, Some(&self.tenant_id));
        sqlx::query_with(&text, args).fetch_optional(&mut *self.tx).await
    }

    /// Execute a statement built with [`Sql`].
    pub async fn execute_sql(&mut self, sql: &Sql) -> Result<u64, sqlx::Error> {
        let (text, args) = sql.prepared(self.backend, Some(&self.tenant_id));
        Ok(sqlx::query_with(&text, args)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    /// The connection, for `query.fetch_*(tx.conn())`.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Commit the transaction (a plain read has nothing to commit).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.tx {
            Conn::Tx(tx) => tx.commit().await,
            Conn::Plain(_) => Ok(()),
        }
    }
}

/// Cross-tenant access for the operator and for resolving hosts and tokens.
#[derive(Clone)]
pub struct PlatformDb {
    db: Db,
}

impl PlatformDb {
    /// Open a transaction with platform rights.
    pub async fn begin(&self) -> Result<PlatformTx, sqlx::Error> {
        let tx = self.db.begin(Wall::Platform).await?;
        Ok(PlatformTx {
            tx,
            backend: self.db.backend,
        })
    }

    /// The backend behind this handle.
    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    /// The tenant handle for one tenant.
    pub fn tenant(&self, tenant_id: &str) -> TenantDb {
        self.db.tenant(tenant_id)
    }
}

/// A transaction with platform rights.
pub struct PlatformTx {
    tx: Transaction<'static, Any>,
    backend: Backend,
}

impl PlatformTx {
    /// The connection, for `query.fetch_*(tx.conn())`.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// The backend behind this transaction.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Run a statement built with [`Sql`] (no tenant reserved).
    pub async fn fetch_all_sql(&mut self, sql: &Sql) -> Result<Vec<AnyRow>, sqlx::Error> {
        let (text, args) = sql.prepared(self.backend, None);
        sqlx::query_with(&text, args).fetch_all(&mut *self.tx).await
    }

    /// Execute a statement built with [`Sql`] (no tenant reserved).
    pub async fn execute_sql(&mut self, sql: &Sql) -> Result<u64, sqlx::Error> {
        let (text, args) = sql.prepared(self.backend, None);
        Ok(sqlx::query_with(&text, args)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    /// Commit the transaction.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// Build arguments from a list of values.
pub(crate) fn bind_all<'q>(args: &[Arg], first: Option<&str>) -> AnyArguments<'q> {
    let mut out = AnyArguments::default();
    if let Some(first) = first {
        let _ = out.add(first.to_owned());
    }
    for arg in args {
        add_arg(&mut out, arg);
    }
    out
}

/// Add one value to a statement's arguments.
pub(crate) fn add_arg(out: &mut AnyArguments<'_>, arg: &Arg) {
    let _ = match arg {
        Arg::Text(s) => out.add(s.clone()),
        Arg::Int(i) => out.add(*i),
        Arg::Real(f) => out.add(*f),
        Arg::Null => out.add(Option::<String>::None),
        Arg::NullInt => out.add(Option::<i64>::None),
    };
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Is this database error a unique-constraint violation, and of which index?
/// Both backends name the index in the message when it is an expression index, and PostgreSQL
/// always reports the constraint name; the index names end in `_key`.
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?;
    if !matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation) {
        return None;
    }
    if let Some(name) = db.constraint() {
        return Some(name.to_owned());
    }
    Some(db.message().to_owned())
}

/// Turning a violated constraint into the domain's own error, by the constraint's (or index's) name.
///
/// ```ignore
/// const CONSTRAINTS: Constraints<Error> = &[
///     ("orgs_sibling_name", || Error::duplicate("name", "…")),
///     ("external_id", || Error::duplicate("external_id", "…")),
/// ];
/// tx.query(INSERT).execute(tx.conn()).await.on_constraint(CONSTRAINTS)?;
/// ```
/// Any other error (another constraint, or none) becomes `E` through `From<sqlx::Error>`. PostgreSQL names the
/// constraint; SQLite names the index of an expression index, or the table and column (`users.email`), in its
/// message, so a case matches when its name appears in either.
pub trait ResultExt<T> {
    /// Map the first matching constraint to its error.
    fn on_constraint<E: From<sqlx::Error>>(self, cases: Constraints<E>) -> Result<T, E>;
}

/// Constraint (or index) names with the error each stands for.
pub type Constraints<E> = &'static [(&'static str, fn() -> E)];

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn on_constraint<E: From<sqlx::Error>>(self, cases: Constraints<E>) -> Result<T, E> {
        self.map_err(|err| constraint_error(err, cases))
    }
}

/// The error a violated constraint stands for (see [`ResultExt`]).
pub fn constraint_error<E: From<sqlx::Error>>(err: sqlx::Error, cases: Constraints<E>) -> E {
    let violated = unique_violation(&err).or_else(|| {
        foreign_key_violation(&err).then(|| {
            let db = err.as_database_error();
            db.and_then(|d| d.constraint().map(str::to_owned))
                .or_else(|| db.map(|d| d.message().to_owned()))
                .unwrap_or_default()
        })
    });
    match violated.and_then(|name| cases.iter().find(|(case, _)| name.contains(case))) {
        Some((_, make)) => make(),
        None => E::from(err),
    }
}

/// Is this a foreign-key violation?
pub fn foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| matches!(db.kind(), sqlx::error::ErrorKind::ForeignKeyViolation))
}
