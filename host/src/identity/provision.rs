//! Just-in-time provisioning: the person a provider vouched for becomes (or is found to be) an account of the
//! academy, the provider's mapping sets what it owns (organizations, tags, profile fields, language,
//! manager), and a session opens. All of it is one transaction: a refusal leaves nothing behind but its line
//! in the audit log. The academy's rules act on the created or changed account inside the transaction, its
//! enrollment plugins once it has committed, exactly as for any other change.

use super::oidc::{Claims, SsoError};
use super::providers::{Mapping, OrgMatch, Provider};
use crate::audit::{Change, record};
use crate::auth::Actor;
use crate::config::Config;
use crate::db::{TenantDb, TenantTx, new_id, now_ms};
use crate::directory::orgs;
use crate::learning::automation::{self, Context, Event, Pending};
use crate::plugins::host::PluginHost;
use crate::tenancy::Tenant;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row;
use std::collections::BTreeSet;

/// What the mapping last set on an account (stored with the link), so the next sign-in changes only that.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Owned {
    pub orgs: BTreeSet<String>,
    pub tags: BTreeSet<String>,
    pub fields: BTreeSet<String>,
}

/// A finished sign-in.
#[derive(Debug)]
pub struct SignedIn {
    pub user_id: String,
    /// The session cookie to set.
    pub cookie: String,
    /// Whether this sign-in created the account.
    pub created: bool,
}

/// Sign in the person `claims` describes, through `provider`: find the account linked to the provider's
/// subject, else link the account with the provider's verified e-mail address, else (when the provider may)
/// create one; apply the mapping; open a session.
pub async fn sign_in(
    db: &TenantDb,
    config: &Config,
    plugins: &PluginHost,
    tenant: &Tenant,
    provider: &Provider,
    claims: &Claims,
    request_id: Option<String>,
) -> Result<SignedIn, SsoError> {
    let email = claims.email.as_deref().ok_or(SsoError::NoEmail)?;
    let email = crate::fields::email("email", email).map_err(|_| SsoError::NoEmail)?;
    if !provider.serves(&email) {
        return Err(SsoError::DomainNotAllowed(email));
    }
    let now = now_ms();
    let mut tx = db.begin().await?;
    let linked: Option<(String, String)> = tx
        .query("SELECT user_id, owned FROM user_identities WHERE tenant_id = $1 AND provider_id = $2 AND subject = $3")
        .bind(provider.id.clone())
        .bind(claims.subject.clone())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| Ok::<_, sqlx::Error>((r.try_get("user_id")?, r.try_get("owned")?)))
        .transpose()?;
    let mut actor = Actor {
        kind: "user",
        id: None,
        label: email.clone(),
        request_id,
    };
    let (user_id, owned, created) = match linked {
        Some((user_id, owned)) => (
            user_id,
            serde_json::from_str::<Owned>(&owned).unwrap_or_default(),
            false,
        ),
        None => {
            // Linking or creating by e-mail trusts the address: only an address the provider verified.
            if !claims.email_verified {
                return Err(SsoError::Unverified(email));
            }
            let existing: Option<String> = tx
                .query("SELECT id FROM users WHERE tenant_id = $1 AND lower(email) = $2")
                .bind(email.clone())
                .fetch_optional(tx.conn())
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            let (user_id, created) = match existing {
                Some(id) => (id, false),
                None if provider.create_users => (create_account(&mut tx, claims, &email, now).await?, true),
                None => return Err(SsoError::NoAccount(email)),
            };
            tx.query(
                "INSERT INTO user_identities (tenant_id, provider_id, subject, user_id, owned, created_at, last_login_at) \
                 VALUES ($1, $2, $3, $4, '{}', $5, $5)",
            )
            .bind(provider.id.clone())
            .bind(claims.subject.clone())
            .bind(user_id.clone())
            .bind(now)
            .execute(tx.conn())
            .await?;
            (user_id, Owned::default(), created)
        }
    };
    actor.id = Some(user_id.clone());
    let status: String = tx
        .query("SELECT status FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.clone())
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if status != "active" {
        return Err(SsoError::Inactive(status));
    }

    let (now_owned, changes) = apply_mapping(&mut tx, tenant, &provider.mapping, claims, &user_id, &owned).await?;
    tx.query("UPDATE user_identities SET owned = $4, last_login_at = $5 WHERE tenant_id = $1 AND provider_id = $2 AND subject = $3")
        .bind(provider.id.clone())
        .bind(claims.subject.clone())
        .bind(serde_json::to_string(&now_owned).unwrap_or_else(|_| "{}".into()))
        .bind(now)
        .execute(tx.conn())
        .await?;

    let mut pending: Option<Pending> = None;
    if created {
        record(
            &mut tx,
            &actor,
            Change::created(
                "user.create",
                "user",
                &user_id,
                json!({"email": email, "via": "sso", "provider_id": provider.id, "provider": provider.name, "mapped": changes}),
            ),
        )
        .await?;
        pending = Some(
            automation::run_rules(&mut tx, vec![Event::created(&user_id)], Context::academy(actor.clone())).await?,
        );
    } else if !changes.is_empty() {
        record(
            &mut tx,
            &actor,
            Change::updated(
                "user.update",
                "user",
                &user_id,
                json!({"owned_by_provider": owned_json(&owned)}),
                json!({"via": "sso", "provider_id": provider.id, "mapped": changes}),
            ),
        )
        .await?;
        pending = Some(
            automation::run_rules(&mut tx, vec![Event::changed(&user_id)], Context::academy(actor.clone())).await?,
        );
    }
    let cookie = open_session(&mut tx, config, tenant, &user_id, now)
        .await
        .map_err(|e| match e {
            crate::learning::signup::Error::SeatsExhausted { .. } => SsoError::Refusal(e.to_string()),
            other => SsoError::Internal(anyhow::anyhow!(other.to_string())),
        })?;
    tx.commit().await?;
    if let Some(pending) = pending {
        automation::after_commit(plugins, db, pending).await;
    }
    Ok(SignedIn {
        user_id,
        cookie,
        created,
    })
}

fn owned_json(owned: &Owned) -> Value {
    serde_json::to_value(owned).unwrap_or(Value::Null)
}

/// Open a session for a person who proved who they are (a password, a provider): the first sign-in takes a
/// licence seat, the sign-in is stamped on the account and counted for the activity report. Answers the
/// session cookie.
pub async fn open_session(
    tx: &mut TenantTx,
    config: &Config,
    tenant: &Tenant,
    user_id: &str,
    now: i64,
) -> Result<String, crate::learning::signup::Error> {
    // This transaction writes, so concurrent first sign-ins queue for the seat count (see `seats::claim`).
    crate::learning::signup::seats::claim(tx, tenant.settings.seat_limit, user_id).await?;
    let cookie = crate::auth::session::open(tx, config, user_id, now).await?;
    tx.query("UPDATE users SET first_login_at = coalesce(first_login_at, $3), last_login_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.to_owned())
        .bind(now)
        .execute(tx.conn())
        .await?;
    // Every successful sign-in, for the activity report (written with the session, so both or neither).
    tx.query("INSERT INTO login_events (id, tenant_id, user_id, at) VALUES ($2, $1, $3, $4)")
        .bind(new_id())
        .bind(user_id.to_owned())
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(cookie)
}

/// A new active learner from the provider's claims (no password: they sign in through the provider).
async fn create_account(tx: &mut TenantTx, claims: &Claims, email: &str, now: i64) -> Result<String, SsoError> {
    let name = claims
        .name
        .as_deref()
        .and_then(|n| crate::fields::text("name", n, 200).ok())
        .unwrap_or_else(|| email.split('@').next().unwrap_or(email).to_owned());
    let id = new_id();
    tx.query(
        "INSERT INTO users (id, tenant_id, email, name, locale, status, profile, created_at, updated_at) \
         VALUES ($2, $1, $3, $4, NULL, 'active', '{}', $5, $5)",
    )
    .bind(id.clone())
    .bind(email.to_owned())
    .bind(name)
    .bind(now)
    .execute(tx.conn())
    .await?;
    crate::directory::accounts::grant_learner(tx, &id, now).await?;
    Ok(id)
}

/// The texts a claim holds: one text, or a list of texts (numbers read as text).
fn texts(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match claims.get(claim) {
        Some(Value::Array(items)) => items.iter().filter_map(one).take(100).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Set what the mapping owns from the claims; answers what it owns now and what changed (for the audit).
async fn apply_mapping(
    tx: &mut TenantTx,
    tenant: &Tenant,
    mapping: &Mapping,
    claims: &Claims,
    user_id: &str,
    before: &Owned,
) -> Result<(Owned, Map<String, Value>), SsoError> {
    let mut owned = Owned::default();
    let mut changes = Map::new();

    // Organizations.
    if let Some(m) = &mapping.orgs {
        for value in texts(&claims.all, &m.claim) {
            let org = match m.by {
                OrgMatch::Path => org_by_path(tx, &value, m.create).await?,
                OrgMatch::ExternalId => org_by_external_id(tx, &value).await?,
            };
            if let Some(org) = org {
                owned.orgs.insert(org.id.clone());
                if orgs::add_member(tx, &org, user_id)
                    .await
                    .map_err(|e| SsoError::Refusal(e.to_string()))?
                {
                    push(&mut changes, "orgs_added", &org.id);
                }
            }
        }
    }
    let gone: Vec<&String> = before.orgs.difference(&owned.orgs).collect();
    drop_unclaimed(
        tx,
        ("memberships", "org_id"),
        &gone,
        user_id,
        &mut changes,
        "orgs_removed",
    )
    .await?;

    // Tags.
    if let Some(m) = &mapping.tags {
        for name in texts(&claims.all, &m.claim) {
            let Some(tag_id) = tag_by_name(tx, &name, m.create).await? else {
                continue;
            };
            owned.tags.insert(tag_id.clone());
            let added = tx
                .query("INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(user_id.to_owned())
                .bind(tag_id.clone())
                .bind(now_ms())
                .execute(tx.conn())
                .await?
                .rows_affected();
            if added > 0 {
                push(&mut changes, "tags_added", &tag_id);
            }
        }
    }
    let gone: Vec<&String> = before.tags.difference(&owned.tags).collect();
    drop_unclaimed(
        tx,
        ("user_tags", "tag_id"),
        &gone,
        user_id,
        &mut changes,
        "tags_removed",
    )
    .await?;

    // Profile fields, language and manager: one update of the account.
    let row = tx
        .query("SELECT profile, locale, manager_id FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(user_id.to_owned())
        .fetch_one(tx.conn())
        .await?;
    let profile_text: String = row.try_get("profile")?;
    let mut profile: Map<String, Value> = serde_json::from_str(&profile_text).unwrap_or_default();
    let mut locale: Option<String> = row.try_get("locale")?;
    let mut manager: Option<String> = row.try_get("manager_id")?;
    let mut dirty = false;
    for (key, claim) in &mapping.fields {
        let value = match claims.all.get(claim) {
            Some(Value::Array(items)) => items.first().cloned(),
            other => other.cloned(),
        }
        .filter(|v| !v.is_null());
        match value {
            Some(v) => {
                // A value the field does not take is passed over (and said in the audit), not a failed sign-in.
                let one = Map::from_iter([(key.clone(), v.clone())]);
                match crate::directory::profile::validate(tx, &one, Some(&profile)).await {
                    Ok(_) => {
                        owned.fields.insert(key.clone());
                        if profile.get(key) != Some(&v) {
                            profile.insert(key.clone(), v);
                            dirty = true;
                            push(&mut changes, "fields_set", key);
                        }
                    }
                    Err(e) => push(&mut changes, "fields_passed_over", &format!("{key}: {e}")),
                }
            }
            None if before.fields.contains(key) && profile.remove(key).is_some() => {
                dirty = true;
                push(&mut changes, "fields_cleared", key);
            }
            None => {}
        }
    }
    if mapping.locale
        && let Some(claimed) = &claims.locale
    {
        let allowed = &tenant.settings.allowed_locales;
        let primary = claimed
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let pick = allowed
            .iter()
            .find(|l| l.eq_ignore_ascii_case(claimed))
            .or_else(|| allowed.iter().find(|l| **l == primary))
            .cloned();
        if pick.is_some() && pick != locale {
            locale = pick;
            dirty = true;
            changes.insert("locale".into(), json!(locale));
        }
    }
    if let Some(claim) = &mapping.manager
        && let Some(address) = texts(&claims.all, claim).into_iter().next()
    {
        let found: Option<String> = tx
            .query("SELECT id FROM users WHERE tenant_id = $1 AND lower(email) = $2 AND id <> $3")
            .bind(address.to_lowercase())
            .bind(user_id.to_owned())
            .fetch_optional(tx.conn())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if found.is_some() && found != manager {
            manager = found;
            dirty = true;
            changes.insert("manager_id".into(), json!(manager));
        }
    }
    if dirty {
        tx.query("UPDATE users SET profile = $3, locale = $4, manager_id = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2")
            .bind(user_id.to_owned())
            .bind(Value::Object(profile).to_string())
            .bind(locale)
            .bind(manager)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
    }
    Ok((owned, changes))
}

/// Take off the user what the mapping set before and sets no more: their rows of `table` whose `column` is
/// one of `gone` (memberships of organizations, tags), each said in `changes` under `key`.
async fn drop_unclaimed(
    tx: &mut TenantTx,
    (table, column): (&str, &str),
    gone: &[&String],
    user_id: &str,
    changes: &mut Map<String, Value>,
    key: &str,
) -> Result<(), sqlx::Error> {
    let sql = format!("DELETE FROM {table} WHERE tenant_id = $1 AND {column} = $2 AND user_id = $3");
    for id in gone {
        let n = tx
            .query(&sql)
            .bind((*id).clone())
            .bind(user_id.to_owned())
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n > 0 {
            push(changes, key, id);
        }
    }
    Ok(())
}

fn push(changes: &mut Map<String, Value>, key: &str, value: &str) {
    let list = changes.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = list {
        items.push(Value::String(value.to_owned()));
    }
}

/// The organization a path of names names (`Sales/EMEA`), created along the way when `create`.
async fn org_by_path(tx: &mut TenantTx, path: &str, create: bool) -> Result<Option<orgs::OrgRow>, SsoError> {
    let names: Vec<&str> = path.split('/').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names.is_empty() || names.len() > 20 {
        return Ok(None);
    }
    let mut parent: Option<orgs::OrgRow> = None;
    for name in names {
        let Ok(name) = crate::fields::text("name", name, 200) else {
            return Ok(None);
        };
        let found: Option<String> = match &parent {
            Some(p) => tx
                .query("SELECT id FROM orgs WHERE tenant_id = $1 AND parent_id = $2 AND lower(name) = lower($3)")
                .bind(p.id.clone())
                .bind(name.clone()),
            None => tx
                .query("SELECT id FROM orgs WHERE tenant_id = $1 AND parent_id IS NULL AND lower(name) = lower($2)")
                .bind(name.clone()),
        }
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
        let id = match found {
            Some(id) => id,
            None if create => {
                let new = orgs::NewOrg::named(&name, parent.as_ref().map(|p| p.id.clone()));
                orgs::create(tx, &crate::scope::Reach::everything(), &new)
                    .await
                    .map_err(|e| SsoError::Refusal(e.to_string()))?
                    .id
            }
            None => return Ok(None),
        };
        parent = orgs::find(tx, &id).await?;
    }
    Ok(parent)
}

async fn org_by_external_id(tx: &mut TenantTx, external_id: &str) -> Result<Option<orgs::OrgRow>, SsoError> {
    let id: Option<String> = tx
        .query("SELECT id FROM orgs WHERE tenant_id = $1 AND external_id = $2")
        .bind(external_id.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(match id {
        Some(id) => orgs::find(tx, &id).await?,
        None => None,
    })
}

/// The tag with this name, created when `create` and the name is a tag name.
async fn tag_by_name(tx: &mut TenantTx, name: &str, create: bool) -> Result<Option<String>, SsoError> {
    let found: Option<String> = tx
        .query("SELECT id FROM tags WHERE tenant_id = $1 AND lower(name) = lower($2)")
        .bind(name.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if found.is_some() || !create {
        return Ok(found);
    }
    let valid = name.chars().count() <= 100 && name.chars().all(|c| c.is_alphanumeric() || "_-.:".contains(c));
    if !valid {
        return Ok(None);
    }
    let id = new_id();
    tx.query("INSERT INTO tags (id, tenant_id, name, description, created_at) VALUES ($2, $1, $3, NULL, $4)")
        .bind(id.clone())
        .bind(name.to_owned())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
    Ok(Some(id))
}

/// Keep a refused sign-in in the audit log (the only thing a refusal writes).
pub async fn record_refusal(
    db: &TenantDb,
    provider: Option<&Provider>,
    email: Option<&str>,
    error: &SsoError,
    request_id: Option<String>,
) -> Result<(), sqlx::Error> {
    let mut actor = Actor::system("single sign-on");
    actor.request_id = request_id;
    let mut tx = db.begin().await?;
    record(
        &mut tx,
        &actor,
        Change::created(
            "sso.refuse",
            "identity_provider",
            provider.map(|p| p.id.as_str()).unwrap_or_default(),
            json!({"reason": error.code(), "message": error.to_string(), "email": email,
                   "provider": provider.map(|p| &p.name)}),
        ),
    )
    .await?;
    tx.commit().await
}
