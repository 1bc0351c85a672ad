//! Enrollment rules (when a user is created, changed or completes a course, if conditions hold, then act)
//! and the automation log of everything rules and plugins did or tried.

use super::api::{Api, Op};
use super::common::{Json, Page, PageParams, Path, Query, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{Sql, TenantTx, new_id, now_ms, rfc3339, unique_violation};
use crate::error::{ApiError, ApiResult};
use crate::learning::automation::{self, Action, Context, Rule, RuleDef};
use crate::learning::jobs;
use crate::learning::jobs::JobOut;
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;

pub fn routes(api: &mut Api) {
    api.tag("rules");
    api.op_out::<Vec<RuleOut>>(
        Op::get("/api/v1/rules", "List enrollment rules").permission("rules.manage"),
        get(list),
    );
    api.op_io::<NewRule, RuleOut>(
        Op::post("/api/v1/rules", "Create a rule (it acts on what happens from now on)")
            .permission("rules.manage")
            .status(201),
        post(create),
    );
    api.op_out::<RuleOut>(
        Op::get("/api/v1/rules/{id}", "Read a rule").permission("rules.manage"),
        get(read),
    );
    api.op_io::<RulePatch, RuleOut>(
        Op::patch("/api/v1/rules/{id}", "Change, enable or disable a rule").permission("rules.manage"),
        patch(update),
    );
    api.op(
        Op::delete("/api/v1/rules/{id}", "Delete a rule (what it did stays)")
            .permission("rules.manage")
            .status(204),
        delete(remove),
    );
    api.op_out::<Preview>(
        Op::post(
            "/api/v1/rules/{id}/preview",
            "Dry run: who among existing users the rule would act on, and how",
        )
        .permission("rules.manage"),
        post(preview),
    );
    api.op_out::<JobOut>(
        Op::post("/api/v1/rules/{id}/apply", "Apply the rule to existing users (a job)")
            .permission("rules.manage")
            .status(202),
        post(apply),
    );
    api.op_out::<Page<LogEntry>>(
        Op::get(
            "/api/v1/automation-log",
            "What rules and plugins did or tried, with the cause and outcome",
        )
        .permission("rules.manage")
        .query(&[
            ("user_id", "Only actions on this user"),
            ("source", "Only this source (rule:<id>, plugin:<id>@<version>)"),
            ("outcome", "applied, unchanged, refused or stopped"),
            ("limit", "1–500, default 50"),
            ("cursor", "From the previous page"),
        ]),
        get(log),
    );
}

/// A rule.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RuleOut {
    id: String,
    name: String,
    enabled: bool,
    definition: RuleDef,
    /// How often it may act on one user.
    max_fires_per_user: i64,
    created_at: String,
    updated_at: String,
}

async fn find(tx: &mut TenantTx, id: &str) -> ApiResult<RuleOut> {
    let row = tx
        .query("SELECT id, name, enabled, definition, max_fires_per_user, created_at, updated_at FROM rules WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "rule" })?;
    rule_from_row(&row)
}

fn rule_from_row(row: &sqlx::any::AnyRow) -> ApiResult<RuleOut> {
    let definition: String = row.try_get("definition")?;
    Ok(RuleOut {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        definition: serde_json::from_str(&definition).map_err(|e| ApiError::Internal(e.into()))?,
        max_fires_per_user: row.try_get("max_fires_per_user")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// Check a definition against the academy: every organization, tag, course and field it names exists.
async fn check(tx: &mut TenantTx, def: &RuleDef) -> ApiResult<()> {
    if def.on.is_empty() {
        return Err(ApiError::invalid("definition.on", "name at least one trigger"));
    }
    if def.then.is_empty() || def.then.len() > 20 {
        return Err(ApiError::invalid("definition.then", "name between 1 and 20 actions"));
    }
    let when = &def.when;
    if let Some(org) = &when.org_id
        && crate::directory::orgs::find(tx, org).await?.is_none()
    {
        return Err(ApiError::invalid("definition.when.org_id", "no such organization"));
    }
    if let Some(tag) = &when.tag {
        tag_exists(tx, tag, "definition.when.tag").await?;
    }
    if let Some(domain) = &when.email_domain
        && !crate::tenancy::valid_domain(&domain.to_lowercase())
    {
        return Err(ApiError::invalid(
            "definition.when.email_domain",
            "must be a domain such as example.com",
        ));
    }
    if let Some(course) = &when.course_id {
        if !def.on.contains(&automation::TriggerName::CourseCompleted) {
            return Err(ApiError::invalid(
                "definition.when.course_id",
                "only course_completed rules can name a completed course",
            ));
        }
        course_exists(tx, course, "definition.when.course_id").await?;
    }
    if let Some(field) = &when.field {
        field_exists(tx, &field.key, "definition.when.field.key").await?;
    }
    for (i, action) in def.then.iter().enumerate() {
        let at = |f: &str| format!("definition.then[{i}].{f}");
        match action {
            Action::AddToOrg { org_id } | Action::RemoveFromOrg { org_id } => {
                if crate::directory::orgs::find(tx, org_id).await?.is_none() {
                    return Err(ApiError::invalid(at("org_id"), "no such organization"));
                }
            }
            Action::AddTag { tag } | Action::RemoveTag { tag } => tag_exists(tx, tag, &at("tag")).await?,
            Action::Enroll { course_id, due_in_days } => {
                course_exists(tx, course_id, &at("course_id")).await?;
                if due_in_days.is_some_and(|d| d == 0 || d > 3650) {
                    return Err(ApiError::invalid(at("due_in_days"), "must be between 1 and 3650"));
                }
            }
            Action::SetField { key, .. } => field_exists(tx, key, &at("key")).await?,
        }
    }
    Ok(())
}

async fn tag_exists(tx: &mut TenantTx, name: &str, field: &str) -> ApiResult<()> {
    let found = tx
        .query("SELECT id FROM tags WHERE tenant_id = $1 AND lower(name) = lower($2)")
        .bind(name.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::invalid(field, format!("no tag named {name:?}")))
}

async fn course_exists(tx: &mut TenantTx, id: &str, field: &str) -> ApiResult<()> {
    let found = tx
        .query("SELECT status FROM courses WHERE tenant_id = $1 AND id = $2")
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    match found {
        None => Err(ApiError::invalid(field, "no such course")),
        Some(row) if row.try_get::<String, _>(0)? == "archived" => {
            Err(ApiError::invalid(field, "the course is archived"))
        }
        Some(_) => Ok(()),
    }
}

async fn field_exists(tx: &mut TenantTx, key: &str, field: &str) -> ApiResult<()> {
    let found = tx
        .query("SELECT id FROM profile_fields WHERE tenant_id = $1 AND lower(key) = lower($2)")
        .bind(key.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::invalid(field, format!("no profile field {key:?}")))
}

fn conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some(k) if k.contains("rules_name") => ApiError::duplicate("name", "a rule with this name already exists"),
        _ => e.into(),
    }
}

async fn list(caller: Caller) -> ApiResult<axum::Json<Vec<RuleOut>>> {
    caller.require_tenant_wide(Permission::RulesManage)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query("SELECT id, name, enabled, definition, max_fires_per_user, created_at, updated_at FROM rules WHERE tenant_id = $1 ORDER BY lower(name)")
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(axum::Json(rows.iter().map(rule_from_row).collect::<Result<_, _>>()?))
}

async fn read(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<RuleOut>> {
    caller.require_tenant_wide(Permission::RulesManage)?;
    let mut tx = caller.db().begin_read().await?;
    let out = find(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewRule {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    definition: RuleDef,
    /// Default true.
    enabled: Option<bool>,
    /// 1–1000, default 1.
    #[schemars(range(min = 1, max = 1000))]
    max_fires_per_user: Option<i64>,
}

fn check_limit(n: Option<i64>) -> ApiResult<i64> {
    match n {
        None => Ok(1),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("max_fires_per_user", "must be between 1 and 1000")),
    }
}

async fn create(caller: Caller, Json(req): Json<NewRule>) -> ApiResult<(StatusCode, axum::Json<RuleOut>)> {
    caller.require_tenant_wide(Permission::RulesManage)?;
    let name = text("name", &req.name, 200)?;
    let max = check_limit(req.max_fires_per_user)?;
    let mut tx = caller.db().begin().await?;
    check(&mut tx, &req.definition).await?;
    let id = new_id();
    let now = now_ms();
    tx.query(
        "INSERT INTO rules (id, tenant_id, name, enabled, definition, max_fires_per_user, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id.clone())
    .bind(name)
    .bind(i64::from(req.enabled.unwrap_or(true)))
    .bind(serde_json::to_string(&req.definition).map_err(|e| ApiError::Internal(e.into()))?)
    .bind(max)
    .bind(now)
    .execute(tx.conn())
    .await
    .map_err(conflict)?;
    let out = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created("rule.create", "rule", &id, json!(out)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RulePatch {
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: Option<String>,
    definition: Option<RuleDef>,
    enabled: Option<bool>,
    #[schemars(range(min = 1, max = 1000))]
    max_fires_per_user: Option<i64>,
}

async fn update(caller: Caller, Path(id): Path<String>, Json(req): Json<RulePatch>) -> ApiResult<axum::Json<RuleOut>> {
    caller.require_tenant_wide(Permission::RulesManage)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    let name = match &req.name {
        Some(n) => text("name", n, 200)?,
        None => before.name.clone(),
    };
    let definition = req.definition.clone().unwrap_or_else(|| before.definition.clone());
    if req.definition.is_some() {
        check(&mut tx, &definition).await?;
    }
    let max = match req.max_fires_per_user {
        Some(n) => check_limit(Some(n))?,
        None => before.max_fires_per_user,
    };
    tx.query(
        "UPDATE rules SET name = $3, enabled = $4, definition = $5, max_fires_per_user = $6, updated_at = $7 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(id.clone())
    .bind(name)
    .bind(i64::from(req.enabled.unwrap_or(before.enabled)))
    .bind(serde_json::to_string(&definition).map_err(|e| ApiError::Internal(e.into()))?)
    .bind(max)
    .bind(now_ms())
    .execute(tx.conn())
    .await
    .map_err(conflict)?;
    let after = find(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("rule.update", "rule", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn remove(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::RulesManage)?;
    let mut tx = caller.db().begin().await?;
    let before = find(&mut tx, &id).await?;
    tx.query("DELETE FROM rule_firings WHERE tenant_id = $1 AND rule_id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    tx.query("DELETE FROM rules WHERE tenant_id = $1 AND id = $2")
        .bind(id.clone())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("rule.delete", "rule", &id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The rule as the engine runs it (enabled or not: previews and retroactive runs are explicit).
async fn engine_rule(tx: &mut TenantTx, id: &str) -> ApiResult<Rule> {
    automation::load_rules(tx, Some(id))
        .await?
        .pop()
        .ok_or(ApiError::NotFound { what: "rule" })
}

async fn all_users(tx: &mut TenantTx) -> ApiResult<Vec<String>> {
    Ok(tx
        .query("SELECT id FROM users WHERE tenant_id = $1 AND status IN ('active', 'pending') ORDER BY id")
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?)
}

/// Who a rule would act on.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Preview {
    /// Users it would act on.
    count: usize,
    /// The first 200 of them, with the actions.
    users: Vec<PreviewUser>,
}

/// One user a rule would act on.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PreviewUser {
    user_id: String,
    email: String,
    actions: Vec<Action>,
}

async fn preview(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<Preview>> {
    caller.require_tenant_wide(Permission::RulesManage)?;
    let mut tx = caller.db().begin_snapshot().await?;
    let rule = engine_rule(&mut tx, &id).await?;
    let users = all_users(&mut tx).await?;
    let (affected, _) =
        automation::apply_rule_to(&mut tx, &rule, &users, true, &Context::academy(caller.actor())).await?;
    let mut out = Vec::new();
    for (user_id, actions) in affected.iter().take(200) {
        let email: String = tx
            .query("SELECT email FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(user_id.clone())
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        out.push(PreviewUser {
            user_id: user_id.clone(),
            email,
            actions: actions.clone(),
        });
    }
    tx.commit().await?;
    Ok(axum::Json(Preview {
        count: affected.len(),
        users: out,
    }))
}

async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<JobOut>)> {
    caller.require_tenant_wide(Permission::RulesManage)?;
    let mut tx = caller.db().begin_read().await?;
    find(&mut tx, &id).await?;
    tx.commit().await?;
    let db = caller.db().clone();
    let context = Context::academy(caller.actor());
    let actor = caller.actor();
    let rule_id = id.clone();
    let job = jobs::start(
        caller.db(),
        "apply_rule",
        json!({ "rule_id": id }),
        Some(caller.user_id.clone()),
        async move {
            let mut tx = db.begin_read().await?;
            let rule = engine_rule(&mut tx, &rule_id).await?;
            let users = all_users(&mut tx).await?;
            tx.commit().await?;
            // In batches of their own short transactions; each batch's plugin calls run after its commit.
            let mut affected = 0;
            for batch in users.chunks(crate::learning::jobs::BATCH) {
                let mut tx = db.begin().await?;
                let (changed, pending) = automation::apply_rule_to(&mut tx, &rule, batch, false, &context).await?;
                tx.commit().await?;
                affected += changed.len();
                automation::after_commit(&state.plugins, &db, pending).await;
            }
            let report = json!({ "users_checked": users.len(), "users_affected": affected });
            let mut tx = db.begin().await?;
            record(
                &mut tx,
                &actor,
                Change::created("rule.apply", "rule", &rule_id, report.clone()),
            )
            .await?;
            tx.commit().await?;
            Ok(report)
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(crate::learning::jobs::read_job(caller.db(), &job).await?),
    ))
}

/// One entry of the automation log.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LogEntry {
    id: String,
    at: String,
    user_id: Option<String>,
    /// rule:<id> or plugin:<id>@<version>.
    source: String,
    /// user_created, user_changed, course_completed, signup, retroactive.
    trigger: String,
    action: Value,
    /// applied, unchanged, refused or stopped.
    outcome: String,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogParams {
    user_id: Option<String>,
    source: Option<String>,
    outcome: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn log(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<LogParams>,
) -> ApiResult<axum::Json<Page<LogEntry>>> {
    caller.require_tenant_wide(Permission::RulesManage)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    let mut sql = Sql::tenant(
        "SELECT id, at, user_id, source, trigger_name, action, outcome, message FROM automation_log WHERE tenant_id = $1",
    );
    if let Some(u) = &p.user_id {
        sql.push(" AND user_id = ").push_bind(u);
    }
    if let Some(s) = &p.source {
        sql.push(" AND source = ").push_bind(s);
    }
    if let Some(o) = &p.outcome {
        sql.push(" AND outcome = ").push_bind(o);
    }
    if let Some(c) = &p.cursor {
        sql.push(" AND id < ").push_bind(c);
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut tx = caller.db().begin_read().await?;
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let items = rows
        .iter()
        .map(|r| {
            let action: String = r.try_get("action")?;
            Ok(LogEntry {
                id: r.try_get("id")?,
                at: rfc3339(r.try_get("at")?),
                user_id: r.try_get("user_id")?,
                source: r.try_get("source")?,
                trigger: r.try_get("trigger_name")?,
                action: serde_json::from_str(&action).unwrap_or(Value::Null),
                outcome: r.try_get("outcome")?,
                message: r.try_get("message")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |e| e.id.clone())))
}
