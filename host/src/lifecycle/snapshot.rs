//! A tenant's rows in memory, and the one restore path that export/import and clone share: every row gets a
//! new id, every id inside a text value follows it, and the new tenant is written in one transaction.

use super::tables::{Kind, TABLES, Table};
use crate::audit::{Change, record};
use crate::auth::Actor;
use crate::db::{Db, TenantTx, foreign_key_violation, new_id, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::tenancy::{Tenant, TenantSettings};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Row, ValueRef};
use std::collections::HashMap;

/// The tenants row, as it travels.
#[derive(Debug, Clone)]
pub struct TenantMeta {
    /// The id it had where it came from (ids inside rows that name the tenant follow the new id).
    pub id: String,
    /// Slug.
    pub slug: String,
    /// Name.
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Settings.
    pub settings: TenantSettings,
}

/// The rows of one registered table; each row holds one value per registered column, in column order.
#[derive(Debug)]
pub struct TableRows {
    /// The table.
    pub table: &'static Table,
    /// The rows.
    pub rows: Vec<Vec<Value>>,
}

/// A tenant and the rows of some of its tables, in registry order.
#[derive(Debug)]
pub struct Snapshot {
    /// The tenant.
    pub tenant: TenantMeta,
    /// The tables, parents first.
    pub tables: Vec<TableRows>,
}

/// Read the tenant and every registered table that `include` selects, inside `tx`.
pub async fn read(tx: &mut TenantTx, include: impl Fn(&Table) -> bool) -> ApiResult<Snapshot> {
    let row = tx
        .query("SELECT id, slug, name, status, settings FROM tenants WHERE id = $1")
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "tenant" })?;
    let settings: String = row.try_get("settings")?;
    let tenant = TenantMeta {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
    };
    let mut tables = Vec::new();
    for table in TABLES.iter().filter(|t| include(t)) {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 ORDER BY {}",
            table.column_list(),
            table.name,
            order_by(table)
        );
        let rows = tx.query(&sql).fetch_all(tx.conn()).await?;
        let rows = rows
            .iter()
            .map(|row| decode_row(row, table))
            .collect::<Result<Vec<_>, _>>()?;
        tables.push(TableRows { table, rows });
    }
    Ok(Snapshot { tenant, tables })
}

/// A stable order, so two exports of the same data are the same files: the row's id, or its references.
fn order_by(table: &Table) -> String {
    let keys: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| matches!(c.kind, Kind::Id))
        .chain(table.columns.iter().filter(|c| matches!(c.kind, Kind::Ref)))
        .map(|c| c.name)
        .collect();
    match keys.first() {
        Some(key) if table.columns.iter().any(|c| c.kind == Kind::Id) => (*key).to_owned(),
        Some(_) => keys.join(", "),
        None => table.columns.first().map(|c| c.name).unwrap_or("tenant_id").to_owned(),
    }
}

/// Binary values travel as base64 text.
pub fn encode_bytes(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of a base64 value, if it is one.
pub fn decode_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Decode a row without knowing its types in advance: NULL, then integer, float, text.
fn decode_row(row: &AnyRow, table: &Table) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        let value = if row.try_get_raw(i)?.is_null() {
            Value::Null
        } else if column.kind == Kind::Secret {
            Value::String("{}".into())
        } else if column.kind == Kind::Withheld {
            Value::String(format!("withheld:{}", crate::auth::random_secret()))
        } else if column.kind == Kind::Bytes {
            Value::String(encode_bytes(&row.try_get::<Vec<u8>, _>(i)?))
        } else if let Ok(v) = row.try_get::<i64, _>(i) {
            Value::from(v)
        } else if let Ok(v) = row.try_get::<f64, _>(i) {
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<String, _>(i) {
            Value::String(v)
        } else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "{}.{} holds a value that is neither a number nor text",
                table.name,
                column.name
            )));
        };
        out.push(value);
    }
    Ok(out)
}

/// Is this a UUID in its text form (8-4-4-4-12 hex digits)?
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Replace every UUID-shaped substring of `text` that the map knows. This is what carries ids inside values
/// along with their rows: materialized org paths (`/id1/id2/`), ids inside JSON (segment definitions, audit
/// entries), without each table having to say where its ids hide.
pub fn remap_text(text: &str, map: &HashMap<String, String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 36 <= bytes.len() {
        // Only ASCII bytes can start or end a match, so slicing here stays on character boundaries.
        let window = &bytes[i..i + 36];
        if window.is_ascii() {
            let candidate = &text[i..i + 36];
            if is_uuid(candidate)
                && let Some(new) = map.get(&candidate.to_ascii_lowercase())
            {
                out.push_str(&text[copied..i]);
                out.push_str(new);
                i += 36;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// What the restore records in the new tenant's audit log.
pub struct RestoreAudit {
    /// The action, e.g. `tenant.import`.
    pub action: &'static str,
    /// Extra facts for the entry (source slug, archive date, …).
    pub details: Value,
}

/// Write `snapshot` as a new tenant called `slug`/`name` with new ids throughout, in one transaction.
/// Nothing is written unless every row is.
pub async fn restore(
    db: &Db,
    snapshot: &Snapshot,
    slug: &str,
    name: &str,
    status: &str,
    actor: &Actor,
    audit: RestoreAudit,
) -> ApiResult<Tenant> {
    let tenant_id = new_id();
    let map = id_map(snapshot, &tenant_id);
    let mut tx = db.tenant(&tenant_id).begin_operator().await?;
    super::insert_tenant_row(&mut tx, slug, name, status, &snapshot.tenant.settings).await?;
    for rows in &snapshot.tables {
        insert_rows(&mut tx, rows, &map).await?;
    }
    let tenant = super::load_tenant(&mut tx).await?;
    let mut after = serde_json::json!({ "tenant": tenant, "rows": counts(snapshot) });
    if let (Value::Object(after), Value::Object(details)) = (&mut after, audit.details) {
        after.extend(details);
    }
    record(
        &mut tx,
        actor,
        Change {
            action: audit.action,
            target_type: "tenant",
            target_id: Some(&tenant_id),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    // Deferred constraints (an org whose parent is missing) are checked here.
    tx.commit().await.map_err(|e| {
        if foreign_key_violation(&e) {
            ApiError::rule(
                "archive_reference",
                None,
                "a row refers to a row that is not part of the archive",
            )
        } else {
            e.into()
        }
    })?;
    Ok(tenant)
}

/// Row counts by table, for audit entries and manifests.
pub fn counts(snapshot: &Snapshot) -> serde_json::Map<String, Value> {
    snapshot
        .tables
        .iter()
        .map(|t| (t.table.name.to_owned(), Value::from(t.rows.len())))
        .collect()
}

/// Old id → new id for the tenant and for every id any row holds in an id column.
fn id_map(snapshot: &Snapshot, tenant_id: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    map.insert(snapshot.tenant.id.to_ascii_lowercase(), tenant_id.to_owned());
    for rows in &snapshot.tables {
        for (i, column) in rows.table.columns.iter().enumerate() {
            if !matches!(column.kind, Kind::Id | Kind::Ref) {
                continue;
            }
            for row in &rows.rows {
                if let Some(old) = row.get(i).and_then(Value::as_str).filter(|s| is_uuid(s)) {
                    map.entry(old.to_ascii_lowercase()).or_insert_with(new_id);
                }
            }
        }
    }
    map
}

async fn insert_rows(tx: &mut TenantTx, rows: &TableRows, map: &HashMap<String, String>) -> ApiResult<()> {
    let table = rows.table;
    // The tenant column takes the transaction's tenant ($1); the others are numbered after it.
    let mut n = 1;
    let placeholders: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            if c.kind == Kind::Tenant {
                "$1".to_owned()
            } else {
                n += 1;
                format!("${n}")
            }
        })
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        table.column_list(),
        placeholders.join(", ")
    );
    for (index, row) in rows.rows.iter().enumerate() {
        let mut query = tx.query(&sql);
        for (column, value) in table.columns.iter().zip(row) {
            query = match (column.kind, value) {
                (Kind::Tenant, _) => query,
                (Kind::Int, Value::Null) => query.bind(Option::<i64>::None),
                (Kind::Real, Value::Null) => query.bind(Option::<f64>::None),
                (_, Value::Null) => query.bind(Option::<String>::None),
                (Kind::Int, v) => query.bind(v.as_i64()),
                (Kind::Bytes, v) => query.bind(v.as_str().and_then(decode_bytes).unwrap_or_default()),
                (Kind::Real, v) => query.bind(v.as_f64()),
                (_, Value::String(s)) => query.bind(remap_text(s, map)),
                (_, other) => query.bind(remap_text(&other.to_string(), map)),
            };
        }
        if let Err(e) = query.execute(tx.conn()).await {
            return Err(row_error(table, index, row, e));
        }
    }
    Ok(())
}

/// Turn a refused row into an error that names the file and the row.
fn row_error(table: &Table, index: usize, row: &[Value], err: sqlx::Error) -> ApiError {
    let place = format!("tables/{}.json[{index}]", table.name);
    if let Some(key) = unique_violation(&err) {
        if table.name == "tenant_domains" {
            let domain = row.first().and_then(Value::as_str).unwrap_or_default();
            return ApiError::duplicate(
                "domains",
                format!(
                    "the domain {domain} already belongs to another academy; remove it there first, \
                     or clone the academy instead (a clone takes no domains)"
                ),
            );
        }
        return ApiError::rule(
            "archive_conflict",
            Some(&place),
            format!("duplicates another row ({key})"),
        );
    }
    if foreign_key_violation(&err) {
        return ApiError::rule(
            "archive_reference",
            Some(&place),
            "refers to a row that is not part of the archive",
        );
    }
    match err.as_database_error() {
        // A NOT NULL or CHECK constraint: the database's message names the column and the rule.
        Some(db) => ApiError::rule("archive_row_invalid", Some(&place), db.message().to_owned()),
        None => err.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_inside_text_are_remapped() {
        let a = "0190a0a0-0000-7000-8000-000000000001";
        let b = "0190a0a0-0000-7000-8000-000000000002";
        let unknown = "0190a0a0-0000-7000-8000-0000000000ff";
        let map: HashMap<String, String> = [(a.to_owned(), "new-a".to_owned()), (b.to_owned(), "new-b".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(remap_text(&format!("/{a}/{b}/"), &map), "/new-a/new-b/");
        assert_eq!(
            remap_text(&format!("{{\"orgs\":[\"{}\"]}}", a.to_uppercase()), &map),
            "{\"orgs\":[\"new-a\"]}"
        );
        assert_eq!(remap_text(&format!("é/{unknown}/ü"), &map), format!("é/{unknown}/ü"));
        assert_eq!(remap_text("short", &map), "short");
        assert!(is_uuid(a));
        assert!(!is_uuid("0190a0a0-0000-7000-8000-00000000000g"));
    }
}
