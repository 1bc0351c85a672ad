//! Sign-up and invitations: e-mail domains organizations claim, invitation links (with QR codes), the public
//! sign-up, joining an organization with an invitation, and the approval of held sign-ups.
//!
//! Who may sign up is the academy's `signup` setting (see `TenantSettings`); where they land and whether
//! they wait for approval comes from the invitation or the claimed domain (`learning::signup`), and the
//! enrollment plugins get a say before anything is written. A sign-up, the invitation use it spends, its
//! membership (member limits apply) and what the rules do about it commit together or not at all.

use super::api::{Api, Auth, Op};
use super::common::{Json, Page, PageParams, Path, Query, email, opt_text, text};
use crate::audit::{Change, record};
use crate::auth::{Actor, Caller, RequestHost, password};
use crate::db::{Sql, TenantTx, new_id, now_ms, rfc3339, unique_violation};
use crate::directory::orgs::{self, OrgRow};
use crate::error::{ApiError, ApiResult};
use crate::learning::automation::{self, Context, Decision, Event, Pending, SignupRequest};
use crate::learning::signup::{self as policy, Invitation, Placement};
use crate::scope::{Permission, Reach};
use crate::state::AppState;
use crate::tenancy::{HostTenant, Tenant};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

pub fn routes(api: &mut Api) {
    api.tag("signup");
    api.op_io::<SignupBody, SignupOut>(
        Op::post(
            "/api/v1/signup",
            "Create your own account, as the academy's sign-up policy allows; signs you in unless it awaits approval",
        )
        .auth(Auth::Public)
        .status(201),
        post(signup),
    );
    api.op_io::<AcceptBody, AcceptOut>(
        Op::post(
            "/api/v1/invitations/accept",
            "Join the organization of an invitation with your account",
        ),
        post(accept),
    );
    api.op_io::<NewInvitation, InvitationOut>(
        Op::post(
            "/api/v1/orgs/{id}/invitations",
            "Create an invitation link to an organization",
        )
        .permission("members.write")
        .status(201),
        post(create_invitation),
    );
    api.op_out::<Vec<InvitationOut>>(
        Op::get(
            "/api/v1/orgs/{id}/invitations",
            "Invitations to an organization, newest first",
        )
        .permission("members.write"),
        get(list_invitations),
    );
    api.op_out::<InvitationOut>(
        Op::get("/api/v1/invitations/{id}", "Read an invitation").permission("members.write"),
        get(read_invitation),
    );
    api.op(
        Op::get(
            "/api/v1/invitations/{id}/qr.svg",
            "The invitation link as a QR code (SVG)",
        )
        .permission("members.write")
        .response_body_type("image/svg+xml"),
        get(invitation_qr),
    );
    api.op_out::<InvitationOut>(
        Op::post(
            "/api/v1/invitations/{id}/revoke",
            "Withdraw an invitation (sign-ups already made stay)",
        )
        .permission("members.write"),
        post(revoke_invitation),
    );
    api.op_out::<Vec<DomainOut>>(
        Op::get(
            "/api/v1/orgs/{id}/domains",
            "E-mail domains an organization claims for sign-up",
        )
        .permission("orgs.read"),
        get(list_org_domains),
    );
    api.op_io::<DomainClaim, DomainOut>(
        Op::put(
            "/api/v1/orgs/{id}/domains/{domain}",
            "Claim an e-mail domain for an organization, or change the claim (also needs tenant.manage academy-wide)",
        )
        .permission("orgs.write")
        .status(201),
        put(claim_domain),
    );
    api.op(
        Op::delete(
            "/api/v1/orgs/{id}/domains/{domain}",
            "Release an organization's claim on an e-mail domain (also needs tenant.manage academy-wide)",
        )
        .permission("orgs.write"),
        delete(release_domain),
    );
    api.op_out::<Vec<DomainOut>>(
        Op::get(
            "/api/v1/org-domains",
            "Every claimed e-mail domain of the academy (orgs.read academy-wide)",
        )
        .permission("orgs.read"),
        get(list_all_domains),
    );
    api.op_out::<Page<SignupRecord>>(
        Op::get("/api/v1/signups", "Sign-ups within your scope")
            .permission("users.write")
            .query(&[
                ("status", "pending, approved or rejected"),
                ("limit", "page size, 1–500"),
                ("cursor", "from next_cursor"),
            ]),
        get(list_signups),
    );
    api.op_out::<SignupRecord>(
        Op::post(
            "/api/v1/signups/{id}/approve",
            "Approve a pending sign-up: the account becomes active",
        )
        .permission("users.write"),
        post(approve),
    );
    api.op_io::<Rejection, SignupRecord>(
        Op::post(
            "/api/v1/signups/{id}/reject",
            "Reject a pending sign-up: the account is removed, the record stays",
        )
        .permission("users.write"),
        post(reject),
    );
}

/// Answer a result, telling an unknown invitation token apart: it is a link that leads nowhere (404), under
/// a code of its own so that a sign-up form can say so.
fn answer<T: IntoResponse>(result: ApiResult<T>) -> Response {
    match result {
        Ok(v) => v.into_response(),
        Err(ApiError::NotFound { what }) if what == policy::UNKNOWN_INVITATION => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {
                "code": "invitation_invalid",
                "message": "this invitation link is not valid; check that it was copied whole, or ask for a new one",
                "field": "invitation",
            }})),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

pub(super) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The host the request was made to, for links that lead back to the same academy address. Only characters
/// a host name (with port) can have are kept, so a crafted header cannot smuggle anything into a link.
pub(super) fn request_host(headers: &HeaderMap, state: &AppState, tenant: &Tenant) -> String {
    let forwarded = state
        .config
        .trust_forwarded_host
        .then(|| headers.get("x-forwarded-host").and_then(|v| v.to_str().ok()))
        .flatten();
    let host = forwarded
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let clean = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if clean {
        host
    } else {
        tenant
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{}.{}", tenant.slug, state.config.base_domain))
    }
}

fn invitation_link(host: &str, token: &str) -> String {
    format!("https://{host}/signup?invitation={token}")
}

/// A new invitation token: 24 random bytes, 32 URL-safe characters.
fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------------------
// Invitations

/// An invitation link to an organization.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct InvitationOut {
    id: String,
    org_id: String,
    org_name: String,
    /// The secret of the link; whoever has it may sign up (or join) while the invitation is active.
    token: String,
    /// The sign-up address to share, on the academy address this request was made to.
    link: String,
    uses: i64,
    max_uses: Option<i64>,
    /// Sign-ups through it wait for approval.
    hold: bool,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    /// `active`, `expired`, `used_up` or `revoked`.
    status: String,
    created_by: Option<String>,
    created_at: String,
}

impl InvitationOut {
    fn new(i: Invitation, org_name: String, host: &str) -> InvitationOut {
        InvitationOut {
            status: i.status(now_ms()).as_str().to_owned(),
            link: invitation_link(host, &i.token),
            id: i.id,
            org_id: i.org_id,
            org_name,
            token: i.token,
            uses: i.uses,
            max_uses: i.max_uses,
            hold: i.hold,
            expires_at: i.expires_at.map(rfc3339),
            revoked_at: i.revoked_at.map(rfc3339),
            created_by: i.created_by,
            created_at: rfc3339(i.created_at),
        }
    }

    /// What the audit log keeps: everything but the secret.
    fn audited(&self) -> Value {
        let mut v = json!(self);
        if let Some(o) = v.as_object_mut() {
            o.remove("token");
            o.remove("link");
        }
        v
    }
}

/// Find an organization the caller reaches with `perm`, or 404.
async fn org_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> ApiResult<OrgRow> {
    orgs::find(tx, id)
        .await?
        .filter(|o| reach.covers_org_path(&o.path))
        .ok_or(ApiError::NotFound { what: "organization" })
}

/// Find an invitation of an organization within the caller's `members.write` reach, with the
/// organization's name; anything else is 404.
async fn invitation_in_reach(tx: &mut TenantTx, caller: &Caller, id: &str) -> ApiResult<(Invitation, String)> {
    let reach = caller.grants.reach(Permission::MembersWrite);
    let sql = format!(
        "SELECT {}, o.name AS org_name, o.path AS org_path FROM invitations i \
         JOIN orgs o ON o.id = i.org_id AND o.tenant_id = $1 WHERE i.tenant_id = $1 AND i.id = $2",
        policy::INVITATION_COLUMNS
    );
    let row = tx
        .query(&sql)
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "invitation" })?;
    let path: String = row.try_get("org_path")?;
    if !reach.covers_org_path(&path) {
        return Err(ApiError::NotFound { what: "invitation" });
    }
    Ok((policy::invitation_from_row(&row)?, row.try_get("org_name")?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    /// How many sign-ups it allows, 1–100000; unlimited when absent.
    max_uses: Option<i64>,
    /// When it stops working, RFC 3339, in the future. Give this or `expires_in_days`, not both.
    expires_at: Option<String>,
    /// Days until it stops working, 1–3650.
    expires_in_days: Option<i64>,
    /// Sign-ups through it wait for approval.
    #[serde(default)]
    hold: bool,
}

fn parse_time(field: &str, value: &str) -> ApiResult<i64> {
    let t = time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::invalid(field, "must be a time in RFC 3339, such as 2026-12-31T23:59:00Z"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(org_id): Path<String>,
    Json(req): Json<NewInvitation>,
) -> ApiResult<(StatusCode, axum::Json<InvitationOut>)> {
    let reach = caller.require(Permission::MembersWrite)?;
    if req.max_uses.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return Err(ApiError::invalid(
            "max_uses",
            "must be between 1 and 100000, or left out",
        ));
    }
    let now = now_ms();
    let expires_at = match (&req.expires_at, req.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "expires_in_days",
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(at), None) => {
            let at = parse_time("expires_at", at)?;
            if at <= now {
                return Err(ApiError::invalid("expires_at", "must be in the future"));
            }
            Some(at)
        }
        (None, Some(days)) if (1..=3650).contains(&days) => Some(now + days * crate::learning::DAY_MS),
        (None, Some(_)) => return Err(ApiError::invalid("expires_in_days", "must be between 1 and 3650")),
        (None, None) => None,
    };
    let mut tx = caller.db().begin().await?;
    let org = org_in_reach(&mut tx, &reach, &org_id).await?;
    let invitation = Invitation {
        id: new_id(),
        org_id: org.id.clone(),
        token: new_token(),
        max_uses: req.max_uses,
        uses: 0,
        hold: req.hold,
        expires_at,
        revoked_at: None,
        created_by: Some(caller.user_id.clone()),
        created_at: now,
    };
    tx.query(
        "INSERT INTO invitations (id, tenant_id, org_id, token, max_uses, uses, hold, expires_at, revoked_at, created_by, created_at) \
         VALUES ($2, $1, $3, $4, $5, 0, $6, $7, NULL, $8, $9)",
    )
    .bind(invitation.id.clone())
    .bind(invitation.org_id.clone())
    .bind(invitation.token.clone())
    .bind(invitation.max_uses)
    .bind(i64::from(invitation.hold))
    .bind(invitation.expires_at)
    .bind(invitation.created_by.clone())
    .bind(now)
    .execute(tx.conn())
    .await?;
    let out = InvitationOut::new(invitation, org.name, &request_host(&headers, &state, &caller.tenant));
    record(
        &mut tx,
        &caller.actor(),
        Change::created("invitation.create", "invitation", &out.id, out.audited()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(org_id): Path<String>,
) -> ApiResult<axum::Json<Vec<InvitationOut>>> {
    let reach = caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin_read().await?;
    let org = org_in_reach(&mut tx, &reach, &org_id).await?;
    let sql = format!(
        "SELECT {} FROM invitations i WHERE i.tenant_id = $1 AND i.org_id = $2 ORDER BY i.created_at DESC, i.id DESC",
        policy::INVITATION_COLUMNS
    );
    let rows = tx.query(&sql).bind(org.id.clone()).fetch_all(tx.conn()).await?;
    tx.commit().await?;
    let host = request_host(&headers, &state, &caller.tenant);
    let out = rows
        .iter()
        .map(|r| {
            Ok(InvitationOut::new(
                policy::invitation_from_row(r)?,
                org.name.clone(),
                &host,
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(axum::Json(out))
}

async fn read_invitation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<InvitationOut>> {
    caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin_read().await?;
    let (invitation, org_name) = invitation_in_reach(&mut tx, &caller, &id).await?;
    tx.commit().await?;
    let host = request_host(&headers, &state, &caller.tenant);
    Ok(axum::Json(InvitationOut::new(invitation, org_name, &host)))
}

async fn invitation_qr(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin_read().await?;
    let (invitation, _) = invitation_in_reach(&mut tx, &caller, &id).await?;
    tx.commit().await?;
    let link = invitation_link(&request_host(&headers, &state, &caller.tenant), &invitation.token);
    let code = qrcode::QrCode::new(link.as_bytes())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("QR code of an invitation link: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"))], svg).into_response())
}

async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<InvitationOut>> {
    caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin().await?;
    let (mut invitation, org_name) = invitation_in_reach(&mut tx, &caller, &id).await?;
    let host = request_host(&headers, &state, &caller.tenant);
    if invitation.revoked_at.is_none() {
        let before = InvitationOut::new(invitation.clone(), org_name.clone(), &host).audited();
        let now = now_ms();
        tx.query("UPDATE invitations SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(id.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
        invitation.revoked_at = Some(now);
        let after = InvitationOut::new(invitation.clone(), org_name.clone(), &host).audited();
        record(
            &mut tx,
            &caller.actor(),
            Change::updated("invitation.revoke", "invitation", &id, before, after),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(axum::Json(InvitationOut::new(invitation, org_name, &host)))
}

// ---------------------------------------------------------------------------------------------------------
// Claimed e-mail domains

/// An e-mail domain claimed by an organization: people signing up with such an address land in it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DomainOut {
    domain: String,
    org_id: String,
    org_name: String,
    /// Sign-ups from this domain wait for approval.
    hold: bool,
    created_at: String,
}

fn domain_from_row(row: &AnyRow) -> Result<DomainOut, sqlx::Error> {
    Ok(DomainOut {
        domain: row.try_get("domain")?,
        org_id: row.try_get("org_id")?,
        org_name: row.try_get("org_name")?,
        hold: row.try_get::<i64, _>("hold")? != 0,
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

const DOMAIN_SELECT: &str = "SELECT d.domain, d.org_id, o.name AS org_name, d.hold, d.created_at FROM org_domains d \
     JOIN orgs o ON o.id = d.org_id AND o.tenant_id = $1 WHERE d.tenant_id = $1";

async fn list_org_domains(caller: Caller, Path(org_id): Path<String>) -> ApiResult<axum::Json<Vec<DomainOut>>> {
    let reach = caller.require(Permission::OrgsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let org = org_in_reach(&mut tx, &reach, &org_id).await?;
    let rows = tx
        .query(&format!("{DOMAIN_SELECT} AND d.org_id = $2 ORDER BY d.domain"))
        .bind(org.id)
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(axum::Json(rows.iter().map(domain_from_row).collect::<Result<_, _>>()?))
}

async fn list_all_domains(caller: Caller) -> ApiResult<axum::Json<Vec<DomainOut>>> {
    caller.require_tenant_wide(Permission::OrgsRead)?;
    let mut tx = caller.db().begin_read().await?;
    let rows = tx
        .query(&format!("{DOMAIN_SELECT} ORDER BY d.domain"))
        .fetch_all(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(axum::Json(rows.iter().map(domain_from_row).collect::<Result<_, _>>()?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DomainClaim {
    /// Sign-ups from this domain wait for approval. Default `false` for a new claim; a claim changed without
    /// it keeps its setting.
    hold: Option<bool>,
}

/// A claim decides where strangers land in the whole academy, so beyond the organization in reach it needs
/// the academy-wide right to change settings.
fn require_claim_rights(caller: &Caller) -> ApiResult<Reach> {
    caller.require_tenant_wide(Permission::TenantManage)?;
    caller.require(Permission::OrgsWrite)
}

async fn claim_domain(
    caller: Caller,
    Path((org_id, domain)): Path<(String, String)>,
    Json(req): Json<DomainClaim>,
) -> ApiResult<(StatusCode, axum::Json<DomainOut>)> {
    let reach = require_claim_rights(&caller)?;
    let domain = policy::claimable_domain("domain", &domain)?;
    let mut tx = caller.db().begin().await?;
    let org = org_in_reach(&mut tx, &reach, &org_id).await?;
    let existing = tx
        .query(&format!("{DOMAIN_SELECT} AND d.domain = $2"))
        .bind(domain.clone())
        .fetch_optional(tx.conn())
        .await?
        .as_ref()
        .map(domain_from_row)
        .transpose()?;
    let status = match existing {
        Some(claim) if claim.org_id != org.id => {
            return Err(ApiError::duplicate(
                "domain",
                "another organization of this academy has claimed this domain; release it there first",
            ));
        }
        Some(claim) => {
            let hold = req.hold.unwrap_or(claim.hold);
            tx.query("UPDATE org_domains SET hold = $3 WHERE tenant_id = $1 AND domain = $2")
                .bind(domain.clone())
                .bind(i64::from(hold))
                .execute(tx.conn())
                .await?;
            let before = json!(claim);
            let after = DomainOut { hold, ..claim };
            record(
                &mut tx,
                &caller.actor(),
                Change::updated("org_domain.update", "org", &org.id, before, json!(after)),
            )
            .await?;
            StatusCode::OK
        }
        None => {
            tx.query(
                "INSERT INTO org_domains (tenant_id, domain, org_id, hold, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(domain.clone())
            .bind(org.id.clone())
            .bind(i64::from(req.hold.unwrap_or(false)))
            .bind(now_ms())
            .execute(tx.conn())
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => ApiError::duplicate("domain", "this domain has been claimed meanwhile"),
                None => e.into(),
            })?;
            StatusCode::CREATED
        }
    };
    let out = tx
        .query(&format!("{DOMAIN_SELECT} AND d.domain = $2"))
        .bind(domain.clone())
        .fetch_one(tx.conn())
        .await?;
    let out = domain_from_row(&out)?;
    if status == StatusCode::CREATED {
        record(
            &mut tx,
            &caller.actor(),
            Change::created("org_domain.claim", "org", &org.id, json!(out)),
        )
        .await?;
    }
    tx.commit().await?;
    Ok((status, axum::Json(out)))
}

async fn release_domain(caller: Caller, Path((org_id, domain)): Path<(String, String)>) -> ApiResult<StatusCode> {
    let reach = require_claim_rights(&caller)?;
    let domain = domain.trim().trim_start_matches('@').to_ascii_lowercase();
    let mut tx = caller.db().begin().await?;
    let org = org_in_reach(&mut tx, &reach, &org_id).await?;
    let n = tx
        .query("DELETE FROM org_domains WHERE tenant_id = $1 AND domain = $2 AND org_id = $3")
        .bind(domain.clone())
        .bind(org.id.clone())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound { what: "domain claim" });
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::deleted("org_domain.release", "org", &org.id, json!({"domain": domain})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------------------
// Public sign-up

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SignupBody {
    email: String,
    name: String,
    /// At least 10 characters.
    password: String,
    /// One of the academy's languages.
    locale: Option<String>,
    /// Custom profile fields, by key.
    #[serde(default)]
    profile: Map<String, Value>,
    /// The token of an invitation link (`?invitation=…`).
    invitation: Option<String>,
}

/// The outcome of a sign-up.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SignupOut {
    user_id: String,
    /// `active` (signed in, unless no licence seat is free) or `pending` (awaits approval).
    status: String,
    /// The organization the account was placed in.
    org_id: Option<String>,
    /// Whether a session was started (the session cookie is set).
    signed_in: bool,
    message: String,
}

/// The refusal for an e-mail that has an account already. It does not say more than the sign-in form would.
fn email_taken() -> ApiError {
    ApiError::duplicate(
        "email",
        "this e-mail address cannot sign up here; if it already has an account, sign in instead",
    )
}

async fn signup(
    State(state): State<AppState>,
    RequestHost(host): RequestHost,
    headers: HeaderMap,
    Json(req): Json<SignupBody>,
) -> Response {
    answer(sign_up(&state, host, &headers, req).await)
}

/// Why a sign-up waits for approval, if it does.
fn hold_reason(placement: &Placement, tenant: &Tenant, decision: &Decision) -> Option<String> {
    match decision {
        Decision::Hold(reason) => Some(reason.clone()),
        _ if placement.hold && placement.invitation.is_some() => {
            Some("the invitation holds sign-ups for approval".to_owned())
        }
        _ if placement.hold => Some("the organization holds sign-ups from this domain for approval".to_owned()),
        _ if tenant.settings.signup_requires_approval => Some("the academy approves every sign-up".to_owned()),
        _ => None,
    }
}

async fn sign_up(state: &AppState, host: HostTenant, headers: &HeaderMap, req: SignupBody) -> ApiResult<Response> {
    let tenant = super::common::public_academy(host, "sign up")?;
    let email = email("email", &req.email)?;
    let name = text("name", &req.name, 200)?;
    password::check_new("password", &req.password)?;
    let locale = opt_text("locale", req.locale.as_deref(), 20)?;
    if locale
        .as_deref()
        .is_some_and(|l| !tenant.settings.allowed_locales.iter().any(|a| a == l))
    {
        return Err(ApiError::invalid(
            "locale",
            format!("must be one of {}", tenant.settings.allowed_locales.join(", ")),
        ));
    }
    let token = opt_text("invitation", req.invitation.as_deref(), 200)?;
    let db = state.db.tenant(&tenant.id);

    // What the policy and the invitation allow, before anything is asked of the plugins.
    let mut tx = db.begin_read().await?;
    let placement = policy::place(&mut tx, &tenant.settings, &email, token.as_deref()).await?;
    let taken = tx
        .query("SELECT 1 FROM users WHERE tenant_id = $1 AND lower(email) = $2")
        .bind(email.clone())
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    if taken {
        return Err(email_taken());
    }
    let profile = crate::directory::profile::validate(&mut tx, &req.profile, None).await?;
    tx.commit().await?;

    let hash = password::hash(req.password).await?;
    // Plugins may take their time: no transaction is open while they run.
    let verdict = automation::decide_signup(
        &state.plugins,
        &db,
        &SignupRequest {
            email: email.clone(),
            name: name.clone(),
            locale: locale.clone(),
            profile: profile.clone(),
            invited_to: placement.invitation.as_ref().map(|i| i.org_id.clone()),
        },
    )
    .await;
    let request_id = request_id(headers);
    let actions = automation::actions_to_json(&verdict.actions);

    if let Decision::Refuse(reason) = &verdict.decision {
        let mut actor = Actor::system("sign-up");
        actor.request_id = request_id;
        let mut tx = db.begin().await?;
        let id = new_id();
        insert_signup_row(
            &mut tx,
            &SignupRow {
                id: &id,
                user_id: None,
                email: &email,
                placement: &placement,
                status: "rejected",
                reason: Some(reason),
                actions: &actions,
                decided_at: Some(now_ms()),
            },
        )
        .await?;
        record(
            &mut tx,
            &actor,
            Change::created(
                "signup.refuse",
                "signup",
                &id,
                json!({"via": placement.via.as_str(), "org_id": placement.org.as_ref().map(|o| &o.id), "reason": reason}),
            ),
        )
        .await?;
        tx.commit().await?;
        return Err(ApiError::rule("signup_refused", None, reason.clone()));
    }

    let mut tx = db.begin().await?;
    // Everything is checked again inside the writing transaction: the invitation may have been used up or
    // withdrawn, the claim released, or the organization moved while the plugins were asked.
    let placement = policy::place(&mut tx, &tenant.settings, &email, token.as_deref()).await?;
    if let Some(invitation) = &placement.invitation {
        policy::spend_invitation(&mut tx, &invitation.id).await?;
    }
    let reason = hold_reason(&placement, &tenant, &verdict.decision);
    let status = if reason.is_some() { "pending" } else { "active" };
    let user_id = new_id();
    let now = now_ms();
    tx.query(
        "INSERT INTO users (id, tenant_id, email, name, locale, status, profile, password_hash, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(user_id.clone())
    .bind(email.clone())
    .bind(name.clone())
    .bind(locale.clone())
    .bind(status)
    .bind(Value::Object(profile).to_string())
    .bind(hash)
    .bind(now)
    .execute(tx.conn())
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => email_taken(),
        None => e.into(),
    })?;
    if let Some(org) = &placement.org {
        orgs::add_member(&mut tx, org, &user_id).await?;
    }
    grant_learner(&mut tx, &user_id, now).await?;
    let signup_id = new_id();
    insert_signup_row(
        &mut tx,
        &SignupRow {
            id: &signup_id,
            user_id: Some(&user_id),
            email: &email,
            placement: &placement,
            status: if reason.is_some() { "pending" } else { "approved" },
            reason: reason.as_deref(),
            actions: &actions,
            decided_at: reason.is_none().then_some(now),
        },
    )
    .await?;
    let actor = Actor {
        kind: "user",
        id: Some(user_id.clone()),
        label: email.clone(),
        request_id,
    };
    record(
        &mut tx,
        &actor,
        Change::created(
            "user.signup",
            "user",
            &user_id,
            json!({
                "email": email, "name": name, "status": status, "via": placement.via.as_str(),
                "org_id": placement.org.as_ref().map(|o| &o.id),
                "invitation_id": placement.invitation.as_ref().map(|i| &i.id),
                "signup_id": signup_id, "reason": reason,
            }),
        ),
    )
    .await?;
    if let Some(reason) = &reason {
        // Those who may approve it are told, in this transaction.
        let event =
            crate::outbox::Event::about(crate::outbox::Kind::SignupPending, &user_id).with("reason", reason.clone());
        crate::outbox::emit(&mut tx, &[event]).await?;
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut cookie = None;
    if reason.is_none() {
        pending.push(
            automation::apply_actions(&mut tx, &user_id, &verdict.actions, Context::academy(actor.clone())).await?,
        );
        pending.push(
            automation::run_rules(&mut tx, vec![Event::created(&user_id)], Context::academy(actor.clone())).await?,
        );
        // Signing in right away is a first sign-in: it takes a licence seat, if one is free.
        match policy::claim_seat(&mut tx, tenant.settings.seat_limit, &user_id).await {
            Ok(()) => {
                cookie = Some(super::auth::open_session(&mut tx, state, &user_id, now).await?);
                tx.query("UPDATE users SET first_login_at = $3, last_login_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(user_id.clone())
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
            }
            Err(ApiError::Forbidden {
                code: "licence_seats_exhausted",
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    tx.commit().await?;
    for p in pending {
        automation::after_commit(&state.plugins, &db, p).await;
    }

    let message = match (&reason, &cookie) {
        (Some(_), _) => "your sign-up awaits an administrator's approval; you can sign in once it is approved",
        (None, Some(_)) => "welcome; you are signed in",
        (None, None) => {
            "your account is ready, but every licence seat of this academy is taken; you can sign in once one is free"
        }
    };
    let body = SignupOut {
        user_id,
        status: status.to_owned(),
        org_id: placement.org.map(|o| o.id),
        signed_in: cookie.is_some(),
        message: message.to_owned(),
    };
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Every user is a learner, as when an admin creates them.
async fn grant_learner(tx: &mut TenantTx, user_id: &str, now: i64) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO grants (id, tenant_id, user_id, role_id, scope_type, created_at) \
         SELECT $2, $1, $3, r.id, 'tenant', $4 FROM roles r WHERE r.tenant_id = $1 AND r.key = 'learner'",
    )
    .bind(new_id())
    .bind(user_id.to_owned())
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

struct SignupRow<'a> {
    id: &'a str,
    user_id: Option<&'a str>,
    email: &'a str,
    placement: &'a Placement,
    status: &'a str,
    reason: Option<&'a str>,
    actions: &'a str,
    decided_at: Option<i64>,
}

async fn insert_signup_row(tx: &mut TenantTx, row: &SignupRow<'_>) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO signups (id, tenant_id, user_id, email, via, org_id, invitation_id, status, reason, actions, decided_by, decided_at, created_at) \
         VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12)",
    )
    .bind(row.id.to_owned())
    .bind(row.user_id.map(str::to_owned))
    .bind(row.email.to_owned())
    .bind(row.placement.via.as_str())
    .bind(row.placement.org.as_ref().map(|o| o.id.clone()))
    .bind(row.placement.invitation.as_ref().map(|i| i.id.clone()))
    .bind(row.status.to_owned())
    .bind(row.reason.map(str::to_owned))
    .bind(row.actions.to_owned())
    .bind(row.decided_at)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Joining with an invitation

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    /// The token of the invitation link.
    token: String,
}

/// The organization joined.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AcceptOut {
    org_id: String,
    org_name: String,
    /// `false` when you were a member already (the invitation was not used).
    joined: bool,
}

async fn accept(State(state): State<AppState>, caller: Caller, Json(req): Json<AcceptBody>) -> Response {
    answer(accept_invitation(&state, &caller, req).await)
}

async fn accept_invitation(state: &AppState, caller: &Caller, req: AcceptBody) -> ApiResult<axum::Json<AcceptOut>> {
    let token = text("token", &req.token, 200)?;
    let mut tx = caller.db().begin().await?;
    let invitation = policy::usable_invitation(&mut tx, &token).await?;
    if caller.tenant.settings.signup == "closed" {
        return Err(policy::signup_closed());
    }
    let org = orgs::find(&mut tx, &invitation.org_id)
        .await?
        .ok_or_else(policy::unknown_invitation)?;
    let member = tx
        .query("SELECT 1 FROM memberships WHERE tenant_id = $1 AND user_id = $2 AND org_id = $3")
        .bind(caller.user_id.clone())
        .bind(org.id.clone())
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    if member {
        tx.commit().await?;
        return Ok(axum::Json(AcceptOut {
            org_id: org.id,
            org_name: org.name,
            joined: false,
        }));
    }
    // An existing account was admitted to the academy already: the invitation's hold, which is about
    // admitting newcomers, does not apply to it.
    policy::spend_invitation(&mut tx, &invitation.id).await?;
    orgs::add_member(&mut tx, &org, &caller.user_id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::created(
            "membership.add",
            "org",
            &org.id,
            json!({"user_id": caller.user_id, "invitation_id": invitation.id}),
        ),
    )
    .await?;
    let pending = automation::run_rules(
        &mut tx,
        vec![Event::changed(&caller.user_id)],
        Context::academy(caller.actor()),
    )
    .await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok(axum::Json(AcceptOut {
        org_id: org.id,
        org_name: org.name,
        joined: true,
    }))
}

// ---------------------------------------------------------------------------------------------------------
// Sign-ups and their approval

/// A sign-up: how it came in, where it was placed, what was decided and why.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SignupRecord {
    id: String,
    /// The account; absent when the sign-up was refused or rejected.
    user_id: Option<String>,
    email: String,
    /// `open`, `domain` or `invitation`.
    via: String,
    org_id: Option<String>,
    org_name: Option<String>,
    invitation_id: Option<String>,
    /// `pending`, `approved` or `rejected`.
    status: String,
    reason: Option<String>,
    /// What the enrollment plugins asked for, applied at approval.
    actions: Value,
    decided_by: Option<String>,
    decided_at: Option<String>,
    created_at: String,
}

const SIGNUP_SELECT: &str = "SELECT s.id, s.user_id, s.email, s.via, s.org_id, o.name AS org_name, o.path AS org_path, \
     s.invitation_id, s.status, s.reason, s.actions, s.decided_by, s.decided_at, s.created_at \
     FROM signups s LEFT JOIN orgs o ON o.id = s.org_id AND o.tenant_id = $1 WHERE s.tenant_id = $1";

fn signup_from_row(row: &AnyRow) -> Result<(SignupRecord, Option<String>), sqlx::Error> {
    let actions: String = row.try_get("actions")?;
    Ok((
        SignupRecord {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            via: row.try_get("via")?,
            org_id: row.try_get("org_id")?,
            org_name: row.try_get("org_name")?,
            invitation_id: row.try_get("invitation_id")?,
            status: row.try_get("status")?,
            reason: row.try_get("reason")?,
            actions: serde_json::from_str(&actions).unwrap_or_else(|_| json!([])),
            decided_by: row.try_get("decided_by")?,
            decided_at: row.try_get::<Option<i64>, _>("decided_at")?.map(rfc3339),
            created_at: rfc3339(row.try_get("created_at")?),
        },
        row.try_get("org_path")?,
    ))
}

/// Does the reach cover a sign-up? Through its organization; one placed in no organization only with
/// academy-wide rights.
fn covers(reach: &Reach, org_path: Option<&str>) -> bool {
    reach.all || org_path.is_some_and(|p| reach.covers_org_path(p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupParams {
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list_signups(
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<SignupParams>,
) -> ApiResult<axum::Json<Page<SignupRecord>>> {
    let reach = caller.require(Permission::UsersWrite)?;
    let limit = PageParams {
        limit: p.limit,
        cursor: None,
    }
    .limit()?;
    if let Some(status) = &p.status {
        if !["pending", "approved", "rejected"].contains(&status.as_str()) {
            return Err(ApiError::invalid("status", "must be pending, approved or rejected"));
        }
    }
    let mut sql = Sql::tenant(SIGNUP_SELECT);
    if let Some(status) = &p.status {
        sql.push(" AND s.status = ").push_bind(status.as_str());
    }
    if !reach.all {
        reach.push_org_filter(&mut sql);
    }
    if let Some(cursor) = &p.cursor {
        sql.push(" AND s.id > ").push_bind(cursor.as_str());
    }
    sql.push(" ORDER BY s.id LIMIT ").push_bind(limit + 1);
    let mut tx = caller.db().begin_read().await?;
    let rows = tx.fetch_all_sql(&sql).await?;
    tx.commit().await?;
    let items = rows
        .iter()
        .map(|r| signup_from_row(r).map(|(s, _)| s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(Page::from_rows(items, limit, &uri, |s| s.id.clone())))
}

/// A pending sign-up within the caller's `users.write` reach, or 404 (or 422 when it was decided already).
async fn pending_in_reach(tx: &mut TenantTx, reach: &Reach, id: &str) -> ApiResult<(SignupRecord, String)> {
    let row = tx
        .query(&format!("{SIGNUP_SELECT} AND s.id = $2"))
        .bind(id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ApiError::NotFound { what: "sign-up" })?;
    let (signup, path) = signup_from_row(&row)?;
    if !covers(reach, path.as_deref()) {
        return Err(ApiError::NotFound { what: "sign-up" });
    }
    let user_id = match (&signup.user_id, signup.status.as_str()) {
        (Some(user), "pending") => user.clone(),
        _ => {
            return Err(ApiError::rule(
                "signup_not_pending",
                None,
                format!("this sign-up was {} already", signup.status),
            ));
        }
    };
    let status: Option<String> = tx
        .query("SELECT status FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.clone())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if status.as_deref() != Some("pending") {
        return Err(ApiError::rule(
            "signup_not_pending",
            None,
            "the account of this sign-up is no longer pending; its status was changed directly",
        ));
    }
    Ok((signup, user_id))
}

async fn reload(tx: &mut TenantTx, id: &str) -> ApiResult<SignupRecord> {
    let row = tx
        .query(&format!("{SIGNUP_SELECT} AND s.id = $2"))
        .bind(id.to_owned())
        .fetch_one(tx.conn())
        .await?;
    Ok(signup_from_row(&row)?.0)
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SignupRecord>> {
    let reach = caller.require(Permission::UsersWrite)?;
    let mut tx = caller.db().begin().await?;
    let (before, user_id) = pending_in_reach(&mut tx, &reach, &id).await?;
    let now = now_ms();
    // Both updates are conditional: of two approvals at once only one finds the sign-up still pending.
    let n = tx
        .query("UPDATE signups SET status = 'approved', decided_by = $3, decided_at = $4 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'")
        .bind(id.clone())
        .bind(caller.user_id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    let m = tx
        .query("UPDATE users SET status = 'active', updated_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'")
        .bind(user_id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n != 1 || m != 1 {
        return Err(ApiError::rule(
            "signup_not_pending",
            None,
            "this sign-up was decided meanwhile",
        ));
    }
    let actions = automation::actions_from_json(&before.actions.to_string());
    let p1 = automation::apply_actions(&mut tx, &user_id, &actions, Context::academy(caller.actor())).await?;
    let p2 = automation::run_rules(
        &mut tx,
        vec![Event::created(&user_id)],
        Context::academy(caller.actor()),
    )
    .await?;
    let after = reload(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("signup.approve", "signup", &id, json!(before), json!(after)),
    )
    .await?;
    let event = crate::outbox::Event::about(crate::outbox::Kind::Approved, &user_id).by(Some(&caller.user_id));
    crate::outbox::emit(&mut tx, &[event]).await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), p1).await;
    automation::after_commit(&state.plugins, caller.db(), p2).await;
    Ok(axum::Json(after))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Rejection {
    /// Why, for the record (up to 1000 characters).
    reason: Option<String>,
}

async fn reject(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Rejection>,
) -> ApiResult<axum::Json<SignupRecord>> {
    let reach = caller.require(Permission::UsersWrite)?;
    let reason = opt_text("reason", req.reason.as_deref(), 1000)?;
    let mut tx = caller.db().begin().await?;
    let (before, user_id) = pending_in_reach(&mut tx, &reach, &id).await?;
    let now = now_ms();
    let n = tx
        .query(
            "UPDATE signups SET status = 'rejected', reason = coalesce($3, reason), decided_by = $4, decided_at = $5 \
             WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(id.clone())
        .bind(reason)
        .bind(caller.user_id.clone())
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n != 1 {
        return Err(ApiError::rule(
            "signup_not_pending",
            None,
            "this sign-up was decided meanwhile",
        ));
    }
    // The held account never was in use: it goes, with everything attached to it. The sign-up record stays
    // (without the account) so that the decision can be read later.
    crate::learning::enroll::forget_user(&mut tx, &user_id).await?;
    super::account::forget_user(&mut tx, &user_id).await?;
    for sql in [
        "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM user_tags WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM grants WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
        "DELETE FROM api_tokens WHERE tenant_id = $1 AND user_id = $2",
        "UPDATE users SET manager_id = NULL WHERE tenant_id = $1 AND manager_id = $2",
        "DELETE FROM users WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
    ] {
        tx.query(sql).bind(user_id.clone()).execute(tx.conn()).await?;
    }
    let after = reload(&mut tx, &id).await?;
    record(
        &mut tx,
        &caller.actor(),
        Change::updated("signup.reject", "signup", &id, json!(before), json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}
