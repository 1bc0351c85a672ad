//! Reading users, organizations and courses as plugins see them (generated `types`), shared by the host
//! interfaces and by the enrollment hook, which hands plugins the users an event is about.

use crate::db::{Sql, TenantTx};
use crate::plugins::bindings::types;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

pub(crate) use crate::directory::profile::field_types;

/// Users as plugins see them, from rows of `users u` (with their organizations and tags).
pub(crate) async fn load_users(
    tx: &mut TenantTx,
    rows: Vec<AnyRow>,
    field_types: &HashMap<String, String>,
) -> Result<Vec<types::User>, sqlx::Error> {
    let mut users = Vec::with_capacity(rows.len());
    for row in &rows {
        let profile: String = row.try_get("profile")?;
        let status: String = row.try_get("status")?;
        users.push(types::User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            locale: row.try_get("locale")?,
            status: match status.as_str() {
                "pending" => types::UserStatus::Pending,
                "suspended" => types::UserStatus::Suspended,
                "terminated" => types::UserStatus::Terminated,
                _ => types::UserStatus::Active,
            },
            external_id: row.try_get("external_id")?,
            manager_id: row.try_get("manager_id")?,
            org_ids: Vec::new(),
            tags: Vec::new(),
            profile: profile_fields(&profile, field_types),
        });
    }
    if users.is_empty() {
        return Ok(users);
    }
    let index: HashMap<String, usize> = users.iter().enumerate().map(|(i, u)| (u.id.clone(), i)).collect();
    let mut sql = Sql::tenant("SELECT user_id, org_id FROM memberships WHERE tenant_id = $1 AND user_id IN (");
    sql.push_list(users.iter().map(|u| u.id.as_str()));
    sql.push(") ORDER BY user_id, org_id");
    for row in tx.fetch_all_sql(&sql).await? {
        let user: String = row.try_get(0)?;
        if let Some(&i) = index.get(&user) {
            users[i].org_ids.push(row.try_get(1)?);
        }
    }
    let mut sql = Sql::tenant(
        "SELECT ut.user_id, t.name FROM user_tags ut JOIN tags t ON t.id = ut.tag_id \
         WHERE ut.tenant_id = $1 AND ut.user_id IN (",
    );
    sql.push_list(users.iter().map(|u| u.id.as_str()));
    sql.push(") ORDER BY ut.user_id, t.name");
    for row in tx.fetch_all_sql(&sql).await? {
        let user: String = row.try_get(0)?;
        if let Some(&i) = index.get(&user) {
            users[i].tags.push(row.try_get(1)?);
        }
    }
    Ok(users)
}

fn profile_fields(profile: &str, field_types: &HashMap<String, String>) -> Vec<types::ProfileField> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(profile) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(key, value)| {
            let value = match (field_types.get(&key).map(String::as_str), value) {
                (_, Value::Number(n)) => types::FieldValue::Number(n.as_f64()?),
                (Some("date"), Value::String(s)) => types::FieldValue::Date(s),
                (Some("choice"), Value::String(s)) => types::FieldValue::Choice(s),
                (_, Value::String(s)) => types::FieldValue::Text(s),
                (_, Value::Bool(b)) => types::FieldValue::Text(b.to_string()),
                _ => return None,
            };
            Some(types::ProfileField { key, value })
        })
        .collect()
}

pub(super) const ORG_SELECT: &str =
    "SELECT o.id, o.parent_id, o.name, o.path, o.external_id, o.member_limit FROM orgs o WHERE o.tenant_id = $1";

pub(super) fn org_from_row(row: &AnyRow) -> Result<types::Org, sqlx::Error> {
    let path: String = row.try_get("path")?;
    let limit: Option<i64> = row.try_get("member_limit")?;
    Ok(types::Org {
        id: row.try_get("id")?,
        parent_id: row.try_get("parent_id")?,
        name: row.try_get("name")?,
        path: path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        external_id: row.try_get("external_id")?,
        member_limit: limit.and_then(|l| u32::try_from(l).ok()),
    })
}

pub(super) fn course_from_row(row: &AnyRow) -> Result<types::Course, sqlx::Error> {
    Ok(types::Course {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        title: row.try_get("title")?,
        language: row.try_get("language")?,
    })
}
