//! Branding plugins: change the academy's theme for one page, by the learner's organizations and locale.
//!
//! The host calls [`Branding::brand`] while rendering a portal page. It fails open: on an error or fault
//! the page renders with the static theme, so a branding plugin can never take the portal down.
//!
//! ```
//! use aula_sdk::branding::{Branding, PageContext, ThemeOverrides};
//!
//! struct German;
//!
//! impl Branding for German {
//!     fn brand(context: PageContext) -> Result<ThemeOverrides, String> {
//!         let overrides = ThemeOverrides::default().color("accent", "#d9480f");
//!         Ok(match context.locale.split('-').next() {
//!             Some("de") => overrides.wording("catalog.title", "Kurse"),
//!             _ => overrides,
//!         })
//!     }
//! }
//!
//! aula_sdk::register!(branding: German);
//! ```

use std::marker::PhantomData;

use crate::__bindings::branding::exports::aula::plugin::branding_hooks as hooks;

pub use hooks::{PageContext, ThemeOverrides};

/// A branding plugin. Register the implementing type with [`register!`](crate::register)`(branding: …)`.
pub trait Branding {
    /// Overrides for one page; everything left unset stays as the theme has it. The default changes nothing.
    fn brand(context: PageContext) -> Result<ThemeOverrides, String> {
        let _ = context;
        Ok(ThemeOverrides::default())
    }
}

impl Default for ThemeOverrides {
    /// No change to the theme.
    fn default() -> Self {
        ThemeOverrides {
            colors: Vec::new(),
            logo_url: None,
            wording: Vec::new(),
            css: None,
            blocks: Vec::new(),
        }
    }
}

impl ThemeOverrides {
    /// Sets the CSS custom property `--name` (e.g. `accent`) to `value`, replacing an earlier setting.
    pub fn color(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        set(&mut self.colors, name.into(), value.into());
        self
    }

    /// Shows the logo at `url`.
    pub fn logo_url(mut self, url: impl Into<String>) -> Self {
        self.logo_url = Some(url.into());
        self
    }

    /// Replaces the theme's wording for `key` (e.g. `catalog.title`) with `text`, replacing an earlier setting.
    pub fn wording(mut self, key: impl Into<String>, text: impl Into<String>) -> Self {
        set(&mut self.wording, key.into(), text.into());
        self
    }

    /// Adds CSS to the page (the host escapes it).
    pub fn css(mut self, css: impl Into<String>) -> Self {
        let css = css.into();
        self.css = Some(match self.css.take() {
            Some(earlier) => format!("{earlier}\n{css}"),
            None => css,
        });
        self
    }

    /// Fills the template block `name` with `content` (plain text or restricted HTML, sanitized by the host),
    /// replacing an earlier setting.
    pub fn block(mut self, name: impl Into<String>, content: impl Into<String>) -> Self {
        set(&mut self.blocks, name.into(), content.into());
        self
    }
}

fn set(pairs: &mut Vec<(String, String)>, key: String, value: String) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(pair) => pair.1 = value,
        None => pairs.push((key, value)),
    }
}

impl PageContext {
    /// The language part of the page's locale, lowercased (`de` for `de-CH`).
    pub fn language(&self) -> String {
        crate::types::language(&self.locale)
    }
}

#[doc(hidden)]
pub struct __Export<T>(PhantomData<T>);

/// What [`register!`](crate::register) checks in native builds, where nothing is exported.
#[doc(hidden)]
pub const fn __check<T: Branding>() {}

impl<T: Branding> hooks::Guest for __Export<T> {
    fn brand(context: PageContext) -> Result<ThemeOverrides, String> {
        T::brand(context)
    }
}
