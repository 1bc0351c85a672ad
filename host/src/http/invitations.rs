//! Invitation links to an organization (with QR codes), and joining an organization with one.

use super::api::{Api, Op};
use super::common::{Json, Path, Query, text};
use crate::audit::{Change, record};
use crate::auth::Caller;
use crate::auth::extract::link_host;
use crate::error::{ApiError, ApiResult};
use crate::learning::automation::{self, Event};
use crate::learning::signup::invitations::{self, AcceptOut, InvitationOut, NewInvitation};
use crate::scope::Permission;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

pub fn routes(api: &mut Api) {
    api.tag("signup");
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
            "The invitation link as a QR code (SVG), for whoever holds its token (only its hash is kept)",
        )
        .permission("members.write")
        .query(&[("token", "the invitation's token, as shown when it was made (required)")])
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
}

async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(org_id): Path<String>,
    Json(req): Json<NewInvitation>,
) -> ApiResult<(StatusCode, axum::Json<InvitationOut>)> {
    let reach = caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin().await?;
    let (invitation, org, secret) = invitations::create(&mut tx, &reach, &org_id, &caller.user_id, &req).await?;
    let host = link_host(&headers, &state.config, &caller.tenant);
    let out = InvitationOut::new(invitation, org.name, Some((&secret, &host)));
    record(
        &mut tx,
        &caller.actor(),
        Change::created("invitation.create", "invitation", &out.id, out.audited()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn list_invitations(caller: Caller, Path(org_id): Path<String>) -> ApiResult<axum::Json<Vec<InvitationOut>>> {
    let reach = caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin_read().await?;
    let (list, org) = invitations::of_org(&mut tx, &reach, &org_id).await?;
    tx.commit().await?;
    Ok(axum::Json(
        list.into_iter()
            .map(|i| InvitationOut::new(i, org.name.clone(), None))
            .collect(),
    ))
}

async fn read_invitation(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<InvitationOut>> {
    let reach = caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin_read().await?;
    let (invitation, org_name) = invitations::find_in_reach(&mut tx, &reach, &id).await?;
    tx.commit().await?;
    Ok(axum::Json(InvitationOut::new(invitation, org_name, None)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QrParams {
    token: Option<String>,
}

async fn invitation_qr(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<QrParams>,
) -> ApiResult<Response> {
    let reach = caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin_read().await?;
    let (invitation, _) = invitations::find_in_reach(&mut tx, &reach, &id).await?;
    tx.commit().await?;
    // Only the hash of the link is kept: the QR code is drawn for whoever still holds the link.
    let token = q.token.unwrap_or_default();
    if !invitations::holds(&invitation, &token) {
        return Err(ApiError::invalid(
            "token",
            "give the invitation's token (shown when it was made) to draw its link as a QR code",
        ));
    }
    let link = invitations::link(&link_host(&headers, &state.config, &caller.tenant), &token);
    let code = qrcode::QrCode::new(link.as_bytes())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("QR code of an invitation link: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"))], svg).into_response())
}

async fn revoke_invitation(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<InvitationOut>> {
    let reach = caller.require(Permission::MembersWrite)?;
    let mut tx = caller.db().begin().await?;
    let (before, after, org_name) = invitations::revoke(&mut tx, &reach, &id).await?;
    if before.revoked_at.is_none() {
        let before = InvitationOut::new(before, org_name.clone(), None).audited();
        let audited = InvitationOut::new(after.clone(), org_name.clone(), None).audited();
        record(
            &mut tx,
            &caller.actor(),
            Change::updated("invitation.revoke", "invitation", &id, before, audited),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(axum::Json(InvitationOut::new(after, org_name, None)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    /// The token of the invitation link.
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    token: String,
}

async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<AcceptBody>,
) -> ApiResult<axum::Json<AcceptOut>> {
    let token = text("token", &req.token, 200)?;
    let mut tx = caller.db().begin().await?;
    let out = invitations::accept(&mut tx, &caller.tenant.settings, &caller.user_id, &token).await?;
    if !out.joined {
        tx.commit().await?;
        return Ok(axum::Json(out));
    }
    record(
        &mut tx,
        &caller.actor(),
        Change::created(
            "membership.add",
            "org",
            &out.org_id,
            json!({"user_id": caller.user_id, "invitation_id": out.invitation_id}),
        ),
    )
    .await?;
    let pending = automation::run_rules(
        &mut tx,
        vec![Event::changed(&caller.user_id)],
        automation::Context::academy(caller.actor()),
    )
    .await?;
    tx.commit().await?;
    automation::after_commit(&state.plugins, caller.db(), pending).await;
    Ok(axum::Json(out))
}
