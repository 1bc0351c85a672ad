//! SCIM Groups: every organization of the academy, with its direct members. A client may create
//! organizations (top-level), rename them, set their members, and delete the ones it created; people taken
//! out of a group stay in the academy.

use super::filter::{Comparison, Op};
use super::{Client, GROUP, MAX_KEPT_BYTES, ScimError, Window, get, text_of, version_of, with_meta};
use crate::audit::{Change, record};
use crate::db::{TenantTx, now_ms};
use crate::directory::orgs::{self, NewOrg, OrgPatch};
use crate::learning::automation::{self, Context, Event, Pending};
use crate::scope::Permission;
use serde_json::{Map, Value, json};
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};

/// Attributes a client may not write.
pub const READ_ONLY: &[&str] = &["id", "meta"];
/// Attributes held in Aula's own columns and tables.
const OWN: &[&str] = &["schemas", "id", "meta", "displayName", "externalId", "members"];

const SELECT: &str = "SELECT o.id, o.name, o.external_id, o.created_at, o.updated_at, g.attributes, g.updated_at AS scim_updated_at \
     FROM orgs o LEFT JOIN scim_groups g ON g.tenant_id = o.tenant_id AND g.org_id = o.id";

struct Org {
    id: String,
    name: String,
    external_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    kept: Map<String, Value>,
}

impl Org {
    fn read(row: &sqlx::any::AnyRow) -> Result<Org, sqlx::Error> {
        let kept: Option<String> = row.try_get("attributes")?;
        let scim_updated: Option<i64> = row.try_get("scim_updated_at")?;
        let updated: i64 = row.try_get("updated_at")?;
        Ok(Org {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            external_id: row.try_get("external_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: updated.max(scim_updated.unwrap_or(0)),
            kept: kept.and_then(|k| serde_json::from_str(&k).ok()).unwrap_or_default(),
        })
    }

    fn render(&self, members: Option<&[(String, String)]>, base: &str) -> Value {
        let mut obj = self.kept.clone();
        obj.insert("schemas".into(), json!([GROUP]));
        obj.insert("id".into(), json!(self.id));
        obj.insert("displayName".into(), json!(self.name));
        if let Some(x) = &self.external_id {
            obj.insert("externalId".into(), json!(x));
        }
        if let Some(members) = members.filter(|m| !m.is_empty()) {
            let members: Vec<Value> = members
                .iter()
                .map(|(id, _)| json!({"value": id, "$ref": format!("{base}/Users/{id}"), "type": "User"}))
                .collect();
            obj.insert("members".into(), Value::Array(members));
        }
        with_meta(
            Value::Object(obj),
            "Group",
            (self.created_at, self.updated_at),
            format!("{base}/Groups/{}", self.id),
        )
    }
}

/// The direct members of these organizations that SCIM sees: `(user id, name)` by organization.
async fn members_of(tx: &mut TenantTx, ids: &[&str]) -> Result<HashMap<String, Vec<(String, String)>>, sqlx::Error> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT m.org_id, u.id, u.name FROM memberships m JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id \
         LEFT JOIN scim_users s ON s.tenant_id = u.tenant_id AND s.user_id = u.id \
         WHERE m.tenant_id = $1 AND s.removed_at IS NULL AND m.org_id IN ({}) ORDER BY u.id",
        marks.join(", ")
    );
    let mut q = tx.query(&sql);
    for id in ids {
        q = q.bind(id.to_string());
    }
    for row in q.fetch_all(tx.conn()).await? {
        out.entry(row.try_get("org_id")?)
            .or_default()
            .push((row.try_get("id")?, row.try_get("name")?));
    }
    Ok(out)
}

/// One group as SCIM shows it (without its members when `members` is false); `None` when there is none.
pub async fn load(tx: &mut TenantTx, base: &str, id: &str, members: bool) -> Result<Option<Value>, sqlx::Error> {
    let Some(row) = tx
        .query(&format!("{SELECT} WHERE o.tenant_id = $1 AND o.id = $2"))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
    else {
        return Ok(None);
    };
    let org = Org::read(&row)?;
    let all = if members {
        members_of(tx, &[id]).await?
    } else {
        HashMap::new()
    };
    Ok(Some(org.render(
        members.then(|| all.get(id).map_or(&[][..], Vec::as_slice)),
        base,
    )))
}

/// A page of the groups that match `filter`, and how many match.
pub async fn list(
    tx: &mut TenantTx,
    base: &str,
    filter: &[Comparison],
    window: Window,
    members: bool,
) -> Result<(i64, Vec<Value>), ScimError> {
    let mut clauses = vec!["o.tenant_id = $1".to_owned()];
    let mut binds: Vec<String> = Vec::new();
    for c in filter {
        let attribute = c.attribute.to_ascii_lowercase();
        let attribute = attribute
            .strip_prefix(&format!("{}:", GROUP.to_ascii_lowercase()))
            .unwrap_or(&attribute);
        let column = match attribute {
            "displayname" => "lower(o.name)",
            "externalid" => "o.external_id",
            "id" => "o.id",
            _ => {
                return Err(ScimError::invalid_filter(format!(
                    "{}: Aula filters groups on displayName, externalId and id",
                    c.attribute
                )));
            }
        };
        let (Op::Eq, Value::String(value)) = (c.op, &c.value) else {
            return Err(ScimError::invalid_filter(format!(
                "{}: Aula compares with eq and a string",
                c.attribute
            )));
        };
        binds.push(if column.starts_with("lower(") {
            value.to_lowercase()
        } else {
            value.clone()
        });
        clauses.push(format!("{column} = ${}", binds.len() + 1));
    }
    let filter_sql = clauses.join(" AND ");
    let mut q_count = String::from("SELECT count(*) FROM orgs o WHERE ");
    q_count.push_str(&filter_sql);
    let mut q = tx.query(&q_count);
    for b in &binds {
        q = q.bind(b.clone());
    }
    let total: i64 = q.fetch_one(tx.conn()).await?.try_get(0)?;
    if window.count == 0 {
        return Ok((total, Vec::new()));
    }
    let sql = format!(
        "{SELECT} WHERE {filter_sql} ORDER BY o.id LIMIT {} OFFSET {}",
        window.count,
        window.start_index - 1
    );
    let mut q = tx.query(&sql);
    for b in &binds {
        q = q.bind(b.clone());
    }
    let rows: Vec<Org> = q
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(Org::read)
        .collect::<Result<_, _>>()?;
    let ids: Vec<&str> = rows.iter().map(|o| o.id.as_str()).collect();
    let all = if members {
        members_of(tx, &ids).await?
    } else {
        HashMap::new()
    };
    let groups = rows
        .iter()
        .map(|o| o.render(members.then(|| all.get(&o.id).map_or(&[][..], Vec::as_slice)), base))
        .collect();
    Ok((total, groups))
}

/// What a Group resource says, checked.
struct Input {
    name: String,
    external_id: Option<String>,
    members: BTreeSet<String>,
    kept: Map<String, Value>,
}

impl Input {
    fn read(resource: &Value) -> Result<Input, ScimError> {
        let obj = resource
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a Group is a JSON object"))?;
        if let Some(schemas) = get(obj, "schemas") {
            let ok = schemas.as_array().is_some_and(|s| {
                s.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(GROUP)))
            });
            if !ok {
                return Err(ScimError::invalid_value(format!("schemas must list {GROUP}")));
            }
        }
        let name = text_of(obj, "displayName")?.ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
        let name = crate::fields::text("displayName", &name, 200)?;
        let external_id = crate::fields::opt_text("externalId", text_of(obj, "externalId")?.as_deref(), 200)?;
        let mut members = BTreeSet::new();
        match get(obj, "members") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (i, m) in list.iter().enumerate() {
                    let m = m
                        .as_object()
                        .ok_or_else(|| ScimError::invalid_value(format!("members[{i}] must be an object")))?;
                    if let Some(kind) = text_of(m, "type")?
                        && !kind.eq_ignore_ascii_case("User")
                    {
                        return Err(ScimError::invalid_value(format!(
                            "members[{i}].type: groups hold people only; organizations nest through Aula's API"
                        )));
                    }
                    let id = text_of(m, "value")?
                        .ok_or_else(|| ScimError::invalid_value(format!("members[{i}].value is required")))?;
                    members.insert(id);
                }
            }
            Some(_) => return Err(ScimError::invalid_value("members must be a list")),
        }
        let mut kept = obj.clone();
        kept.retain(|k, _| !OWN.iter().any(|o| o.eq_ignore_ascii_case(k)));
        let size = Value::Object(kept.clone()).to_string().len();
        if size > MAX_KEPT_BYTES {
            return Err(ScimError::invalid_value(format!(
                "the attributes beyond displayName, externalId and members take {size} bytes; at most {MAX_KEPT_BYTES} are kept"
            )));
        }
        Ok(Input {
            name,
            external_id,
            members,
            kept,
        })
    }
}

/// The group as SCIM now shows it, and the plugins' part of the academy's rules for the people whose
/// organizations changed.
pub struct Written {
    pub group: Value,
    pub pending: Pending,
}

fn require(client: &Client) -> Result<(), ScimError> {
    client.require(Permission::OrgsWrite)?;
    client.require(Permission::MembersWrite)
}

async fn keep(tx: &mut TenantTx, id: &str, input: &Input, provisioned: bool) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO scim_groups (tenant_id, org_id, attributes, provisioned, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (tenant_id, org_id) DO UPDATE SET attributes = excluded.attributes, updated_at = excluded.updated_at",
    )
    .bind(id.to_owned())
    .bind(Value::Object(input.kept.clone()).to_string())
    .bind(i64::from(provisioned))
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Make the organization's direct members exactly `wanted` (people SCIM sees); answers who joined and who left.
async fn set_members(
    tx: &mut TenantTx,
    org_id: &str,
    wanted: &BTreeSet<String>,
) -> Result<(Vec<String>, Vec<String>), ScimError> {
    let org = orgs::find(tx, org_id)
        .await?
        .ok_or_else(|| ScimError::not_found("group not found"))?;
    let have: BTreeSet<String> = members_of(tx, &[org_id])
        .await?
        .remove(org_id)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut joined = Vec::new();
    for id in wanted.difference(&have) {
        let known: Option<String> = tx
            .query(
                "SELECT u.id FROM users u LEFT JOIN scim_users s ON s.tenant_id = u.tenant_id AND s.user_id = u.id \
                 WHERE u.tenant_id = $1 AND u.id = $2 AND s.removed_at IS NULL",
            )
            .bind(id.clone())
            .fetch_optional(tx.conn())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if known.is_none() {
            return Err(ScimError::invalid_value(format!(
                "members: {id:?} is no user of this academy"
            )));
        }
        if orgs::add_member(tx, &org, id).await? {
            joined.push(id.clone());
        }
    }
    let mut left = Vec::new();
    for id in have.difference(wanted) {
        orgs::remove_member(tx, org_id, id).await?;
        left.push(id.clone());
    }
    Ok((joined, left))
}

fn invalid_request(e: serde_json::Error) -> ScimError {
    ScimError::invalid_value(e.to_string())
}

/// Create a top-level organization from a Group resource, with its members.
pub async fn create(client: &Client, resource: &Value) -> Result<Written, ScimError> {
    require(client)?;
    let input = Input::read(resource)?;
    let mut tx = client.db.begin().await?;
    let new: NewOrg = serde_json::from_value(json!({"name": input.name, "external_id": input.external_id}))
        .map_err(invalid_request)?;
    let org = orgs::create(&mut tx, &client.grants.reach(Permission::OrgsWrite), &new).await?;
    keep(&mut tx, &org.id, &input, true).await?;
    let (joined, _) = set_members(&mut tx, &org.id, &input.members).await?;
    let group = load(&mut tx, &client.base, &org.id, true)
        .await?
        .ok_or_else(|| ScimError::not_found("group not found"))?;
    record(
        &mut tx,
        &client.actor,
        Change::created(
            "org.create",
            "org",
            &org.id,
            json!({"via": "scim", "name": input.name, "members": joined}),
        ),
    )
    .await?;
    let events = joined.iter().map(|u| Event::changed(u)).collect();
    let pending = automation::run_rules(&mut tx, events, Context::academy(client.actor.clone())).await?;
    tx.commit().await?;
    Ok(Written { group, pending })
}

/// Replace what a Group resource says about organization `id` (PUT, and PATCH once applied).
pub async fn replace(
    client: &Client,
    tx: &mut TenantTx,
    id: &str,
    current: &Value,
    resource: &Value,
) -> Result<Written, ScimError> {
    require(client)?;
    let input = Input::read(resource)?;
    let mut patch = Map::new();
    if current["displayName"].as_str() != Some(input.name.as_str()) {
        patch.insert("name".into(), json!(input.name));
    }
    if current["externalId"].as_str() != input.external_id.as_deref() {
        patch.insert("external_id".into(), json!(input.external_id));
    }
    if !patch.is_empty() {
        let change: OrgPatch = serde_json::from_value(Value::Object(patch)).map_err(invalid_request)?;
        orgs::update(tx, &client.grants.reach(Permission::OrgsWrite), id, &change).await?;
    }
    keep(tx, id, &input, false).await?;
    let (joined, left) = set_members(tx, id, &input.members).await?;
    let group = load(tx, &client.base, id, true)
        .await?
        .ok_or_else(|| ScimError::not_found("group not found"))?;
    let changed = version_of(&group) != version_of(current);
    if changed {
        let mut before = current.clone();
        let mut after = group.clone();
        for v in [&mut before, &mut after] {
            if let Some(o) = v.as_object_mut() {
                o.remove("meta");
                o.remove("members");
            }
        }
        record(
            tx,
            &client.actor,
            Change::updated(
                "org.update",
                "org",
                id,
                before,
                json!({"via": "scim", "group": after, "joined": joined, "left": left}),
            ),
        )
        .await?;
    }
    let events = joined.iter().chain(&left).map(|u| Event::changed(u)).collect();
    let pending = automation::run_rules(tx, events, Context::academy(client.actor.clone())).await?;
    Ok(Written { group, pending })
}

/// Delete an organization the client created: its people leave it and stay in the academy. An
/// organization made in Aula, or one with sub-organizations, is refused.
pub async fn delete(client: &Client, tx: &mut TenantTx, id: &str) -> Result<Pending, ScimError> {
    require(client)?;
    let provisioned: Option<i64> = tx
        .query("SELECT provisioned FROM scim_groups WHERE tenant_id = $1 AND org_id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if provisioned != Some(1) {
        return Err(ScimError::forbidden(
            "this organization was made in Aula, not by this SCIM client; an academy admin deletes it in Aula",
        ));
    }
    let (_, left) = set_members(tx, id, &BTreeSet::new()).await?;
    let before = orgs::delete(tx, &client.grants.reach(Permission::OrgsWrite), id, false).await?;
    record(
        tx,
        &client.actor,
        Change::deleted(
            "org.delete",
            "org",
            id,
            json!({"via": "scim", "org": before, "left": left}),
        ),
    )
    .await?;
    let events = left.iter().map(|u| Event::changed(u)).collect();
    Ok(automation::run_rules(tx, events, Context::academy(client.actor.clone())).await?)
}
