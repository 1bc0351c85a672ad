//! SCIM Users: every account of the academy, as SCIM shows it, and the writes that create, change,
//! deactivate and deprovision accounts. Deprovisioning suspends; nothing here erases a person.

use super::filter::{Comparison, Op};
use super::{Client, ENTERPRISE, MAX_KEPT_BYTES, ScimError, USER, Window, get, key_of, text_of, version_of, with_meta};
use crate::audit::{Change, record};
use crate::db::{TenantTx, now_ms};
use crate::directory::accounts::{self, NewUser, UserPatch};
use crate::learning::automation::{self, Context, Event, Pending};
use crate::scope::Permission;
use serde_json::{Map, Value, json};
use sqlx::Row;
use std::collections::HashMap;

/// Attributes a client may not write.
pub const READ_ONLY: &[&str] = &["id", "meta", "groups"];
/// Attributes held in Aula's own columns (not kept beside the account).
/// (`active` is also kept, so that a client that removed it does not see it again.)
const OWN: &[&str] = &["schemas", "id", "meta", "groups", "userName", "externalId"];

const SELECT: &str = "SELECT u.id, u.email, u.name, u.locale, u.status, u.external_id, u.created_at, u.updated_at, \
     s.user_name, s.attributes, s.updated_at AS scim_updated_at \
     FROM users u LEFT JOIN scim_users s ON s.tenant_id = u.tenant_id AND s.user_id = u.id";
/// Users a SCIM client sees: all but those it deleted.
const VISIBLE: &str = "u.tenant_id = $1 AND s.removed_at IS NULL";

/// An account as read for SCIM.
struct Account {
    id: String,
    email: String,
    name: String,
    locale: Option<String>,
    status: String,
    external_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    user_name: Option<String>,
    kept: Option<Map<String, Value>>,
}

impl Account {
    fn read(row: &sqlx::any::AnyRow) -> Result<Account, sqlx::Error> {
        let kept: Option<String> = row.try_get("attributes")?;
        let scim_updated: Option<i64> = row.try_get("scim_updated_at")?;
        let updated: i64 = row.try_get("updated_at")?;
        Ok(Account {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            locale: row.try_get("locale")?,
            status: row.try_get("status")?,
            external_id: row.try_get("external_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: updated.max(scim_updated.unwrap_or(0)),
            user_name: row.try_get("user_name")?,
            kept: kept.map(|k| serde_json::from_str(&k).unwrap_or_default()),
        })
    }

    /// The account as a SCIM User: what the client wrote, with Aula's own columns laid over it (they win,
    /// whoever changed them last).
    fn render(&self, groups: &[(String, String)], base: &str) -> Value {
        let mut obj = self.kept.clone().unwrap_or_default();
        let linked = self.kept.is_some();
        obj.insert("id".into(), json!(self.id));
        obj.insert(
            "userName".into(),
            json!(self.user_name.as_deref().unwrap_or(&self.email)),
        );
        if let Some(x) = &self.external_id {
            obj.insert("externalId".into(), json!(x));
        }
        if linked {
            // The account's status is Aula's: shown where the client keeps the flag.
            if let Some(k) = key_of(&obj, "active") {
                obj.insert(k, json!(self.status == "active"));
            }
            // The account's address and name are Aula's: show them in the values they came from.
            if let Some(Value::Array(emails)) = key_of(&obj, "emails").and_then(|k| obj.get_mut(&k)) {
                let at = emails
                    .iter()
                    .position(|e| e.get("primary") == Some(&json!(true)))
                    .unwrap_or(0);
                if let Some(Value::Object(e)) = emails.get_mut(at) {
                    let k = key_of(e, "value").unwrap_or_else(|| "value".into());
                    e.insert(k, json!(self.email));
                }
            }
            if let Some(k) = key_of(&obj, "displayName") {
                obj.insert(k, json!(self.name));
            }
        } else {
            obj.insert("active".into(), json!(self.status == "active"));
            obj.insert(
                "emails".into(),
                json!([{"value": self.email, "type": "work", "primary": true}]),
            );
            obj.insert("displayName".into(), json!(self.name));
            if let Some(l) = &self.locale {
                obj.insert("preferredLanguage".into(), json!(l));
            }
        }
        if !groups.is_empty() {
            let groups: Vec<Value> = groups
                .iter()
                .map(|(id, name)| json!({"value": id, "$ref": format!("{base}/Groups/{id}"), "display": name, "type": "direct"}))
                .collect();
            obj.insert("groups".into(), Value::Array(groups));
        }
        let mut schemas = vec![json!(USER)];
        if key_of(&obj, ENTERPRISE).is_some() {
            schemas.push(json!(ENTERPRISE));
        }
        obj.insert("schemas".into(), Value::Array(schemas));
        with_meta(
            Value::Object(obj),
            "User",
            (self.created_at, self.updated_at),
            format!("{base}/Users/{}", self.id),
        )
    }
}

/// The organizations of these accounts: `(org id, name)` by user id.
async fn groups_of(tx: &mut TenantTx, ids: &[&str]) -> Result<HashMap<String, Vec<(String, String)>>, sqlx::Error> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT m.user_id, o.id, o.name FROM memberships m JOIN orgs o ON o.tenant_id = m.tenant_id AND o.id = m.org_id \
         WHERE m.tenant_id = $1 AND m.user_id IN ({}) ORDER BY o.name, o.id",
        marks.join(", ")
    );
    let mut q = tx.query(&sql);
    for id in ids {
        q = q.bind(id.to_string());
    }
    for row in q.fetch_all(tx.conn()).await? {
        out.entry(row.try_get("user_id")?)
            .or_default()
            .push((row.try_get("id")?, row.try_get("name")?));
    }
    Ok(out)
}

/// One user as SCIM shows it; `None` when the academy has no such user (or the client deleted it).
pub async fn load(tx: &mut TenantTx, base: &str, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let Some(row) = tx
        .query(&format!("{SELECT} WHERE {VISIBLE} AND u.id = $2"))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
    else {
        return Ok(None);
    };
    let account = Account::read(&row)?;
    let groups = groups_of(tx, &[id]).await?;
    Ok(Some(
        account.render(groups.get(id).map_or(&[][..], Vec::as_slice), base),
    ))
}

/// A page of the users that match `filter`, and how many match.
pub async fn list(
    tx: &mut TenantTx,
    base: &str,
    filter: &[Comparison],
    window: Window,
) -> Result<(i64, Vec<Value>), ScimError> {
    let mut clauses = vec![VISIBLE.to_owned()];
    let mut binds: Vec<String> = Vec::new();
    for c in filter {
        let attribute = c.attribute.to_ascii_lowercase();
        let attribute = attribute
            .strip_prefix(&format!("{}:", USER.to_ascii_lowercase()))
            .unwrap_or(&attribute);
        let column = match attribute {
            "username" => USER_NAME,
            "externalid" => "u.external_id",
            "id" => "u.id",
            "emails" | "emails.value" => "lower(u.email)",
            "displayname" => "lower(u.name)",
            "active" => {
                match (c.op, &c.value) {
                    (Op::Eq, Value::Bool(true)) => clauses.push("u.status = 'active'".into()),
                    (Op::Eq, Value::Bool(false)) => clauses.push("u.status <> 'active'".into()),
                    _ => return Err(ScimError::invalid_filter("active is compared with eq true or eq false")),
                }
                continue;
            }
            _ => {
                return Err(ScimError::invalid_filter(format!(
                    "{}: Aula filters users on userName, externalId, id, emails.value, displayName and active",
                    c.attribute
                )));
            }
        };
        let Value::String(value) = &c.value else {
            return Err(ScimError::invalid_filter(format!(
                "{} is compared with a string",
                c.attribute
            )));
        };
        if c.op != Op::Eq {
            return Err(ScimError::invalid_filter(format!(
                "{}: Aula compares with eq only",
                c.attribute
            )));
        }
        binds.push(if column.starts_with("lower(") {
            value.to_lowercase()
        } else {
            value.clone()
        });
        let mark = binds.len() + 1;
        clauses.push(if column == USER_NAME {
            holds_user_name(mark)
        } else {
            format!("{column} = ${mark}")
        });
    }
    let filter_sql = clauses.join(" AND ");
    let count_sql = format!(
        "SELECT count(*) FROM users u LEFT JOIN scim_users s ON s.tenant_id = u.tenant_id AND s.user_id = u.id WHERE {filter_sql}"
    );
    let mut q = tx.query(&count_sql);
    for b in &binds {
        q = q.bind(b.clone());
    }
    let total: i64 = q.fetch_one(tx.conn()).await?.try_get(0)?;
    if window.count == 0 {
        return Ok((total, Vec::new()));
    }
    let page_sql = format!(
        "{SELECT} WHERE {filter_sql} ORDER BY u.id LIMIT {} OFFSET {}",
        window.count,
        window.start_index - 1
    );
    let mut q = tx.query(&page_sql);
    for b in &binds {
        q = q.bind(b.clone());
    }
    let accounts: Vec<Account> = q
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(Account::read)
        .collect::<Result<_, _>>()?;
    let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    let groups = groups_of(tx, &ids).await?;
    let users = accounts
        .iter()
        .map(|a| a.render(groups.get(&a.id).map_or(&[][..], Vec::as_slice), base))
        .collect();
    Ok((total, users))
}

/// What a User resource says, checked, in Aula's terms.
struct Input {
    user_name: String,
    email: String,
    name: String,
    /// `None`: the resource does not say (the status stays as it is; a new account is active).
    active: Option<bool>,
    external_id: Option<String>,
    locale: Option<String>,
    manager: Option<String>,
    department: Option<String>,
    employee_number: Option<String>,
    /// Everything but Aula's own columns, kept as written.
    kept: Map<String, Value>,
}

impl Input {
    fn read(resource: &Value) -> Result<Input, ScimError> {
        let obj = resource
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a User is a JSON object"))?;
        if let Some(schemas) = get(obj, "schemas") {
            let ok = schemas.as_array().is_some_and(|s| {
                s.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(USER)))
            });
            if !ok {
                return Err(ScimError::invalid_value(format!("schemas must list {USER}")));
            }
        }
        let user_name = text_of(obj, "userName")?.ok_or_else(|| ScimError::invalid_value("userName is required"))?;
        let user_name = crate::fields::text("userName", &user_name, 254)?;
        let email = match get(obj, "emails") {
            None | Some(Value::Null) => None,
            Some(Value::Array(emails)) => {
                let at = emails
                    .iter()
                    .position(|e| e.get("primary") == Some(&json!(true)))
                    .unwrap_or(0);
                match emails.get(at) {
                    None => None,
                    Some(Value::Object(e)) => match get(e, "value") {
                        Some(Value::String(v)) => Some(crate::fields::email(&format!("emails[{at}].value"), v)?),
                        _ => return Err(ScimError::invalid_value(format!("emails[{at}].value must be a string"))),
                    },
                    Some(_) => return Err(ScimError::invalid_value(format!("emails[{at}] must be an object"))),
                }
            }
            Some(_) => return Err(ScimError::invalid_value("emails must be a list")),
        };
        let email = match email {
            Some(e) => e,
            None => crate::fields::email("userName", &user_name).map_err(|_| {
                ScimError::invalid_value(
                    "emails: an Aula account needs an e-mail address; send emails, or a userName that is one",
                )
            })?,
        };
        let name_part = |key: &str| -> Result<Option<String>, ScimError> {
            match get(obj, "name") {
                Some(Value::Object(n)) => Ok(text_of(n, key)?.filter(|s| !s.trim().is_empty())),
                None | Some(Value::Null) => Ok(None),
                Some(_) => Err(ScimError::invalid_value("name must be an object")),
            }
        };
        let given_family: Vec<String> = [name_part("givenName")?, name_part("familyName")?]
            .into_iter()
            .flatten()
            .collect();
        let name = text_of(obj, "displayName")?
            .filter(|s| !s.trim().is_empty())
            .or(name_part("formatted")?)
            .or((!given_family.is_empty()).then(|| given_family.join(" ")))
            .unwrap_or_else(|| user_name.clone());
        let name = crate::fields::text("displayName", &name, 200)?;
        let active = match get(obj, "active") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            // Some identity providers send the flag as text.
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => return Err(ScimError::invalid_value("active must be true or false")),
        };
        let external_id = crate::fields::opt_text("externalId", text_of(obj, "externalId")?.as_deref(), 200)?;
        let locale = [text_of(obj, "preferredLanguage")?, text_of(obj, "locale")?]
            .into_iter()
            .flatten()
            .map(|l| l.replace('_', "-"))
            .find(|l| crate::tenancy::valid_locale(l));
        let (manager, department, employee_number) = match get(obj, ENTERPRISE) {
            None | Some(Value::Null) => (None, None, None),
            Some(Value::Object(ext)) => {
                let manager = match get(ext, "manager") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(id)) => Some(id.clone()),
                    Some(Value::Object(m)) => text_of(m, "value")?,
                    Some(_) => return Err(ScimError::invalid_value("manager must be an object with a value")),
                };
                (manager, text_of(ext, "department")?, text_of(ext, "employeeNumber")?)
            }
            Some(_) => return Err(ScimError::invalid_value(format!("{ENTERPRISE} must be an object"))),
        };
        let mut kept = obj.clone();
        kept.retain(|k, _| !OWN.iter().any(|o| o.eq_ignore_ascii_case(k)));
        if let Some(active) = active
            && let Some(k) = key_of(&kept, "active")
        {
            kept.insert(k, json!(active));
        }
        let size = Value::Object(kept.clone()).to_string().len();
        if size > MAX_KEPT_BYTES {
            return Err(ScimError::invalid_value(format!(
                "the attributes beyond userName and externalId take {size} bytes; at most {MAX_KEPT_BYTES} are kept"
            )));
        }
        Ok(Input {
            user_name,
            email,
            name,
            active,
            external_id,
            locale,
            manager,
            department,
            employee_number,
            kept,
        })
    }
}

/// The result of a write: the user as SCIM now shows it, and the plugins' part of the academy's rules
/// (for the caller to run once the transaction has committed).
pub struct Written {
    pub user: Value,
    pub pending: Pending,
}

/// What a userName filter compares (see [`holds_user_name`]).
const USER_NAME: &str = "lower(coalesce(s.user_name, u.email))";

/// `u` holds the userName in `$mark` (lower-cased): as its SCIM userName, or as its e-mail address when it has
/// none. Two indexed lookups rather than a scan of the academy's users, since identity providers look every
/// person up this way before they write.
fn holds_user_name(mark: usize) -> String {
    format!(
        "u.id IN (SELECT n.user_id FROM scim_users n WHERE n.tenant_id = $1 AND lower(n.user_name) = ${mark} \
         AND n.removed_at IS NULL \
         UNION SELECT e.id FROM users e WHERE e.tenant_id = $1 AND lower(e.email) = ${mark} \
         AND NOT EXISTS (SELECT 1 FROM scim_users x WHERE x.tenant_id = $1 AND x.user_id = e.id))"
    )
}

/// Is `user_name` free for `id` (another user holds it when it is their userName, or their e-mail address
/// and they have no userName of their own)?
async fn ensure_free(tx: &mut TenantTx, user_name: &str, id: Option<&str>) -> Result<(), ScimError> {
    let holder: Option<String> = tx
        .query(&format!(
            "SELECT u.id {} WHERE {VISIBLE} AND {} AND u.id <> $3",
            &SELECT[SELECT.find(" FROM users").expect("SELECT names users")..],
            holds_user_name(2)
        ))
        .bind(user_name.to_lowercase())
        .bind(id.unwrap_or("").to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match holder {
        Some(_) => Err(ScimError::uniqueness(format!(
            "userName {user_name:?} is taken in this academy"
        ))),
        None => Ok(()),
    }
}

/// The profile fields SCIM fills where the academy defines them: `department`, `employee_number`.
async fn defined_fields(tx: &mut TenantTx) -> Result<Vec<String>, sqlx::Error> {
    tx.query("SELECT key FROM profile_fields WHERE tenant_id = $1 AND key IN ('department', 'employee_number')")
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

async fn keep(tx: &mut TenantTx, id: &str, input: &Input, now: i64) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO scim_users (tenant_id, user_id, user_name, attributes, removed_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, NULL, $5, $5) \
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET user_name = excluded.user_name, attributes = excluded.attributes, \
         removed_at = NULL, updated_at = excluded.updated_at",
    )
    .bind(id.to_owned())
    .bind(input.user_name.clone())
    .bind(Value::Object(input.kept.clone()).to_string())
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

fn invalid_request(e: serde_json::Error) -> ScimError {
    ScimError::invalid_value(e.to_string())
}

/// Create an account from a User resource.
pub async fn create(client: &Client, resource: &Value) -> Result<Written, ScimError> {
    client.require(Permission::UsersWrite)?;
    let input = Input::read(resource)?;
    let mut tx = client.db.begin().await?;
    if let Some(id) = deprovisioned(&mut tx, &input).await? {
        // The client deleted this person once and provisions them again: the same account comes back.
        tx.query("UPDATE scim_users SET removed_at = NULL WHERE tenant_id = $1 AND user_id = $2")
            .bind(id.clone())
            .execute(tx.conn())
            .await?;
        let current = load(&mut tx, &client.base, &id)
            .await?
            .ok_or_else(|| ScimError::not_found("user not found"))?;
        // A new resource is active unless it says otherwise.
        let mut resource = resource.clone();
        if let Some(obj) = resource.as_object_mut()
            && get(obj, "active").is_none()
        {
            obj.insert("active".into(), json!(true));
        }
        let written = replace(client, &mut tx, &id, &current, &resource).await?;
        tx.commit().await?;
        return Ok(written);
    }
    ensure_free(&mut tx, &input.user_name, None).await?;
    let fields = defined_fields(&mut tx).await?;
    let mut profile = Map::new();
    for (key, value) in [
        ("department", &input.department),
        ("employee_number", &input.employee_number),
    ] {
        if let Some(v) = value.as_ref().filter(|_| fields.iter().any(|f| f == key)) {
            profile.insert(key.into(), json!(v));
        }
    }
    let new: NewUser = serde_json::from_value(json!({
        "email": input.email,
        "name": input.name,
        "locale": input.locale,
        "status": if input.active == Some(false) { "suspended" } else { "active" },
        "external_id": input.external_id,
        "manager_id": input.manager,
        "profile": profile,
    }))
    .map_err(invalid_request)?;
    let checked = new.check(&client.grants.reach(Permission::UsersWrite))?;
    let id = accounts::create(&mut tx, &client.grants, &checked, None).await?;
    let now = now_ms();
    keep(&mut tx, &id, &input, now).await?;
    let pending = automation::run_rules(
        &mut tx,
        vec![Event::created(&id)],
        Context::academy(client.actor.clone()),
    )
    .await?;
    let user = load(&mut tx, &client.base, &id)
        .await?
        .ok_or_else(|| ScimError::not_found("user not found"))?;
    record(
        &mut tx,
        &client.actor,
        Change::created(
            "user.create",
            "user",
            &id,
            json!({"via": "scim", "userName": input.user_name, "email": input.email}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Written { user, pending })
}

/// Replace what a User resource says about account `id` (PUT, and PATCH once applied). `current` is the user
/// as SCIM showed it before.
pub async fn replace(
    client: &Client,
    tx: &mut TenantTx,
    id: &str,
    current: &Value,
    resource: &Value,
) -> Result<Written, ScimError> {
    client.require(Permission::UsersWrite)?;
    let input = Input::read(resource)?;
    ensure_free(tx, &input.user_name, Some(id)).await?;
    let row = tx
        .query(
            "SELECT u.email, u.name, u.status, u.locale, u.external_id, u.manager_id, u.profile, s.attributes \
                FROM users u LEFT JOIN scim_users s ON s.tenant_id = u.tenant_id AND s.user_id = u.id \
                WHERE u.tenant_id = $1 AND u.id = $2",
        )
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?;
    let was_kept: Map<String, Value> = row
        .try_get::<Option<String>, _>("attributes")?
        .and_then(|k| serde_json::from_str(&k).ok())
        .unwrap_or_default();
    let had = |key: &str| -> bool {
        get(&was_kept, ENTERPRISE)
            .and_then(Value::as_object)
            .and_then(|e| get(e, key))
            .is_some_and(|v| !v.is_null())
    };
    let mut patch = Map::new();
    let email: String = row.try_get("email")?;
    if email != input.email {
        patch.insert("email".into(), json!(input.email));
    }
    let name: String = row.try_get("name")?;
    if name != input.name {
        patch.insert("name".into(), json!(input.name));
    }
    let status: String = row.try_get("status")?;
    match (input.active, status.as_str()) {
        (None, _) | (Some(true), "active") | (Some(false), "suspended" | "pending" | "terminated") => {}
        (Some(true), _) => {
            patch.insert("status".into(), json!("active"));
        }
        (Some(false), _) => {
            patch.insert("status".into(), json!("suspended"));
        }
    }
    let locale: Option<String> = row.try_get("locale")?;
    if input.locale.is_some() && input.locale != locale {
        patch.insert("locale".into(), json!(input.locale));
    }
    let external_id: Option<String> = row.try_get("external_id")?;
    if input.external_id != external_id {
        patch.insert("external_id".into(), json!(input.external_id));
    }
    let manager: Option<String> = row.try_get("manager_id")?;
    if input.manager.is_some() && input.manager != manager
        || input.manager.is_none() && had("manager") && manager.is_some()
    {
        patch.insert("manager_id".into(), json!(input.manager));
    }
    let fields = defined_fields(tx).await?;
    let profile: Map<String, Value> = serde_json::from_str(&row.try_get::<String, _>("profile")?).unwrap_or_default();
    let mut profile_patch = Map::new();
    for (key, scim_key, value) in [
        ("department", "department", &input.department),
        ("employee_number", "employeeNumber", &input.employee_number),
    ] {
        if !fields.iter().any(|f| f == key) {
            continue;
        }
        match value {
            Some(v) if profile.get(key) != Some(&json!(v)) => {
                profile_patch.insert(key.into(), json!(v));
            }
            None if had(scim_key) && profile.contains_key(key) => {
                profile_patch.insert(key.into(), Value::Null);
            }
            _ => {}
        }
    }
    if !profile_patch.is_empty() {
        patch.insert("profile".into(), Value::Object(profile_patch));
    }
    if !patch.is_empty() {
        let change: UserPatch = serde_json::from_value(Value::Object(patch)).map_err(invalid_request)?;
        accounts::update(tx, &client.grants, &client.admin_id, id, &change, None).await?;
    }
    keep(tx, id, &input, now_ms()).await?;
    let user = load(tx, &client.base, id)
        .await?
        .ok_or_else(|| ScimError::not_found("user not found"))?;
    let changed = version_of(&user) != version_of(current);
    let events = if changed { vec![Event::changed(id)] } else { Vec::new() };
    let pending = automation::run_rules(tx, events, Context::academy(client.actor.clone())).await?;
    if changed {
        record(
            tx,
            &client.actor,
            Change::updated(
                "user.update",
                "user",
                id,
                strip_meta(current),
                json!({"via": "scim", "user": strip_meta(&user)}),
            ),
        )
        .await?;
    }
    Ok(Written { user, pending })
}

/// Deprovision: the account is suspended and hidden from SCIM; nothing is erased. A later POST of the same
/// userName or e-mail address brings the account back.
pub async fn deprovision(client: &Client, tx: &mut TenantTx, id: &str, current: &Value) -> Result<Pending, ScimError> {
    client.require(Permission::UsersWrite)?;
    let status: String = tx
        .query("SELECT status FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if status == "active" {
        let change: UserPatch = serde_json::from_value(json!({"status": "suspended"})).map_err(invalid_request)?;
        accounts::update(tx, &client.grants, &client.admin_id, id, &change, None).await?;
    }
    let now = now_ms();
    let user_name = current["userName"].as_str().unwrap_or_default().to_owned();
    tx.query(
        "INSERT INTO scim_users (tenant_id, user_id, user_name, attributes, removed_at, created_at, updated_at) \
         VALUES ($1, $2, $3, '{}', $4, $4, $4) \
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET removed_at = excluded.removed_at, updated_at = excluded.updated_at",
    )
    .bind(id.to_owned())
    .bind(user_name)
    .bind(now)
    .execute(tx.conn())
    .await?;
    record(
        tx,
        &client.actor,
        Change::updated(
            "user.deprovision",
            "user",
            id,
            json!({"status": status}),
            json!({"status": if status == "active" { "suspended" } else { status.as_str() }, "via": "scim"}),
        ),
    )
    .await?;
    let events = if status == "active" {
        vec![Event::changed(id)]
    } else {
        Vec::new()
    };
    Ok(automation::run_rules(tx, events, Context::academy(client.actor.clone())).await?)
}

/// A deprovisioned account with this userName or e-mail address, which a new POST brings back.
async fn deprovisioned(tx: &mut TenantTx, input: &Input) -> Result<Option<String>, ScimError> {
    Ok(tx
        .query(
            "SELECT u.id FROM users u JOIN scim_users s ON s.tenant_id = u.tenant_id AND s.user_id = u.id \
             WHERE u.tenant_id = $1 AND s.removed_at IS NOT NULL AND (lower(s.user_name) = $2 OR lower(u.email) = $3)",
        )
        .bind(input.user_name.to_lowercase())
        .bind(input.email.clone())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

fn strip_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    v
}
