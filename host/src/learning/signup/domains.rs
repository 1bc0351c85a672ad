//! E-mail domains that organizations claim: someone signing up with an address of a claimed domain lands in
//! its organization (and waits for approval when the claim says so). A claim decides where strangers land in
//! the whole academy, so making or releasing one needs the academy-wide right to change settings.

use super::{Error, Result};
use crate::db::{Constraints, Flag, ResultExt, TenantTx, Timestamp, now_ms};
use crate::directory::orgs::{self, OrgRow};
use crate::scope::Reach;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, Row};

/// Mail domains anyone can get an address at. Claiming one would hand an organization of the academy to
/// the whole internet, so they cannot be claimed.
pub const PUBLIC_DOMAINS: &[&str] = &[
    "163.com",
    "126.com",
    "aim.com",
    "aol.com",
    "fastmail.com",
    "gmail.com",
    "gmx.at",
    "gmx.ch",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hey.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.de",
    "hotmail.fr",
    "icloud.com",
    "laposte.net",
    "libero.it",
    "live.com",
    "live.de",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "naver.com",
    "orange.fr",
    "outlook.com",
    "outlook.de",
    "posteo.de",
    "pm.me",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "rambler.ru",
    "t-online.de",
    "tutanota.com",
    "web.de",
    "yahoo.co.jp",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.de",
    "yahoo.fr",
    "yandex.com",
    "yandex.ru",
    "ymail.com",
    "zoho.com",
];

/// Is this a public mail provider's domain?
pub fn is_public_domain(domain: &str) -> bool {
    PUBLIC_DOMAINS.contains(&domain)
}

/// A domain to claim, checked and lower-cased (a leading `@` is forgiven). Public mail domains are refused.
pub fn claimable(field: &str, value: &str) -> Result<String> {
    let domain = value.trim().trim_start_matches('@').to_ascii_lowercase();
    if !crate::tenancy::valid_domain(&domain) {
        return Err(Error::invalid(field, "must be a mail domain such as example.com"));
    }
    if is_public_domain(&domain) {
        return Err(Error::PublicDomain {
            field: field.to_owned(),
            domain,
        });
    }
    Ok(domain)
}

/// The domain part of a checked e-mail address.
pub fn email_domain(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
}

/// The organization that claimed this domain, and whether it holds sign-ups.
pub async fn claimed(tx: &mut TenantTx, domain: &str) -> Result<Option<(OrgRow, bool)>, sqlx::Error> {
    let row = tx
        .query("SELECT org_id, hold FROM org_domains WHERE tenant_id = $1 AND domain = $2")
        .bind(domain.to_owned())
        .fetch_optional(tx.conn())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let org_id: String = row.try_get("org_id")?;
    let hold = row.try_get::<i64, _>("hold")? != 0;
    Ok(crate::directory::orgs::find(tx, &org_id).await?.map(|o| (o, hold)))
}

/// An e-mail domain claimed by an organization, as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, FromRow)]
pub struct DomainOut {
    domain: String,
    org_id: String,
    org_name: String,
    /// Sign-ups from this domain wait for approval.
    #[sqlx(try_from = "Flag")]
    hold: bool,
    created_at: Timestamp,
}

const SELECT: &str = "SELECT d.domain, d.org_id, o.name AS org_name, d.hold, d.created_at FROM org_domains d \
     JOIN orgs o ON o.id = d.org_id AND o.tenant_id = $1 WHERE d.tenant_id = $1";

/// The domains an organization within `reach` claims.
pub async fn of_org(tx: &mut TenantTx, reach: &Reach, org_id: &str) -> Result<Vec<DomainOut>> {
    let org = orgs::find_in_reach(tx, reach, org_id).await?;
    let rows = tx
        .query(&format!("{SELECT} AND d.org_id = $2 ORDER BY d.domain"))
        .bind(org.id)
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.iter().map(DomainOut::from_row).collect::<Result<_, _>>()?)
}

/// Every claimed domain of the academy.
pub async fn all(tx: &mut TenantTx) -> Result<Vec<DomainOut>> {
    let rows = tx
        .query(&format!("{SELECT} ORDER BY d.domain"))
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.iter().map(DomainOut::from_row).collect::<Result<_, _>>()?)
}

async fn one(tx: &mut TenantTx, domain: &str) -> Result<Option<DomainOut>, sqlx::Error> {
    tx.query(&format!("{SELECT} AND d.domain = $2"))
        .bind(domain.to_owned())
        .fetch_optional(tx.conn())
        .await?
        .as_ref()
        .map(DomainOut::from_row)
        .transpose()
}

/// A claim to make or change.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainClaim {
    /// Sign-ups from this domain wait for approval. Default `false` for a new claim; a claim changed without
    /// it keeps its setting.
    hold: Option<bool>,
}

/// What claiming did.
pub enum Claimed {
    /// A new claim.
    New(DomainOut),
    /// An existing claim of the same organization, changed (before, after).
    Changed(DomainOut, DomainOut),
}

const CONSTRAINTS: Constraints<Error> = &[("", || {
    Error::Directory(crate::directory::Error::Duplicate {
        field: "domain",
        message: "this domain has been claimed meanwhile".into(),
    })
})];

/// Claim `domain` (already checked with [`claimable`]) for an organization within `reach`, or change the
/// organization's claim.
pub async fn claim(tx: &mut TenantTx, reach: &Reach, org_id: &str, domain: &str, req: &DomainClaim) -> Result<Claimed> {
    let org = orgs::find_in_reach(tx, reach, org_id).await?;
    match one(tx, domain).await? {
        Some(claim) if claim.org_id != org.id => Err(Error::Directory(crate::directory::Error::Duplicate {
            field: "domain",
            message: "another organization of this academy has claimed this domain; release it there first".into(),
        })),
        Some(claim) => {
            let hold = req.hold.unwrap_or(claim.hold);
            tx.query("UPDATE org_domains SET hold = $3 WHERE tenant_id = $1 AND domain = $2")
                .bind(domain.to_owned())
                .bind(i64::from(hold))
                .execute(tx.conn())
                .await?;
            let after = DomainOut { hold, ..claim.clone() };
            Ok(Claimed::Changed(claim, after))
        }
        None => {
            tx.query(
                "INSERT INTO org_domains (tenant_id, domain, org_id, hold, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(domain.to_owned())
            .bind(org.id.clone())
            .bind(i64::from(req.hold.unwrap_or(false)))
            .bind(now_ms())
            .execute(tx.conn())
            .await
            .on_constraint(CONSTRAINTS)?;
            let out = one(tx, domain)
                .await?
                .ok_or(crate::directory::Error::NotFound("domain claim"))?;
            Ok(Claimed::New(out))
        }
    }
}

/// Release an organization's claim on a domain. Returns the organization.
pub async fn release(tx: &mut TenantTx, reach: &Reach, org_id: &str, domain: &str) -> Result<OrgRow> {
    let org = orgs::find_in_reach(tx, reach, org_id).await?;
    let n = tx
        .query("DELETE FROM org_domains WHERE tenant_id = $1 AND domain = $2 AND org_id = $3")
        .bind(domain.to_owned())
        .bind(org.id.clone())
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(crate::directory::Error::NotFound("domain claim").into());
    }
    Ok(org)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_and_public_ones_refused() {
        assert_eq!(
            claimable("domain", " @Acme-Corp.COM ").ok().as_deref(),
            Some("acme-corp.com")
        );
        assert!(claimable("domain", "gmail.com").is_err());
        assert!(claimable("domain", "localhost").is_err());
        assert!(claimable("domain", "a b.com").is_err());
        assert!(PUBLIC_DOMAINS.len() >= 40);
        assert_eq!(email_domain("ann@sub.acme.test"), "sub.acme.test");
    }
}
