//! Running a plugin on demand: a dry run of any hook, and the reports plugins offer.

use super::super::common::{Json, Path};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::plugins::host_api::View;
use crate::plugins::manifest::Kind;
use crate::plugins::runtime::{CallStats, HookCall, HookError, HookOutput};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A hook to run and its input (JSON shaped like the WIT records, fields in snake_case).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InvokeRequest {
    /// `brand`, `on-signup`, `on-events`, `on-notice`, `on-tick`, `list-reports` or `run-report`.
    #[schemars(extend("enum" = ["brand", "on-signup", "on-events", "on-notice", "on-tick", "list-reports", "run-report"]))]
    hook: String,
    /// The hook's input.
    #[serde(default)]
    input: Value,
}

/// What a hook answered, with measurements.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct InvokeOut {
    /// `ok`, `plugin_error`, `fault` or `unavailable`.
    outcome: String,
    /// The hook's output when `ok`.
    output: Option<Value>,
    /// The error or fault.
    error: Option<String>,
    /// The fault kind.
    fault: Option<String>,
    /// Whether the fault counts toward disabling the plugin (not when the host kept the call waiting).
    counted: Option<bool>,
    elapsed_us: u64,
    /// Fuel used: about one unit per instruction, plus host calls and sleeps.
    fuel: u64,
    /// Time spent queueing for a turn to run.
    waited_us: u64,
    peak_memory_bytes: usize,
    host_data_bytes: usize,
    output_bytes: usize,
    log: Vec<Value>,
}

pub(super) fn invoke_out(result: Result<HookOutput, HookError>, stats: CallStats) -> InvokeOut {
    let mut counted = None;
    let (outcome, output, error, fault) = match result {
        Ok(output) => ("ok", serde_json::to_value(&output).ok(), None, None),
        Err(HookError::Plugin(m)) => ("plugin_error", None, Some(m), None),
        Err(HookError::Fault {
            kind,
            message,
            counted: c,
        }) => {
            counted = Some(c);
            ("fault", None, Some(message), Some(kind.as_str().to_owned()))
        }
        Err(HookError::Busy(busy)) => ("unavailable", None, Some(busy.to_string()), None),
        Err(HookError::Unavailable(m)) => ("unavailable", None, Some(m), None),
    };
    InvokeOut {
        outcome: outcome.into(),
        output,
        error,
        fault,
        counted,
        elapsed_us: stats.elapsed.as_micros() as u64,
        fuel: stats.fuel,
        waited_us: stats.waited.as_micros() as u64,
        peak_memory_bytes: stats.peak_memory,
        host_data_bytes: stats.host_data,
        output_bytes: stats.output,
        log: stats
            .log
            .iter()
            .map(|l| json!({ "level": l.level, "message": l.message }))
            .collect(),
    }
}

pub(super) fn caller_view(caller: &Caller, perm: Permission) -> View {
    View::User {
        user_id: caller.user_id.clone(),
        reach: caller.grants.reach(perm),
    }
}

pub(super) async fn invoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<InvokeRequest>,
) -> ApiResult<axum::Json<InvokeOut>> {
    caller.require_tenant_wide(Permission::PluginsManage)?;
    let call = HookCall::from_json(&req.hook, req.input).map_err(|m| ApiError::invalid("input", m))?;
    let loaded = state.plugins.load_active(caller.db(), &id).await?;
    if call.kind() != loaded.kind {
        return Err(ApiError::invalid(
            "hook",
            format!(
                "{} is not a hook of a {} plugin (its hooks: {})",
                req.hook,
                loaded.kind,
                loaded.kind.hooks().join(", ")
            ),
        ));
    }
    let view = caller_view(&caller, Permission::ReportsRead);
    let called = state.plugins.call(caller.db(), &loaded, view, call).await;
    if let Err(HookError::Busy(busy)) = called.result {
        return Err(busy.into());
    }
    Ok(axum::Json(invoke_out(called.result, called.stats)))
}

/// A report offered by a plugin.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct PluginReport {
    plugin_id: String,
    plugin: String,
    key: String,
    title: String,
    description: String,
    columns: Vec<Value>,
}

pub(super) async fn plugin_reports(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<PluginReport>>> {
    caller.require(Permission::ReportsRead)?;
    let mut out = Vec::new();
    for loaded in state.plugins.active(caller.db(), Kind::Reports).await? {
        let view = caller_view(&caller, Permission::ReportsRead);
        // Fails open: a faulting plugin's reports are left out of the list.
        if let Ok(reports) = state.plugins.list_reports(caller.db(), &loaded, view).await {
            for report in reports {
                out.push(PluginReport {
                    plugin_id: loaded.plugin_id.clone(),
                    plugin: loaded.name.clone(),
                    key: report.key,
                    title: report.title,
                    description: report.description,
                    columns: report
                        .columns
                        .iter()
                        .filter_map(|c| serde_json::to_value(c).ok())
                        .collect(),
                });
            }
        }
    }
    Ok(axum::Json(out))
}

/// Parameters of a report run.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunReportRequest {
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    cursor: Option<String>,
}

pub(super) async fn run_plugin_report(
    State(state): State<AppState>,
    caller: Caller,
    Path((plugin_id, key)): Path<(String, String)>,
    Json(req): Json<RunReportRequest>,
) -> ApiResult<axum::Json<Value>> {
    caller.require(Permission::ReportsRead)?;
    let loaded = state
        .plugins
        .active(caller.db(), Kind::Reports)
        .await?
        .into_iter()
        .find(|l| l.plugin_id == plugin_id)
        .ok_or(ApiError::NotFound { what: "report plugin" })?;
    let params = req
        .params
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let view = caller_view(&caller, Permission::ReportsRead);
    // Fails closed: no partial report.
    match state
        .plugins
        .run_report(caller.db(), &loaded, view, key, params, req.cursor)
        .await
    {
        Ok(rows) => Ok(axum::Json(json!({ "rows": rows.rows, "next": rows.next }))),
        Err(HookError::Plugin(message)) => Err(ApiError::rule("report_failed", None, message)),
        Err(HookError::Busy(busy)) => Err(busy.into()),
        Err(e) => Err(ApiError::rule("report_failed", None, e.to_string())),
    }
}
