//! The portal's theme: the default theme embedded in the binary (`themes/default/`), and each academy's
//! uploaded overrides.
//!
//! Uploaded files live in the database (`theme_files`), so every replica and every export sees them. Each
//! replica keeps a copy of an academy's files under `<themes_dir>/<tenant id>/v<version>/` and reads them only
//! through a `cap_std` directory opened at that root: a path can name nothing outside the academy's own
//! files, whatever it contains. Uploads are checked first ([`check_path`]) so a bad path gets a clear error.

use crate::db::TenantDb;
use crate::error::ApiError;
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use handlebars::Handlebars;
use sqlx::Row;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The default theme, compiled into the binary.
#[derive(rust_embed::Embed)]
#[folder = "../themes/default/"]
struct DefaultTheme;

/// Largest uploaded theme file.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most uploaded files per academy.
pub const MAX_FILES: i64 = 200;

/// What an uploaded theme file is, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `templates/<name>.hbs`, replacing the default template of that name.
    Template,
    /// `assets/…`, served at `/theme/…` with this content type.
    Asset(&'static str),
}

/// The content type of an asset, by its extension; `None` for a type the portal does not serve.
pub fn asset_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        _ => return None,
    })
}

/// Check an uploaded file's path and say what it is. Refused, naming the field `path`: absolute paths, `..`,
/// empty or hidden segments, backslashes, characters outside `[A-Za-z0-9._-/]`, templates the default theme
/// does not have, and asset types the portal does not serve.
pub fn check_path(path: &str) -> Result<FileKind, ApiError> {
    let bad = |why: &str| ApiError::invalid("path", format!("{path:?} {why}"));
    if path.is_empty() || path.len() > 200 {
        return Err(bad("must be 1–200 characters"));
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err(bad(
            "must be relative to the theme (no leading /, no drive, no backslash)",
        ));
    }
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." || segment.starts_with('.') {
            return Err(bad("must not contain empty, `.`, `..` or hidden segments"));
        }
        if !segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad("may only use letters, digits, `.`, `_`, `-` and `/`"));
        }
    }
    if let Some(name) = path.strip_prefix("templates/").and_then(|p| p.strip_suffix(".hbs")) {
        if DefaultTheme::get(path).is_none() {
            return Err(bad(&format!(
                "is not a template of the default theme (there is no `{name}` to replace)"
            )));
        }
        return Ok(FileKind::Template);
    }
    if path.starts_with("assets/") {
        return asset_type(path)
            .map(FileKind::Asset)
            .ok_or_else(|| bad("is not a served asset type (css, png, jpg, gif, webp, svg, ico, woff, woff2)"));
    }
    Err(bad("must be below templates/ or assets/"))
}

/// The template name of a theme path: `templates/learner/catalog.hbs` → `learner/catalog`.
fn template_name(path: &str) -> Option<&str> {
    path.strip_prefix("templates/")?.strip_suffix(".hbs")
}

/// Compile one template (guarded: see [`super::guard`]), naming the file and the line in the error.
fn compile(registry: &mut Handlebars<'static>, path: &str, source: &str) -> Result<(), ApiError> {
    let name = template_name(path).unwrap_or(path).to_owned();
    super::guard::register_template(registry, &name, source)
        .map_err(|e| ApiError::invalid("content", format!("{path} does not compile: {e}")))
}

/// What [`super::guard::check`] says of a registry whose `uploaded` templates came from the academy.
fn theme_problems(registry: &Handlebars<'static>, uploaded: &std::collections::BTreeSet<String>) -> Vec<String> {
    let templates = registry
        .get_templates()
        .iter()
        .map(|(name, t)| (name.clone(), (t.clone(), uploaded.contains(name))))
        .collect();
    super::guard::check(&templates)
}

/// An embedded file of the default theme.
pub fn default_file(path: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    DefaultTheme::get(path).map(|f| f.data)
}

/// Every path of the default theme (for the branding API's file list).
pub fn default_paths() -> impl Iterator<Item = std::borrow::Cow<'static, str>> {
    DefaultTheme::iter()
}

/// One academy's theme at one version: its templates compiled over the default ones, and its files.
pub struct TenantTheme {
    /// The `theme_version` these were built from.
    pub version: i64,
    /// Templates: the default theme's, with this academy's replacements.
    pub registry: Arc<Handlebars<'static>>,
    /// The academy's uploaded files, when it has any.
    files: Option<Dir>,
}

impl TenantTheme {
    /// An uploaded asset of this academy (`assets/…`), read through its own directory.
    pub fn asset(&self, path: &str) -> Option<Vec<u8>> {
        self.files.as_ref()?.read(path).ok()
    }
}

/// The default theme and every academy's theme, as this replica has them.
pub struct Themes {
    default: Arc<Handlebars<'static>>,
    root: PathBuf,
    tenants: Mutex<HashMap<String, Arc<TenantTheme>>>,
}

impl Themes {
    /// The default theme compiled, with academies' copies kept below `root`. Fails when a default template
    /// does not compile (a build of Aula with a broken theme must not start).
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Themes> {
        let mut registry = Handlebars::new();
        super::helpers::register(&mut registry);
        super::guard::register(&mut registry);
        for path in DefaultTheme::iter() {
            if template_name(&path).is_none() {
                continue;
            }
            let file = DefaultTheme::get(&path).expect("listed files exist");
            let source = std::str::from_utf8(&file.data)
                .map_err(|_| anyhow::anyhow!("default theme file {path} is not UTF-8"))?;
            compile(&mut registry, &path, source).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(Themes {
            default: Arc::new(registry),
            root: root.into(),
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// The default templates.
    pub fn default_registry(&self) -> &Arc<Handlebars<'static>> {
        &self.default
    }

    /// An academy's theme at `version` (from its branding row). Version 0 means no uploads: the default theme.
    /// Another version is built once per replica: the files are read from the database, written to this
    /// replica's copy, and compiled from there.
    pub async fn tenant(&self, db: &TenantDb, version: i64) -> Result<Arc<TenantTheme>, ApiError> {
        let tenant_id = db.tenant_id().to_owned();
        if let Some(theme) = self.tenants.lock().ok().and_then(|t| t.get(&tenant_id).cloned())
            && theme.version == version
        {
            return Ok(theme);
        }
        let theme = Arc::new(if version == 0 {
            TenantTheme {
                version,
                registry: self.default.clone(),
                files: None,
            }
        } else {
            let mut tx = db.begin_read().await?;
            let rows = tx
                .query("SELECT path, content FROM theme_files WHERE tenant_id = $1 ORDER BY path")
                .fetch_all(tx.conn())
                .await?;
            tx.commit().await?;
            let mut files = Vec::with_capacity(rows.len());
            for row in rows {
                files.push((row.try_get::<String, _>(0)?, row.try_get::<Vec<u8>, _>(1)?));
            }
            let root = self.root.clone();
            let default = self.default.clone();
            tokio::task::spawn_blocking(move || build(&root, &tenant_id, version, &files, &default))
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("theme build panicked: {e}")))?
                .map_err(ApiError::Internal)?
        });
        if let Ok(mut tenants) = self.tenants.lock() {
            tenants.insert(db.tenant_id().to_owned(), theme.clone());
        }
        Ok(theme)
    }

    /// Compile a would-be upload over the default theme and the academy's `other` uploaded templates (path,
    /// source), so a broken template, or one that would make pages include one another forever, is refused
    /// before it is stored.
    pub fn check_template(&self, path: &str, source: &[u8], others: &[(String, Vec<u8>)]) -> Result<(), ApiError> {
        let source = std::str::from_utf8(source).map_err(|_| ApiError::invalid("content", "must be UTF-8 text"))?;
        let mut scratch = (*self.default).clone();
        let mut uploaded = std::collections::BTreeSet::new();
        for (other, text) in others.iter().filter(|(p, _)| p != path) {
            if let Some(name) = template_name(other) {
                // Stored uploads compiled when they were stored; one that no longer does is skipped here too.
                if compile(&mut scratch, other, &String::from_utf8_lossy(text)).is_ok() {
                    uploaded.insert(name.to_owned());
                }
            }
        }
        compile(&mut scratch, path, source)?;
        if let Some(name) = template_name(path) {
            uploaded.insert(name.to_owned());
        }
        let problems = theme_problems(&scratch, &uploaded);
        if !problems.is_empty() {
            return Err(ApiError::Unprocessable {
                code: "template_refused",
                message: format!("{path} cannot be used: {}", problems.join("; ")),
                field: Some("content".into()),
                details: Some(serde_json::json!({ "problems": problems })),
            });
        }
        Ok(())
    }
}

/// Write an academy's files to `<root>/<tenant>/v<version>/` (first writer wins; a half-written copy is never
/// used because it is built under a temporary name and renamed), open that directory, and compile the
/// templates read through it.
fn build(
    root: &std::path::Path,
    tenant_id: &str,
    version: i64,
    files: &[(String, Vec<u8>)],
    default: &Handlebars<'static>,
) -> anyhow::Result<TenantTheme> {
    std::fs::create_dir_all(root.join(tenant_id))?;
    let tenant_dir = Dir::open_ambient_dir(root.join(tenant_id), ambient_authority())?;
    let name = format!("v{version}");
    if !tenant_dir.exists(&name) {
        let scratch = format!(".{name}-{}", uuid::Uuid::new_v4().simple());
        tenant_dir.create_dir(&scratch)?;
        let dir = tenant_dir.open_dir(&scratch)?;
        for (path, content) in files {
            // Paths were checked on upload; the directory refuses anything that would leave it regardless.
            if let Some((parent, _)) = path.rsplit_once('/') {
                dir.create_dir_all(parent)?;
            }
            dir.write(path, content)?;
        }
        if tenant_dir.rename(&scratch, &tenant_dir, &name).is_err() {
            // Another request built it first.
            tenant_dir.remove_dir_all(&scratch).ok();
        }
    }
    // Older versions of this academy's files are no longer needed on this replica.
    for entry in tenant_dir.entries()?.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if entry_name != name && entry_name.starts_with('v') {
            tenant_dir.remove_dir_all(&entry_name).ok();
        }
    }
    let dir = tenant_dir.open_dir(&name)?;
    let mut registry = default.clone();
    let mut uploaded = std::collections::BTreeSet::new();
    for (path, _) in files {
        if template_name(path).is_none() {
            continue;
        }
        let source = dir.read_to_string(path)?;
        if let Some(name) = template_name(path) {
            uploaded.insert(name.to_owned());
        }
        if let Err(e) = compile(&mut registry, path, &source) {
            // Checked on upload; a template that no longer compiles (after an upgrade) falls back to the default.
            tracing::warn!(tenant = %tenant_id, %path, error = %e, "an uploaded template does not compile; the default is used");
            if let Some(name) = template_name(path) {
                let original = default_file(path).expect("checked on upload: the default has it");
                super::guard::register_template(&mut registry, name, &String::from_utf8_lossy(&original))
                    .map_err(anyhow::Error::msg)?;
            }
        }
    }
    // Checked on upload; a theme that fails the check now (the default templates changed with an upgrade, or
    // it was stored before the check existed) runs on the default templates, its assets kept.
    let problems = theme_problems(&registry, &uploaded);
    if !problems.is_empty() {
        tracing::warn!(tenant = %tenant_id, problems = ?problems, "an academy's templates were refused; the default templates are used");
        registry = default.clone();
    }
    Ok(TenantTheme {
        version,
        registry: Arc::new(registry),
        files: Some(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_theme_are_refused() {
        for bad in [
            "../x.css",
            "assets/../../etc/passwd.css",
            "/etc/passwd",
            "assets//a.css",
            "assets/.hidden.css",
            "C:/a.css",
            "assets\\a.css",
            "templates/nope.hbs",
            "assets/a.exe",
            "other/a.css",
        ] {
            let e = check_path(bad).expect_err(bad);
            assert!(
                matches!(e, ApiError::BadRequest { ref field, .. } if field.as_deref() == Some("path")),
                "{bad}"
            );
        }
        assert_eq!(
            check_path("assets/css/site.css").unwrap(),
            FileKind::Asset("text/css; charset=utf-8")
        );
        assert_eq!(check_path("templates/layout.hbs").unwrap(), FileKind::Template);
    }

    #[test]
    fn the_directory_refuses_escapes_even_unchecked() {
        let root = std::env::temp_dir().join(format!("aula-theme-{}", uuid::Uuid::new_v4().simple()));
        let default = Handlebars::new();
        let theme = build(&root, "t1", 1, &[("assets/a.css".into(), b"a{}".to_vec())], &default).unwrap();
        std::fs::create_dir_all(root.join("t2")).unwrap();
        std::fs::write(root.join("t2/secret.css"), "secret").unwrap();
        assert_eq!(theme.asset("assets/a.css").as_deref(), Some(&b"a{}"[..]));
        assert!(theme.asset("../../t2/secret.css").is_none());
        assert!(theme.asset(&root.join("t2/secret.css").display().to_string()).is_none());
        std::fs::remove_dir_all(root).ok();
    }
}
