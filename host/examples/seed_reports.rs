//! Seed a database for the reports benchmark (`benches/reports.sh`): one academy `bench` (reachable as
//! `bench.<base domain>`) with
//! - an organization tree of 1 root > 10 divisions > 10 departments each > 10 teams each (1,111 orgs);
//! - USERS learners (default 100,000), each a member of one team, plus an academy admin and an org manager of
//!   the first division (`admin@bench.test`, `manager@bench.test`, password [`PASSWORD`]);
//! - 50 published courses with three lessons each;
//! - PER_USER enrollments per learner (default 10, so 1,000,000), a mix of enrolled, in progress, completed
//!   and dropped, most with a due date, many of them past.
//!
//! Everything of the academy is written in one transaction with multi-row statements, so the academy is
//! either complete or absent. Running it again on a database that has the academy changes nothing.
//! The data is the same on every run (a fixed pseudo-random sequence), except ids and times.
//!
//! `cargo run --release -p aula --example seed_reports -- sqlite:/tmp/aula-reports.db [USERS] [PER_USER]`

use aula::db::{Db, TenantTx, new_id, now_ms};
use aula::tenancy::TenantSettings;
use sqlx::Row;
use std::fmt::Write as _;
use std::time::Instant;

/// The password of the admin and the manager.
const PASSWORD: &str = "bench-reports-2026";
/// The academy's slug.
const SLUG: &str = "bench";
/// Published courses.
const COURSES: usize = 50;
/// Children per organization at each level below the root (divisions, departments, teams).
const FANOUT: usize = 10;
/// Rows per INSERT statement.
const BATCH: usize = 1_000;
const DAY: i64 = 86_400_000;

/// A small deterministic generator (splitmix64), so every run seeds the same mix.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An SQL integer literal or NULL.
fn int(v: Option<i64>) -> String {
    v.map_or_else(|| "NULL".to_owned(), |v| v.to_string())
}

/// Rows of one table, written as multi-row INSERTs of [`BATCH`] rows with literal values (only the tenant is
/// bound, as `$1`), so that a row costs no per-value work in the driver.
struct Inserter {
    head: String,
    sql: String,
    rows: usize,
    total: usize,
}

impl Inserter {
    fn new(table: &str, columns: &str) -> Inserter {
        Inserter {
            head: format!("INSERT INTO {table} (tenant_id, {columns}) VALUES "),
            sql: String::new(),
            rows: 0,
            total: 0,
        }
    }

    /// Add a row: the values after the tenant, already as SQL literals separated by commas. Written when
    /// [`BATCH`] rows are waiting.
    async fn row(&mut self, tx: &mut TenantTx, values: &str) -> anyhow::Result<()> {
        self.push(values);
        if self.rows >= BATCH {
            self.flush(tx).await?;
        }
        Ok(())
    }

    /// Add a row without writing anything yet (for rows that refer to rows of another inserter, which must
    /// be written first).
    fn push(&mut self, values: &str) {
        if self.rows == 0 {
            self.sql.clear();
            self.sql.push_str(&self.head);
        } else {
            self.sql.push_str(", ");
        }
        let _ = write!(self.sql, "($1, {values})");
        self.rows += 1;
    }

    async fn flush(&mut self, tx: &mut TenantTx) -> anyhow::Result<()> {
        if self.rows > 0 {
            tx.query(&self.sql).persistent(false).execute(tx.conn()).await?;
            self.total += self.rows;
            self.rows = 0;
        }
        Ok(())
    }

    /// Write what is left; returns how many rows were written in all.
    async fn finish(mut self, tx: &mut TenantTx) -> anyhow::Result<usize> {
        self.flush(tx).await?;
        Ok(self.total)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "sqlite:/tmp/aula-reports.db".into());
    let users: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let per_user: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10);
    anyhow::ensure!(
        per_user <= COURSES,
        "at most {COURSES} enrollments per user (one per course)"
    );
    let started = Instant::now();
    let db = Db::connect(&url, 2).await?;

    // The academy: reuse it when it is there and complete.
    let mut ptx = db.platform().begin().await?;
    let tenant_id = match aula::tenancy::by_slug(&mut ptx, SLUG).await? {
        Some(t) => t.id,
        None => aula::tenancy::insert(&mut ptx, SLUG, "Bench Academy", &TenantSettings::default()).await?,
    };
    ptx.commit().await?;
    let tenant = db.tenant(&tenant_id);
    let mut tx = tenant.begin().await?;
    let existing: i64 = tx
        .query("SELECT COUNT(*) FROM users WHERE tenant_id = $1")
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?;
    if existing > 0 {
        tx.commit().await?;
        println!("academy {SLUG:?} is already seeded ({existing} users); nothing changed");
        report(&db, &tenant_id).await?;
        db.close().await;
        return Ok(());
    }

    let hash = aula::auth::password::hash_blocking(PASSWORD)?;
    let now = now_ms();
    let mut mix = Mix(2026);
    let mut role = std::collections::HashMap::new();
    for r in tx
        .query("SELECT key, id FROM roles WHERE tenant_id = $1")
        .fetch_all(tx.conn())
        .await?
    {
        role.insert(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?);
    }

    // Organizations, with materialized paths and depths as the organizations API writes them.
    let t = Instant::now();
    let mut orgs = Inserter::new(
        "orgs",
        "id, parent_id, name, path, depth, external_id, created_at, updated_at",
    );
    let root = new_id();
    let root_path = format!("/{root}/");
    let org_row = |id: &str, parent: Option<&str>, name: &str, path: &str, depth: i64, ext: &str| {
        format!(
            "{}, {}, {}, {}, {depth}, {}, {now}, {now}",
            lit(id),
            parent.map_or_else(|| "NULL".to_owned(), lit),
            lit(name),
            lit(path),
            lit(ext)
        )
    };
    orgs.row(&mut tx, &org_row(&root, None, "Bench Corp", &root_path, 0, "ORG"))
        .await?;
    let mut divisions = Vec::new();
    let mut teams = Vec::new();
    for d in 0..FANOUT {
        let div = new_id();
        let div_path = format!("{root_path}{div}/");
        let ext = format!("ORG-{d}");
        orgs.row(
            &mut tx,
            &org_row(&div, Some(&root), &format!("Division {d}"), &div_path, 1, &ext),
        )
        .await?;
        divisions.push(div.clone());
        for p in 0..FANOUT {
            let dept = new_id();
            let dept_path = format!("{div_path}{dept}/");
            let ext = format!("ORG-{d}-{p}");
            let name = format!("Department {d}.{p}");
            orgs.row(&mut tx, &org_row(&dept, Some(&div), &name, &dept_path, 2, &ext))
                .await?;
            for k in 0..FANOUT {
                let team = new_id();
                let team_path = format!("{dept_path}{team}/");
                let ext = format!("ORG-{d}-{p}-{k}");
                let name = format!("Team {d}.{p}.{k}");
                orgs.row(&mut tx, &org_row(&team, Some(&dept), &name, &team_path, 3, &ext))
                    .await?;
                teams.push(team);
            }
        }
    }
    let org_count = orgs.finish(&mut tx).await?;
    eprintln!("orgs: {org_count} in {:.1?}", t.elapsed());

    // Courses, each with three lessons.
    let mut courses = Inserter::new(
        "courses",
        "id, code, title, summary, language, status, created_at, updated_at, estimated_minutes, visibility, \
         self_enroll, due_days",
    );
    let mut lessons = Inserter::new(
        "lessons",
        "id, course_id, position, kind, title, body, required, created_at, updated_at",
    );
    let mut course_ids = Vec::new();
    let mut course_due = Vec::new();
    for c in 0..COURSES {
        let id = new_id();
        // Compliance courses (every third) have a due date; the others are self-paced.
        let due_days = (c % 3 == 0).then_some(30 + (c as i64 % 4) * 15);
        courses
            .row(
                &mut tx,
                &format!(
                    "{}, {}, {}, {}, 'en', 'published', {now}, {now}, {}, 'tenant', 1, {}",
                    lit(&id),
                    lit(&format!("BENCH-{c:03}")),
                    lit(&format!("Course {c:03}")),
                    lit("A course of the reports benchmark."),
                    30 + c * 5,
                    int(due_days)
                ),
            )
            .await?;
        for position in 1..=3 {
            lessons.push(&format!(
                "{}, {}, {position}, 'text', {}, {}, 1, {now}, {now}",
                lit(&new_id()),
                lit(&id),
                lit(&format!("Lesson {position}")),
                lit("Read this.")
            ));
        }
        course_ids.push(id);
        course_due.push(due_days);
    }
    // Courses first: lessons refer to them.
    courses.finish(&mut tx).await?;
    lessons.finish(&mut tx).await?;

    // People: the admin, the manager of the first division, and the learners in teams.
    let t = Instant::now();
    let mut people = Inserter::new(
        "users",
        "id, email, name, locale, status, external_id, profile, password_hash, created_at, updated_at",
    );
    let mut members = Inserter::new("memberships", "user_id, org_id, created_at");
    let mut grants = Inserter::new("grants", "id, user_id, role_id, scope_type, org_id, created_at");
    let hash_lit = lit(&hash);
    let grant = |user: &str, role_id: &str, org: Option<&str>| {
        format!(
            "{}, {}, {}, {}, {}, {now}",
            lit(&new_id()),
            lit(user),
            lit(role_id),
            if org.is_some() { "'org'" } else { "'tenant'" },
            org.map_or_else(|| "NULL".to_owned(), lit)
        )
    };
    let admin = new_id();
    let manager = new_id();
    for (id, email, name) in [
        (&admin, "admin@bench.test", "Bench Admin"),
        (&manager, "manager@bench.test", "Division Manager"),
    ] {
        people
            .row(
                &mut tx,
                &format!(
                    "{}, {}, {}, 'en', 'active', NULL, '{{}}', {hash_lit}, {now}, {now}",
                    lit(id),
                    lit(email),
                    lit(name)
                ),
            )
            .await?;
        grants.row(&mut tx, &grant(id, &role["learner"], None)).await?;
    }
    members
        .row(&mut tx, &format!("{}, {}, {now}", lit(&admin), lit(&root)))
        .await?;
    members
        .row(&mut tx, &format!("{}, {}, {now}", lit(&manager), lit(&divisions[0])))
        .await?;
    grants.row(&mut tx, &grant(&admin, &role["tenant_admin"], None)).await?;
    grants
        .row(&mut tx, &grant(&manager, &role["org_manager"], Some(&divisions[0])))
        .await?;
    let mut learners = Vec::with_capacity(users);
    for i in 0..users {
        let id = new_id();
        // Mostly active; a few suspended or terminated, as in any real academy.
        let status = match mix.below(100) {
            0..=96 => "active",
            97..=98 => "suspended",
            _ => "terminated",
        };
        let created = now - (400 + mix.below(600) as i64) * DAY;
        people.push(&format!(
            "{}, {}, {}, 'en', '{status}', {}, '{{}}', {hash_lit}, {created}, {created}",
            lit(&id),
            lit(&format!("learner{i:06}@bench.test")),
            lit(&format!("Learner {i:06}")),
            lit(&format!("E{i:06}"))
        ));
        members.push(&format!("{}, {}, {created}", lit(&id), lit(&teams[i % teams.len()])));
        grants.push(&grant(&id, &role["learner"], None));
        learners.push(id);
        if people.rows >= BATCH {
            // Users first: memberships and grants refer to them.
            people.flush(&mut tx).await?;
            members.flush(&mut tx).await?;
            grants.flush(&mut tx).await?;
        }
    }
    let user_count = people.finish(&mut tx).await?;
    let member_count = members.finish(&mut tx).await?;
    let grant_count = grants.finish(&mut tx).await?;
    eprintln!(
        "users: {user_count}, memberships: {member_count}, grants: {grant_count} in {:.1?}",
        t.elapsed()
    );

    // Enrollments: PER_USER distinct courses per learner, created up to 400 days ago.
    let t = Instant::now();
    let mut enrollments = Inserter::new(
        "enrollments",
        "id, user_id, course_id, status, progress, due_at, completed_at, created_at, updated_at, source, \
         started_at, cycle",
    );
    for user in &learners {
        let first = mix.below(COURSES as u64) as usize;
        for k in 0..per_user {
            // first, first + 5, first + 10, … (mod 50): distinct for up to 10 per user; beyond that, step 1.
            let c = if per_user <= 10 {
                (first + k * 5) % COURSES
            } else {
                (first + k) % COURSES
            };
            let created = now - (1 + mix.below(400) as i64) * DAY - mix.below(DAY as u64) as i64;
            let due = course_due[c]
                .map(|d| created + d * DAY)
                .or_else(|| (mix.below(4) == 0).then(|| created + (14 + mix.below(120) as i64) * DAY));
            let age = now - created;
            let source = if mix.below(10) < 3 { "rule" } else { "manual" };
            let (status, progress, started, completed) = match mix.below(100) {
                // Completed: started within a week, finished some time before now.
                0..=44 => {
                    let started = created + mix.below((age / 4).max(1) as u64) as i64;
                    let completed = started + mix.below((now - started).max(1) as u64) as i64;
                    ("completed", 100, Some(started), Some(completed))
                }
                45..=69 => {
                    let started = created + mix.below((age / 2).max(1) as u64) as i64;
                    ("in_progress", 10 + mix.below(9) as i64 * 10, Some(started), None)
                }
                70..=91 => ("enrolled", 0, None, None),
                _ => ("dropped", mix.below(5) as i64 * 10, None, None),
            };
            let updated = completed.or(started).unwrap_or(created);
            enrollments
                .row(
                    &mut tx,
                    &format!(
                        "{}, {}, {}, '{status}', {progress}, {}, {}, {created}, {updated}, '{source}', {}, 1",
                        lit(&new_id()),
                        lit(user),
                        lit(&course_ids[c]),
                        int(due),
                        int(completed),
                        int(started)
                    ),
                )
                .await?;
        }
    }
    let enrollment_count = enrollments.finish(&mut tx).await?;
    eprintln!("enrollments: {enrollment_count} in {:.1?}", t.elapsed());
    let t = Instant::now();
    tx.commit().await?;
    eprintln!("commit in {:.1?}", t.elapsed());
    println!(
        "seeded academy {SLUG:?} in {:.1?}: {org_count} orgs, {user_count} users, {} courses, {enrollment_count} enrollments",
        started.elapsed(),
        course_ids.len()
    );
    report(&db, &tenant_id).await?;
    db.close().await;
    Ok(())
}

/// Print what the academy holds and how to sign in.
async fn report(db: &Db, tenant_id: &str) -> anyhow::Result<()> {
    let mut tx = db.tenant(tenant_id).begin_read().await?;
    let mut counts = Vec::new();
    for table in ["orgs", "users", "memberships", "courses", "enrollments"] {
        let n: i64 = tx
            .query(&format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"))
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        counts.push(format!("{table}={n}"));
    }
    let statuses = tx
        .query("SELECT status, COUNT(*) FROM enrollments WHERE tenant_id = $1 GROUP BY status ORDER BY status")
        .fetch_all(tx.conn())
        .await?;
    for r in statuses {
        counts.push(format!("{}={}", r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?));
    }
    tx.commit().await?;
    println!("counts: {}", counts.join(" "));
    println!("sign in: admin@bench.test / manager@bench.test (org manager of Division 0), password {PASSWORD}");
    Ok(())
}
