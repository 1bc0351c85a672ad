//! Custom profile fields each tenant defines (typed: text, number, date, choice).

use super::api::{Api, Op};
use super::common::Path;
use super::common::{Json, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Flag, JsonText, TenantTx, Timestamp, new_id, now_ms, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::scope::Permission;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{FromRow, Row};

pub fn routes(api: &mut Api) {
    api.tag("profile-fields");
    api.op_out::<Vec<FieldOut>>(
        Op::get("/api/v1/profile-fields", "List the academy's profile fields"),
        get(list),
    );
    api.op_io::<NewField, FieldOut>(
        Op::post("/api/v1/profile-fields", "Define a profile field")
            .permission("tenant.manage")
            .status(201),
        post(create),
    );
    api.op_io::<FieldPatch, FieldOut>(
        Op::patch(
            "/api/v1/profile-fields/{id}",
            "Change a profile field's label, choices or requirement",
        )
        .permission("tenant.manage"),
        patch(update),
    );
    api.op(
        Op::delete(
            "/api/v1/profile-fields/{id}",
            "Delete a profile field (values are removed from profiles)",
        )
        .permission("tenant.manage"),
        delete(remove),
    );
}

/// A profile field definition.
#[derive(Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct FieldOut {
    id: String,
    key: String,
    label: String,
    /// `text`, `number`, `date` or `choice`.
    field_type: String,
    choices: JsonText<Vec<String>>,
    #[sqlx(try_from = "Flag")]
    required: bool,
    created_at: Timestamp,
}

async fn find(tx: &mut TenantTx, id: &str) -> ApiResult<FieldOut> {
    let row = tx
        .query("SELECT id, key, label, field_type, choices, required, created_at FROM profile_fields WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "profile field" })?;
    Ok(FieldOut::from_row(&row)?)
}

/// Every signed-in user may see the definitions (their own profile uses them).
async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<FieldOut>>> {
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query("SELECT id, key, label, field_type, choices, required, created_at FROM profile_fields WHERE tenant_id = $1 ORDER BY key")
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(axum::Json(
        rows.iter().map(FieldOut::from_row).collect::<Result<_, _>>()?,
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewField {
    /// Lower-case letters, digits and `_`, starting with a letter.
    #[schemars(length(min = 1, max = 64), regex(pattern = crate::fields::pattern::KEY))]
    key: String,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    label: String,
    #[schemars(extend("enum" = ["text", "number", "date", "choice"]))]
    field_type: String,
    #[serde(default)]
    #[schemars(length(max = 200), inner(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT)))]
    choices: Vec<String>,
    #[serde(default)]
    required: bool,
}

fn check_choices(field_type: &str, choices: &[String]) -> ApiResult<()> {
    if field_type == "choice" {
        if choices.is_empty() || choices.len() > 200 {
            return Err(ApiError::invalid(
                "choices",
                "a choice field needs between 1 and 200 choices",
            ));
        }
        for (i, c) in choices.iter().enumerate() {
            text(&format!("choices[{i}]"), c, 200)?;
        }
    } else if !choices.is_empty() {
        return Err(ApiError::invalid("choices", "only choice fields have choices"));
    }
    Ok(())
}

async fn create(caller: Caller, Json(req): Json<NewField>) -> ApiResult<(StatusCode, axum::Json<FieldOut>)> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let key = text("key", &req.key, 64)?;
    if !key.starts_with(|c: char| c.is_ascii_lowercase())
        || !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(ApiError::invalid(
            "key",
            "use lower-case letters, digits and _, starting with a letter",
        ));
    }
    let label = text("label", &req.label, 200)?;
    if !["text", "number", "date", "choice"].contains(&req.field_type.as_str()) {
        return Err(ApiError::invalid("field_type", "must be text, number, date or choice"));
    }
    check_choices(&req.field_type, &req.choices)?;
    let mut tx = caller.db().begin().await?;
    let id = new_id();
    tx.query(
        "INSERT INTO profile_fields (id, tenant_id, key, label, field_type, choices, required, created_at) VALUES ($2, $1, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.clone())
    .bind(key)
    .bind(label)
    .bind(req.field_type.clone())
    .bind(serde_json::to_string(&req.choices).unwrap_or_default())
    .bind(i64::from(req.required))
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => ApiError::duplicate("key", "a profile field with this key already exists"),
        None => e.into(),
    })?;
    let out = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("profile_field.create", "profile_field", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FieldPatch {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    label: Option<String>,
    #[schemars(length(max = 200), inner(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT)))]
    choices: Option<Vec<String>>,
    required: Option<bool>,
}

async fn update(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<FieldPatch>,
) -> ApiResult<axum::Json<FieldOut>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    let label = match &req.label {
        Some(l) => text("label", l, 200)?,
        None => before.label.clone(),
    };
    let choices = req.choices.clone().unwrap_or_else(|| before.choices.0.clone());
    check_choices(&before.field_type, &choices)?;
    let required = req.required.unwrap_or(before.required);
    tx.query("UPDATE profile_fields SET label = $3, choices = $4, required = $5 WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .bind(label)
        .bind(serde_json::to_string(&choices).unwrap_or_default())
        .bind(i64::from(required))
        .execute(tx.conn())
        .await?;
    let after = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "profile_field.update",
            "profile_field",
            &id,
            json!(before),
            json!(after),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    let using =
        crate::directory::segments::segments_using(&mut tx, |d| d.fields.iter().any(|f| f.key == before.key)).await?;
    if !using.is_empty() {
        return Err(crate::directory::Error::InUse {
            what: "this profile field".into(),
            segments: using,
        }
        .into());
    }
    // Drop the key from every profile in Rust, so both backends share one path.
    let rows = tx
        .query("SELECT id, profile FROM users WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await?;
    for row in rows {
        let profile: String = row.try_get("profile")?;
        let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&profile).unwrap_or_default();
        if map.remove(&before.key).is_some() {
            tx.query("UPDATE users SET profile = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(row.try_get::<String, _>("id")?)
                .bind(serde_json::Value::Object(map).to_string())
                .execute(tx.conn())
                .await?;
        }
    }
    tx.query("DELETE FROM profile_fields WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("profile_field.delete", "profile_field", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
