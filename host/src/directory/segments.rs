//! Segments: saved filters over organizations, tags, status and profile fields, evaluated live. The filter
//! language itself is [`SegmentDef`] (beside the scope resolver, since a grant can be scoped to a segment).

use super::{Error, Result};
use crate::db::{Constraints, ResultExt, Sql, TenantTx, Timestamp, new_id, now_ms};
use crate::fields::{opt_text, text};
use crate::scope::segment::SegmentDef;
use crate::scope::{GrantScope, Grants, Permission, Reach};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, Row};

/// A segment.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SegmentOut {
    pub(crate) id: String,
    name: String,
    description: Option<String>,
    definition: SegmentDef,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// A segment as stored.
#[derive(FromRow)]
struct SegmentRow {
    id: String,
    name: String,
    description: Option<String>,
    definition: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<SegmentRow> for SegmentOut {
    fn from(r: SegmentRow) -> SegmentOut {
        SegmentOut {
            id: r.id,
            name: r.name,
            description: r.description,
            definition: SegmentDef::parse_stored(&r.definition),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const SELECT: &str =
    "SELECT id, name, description, definition, created_at, updated_at FROM segments WHERE tenant_id = $1";

/// Names of the segments whose definition uses something, by a test on the definition. Deleting a tag or a
/// profile field that a segment uses would silently change who the segment (and every grant scoped to it)
/// reaches, so such deletions are refused with these names ([`Error::InUse`]).
pub async fn segments_using(tx: &mut TenantTx, uses: impl Fn(&SegmentDef) -> bool) -> Result<Vec<String>, sqlx::Error> {
    let rows = tx
        .query("SELECT name, definition FROM segments WHERE tenant_id = $1 ORDER BY name")
        .fetch_all(tx.conn())
        .await?;
    let mut names = Vec::new();
    for row in rows {
        let def: String = row.try_get("definition")?;
        if uses(&SegmentDef::parse_stored(&def)) {
            names.push(row.try_get("name")?);
        }
    }
    Ok(names)
}

/// A segment's definition, if the segment exists in this academy.
pub async fn load_def(tx: &mut TenantTx, id: &str) -> Result<Option<SegmentDef>, sqlx::Error> {
    let def: Option<String> = tx
        .query("SELECT definition FROM segments WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(def.map(|d| SegmentDef::parse_stored(&d)))
}

/// One segment.
pub async fn find(tx: &mut TenantTx, id: &str) -> Result<SegmentOut> {
    let row = tx
        .query(&format!("{SELECT} AND id = $2"))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(Error::NotFound("segment"))?;
    Ok(SegmentRow::from_row(&row)?.into())
}

/// Segment-scoped readers see only the segments they were granted.
pub fn visible(reach: &Reach, id: &str) -> bool {
    reach.all || reach.segments.iter().any(|(s, _)| s == id)
}

/// The segments `reach` (for `segments.read`) may see, by name.
pub async fn list(tx: &mut TenantTx, reach: &Reach) -> Result<Vec<SegmentOut>> {
    let rows = tx
        .query(&format!("{SELECT} ORDER BY name"))
        .fetch_all(tx.conn())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let segment: SegmentOut = SegmentRow::from_row(row)?.into();
        if visible(reach, &segment.id) {
            out.push(segment);
        }
    }
    Ok(out)
}

/// Check a definition: every referenced org, tag and profile field must exist in this academy.
async fn validate(tx: &mut TenantTx, def: &SegmentDef) -> Result<()> {
    for (i, org) in def.orgs.iter().enumerate() {
        if super::orgs::find(tx, org).await?.is_none() {
            return Err(Error::invalid(
                format!("definition.orgs[{i}]"),
                "no such organization in this academy",
            ));
        }
    }
    for (list, ids) in [
        ("tags_all", &def.tags_all),
        ("tags_any", &def.tags_any),
        ("tags_none", &def.tags_none),
    ] {
        for (i, tag) in ids.iter().enumerate() {
            let found = tx
                .query("SELECT 1 FROM tags WHERE tenant_id = $1 AND id = $2")
                .bind(tag.clone())
                .fetch_optional(tx.conn())
                .await?;
            if found.is_none() {
                return Err(Error::invalid(
                    format!("definition.{list}[{i}]"),
                    "no such tag in this academy",
                ));
            }
        }
    }
    for (i, s) in def.statuses.iter().enumerate() {
        if !["active", "pending", "suspended", "terminated"].contains(&s.as_str()) {
            return Err(Error::invalid(
                format!("definition.statuses[{i}]"),
                "must be a user status",
            ));
        }
    }
    for (i, cond) in def.fields.iter().enumerate() {
        let found = tx
            .query("SELECT 1 FROM profile_fields WHERE tenant_id = $1 AND key = $2")
            .bind(cond.key.clone())
            .fetch_optional(tx.conn())
            .await?;
        if found.is_none() {
            return Err(Error::invalid(
                format!("definition.fields[{i}].key"),
                "no such profile field in this academy",
            ));
        }
    }
    Ok(())
}

const CONSTRAINTS: Constraints<Error> = &[("segments_name", || Error::Duplicate {
    field: "name",
    message: "a segment with this name already exists".into(),
})];

/// A new segment.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSegment {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    #[schemars(length(max = 2000), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    description: Option<String>,
    definition: SegmentDef,
}

/// Create a segment.
pub async fn create(tx: &mut TenantTx, req: &NewSegment) -> Result<SegmentOut> {
    let name = text("name", &req.name, 200)?;
    let description = opt_text("description", req.description.as_deref(), 2000)?;
    validate(tx, &req.definition).await?;
    let id = new_id();
    tx.query(
        "INSERT INTO segments (id, tenant_id, name, description, definition, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, $6, $6)",
    )
    .bind(id.clone())
    .bind(name)
    .bind(description)
    .bind(serde_json::to_string(&req.definition).unwrap_or_default())
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .on_constraint(CONSTRAINTS)?;
    find(tx, &id).await
}

/// A change to a segment; absent fields stay as they are.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentPatch {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    #[schemars(length(max = 2000), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    description: Option<String>,
    definition: Option<SegmentDef>,
}

/// Change a segment for someone holding `grants`. Grants scoped to the segment follow its definition, so
/// whoever changes it must hold, for the whole academy, everything those grants give. Returns it before and
/// after.
pub async fn update(
    tx: &mut TenantTx,
    grants: &Grants,
    id: &str,
    req: &SegmentPatch,
) -> Result<(SegmentOut, SegmentOut)> {
    let before = find(tx, id).await?;
    let name = match &req.name {
        Some(n) => text("name", n, 200)?,
        None => before.name.clone(),
    };
    let description = match &req.description {
        Some(d) => opt_text("description", Some(d), 2000)?,
        None => before.description.clone(),
    };
    let definition = req.definition.clone().unwrap_or_else(|| before.definition.clone());
    if definition.unreadable {
        return Err(Error::invalid(
            "definition",
            "the stored definition cannot be read; send a new one",
        ));
    }
    validate(tx, &definition).await?;
    if definition != before.definition {
        let rows = tx
            .query("SELECT r.permissions FROM grants g JOIN roles r ON r.id = g.role_id WHERE g.tenant_id = $1 AND g.segment_id = $2")
            .bind(id.to_owned())
            .fetch_all(tx.conn())
            .await?;
        let mut granted = Vec::new();
        for row in rows {
            let names: String = row.try_get(0)?;
            let names: Vec<String> = serde_json::from_str(&names).unwrap_or_default();
            granted.extend(names.iter().filter_map(|n| Permission::parse(n)));
        }
        if let Some(missing) = grants.holds_all_over(&granted, &GrantScope::Tenant) {
            return Err(Error::Forbidden(format!(
                "roles granted on this segment hold {}, which you do not hold for the whole academy",
                missing.as_str()
            )));
        }
    }
    tx.query("UPDATE segments SET name = $3, description = $4, definition = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .bind(name)
        .bind(description)
        .bind(serde_json::to_string(&definition).unwrap_or_default())
        .bind(now_ms())
        .execute(tx.conn())
        .await
        .on_constraint(CONSTRAINTS)?;
    let after = find(tx, id).await?;
    Ok((before, after))
}

/// Delete a segment and the grants scoped to it. Returns it as it was.
pub async fn delete(tx: &mut TenantTx, id: &str) -> Result<SegmentOut> {
    let before = find(tx, id).await?;
    for sql in [
        "DELETE FROM grants WHERE tenant_id = $1 AND segment_id = $2",
        "DELETE FROM segments WHERE tenant_id = $1 AND id = $2",
    ] {
        tx.query(sql).bind(id.to_owned()).execute(tx.conn()).await?;
    }
    Ok(before)
}

/// A user a segment matches.
#[derive(Debug, Serialize, schemars::JsonSchema, FromRow)]
pub struct SegmentMember {
    pub(crate) id: String,
    email: String,
    name: String,
    status: String,
}

/// The users a segment matches now, within `users` (the reader's `users.read` reach), by id, up to
/// `limit + 1`.
pub async fn members(
    tx: &mut TenantTx,
    users: &Reach,
    id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<SegmentMember>> {
    let def = load_def(tx, id).await?.ok_or(Error::NotFound("segment"))?;
    let mut sql = Sql::tenant("SELECT u.id, u.email, u.name, u.status FROM users u WHERE u.tenant_id = $1 AND (");
    def.push_condition(&mut sql, tx.backend());
    sql.push(")");
    users.push_user_filter(&mut sql, tx.backend());
    if let Some(c) = after {
        sql.push(" AND u.id > ").push_bind(c);
    }
    sql.push(" ORDER BY u.id LIMIT ").push_bind(limit + 1);
    let rows = tx.fetch_all_sql(&sql).await?;
    Ok(rows
        .iter()
        .map(SegmentMember::from_row)
        .collect::<Result<Vec<_>, _>>()?)
}
