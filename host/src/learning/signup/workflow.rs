//! The public sign-up, in the order it happens:
//!
//! 1. [`check`] the form and where it lands under the academy's policy, reading only;
//! 2. hash the password and ask the enrollment plugins ([`crate::learning::automation::decide_signup`]), with
//!    no transaction open, since plugins may take their time;
//! 3. on a refusal, [`record_refusal`] and stop;
//! 4. otherwise [`admit`] in one transaction: everything is checked again (the invitation may have been used
//!    up meanwhile), then the account, its membership, the invitation use, the sign-up record, the audit entry,
//!    what the rules do about it and, when it needs no approval and a licence seat is free, a session;
//! 5. the enrollment plugins act on what committed.
//!
//! A sign-up placed by its e-mail's claimed domain is trusted only once the address is proven: after step 1
//! the form (the password as its hash) waits in `signup_verifications` and a link goes to the address
//! ([`SignUp::Verify`]); using the link ([`verify`]) goes on with step 2 as if the form had just arrived.

use super::{Error, Placement, Result, hold_reason, invitations, place, seats};
use crate::audit::{Change, record};
use crate::auth::{Actor, password};
use crate::config::Config;
use crate::db::{ResultExt, TenantDb, TenantTx, new_id, now_ms};
use crate::directory::{accounts, orgs, profile};
use crate::fields::{email, opt_text, text};
use crate::learning::automation::{self, Context, Decision, Event, Pending, SignupRequest, Verdict};
use crate::plugins::host::PluginHost;
use crate::tenancy::Tenant;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row;

/// A sign-up form.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    #[schemars(length(max = 254), regex(pattern = crate::fields::pattern::EMAIL))]
    email: String,
    #[schemars(length(min = 1, max = 200), regex(pattern = crate::fields::pattern::TEXT))]
    name: String,
    /// At least 10 characters.
    #[schemars(length(min = 10, max = 200))]
    password: String,
    /// One of the academy's languages.
    #[schemars(length(max = 20), regex(pattern = crate::fields::pattern::LOCALE))]
    locale: Option<String>,
    /// Custom profile fields, by key.
    #[serde(default)]
    profile: Map<String, Value>,
    /// The token of an invitation link (`?invitation=…`).
    #[schemars(length(max = 200), regex(pattern = crate::fields::pattern::OPT_TEXT))]
    invitation: Option<String>,
}

/// The outcome of a sign-up.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SignupOut {
    /// The new account; none while the address waits to be confirmed.
    user_id: Option<String>,
    /// `active` (signed in, unless no licence seat is free), `pending` (awaits approval) or `unverified`
    /// (a link to confirm the address was sent; no account exists yet).
    status: String,
    /// The organization the account was placed in.
    org_id: Option<String>,
    /// Whether a session was started (the session cookie is set).
    pub(crate) signed_in: bool,
    message: String,
}

/// A sign-up whose form and placement have been checked.
pub struct Checked {
    email: String,
    name: String,
    locale: Option<String>,
    profile: Map<String, Value>,
    token: Option<String>,
    password: String,
    placement: Placement,
}

/// What became of a sign-up.
pub struct SignedUp {
    /// The answer.
    pub out: SignupOut,
    /// The `Set-Cookie` value of the session started, if one was.
    pub cookie: Option<String>,
}

/// What a sign-up led to.
pub enum SignUp {
    /// It was decided: an account, or a refusal (as an error).
    Done(SignedUp),
    /// It waits for its address to be confirmed: the link's secret goes to the address, nowhere else.
    Verify(Verification),
}

/// A sign-up waiting for its address to be confirmed.
pub struct Verification {
    /// The answer.
    pub out: SignupOut,
    /// The link's secret (only its hash is stored); `None` when mails to this address are throttled.
    pub token: Option<String>,
    /// To whom.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their language, if they chose one.
    pub locale: Option<String>,
}

/// How long a confirmation link works.
pub const VERIFY_LINK_MS: i64 = 24 * 60 * 60 * 1000;
/// Confirmation mails to one address within [`VERIFY_WINDOW_MS`].
const VERIFY_MAILS_PER_WINDOW: i64 = 3;
const VERIFY_WINDOW_MS: i64 = 60 * 60 * 1000;

/// Check the form and where it lands, reading only.
pub async fn check(db: &TenantDb, tenant: &Tenant, req: SignupBody) -> Result<Checked> {
    let email = email("email", &req.email)?;
    let name = text("name", &req.name, 200)?;
    password::check_new("password", &req.password)?;
    let locale = opt_text("locale", req.locale.as_deref(), 20)?;
    if locale
        .as_deref()
        .is_some_and(|l| !tenant.settings.allowed_locales.iter().any(|a| a == l))
    {
        return Err(Error::invalid(
            "locale",
            format!("must be one of {}", tenant.settings.allowed_locales.join(", ")),
        ));
    }
    let token = opt_text("invitation", req.invitation.as_deref(), 200)?;
    let mut tx = db.begin_read().await?;
    let placement = place(&mut tx, &tenant.settings, &email, token.as_deref()).await?;
    let taken = tx
        .query("SELECT 1 FROM users WHERE tenant_id = $1 AND lower(email) = $2")
        .bind(email.clone())
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    if taken {
        return Err(Error::EmailTaken);
    }
    let profile = profile::validate(&mut tx, &req.profile, None).await?;
    tx.commit().await?;
    Ok(Checked {
        email,
        name,
        locale,
        profile,
        token,
        password: req.password,
        placement,
    })
}

/// The whole sign-up: check; when the claimed domain placed it, wait for the address to be confirmed;
/// otherwise go on ([`decide`]).
pub async fn sign_up(
    db: &TenantDb,
    config: &Config,
    plugins: &PluginHost,
    tenant: &Tenant,
    req: SignupBody,
    request_id: Option<String>,
) -> Result<SignUp> {
    let checked = check(db, tenant, req).await?;
    let hash = password::hash(&tenant.id, checked.password.clone()).await?;
    if checked.placement.via == super::Via::Domain {
        return Ok(SignUp::Verify(await_verification(db, checked, hash).await?));
    }
    Ok(SignUp::Done(
        decide(db, config, plugins, tenant, checked, hash, request_id).await?,
    ))
}

/// Keep the checked form until its address is confirmed, and make the link (at most
/// [`VERIFY_MAILS_PER_WINDOW`] an hour to one address; past that the answer is the same and no mail goes).
async fn await_verification(db: &TenantDb, checked: Checked, hash: String) -> Result<Verification> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    tx.query("DELETE FROM signup_verifications WHERE tenant_id = $1 AND expires_at < $2 AND created_at < $2")
        .bind(now - VERIFY_WINDOW_MS)
        .execute(tx.conn())
        .await?;
    let sent: i64 = tx
        .query("SELECT COUNT(*) FROM signup_verifications WHERE tenant_id = $1 AND email = $2 AND created_at > $3")
        .bind(checked.email.clone())
        .bind(now - VERIFY_WINDOW_MS)
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    let token = if sent < VERIFY_MAILS_PER_WINDOW {
        let token = crate::auth::random_secret();
        tx.query(
            "INSERT INTO signup_verifications (id, tenant_id, token_hash, email, name, locale, profile, password_hash, \
             created_at, expires_at) VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id())
        .bind(crate::auth::secret_hash(&token))
        .bind(checked.email.clone())
        .bind(checked.name.clone())
        .bind(checked.locale.clone())
        .bind(Value::Object(checked.profile.clone()).to_string())
        .bind(hash)
        .bind(now)
        .bind(now + VERIFY_LINK_MS)
        .execute(tx.conn())
        .await?;
        Some(token)
    } else {
        None
    };
    tx.commit().await?;
    Ok(Verification {
        out: SignupOut {
            user_id: None,
            status: "unverified".into(),
            org_id: None,
            signed_in: false,
            message: "a link to confirm your e-mail address is on its way; your account is created when you use it \
                      (within 24 hours)"
                .into(),
        },
        token,
        email: checked.email,
        name: checked.name,
        locale: checked.locale,
    })
}

/// Use a confirmation link: the waiting sign-up goes on as if its form had just arrived (placed again, the
/// plugins asked, admitted or refused). The link works once.
pub async fn verify(
    db: &TenantDb,
    config: &Config,
    plugins: &PluginHost,
    tenant: &Tenant,
    token: &str,
    request_id: Option<String>,
) -> Result<SignedUp> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let row = tx
        .query(
            "SELECT id, email, name, locale, profile, password_hash FROM signup_verifications \
             WHERE tenant_id = $1 AND token_hash = $2 AND expires_at > $3",
        )
        .bind(crate::auth::secret_hash(token.trim()))
        .bind(now)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(Error::VerificationInvalid)?;
    let email: String = row.try_get("email")?;
    // The link is spent whatever comes of it, and so are the other links to this address.
    tx.query("DELETE FROM signup_verifications WHERE tenant_id = $1 AND email = $2")
        .bind(email.clone())
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    let profile: String = row.try_get("profile")?;
    let profile = match serde_json::from_str(&profile) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut read = db.begin_read().await?;
    let placement = place(&mut read, &tenant.settings, &email, None).await?;
    read.commit().await?;
    let checked = Checked {
        email,
        name: row.try_get("name")?,
        locale: row.try_get("locale")?,
        profile,
        token: None,
        password: String::new(),
        placement,
    };
    decide(
        db,
        config,
        plugins,
        tenant,
        checked,
        row.try_get("password_hash")?,
        request_id,
    )
    .await
}

/// Ask the plugins, refuse or admit, let the plugins act on what committed.
async fn decide(
    db: &TenantDb,
    config: &Config,
    plugins: &PluginHost,
    tenant: &Tenant,
    checked: Checked,
    hash: String,
    request_id: Option<String>,
) -> Result<SignedUp> {
    // Plugins may take their time: no transaction is open while they run.
    let verdict = automation::decide_signup(
        plugins,
        db,
        &SignupRequest {
            email: checked.email.clone(),
            name: checked.name.clone(),
            locale: checked.locale.clone(),
            profile: checked.profile.clone(),
            invited_to: checked.placement.invitation.as_ref().map(|i| i.org_id.clone()),
        },
    )
    .await;
    if let Decision::Refuse(reason) = &verdict.decision {
        record_refusal(db, &checked, reason, &verdict, request_id).await?;
        return Err(Error::Refused(reason.clone()));
    }
    let (signed_up, pending) = admit(db, config, tenant, checked, hash, &verdict, request_id).await?;
    for p in pending {
        automation::after_commit(plugins, db, p).await;
    }
    Ok(signed_up)
}

/// Keep the record of a sign-up an enrollment plugin refused: no account, the e-mail and the reason.
async fn record_refusal(
    db: &TenantDb,
    checked: &Checked,
    reason: &str,
    verdict: &Verdict,
    request_id: Option<String>,
) -> Result<()> {
    let mut actor = Actor::system("sign-up");
    actor.request_id = request_id;
    let mut tx = db.begin().await?;
    let id = new_id();
    insert_signup_row(
        &mut tx,
        &SignupRow {
            id: &id,
            user_id: None,
            email: &checked.email,
            placement: &checked.placement,
            status: "rejected",
            reason: Some(reason),
            actions: &automation::actions_to_json(&verdict.actions),
            decided_at: Some(now_ms()),
        },
    )
    .await?;
    let placement = &checked.placement;
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
    Ok(())
}

/// Write the account and everything that goes with it, in one transaction.
async fn admit(
    db: &TenantDb,
    config: &Config,
    tenant: &Tenant,
    checked: Checked,
    hash: String,
    verdict: &Verdict,
    request_id: Option<String>,
) -> Result<(SignedUp, Vec<Pending>)> {
    let Checked {
        email,
        name,
        locale,
        profile,
        token,
        ..
    } = checked;
    let mut tx = db.begin().await?;
    // Everything is checked again inside the writing transaction: the invitation may have been used up or
    // withdrawn, the claim released, or the organization moved while the plugins were asked.
    let placement = place(&mut tx, &tenant.settings, &email, token.as_deref()).await?;
    if let Some(invitation) = &placement.invitation {
        invitations::spend(&mut tx, &invitation.id).await?;
    }
    let reason = hold_reason(&placement, &tenant.settings, &verdict.decision);
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
    .bind(locale)
    .bind(status)
    .bind(Value::Object(profile).to_string())
    .bind(hash)
    .bind(now)
    .execute(tx.conn())
    .await
    .on_constraint(&[("", || Error::EmailTaken)])?;
    if let Some(org) = &placement.org {
        orgs::add_member(&mut tx, org, &user_id).await?;
    }
    accounts::grant_learner(&mut tx, &user_id, now).await?;
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
            actions: &automation::actions_to_json(&verdict.actions),
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
        match seats::claim(&mut tx, tenant.settings.seat_limit, &user_id).await {
            Ok(()) => {
                cookie = Some(crate::auth::session::open(&mut tx, config, &user_id, now).await?);
                tx.query("UPDATE users SET first_login_at = $3, last_login_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(user_id.clone())
                    .bind(now)
                    .execute(tx.conn())
                    .await?;
            }
            Err(Error::SeatsExhausted { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    tx.commit().await?;
    let message = match (&reason, &cookie) {
        (Some(_), _) => "your sign-up awaits an administrator's approval; you can sign in once it is approved",
        (None, Some(_)) => "welcome; you are signed in",
        (None, None) => {
            "your account is ready, but every licence seat of this academy is taken; you can sign in once one is free"
        }
    };
    let out = SignupOut {
        user_id: Some(user_id),
        status: status.to_owned(),
        org_id: placement.org.map(|o| o.id),
        signed_in: cookie.is_some(),
        message: message.to_owned(),
    };
    Ok((SignedUp { out, cookie }, pending))
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
