//! Template helpers every theme template may use, besides handlebars' own (`if`, `each`, `eq`, `and`, …):
//!
//! - `{{t "catalog.title"}}`: the wording for the page's language, after the academy's, the organization's
//!   and the branding plugin's overrides; `{{t "catalog.count" n=3}}` fills `{n}`. An unknown key shows itself.
//! - `{{date ms}}`: a time in milliseconds as `2026-11-25`.
//! - `(concat "status." status)`: joins values into one string (for computed wording keys).

use handlebars::{Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    /// The wording of the page being rendered on this thread (rendering is synchronous).
    static WORDS: RefCell<Option<Arc<Map<String, Value>>>> = const { RefCell::new(None) };
}

/// Run `render` with `words` as the wording `{{t}}` reads. The words stay out of the page data, so a page
/// does not copy a few hundred strings into every render.
pub fn with_words<T>(words: &Arc<Map<String, Value>>, render: impl FnOnce() -> T) -> T {
    struct Reset(Option<Arc<Map<String, Value>>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let earlier = self.0.take();
            WORDS.with(|w| *w.borrow_mut() = earlier);
        }
    }
    let _reset = Reset(WORDS.with(|w| w.borrow_mut().replace(words.clone())));
    render()
}

/// Add the portal's helpers to a registry.
pub fn register(registry: &mut Handlebars<'static>) {
    registry.register_helper("t", Box::new(wording));
    registry.register_helper("date", Box::new(date));
    registry.register_helper("concat", Box::new(concat));
}

handlebars::handlebars_helper!(concat: |*args| args.iter().map(|v| match v {
    Value::String(s) => s.clone(),
    Value::Null => String::new(),
    other => other.to_string(),
}).collect::<String>());

fn wording(h: &Helper, _: &Handlebars, ctx: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    let key = h
        .param(0)
        .and_then(|p| p.value().as_str())
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("t", 0))?;
    let from_thread = WORDS.with(|w| {
        w.borrow()
            .as_ref()
            .and_then(|words| words.get(key).and_then(Value::as_str).map(str::to_owned))
    });
    let text = from_thread.or_else(|| {
        ctx.data()
            .get("words")
            .and_then(|w| w.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let mut filled = text.unwrap_or_else(|| key.to_owned());
    for (name, value) in h.hash() {
        let value = match value.value() {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        filled = filled.replace(&format!("{{{name}}}"), &value);
    }
    out.write(&handlebars::html_escape(&filled))?;
    Ok(())
}

fn date(h: &Helper, _: &Handlebars, _: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    let Some(ms) = h.param(0).and_then(|p| p.value().as_i64()) else {
        return Ok(());
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        && let Ok(s) = t.format(&format)
    {
        out.write(&s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wording_is_escaped_filled_and_falls_back_to_the_key() {
        let mut hb = Handlebars::new();
        register(&mut hb);
        let data = json!({"words": {"a": "Hello <b>{name}</b>", "n": "{n} courses"}});
        assert_eq!(
            hb.render_template(r#"{{t "a" name="<i>"}}"#, &data).unwrap(),
            "Hello &lt;b&gt;&lt;i&gt;&lt;/b&gt;"
        );
        assert_eq!(hb.render_template(r#"{{t "n" n=3}}"#, &data).unwrap(), "3 courses");
        assert_eq!(
            hb.render_template(r#"{{t "missing.key"}}"#, &data).unwrap(),
            "missing.key"
        );
        assert_eq!(hb.render_template("{{date 0}}", &data).unwrap(), "1970-01-01");
        let words = Arc::new(json!({"a": "from the page's language"}).as_object().unwrap().clone());
        let out = with_words(&words, || hb.render_template(r#"{{t "a"}}"#, &data).unwrap());
        assert_eq!(out, "from the page&#x27;s language");
        assert_eq!(hb.render_template(r#"{{t "n" n=1}}"#, &data).unwrap(), "1 courses");
    }
}
