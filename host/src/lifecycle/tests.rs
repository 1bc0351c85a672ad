//! Lifecycle tests, each on a fresh database of every backend available.

use super::*;
use crate::db::Db;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

/// A fresh database: a SQLite file always, and a PostgreSQL database too when `AULA_TEST_POSTGRES_URL`
/// names a server (PostgreSQL is where row-level security checks the tenant-bound transactions).
struct TempDb {
    db: Db,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TempDb {
    /// Close and remove the database (a failed test leaves it behind for inspection).
    async fn finish(self) {
        self.db.close().await;
        match self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                use sqlx::{Connection, Executor};
                if let Ok(mut admin) = sqlx::postgres::PgConnection::connect(&admin_url).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    let _ = admin.close().await;
                }
            }
        }
    }
}

async fn temp_dbs() -> Vec<TempDb> {
    let dir = std::env::temp_dir().join(format!("aula-lifecycle-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = Db::connect(&format!("sqlite:{}/t.db", dir.display()), 4)
        .await
        .expect("database");
    let mut out = vec![TempDb {
        db,
        cleanup: Cleanup::Dir(dir),
    }];
    let admin_url = std::env::var("AULA_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    assert!(
        admin_url.is_some() || std::env::var("AULA_TEST_SQLITE_ONLY").is_ok_and(|v| v == "1"),
        "AULA_TEST_POSTGRES_URL is not set; set it, or AULA_TEST_SQLITE_ONLY=1 to run on SQLite alone"
    );
    if let Some(admin_url) = admin_url {
        use sqlx::{Connection, Executor};
        let name = format!("aula_lifecycle_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::postgres::PgConnection::connect(&admin_url)
            .await
            .expect("AULA_TEST_POSTGRES_URL");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        let _ = admin.close().await;
        let db = Db::connect(&with_database(&admin_url, &name), 4)
            .await
            .expect("postgres database");
        out.push(TempDb {
            db,
            cleanup: Cleanup::Postgres { admin_url, name },
        });
    }
    out
}

/// The server URL with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let base = base[host_start..]
        .find('/')
        .map_or(base, |slash| &base[..host_start + slash]);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn system() -> Actor {
    Actor::system("test")
}

/// The ids of a seeded tenant.
struct Seeded {
    tenant: Tenant,
    root: String,
    child: String,
    grandchild: String,
}

/// An academy with a bit of everything: an org tree, users in it, tags, a profile field, a segment whose
/// definition names an org and a tag, an org-scoped grant, and credentials that must never travel.
async fn seed(db: &Db, slug: &str, domain: &str) -> Seeded {
    let tenant = create_tenant(
        db,
        slug,
        "Source Academy",
        &[domain.to_owned()],
        TenantSettings::default(),
        &system(),
    )
    .await
    .expect("tenant");
    let admin = NewAccount {
        email: format!("admin@{slug}.test"),
        name: "Ada Admin".into(),
        password: Some("a-long-password".into()),
    };
    let admin_id = create_user(db, slug, &admin, Some("tenant_admin"), &system())
        .await
        .expect("admin");
    let learner = NewAccount {
        email: format!("lea@{slug}.test"),
        name: "Lea Learner".into(),
        password: None,
    };
    let learner_id = create_user(db, slug, &learner, None, &system()).await.expect("learner");
    create_api_token(db, slug, &admin.email, "script", 30, &system())
        .await
        .expect("token");

    let (root, child, grandchild) = (new_id(), new_id(), new_id());
    let (tag, field, segment) = (new_id(), new_id(), new_id());
    let now = now_ms();
    let mut tx = db.tenant(&tenant.id).begin().await.expect("tx");
    for (id, parent, name, path, depth) in [
        (&root, None, "Root", format!("/{root}/"), 0),
        (&child, Some(&root), "Child", format!("/{root}/{child}/"), 1),
        (
            &grandchild,
            Some(&child),
            "Grandchild",
            format!("/{root}/{child}/{grandchild}/"),
            2,
        ),
    ] {
        tx.query(
            "INSERT INTO orgs (id, tenant_id, parent_id, name, path, depth, created_at, updated_at) \
             VALUES ($2, $1, $3, $4, $5, $6, $7, $7)",
        )
        .bind(id.clone())
        .bind(parent.cloned())
        .bind(name)
        .bind(path)
        .bind(depth as i64)
        .bind(now)
        .execute(tx.conn())
        .await
        .expect("org");
    }
    for (sql, args) in [
        (
            "INSERT INTO memberships (tenant_id, user_id, org_id, created_at) VALUES ($1, $2, $3, $4)",
            vec![learner_id.clone(), grandchild.clone()],
        ),
        (
            "INSERT INTO tags (id, tenant_id, name, created_at) VALUES ($2, $1, $3, $4)",
            vec![tag.clone(), "vip".into()],
        ),
        (
            "INSERT INTO user_tags (tenant_id, user_id, tag_id, created_at) VALUES ($1, $2, $3, $4)",
            vec![learner_id.clone(), tag.clone()],
        ),
        (
            "INSERT INTO profile_fields (id, tenant_id, key, label, field_type, created_at) VALUES ($2, $1, $3, 'Department', 'text', $4)",
            vec![field.clone(), "department".into()],
        ),
        (
            "INSERT INTO segments (id, tenant_id, name, definition, created_at, updated_at) VALUES ($2, $1, $3, $4, $5, $5)",
            vec![
                segment.clone(),
                "VIPs below root".into(),
                format!("{{\"orgs\":[\"{root}\"],\"tags_any\":[\"{tag}\"]}}"),
            ],
        ),
        (
            "INSERT INTO grants (id, tenant_id, user_id, role_id, scope_type, org_id, created_at) \
             SELECT $2, $1, $3, r.id, 'org', $4, $5 FROM roles r WHERE r.tenant_id = $1 AND r.key = 'org_manager'",
            vec![new_id(), admin_id.clone(), child.clone()],
        ),
        (
            "INSERT INTO sessions (id_hash, tenant_id, user_id, created_at, expires_at, last_seen_at) VALUES ($2, $1, $3, $4, $4, $4)",
            vec![format!("session-{slug}"), admin_id.clone()],
        ),
        (
            "INSERT INTO login_failures (id, tenant_id, email, ip, at) VALUES ($2, $1, $3, '127.0.0.1', $4)",
            vec![new_id(), "nobody@example.com".into()],
        ),
    ] {
        let mut q = tx.query(sql);
        for a in args {
            q = q.bind(a);
        }
        q.bind(now)
            .execute(tx.conn())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    tx.commit().await.expect("commit");
    Seeded {
        tenant,
        root,
        child,
        grandchild,
    }
}

/// Every registered table's rows of a tenant, by table name.
async fn rows_of(db: &Db, tenant_id: &str) -> BTreeMap<&'static str, Vec<Vec<Value>>> {
    let mut tx = db.tenant(tenant_id).begin_read().await.expect("tx");
    let snap = snapshot::read(&mut tx, |_| true).await.expect("snapshot");
    tx.commit().await.expect("commit");
    snap.tables.into_iter().map(|t| (t.table.name, t.rows)).collect()
}

/// Every id the tenant's rows hold in an id column, and the tenant's own id.
fn ids_of(tenant_id: &str, rows: &BTreeMap<&'static str, Vec<Vec<Value>>>) -> HashSet<String> {
    let mut ids = HashSet::from([tenant_id.to_owned()]);
    for (name, rows) in rows {
        let table = tables::find(name).expect("registered");
        for (i, column) in table.columns.iter().enumerate() {
            if matches!(column.kind, tables::Kind::Id | tables::Kind::Ref) {
                ids.extend(
                    rows.iter()
                        .filter_map(|r| r[i].as_str())
                        .filter(|s| snapshot::is_uuid(s))
                        .map(str::to_owned),
                );
            }
        }
    }
    ids
}

fn org_paths(rows: &BTreeMap<&'static str, Vec<Vec<Value>>>) -> BTreeMap<String, (Option<String>, String)> {
    // orgs: id, tenant_id, parent_id, name, path, …
    rows["orgs"]
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_owned(),
                (
                    r[2].as_str().map(str::to_owned),
                    r[4].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

/// Each org's path is its parent's path plus its own id: the tree survived the remap.
fn assert_paths_consistent(rows: &BTreeMap<&'static str, Vec<Vec<Value>>>) {
    let orgs = org_paths(rows);
    assert_eq!(orgs.len(), 3);
    for (id, (parent, path)) in &orgs {
        let expected = match parent {
            Some(p) => format!("{}{id}/", orgs[p].1),
            None => format!("/{id}/"),
        };
        assert_eq!(path, &expected);
    }
}

fn assert_no_old_ids(old: &HashSet<String>, rows: &BTreeMap<&'static str, Vec<Vec<Value>>>) {
    for (table, rows) in rows {
        for row in rows {
            for value in row {
                if let Some(s) = value.as_str() {
                    for id in old {
                        assert!(!s.contains(id.as_str()), "{table} still holds the old id {id} in {s:?}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn registry_matches_catalog() {
    for t in temp_dbs().await {
        let problems = registry_mismatches(&t.db).await.expect("catalog");
        assert!(problems.is_empty(), "{problems:#?}");
        t.finish().await;
    }
}

#[tokio::test]
async fn export_import_round_trip_keeps_counts_and_remaps_ids() {
    for t in temp_dbs().await {
        let src = seed(&t.db, "source", "learn.source.test").await;
        let before = rows_of(&t.db, &src.tenant.id).await;
        let old_ids = ids_of(&src.tenant.id, &before);
        let archive = export_tenant(&t.db, "source", &system()).await.expect("export");

        // While the source holds its domain, an import may not take it.
        let err = import_tenant(&t.db, &archive, "copy", None, &system())
            .await
            .expect_err("domain is taken");
        assert!(
            matches!(&err, ApiError::Conflict { field: Some(f), .. } if f == "domains"),
            "{err:?}"
        );
        assert!(
            get_tenant(&t.db, "copy").await.is_err(),
            "a refused import writes nothing"
        );

        delete_tenant(&t.db, "source").await.expect("delete");
        let copy = import_tenant(&t.db, &archive, "copy", Some("Copied"), &system())
            .await
            .expect("import");
        assert_eq!((copy.slug.as_str(), copy.name.as_str()), ("copy", "Copied"));
        assert_eq!(copy.domains, vec!["learn.source.test".to_owned()]);
        assert_ne!(copy.id, src.tenant.id);

        let after = rows_of(&t.db, &copy.id).await;
        for table in tables::TABLES {
            let (was, is) = (before[table.name].len(), after[table.name].len());
            match table.name {
                // The import is recorded on top of what was there (the export's own entry came after its snapshot).
                "audit_log" => assert_eq!(is, was + 1, "audit_log"),
                _ if table.export => assert_eq!(is, was, "{}", table.name),
                _ => assert_eq!(is, 0, "{} must not travel", table.name),
            }
        }
        assert!(before["sessions"].len() + before["api_tokens"].len() + before["login_failures"].len() >= 3);
        assert_no_old_ids(&old_ids, &after);
        assert_paths_consistent(&after);

        // The segment follows its org and tag; the org-scoped grant follows its org.
        let orgs = org_paths(&after);
        let root = orgs
            .iter()
            .find(|(_, (parent, _))| parent.is_none())
            .map(|(id, _)| id.clone())
            .expect("root");
        let definition = after["segments"][0][4].as_str().expect("definition");
        assert!(definition.contains(&root), "{definition}");
        let tag = after["tags"][0][0].as_str().expect("tag id");
        assert!(definition.contains(tag), "{definition}");
        let grant_org = after["grants"].iter().find_map(|g| g[5].as_str()).expect("org grant");
        assert!(orgs.contains_key(grant_org));
        // The archive's built-in roles, not a second set.
        assert_eq!(after["roles"].len(), crate::scope::BUILTIN_ROLES.len());
        t.finish().await;
    }
}

#[tokio::test]
async fn clone_copies_structure_with_remapped_paths() {
    for t in temp_dbs().await {
        let src = seed(&t.db, "source", "learn.source.test").await;
        let settings = TenantSettings {
            signup: "open".into(),
            ..TenantSettings::default()
        };
        update_tenant(
            &t.db,
            "source",
            TenantChange {
                settings: Some(settings.clone()),
                ..TenantChange::default()
            },
            &system(),
        )
        .await
        .expect("settings");
        let copy = clone_tenant(&t.db, "source", "copy", "Copy", &system())
            .await
            .expect("clone");
        assert_eq!(copy.settings, settings);
        assert!(copy.domains.is_empty(), "a clone takes no domains");
        assert_eq!(copy.status, "active");

        let before = rows_of(&t.db, &src.tenant.id).await;
        let after = rows_of(&t.db, &copy.id).await;
        for table in tables::TABLES {
            let expected = if table.clone { before[table.name].len() } else { 0 };
            let got = after[table.name].len();
            if table.name == "audit_log" {
                assert_eq!(got, 1, "only the clone itself is recorded");
            } else {
                assert_eq!(got, expected, "{}", table.name);
            }
        }
        assert_paths_consistent(&after);
        let old_ids = ids_of(&src.tenant.id, &before);
        assert_no_old_ids(&old_ids, &after);
        for old in [&src.root, &src.child, &src.grandchild] {
            assert!(!org_paths(&after).contains_key(old));
        }
        // The source is untouched.
        assert_eq!(org_paths(&rows_of(&t.db, &src.tenant.id).await).len(), 3);
        t.finish().await;
    }
}

#[tokio::test]
async fn delete_leaves_no_row_of_the_tenant_anywhere() {
    for t in temp_dbs().await {
        let gone = seed(&t.db, "gone", "learn.gone.test").await;
        let kept = seed(&t.db, "kept", "learn.kept.test").await;
        delete_tenant(&t.db, "gone").await.expect("delete");

        let mut tx = t.db.platform().begin().await.expect("tx");
        let catalog: Vec<String> = sqlx::query_scalar(t.db.backend().tenant_tables_sql())
            .fetch_all(tx.conn())
            .await
            .expect("catalog");
        assert!(catalog.len() >= tables::TABLES.len());
        for table in &catalog {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1");
            let left: i64 = sqlx::query_scalar(&sql)
                .bind(gone.tenant.id.clone())
                .fetch_one(tx.conn())
                .await
                .expect("count");
            assert_eq!(left, 0, "{table} still holds rows of the deleted tenant");
        }
        let tenants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE id = $1")
            .bind(gone.tenant.id.clone())
            .fetch_one(tx.conn())
            .await
            .expect("count");
        assert_eq!(tenants, 0);
        tx.commit().await.expect("commit");
        assert_eq!(
            rows_of(&t.db, &kept.tenant.id).await["orgs"].len(),
            3,
            "the other tenant is untouched"
        );
        assert!(matches!(
            delete_tenant(&t.db, "gone").await,
            Err(ApiError::NotFound { .. })
        ));
        t.finish().await;
    }
}

#[tokio::test]
async fn create_names_the_offending_field() {
    for t in temp_dbs().await {
        let actor = system();
        let err = create_tenant(&t.db, "Not A Slug", "X", &[], TenantSettings::default(), &actor)
            .await
            .expect_err("slug");
        assert!(
            matches!(&err, ApiError::BadRequest { field: Some(f), .. } if f == "slug"),
            "{err:?}"
        );
        let err = create_tenant(
            &t.db,
            "acme",
            "X",
            &["nodots".into()],
            TenantSettings::default(),
            &actor,
        )
        .await
        .expect_err("domain");
        assert!(
            matches!(&err, ApiError::BadRequest { field: Some(f), .. } if f == "domains[0]"),
            "{err:?}"
        );
        create_tenant(
            &t.db,
            "acme",
            "Acme",
            &["learn.acme.test".into()],
            TenantSettings::default(),
            &actor,
        )
        .await
        .expect("acme");
        let err = create_tenant(&t.db, "ACME", "X", &[], TenantSettings::default(), &actor)
            .await
            .expect_err("dup slug");
        assert!(
            matches!(&err, ApiError::Conflict { field: Some(f), .. } if f == "slug"),
            "{err:?}"
        );
        let err = create_tenant(
            &t.db,
            "other",
            "X",
            &["learn.acme.test".into()],
            TenantSettings::default(),
            &actor,
        )
        .await
        .expect_err("dup domain");
        assert!(
            matches!(&err, ApiError::Conflict { field: Some(f), .. } if f == "domains"),
            "{err:?}"
        );
        assert!(get_tenant(&t.db, "other").await.is_err(), "nothing half-created");
        let err = add_domain(&t.db, "acme", "learn.acme.test", &actor)
            .await
            .expect_err("already there");
        assert!(matches!(&err, ApiError::Conflict { .. }), "{err:?}");
        t.finish().await;
    }
}

#[tokio::test]
async fn status_and_domain_changes_are_audited() {
    for t in temp_dbs().await {
        let actor = system();
        let acme = create_tenant(&t.db, "acme", "Acme", &[], TenantSettings::default(), &actor)
            .await
            .expect("acme");
        assert_eq!(
            set_status(&t.db, "acme", TenantStatus::Suspended, &actor)
                .await
                .expect("suspend")
                .status,
            "suspended"
        );
        set_status(&t.db, "acme", TenantStatus::Suspended, &actor)
            .await
            .expect("again");
        assert_eq!(
            set_status(&t.db, "acme", TenantStatus::Active, &actor)
                .await
                .expect("resume")
                .status,
            "active"
        );
        let with = add_domain(&t.db, "acme", "Learn.Acme.Test.", &actor)
            .await
            .expect("add");
        assert_eq!(with.domains, vec!["learn.acme.test".to_owned()]);
        let without = remove_domain(&t.db, "acme", "learn.acme.test", &actor)
            .await
            .expect("remove");
        assert!(without.domains.is_empty());
        assert!(matches!(
            remove_domain(&t.db, "acme", "learn.acme.test", &actor).await,
            Err(ApiError::NotFound { .. })
        ));

        let mut tx = t.db.tenant(&acme.id).begin_read().await.expect("tx");
        let actions: Vec<String> = tx
            .query("SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY id")
            .fetch_all(tx.conn())
            .await
            .expect("audit")
            .iter()
            .map(|r| r.try_get::<String, _>(0).expect("action"))
            .collect();
        tx.commit().await.expect("commit");
        assert_eq!(
            actions,
            [
                "tenant.create",
                "tenant.suspend",
                "tenant.resume",
                "tenant.domain_add",
                "tenant.domain_remove"
            ]
        );
        t.finish().await;
    }
}

#[tokio::test]
async fn operators_sign_in_and_users_get_their_roles() {
    for t in temp_dbs().await {
        let dummy = crate::auth::password::hash_blocking("dummy password").expect("hash");
        create_operator(&t.db, "Op@Example.com", "Op", "a-long-password")
            .await
            .expect("operator");
        let err = create_operator(&t.db, "op@example.com", "Op", "a-long-password")
            .await
            .expect_err("duplicate");
        assert!(
            matches!(&err, ApiError::Conflict { field: Some(f), .. } if f == "email"),
            "{err:?}"
        );
        let token = operator_login(&t.db, "op@example.com", "a-long-password", &dummy, LIMITS)
            .await
            .expect("login");
        assert!(token.token.starts_with(crate::auth::OPERATOR_TOKEN_PREFIX));
        for (email, password) in [
            ("op@example.com", "wrong password"),
            ("nobody@example.com", "a-long-password"),
        ] {
            let err = operator_login(&t.db, email, password, &dummy, LIMITS)
                .await
                .expect_err("refused");
            assert!(
                matches!(
                    &err,
                    ApiError::Unauthenticated {
                        code: "invalid_credentials",
                        ..
                    }
                ),
                "{err:?}"
            );
        }

        let acme = create_tenant(&t.db, "acme", "Acme", &[], TenantSettings::default(), &system())
            .await
            .expect("acme");
        let account = NewAccount {
            email: "i@acme.test".into(),
            name: "Ines".into(),
            password: None,
        };
        let err = create_user(&t.db, "acme", &account, Some("wizard"), &system())
            .await
            .expect_err("no such role");
        assert!(
            matches!(&err, ApiError::BadRequest { field: Some(f), .. } if f == "role"),
            "{err:?}"
        );
        let id = create_user(&t.db, "acme", &account, Some("instructor"), &system())
            .await
            .expect("user");
        let mut tx = t.db.tenant(&acme.id).begin_read().await.expect("tx");
        let roles: Vec<String> = tx
        .query("SELECT r.key FROM grants g JOIN roles r ON r.id = g.role_id WHERE g.tenant_id = $1 AND g.user_id = $2 ORDER BY r.key")
        .bind(id)
        .fetch_all(tx.conn())
        .await
        .expect("grants")
        .iter()
        .map(|r| r.try_get::<String, _>(0).expect("key"))
        .collect();
        tx.commit().await.expect("commit");
        assert_eq!(roles, ["instructor", "learner"]);
        let issued = create_api_token(&t.db, "acme", "I@acme.test", "ci", 90, &system())
            .await
            .expect("token");
        assert!(issued.token.starts_with(crate::auth::TOKEN_PREFIX));
        assert!(matches!(
            create_api_token(&t.db, "acme", "x@acme.test", "ci", 90, &system()).await,
            Err(ApiError::NotFound { .. })
        ));
        t.finish().await;
    }
}

#[tokio::test]
async fn tampered_archives_change_nothing() {
    for t in temp_dbs().await {
        seed(&t.db, "source", "learn.source.test").await;
        let archive = export_tenant(&t.db, "source", &system()).await.expect("export");
        let err = import_tenant(&t.db, &archive[..archive.len() / 2], "copy", None, &system())
            .await
            .expect_err("truncated");
        assert!(
            matches!(
                &err,
                ApiError::Unprocessable {
                    code: "invalid_archive",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(get_tenant(&t.db, "copy").await.is_err());
        t.finish().await;
    }
}

const LIMITS: LoginLimits = LoginLimits {
    max_failures: 3,
    window_secs: 900,
};

#[tokio::test]
async fn operator_sign_in_is_throttled_after_repeated_failures() {
    let dummy = crate::auth::password::hash_blocking("dummy").expect("hash");
    for t in temp_dbs().await {
        create_operator(&t.db, "op@example.com", "Op", "a-long-password")
            .await
            .expect("operator");
        for _ in 0..3 {
            let err = operator_login(&t.db, "op@example.com", "wrong password", &dummy, LIMITS)
                .await
                .expect_err("wrong");
            assert!(matches!(err, ApiError::Unauthenticated { .. }), "{err:?}");
        }
        // Even the right password is refused until the window has passed.
        let err = operator_login(&t.db, "op@example.com", "a-long-password", &dummy, LIMITS)
            .await
            .expect_err("throttled");
        assert!(matches!(err, ApiError::TooManyRequests { .. }), "{err:?}");
        t.finish().await;
    }
}
