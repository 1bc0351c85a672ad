//! The isolation matrix. It walks the host's own OpenAPI document, so an endpoint is covered the day it is
//! added: every operation is called with ids the caller must not reach, in the path, in the query and in
//! every body field that names an id, and the answer must refuse and must not show the data.
//!
//! - another tenant's admin, on their own academy, aiming at acme's ids;
//! - another tenant's credentials presented on acme's academy, and tenant credentials on operator endpoints;
//! - an acme org manager aiming outside their subtree, and a segment manager outside their segment;
//! - an acme segment reporter trying to change anything;
//! - an acme learner aiming at everyone else's data;
//! - an acme instructor, and a holder of a custom role, trying everything their permissions do not cover.

mod common;

use common::openapi::{Document, Kind, Operation, Security};
use common::resources::Resources;
use common::{Client, Directory, Needles, Reply, TestApp, scenarios};
use reqwest::StatusCode;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeSet;

scenarios!(
    another_tenants_admin_cannot_reach_acme_data,
    foreign_credentials_are_refused_on_acme_host,
    operator_endpoints_refuse_tenant_credentials,
    org_manager_stays_inside_their_subtree,
    segment_reporter_changes_nothing,
    learner_reaches_only_her_own,
    segment_manager_stays_inside_the_segment,
    instructor_changes_only_courses,
    custom_role_reaches_only_its_permissions,
);

/// Whether a user (listed with `expand=tags`) carries the tag with this id.
fn carries_tag(user: &Value, tag: &str) -> bool {
    user["tags"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["id"] == tag))
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

/// One id of each kind from a tenant's data, for a caller who must not reach it.
/// Acme's resources the matrix aims at: from the demo, and arranged about Pia (Engineering, outside Sales
/// EMEA and the UK segment).
async fn arrange_acme(app: &TestApp, admin: &Client) -> Resources {
    Resources::arrange(app, admin, "pia.platform@acme.test", "Engineering").await
}

/// Every arranged id is a needle too: no answer to another academy may show one.
fn with_arranged(mut needles: Needles, arranged: &Resources) -> Needles {
    for (kind, id) in &arranged.0 {
        needles.add(id, &format!("arranged {kind:?} id"));
    }
    needles
}

fn acme_targets<'a>(acme: &'a Directory, arranged: &'a Resources) -> impl Fn(Kind) -> String + 'a {
    move |kind| match kind {
        Kind::User => acme.user("nora.north@acme.test"),
        Kind::Org => acme.org("Sales EMEA"),
        Kind::Tag => acme.tag("REGION_UK"),
        Kind::Segment => acme.segment("UK staff"),
        Kind::Role => acme.role("org_manager"),
        Kind::Grant => acme.grant_of("emea.manager@acme.test"),
        Kind::Token => id_of(&acme.tokens[0]),
        Kind::ProfileField => acme.field("employee_id"),
        Kind::AuditEntry => id_of(&acme.audit[0]),
        Kind::Tenant => "acme".to_owned(),
        Kind::Domain => "learn.acme.test".to_owned(),
        Kind::Email => "nora.north@acme.test".to_owned(),
        other => arranged
            .get(other)
            .unwrap_or_else(|| panic!("nothing arranged of {other:?}")),
    }
}

/// One id of each kind from globex's own data.
fn globex_targets<'a>(globex: &'a Directory, arranged: &'a Resources) -> impl Fn(Kind) -> String + 'a {
    move |kind| match kind {
        Kind::User => globex.user("ines@initech.test"),
        Kind::Org => globex.org("Initech"),
        Kind::Tag => globex.tag("TIER_GOLD"),
        Kind::Segment => globex.segment("Gold tier"),
        Kind::Role => globex.role("org_manager"),
        Kind::Grant => globex.grant_of("manager@initech.test"),
        Kind::Token => id_of(&globex.tokens[0]),
        Kind::ProfileField => globex.field("country"),
        Kind::AuditEntry => id_of(&globex.audit[0]),
        Kind::Tenant => "globex".to_owned(),
        Kind::Domain => "learn.globex.test".to_owned(),
        Kind::Email => "probe@globex.test".to_owned(),
        other => arranged
            .get(other)
            .unwrap_or_else(|| panic!("nothing arranged of {other:?}")),
    }
}

fn body_text(op: &Operation, api: &Document, ids: &dyn Fn(Kind) -> String) -> String {
    match op.body(&api.doc, ids) {
        common::Body::Json(v) => v.to_string(),
        _ => String::new(),
    }
}

fn is_refusal(status: StatusCode) -> bool {
    matches!(status.as_u16(), 403 | 404)
}

/// Refused, or refused by a body check (400/422) — the caller learns nothing either way, which the
/// needle check on every answer proves.
fn is_refusal_or_invalid(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 403 | 404 | 422)
}

/// The query variants of a read: each id-taking parameter set to a target id.
async fn query_variants(client: &Client, op: &Operation, ids: &dyn Fn(Kind) -> String) -> Vec<(String, Reply)> {
    let mut out = Vec::new();
    if !op.is_read() {
        return out;
    }
    for (param, kind) in op.id_queries() {
        let path = format!("{}?{param}={}", op.fill(ids), ids(kind));
        let reply = client.send("GET", &path, common::Body::None).await;
        out.push((path, reply));
    }
    out
}

/// (a) globex's academy admin, signed in on globex (by session and by token), names acme's ids everywhere.
async fn another_tenants_admin_cannot_reach_acme_data(app: &TestApp) {
    // Arrange: acme's data, as acme's admin sees it, and everything that identifies it.
    let acme_admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&acme_admin).await;
    let acme_arranged = arrange_acme(app, &acme_admin).await;
    let secrets = with_arranged(acme.needles(), &acme_arranged);
    let targets = acme_targets(&acme, &acme_arranged);
    let globex_session = app.login("globex", "admin@globex.test").await;
    let (_, token) = globex_session.create_token("matrix").await;
    let globex_token = globex_session.with_token(&token);
    let globex = Directory::load(&globex_session).await;
    let globex_arranged = Resources::arrange(app, &globex_session, "ines@initech.test", "Initech").await;
    let api = Document::fetch(&globex_session).await;
    let before = app.snapshot().await;

    // Act and assert, operation by operation (sign-out comes last: it ends the session).
    let mut calls = 0;
    for client in [&globex_token, &globex_session] {
        for op in api.operations.iter().filter(|o| o.security != Security::Operator) {
            let body = body_text(op, &api, &targets);
            let aims_at_acme = !op.path_params().is_empty() || secrets.found_in(&body).is_some();
            let (path, reply) = op.send(client, &api.doc, &targets).await;
            calls += 1;
            let context = format!(
                "{} as globex admin with {} (sent {path} {body})",
                op.label(),
                client.describe()
            );
            secrets.assert_absent(&context, &reply.text);
            if aims_at_acme {
                // A public request may also be accepted without telling anything (asking for a password reset
                // link answers 202 whether or not the address has an account here); the needle check above
                // holds for its answer too.
                let refused = is_refusal_or_invalid(reply.status)
                    || (op.security == Security::Public && matches!(reply.status.as_u16(), 401 | 202));
                assert!(
                    refused,
                    "{context}: expected a refusal, got {} {}",
                    reply.status, reply.text
                );
            } else {
                assert!(
                    reply.status.as_u16() < 500 && reply.status != 401,
                    "{context}: got {} {}",
                    reply.status,
                    reply.text
                );
            }
            for (path, reply) in query_variants(client, op, &targets).await {
                calls += 1;
                let context = format!("GET {path} as globex admin with {}", client.describe());
                secrets.assert_absent(&context, &reply.text);
                assert!(
                    matches!(reply.status.as_u16(), 200 | 400 | 404),
                    "{context}: got {} {}",
                    reply.status,
                    reply.text
                );
            }
        }
    }

    // One foreign id at a time: the path and every other field name globex's own data, so only the one
    // acme id can be the reason for the refusal (a handler that forgot the tenant on that field fails here).
    let own = globex_targets(&globex, &globex_arranged);
    for op in api.operations.iter().filter(|o| o.security == Security::Tenant) {
        let used = RefCell::new(BTreeSet::new());
        let recording = |k: Kind| {
            used.borrow_mut().insert(k);
            own(k)
        };
        let _ = op.body(&api.doc, &recording);
        // An e-mail address is no reference to acme's data: globex may have its own nora.north@acme.test.
        for foreign in used.into_inner().into_iter().filter(|k| *k != Kind::Email) {
            let mixed = |k: Kind| if k == foreign { targets(k) } else { own(k) };
            let path = op.fill(&own);
            let body = op.body(&api.doc, &mixed);
            let sent = match &body {
                common::Body::Json(v) => v.to_string(),
                _ => String::new(),
            };
            let reply = globex_token.send(&op.method, &path, body).await;
            calls += 1;
            let context = format!(
                "{} as globex admin with only {foreign:?} from acme (sent {path} {sent})",
                op.label()
            );
            secrets.assert_absent(&context, &reply.text);
            assert!(
                is_refusal_or_invalid(reply.status),
                "{context}: expected a refusal, got {} {}",
                reply.status,
                reply.text
            );
        }
    }
    eprintln!("isolation (a): {calls} calls, {} acme needles", secrets.len());

    // Nothing of acme changed, whatever globex's admin did in their own academy.
    let after = app.snapshot().await;
    let acme_ids = acme.all_ids();
    let touched: Vec<String> = before
        .changes(&after)
        .into_iter()
        .filter(|row| {
            acme_ids.keys().any(|id| row.contains(id.as_str()))
                || acme_arranged.0.values().any(|id| row.contains(id.as_str()))
        })
        .collect();
    assert!(
        touched.is_empty(),
        "acme's stored data changed:\n{}",
        touched.join("\n")
    );
}

/// (b) Credentials of one academy presented on another academy's address are refused for every tenant
/// endpoint, and change nothing.
async fn foreign_credentials_are_refused_on_acme_host(app: &TestApp) {
    let acme_admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&acme_admin).await;
    let acme_arranged = arrange_acme(app, &acme_admin).await;
    let globex_admin = app.login("globex", "admin@globex.test").await;
    let globex = Directory::load(&globex_admin).await;
    let targets = acme_targets(&acme, &acme_arranged);
    let (_, globex_secret) = globex_admin.create_token("wrong-door").await;
    let (_, acme_secret) = acme_admin.create_token("wrong-door").await;
    let api = Document::fetch(&acme_admin).await;
    let acme_host = app.tenant_host("acme");
    let globex_host = app.tenant_host("globex");

    // Each wrong door, with the data that must not show through it.
    let (acme_secrets, globex_secrets) = (with_arranged(acme.needles(), &acme_arranged), globex.needles());
    let wrong_doors: [(Client, &Needles, &str); 5] = [
        (
            globex_admin.with_token(&globex_secret).on_host(&acme_host),
            &acme_secrets,
            "globex token on acme",
        ),
        (
            globex_admin.on_host(&acme_host),
            &acme_secrets,
            "globex session on acme",
        ),
        (
            acme_admin.with_token(&acme_secret).on_host(&globex_host),
            &globex_secrets,
            "acme token on globex",
        ),
        (
            acme_admin.with_token(&acme_secret).on_host("learn.globex.test"),
            &globex_secrets,
            "acme token on globex's domain",
        ),
        (
            acme_admin.on_host(&globex_host),
            &globex_secrets,
            "acme session on globex",
        ),
    ];

    let before = app.snapshot().await;
    for (client, secrets, what) in &wrong_doors {
        for op in api.for_security(Security::Tenant) {
            let (path, reply) = op.send(client, &api.doc, &targets).await;
            let context = format!("{} with {what} (sent {path})", op.label());
            assert!(
                matches!(reply.status.as_u16(), 401 | 403 | 404),
                "{context}: expected a refusal, got {} {}",
                reply.status,
                reply.text
            );
            secrets.assert_absent(&context, &reply.text);
        }
    }
    before.assert_unchanged(&app.snapshot().await, "requests with another academy's credentials");

    // On the platform's own address a token names its tenant: it acts in its own academy, never another.
    let platform = app.client_on(&app.platform_host());
    let (status, me) = platform.with_token(&globex_secret).get("/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "admin@globex.test");
    assert_eq!(me["tenant"], "globex");
    let (status, users) = platform.with_token(&globex_secret).get("/api/v1/users?limit=500").await;
    assert_eq!(status, 200);
    acme.needles()
        .assert_absent("globex token on the platform host listing users", &users.to_string());
    // A session cookie names no tenant there.
    let (status, _) = acme_admin.on_host(&app.platform_host()).get("/api/v1/me").await;
    assert_eq!(status, 401);
}

/// Operator endpoints refuse every tenant credential, on every host; operator tokens open no tenant endpoint.
async fn operator_endpoints_refuse_tenant_credentials(app: &TestApp) {
    let acme_admin = app.login("acme", "admin@acme.test").await;
    let (_, acme_secret) = acme_admin.create_token("not-an-operator").await;
    let acme = Directory::load(&acme_admin).await;
    let acme_arranged = arrange_acme(app, &acme_admin).await;
    let targets = acme_targets(&acme, &acme_arranged);
    let api = Document::fetch(&acme_admin).await;
    let operator_ops: Vec<&Operation> = api.for_security(Security::Operator).collect();
    assert!(!operator_ops.is_empty(), "the document lists no operator endpoints");

    let platform = app.client_on(&app.platform_host());
    let callers = [
        (acme_admin.clone(), "acme admin session on acme"),
        (acme_admin.with_token(&acme_secret), "acme admin token on acme"),
        (
            platform.with_token(&acme_secret),
            "acme admin token on the platform host",
        ),
        (
            platform.with_session("not-a-session"),
            "a made-up session on the platform host",
        ),
        (platform.with_token("aulaop_made-up"), "a made-up operator token"),
        (platform.clone(), "no credential"),
    ];
    let before = app.snapshot().await;
    for op in &operator_ops {
        for (client, what) in &callers {
            let (path, reply) = op.send(client, &api.doc, &targets).await;
            assert!(
                matches!(reply.status.as_u16(), 401 | 403),
                "{} with {what} (sent {path}): expected 401/403, got {} {}",
                op.label(),
                reply.status,
                reply.text
            );
        }
    }
    before.assert_unchanged(
        &app.snapshot().await,
        "operator endpoints called with tenant credentials",
    );

    // The other way round: an operator token is no tenant credential.
    let reply = platform.sign_in_operator().await;
    assert_eq!(reply.status, 200, "operator sign-in: {}", reply.text);
    let operator_token = reply.body["token"].as_str().expect("operator token").to_owned();
    let (status, _) = platform
        .with_token(&operator_token)
        .get("/api/v1/platform/tenants")
        .await;
    assert_eq!(status, 200, "the operator token works where it belongs");
    for op in api.for_security(Security::Tenant).filter(|o| o.is_read()) {
        let client = app.with_token("acme", &operator_token);
        let (path, reply) = op.send(&client, &api.doc, &targets).await;
        assert_eq!(reply.status, 401, "{path} with an operator token: {}", reply.text);
    }
}

/// (c) Elena manages Sales EMEA. Every id outside that subtree looks like an id that does not exist, and no
/// answer shows a user or organization outside it.
async fn org_manager_stays_inside_their_subtree(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let arranged = arrange_acme(app, &admin).await;
    let manager = app.login("acme", "emea.manager@acme.test").await;

    let inside_orgs = acme.org_ids_below(&acme.org("Sales EMEA"));
    let inside_users: Vec<String> = acme.users_below("Sales EMEA").iter().map(|u| id_of(u)).collect();
    assert_eq!(inside_users.len(), 7, "Sales EMEA has 7 people in the demo");
    let mut outside = Needles::default();
    for u in acme.users.iter().filter(|u| !inside_users.contains(&id_of(u))) {
        outside.add(&id_of(u), "outside user id");
        outside.add(u["email"].as_str().unwrap_or_default(), "outside user e-mail");
        outside.add(u["name"].as_str().unwrap_or_default(), "outside user name");
    }
    // Sales EMEA's own parent_id (Sales) is shown to its manager: it says where the subtree hangs and
    // nothing about Sales itself. Every other organization outside is a needle.
    let parent_of_subtree = acme.org("Sales");
    for o in acme
        .orgs
        .iter()
        .filter(|o| !inside_orgs.contains(&id_of(o)) && id_of(o) != parent_of_subtree)
    {
        outside.add(&id_of(o), "outside org id");
    }
    let outside_ids: Vec<String> = acme
        .users
        .iter()
        .chain(&acme.orgs)
        .map(id_of)
        .filter(|id| !inside_users.contains(id) && !inside_orgs.contains(id))
        .collect();

    // Ids outside the subtree, or not visible to an org manager at all.
    let outside_target = |kind: Kind| match kind {
        Kind::User => acme.user("pia.platform@acme.test"),
        Kind::Org => acme.org("Engineering"),
        Kind::Segment => acme.segment("UK staff"),
        Kind::Grant => acme.grant_of("eng.manager@acme.test"),
        Kind::Token => id_of(&acme.tokens[0]),
        Kind::Email => "new.starter@acme.test".to_owned(),
        other => acme_targets(&acme, &arranged)(other),
    };
    // Ids inside the subtree, for requests that aim outside only through their body.
    let inside_target = |kind: Kind| match kind {
        Kind::User => acme.user("nora.north@acme.test"),
        Kind::Org => acme.org("Sales EMEA"),
        other => outside_target(other),
    };
    // Kinds that belong to someone outside the subtree (Pia's enrollment, request, certificate, message and
    // sign-up; an invitation to Engineering; the admin's job, report preset and schedule).
    let scoped = [
        Kind::User,
        Kind::Org,
        Kind::Segment,
        Kind::Grant,
        Kind::Token,
        Kind::AuditEntry,
        Kind::Enrollment,
        Kind::EnrollmentRequest,
        Kind::Certificate,
        Kind::Message,
        Kind::Signup,
        Kind::Invitation,
        Kind::Job,
        Kind::ReportPreset,
        Kind::ReportSchedule,
    ];
    walk_outside_a_managers_reach(
        app,
        &manager,
        "the Sales EMEA manager",
        &outside,
        &outside_ids,
        &scoped,
        &outside_target,
        &inside_target,
    )
    .await;
}

/// Walk every academy operation as a manager, aimed outside their reach (`outside_target`), and again at a
/// target inside it that the body points outside (`inside_target`): what aims outside (`scoped` kinds in the
/// path, or an `outside` needle in the body) is refused, no answer shows an `outside` needle, and no stored
/// row holding one of `outside_ids` changes.
#[allow(clippy::too_many_arguments)]
async fn walk_outside_a_managers_reach(
    app: &TestApp,
    manager: &Client,
    who: &str,
    outside: &Needles,
    outside_ids: &[String],
    scoped: &[Kind],
    outside_target: &dyn Fn(Kind) -> String,
    inside_target: &dyn Fn(Kind) -> String,
) {
    let api = Document::fetch(manager).await;
    let before = app.snapshot().await;

    for op in api.operations.iter().filter(|o| o.security == Security::Tenant) {
        // Everything aimed outside.
        let body = body_text(op, &api, outside_target);
        let aims_outside = op.path_kinds().iter().any(|k| scoped.contains(k)) || outside.found_in(&body).is_some();
        let (path, reply) = op.send(manager, &api.doc, outside_target).await;
        let context = format!("{} as {who} (sent {path} {body})", op.label());
        outside.assert_absent(&context, &reply.text);
        if aims_outside {
            assert!(
                is_refusal_or_invalid(reply.status),
                "{context}: expected a refusal, got {} {}",
                reply.status,
                reply.text
            );
        } else {
            assert!(
                reply.status.as_u16() < 500 && reply.status != 401,
                "{context}: got {} {}",
                reply.status,
                reply.text
            );
        }
        for (path, reply) in query_variants(manager, op, outside_target).await {
            let context = format!("GET {path} as {who}");
            outside.assert_absent(&context, &reply.text);
            assert!(
                matches!(reply.status.as_u16(), 200 | 400 | 403 | 404),
                "{context}: got {} {}",
                reply.status,
                reply.text
            );
        }

        // A target inside the subtree, pointed outside by the body (move under Engineering, add Pia, …).
        if op.is_read() || outside.found_in(&body).is_none() {
            continue;
        }
        let path = op.fill(inside_target);
        let reply = manager.send(&op.method, &path, op.body(&api.doc, outside_target)).await;
        let context = format!("{} as {who} (sent {path} {body})", op.label());
        outside.assert_absent(&context, &reply.text);
        assert!(
            is_refusal_or_invalid(reply.status),
            "{context}: expected a refusal, got {} {}",
            reply.status,
            reply.text
        );
    }

    // Nothing outside the subtree changed.
    let changed: Vec<String> = before
        .changes(&app.snapshot().await)
        .into_iter()
        .filter(|row| outside_ids.iter().any(|id| row.contains(id.as_str())))
        .collect();
    assert!(
        changed.is_empty(),
        "{who} changed data outside their reach:\n{}",
        changed.join("\n")
    );
}

/// Operations a read-only user may still call: their own sign-in, session, password and API tokens, their own
/// learning (enrolling themselves from the catalog), and their own report presets and schedules (which run
/// with the reporter's own scope). Everything else that is not a GET must be refused for a segment reporter.
const OWN_ACCOUNT_PREFIXES: &[&str] = &[
    "/api/v1/auth/",
    "/api/v1/me",
    "/api/v1/catalog/",
    "/api/v1/tokens",
    "/api/v1/report-presets",
    "/api/v1/report-schedules",
];

/// Walk every operation but the public ones and the caller's own account (`OWN_ACCOUNT_PREFIXES`) as someone
/// who may change nothing: every change is refused (403/404), reads answer without a 5xx, no answer (nor a
/// read's id-query variants) shows a needle of `hidden`, the audit log does not grow and nothing stored
/// changes.
async fn walk_as_someone_who_changes_nothing(
    app: &TestApp,
    client: &Client,
    who: &str,
    hidden: &Needles,
    targets: &dyn Fn(Kind) -> String,
) {
    walk_beyond_what_they_hold(app, client, who, &[], hidden, targets).await;
}

/// As [`walk_as_someone_who_changes_nothing`], for someone who holds the permissions `holds` tenant-wide: the
/// operations that need one of them are theirs to use (their own tests cover them) and are left out; every
/// other change is refused and changes nothing.
async fn walk_beyond_what_they_hold(
    app: &TestApp,
    client: &Client,
    who: &str,
    holds: &[&str],
    hidden: &Needles,
    targets: &dyn Fn(Kind) -> String,
) {
    let api = Document::fetch(client).await;
    let audit_before = app.audit_count().await;
    let before = app.snapshot().await;
    let mut refused = 0;
    for op in &api.operations {
        let own_account = OWN_ACCOUNT_PREFIXES.iter().any(|p| op.path.starts_with(p));
        let held = op.permission.as_deref().is_some_and(|p| holds.contains(&p));
        if op.security == Security::Public || own_account || held {
            continue;
        }
        let (path, reply) = op.send(client, &api.doc, targets).await;
        let context = format!("{} as {who} (sent {path})", op.label());
        hidden.assert_absent(&context, &reply.text);
        if op.is_read() {
            assert!(
                reply.status.as_u16() < 500,
                "{context}: {} {}",
                reply.status,
                reply.text
            );
            for (path, reply) in query_variants(client, op, targets).await {
                hidden.assert_absent(&format!("GET {path} as {who}"), &reply.text);
            }
            continue;
        }
        let expected = match op.security {
            Security::Operator => matches!(reply.status.as_u16(), 401 | 403),
            _ => is_refusal(reply.status),
        };
        assert!(
            expected,
            "{context}: expected a refusal, got {} {}",
            reply.status, reply.text
        );
        refused += 1;
    }
    assert!(refused >= 20, "only {refused} changing operations were tried");
    assert_eq!(app.audit_count().await, audit_before, "the audit log grew");
    before.assert_unchanged(&app.snapshot().await, &format!("{who}'s attempts"));
}

/// (d) Ravi reports on the 'UK staff' segment. Every operation that changes something is refused and
/// nothing changes; what he reads holds only the segment's people (and himself).
async fn segment_reporter_changes_nothing(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let arranged = arrange_acme(app, &admin).await;
    let reporter = app.login("acme", "uk.reporter@acme.test").await;
    let reporter_id = acme.user("uk.reporter@acme.test");

    let uk_tag = acme.tag("REGION_UK");
    let in_segment = |u: &Value| carries_tag(u, &uk_tag);
    let mut outside = Needles::default();
    for u in acme.users.iter().filter(|u| !in_segment(u) && id_of(u) != reporter_id) {
        outside.add(&id_of(u), "user id outside the segment");
        outside.add(u["email"].as_str().unwrap_or_default(), "e-mail outside the segment");
    }
    // Targets the reporter can see, so only the missing permission can be the reason for a refusal.
    let targets = |kind: Kind| match kind {
        Kind::Org => acme.org("Team North"),
        Kind::Grant => acme.grant_of("uk.reporter@acme.test"),
        Kind::Email => "new.starter@acme.test".to_owned(),
        other => acme_targets(&acme, &arranged)(other),
    };

    walk_as_someone_who_changes_nothing(app, &reporter, "the UK staff reporter", &outside, &targets).await;

    // What he does see: exactly the segment's people.
    let (status, page) = reporter.get("/api/v1/users?limit=500").await;
    assert_eq!(status, 200);
    let mut seen: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    seen.sort_unstable();
    let mut expected: Vec<&str> = acme
        .users
        .iter()
        .filter(|u| in_segment(u))
        .filter_map(|u| u["email"].as_str())
        .collect();
    expected.sort_unstable();
    assert_eq!(seen, expected);
    assert_eq!(expected.len(), 7, "seven demo users carry REGION_UK");
}

/// (e) Nora is a learner in Team North. Aimed at everyone else's data (Pia's enrollment, request, certificate,
/// message and sign-up, the admin's job and reports, other people and organizations), every operation that is
/// not her own account or learning is refused, nothing changes, and what she reads names nobody else.
async fn learner_reaches_only_her_own(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let arranged = arrange_acme(app, &admin).await;
    let learner = app.login("acme", "nora.north@acme.test").await;
    let nora = acme.user("nora.north@acme.test");

    let mut others = Needles::default();
    for u in acme.users.iter().filter(|u| id_of(u) != nora) {
        others.add(&id_of(u), "another person's id");
        others.add(u["email"].as_str().unwrap_or_default(), "another person's e-mail");
    }
    for kind in [
        Kind::Enrollment,
        Kind::EnrollmentRequest,
        Kind::Certificate,
        Kind::Message,
        Kind::Signup,
        Kind::Invitation,
        Kind::Job,
        Kind::ReportPreset,
        Kind::ReportSchedule,
    ] {
        others.add(
            &arranged.get(kind).unwrap_or_default(),
            &format!("someone else's {kind:?}"),
        );
    }
    let targets = |kind: Kind| match kind {
        Kind::User => acme.user("pia.platform@acme.test"),
        Kind::Org => acme.org("Engineering"),
        Kind::Grant => acme.grant_of("emea.manager@acme.test"),
        Kind::Email => "new.starter@acme.test".to_owned(),
        other => acme_targets(&acme, &arranged)(other),
    };

    walk_as_someone_who_changes_nothing(app, &learner, "the learner Nora", &others, &targets).await;
}

/// (f) Uma leads the 'UK staff' segment (people tagged REGION_UK). Every person outside it, and what belongs to
/// them (Pia's enrollment, request, certificate, message and sign-up) or to the admin (a job, report preset
/// and schedule), looks like an id that does not exist, and no answer shows a person outside the segment.
async fn segment_manager_stays_inside_the_segment(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let arranged = arrange_acme(app, &admin).await;
    let lead = app.login("acme", "uk.lead@acme.test").await;

    let uk_tag = acme.tag("REGION_UK");
    let in_segment = |u: &Value| carries_tag(u, &uk_tag);
    let mut outside = Needles::default();
    let mut outside_ids = Vec::new();
    for u in acme.users.iter().filter(|u| !in_segment(u)) {
        outside.add(&id_of(u), "user id outside the segment");
        outside.add(u["email"].as_str().unwrap_or_default(), "e-mail outside the segment");
        outside_ids.push(id_of(u));
    }
    assert!(
        !in_segment(
            acme.users
                .iter()
                .find(|u| u["email"] == "pia.platform@acme.test")
                .expect("Pia")
        ),
        "the arranged resources belong to someone outside the segment"
    );
    let outside_target = |kind: Kind| match kind {
        Kind::User => acme.user("pia.platform@acme.test"),
        Kind::Org => acme.org("Engineering"),
        Kind::Segment => acme.segment("UK staff"),
        Kind::Grant => acme.grant_of("eng.manager@acme.test"),
        Kind::Email => "new.starter@acme.test".to_owned(),
        other => acme_targets(&acme, &arranged)(other),
    };
    let inside_target = |kind: Kind| match kind {
        Kind::User => acme.user("nora.north@acme.test"),
        other => outside_target(other),
    };
    let scoped = [
        Kind::User,
        Kind::Grant,
        Kind::Token,
        Kind::AuditEntry,
        Kind::Enrollment,
        Kind::EnrollmentRequest,
        Kind::Certificate,
        Kind::Message,
        Kind::Signup,
        Kind::Job,
        Kind::ReportPreset,
        Kind::ReportSchedule,
    ];
    walk_outside_a_managers_reach(
        app,
        &lead,
        "the UK staff lead",
        &outside,
        &outside_ids,
        &scoped,
        &outside_target,
        &inside_target,
    )
    .await;
}

/// Everything an academy keeps that is not course content: ids of organizations, tags (unless `tags` may be
/// seen), segments, grants, tokens, audit entries, and of the arranged invitation, job, report preset,
/// schedule, sign-up and message.
fn everything_but_courses(acme: &Directory, arranged: &Resources, tags: bool) -> Needles {
    let mut hidden = Needles::default();
    let no_tags = Vec::new();
    for (list, what) in [
        (&acme.orgs, "an organization id"),
        (if tags { &no_tags } else { &acme.tags }, "a tag id"),
        (&acme.segments, "a segment id"),
        (&acme.grants, "a grant id"),
        (&acme.tokens, "a token id"),
        (&acme.audit, "an audit entry id"),
    ] {
        for v in list {
            hidden.add(&id_of(v), what);
        }
    }
    for kind in [
        Kind::Invitation,
        Kind::Job,
        Kind::ReportPreset,
        Kind::ReportSchedule,
        Kind::Signup,
        Kind::Message,
        Kind::IdentityProvider,
        Kind::ScimToken,
    ] {
        hidden.add(
            &arranged.get(kind).unwrap_or_default(),
            &format!("the arranged {kind:?}"),
        );
    }
    hidden
}

/// (g) Ivy is an instructor: she builds courses, reads progress and grades. Every other change (people,
/// organizations, roles, plugins, branding, settings, sign-ups, enrollments) is refused and changes nothing,
/// and nothing she reads shows the academy's organizations, tags, segments, grants or tokens.
async fn instructor_changes_only_courses(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let acme = Directory::load(&admin).await;
    let arranged = arrange_acme(app, &admin).await;
    let instructor = app.login("acme", "instructor@acme.test").await;
    let role = acme
        .roles
        .iter()
        .find(|r| r["key"] == "instructor")
        .expect("the instructor role");
    let holds: Vec<&str> = role["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(holds.contains(&"courses.write"), "{role}");
    let hidden = everything_but_courses(&acme, &arranged, false);
    let targets = |kind: Kind| match kind {
        Kind::Email => "new.starter@acme.test".to_owned(),
        other => acme_targets(&acme, &arranged)(other),
    };
    walk_beyond_what_they_hold(app, &instructor, "the instructor Ivy", &holds, &hidden, &targets).await;
}

/// (h) An admin makes a role of their own (tags only) and gives it to a learner: she may keep the tags and
/// nothing else; every other change is refused, and she sees no person, organization or segment.
async fn custom_role_reaches_only_its_permissions(app: &TestApp) {
    let admin = app.login("acme", "admin@acme.test").await;
    let (status, role) = admin
        .post(
            "/api/v1/roles",
            serde_json::json!({"key": "tag_keeper", "name": "Tag keeper", "permissions": ["tags.read", "tags.write"]}),
        )
        .await;
    assert_eq!(status, 201, "{role}");
    let password = "a tag keeper's password";
    let (status, user) = admin
        .post(
            "/api/v1/users",
            serde_json::json!({"email": "tess.tags@acme.test", "name": "Tess Tags", "password": password}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let keeper = id_of(&user);
    let (status, grant) = admin
        .post(
            "/api/v1/grants",
            serde_json::json!({"user_id": keeper, "role": "tag_keeper", "scope": {"type": "tenant"}}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let acme = Directory::load(&admin).await;
    let arranged = arrange_acme(app, &admin).await;
    let client = app.login_with("acme", "tess.tags@acme.test", password).await;

    // Her role reads tags: their ids are hers to see.
    let mut hidden = everything_but_courses(&acme, &arranged, true);
    for u in acme.users.iter().filter(|u| id_of(u) != keeper) {
        hidden.add(&id_of(u), "another person's id");
        hidden.add(u["email"].as_str().unwrap_or_default(), "another person's e-mail");
    }
    let targets = |kind: Kind| match kind {
        Kind::Email => "new.starter@acme.test".to_owned(),
        other => acme_targets(&acme, &arranged)(other),
    };
    walk_beyond_what_they_hold(
        app,
        &client,
        "the holder of a tags-only role",
        &["tags.read", "tags.write"],
        &hidden,
        &targets,
    )
    .await;
}
