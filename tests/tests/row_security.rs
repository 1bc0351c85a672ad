//! The second wall: on PostgreSQL, row-level security keeps a tenant transaction to its tenant's rows even
//! when a statement forgets the tenant filter; platform transactions see every tenant.

mod common;

use aula::db::Backend;
use common::{Directory, TestApp, scenarios};
use sqlx::Row;

scenarios!(a_tenant_transaction_sees_only_its_tenant_without_any_filter);

async fn a_tenant_transaction_sees_only_its_tenant_without_any_filter(app: &TestApp) {
    let acme = Directory::load(&app.login("acme", "admin@acme.test").await).await;
    let globex = Directory::load(&app.login("globex", "admin@globex.test").await).await;
    let count = |sql: String, tenant: Option<String>| {
        let db = app.db.clone();
        async move {
            match tenant {
                Some(id) => {
                    let mut tx = db.tenant(&id).begin().await.expect("tenant transaction");
                    // Deliberately no tenant filter: only the wall stands between this and every tenant.
                    let n: i64 = sqlx::query(&sql)
                        .fetch_one(tx.conn())
                        .await
                        .expect(&sql)
                        .try_get(0)
                        .expect("count");
                    tx.commit().await.expect("commit");
                    n
                }
                None => {
                    let mut tx = db.platform().begin().await.expect("platform transaction");
                    let n: i64 = sqlx::query(&sql)
                        .fetch_one(tx.conn())
                        .await
                        .expect(&sql)
                        .try_get(0)
                        .expect("count");
                    tx.commit().await.expect("commit");
                    n
                }
            }
        }
    };
    let all = count("SELECT COUNT(*) FROM users".to_owned(), None).await;
    assert_eq!(
        all as usize,
        acme.users.len() + globex.users.len(),
        "platform work sees every tenant"
    );
    let acme_users = count("SELECT COUNT(*) FROM users".to_owned(), Some(acme.tenant_id.clone())).await;
    if app.db.backend() == Backend::Sqlite {
        // SQLite has no row-level security: the tenant-bound handles (every statement bound to its tenant)
        // are the only wall there, and an unfiltered statement does see everything.
        assert_eq!(acme_users, all);
        return;
    }
    assert_eq!(acme_users as usize, acme.users.len());
    let globex_users = count("SELECT COUNT(*) FROM users".to_owned(), Some(globex.tenant_id.clone())).await;
    assert_eq!(globex_users as usize, globex.users.len());
    for table in [
        "users",
        "orgs",
        "memberships",
        "tags",
        "grants",
        "roles",
        "audit_log",
        "sessions",
    ] {
        // Rows the wall should hide.
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant_id <> current_setting('aula.tenant_id')");
        assert_eq!(
            count(sql, Some(acme.tenant_id.clone())).await,
            0,
            "{table}: rows of another tenant are visible"
        );
    }
    // Writing another tenant's row is refused by the policy's check.
    let mut tx = app
        .db
        .tenant(&acme.tenant_id)
        .begin()
        .await
        .expect("tenant transaction");
    let refused = sqlx::query("UPDATE users SET name = 'taken over' WHERE tenant_id = $1")
        .bind(globex.tenant_id.clone())
        .execute(tx.conn())
        .await
        .expect("update runs")
        .rows_affected();
    assert_eq!(refused, 0, "a tenant transaction changed another tenant's users");
    let inserted = sqlx::query(
        "INSERT INTO tags (id, tenant_id, name, created_at) VALUES ('00000000-0000-0000-0000-000000000001', $1, 'X', 0)",
    )
    .bind(globex.tenant_id.clone())
    .execute(tx.conn())
    .await;
    assert!(
        inserted.is_err(),
        "a tenant transaction inserted a row for another tenant"
    );
}
