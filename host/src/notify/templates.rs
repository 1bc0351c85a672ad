//! Message templates: the default theme's (`themes/default/mail/<language>/<kind>.hbs`, embedded in the
//! binary) unless the academy stored its own for that kind and language (`/api/v1/notification-templates`).
//!
//! A template is handlebars text whose first line is `Subject: …` and whose rest is the plain-text body. An
//! academy's template may add an HTML body; otherwise the text is turned into paragraphs. Either way the HTML
//! goes into the branded layout (`mail/layout.html.hbs`): the academy's name, logo and accent color.

use super::dispatch::Person;
use crate::db::TenantTx;
use crate::error::ApiError;
use crate::outbox::Kind;
use handlebars::Handlebars;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashMap;

/// Languages the default templates are written in.
pub const DEFAULT_LANGUAGES: [&str; 2] = ["en", "de"];

/// One message's text in one language.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The language it is written in.
    pub locale: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body, in the branded layout.
    pub html: Option<String>,
}

/// A template as stored or embedded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Template {
    /// Handlebars for the subject line.
    pub subject: String,
    /// Handlebars for the plain-text body.
    pub body_text: String,
    /// Handlebars for the HTML body (escaped); none: the text in paragraphs.
    pub body_html: Option<String>,
}

/// The embedded default template of a kind in a language (`en`, `de`).
pub fn default_template(kind: Kind, language: &str) -> Option<Template> {
    let file = crate::portal::theme::default_file(&format!("mail/{language}/{}.hbs", kind.as_str()))?;
    let source = String::from_utf8_lossy(&file).into_owned();
    split(&source)
}

fn split(source: &str) -> Option<Template> {
    let (first, rest) = source.split_once('\n')?;
    let subject = first.strip_prefix("Subject:")?.trim().to_owned();
    Some(Template {
        subject,
        body_text: rest.trim_start_matches(['\r', '\n']).to_owned(),
        body_html: None,
    })
}

fn text_registry() -> Handlebars<'static> {
    let mut hbs = Handlebars::new();
    hbs.register_escape_fn(handlebars::no_escape);
    hbs
}

/// Check an academy's template: every part must compile. Errors name the field.
pub fn check(template: &Template) -> Result<(), ApiError> {
    let text = text_registry();
    let html = Handlebars::new();
    let sample = json!({});
    for (field, source, registry) in [
        ("subject", Some(&template.subject), &text),
        ("body_text", Some(&template.body_text), &text),
        ("body_html", template.body_html.as_ref(), &html),
    ] {
        if let Some(source) = source {
            registry
                .render_template(source, &sample)
                .map_err(|e| ApiError::invalid(field, format!("does not compile: {}", first_line(&e.to_string()))))?;
        }
    }
    if template.subject.contains('\n') {
        return Err(ApiError::invalid("subject", "must be one line"));
    }
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Where links in messages point (the academy's portal); none where it is not known.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// `https://learn.acme.example`
    pub academy_url: Option<String>,
}

/// Renders an academy's messages: its templates, name, branding and languages, read once per batch.
pub struct Composer {
    academy_name: String,
    academy_url: Option<String>,
    default_locale: String,
    allowed: Vec<String>,
    accent: String,
    accent_text: String,
    logo_url: Option<String>,
    stored: HashMap<(String, String), Template>,
    text: Handlebars<'static>,
    html: Handlebars<'static>,
}

impl Composer {
    /// Read the academy's name, languages, branding and templates.
    pub async fn for_tenant(tx: &mut TenantTx) -> Result<Composer, sqlx::Error> {
        Composer::with_links(tx, Links::default()).await
    }

    /// As [`Composer::for_tenant`], with links to the portal.
    pub async fn with_links(tx: &mut TenantTx, links: Links) -> Result<Composer, sqlx::Error> {
        let tenant = tx
            .query("SELECT name, settings FROM tenants WHERE id = $1")
            .fetch_one(tx.conn())
            .await?;
        let settings: crate::tenancy::TenantSettings =
            serde_json::from_str(&tenant.try_get::<String, _>("settings")?).unwrap_or_default();
        let branding: Option<String> = tx
            .query("SELECT settings FROM tenant_branding WHERE tenant_id = $1")
            .fetch_optional(tx.conn())
            .await?
            .map(|r| r.try_get("settings"))
            .transpose()?;
        let branding: crate::portal::branding::BrandingSettings =
            branding.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
        let mut stored = HashMap::new();
        for row in tx
            .query(
                "SELECT kind, locale, subject, body_text, body_html FROM notification_templates WHERE tenant_id = $1",
            )
            .fetch_all(tx.conn())
            .await?
        {
            stored.insert(
                (row.try_get("kind")?, row.try_get("locale")?),
                Template {
                    subject: row.try_get("subject")?,
                    body_text: row.try_get("body_text")?,
                    body_html: row.try_get("body_html")?,
                },
            );
        }
        let color = |name: &str, fallback: &str| {
            branding
                .colors
                .get(name)
                .filter(|c| crate::portal::branding::valid_color(c))
                .cloned()
                .unwrap_or_else(|| fallback.to_owned())
        };
        // Only absolute logo addresses work in a mail client; a theme path is made absolute when the
        // portal's address is known.
        let logo_url = branding.logo_url.as_deref().and_then(|u| {
            if u.starts_with("https://") {
                Some(u.to_owned())
            } else {
                links
                    .academy_url
                    .as_deref()
                    .filter(|_| u.starts_with('/'))
                    .map(|base| format!("{base}{u}"))
            }
        });
        Ok(Composer {
            academy_name: branding.name.clone().unwrap_or(tenant.try_get("name")?),
            academy_url: links.academy_url,
            default_locale: settings.default_locale.clone(),
            allowed: settings.allowed_locales.clone(),
            accent: color("accent", "#1f6feb"),
            accent_text: color("accent-text", "#ffffff"),
            logo_url,
            stored,
            text: text_registry(),
            html: Handlebars::new(),
        })
    }

    /// The academy's address, if known.
    pub fn academy_url(&self) -> Option<&str> {
        self.academy_url.as_deref()
    }

    /// The language a person gets their messages in: their own when the academy allows it, else the
    /// academy's default.
    pub fn locale_for(&self, person: &Person) -> String {
        match person.locale.as_deref() {
            Some(l) if self.allowed.is_empty() || self.allowed.iter().any(|a| a.eq_ignore_ascii_case(l)) => {
                l.to_owned()
            }
            _ => self.default_locale.clone(),
        }
    }

    /// The template for a kind in a locale: the academy's for the exact locale, then for its language, then
    /// the default for the language, then the English default. Also says which locale it is written in.
    pub fn template(&self, kind: Kind, locale: &str) -> (Template, String) {
        let language = locale.split(['-', '_']).next().unwrap_or(locale).to_ascii_lowercase();
        for candidate in [locale, language.as_str()] {
            if let Some(t) = self.stored.get(&(kind.as_str().to_owned(), candidate.to_owned())) {
                return (t.clone(), candidate.to_owned());
            }
        }
        if let Some(t) = default_template(kind, &language) {
            return (t, language);
        }
        let t = default_template(kind, "en").unwrap_or_else(|| Template {
            subject: kind.as_str().into(),
            body_text: String::new(),
            body_html: None,
        });
        (t, "en".into())
    }

    /// Render a kind for a person with these variables (`recipient`, `academy` and `locale` are added).
    pub fn compose(&self, kind: Kind, person: &Person, vars: &Value) -> Draft {
        let locale = self.locale_for(person);
        let (template, written_in) = self.template(kind, &locale);
        let mut data = vars.clone();
        if let Value::Object(map) = &mut data {
            map.insert(
                "recipient".into(),
                json!({ "name": person.name, "email": person.email }),
            );
            map.insert(
                "academy".into(),
                json!({ "name": self.academy_name, "url": self.academy_url }),
            );
            map.insert("locale".into(), json!(written_in));
        }
        self.render(&template, &data, written_in)
    }

    /// Render a template with data; a part that fails to render (a stored template that no longer fits)
    /// falls back to its raw text, so a message is never lost to a template mistake.
    pub fn render(&self, template: &Template, data: &Value, locale: String) -> Draft {
        let text = |source: &str| {
            self.text
                .render_template(source, data)
                .unwrap_or_else(|_| source.to_owned())
        };
        let subject = text(&template.subject)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let body = text(&template.body_text);
        let inner = match &template.body_html {
            Some(source) => self
                .html
                .render_template(source, data)
                .unwrap_or_else(|_| paragraphs(&body)),
            None => paragraphs(&body),
        };
        let layout = crate::portal::theme::default_file("mail/layout.html.hbs")
            .map(|f| String::from_utf8_lossy(&f).into_owned())
            .unwrap_or_else(|| "{{{body}}}".into());
        let html = self
            .html
            .render_template(
                &layout,
                &json!({
                    "locale": locale,
                    "subject": subject,
                    "academy": { "name": self.academy_name, "url": self.academy_url },
                    "accent": self.accent,
                    "accent_text": self.accent_text,
                    "logo_url": self.logo_url,
                    "body": inner,
                }),
            )
            .ok();
        Draft {
            locale,
            subject,
            text: body,
            html,
        }
    }
}

/// Plain text as HTML paragraphs: escaped, blank lines part paragraphs, line breaks kept, web addresses
/// made links.
pub fn paragraphs(text: &str) -> String {
    let mut out = String::new();
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        out.push_str("<p>");
        for (i, line) in block.lines().enumerate() {
            if i > 0 {
                out.push_str("<br>");
            }
            for (j, word) in line.split(' ').enumerate() {
                if j > 0 {
                    out.push(' ');
                }
                let escaped = handlebars::html_escape(word);
                if word.starts_with("https://") || word.starts_with("http://") {
                    out.push_str(&format!("<a href=\"{escaped}\">{escaped}</a>"));
                } else {
                    out.push_str(&escaped);
                }
            }
        }
        out.push_str("</p>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_default_in_every_language() {
        for language in DEFAULT_LANGUAGES {
            for kind in Kind::ALL {
                let t = default_template(kind, language)
                    .unwrap_or_else(|| panic!("mail/{language}/{}.hbs is missing or has no subject", kind.as_str()));
                check(&t).unwrap_or_else(|e| panic!("mail/{language}/{}.hbs: {e:?}", kind.as_str()));
                assert!(!t.body_text.trim().is_empty());
            }
        }
    }

    #[test]
    fn paragraphs_escape_and_link() {
        let html = paragraphs("Hi <b>you</b>\nline two\n\nsee https://acme.test/x?a=1&b=2");
        assert!(html.contains("Hi &lt;b&gt;you&lt;/b&gt;<br>line two"), "{html}");
        assert!(
            html.contains("<a href=\"https://acme.test/x?a&#x3D;1&amp;b&#x3D;2\">"),
            "{html}"
        );
    }

    #[test]
    fn a_template_that_does_not_compile_names_its_field() {
        let bad = Template {
            subject: "ok".into(),
            body_text: "{{#if}}".into(),
            body_html: None,
        };
        let ApiError::BadRequest { field, .. } = check(&bad).unwrap_err() else {
            panic!("not a validation error")
        };
        assert_eq!(field.as_deref(), Some("body_text"));
    }
}
