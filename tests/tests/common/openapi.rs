//! Walk the host's own OpenAPI document, so the isolation matrix covers an endpoint the day it is added:
//! every operation, its path filled with ids chosen by the test, and a plausible body built from its
//! request schema with ids put into every field that names one.

use super::{Body, Client};
use serde_json::{Map, Value, json};

/// Who an operation is for, from its `security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `[]`: anyone (sign-in).
    Public,
    /// Session or token of a tenant user.
    Tenant,
    /// An operator token.
    Operator,
}

/// What an id (or other identifying value) in a path, query or body refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    User,
    Org,
    Tag,
    Segment,
    Role,
    Grant,
    Token,
    ProfileField,
    AuditEntry,
    /// A tenant (its slug on operator paths).
    Tenant,
    /// A custom domain.
    Domain,
    /// An e-mail address.
    Email,
    Course,
    Lesson,
    Enrollment,
    EnrollmentRequest,
    Certificate,
    Program,
    Invitation,
    Job,
    Message,
    Notice,
    Plugin,
    Rule,
    ReportPreset,
    ReportSchedule,
    Signup,
    IdentityProvider,
    ScimToken,
}

impl Kind {
    /// The kinds [`super::resources::Resources`] arranges (the rest come from [`super::Directory`]).
    pub const ARRANGED: [Kind; 17] = [
        Kind::Course,
        Kind::Lesson,
        Kind::Enrollment,
        Kind::EnrollmentRequest,
        Kind::Certificate,
        Kind::Program,
        Kind::Invitation,
        Kind::Job,
        Kind::Message,
        Kind::Notice,
        Kind::Plugin,
        Kind::Rule,
        Kind::ReportPreset,
        Kind::ReportSchedule,
        Kind::Signup,
        Kind::IdentityProvider,
        Kind::ScimToken,
    ];
}

/// The kind a collection segment such as `users` holds.
fn collection_kind(segment: &str) -> Option<Kind> {
    Some(match segment {
        "users" | "members" => Kind::User,
        "orgs" => Kind::Org,
        "tags" => Kind::Tag,
        "segments" => Kind::Segment,
        "roles" => Kind::Role,
        "grants" => Kind::Grant,
        "tokens" => Kind::Token,
        "profile-fields" | "profile_fields" => Kind::ProfileField,
        "audit" => Kind::AuditEntry,
        "tenants" => Kind::Tenant,
        "domains" => Kind::Domain,
        "courses" => Kind::Course,
        "lessons" => Kind::Lesson,
        "enrollments" => Kind::Enrollment,
        "enrollment-requests" | "requests" => Kind::EnrollmentRequest,
        "certificates" => Kind::Certificate,
        "programs" => Kind::Program,
        "invitations" => Kind::Invitation,
        "jobs" => Kind::Job,
        "messages" => Kind::Message,
        "notices" => Kind::Notice,
        "plugins" | "plugin-reports" => Kind::Plugin,
        "rules" => Kind::Rule,
        "report-presets" | "presets" => Kind::ReportPreset,
        "report-schedules" | "schedules" => Kind::ReportSchedule,
        "signups" => Kind::Signup,
        "identity-providers" => Kind::IdentityProvider,
        "scim-tokens" => Kind::ScimToken,
        _ => return None,
    })
}

/// The kind a parameter or body field names, by its name (`user_id`, `parent_id`, `org`, `tag_ids`, …).
pub fn field_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "user_id" | "manager_id" | "actor_id" | "target_id" | "user_ids" => Kind::User,
        "org_id" | "parent_id" | "parent" | "org" | "sub_org" | "org_ids" | "orgs" => Kind::Org,
        "tag_id" | "tag" | "tag_ids" | "tags_all" | "tags_any" | "tags_none" => Kind::Tag,
        "segment_id" | "segment" | "segment_ids" => Kind::Segment,
        "role_id" | "role" => Kind::Role,
        "slug" | "tenant_id" => Kind::Tenant,
        "domain" => Kind::Domain,
        "email" => Kind::Email,
        other => {
            let stem = other.strip_suffix("_ids").or_else(|| other.strip_suffix("_id"))?;
            return collection_kind(&format!("{stem}s")).or_else(|| collection_kind(&stem.replace('_', "-")));
        }
    })
}

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Upper-case method.
    pub method: String,
    /// The path template, `{param}` placeholders included.
    pub path: String,
    /// Who it is for.
    pub security: Security,
    /// `x-aula-permission`, if any.
    pub permission: Option<String>,
    /// Query parameter names.
    pub query: Vec<String>,
    /// The request body's content type and schema.
    request: Option<(String, Value)>,
}

impl Operation {
    /// `GET /api/v1/users/{id}`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// A read (GET).
    pub fn is_read(&self) -> bool {
        self.method == "GET"
    }

    /// The path parameters with the kind each names (`None`: the matrix cannot tell; it then sends the
    /// tenant's id, still an id of the tenant under test).
    pub fn path_params(&self) -> Vec<(String, Option<Kind>)> {
        let segments: Vec<&str> = self.path.split('/').collect();
        segments
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let name = s.strip_prefix('{')?.strip_suffix('}')?;
                let by_name = if name == "id" { None } else { field_kind(name) };
                let kind = by_name.or_else(|| i.checked_sub(1).and_then(|p| collection_kind(segments[p])));
                Some((name.to_owned(), kind))
            })
            .collect()
    }

    /// The kinds the path refers to.
    pub fn path_kinds(&self) -> Vec<Kind> {
        self.path_params()
            .into_iter()
            .map(|(_, k)| k.unwrap_or(Kind::Tenant))
            .collect()
    }

    /// The path with every parameter replaced by `ids(kind)`.
    pub fn fill(&self, ids: &dyn Fn(Kind) -> String) -> String {
        let mut out = self.path.clone();
        for (name, kind) in self.path_params() {
            let value = ids(kind.unwrap_or(Kind::Tenant));
            out = out.replace(&format!("{{{name}}}"), &encode(&value));
        }
        out
    }

    /// Query parameters that take an id, with the kind of each.
    pub fn id_queries(&self) -> Vec<(String, Kind)> {
        self.query
            .iter()
            .filter_map(|q| field_kind(q).filter(|k| *k != Kind::Email).map(|k| (q.clone(), k)))
            .collect()
    }

    /// A plausible request body: every property of the request schema, ids from `ids` in every field that
    /// names one. No body when the operation takes none.
    pub fn body(&self, doc: &Value, ids: &dyn Fn(Kind) -> String) -> Body {
        match &self.request {
            None => Body::None,
            Some((content_type, schema)) if content_type.contains("json") => {
                Body::Json(example(doc, schema, None, ids, 0))
            }
            Some((content_type, _)) => Body::Raw {
                content_type: content_type.clone(),
                bytes: Vec::new(),
            },
        }
    }

    /// Send it: path and body filled from `ids`.
    pub async fn send(&self, client: &Client, doc: &Value, ids: &dyn Fn(Kind) -> String) -> (String, super::Reply) {
        let path = self.fill(ids);
        let reply = client.send(&self.method, &path, self.body(doc, ids)).await;
        (path, reply)
    }
}

/// The document and its operations.
pub struct Document {
    /// The document itself.
    pub doc: Value,
    /// Every operation, sign-out last (it ends the session the walk uses).
    pub operations: Vec<Operation>,
}

impl Document {
    /// GET /api/openapi.json from the host.
    pub async fn fetch(client: &Client) -> Document {
        let (status, doc) = client.get("/api/openapi.json").await;
        assert_eq!(status, 200, "the OpenAPI document: {doc}");
        let mut operations = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths").iter() {
            for (method, op) in item.as_object().expect("a path item").iter() {
                let security = match op["security"].as_array() {
                    Some(list) if list.is_empty() => Security::Public,
                    Some(list) if list.iter().any(|s| s.get("operator").is_some()) => Security::Operator,
                    _ => Security::Tenant,
                };
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let query = params
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect();
                let request = op["requestBody"]["content"]
                    .as_object()
                    .and_then(|c| c.iter().next())
                    .map(|(ct, media)| (ct.clone(), media["schema"].clone()));
                operations.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    security,
                    permission: op["x-aula-permission"].as_str().map(str::to_owned),
                    query,
                    request,
                });
            }
        }
        operations.sort_by_key(|o| o.path.ends_with("/logout"));
        assert!(
            operations.len() >= 30,
            "the document lists only {} operations",
            operations.len()
        );
        Document { doc, operations }
    }

    /// The operations for one kind of caller.
    pub fn for_security(&self, security: Security) -> impl Iterator<Item = &Operation> {
        self.operations.iter().filter(move |o| o.security == security)
    }
}

/// Percent-encode a path segment.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => resolve(doc, &doc["components"]["schemas"][name]),
        None => schema,
    }
}

/// A value for `schema`; `name` is the property it is for.
fn example(doc: &Value, schema: &Value, name: Option<&str>, ids: &dyn Fn(Kind) -> String, depth: usize) -> Value {
    let schema = resolve(doc, schema);
    if depth > 8 {
        return Value::Null;
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.iter().find(|v| !v.is_null())) {
        return first.clone();
    }
    // Of several shapes, take the first that carries an id (an organization scope rather than the tenant).
    for key in ["oneOf", "anyOf"] {
        if let Some(variants) = schema[key].as_array() {
            let chosen = variants
                .iter()
                .map(|v| resolve(doc, v))
                .find(|v| v["properties"].get("id").is_some())
                .or_else(|| variants.iter().map(|v| resolve(doc, v)).find(|v| v["type"] != "null"))
                .unwrap_or(&Value::Null);
            return example(doc, chosen, name, ids, depth + 1);
        }
    }
    let kind = name.and_then(field_kind);
    let ty = match &schema["type"] {
        Value::String(t) => t.as_str(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema["properties"].as_object() {
                // In a tagged shape such as `{"type": "org", "id": …}` the tag says what the id is.
                let tag = props.get("type").and_then(|t| resolve(doc, t)["const"].as_str());
                for (prop, prop_schema) in props {
                    let prop_name = match (prop.as_str(), tag) {
                        ("id", Some(tag)) => tag,
                        _ => prop.as_str(),
                    };
                    out.insert(prop.clone(), example(doc, prop_schema, Some(prop_name), ids, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => match kind {
            Some(k) => json!([ids(k)]),
            None => json!([]),
        },
        "string" => match (kind, name) {
            (Some(k), _) => json!(ids(k)),
            (None, Some(n)) if n.contains("password") => json!("matrix-password-1"),
            (None, Some("locale" | "default_locale")) => json!("en"),
            (None, Some("status")) => json!("active"),
            (None, Some("field_type")) => json!("text"),
            (None, Some("signup")) => json!("closed"),
            (None, Some("key")) => json!("matrix_probe"),
            (None, Some("since" | "until")) => json!("2026-01-01T00:00:00Z"),
            _ => json!("Matrix probe"),
        },
        "integer" | "number" => json!(1),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}
