//! The tenant archive: one self-contained `tar.gz`.
//!
//! ```text
//! manifest.json         {"format": "aula-tenant-export", "format_version": 1, "schema_version": …,
//!                        "exported_at": "…", "tenant": {id, slug, name, status, settings},
//!                        "tables": [{"name": "orgs", "rows": 12}, …]}
//! tables/<name>.json    a JSON array of row objects, one key per column; values are numbers, strings or null
//! ```
//!
//! Reading is defensive: the compressed size, the unpacked size, each file's size and the number of entries
//! are capped, and every row is checked against the table registry before anything is written, so a damaged
//! or hostile archive is refused with the file and row named.

use super::snapshot::{Snapshot, TableRows, TenantMeta, is_uuid};
use super::tables::{Kind, TABLES, Table, find};
use crate::error::{ApiError, ApiResult};
use crate::tenancy::TenantSettings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;

/// The `format` every archive names.
pub const FORMAT: &str = "aula-tenant-export";
/// The archive layout version this host writes and reads.
pub const FORMAT_VERSION: i64 = 1;
/// The largest archive accepted (compressed).
pub const MAX_ARCHIVE_BYTES: usize = 512 * 1024 * 1024;
/// The most an archive may unpack to, all files together (guards against gzip bombs).
const MAX_UNPACKED_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// The largest single table file.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// The largest manifest.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// The most entries an archive may hold (one per registered table and a manifest, with room to grow).
const MAX_ENTRIES: usize = 1000;

const MANIFEST: &str = "manifest.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    format_version: i64,
    schema_version: i64,
    exported_at: String,
    #[serde(default)]
    aula_version: Option<String>,
    tenant: ManifestTenant,
    tables: Vec<ManifestTable>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestTenant {
    id: String,
    slug: String,
    name: String,
    status: String,
    settings: Value,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestTable {
    name: String,
    rows: u64,
}

/// What an archive holds, checked.
#[derive(Debug)]
pub struct Unpacked {
    /// The tenant and its rows.
    pub snapshot: Snapshot,
    /// The schema version of the host that wrote it.
    pub schema_version: i64,
    /// When it was written (RFC 3339).
    pub exported_at: String,
}

/// Write `snapshot` as an archive.
pub fn write(snapshot: &Snapshot, schema_version: i64, exported_at_ms: i64) -> anyhow::Result<Vec<u8>> {
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        schema_version,
        exported_at: crate::db::rfc3339(exported_at_ms),
        aula_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        tenant: ManifestTenant {
            id: snapshot.tenant.id.clone(),
            slug: snapshot.tenant.slug.clone(),
            name: snapshot.tenant.name.clone(),
            status: snapshot.tenant.status.clone(),
            settings: serde_json::to_value(&snapshot.tenant.settings)?,
        },
        tables: snapshot
            .tables
            .iter()
            .map(|t| ManifestTable {
                name: t.table.name.to_owned(),
                rows: t.rows.len() as u64,
            })
            .collect(),
    };
    let mtime = u64::try_from(exported_at_ms / 1000).unwrap_or(0);
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(encoder);
    append(&mut tar, MANIFEST, &serde_json::to_vec_pretty(&manifest)?, mtime)?;
    for rows in &snapshot.tables {
        append(
            &mut tar,
            &format!("tables/{}.json", rows.table.name),
            &table_json(rows)?,
            mtime,
        )?;
    }
    Ok(tar.into_inner()?.finish()?)
}

/// A table file: one row object per line, so a diff of two exports reads row by row.
fn table_json(rows: &TableRows) -> anyhow::Result<Vec<u8>> {
    let mut out = b"[".to_vec();
    for (i, row) in rows.rows.iter().enumerate() {
        let object: Map<String, Value> = rows
            .table
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.to_owned(), v.clone()))
            .collect();
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        serde_json::to_writer(&mut out, &object)?;
    }
    out.extend_from_slice(b"\n]\n");
    Ok(out)
}

fn append<W: std::io::Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8], mtime: u64) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    tar.append_data(&mut header, path, data)
}

fn invalid(place: &str, message: impl Into<String>) -> ApiError {
    ApiError::rule("invalid_archive", Some(place), message)
}

/// Read and check an archive. Nothing is written here; the snapshot is ready for restore.
pub fn read(bytes: &[u8]) -> ApiResult<Unpacked> {
    if bytes.len() > MAX_ARCHIVE_BYTES {
        return Err(ApiError::TooLarge);
    }
    if bytes.is_empty() {
        return Err(ApiError::rule("invalid_archive", None, "the archive is empty"));
    }
    let files = unpack(bytes)?;
    let manifest_bytes = files
        .get(MANIFEST)
        .ok_or_else(|| invalid(MANIFEST, "the archive has no manifest.json; is it an Aula export?"))?;
    let manifest = parse_manifest(manifest_bytes)?;
    let settings: TenantSettings = serde_json::from_value(manifest.tenant.settings.clone())
        .map_err(|e| invalid("manifest.json.tenant.settings", e.to_string()))?;
    settings
        .validate()
        .map_err(|e| invalid("manifest.json.tenant.settings", e.to_string()))?;
    if !["active", "suspended"].contains(&manifest.tenant.status.as_str()) {
        return Err(invalid("manifest.json.tenant.status", "must be active or suspended"));
    }
    if !is_uuid(&manifest.tenant.id) {
        return Err(invalid("manifest.json.tenant.id", "must be a UUID"));
    }

    let mut listed: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, t) in manifest.tables.iter().enumerate() {
        let place = format!("manifest.json.tables[{i}]");
        let table =
            find(&t.name).ok_or_else(|| invalid(&place, format!("{} is not a table this host knows", t.name)))?;
        if !table.export {
            return Err(invalid(
                &place,
                format!("{} is never exported (it holds credentials)", t.name),
            ));
        }
        if listed.insert(table.name, t.rows).is_some() {
            return Err(invalid(&place, format!("{} is listed twice", t.name)));
        }
    }
    for name in files.keys() {
        if name == MANIFEST {
            continue;
        }
        let known = name
            .strip_prefix("tables/")
            .and_then(|n| n.strip_suffix(".json"))
            .is_some_and(|n| listed.contains_key(n));
        if !known {
            return Err(invalid(
                name,
                "is not listed in manifest.json; an archive holds only the files it lists",
            ));
        }
    }

    let mut tables = Vec::new();
    // Registry order, so parents are restored before their children whatever order the archive lists them.
    for table in TABLES.iter().filter(|t| t.export) {
        // A table the archive does not list was added after it was written: it is simply empty.
        let Some(&expected) = listed.get(table.name) else {
            continue;
        };
        let file = format!("tables/{}.json", table.name);
        let bytes = files
            .get(&file)
            .ok_or_else(|| invalid(&file, "is listed in manifest.json but missing"))?;
        let rows = parse_rows(table, &file, bytes, &manifest.tenant.id)?;
        if table.name == "tenant_domains" {
            // A domain decides which requests reach the academy: hold it to the same rule as one typed in.
            for (i, row) in rows.iter().enumerate() {
                if !row
                    .first()
                    .and_then(Value::as_str)
                    .is_some_and(crate::tenancy::valid_domain)
                {
                    return Err(invalid(
                        &format!("{file}[{i}].domain"),
                        "must be a host name such as learn.example.com",
                    ));
                }
            }
        }
        if rows.len() as u64 != expected {
            return Err(invalid(
                &file,
                format!(
                    "holds {} rows but manifest.json says {expected}; the archive is incomplete",
                    rows.len()
                ),
            ));
        }
        tables.push(TableRows { table, rows });
    }
    let tenant = TenantMeta {
        id: manifest.tenant.id,
        slug: manifest.tenant.slug,
        name: manifest.tenant.name,
        status: manifest.tenant.status,
        settings,
    };
    Ok(Unpacked {
        snapshot: Snapshot { tenant, tables },
        schema_version: manifest.schema_version,
        exported_at: manifest.exported_at,
    })
}

fn parse_manifest(bytes: &[u8]) -> ApiResult<Manifest> {
    // Check the format before the shape, so a future version is named as such rather than as unknown fields.
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(MANIFEST, format!("is not valid JSON: {e}")))?;
    if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(invalid(
            "manifest.json.format",
            format!("must be {FORMAT:?}; this is not an Aula tenant export"),
        ));
    }
    match value.get("format_version").and_then(Value::as_i64) {
        Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(ApiError::rule(
                "unsupported_archive",
                Some("manifest.json.format_version"),
                format!("this host reads format version {FORMAT_VERSION}; the archive has version {v}"),
            ));
        }
        None => return Err(invalid("manifest.json.format_version", "must be a number")),
    }
    serde_json::from_value(value).map_err(|e| invalid(MANIFEST, e.to_string()))
}

/// Check every row of a table file and turn it into values in column order.
fn parse_rows(table: &Table, file: &str, bytes: &[u8], tenant_id: &str) -> ApiResult<Vec<Vec<Value>>> {
    let objects: Vec<Map<String, Value>> = serde_json::from_slice(bytes)
        .map_err(|e| invalid(file, format!("must be a JSON array of row objects: {e}")))?;
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut rows = Vec::with_capacity(objects.len());
    for (index, mut object) in objects.into_iter().enumerate() {
        let place = |column: &str| format!("{file}[{index}].{column}");
        let mut row = Vec::with_capacity(table.columns.len());
        for column in table.columns {
            let value = object
                .remove(column.name)
                .ok_or_else(|| invalid(&format!("{file}[{index}]"), format!("has no {} column", column.name)))?;
            let ok = match (column.kind, &value) {
                (Kind::Tenant, Value::String(s)) => s == tenant_id,
                (Kind::Tenant, _) => false,
                (Kind::Id, Value::String(s)) => is_uuid(s),
                (Kind::Id, _) => false,
                (Kind::Ref | Kind::Text | Kind::Secret | Kind::Withheld, Value::String(_) | Value::Null) => true,
                (Kind::Int, Value::Null) => true,
                (Kind::Int, v) => v.is_i64(),
                (Kind::Real, Value::Null | Value::Number(_)) => true,
                (Kind::Bytes, Value::String(s)) => super::snapshot::decode_bytes(s).is_some(),
                _ => false,
            };
            if !ok {
                let expected = match column.kind {
                    Kind::Tenant => "the archive's tenant id (manifest.json tenant.id)",
                    Kind::Id => "a UUID",
                    Kind::Ref | Kind::Text | Kind::Secret | Kind::Withheld => "a string or null",
                    Kind::Int => "an integer or null",
                    Kind::Real => "a number or null",
                    Kind::Bytes => "base64 text",
                };
                return Err(invalid(&place(column.name), format!("must be {expected}")));
            }
            // Values the host interprets as structure must parse now, not fail open later: a segment
            // definition decides what segment-scoped grants reach, a role's permissions what it allows.
            if let Value::String(text) = &value {
                let structural = match (table.name, column.name) {
                    ("segments", "definition") => {
                        serde_json::from_str::<crate::scope::segment::SegmentDef>(text).is_err()
                    }
                    ("roles", "permissions") => serde_json::from_str::<Vec<String>>(text)
                        .map(|names| names.iter().any(|n| crate::scope::Permission::parse(n).is_none()))
                        .unwrap_or(true),
                    _ => false,
                };
                if structural {
                    return Err(invalid(&place(column.name), "is not a valid value for this column"));
                }
            }
            // A component travels with its content hash; the host finds compiled code by that hash, so the
            // two must agree.
            if (table.name, column.name) == ("plugin_blobs", "bytes") {
                let bytes = super::snapshot::decode_bytes(value.as_str().unwrap_or_default()).unwrap_or_default();
                let claimed = row.first().and_then(Value::as_str).unwrap_or_default();
                if crate::plugins::engine::content_hash(&bytes) != claimed {
                    return Err(invalid(&place("hash"), "is not the SHA-256 of the row's bytes"));
                }
            }
            if column.kind == Kind::Id {
                let id = value.as_str().unwrap_or_default().to_ascii_lowercase();
                if !seen_ids.insert(id) {
                    return Err(invalid(&place(column.name), "repeats the id of an earlier row"));
                }
            }
            row.push(value);
        }
        if let Some(extra) = object.keys().next() {
            return Err(invalid(&place(extra), format!("is not a column of {}", table.name)));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Unpack the files of a `tar.gz` into memory, within the caps.
fn unpack(bytes: &[u8]) -> ApiResult<BTreeMap<String, Vec<u8>>> {
    let damaged = |e: std::io::Error| {
        ApiError::rule(
            "invalid_archive",
            None,
            format!("the archive is not a readable tar.gz: {e}"),
        )
    };
    let decoder = Capped {
        inner: flate2::read::GzDecoder::new(bytes),
        left: MAX_UNPACKED_BYTES,
    };
    let mut tar = tar::Archive::new(decoder);
    let mut files = BTreeMap::new();
    for (n, entry) in tar.entries().map_err(damaged)?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(ApiError::rule(
                "invalid_archive",
                None,
                format!("the archive holds more than {MAX_ENTRIES} files"),
            ));
        }
        let entry = entry.map_err(damaged)?;
        let path = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => {
                return Err(invalid(
                    &path,
                    "is not a regular file; an archive holds only JSON files",
                ));
            }
        }
        let cap = if path == MANIFEST {
            MAX_MANIFEST_BYTES
        } else {
            MAX_FILE_BYTES
        };
        if entry.size() > cap {
            return Err(invalid(&path, format!("is larger than {} MiB", cap / (1024 * 1024))));
        }
        let mut data = Vec::new();
        entry.take(cap + 1).read_to_end(&mut data).map_err(damaged)?;
        if data.len() as u64 > cap {
            return Err(invalid(&path, format!("is larger than {} MiB", cap / (1024 * 1024))));
        }
        if files.insert(path.clone(), data).is_some() {
            return Err(invalid(&path, "appears twice in the archive"));
        }
    }
    Ok(files)
}

/// A reader that fails once it has produced `left` bytes: the unpacked size is capped whatever the headers say.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One more byte may be available; if so, the archive is over the cap.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "it unpacks to more than {} MiB",
                    MAX_UNPACKED_BYTES / (1024 * 1024)
                ))),
            };
        }
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(encoder);
        for (path, data) in files {
            append(&mut tar, path, data, 0).expect("append");
        }
        tar.into_inner().expect("tar").finish().expect("gzip")
    }

    fn manifest(extra_tables: &str) -> String {
        format!(
            r#"{{"format":"aula-tenant-export","format_version":1,"schema_version":1,"exported_at":"2026-01-01T00:00:00Z",
            "tenant":{{"id":"0190a0a0-0000-7000-8000-000000000001","slug":"a","name":"A","status":"active","settings":{{}}}},
            "tables":[{extra_tables}]}}"#
        )
    }

    fn field(err: ApiError) -> (String, String) {
        match err {
            ApiError::Unprocessable { field, message, .. } => (field.unwrap_or_default(), message),
            other => (String::new(), other.to_string()),
        }
    }

    #[test]
    fn not_an_archive_is_refused() {
        let (_, message) = field(read(b"hello").unwrap_err());
        assert!(message.contains("tar.gz"), "{message}");
    }

    #[test]
    fn unknown_format_version_is_refused() {
        let m = manifest("").replace("\"format_version\":1", "\"format_version\":7");
        let err = read(&archive(&[(MANIFEST, m.as_bytes())])).unwrap_err();
        assert!(
            matches!(
                &err,
                ApiError::Unprocessable {
                    code: "unsupported_archive",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn bad_row_is_named() {
        let m = manifest(r#"{"name":"tags","rows":1}"#);
        let tags = br#"[{"id":"not-a-uuid","tenant_id":"0190a0a0-0000-7000-8000-000000000001","name":"x","description":null,"created_at":1}]"#;
        let (place, message) =
            field(read(&archive(&[(MANIFEST, m.as_bytes()), ("tables/tags.json", tags)])).unwrap_err());
        assert_eq!(place, "tables/tags.json[0].id");
        assert!(message.contains("UUID"), "{message}");
    }

    #[test]
    fn credentials_and_unlisted_files_are_refused() {
        let m = manifest(r#"{"name":"sessions","rows":0}"#);
        let (place, _) =
            field(read(&archive(&[(MANIFEST, m.as_bytes()), ("tables/sessions.json", b"[]")])).unwrap_err());
        assert_eq!(place, "manifest.json.tables[0]");
        let m = manifest("");
        let (place, _) = field(read(&archive(&[(MANIFEST, m.as_bytes()), ("tables/orgs.json", b"[]")])).unwrap_err());
        assert_eq!(place, "tables/orgs.json");
    }

    #[test]
    fn row_counts_must_match_the_manifest() {
        let m = manifest(r#"{"name":"tags","rows":2}"#);
        let (place, message) =
            field(read(&archive(&[(MANIFEST, m.as_bytes()), ("tables/tags.json", b"[]")])).unwrap_err());
        assert_eq!(place, "tables/tags.json");
        assert!(message.contains("manifest"), "{message}");
    }
}
