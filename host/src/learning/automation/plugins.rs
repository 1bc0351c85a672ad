//! Enrollment plugins: their say on sign-ups (failing closed) and their actions on what committed (failing
//! open).

use super::*;
use crate::db::TenantDb;
use crate::learning::Source;
pub use crate::plugins::hooks::enrollment::{Decision, Signup as SignupRequest};
use crate::plugins::hooks::enrollment::{EventBatch, Happening};
use crate::plugins::host::PluginHost;
use crate::plugins::host_api::View;
use crate::plugins::manifest::Kind;

/// Events per plugin call: one call carries a whole batch, within the plugin's host-data and output caps.
const PLUGIN_BATCH: usize = 500;

/// Run the enrollment plugins' `on-events` on what committed, and apply their answers. Fails open: a fault
/// is recorded by the runtime and the change stands. Events caused by a plugin's own actions go through the
/// rules but are not offered to the plugins again, so plugins cannot loop through each other.
pub async fn after_commit(plugins: &PluginHost, tenant: &TenantDb, pending: Pending) {
    if pending.events.is_empty() {
        return;
    }
    if let Err(e) = run_plugins(plugins, tenant, pending).await {
        tracing::error!(tenant = %tenant.tenant_id(), error = %e, "applying enrollment plugin actions failed");
    }
}

async fn run_plugins(host: &PluginHost, tenant: &TenantDb, pending: Pending) -> Result<(), sqlx::Error> {
    let plugins = host.active(tenant, Kind::Enrollment).await?;
    if plugins.is_empty() {
        return Ok(());
    }
    let Pending { events, context } = pending;
    let view = match &context.person {
        Some((user_id, reach)) => View::User {
            user_id: user_id.clone(),
            reach: reach.clone(),
        },
        None => View::Tenant,
    };
    for batch in events.chunks(PLUGIN_BATCH) {
        let happenings: Vec<Happening> = batch.iter().map(|e| e.trigger.happening()).collect();
        let pairs: Vec<(&str, &Happening)> = batch.iter().map(|e| e.user_id.as_str()).zip(&happenings).collect();
        // The users as plugins see them, read once for every plugin.
        let prepared = EventBatch::load(tenant, &pairs).await?;
        if prepared.is_empty() {
            continue;
        }
        let mut planned = Vec::new();
        for loaded in &plugins {
            // Fails open: the runtime has recorded the fault; the changes stand.
            let Ok(lists) = host.on_events(tenant, loaded, view.clone(), &prepared).await else {
                continue;
            };
            let source = Source::Plugin {
                id: loaded.plugin_id.clone(),
                name: loaded.name.clone(),
                version: loaded.version.clone(),
            };
            for (&i, actions) in prepared.sent().iter().zip(lists) {
                let event = &batch[i];
                for action in actions {
                    planned.push(Planned {
                        user_id: event.user_id.clone(),
                        source: source.clone(),
                        trigger: event.trigger.name(),
                        action,
                        depth: event.depth + 1,
                    });
                }
            }
        }
        if planned.is_empty() {
            continue;
        }
        let scope = context.person.as_ref().map(|(_, reach)| reach);
        let mut tx = tenant.begin().await?;
        let mut journal = Journal::default();
        let caused = apply(&mut tx, planned, scope, &mut journal, &context).await?;
        journal.write(&mut tx).await?;
        let _ = run_rules(&mut tx, caused, context.clone()).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Ask every active enrollment plugin about a sign-up. Fails closed: a plugin that faults or errs holds the
/// sign-up for an admin. The strictest answer wins (refuse, then hold, then approve).
pub async fn decide_signup(host: &PluginHost, tenant: &TenantDb, request: &SignupRequest) -> Verdict {
    let mut verdict = Verdict {
        decision: Decision::Approve,
        actions: Vec::new(),
    };
    let plugins = match host.active(tenant, Kind::Enrollment).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "listing enrollment plugins for a sign-up failed");
            verdict.decision = Decision::Hold("the academy's sign-up plugins could not be reached".into());
            return verdict;
        }
    };
    for loaded in plugins {
        let decision = match host.on_signup(tenant, &loaded, request).await {
            Ok(outcome) => {
                let source = Source::Plugin {
                    id: loaded.plugin_id.clone(),
                    name: loaded.name.clone(),
                    version: loaded.version.clone(),
                };
                verdict
                    .actions
                    .extend(outcome.actions.into_iter().map(|a| (source.clone(), a)));
                outcome.decision
            }
            Err(e) => Decision::Hold(format!("plugin {} could not decide: {e}", loaded.name)),
        };
        verdict.decision = match (verdict.decision, decision) {
            (Decision::Refuse(r), _) | (_, Decision::Refuse(r)) => Decision::Refuse(r),
            (Decision::Hold(r), _) | (_, Decision::Hold(r)) => Decision::Hold(r),
            _ => Decision::Approve,
        };
    }
    verdict
}
