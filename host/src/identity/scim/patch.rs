//! PATCH (RFC 7644 §3.5.2) on a resource as SCIM shows it: `add`, `replace` and `remove`, with or without a
//! path, paths with a value filter (`emails[type eq "work"].value`, `members[value eq "…"]`) and paths into
//! the enterprise extension (`urn:…:enterprise:2.0:User:manager`). The caller writes the result like a PUT.

use super::filter::{self, Comparison, Op as FilterOp};
use super::{ENTERPRISE, GROUP, MAX_OPERATIONS, ScimError, USER, get, key_of};
use serde_json::{Map, Value};

/// A PATCH operation's verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Add,
    Replace,
    Remove,
}

/// Where an operation acts.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// In the enterprise extension (else the core attributes).
    extension: bool,
    /// The attribute.
    attribute: String,
    /// Which values of a multi-valued attribute.
    filter: Option<Vec<Comparison>>,
    /// A sub-attribute of the attribute (or of the filtered values).
    sub: Option<String>,
}

/// Apply a PatchOp request body to `resource`. `read_only` names the attributes a client may not change.
pub fn apply(resource: &mut Map<String, Value>, body: &Value, read_only: &[&str]) -> Result<(), ScimError> {
    let body = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH request is a JSON object"))?;
    if let Some(schemas) = get(body, "schemas") {
        let names_patch = schemas
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(super::PATCH_OP)));
        if !names_patch {
            return Err(ScimError::invalid_syntax(format!(
                "schemas must list {}",
                super::PATCH_OP
            )));
        }
    }
    let ops = get(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations: a list of operations is required"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations: the list is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::too_many(format!(
            "Operations: at most {MAX_OPERATIONS} in one request, this one has {}",
            ops.len()
        )));
    }
    for (i, op) in ops.iter().enumerate() {
        let op = op
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax(format!("Operations[{i}] must be an object")))?;
        let verb = match get(op, "op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => Verb::Add,
            Some("replace") => Verb::Replace,
            Some("remove") => Verb::Remove,
            _ => {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{i}].op must be add, replace or remove"
                )));
            }
        };
        let path = match get(op, "path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.trim().is_empty() => None,
            Some(Value::String(p)) => Some(parse_path(p)?),
            Some(_) => {
                return Err(ScimError::invalid_path(format!(
                    "Operations[{i}].path must be a string"
                )));
            }
        };
        let value = get(op, "value").cloned();
        match path {
            Some(target) => one(resource, verb, &target, value, read_only)?,
            None => {
                if verb == Verb::Remove {
                    return Err(ScimError::no_target(format!("Operations[{i}]: remove needs a path")));
                }
                let Some(Value::Object(values)) = value else {
                    return Err(ScimError::invalid_value(format!(
                        "Operations[{i}]: without a path, the value must be an object of attributes"
                    )));
                };
                for (name, v) in values {
                    if name.eq_ignore_ascii_case(ENTERPRISE) {
                        let Value::Object(inner) = v else {
                            return Err(ScimError::invalid_value(format!("{ENTERPRISE} must be an object")));
                        };
                        for (sub, v) in inner {
                            let target = Target {
                                extension: true,
                                attribute: sub,
                                filter: None,
                                sub: None,
                            };
                            one(resource, verb, &target, Some(v), read_only)?;
                        }
                    } else if name.eq_ignore_ascii_case("schemas") {
                        continue;
                    } else {
                        one(resource, verb, &parse_path(&name)?, Some(v), read_only)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Parse an attribute path: `[schema:]attribute[[filter]][.sub]`.
fn parse_path(path: &str) -> Result<Target, ScimError> {
    let path = path.trim();
    let lower = path.to_ascii_lowercase();
    let (extension, rest) = if lower.starts_with(&format!("{}:", ENTERPRISE.to_ascii_lowercase())) {
        (true, &path[ENTERPRISE.len() + 1..])
    } else if lower == ENTERPRISE.to_ascii_lowercase() {
        return Ok(Target {
            extension: false,
            attribute: ENTERPRISE.to_owned(),
            filter: None,
            sub: None,
        });
    } else if let Some(core) = [USER, GROUP]
        .into_iter()
        .find(|s| lower.starts_with(&format!("{}:", s.to_ascii_lowercase())))
    {
        (false, &path[core.len() + 1..])
    } else if lower.starts_with("urn:") {
        return Err(ScimError::invalid_path(format!("{path}: Aula knows no such schema")));
    } else {
        (false, path)
    };
    let bad = || ScimError::invalid_path(format!("{path:?} is not an attribute path"));
    let name_end = rest.find(['[', '.']).unwrap_or(rest.len());
    let attribute = &rest[..name_end];
    if attribute.is_empty()
        || !attribute
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-')
    {
        return Err(bad());
    }
    let mut remainder = &rest[name_end..];
    let mut filter = None;
    if let Some(inner) = remainder.strip_prefix('[') {
        let close = inner.rfind(']').ok_or_else(bad)?;
        let comparisons = filter::parse(&inner[..close])?;
        if comparisons
            .iter()
            .any(|c| c.attribute.contains('.') || c.attribute.contains(':'))
        {
            return Err(ScimError::invalid_filter(format!(
                "{path}: a value filter compares sub-attributes of {attribute}"
            )));
        }
        filter = Some(comparisons);
        remainder = &inner[close + 1..];
    }
    let sub = match remainder.strip_prefix('.') {
        Some(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') => {
            Some(s.to_owned())
        }
        Some(_) => return Err(bad()),
        None if remainder.is_empty() => None,
        None => return Err(bad()),
    };
    Ok(Target {
        extension,
        attribute: attribute.to_owned(),
        filter,
        sub,
    })
}

/// The object a target's attribute lives in: the resource, or its enterprise extension (made on a write).
fn container<'a>(
    resource: &'a mut Map<String, Value>,
    target: &Target,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    if !target.extension {
        return Some(resource);
    }
    let key = match key_of(resource, ENTERPRISE) {
        Some(k) => k,
        None if create => {
            resource.insert(ENTERPRISE.to_owned(), Value::Object(Map::new()));
            ENTERPRISE.to_owned()
        }
        None => return None,
    };
    resource.get_mut(&key).and_then(Value::as_object_mut)
}

fn selected(item: &Value, comparisons: &[Comparison]) -> bool {
    let Some(obj) = item.as_object() else {
        return false;
    };
    comparisons
        .iter()
        .all(|c| filter::matches(c.op, get(obj, &c.attribute), &c.value))
}

/// Do two values of a multi-valued attribute stand for the same thing (the same `value`, else equal)?
fn same_item(a: &Value, b: &Value) -> bool {
    match (
        a.as_object().and_then(|o| get(o, "value")),
        b.as_object().and_then(|o| get(o, "value")),
    ) {
        (Some(x), Some(y)) => filter::matches(FilterOp::Eq, Some(x), y),
        _ => a == b,
    }
}

fn one(
    resource: &mut Map<String, Value>,
    verb: Verb,
    target: &Target,
    value: Option<Value>,
    read_only: &[&str],
) -> Result<(), ScimError> {
    let name = &target.attribute;
    if !target.extension && read_only.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(ScimError::mutability(format!("{name} is read-only")));
    }
    // A null value unassigns (RFC 7643 §2.5).
    let (verb, value) = match (verb, value) {
        (Verb::Add | Verb::Replace, None) => {
            return Err(ScimError::invalid_value(format!(
                "{name}: add and replace need a value"
            )));
        }
        (Verb::Add | Verb::Replace, Some(Value::Null)) => (Verb::Remove, None),
        (v, value) => (v, value),
    };
    let Some(obj) = container(resource, target, verb != Verb::Remove) else {
        return Ok(());
    };
    let key = key_of(obj, name).unwrap_or_else(|| name.clone());
    match (&target.filter, &target.sub) {
        (None, None) => match verb {
            Verb::Remove => match (value, obj.get_mut(&key)) {
                // `remove` of listed values from a multi-valued attribute (how many clients drop members).
                (Some(gone), Some(Value::Array(items))) => {
                    let gone = match gone {
                        Value::Array(g) => g,
                        one => vec![one],
                    };
                    items.retain(|item| !gone.iter().any(|g| same_item(item, g)));
                    if items.is_empty() {
                        obj.remove(&key);
                    }
                }
                _ => {
                    obj.remove(&key);
                }
            },
            Verb::Add => {
                let value = value.unwrap_or(Value::Null);
                match (obj.get_mut(&key), value) {
                    (Some(Value::Array(items)), value) => {
                        let new = match value {
                            Value::Array(v) => v,
                            one => vec![one],
                        };
                        for v in new {
                            if let Some(at) = items.iter().position(|i| same_item(i, &v)) {
                                items[at] = v;
                            } else {
                                items.push(v);
                            }
                        }
                    }
                    (Some(Value::Object(have)), Value::Object(new)) => merge(have, new),
                    (_, value) => {
                        obj.insert(key, value);
                    }
                }
            }
            Verb::Replace => {
                let value = value.unwrap_or(Value::Null);
                match (obj.get_mut(&key), value) {
                    (Some(Value::Object(have)), Value::Object(new)) => merge(have, new),
                    (_, value) => {
                        obj.insert(key, value);
                    }
                }
            }
        },
        (None, Some(sub)) => {
            let entry = match obj.get_mut(&key) {
                Some(Value::Object(o)) => o,
                Some(Value::Array(_)) => {
                    return Err(ScimError::invalid_path(format!(
                        "{name} has several values: name one with a filter, as in {name}[value eq \"…\"].{sub}"
                    )));
                }
                Some(_) => return Err(ScimError::invalid_path(format!("{name} has no sub-attributes"))),
                None if verb == Verb::Remove => return Ok(()),
                None => {
                    obj.insert(key.clone(), Value::Object(Map::new()));
                    obj.get_mut(&key).and_then(Value::as_object_mut).expect("just inserted")
                }
            };
            let sub_key = key_of(entry, sub).unwrap_or_else(|| sub.clone());
            match verb {
                Verb::Remove => {
                    entry.remove(&sub_key);
                }
                _ => {
                    entry.insert(sub_key, value.unwrap_or(Value::Null));
                }
            }
            if entry.is_empty() {
                obj.remove(&key);
            }
        }
        (Some(comparisons), sub) => {
            let items = match obj.get_mut(&key) {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(ScimError::invalid_path(format!("{name} is not multi-valued"))),
                None if verb == Verb::Remove => return Ok(()),
                None => {
                    obj.insert(key.clone(), Value::Array(Vec::new()));
                    obj.get_mut(&key).and_then(Value::as_array_mut).expect("just inserted")
                }
            };
            let hits: Vec<usize> = (0..items.len()).filter(|&i| selected(&items[i], comparisons)).collect();
            match (verb, sub) {
                (Verb::Remove, None) => {
                    let mut i = 0;
                    items.retain(|_| {
                        i += 1;
                        !hits.contains(&(i - 1))
                    });
                }
                (Verb::Remove, Some(sub)) => {
                    for &i in &hits {
                        if let Some(o) = items[i].as_object_mut()
                            && let Some(k) = key_of(o, sub)
                        {
                            o.remove(&k);
                        }
                    }
                }
                (_, Some(sub)) => {
                    let value = value.unwrap_or(Value::Null);
                    if hits.is_empty() {
                        // No value matches yet: the filter's equalities describe the one to add (identity
                        // providers set `emails[type eq "work"].value` on people who have no e-mail yet).
                        let mut item = Map::new();
                        for c in comparisons {
                            if c.op != FilterOp::Eq {
                                return Err(ScimError::no_target(format!("no value of {name} matches the filter")));
                            }
                            item.insert(c.attribute.clone(), c.value.clone());
                        }
                        item.insert(sub.clone(), value);
                        items.push(Value::Object(item));
                    } else {
                        for &i in &hits {
                            if let Some(o) = items[i].as_object_mut() {
                                let k = key_of(o, sub).unwrap_or_else(|| sub.clone());
                                o.insert(k, value.clone());
                            }
                        }
                    }
                }
                (verb, None) => {
                    let value = value.unwrap_or(Value::Null);
                    if hits.is_empty() {
                        if verb == Verb::Replace {
                            return Err(ScimError::no_target(format!("no value of {name} matches the filter")));
                        }
                        items.push(value);
                    } else {
                        for &i in &hits {
                            match (&mut items[i], &value) {
                                (Value::Object(have), Value::Object(new)) if verb == Verb::Add => {
                                    merge(have, new.clone())
                                }
                                (slot, _) => *slot = value.clone(),
                            }
                        }
                    }
                }
            }
            if items.is_empty() {
                obj.remove(&key);
            }
        }
    }
    Ok(())
}

/// Set each of `new`'s sub-attributes on `have` (a null unassigns it).
fn merge(have: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        let key = key_of(have, &k).unwrap_or(k);
        if v.is_null() {
            have.remove(&key);
        } else {
            have.insert(key, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(start: Value, ops: Value) -> Result<Value, ScimError> {
        let mut r = start.as_object().cloned().unwrap();
        apply(
            &mut r,
            &json!({"schemas": [super::super::PATCH_OP], "Operations": ops}),
            &["id", "groups"],
        )?;
        Ok(Value::Object(r))
    }

    #[test]
    fn paths_with_filters_and_extensions() {
        let start = json!({"userName": "a", "emails": [{"type": "work", "value": "a@x.test", "primary": true}]});
        let r = patched(start.clone(), json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "b@x.test"},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
            {"op": "add", "path": "name.givenName", "value": "Bea"},
        ]))
        .unwrap();
        assert_eq!(r["emails"][0]["value"], "b@x.test");
        assert_eq!(r["emails"][0]["primary"], true);
        assert_eq!(r[ENTERPRISE]["department"], "Sales");
        assert_eq!(r["name"]["givenName"], "Bea");

        // A filter that matches nothing adds the value it describes.
        let r = patched(
            json!({"userName": "a"}),
            json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "c@x.test"},
            ]),
        )
        .unwrap();
        assert_eq!(r["emails"], json!([{"type": "work", "value": "c@x.test"}]));
    }

    #[test]
    fn values_without_a_path_and_booleans() {
        let r = patched(
            json!({"userName": "a", "active": true, "name": {"givenName": "A", "familyName": "B"}}),
            json!([
                {"op": "Replace", "value": {"active": false, "name": {"familyName": "C"},
                 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "42"}},
            ]),
        )
        .unwrap();
        assert_eq!(r["active"], false);
        assert_eq!(r["name"], json!({"givenName": "A", "familyName": "C"}));
        assert_eq!(r[ENTERPRISE]["employeeNumber"], "42");
    }

    #[test]
    fn members_are_added_and_removed() {
        let start = json!({"displayName": "G", "members": [{"value": "1"}, {"value": "2"}]});
        let r = patched(
            start.clone(),
            json!([
                {"op": "add", "path": "members", "value": [{"value": "3"}, {"value": "1"}]},
                {"op": "remove", "path": "members[value eq \"2\"]"},
            ]),
        )
        .unwrap();
        assert_eq!(r["members"], json!([{"value": "1"}, {"value": "3"}]));
        let r = patched(
            start,
            json!([{"op": "remove", "path": "members", "value": [{"value": "1"}, {"value": "2"}]}]),
        )
        .unwrap();
        assert!(r.get("members").is_none());
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let start = json!({"userName": "a"});
        for (ops, kind, named) in [
            (json!([{"op": "remove"}]), "noTarget", "needs a path"),
            (json!([{"op": "add", "path": "id", "value": "x"}]), "mutability", "id"),
            (
                json!([{"op": "add", "path": "groups", "value": []}]),
                "mutability",
                "groups",
            ),
            (
                json!([{"op": "move", "path": "userName"}]),
                "invalidSyntax",
                "op must be",
            ),
            (json!([{"op": "add", "path": "a b", "value": 1}]), "invalidPath", "a b"),
            (
                json!([{"op": "add", "path": "urn:example:other:attr", "value": 1}]),
                "invalidPath",
                "no such schema",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "x"}}]),
                "noTarget",
                "emails",
            ),
            (
                json!([{"op": "add", "path": "userName"}]),
                "invalidValue",
                "need a value",
            ),
        ] {
            let e = patched(start.clone(), ops.clone()).unwrap_err();
            assert_eq!(e.scim_type, Some(kind), "{ops}");
            assert!(e.detail.contains(named), "{ops}: {}", e.detail);
        }
        let too_many: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
            .collect();
        assert_eq!(
            patched(start, Value::Array(too_many)).unwrap_err().scim_type,
            Some("tooMany")
        );
    }
}
