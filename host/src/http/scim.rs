//! The SCIM 2.0 endpoint of each academy, `/scim/v2` on the academy's own host (RFC 7644): discovery,
//! Users and Groups. Answers are `application/scim+json`, errors SCIM's error shape. The protocol describes
//! itself (`/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`), so these routes stand beside the OpenAPI
//! table rather than in it; the tokens that open them are managed through the API (`scim_tokens`).

use crate::auth::extract::{bearer, host_tenant, link_host, request_id};
use crate::identity::scim::{
    self, Client, ScimError, Window, check_version, filter, groups, patch, schema, tokens, users, writable,
};
use crate::learning::automation::{self, Pending};
use crate::state::AppState;
use crate::tenancy::HostTenant;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The routes, on every academy's host.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scim/v2/ServiceProviderConfig", get(service_provider_config))
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema_by_id))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/.search", post(search_users))
        .route(
            "/scim/v2/Users/{id}",
            get(read_user).put(put_user).patch(patch_user).delete(delete_user),
        )
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route("/scim/v2/Groups/.search", post(search_groups))
        .route(
            "/scim/v2/Groups/{id}",
            get(read_group).put(put_group).patch(patch_group).delete(delete_group),
        )
        .route("/scim/v2/.search", post(search_everything))
        .route("/scim/v2/Bulk", post(bulk))
        .route("/scim/v2", any(unknown))
        .route("/scim/v2/{*rest}", any(unknown))
}

/// A SCIM answer: a status, a JSON body and, for one resource, its version as the `ETag`.
struct Scim(StatusCode, Value);

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        let Scim(status, body) = self;
        let etag = body
            .pointer("/meta/version")
            .and_then(Value::as_str)
            .filter(|_| body.get("id").is_some())
            .and_then(|v| HeaderValue::from_str(v).ok());
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
        if let Some(etag) = etag {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

/// A refusal as SCIM's error answer.
pub struct Refusal(ScimError);

impl From<ScimError> for Refusal {
    fn from(e: ScimError) -> Refusal {
        Refusal(e)
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Refusal {
        Refusal(e.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Scim(status, self.0.body()).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        response
    }
}

type Answer = Result<Scim, Refusal>;

/// The academy a request's host names, and the base of its SCIM endpoint.
struct Academy {
    tenant: crate::tenancy::Tenant,
    base: String,
}

async fn academy(parts: &Parts, state: &AppState) -> Result<Academy, Refusal> {
    let tenant = match host_tenant(parts, state).await {
        Ok(HostTenant::Tenant(t)) => *t,
        Ok(_) => return Err(ScimError::not_found("no academy at this address").into()),
        Err(e) => {
            let detail = e.to_string();
            let status = e.into_response().status().as_u16();
            return Err(ScimError::status(status, detail).into());
        }
    };
    let scheme = if state.config.cookie_secure { "https" } else { "http" };
    let base = format!(
        "{scheme}://{}/scim/v2",
        link_host(&parts.headers, &state.config, &tenant)
    );
    Ok(Academy { tenant, base })
}

impl FromRequestParts<AppState> for Academy {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        academy(parts, state).await
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Academy { tenant, base } = academy(parts, state).await?;
        if tenant.suspended() {
            return Err(ScimError::forbidden("this academy is suspended").into());
        }
        let db = state.db.tenant(&tenant.id);
        Ok(tokens::authenticate(&db, &tenant, bearer(parts), base, request_id(&parts.headers)).await?)
    }
}

// Discovery: the same for every academy, and open to any client of the academy's host (RFC 7644 §4).

async fn service_provider_config(a: Academy) -> Answer {
    Ok(Scim(StatusCode::OK, schema::service_provider_config(&a.base)))
}

fn listed(items: Vec<Value>) -> Value {
    let n = items.len() as i64;
    scim::list_response(n, Window::new(Some(1), Some(n.max(1))), items)
}

async fn resource_types(a: Academy) -> Answer {
    Ok(Scim(StatusCode::OK, listed(schema::resource_types(&a.base))))
}

async fn resource_type(a: Academy, Path(id): Path<String>) -> Answer {
    schema::resource_types(&a.base)
        .into_iter()
        .find(|t| t["id"] == json!(id))
        .map(|t| Scim(StatusCode::OK, t))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {id:?}")).into())
}

async fn schemas(a: Academy) -> Answer {
    Ok(Scim(StatusCode::OK, listed(schema::schemas(&a.base))))
}

async fn schema_by_id(a: Academy, Path(id): Path<String>) -> Answer {
    schema::schemas(&a.base)
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&id)))
        .map(|s| Scim(StatusCode::OK, s))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id:?}")).into())
}

async fn unknown() -> Refusal {
    ScimError::not_found("no such SCIM endpoint").into()
}

/// A search over every resource type (RFC 7644 §3.4.3): users first, then groups, one page over both. A
/// filter on an attribute one type does not have matches nothing of that type.
async fn search_everything(client: Client, headers: HeaderMap, body: Bytes) -> Answer {
    client.require(crate::scope::Permission::UsersRead)?;
    client.require(crate::scope::Permission::OrgsRead)?;
    let listing = Listing::from_search(&body_json(&headers, &body)?)?;
    let window = listing.window;
    let mut tx = client.db.begin_read().await?;
    let (users_total, mut found) = match users::list(&mut tx, &client.base, &listing.filter, window).await {
        Err(e) if e.scim_type == Some("invalidFilter") && !listing.filter.is_empty() => (0, Vec::new()),
        other => other?,
    };
    // The groups' part of the page: what is left of it, from where the users ended.
    let groups_window = Window {
        start_index: (window.start_index - users_total).max(1),
        count: window.count - found.len() as i64,
    };
    let members = listing.wants_members();
    let (groups_total, groups) =
        match groups::list(&mut tx, &client.base, &listing.filter, groups_window, members).await {
            Err(e) if e.scim_type == Some("invalidFilter") && !listing.filter.is_empty() => (0, Vec::new()),
            other => other?,
        };
    tx.commit().await?;
    found.extend(groups);
    let found = found
        .into_iter()
        .map(|r| project(r, &listing.attributes, &listing.excluded))
        .collect();
    Ok(Scim(
        StatusCode::OK,
        scim::list_response(users_total + groups_total, window, found),
    ))
}

async fn bulk(_: Client) -> Refusal {
    ScimError::not_implemented("bulk operations are not supported (see /ServiceProviderConfig)").into()
}

// Queries.

/// What a list or search asks for.
struct Listing {
    filter: Vec<filter::Comparison>,
    window: Window,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn names(list: Option<&str>) -> Vec<String> {
    list.into_iter()
        .flat_map(|l| l.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Listing {
    fn from_query(q: &HashMap<String, String>) -> Result<Listing, ScimError> {
        let number = |key: &str| -> Result<Option<i64>, ScimError> {
            q.get(key)
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| ScimError::invalid_value(format!("{key} must be an integer")))
                })
                .transpose()
        };
        Ok(Listing {
            filter: match q.get("filter") {
                Some(f) if !f.trim().is_empty() => filter::parse(f)?,
                _ => Vec::new(),
            },
            window: Window::new(number("startIndex")?, number("count")?),
            attributes: names(q.get("attributes").map(String::as_str)),
            excluded: names(q.get("excludedAttributes").map(String::as_str)),
        })
    }

    fn from_search(body: &Value) -> Result<Listing, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a search request is a JSON object"))?;
        let text = |key: &str| scim::text_of(obj, key);
        let number = |key: &str| -> Result<Option<i64>, ScimError> {
            match scim::get(obj, key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{key} must be an integer"))),
            }
        };
        let list = |key: &str| -> Result<Vec<String>, ScimError> {
            match scim::get(obj, key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| ScimError::invalid_value(format!("{key} lists strings")))
                    })
                    .collect(),
                Some(Value::String(s)) => Ok(names(Some(s))),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{key} must be a list of attribute names"
                ))),
            }
        };
        Ok(Listing {
            filter: match text("filter")? {
                Some(f) if !f.trim().is_empty() => filter::parse(&f)?,
                _ => Vec::new(),
            },
            window: Window::new(number("startIndex")?, number("count")?),
            attributes: list("attributes")?,
            excluded: list("excludedAttributes")?,
        })
    }

    fn wants_members(&self) -> bool {
        let named = |list: &[String]| list.iter().any(|a| a.eq_ignore_ascii_case("members"));
        if !self.attributes.is_empty() {
            named(&self.attributes)
        } else {
            !named(&self.excluded)
        }
    }
}

/// `attributes` keeps only the named attributes (and `id`, `schemas`); `excludedAttributes` drops the named
/// ones. Names may carry their schema (`urn:…:User:userName`) and name a sub-attribute (`name.givenName`).
fn project(resource: Value, attributes: &[String], excluded: &[String]) -> Value {
    let Value::Object(obj) = resource else {
        return resource;
    };
    let split = |name: &str| -> (bool, String, Option<String>) {
        let lower = name.to_ascii_lowercase();
        let ext = scim::ENTERPRISE.to_ascii_lowercase();
        let (in_ext, rest) = if let Some(rest) = lower.strip_prefix(&format!("{ext}:")) {
            (true, name[name.len() - rest.len()..].to_owned())
        } else if lower == ext {
            return (false, scim::ENTERPRISE.to_owned(), None);
        } else if let Some(core) = [scim::USER, scim::GROUP]
            .iter()
            .find(|c| lower.starts_with(&format!("{}:", c.to_ascii_lowercase())))
        {
            (false, name[core.len() + 1..].to_owned())
        } else {
            (false, name.to_owned())
        };
        match rest.split_once('.') {
            Some((a, s)) => (in_ext, a.to_owned(), Some(s.to_owned())),
            None => (in_ext, rest, None),
        }
    };
    let mut out = obj;
    if !attributes.is_empty() {
        let mut kept = serde_json::Map::new();
        for always in ["id", "schemas"] {
            if let Some(v) = out.get(always) {
                kept.insert(always.into(), v.clone());
            }
        }
        for name in attributes {
            let (in_ext, attr, sub) = split(name);
            let source = if in_ext {
                scim::get(&out, scim::ENTERPRISE).and_then(Value::as_object)
            } else {
                Some(&out)
            };
            let Some(source) = source else { continue };
            let Some(key) = scim::key_of(source, &attr) else {
                continue;
            };
            let value = match (&sub, &source[&key]) {
                (Some(sub), Value::Object(inner)) => match scim::key_of(inner, sub) {
                    Some(k) => {
                        let mut part = kept.get(&key).and_then(Value::as_object).cloned().unwrap_or_default();
                        part.insert(k.clone(), inner[&k].clone());
                        Value::Object(part)
                    }
                    None => continue,
                },
                (_, v) => v.clone(),
            };
            if in_ext {
                let ext = kept
                    .entry(scim::ENTERPRISE.to_owned())
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(e) = ext.as_object_mut() {
                    e.insert(key, value);
                }
            } else {
                kept.insert(key, value);
            }
        }
        out = kept;
    }
    for name in excluded {
        let (in_ext, attr, sub) = split(name);
        if !in_ext && (attr.eq_ignore_ascii_case("id") || attr.eq_ignore_ascii_case("schemas")) {
            continue;
        }
        let target = if in_ext {
            scim::key_of(&out, scim::ENTERPRISE)
                .and_then(|k| out.get_mut(&k))
                .and_then(Value::as_object_mut)
        } else {
            Some(&mut out)
        };
        let Some(target) = target else { continue };
        let Some(key) = scim::key_of(target, &attr) else {
            continue;
        };
        match sub {
            Some(sub) => {
                if let Some(Value::Object(inner)) = target.get_mut(&key)
                    && let Some(k) = scim::key_of(inner, &sub)
                {
                    inner.remove(&k);
                }
            }
            None => {
                target.remove(&key);
            }
        }
    }
    Value::Object(out)
}

fn body_json(headers: &HeaderMap, body: &Bytes) -> Result<Value, ScimError> {
    if let Some(kind) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
        && !kind.to_ascii_lowercase().contains("json")
    {
        return Err(ScimError::status(
            415,
            format!("send application/scim+json, not {kind}"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

/// `If-None-Match` names the version the client holds: answer 304 without a body.
fn not_modified(headers: &HeaderMap, resource: &Value) -> bool {
    let version = resource.pointer("/meta/version").and_then(Value::as_str);
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .zip(version)
        .is_some_and(|(wanted, version)| {
            wanted
                .split(',')
                .any(|w| w.trim() == "*" || w.trim().trim_start_matches("W/") == version.trim_start_matches("W/"))
        })
}

async fn finish(state: &AppState, client: &Client, pending: Pending) {
    automation::after_commit(&state.plugins, &client.db, pending).await;
}

// Users.

async fn user_listing(client: &Client, listing: Listing) -> Answer {
    let mut tx = client.db.begin_read().await?;
    let (total, found) = users::list(&mut tx, &client.base, &listing.filter, listing.window).await?;
    tx.commit().await?;
    let found = found
        .into_iter()
        .map(|u| project(u, &listing.attributes, &listing.excluded))
        .collect();
    Ok(Scim(StatusCode::OK, scim::list_response(total, listing.window, found)))
}

async fn list_users(client: Client, Query(q): Query<HashMap<String, String>>) -> Answer {
    client.require(crate::scope::Permission::UsersRead)?;
    user_listing(&client, Listing::from_query(&q)?).await
}

async fn search_users(client: Client, headers: HeaderMap, body: Bytes) -> Answer {
    client.require(crate::scope::Permission::UsersRead)?;
    user_listing(&client, Listing::from_search(&body_json(&headers, &body)?)?).await
}

async fn read_user(
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    client.require(crate::scope::Permission::UsersRead)?;
    let listing = Listing::from_query(&q)?;
    let mut tx = client.db.begin_read().await?;
    let user = users::load(&mut tx, &client.base, &id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no user {id:?}")))?;
    tx.commit().await?;
    if not_modified(&headers, &user) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let version = user["meta"]["version"].clone();
    let mut shown = project(user, &listing.attributes, &listing.excluded);
    // The version belongs to the whole resource, whatever part of it is shown.
    if shown.get("meta").is_none() {
        shown["meta"] = json!({"version": version});
    }
    Ok(Scim(StatusCode::OK, shown).into_response())
}

async fn create_user(State(state): State<AppState>, client: Client, headers: HeaderMap, body: Bytes) -> Answer {
    let resource = body_json(&headers, &body)?;
    let written = users::create(&client, &resource).await?;
    finish(&state, &client, written.pending).await;
    Ok(Scim(StatusCode::CREATED, written.user))
}

/// Load user `id` in a write transaction, checking `If-Match`.
async fn user_for_write(
    client: &Client,
    headers: &HeaderMap,
    id: &str,
) -> Result<(crate::db::TenantTx, Value), Refusal> {
    let mut tx = client.db.begin().await?;
    let current = users::load(&mut tx, &client.base, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no user {id:?}")))?;
    check_version(if_match(headers), &current)?;
    Ok((tx, current))
}

async fn put_user(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let resource = body_json(&headers, &body)?;
    let (mut tx, current) = user_for_write(&client, &headers, &id).await?;
    let written = users::replace(&client, &mut tx, &id, &current, &resource).await?;
    tx.commit().await?;
    finish(&state, &client, written.pending).await;
    Ok(Scim(StatusCode::OK, written.user))
}

async fn patch_user(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let ops = body_json(&headers, &body)?;
    let (mut tx, current) = user_for_write(&client, &headers, &id).await?;
    let mut resource = writable(&current, users::READ_ONLY);
    patch::apply(&mut resource, &ops, users::READ_ONLY)?;
    let written = users::replace(&client, &mut tx, &id, &current, &Value::Object(resource)).await?;
    tx.commit().await?;
    finish(&state, &client, written.pending).await;
    Ok(Scim(StatusCode::OK, written.user))
}

async fn delete_user(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, Refusal> {
    let (mut tx, current) = user_for_write(&client, &headers, &id).await?;
    let pending = users::deprovision(&client, &mut tx, &id, &current).await?;
    tx.commit().await?;
    finish(&state, &client, pending).await;
    Ok(StatusCode::NO_CONTENT)
}

// Groups.

async fn group_listing(client: &Client, listing: Listing) -> Answer {
    let mut tx = client.db.begin_read().await?;
    let (total, found) = groups::list(
        &mut tx,
        &client.base,
        &listing.filter,
        listing.window,
        listing.wants_members(),
    )
    .await?;
    tx.commit().await?;
    let found = found
        .into_iter()
        .map(|g| project(g, &listing.attributes, &listing.excluded))
        .collect();
    Ok(Scim(StatusCode::OK, scim::list_response(total, listing.window, found)))
}

async fn list_groups(client: Client, Query(q): Query<HashMap<String, String>>) -> Answer {
    client.require(crate::scope::Permission::OrgsRead)?;
    group_listing(&client, Listing::from_query(&q)?).await
}

async fn search_groups(client: Client, headers: HeaderMap, body: Bytes) -> Answer {
    client.require(crate::scope::Permission::OrgsRead)?;
    group_listing(&client, Listing::from_search(&body_json(&headers, &body)?)?).await
}

async fn read_group(
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Refusal> {
    client.require(crate::scope::Permission::OrgsRead)?;
    let listing = Listing::from_query(&q)?;
    let mut tx = client.db.begin_read().await?;
    let group = groups::load(&mut tx, &client.base, &id, listing.wants_members())
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no group {id:?}")))?;
    tx.commit().await?;
    if listing.wants_members() && not_modified(&headers, &group) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    Ok(Scim(StatusCode::OK, project(group, &listing.attributes, &listing.excluded)).into_response())
}

async fn create_group(State(state): State<AppState>, client: Client, headers: HeaderMap, body: Bytes) -> Answer {
    let resource = body_json(&headers, &body)?;
    let written = groups::create(&client, &resource).await?;
    finish(&state, &client, written.pending).await;
    Ok(Scim(StatusCode::CREATED, written.group))
}

async fn group_for_write(
    client: &Client,
    headers: &HeaderMap,
    id: &str,
) -> Result<(crate::db::TenantTx, Value), Refusal> {
    let mut tx = client.db.begin().await?;
    let current = groups::load(&mut tx, &client.base, id, true)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no group {id:?}")))?;
    check_version(if_match(headers), &current)?;
    Ok((tx, current))
}

async fn put_group(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let resource = body_json(&headers, &body)?;
    let (mut tx, current) = group_for_write(&client, &headers, &id).await?;
    let written = groups::replace(&client, &mut tx, &id, &current, &resource).await?;
    tx.commit().await?;
    finish(&state, &client, written.pending).await;
    Ok(Scim(StatusCode::OK, written.group))
}

async fn patch_group(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let ops = body_json(&headers, &body)?;
    let (mut tx, current) = group_for_write(&client, &headers, &id).await?;
    let mut resource = writable(&current, groups::READ_ONLY);
    patch::apply(&mut resource, &ops, groups::READ_ONLY)?;
    let written = groups::replace(&client, &mut tx, &id, &current, &Value::Object(resource)).await?;
    tx.commit().await?;
    finish(&state, &client, written.pending).await;
    Ok(Scim(StatusCode::OK, written.group))
}

async fn delete_group(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, Refusal> {
    let (mut tx, _) = group_for_write(&client, &headers, &id).await?;
    let pending = groups::delete(&client, &mut tx, &id).await?;
    tx.commit().await?;
    finish(&state, &client, pending).await;
    Ok(StatusCode::NO_CONTENT)
}
