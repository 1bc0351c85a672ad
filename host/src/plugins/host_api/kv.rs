//! `kv`: the plugin's own key-value store, in the academy's database.

use super::{HostState, KV_MAX_KEY, KV_MAX_KEYS, KV_MAX_VALUE, Stop};
use crate::db::{Backend, Sql, now_ms};
use crate::fair::FairShare;
use crate::plugins::bindings::kv;
use crate::plugins::manifest::Capability;
use sqlx::Row;
use std::sync::LazyLock;
use std::time::Duration;

/// Writes to plugin key-value stores in progress at once, across the process and per academy. Each is a
/// write transaction (on SQLite it holds the database's one write lock), so one academy's flood of writes
/// waits in its own queue of one and does not take the writer from the others. A write that cannot start
/// within a second is answered "busy" to the plugin, which may try again.
static KV_WRITES: LazyLock<FairShare> =
    LazyLock::new(|| FairShare::new("plugin key-value writes", 4, 1, Duration::from_secs(1)));

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.require(Capability::Kv)?;
        self.charge(key.len())?;
        let mut tx = self.read().await?;
        let row = tx
            .query("SELECT value FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2 AND key = $3")
            .bind(self.plugin_id.clone())
            .bind(key)
            .fetch_optional(tx.conn())
            .await;
        let value = match row {
            Ok(row) => row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose(),
            Err(e) => Err(e),
        };
        let value = value.map_err(|e| self.db_error(e))?;
        self.charge(value.as_ref().map_or(0, Vec::len))?;
        Ok(value)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.require(Capability::Kv)?;
        self.charge(key.len() + value.len())?;
        if key.is_empty() || key.len() > KV_MAX_KEY {
            return Ok(Err(format!("keys are 1–{KV_MAX_KEY} bytes")));
        }
        if value.len() > KV_MAX_VALUE {
            return Ok(Err(format!("values are at most {} KiB", KV_MAX_VALUE / 1024)));
        }
        let Ok(_turn) = KV_WRITES.acquire(self.db.tenant_id()).await else {
            return Ok(Err("the key-value store is busy; try again later".into()));
        };
        let result: Result<Result<(), String>, sqlx::Error> = async {
            let mut tx = self.db.begin().await?;
            if tx.backend() == Backend::Postgres {
                // Writes of one plugin take turns, so that concurrent calls cannot both pass the key quota
                // (SQLite's writers already take turns).
                tx.query("SELECT 1 FROM plugins WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
                    .bind(self.plugin_id.clone())
                    .fetch_optional(tx.conn())
                    .await?;
            }
            let exists = tx
                .query("SELECT 1 FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2 AND key = $3")
                .bind(self.plugin_id.clone())
                .bind(key.clone())
                .fetch_optional(tx.conn())
                .await?
                .is_some();
            if !exists {
                let count: i64 = tx
                    .query("SELECT count(*) FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2")
                    .bind(self.plugin_id.clone())
                    .fetch_one(tx.conn())
                    .await?
                    .try_get(0)?;
                if count >= KV_MAX_KEYS {
                    return Ok(Err(format!("the store is full ({KV_MAX_KEYS} keys)")));
                }
            }
            tx.query(
                "INSERT INTO plugin_kv (tenant_id, plugin_id, key, value, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (plugin_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(self.plugin_id.clone())
            .bind(key)
            .bind(value)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
            tx.commit().await?;
            Ok(Ok(()))
        }
        .await;
        result.map_err(|e| self.db_error(e))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.require(Capability::Kv)?;
        self.charge(key.len())?;
        let Ok(_turn) = KV_WRITES.acquire(self.db.tenant_id()).await else {
            // `delete` has no error to answer: the call stops, as when the database does not answer.
            return Err(self.halt(Stop::Host("the key-value store is busy".into())));
        };
        let result = async {
            let mut tx = self.db.begin().await?;
            tx.query("DELETE FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = $2 AND key = $3")
                .bind(self.plugin_id.clone())
                .bind(key)
                .execute(tx.conn())
                .await?;
            tx.commit().await
        }
        .await;
        result.map_err(|e| self.db_error(e))
    }

    async fn keys(&mut self, prefix: String, limit: u32) -> wasmtime::Result<Vec<String>> {
        self.require(Capability::Kv)?;
        self.charge(prefix.len())?;
        let mut sql = Sql::tenant("SELECT key FROM plugin_kv WHERE tenant_id = $1 AND plugin_id = ");
        sql.push_bind(self.plugin_id.as_str());
        if !prefix.is_empty() {
            sql.push(" AND substr(key, 1, ")
                .push_bind(prefix.chars().count() as i64)
                .push(") = ")
                .push_bind(prefix.as_str());
        }
        sql.push(" ORDER BY key LIMIT ").push_bind(i64::from(limit.min(1000)));
        let mut tx = self.read().await?;
        let keys = match tx.fetch_all_sql(&sql).await {
            Ok(rows) => rows
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e),
        };
        let keys = keys.map_err(|e| self.db_error(e))?;
        self.charge_value(&keys)?;
        Ok(keys)
    }
}
