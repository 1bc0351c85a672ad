//! Uploading a plugin version (multipart: `manifest` TOML and `component` wasm), and checking a component
//! without storing it.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::plugins::manifest::{CapSet, Capability, Manifest};
use crate::plugins::store::{self, Uploaded};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

pub(super) struct UploadForm {
    manifest: Manifest,
    component: Vec<u8>,
    grant: Option<CapSet>,
}

/// The upload form of a caller who may manage plugins. A refused caller's body is read to its end first, so
/// the connection stays usable for their next request (the body is bounded by the route's limit).
pub(super) async fn authorized_form(
    caller: &Caller,
    form: Result<Multipart, MultipartRejection>,
    max_component: usize,
) -> ApiResult<UploadForm> {
    if let Err(refusal) = caller.require_tenant_wide(Permission::PluginsManage) {
        // Read and dropped chunk by chunk: nothing of a refused upload is kept in memory.
        if let Ok(mut form) = form {
            while let Ok(Some(mut field)) = form.next_field().await {
                while let Ok(Some(_)) = field.chunk().await {}
            }
        }
        return Err(refusal);
    }
    read_form(form, max_component).await
}

/// Read one field, chunk by chunk, refusing it as soon as it is larger than `max` bytes (nothing beyond is
/// read or kept).
async fn read_field(field: &mut axum::extract::multipart::Field<'_>, name: &str, max: usize) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::invalid(name, format!("could not be read: {e}")))?
    {
        if out.len() + chunk.len() > max {
            return Err(store::refused(vec![format!(
                "the {name} is larger than the limit of {max} bytes"
            )]));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub(super) async fn read_form(
    form: Result<Multipart, MultipartRejection>,
    max_component: usize,
) -> ApiResult<UploadForm> {
    let mut form = form.map_err(|e| ApiError::invalid("body", format!("must be multipart/form-data: {e}")))?;
    let mut manifest = None;
    let mut component = None;
    let mut grant_text = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::invalid("body", format!("is not valid multipart form data: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        // The component may be as large as the host allows; the other fields are a few KiB of text.
        let max = if name == "component" { max_component } else { 64 * 1024 };
        let bytes = read_field(&mut field, &name, max).await?;
        match name.as_str() {
            "manifest" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::invalid("manifest", "is not UTF-8 text"))?;
                manifest = Some(text);
            }
            "component" => component = Some(bytes.to_vec()),
            "grant" => grant_text = Some(String::from_utf8_lossy(&bytes).into_owned()),
            other => {
                return Err(ApiError::invalid(
                    other,
                    "is not a field of a plugin upload (manifest, component, grant)",
                ));
            }
        }
    }
    let manifest = manifest.ok_or_else(|| ApiError::invalid("manifest", "is missing"))?;
    let manifest =
        Manifest::from_toml(&manifest).map_err(|e| ApiError::invalid(format!("manifest.{}", e.field), e.message))?;
    let component = component.ok_or_else(|| ApiError::invalid("component", "is missing"))?;
    let grant = match grant_text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("requested") => Some(manifest.requested()),
        Some(list) => Some(parse_cap_list("grant", list.split(',').map(str::trim))?),
    };
    Ok(UploadForm {
        manifest,
        component,
        grant,
    })
}

pub(super) fn parse_cap_list<'a>(field: &str, names: impl Iterator<Item = &'a str>) -> ApiResult<CapSet> {
    let mut set = CapSet::default();
    for name in names {
        let cap = Capability::parse(name).ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{name} is not a capability (log, config, kv, directory, records, files)"),
            )
        })?;
        set = set.with(cap);
    }
    Ok(set)
}

pub(super) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<Uploaded>)> {
    let max = state.plugins.runtime().settings().max_component_bytes;
    let form = authorized_form(&caller, form, max).await?;
    let uploaded = store::upload(
        &state.plugins,
        caller.db(),
        &caller.actor(),
        form.manifest,
        form.component,
        form.grant,
    )
    .await?;
    state.plugins.runtime().forget(&uploaded.plugin.id);
    Ok((StatusCode::CREATED, axum::Json(uploaded)))
}

pub(super) async fn check(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<axum::Json<Value>> {
    let max = state.plugins.runtime().settings().max_component_bytes;
    let form = authorized_form(&caller, form, max).await?;
    let (_, _, inspection) = store::compile(&state.plugins, caller.db(), form.component).await?;
    let granted = form.grant.unwrap_or_default();
    let problems = inspection.problems(form.manifest.kind, form.manifest.requested(), granted);
    Ok(axum::Json(json!({
        "manifest": form.manifest,
        "inspection": inspection,
        "needs": inspection.needs().list(),
        "problems_with_grant": problems,
    })))
}
