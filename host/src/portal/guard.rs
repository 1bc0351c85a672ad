//! Templates an academy uploads are code that runs in the host on every page. Two walls keep them from taking
//! the host down (handlebars itself refuses only a template that includes itself at its top level; any other
//! recursion overflows the thread's stack, which aborts the whole process):
//!
//! 1. [`check`], at upload and whenever an academy's theme is built: the partials every template includes
//!    form a graph, and a cycle through an uploaded template is refused, as are partial names computed at
//!    render time (`{{> (lookup …)}}`, which no static check can follow), inline partials and decorators.
//!    The default theme's own recursion (an organization tree that includes itself once per level) is
//!    bounded by the data it walks.
//! 2. [`wrap`], at render: every template's body runs inside the `__guard` block helper, which counts how
//!    deeply templates are nested on this thread and checks how much stack is left, and ends the render with
//!    an error long before the stack runs out. The page then falls back to the default theme.

use handlebars::template::{DecoratorTemplate, Parameter, Template, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason, Renderable,
};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

/// Most templates nested in one another on one page (partials within partials within layouts).
pub const MAX_DEPTH: usize = 100;
/// Stack a render must leave free: deeper than this, it stops with an error instead of overflowing.
const MIN_STACK: usize = 256 * 1024;
/// The name of the guarding block helper.
const GUARD: &str = "__guard";

thread_local! {
    /// How many guarded templates are being rendered on this thread, one inside the other.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Add the guard helper to a registry.
pub fn register(registry: &mut Handlebars<'static>) {
    registry.register_helper(GUARD, Box::new(Guard));
    // `{{log}}` writes to the host's log from inside any loop a template runs: not for academies.
    registry.unregister_helper("log");
}

struct Guard;

impl HelperDef for Guard {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
            }
        }
        let depth = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        let _leave = Leave;
        if depth > MAX_DEPTH {
            return Err(RenderErrorReason::Other(format!("templates are nested more than {MAX_DEPTH} deep")).into());
        }
        if stacker::remaining_stack().is_some_and(|left| left < MIN_STACK) {
            return Err(RenderErrorReason::Other("templates are nested too deeply for the stack".into()).into());
        }
        match h.template() {
            Some(body) => body.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

/// The template with its body inside the guard.
pub fn wrap(mut template: Template) -> Template {
    let Ok(mut shell) = Template::compile(&format!("{{{{#{GUARD}}}}}{{{{/{GUARD}}}}}")) else {
        return template;
    };
    let name = template.name.take();
    match shell.elements.first_mut() {
        Some(TemplateElement::HelperBlock(block)) => block.template = Some(template),
        _ => return template,
    }
    shell.name = name;
    shell
}

/// Compile `source` as template `name` into `registry`, guarded.
pub fn register_template(registry: &mut Handlebars<'static>, name: &str, source: &str) -> Result<(), String> {
    registry
        .register_template_string(name, source)
        .map_err(|e| e.to_string())?;
    if let Some(compiled) = registry.get_template(name).cloned() {
        registry.register_template(name, wrap(compiled));
    }
    Ok(())
}

/// What a template includes.
#[derive(Debug, Default)]
struct Calls {
    partials: BTreeSet<String>,
    problems: Vec<String>,
}

fn partial_name(d: &DecoratorTemplate) -> Result<String, String> {
    match &d.name {
        Parameter::Name(name) => Ok(name.trim_matches(|c| c == '\'' || c == '"').to_owned()),
        Parameter::Literal(serde_json::Value::String(name)) => Ok(name.clone()),
        _ => Err("names a partial that is computed at render time; name partials literally".into()),
    }
}

fn walk(template: &Template, calls: &mut Calls) {
    for element in &template.elements {
        match element {
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                match partial_name(d) {
                    Ok(name) if name == "@partial-block" => {}
                    Ok(name) => {
                        calls.partials.insert(name);
                    }
                    Err(problem) => calls.problems.push(problem),
                }
                // The content of a partial block is rendered by the template that holds it.
                if let Some(inner) = &d.template {
                    walk(inner, calls);
                }
            }
            TemplateElement::HelperBlock(h) => {
                for inner in [&h.template, &h.inverse].into_iter().flatten() {
                    walk(inner, calls);
                }
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                calls.problems.push(
                    "uses a decorator or an inline partial; themes may include the theme's templates only".into(),
                );
            }
            _ => {}
        }
    }
}

/// Check a theme: `templates` are every template by name, each `true` when the academy uploaded it. Returns
/// each refused template's problem, naming it; empty when the theme may run.
pub fn check(templates: &BTreeMap<String, (Template, bool)>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut graph: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, (template, uploaded)) in templates {
        let mut calls = Calls::default();
        walk(template, &mut calls);
        if *uploaded {
            problems.extend(calls.problems.into_iter().map(|p| format!("templates/{name}.hbs {p}")));
        }
        graph.insert(name.as_str(), calls.partials);
    }
    // A cycle through an uploaded template would recurse on every page: find one by depth-first search.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        name: &'a str,
        graph: &'a BTreeMap<&'a str, BTreeSet<String>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|n| (*n).to_owned()).collect();
                cycle.push(name.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(name, Mark::Open);
        path.push(name);
        if let Some(callees) = graph.get(name) {
            for callee in callees {
                if let Some((key, _)) = graph.get_key_value(callee.as_str())
                    && let Some(cycle) = visit(key, graph, marks, path)
                {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for name in graph.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(name, &graph, &mut marks, &mut path)
            && cycle
                .iter()
                .any(|n| templates.get(n).is_some_and(|(_, uploaded)| *uploaded))
        {
            problems.push(format!(
                "templates include one another in a circle ({}); a page would never finish",
                cycle.join(" → ")
            ));
            break;
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theme(sources: &[(&str, &str, bool)]) -> BTreeMap<String, (Template, bool)> {
        sources
            .iter()
            .map(|(name, source, uploaded)| {
                let t = Template::compile(source).expect("compiles");
                ((*name).to_owned(), (t, *uploaded))
            })
            .collect()
    }

    #[test]
    fn cycles_through_uploads_are_refused() {
        let ok = theme(&[
            ("layout", "<main>{{> @partial-block}}</main>", false),
            ("home", "{{#> layout}}hi{{/layout}}", true),
        ]);
        assert!(check(&ok).is_empty());
        let direct = theme(&[("layout", "{{#if x}}{{> layout}}{{/if}}", true)]);
        assert!(check(&direct)[0].contains("layout → layout"), "{:?}", check(&direct));
        let indirect = theme(&[
            ("layout", "{{> home}}", true),
            ("home", "{{#> layout}}{{/layout}}", false),
        ]);
        assert!(check(&indirect)[0].contains("circle"), "{:?}", check(&indirect));
        // The default theme's own self-inclusion (a tree) is bounded by its data.
        let default_tree = theme(&[("org_node", "{{#each children}}{{> org_node}}{{/each}}", false)]);
        assert!(check(&default_tree).is_empty());
        let dynamic = theme(&[("home", "{{> (lookup this \"x\")}}", true)]);
        assert!(check(&dynamic)[0].contains("computed at render time"));
        let inline = theme(&[("home", "{{#*inline \"a\"}}{{> a}}{{/inline}}{{> a}}", true)]);
        assert!(check(&inline)[0].contains("inline partial"));
    }

    #[test]
    fn a_recursion_that_slips_through_ends_in_an_error_not_an_abort() {
        let mut registry = Handlebars::new();
        register(&mut registry);
        register_template(&mut registry, "a", "<{{> b}}>").unwrap();
        register_template(&mut registry, "b", "{{#if true}}{{> a}}{{/if}}").unwrap();
        let err = registry.render("a", &serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
        // The guard changes nothing else: output, escaping and errors in place.
        register_template(&mut registry, "c", "{{#each xs}}{{@index}}:{{this}} {{/each}}{{y}}").unwrap();
        let out = registry
            .render("c", &serde_json::json!({"xs": ["a", "<b>"], "y": "&"}))
            .unwrap();
        assert_eq!(out, "0:a 1:&lt;b&gt; &amp;");
        assert!(registry.render("c", &serde_json::json!({})).is_ok());
        assert_eq!(DEPTH.with(Cell::get), 0, "the depth unwinds after an error");
    }
}
