//! The endpoint table. Every API route is added through [`Api::op`], which both mounts the handler and
//! describes it in the OpenAPI document, so the document lists every endpoint by construction.

use crate::state::AppState;
use axum::Router;
use axum::routing::MethodRouter;
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone (login, health).
    Public,
    /// A tenant user: session cookie or API token, on the tenant's host.
    Tenant,
    /// A platform operator's token.
    Operator,
}

/// One documented operation.
pub struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    tag: &'static str,
    auth: Auth,
    permission: Option<&'static str>,
    query: Vec<(&'static str, &'static str)>,
    /// Schemas of query parameters that differ from what their name implies (see `query_schema`).
    query_schemas: Vec<(&'static str, Value)>,
    request: Option<Value>,
    request_type: &'static str,
    response: Option<Value>,
    response_type: &'static str,
    status: u16,
    /// Other success statuses with the same body (a sign-up that waits answers 202 instead of 201; an
    /// idempotent creation answers 200 when the thing was there already).
    also: Vec<u16>,
}

impl Op {
    fn new(method: &'static str, path: &'static str, summary: &'static str) -> Op {
        Op {
            method,
            path,
            summary,
            tag: "",
            auth: Auth::Tenant,
            permission: None,
            query: Vec::new(),
            query_schemas: Vec::new(),
            request: None,
            request_type: "application/json",
            response: None,
            response_type: "application/json",
            status: 200,
            also: Vec::new(),
        }
    }
    /// A GET operation.
    pub fn get(path: &'static str, summary: &'static str) -> Op {
        Op::new("get", path, summary)
    }
    /// A POST operation.
    pub fn post(path: &'static str, summary: &'static str) -> Op {
        Op::new("post", path, summary)
    }
    /// A PATCH operation.
    pub fn patch(path: &'static str, summary: &'static str) -> Op {
        Op::new("patch", path, summary)
    }
    /// A PUT operation.
    pub fn put(path: &'static str, summary: &'static str) -> Op {
        Op::new("put", path, summary)
    }
    /// A DELETE operation.
    pub fn delete(path: &'static str, summary: &'static str) -> Op {
        Op::new("delete", path, summary).status(204)
    }
    /// Who may call it.
    pub fn auth(mut self, auth: Auth) -> Op {
        self.auth = auth;
        self
    }
    /// The permission it needs (documentation; the handler checks it through the scope resolver).
    pub fn permission(mut self, p: &'static str) -> Op {
        self.permission = Some(p);
        self
    }
    /// Query parameters with a description each.
    pub fn query(mut self, params: &[(&'static str, &'static str)]) -> Op {
        self.query.extend_from_slice(params);
        self
    }
    /// The schema of a query parameter, where it differs from the one its name implies.
    pub fn query_schema(mut self, name: &'static str, schema: Value) -> Op {
        self.query_schemas.push((name, schema));
        self
    }
    /// The success status.
    pub fn status(mut self, status: u16) -> Op {
        self.status = status;
        self
    }
    /// Another success status it may answer, with the same body.
    pub fn also(mut self, status: u16) -> Op {
        self.also.push(status);
        self
    }
    /// A non-JSON request body (e.g. an archive).
    pub fn request_body_type(mut self, mime: &'static str) -> Op {
        self.request_type = mime;
        self.request = Some(json!({"type": "string", "format": "binary"}));
        self
    }
    /// A non-JSON response body (e.g. an archive).
    pub fn response_body_type(mut self, mime: &'static str) -> Op {
        self.response_type = mime;
        self.response = Some(json!({"type": "string", "format": "binary"}));
        self
    }
}

/// The API being assembled: a router plus its OpenAPI description.
pub struct Api {
    /// One method router per path; each operation adds its own method, and axum refuses a method twice.
    handlers: Vec<(&'static str, MethodRouter<AppState>)>,
    paths: Map<String, Value>,
    generator: SchemaGenerator,
    tag: &'static str,
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

impl Api {
    /// An empty API.
    pub fn new() -> Api {
        Api {
            handlers: Vec::new(),
            paths: Map::new(),
            generator: SchemaSettings::openapi3().into_generator(),
            tag: "",
        }
    }

    /// Tag the operations added next (one tag per resource module).
    pub fn tag(&mut self, tag: &'static str) -> &mut Self {
        self.tag = tag;
        self
    }

    /// The schema of a request type (registered in components).
    pub fn schema<T: JsonSchema>(&mut self) -> Value {
        schema_value(self.generator.subschema_for::<T>())
    }

    /// Mount `handler` (a method router for this operation's method only) and describe it.
    pub fn op(&mut self, mut op: Op, handler: MethodRouter<AppState>) -> &mut Self {
        if op.tag.is_empty() {
            op.tag = self.tag;
        }
        match self.handlers.iter_mut().find(|(path, _)| *path == op.path) {
            Some(slot) => slot.1 = std::mem::take(&mut slot.1).merge(handler),
            None => self.handlers.push((op.path, handler)),
        }
        let entry = self.paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method] = describe(&op);
        self
    }

    /// Like [`Api::op`], with a JSON request body of type `Req` and a response of type `Res`.
    pub fn op_io<Req: JsonSchema, Res: JsonSchema>(
        &mut self,
        mut op: Op,
        handler: MethodRouter<AppState>,
    ) -> &mut Self {
        op.request = Some(self.schema::<Req>());
        op.response = Some(self.schema::<Res>());
        self.op(op, handler)
    }

    /// Like [`Api::op`], with a JSON response of type `Res`.
    pub fn op_out<Res: JsonSchema>(&mut self, mut op: Op, handler: MethodRouter<AppState>) -> &mut Self {
        op.response = Some(self.schema::<Res>());
        self.op(op, handler)
    }

    /// Like [`Api::op`], with a JSON request body of type `Req` and no response body.
    pub fn op_in<Req: JsonSchema>(&mut self, mut op: Op, handler: MethodRouter<AppState>) -> &mut Self {
        op.request = Some(self.schema::<Req>());
        self.op(op, handler)
    }

    /// The router and the OpenAPI 3.1 document.
    pub fn finish(self) -> (Router<AppState>, Value) {
        let schemas: Map<String, Value> = self
            .generator
            .definitions()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut schemas = schemas;
        schemas.insert(
            "Error".into(),
            json!({
                "type": "object",
                "required": ["error"],
                "properties": {"error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "description": "stable machine-readable code"},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "the offending field or row"},
                        "details": {}
                    }
                }}
            }),
        );
        let doc = json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Aula API",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Multi-tenant learning platform. The tenant is taken from the request's host \
                    (custom domain or <slug>.<base domain>) or from the API token. Ids of other tenants, and ids \
                    outside the caller's scope, answer 404 exactly like ids that do not exist. Each academy also serves \
                    SCIM 2.0 (RFC 7644) at /scim/v2, described by its own discovery endpoints \
                    (/scim/v2/ServiceProviderConfig, /ResourceTypes, /Schemas) and opened by the tokens of \
                    /api/v1/scim-tokens."
            },
            "paths": Value::Object(self.paths),
            "components": {
                "schemas": Value::Object(schemas),
                "securitySchemes": {
                    "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE},
                    "token": {"type": "http", "scheme": "bearer", "description": "API token (aula_…)"},
                    "operator": {"type": "http", "scheme": "bearer", "description": "operator token (aulaop_…)"}
                }
            }
        });
        let router = self
            .handlers
            .into_iter()
            .fold(Router::new(), |router, (path, handler)| router.route(path, handler));
        (router, doc)
    }
}

fn schema_value(schema: Schema) -> Value {
    schema.to_value()
}

fn describe(op: &Op) -> Value {
    let mut params: Vec<Value> = Vec::new();
    for segment in op.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            // Ids are UUIDs (anything else names nothing: 404, see `common::Path`).
            let schema = if name == "id" || name.ends_with("_id") {
                json!({"type": "string", "format": "uuid"})
            } else {
                json!({"type": "string"})
            };
            params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
    }
    for (name, description) in &op.query {
        let schema = match op.query_schemas.iter().find(|(n, _)| n == name) {
            Some((_, schema)) => schema.clone(),
            None => query_schema(name),
        };
        params.push(
            json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema}),
        );
    }
    let mut responses = Map::new();
    let ok = match &op.response {
        Some(schema) => json!({"description": "success", "content": {op.response_type: {"schema": schema}}}),
        None => json!({"description": "success"}),
    };
    for also in &op.also {
        responses.insert(also.to_string(), ok.clone());
    }
    responses.insert(op.status.to_string(), ok);
    let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    for code in ["400", "401", "403", "404", "409", "422"] {
        responses.insert(code.into(), error.clone());
    }
    if op.request.is_some() {
        // A body over its limit, or of another type than the operation reads.
        responses.insert("413".into(), error.clone());
        responses.insert("415".into(), error.clone());
    }
    // Any request may wait for its academy's turn, or a shared resource it needs, past the wait bound (429:
    // the academy's own share was full; 503: the host's was, or the request ran out of time).
    let busy = json!({
        "description": "busy; try again after Retry-After seconds",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    responses.insert("429".into(), busy.clone());
    responses.insert("503".into(), busy);
    let mut out = json!({
        "summary": op.summary,
        "operationId": format!("{}_{}", op.method, op.path.trim_start_matches("/api/").replace(['/', '{', '}', '-'], "_")),
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    });
    if let Some(schema) = &op.request {
        out["requestBody"] = json!({"required": true, "content": {op.request_type: {"schema": schema}}});
    }
    out["security"] = match op.auth {
        Auth::Public => json!([]),
        Auth::Tenant => json!([{"session": []}, {"token": []}]),
        Auth::Operator => json!([{"operator": []}]),
    };
    if let Some(p) = op.permission {
        out["x-aula-permission"] = json!(p);
    }
    out
}

/// The schema a query parameter's name implies: `limit` is a page size of 1–500 (`PageParams`), a name ending
/// in `_id` is a UUID, anything else is text.
fn query_schema(name: &str) -> Value {
    if name == "limit" {
        json!({"type": "integer", "minimum": 1, "maximum": 500})
    } else if name.ends_with("_id") {
        json!({"type": "string", "format": "uuid"})
    } else {
        json!({"type": "string"})
    }
}
