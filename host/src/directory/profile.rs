//! Custom profile fields: each academy defines its own (text, number, date, choice), and every value a
//! user's profile holds is checked against those definitions.

use super::{Error, Result};
use crate::db::TenantTx;
use crate::db::{Flag, JsonText};
use serde_json::{Map, Value};
use sqlx::{FromRow, Row};
use std::collections::HashMap;

/// A profile field's definition, as far as checking a value needs it.
#[derive(FromRow)]
struct FieldDef {
    key: String,
    field_type: String,
    choices: JsonText<Vec<String>>,
    required: Flag,
}

/// Check custom profile values against the tenant's field definitions. `current` is merged under `changes`
/// (a `null` value removes a key).
pub async fn validate(
    tx: &mut TenantTx,
    changes: &Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>> {
    let defs = tx
        .query("SELECT key, field_type, choices, required FROM profile_fields WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await?;
    let mut by_key: HashMap<String, (String, Vec<String>, bool)> = HashMap::new();
    for d in defs {
        let d = FieldDef::from_row(&d)?;
        by_key.insert(d.key, (d.field_type, d.choices.0, d.required.0));
    }
    let mut out = current.cloned().unwrap_or_default();
    for (key, value) in changes {
        let Some((kind, choices, _)) = by_key.get(key) else {
            return Err(Error::UnknownProfileField { key: key.clone() });
        };
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let ok = match kind.as_str() {
            "number" => value.is_number(),
            "date" => value.as_str().is_some_and(|s| {
                time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
            }),
            "choice" => value.as_str().is_some_and(|s| choices.iter().any(|c| c == s)),
            _ => value.as_str().is_some_and(|s| s.chars().count() <= 1000),
        };
        if !ok {
            let expected = match kind.as_str() {
                "number" => "a number".to_owned(),
                "date" => "a date as YYYY-MM-DD".to_owned(),
                "choice" => format!("one of {}", choices.join(", ")),
                _ => "text of at most 1000 characters".to_owned(),
            };
            return Err(Error::invalid(format!("profile.{key}"), format!("must be {expected}")));
        }
        out.insert(key.clone(), value.clone());
    }
    for (key, (_, _, required)) in &by_key {
        if *required && !out.contains_key(key) {
            return Err(Error::invalid(format!("profile.{key}"), "is required"));
        }
    }
    Ok(out)
}

/// The academy's profile fields and their types (`text`, `number`, `date`, `choice`), by key.
pub async fn field_types(tx: &mut TenantTx) -> Result<HashMap<String, String>, sqlx::Error> {
    let rows = tx
        .query("SELECT key, field_type FROM profile_fields WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await?;
    let mut types = HashMap::new();
    for row in rows {
        types.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
    }
    Ok(types)
}
