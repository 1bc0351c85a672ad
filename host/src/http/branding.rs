//! Branding and theme files: the academy's look (`tenant.manage`), organizations' overrides (`orgs.write`
//! within reach), uploaded template and asset overrides, the theme's wording keys, and a preview of unsaved
//! settings.

use super::api::{Api, Op};
use super::common::{Json, Path, Query};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::db::{TenantTx, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::portal::branding::BrandingSettings;
use crate::portal::theme::{self, FileKind};
use crate::scope::Permission;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::BTreeMap;

pub fn routes(api: &mut Api) {
    api.tag("branding");
    api.op_out::<BrandingOut>(
        Op::get("/api/v1/branding", "The academy's branding").permission("tenant.manage"),
        get(read),
    );
    api.op_io::<BrandingSettings, BrandingOut>(
        Op::put(
            "/api/v1/branding",
            "Replace the academy's branding (name, logo, colors, fonts, CSS, wording, landing page)",
        )
        .permission("tenant.manage"),
        put(replace),
    );
    api.op_out::<WordingOut>(
        Op::get(
            "/api/v1/branding/wording",
            "The theme's wording keys with their text in every language the theme speaks",
        ),
        get(wording),
    );
    api.op_in::<BrandingSettings>(
        Op::post(
            "/api/v1/branding/preview",
            "Render a page with unsaved branding (HTML), for a live preview",
        )
        .permission("tenant.manage")
        .query(&[("page", "`home`, `login` or `catalog` (default `catalog`)")])
        .response_body_type("text/html"),
        post(preview),
    );
    api.op_out::<BrandingSettings>(
        Op::get(
            "/api/v1/orgs/{id}/branding",
            "An organization's branding overrides (empty: it inherits everything)",
        )
        .permission("orgs.read"),
        get(read_org),
    );
    api.op_io::<BrandingSettings, BrandingSettings>(
        Op::put(
            "/api/v1/orgs/{id}/branding",
            "Replace an organization's branding overrides; its members and sub-organizations inherit what it \
             leaves unset",
        )
        .permission("orgs.write"),
        put(replace_org),
    );
    api.op(
        Op::delete("/api/v1/orgs/{id}/branding", "Remove an organization's overrides").permission("orgs.write"),
        delete(remove_org),
    );
    api.op_out::<Vec<ThemeFile>>(
        Op::get("/api/v1/theme/files", "The academy's uploaded theme files").permission("tenant.manage"),
        get(list_files),
    );
    api.op_out::<ThemeFile>(
        Op::put(
            "/api/v1/theme/files/{path}",
            "Upload a theme file: `templates/<name>.hbs` replaces a default template, `assets/…` (css, images, \
             fonts) is served at `/theme/…`. The path is one URL segment (encode `/` as `%2F`); the body is the \
             file",
        )
        .permission("tenant.manage")
        .status(201)
        .also(200)
        .request_body_type("application/octet-stream"),
        put(upload_file).layer(DefaultBodyLimit::max(theme::MAX_FILE_BYTES + 1024)),
    );
    api.op(
        Op::delete(
            "/api/v1/theme/files/{path}",
            "Remove an uploaded theme file (the default applies again)",
        )
        .permission("tenant.manage"),
        delete(remove_file),
    );
}

/// The academy's branding.
#[derive(Serialize, schemars::JsonSchema)]
pub struct BrandingOut {
    settings: BrandingSettings,
    /// Bumped by every theme file change.
    theme_version: i64,
    /// Last change, RFC 3339 (absent when never set).
    updated_at: Option<String>,
}

async fn load(tx: &mut TenantTx) -> ApiResult<BrandingOut> {
    let row = tx
        .query("SELECT settings, theme_version, updated_at FROM tenant_branding WHERE tenant_id = $1")
        .fetch_optional(tx.conn())
        .await?;
    Ok(match row {
        Some(r) => BrandingOut {
            settings: serde_json::from_str(&r.try_get::<String, _>(0)?)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored branding: {e}")))?,
            theme_version: r.try_get(1)?,
            updated_at: Some(rfc3339(r.try_get(2)?)),
        },
        None => BrandingOut {
            settings: BrandingSettings::default(),
            theme_version: 0,
            updated_at: None,
        },
    })
}

async fn read(caller: Caller) -> ApiResult<axum::Json<BrandingOut>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let out = load(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

/// Write the academy's branding row: new settings, or a theme version bump (keeping the settings).
async fn upsert(tx: &mut TenantTx, settings: Option<&BrandingSettings>, bump_theme: bool) -> ApiResult<()> {
    let now = now_ms();
    let current = load(tx).await?;
    let settings = settings.unwrap_or(&current.settings);
    tx.query(
        "INSERT INTO tenant_branding (tenant_id, settings, theme_version, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, theme_version = excluded.theme_version, \
         updated_at = excluded.updated_at",
    )
    .bind(serde_json::to_string(settings).unwrap_or_default())
    .bind(current.theme_version + i64::from(bump_theme))
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Json(settings): Json<BrandingSettings>,
) -> ApiResult<axum::Json<BrandingOut>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    settings.validate(&state.portal.locales)?;
    if settings.default_locale.is_some() {
        return Err(ApiError::invalid(
            "default_locale",
            "is set for organizations; the academy's default language is settings.default_locale of PATCH /api/v1/tenant",
        ));
    }
    let mut tx = caller.db().begin().await?;
    let before = load(&mut tx).await?;
    upsert(&mut tx, Some(&settings), false).await?;
    let after = load(&mut tx).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated(
            "branding.update",
            "tenant",
            &caller.tenant.id,
            json!(before.settings),
            json!(after.settings),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

/// The theme's wording.
#[derive(Serialize, schemars::JsonSchema)]
pub struct WordingOut {
    /// Languages the theme speaks.
    languages: Vec<String>,
    /// Every key with its text per language.
    keys: BTreeMap<String, BTreeMap<String, String>>,
}

async fn wording(State(state): State<AppState>, _caller: Caller) -> axum::Json<WordingOut> {
    let locales = &state.portal.locales;
    let languages: Vec<String> = locales.languages().into_iter().map(str::to_owned).collect();
    let mut keys: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for lang in &languages {
        for (key, text) in locales.words(lang) {
            if let Value::String(text) = text {
                keys.entry(key).or_default().insert(lang.clone(), text);
            }
        }
    }
    axum::Json(WordingOut { languages, keys })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewParams {
    page: Option<String>,
}

async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<PreviewParams>,
    Json(draft): Json<BrandingSettings>,
) -> ApiResult<Response> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    draft.validate(&state.portal.locales)?;
    let page = match params.page.as_deref().unwrap_or("catalog") {
        "home" => "home",
        "login" => "login",
        "catalog" => "catalog",
        _ => return Err(ApiError::invalid("page", "must be home, login or catalog")),
    };
    let html = crate::portal::preview::render(&state, &caller, draft, page).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                crate::portal::content_security_policy(Some(&html.1)),
            ),
        ],
        html.0,
    )
        .into_response())
}

async fn read_org(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<BrandingSettings>> {
    caller.require(Permission::OrgsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let org = crate::directory::orgs::find_in_reach(&mut tx, &caller.grants.reach(Permission::OrgsRead), &id).await?;
    let settings = org_settings(&mut tx, &org.id).await?.unwrap_or_default();
    tx.commit().await?;
    Ok(axum::Json(settings))
}

async fn org_settings(tx: &mut TenantTx, org_id: &str) -> ApiResult<Option<BrandingSettings>> {
    let row = tx
        .query("SELECT settings FROM org_branding WHERE tenant_id = $1 AND org_id = $2")
        .bind(org_id.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    row.map(|r| {
        serde_json::from_str(&r.try_get::<String, _>(0)?)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored branding: {e}")))
    })
    .transpose()
}

async fn replace_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(settings): Json<BrandingSettings>,
) -> ApiResult<axum::Json<BrandingSettings>> {
    // Who may change it first: someone without the right learns nothing from validation messages.
    caller.require(Permission::OrgsWrite)?;
    let mut tx = caller.db().begin().await?;
    let org = crate::directory::orgs::find_in_reach(&mut tx, &caller.grants.reach(Permission::OrgsWrite), &id).await?;
    settings.validate(&state.portal.locales)?;
    if let Some(locale) = &settings.default_locale
        && crate::portal::i18n::allowed(&caller.tenant.settings.allowed_locales, locale).is_none()
    {
        return Err(ApiError::invalid(
            "default_locale",
            "must be one of the academy's languages (settings.allowed_locales)",
        ));
    }
    let before = org_settings(&mut tx, &org.id).await?;
    tx.query(
        "INSERT INTO org_branding (tenant_id, org_id, settings, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, org_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )
    .bind(org.id.clone())
    .bind(serde_json::to_string(&settings).unwrap_or_default())
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("org.branding_update", "org", &org.id, json!(before), json!(settings)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(settings))
}

async fn remove_org(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Permission::OrgsWrite)?;
    let mut tx = caller.db().begin().await?;
    let org = crate::directory::orgs::find_in_reach(&mut tx, &caller.grants.reach(Permission::OrgsWrite), &id).await?;
    let Some(before) = org_settings(&mut tx, &org.id).await? else {
        return Err(ApiError::NotFound {
            what: "organization branding",
        });
    };
    tx.query("DELETE FROM org_branding WHERE tenant_id = $1 AND org_id = $2")
        .bind(org.id.clone())
        .execute(tx.conn())
        .await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("org.branding_delete", "org", &org.id, json!(before)),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An uploaded theme file.
#[derive(Serialize, schemars::JsonSchema)]
pub struct ThemeFile {
    /// Relative to the theme: `templates/…` or `assets/…`.
    path: String,
    /// Bytes.
    size: i64,
    /// Where assets are served (`/theme/…`); absent for templates.
    url: Option<String>,
    /// RFC 3339.
    updated_at: String,
}

fn theme_file(path: String, size: i64, updated_at: i64) -> ThemeFile {
    ThemeFile {
        url: path.strip_prefix("assets/").map(|p| format!("/theme/{p}")),
        path,
        size,
        updated_at: rfc3339(updated_at),
    }
}

async fn list_files(caller: Caller) -> ApiResult<axum::Json<Vec<ThemeFile>>> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query("SELECT path, size, updated_at FROM theme_files WHERE tenant_id = $1 ORDER BY path")
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(theme_file(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
    }
    Ok(axum::Json(out))
}

async fn upload_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<ThemeFile>)> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    let kind = theme::check_path(&path)?;
    if body.is_empty() || body.len() > theme::MAX_FILE_BYTES {
        return Err(ApiError::invalid(
            "content",
            format!("must be 1–{} bytes", theme::MAX_FILE_BYTES),
        ));
    }
    match kind {
        FileKind::Template => {
            // Checked against the academy's other templates too: together they must not include one another
            // in a circle.
            let mut tx = caller.db().begin_read().await?;
            let rows = tx
                .query("SELECT path, content FROM theme_files WHERE tenant_id = $1 AND path LIKE 'templates/%'")
                .fetch_all(tx.conn())
                .await?;
            tx.commit().await?;
            let mut others = Vec::with_capacity(rows.len());
            for r in rows {
                others.push((r.try_get::<String, _>(0)?, r.try_get::<Vec<u8>, _>(1)?));
            }
            state.portal.themes.check_template(&path, &body, &others)?
        }
        FileKind::Asset(ct) if ct.starts_with("text/") && std::str::from_utf8(&body).is_err() => {
            return Err(ApiError::invalid("content", "must be UTF-8 text"));
        }
        FileKind::Asset(_) => {}
    }
    let mut tx = caller.db().begin().await?;
    let existing = tx
        .query("SELECT size FROM theme_files WHERE tenant_id = $1 AND path = $2")
        .bind(path.clone())
        .fetch_optional(tx.conn())
        .await?;
    if existing.is_none() {
        let count: i64 = tx
            .query("SELECT COUNT(*) FROM theme_files WHERE tenant_id = $1")
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        if count >= theme::MAX_FILES {
            return Err(ApiError::rule(
                "theme_file_limit",
                Some("path"),
                format!("an academy keeps at most {} theme files", theme::MAX_FILES),
            ));
        }
    }
    let now = now_ms();
    let size = body.len() as i64;
    tx.query(
        "INSERT INTO theme_files (tenant_id, path, content, size, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, path) DO UPDATE SET content = excluded.content, size = excluded.size, \
         updated_at = excluded.updated_at",
    )
    .bind(path.clone())
    .bind(body.to_vec())
    .bind(size)
    .bind(now)
    .execute(tx.conn())
    .await?;
    upsert(&mut tx, None, true).await?;
    let after = json!({"path": path, "size": size});
    record(
        &mut tx,
        &caller.actor(),
        Change::created("theme.file_upload", "theme_file", &path, after),
    )
    .await?;
    tx.commit().await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(theme_file(path, size, now))))
}

async fn remove_file(caller: Caller, Path(path): Path<String>) -> ApiResult<StatusCode> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    theme::check_path(&path)?;
    let mut tx = caller.db().begin().await?;
    let deleted = tx
        .query("DELETE FROM theme_files WHERE tenant_id = $1 AND path = $2")
        .bind(path.clone())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound { what: "theme file" });
    }
    upsert(&mut tx, None, true).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("theme.file_delete", "theme_file", &path, json!({"path": path})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
