//! A branding plugin for the host's portal tests: on the `home` and `login` pages it sets the accent color,
//! the `home.lead` wording (naming the page's locale and how many organizations the learner is in) and a
//! banner block with some markup the host must sanitize; on `catalog` it traps, so the page must render with
//! the static theme and the fault be recorded; on `error` it answers with an error.

use aula_sdk::branding::{Branding, PageContext, ThemeOverrides};

struct Switch;

impl Branding for Switch {
    fn brand(context: PageContext) -> Result<ThemeOverrides, String> {
        match context.page.as_str() {
            "catalog" => panic!("brand-switch traps on the catalog, as asked"),
            "error" => Err("brand-switch refuses the error page".into()),
            _ => Ok(ThemeOverrides::default()
                .color("accent", "#e8590c")
                .color("link", "red;} body{display:none")
                .wording(
                    "home.lead",
                    format!(
                        "Branded by plugin ({}, {} orgs)",
                        context.locale,
                        context.org_paths.len()
                    ),
                )
                .block("banner", "<strong>Plugin banner</strong><script>alert(1)</script>")),
        }
    }
}

aula_sdk::register!(branding: Switch);
