//! Branding: theme overrides for one page.

use super::unexpected;
use crate::db::TenantDb;
use crate::plugins::bindings::branding::exports::aula::plugin::branding_hooks as wit;
use crate::plugins::host::PluginHost;
use crate::plugins::host_api::View;
use crate::plugins::runtime::{HookCall, HookError, HookOutput, Loaded};

/// The page being rendered.
#[derive(Debug, Clone)]
pub struct Page {
    /// Which page (`catalog`, `home`, …).
    pub page: String,
    /// The language it is rendered in.
    pub locale: String,
    /// The viewer's organization paths (ids from the root down), one per membership.
    pub org_paths: Vec<Vec<String>>,
    /// The signed-in viewer, if any.
    pub user_id: Option<String>,
}

/// What a branding plugin changes on the page; the portal checks every value as it would stored settings.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Color name → CSS color.
    pub colors: Vec<(String, String)>,
    /// Logo address.
    pub logo_url: Option<String>,
    /// Wording key → text.
    pub wording: Vec<(String, String)>,
    /// Extra CSS.
    pub css: Option<String>,
    /// Block name → HTML.
    pub blocks: Vec<(String, String)>,
}

impl From<wit::ThemeOverrides> for Overrides {
    fn from(o: wit::ThemeOverrides) -> Overrides {
        Overrides {
            colors: o.colors,
            logo_url: o.logo_url,
            wording: o.wording,
            css: o.css,
            blocks: o.blocks,
        }
    }
}

impl PluginHost {
    /// The overrides one branding plugin gives a page.
    pub async fn brand(
        &self,
        tenant: &TenantDb,
        loaded: &Loaded,
        view: View,
        page: Page,
    ) -> Result<Overrides, HookError> {
        let context = wit::PageContext {
            page: page.page,
            locale: page.locale,
            org_paths: page.org_paths,
            user_id: page.user_id,
        };
        match self.call(tenant, loaded, view, HookCall::Brand(context)).await.result? {
            HookOutput::Brand(o) => Ok(o.into()),
            other => Err(unexpected("brand", &other)),
        }
    }
}
