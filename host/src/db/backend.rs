//! Everything that differs between SQLite and PostgreSQL.

use sqlx::{AnyConnection, Connection, Executor};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The database backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, WAL.
    Sqlite,
    /// For operators who run several replicas.
    Postgres,
}

impl Backend {
    /// Pick the backend from a database URL.
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!(
                "database URL must start with sqlite: or postgres:// (got {})",
                crate::config::redact_url(url)
            )
        }
    }

    /// SQLite: create the file when missing.
    pub fn normalize_url(self, url: &str) -> String {
        match self {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            _ => url.to_owned(),
        }
    }

    /// The pool size when the configuration leaves it to us. Every SQLite connection is a thread of its own
    /// and writes queue on one lock, so more connections than twice the cores only add switching.
    pub fn default_pool_size(self) -> u32 {
        match self {
            Backend::Sqlite => std::thread::available_parallelism()
                .map_or(4, |n| 2 * n.get() as u32)
                .clamp(2, 16),
            Backend::Postgres => 16,
        }
    }

    /// Run this backend's migrations on a connection of its own (on PostgreSQL the pooled connections
    /// run as `aula_app`, which may not create tables).
    pub async fn migrate(self, url: &str) -> anyhow::Result<()> {
        let mut conn = AnyConnection::connect(url).await?;
        match self {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&mut conn).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&mut conn).await?,
        }
        conn.close().await?;
        Ok(())
    }

    /// Settings for every new pooled connection.
    pub async fn prepare_connection(self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        match self {
            Backend::Sqlite => {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
            }
            Backend::Postgres => {
                // Work as aula_app, whose policies keep each transaction to its tenant (a superuser, or the
                // tables' owner without a policy, would see everything or nothing).
                let may: Option<(i64,)> = sqlx::query_as(
                    "SELECT 1::bigint WHERE pg_has_role(session_user, 'aula_app', 'MEMBER') \
                     AND pg_has_role(session_user, 'aula_platform', 'MEMBER')",
                )
                .fetch_optional(&mut *conn)
                .await?;
                if may.is_none() {
                    return Err(sqlx::Error::Configuration(
                        "the database user must be a member of the roles aula_app and aula_platform \
                         (GRANT aula_app, aula_platform TO <user>; see docs/OPERATIONS.md)"
                            .into(),
                    ));
                }
                conn.execute("SET ROLE aula_app").await?;
            }
        }
        Ok(())
    }

    /// How a transaction starts. SQLite takes the write lock at once, so two writers queue on the busy
    /// timeout instead of failing when a read transaction is upgraded.
    pub fn begin_statement(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// How a read transaction that must see one consistent snapshot starts.
    pub fn snapshot_begin_statement(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// The statement that opens the row-level security wall for one transaction, if the backend has one:
    /// the tenant's rows (`$1` is the tenant id), or every row for platform work (no argument).
    pub fn wall_sql(self, platform: bool) -> Option<&'static str> {
        match (self, platform) {
            (Backend::Sqlite, _) => None,
            (Backend::Postgres, false) => Some("SELECT set_config('aula.tenant_id', $1, true)"),
            (Backend::Postgres, true) => Some("SET LOCAL ROLE aula_platform"),
        }
    }

    /// An SQL expression reading `key` (a bound parameter) from a JSON object column as text.
    pub fn json_text(self, column: &str, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("CAST(json_extract({column}, '$.\"' || {param} || '\"') AS TEXT)"),
            Backend::Postgres => format!("(({column})::jsonb ->> {param})"),
        }
    }

    /// A correlated subquery giving the rows of `from` (a `FROM … WHERE …` clause) as a JSON array text of
    /// objects with the given `(key, expression)` fields in `order`, `[]` when there are none. Lists that
    /// belong to each row of a page (a user's organizations and tags) come back in the page's own rows this
    /// way, instead of one more query and one more row per item.
    pub fn json_rows(self, fields: &[(&str, &str)], from: &str, order: &str) -> String {
        match self {
            Backend::Sqlite => {
                let columns: Vec<String> = fields.iter().map(|(k, e)| format!("{e} AS {k}")).collect();
                let object: Vec<String> = fields.iter().map(|(k, _)| format!("'{k}', {k}")).collect();
                format!(
                    "(SELECT coalesce(json_group_array(json_object({})), '[]') FROM (SELECT {} {from} ORDER BY {order}))",
                    object.join(", "),
                    columns.join(", ")
                )
            }
            Backend::Postgres => {
                let object: Vec<String> = fields.iter().map(|(k, e)| format!("'{k}', {e}")).collect();
                format!(
                    "(SELECT coalesce(json_agg(json_build_object({}) ORDER BY {order}), '[]')::text {from})",
                    object.join(", ")
                )
            }
        }
    }

    /// `SELECT <json array text>` over the rows of a subquery aliased `u` (to be appended as
    /// `FROM (…) u`): one object per row with the given `(key, expression, is_json_text)` fields, in `order`.
    /// A page fetched this way is one value instead of one driver row per item.
    pub fn json_page(self, fields: &[(&str, &str, bool)], order: &str) -> String {
        match self {
            Backend::Sqlite => {
                let object: Vec<String> = fields
                    .iter()
                    .map(|(k, e, json)| {
                        if *json {
                            format!("'{k}', json({e})")
                        } else {
                            format!("'{k}', {e}")
                        }
                    })
                    .collect();
                format!(
                    "SELECT coalesce(json_group_array(json_object({}) ORDER BY {order}), '[]')",
                    object.join(", ")
                )
            }
            Backend::Postgres => {
                let object: Vec<String> = fields
                    .iter()
                    .map(|(k, e, json)| {
                        if *json {
                            format!("'{k}', ({e})::json")
                        } else {
                            format!("'{k}', {e}")
                        }
                    })
                    .collect();
                format!(
                    "SELECT coalesce(json_agg(json_build_object({}) ORDER BY {order}), '[]')::text",
                    object.join(", ")
                )
            }
        }
    }

    /// The names of every table with a `tenant_id` column, from the catalog.
    pub fn tenant_tables_sql(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
                 WHERE m.type = 'table' AND c.name = 'tenant_id' ORDER BY m.name"
            }
            Backend::Postgres => {
                "SELECT table_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND column_name = 'tenant_id' ORDER BY table_name"
            }
        }
    }

    /// The column names of a table, from the catalog (`$1` is the table name).
    pub fn columns_sql(self) -> &'static str {
        match self {
            Backend::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
            Backend::Postgres => {
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
            }
        }
    }
}
