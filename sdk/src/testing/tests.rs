use super::*;
use crate::directory::{self, UserQuery};
use crate::records::{self, EnrollmentQuery};
use crate::{EnrollmentStatus, FieldValue, UserStatus, config, kv, log};

const FIXTURE: &str = r#"{
    "orgs": [
        {"id": "o-acme", "name": "Acme", "parent": null, "external_id": "A"},
        {"id": "o-sales", "name": "Sales", "parent": "o-acme", "external_id": "S1"},
        {"id": "o-north", "name": "North", "parent": "o-sales"},
        {"id": "o-eng", "name": "engineering", "parent": "o-acme"},
        {"id": "o-globex", "name": "Globex"}
    ],
    "users": [
        {"id": "u1", "email": "ann@acme.test", "name": "Ann", "locale": "de", "status": "active",
         "orgs": ["o-sales"], "tags": ["new"], "profile": {"region": "north", "age": 31},
         "external_id": null, "manager_id": null},
        {"id": "u2", "email": "bob@acme.test", "name": "Bob", "orgs": ["o-north"], "manager_id": "u1"},
        {"id": "u3", "email": "cy@acme.test", "name": "Cy", "orgs": ["o-eng"], "status": "suspended"},
        {"id": "u4", "email": "di@globex.test", "name": "Di", "orgs": ["o-globex"], "tags": ["partner"]}
    ],
    "tags": ["new", "alumni"],
    "segments": [{"id": "s1", "name": "North", "members": ["u1", "u2"]}],
    "courses": [
        {"id": "c2", "code": "SAFE-201", "title": "Safety II", "language": "de"},
        {"id": "c1", "code": "SAFE-101", "title": "Safety"}
    ],
    "enrollments": [
        {"user": "u2", "course": "c1"},
        {"user": "u1", "course": "c1", "status": "completed", "due_at": null,
         "completed_at": "2026-01-05T10:00:00.000Z", "progress": 100},
        {"user": "u1", "course": "c2", "status": "in-progress", "progress": 40},
        {"user": "u3", "course": "c1", "status": "dropped"},
        {"user": "u4", "course": "c1"}
    ],
    "config": {"due_in_days": 14, "domains": {"acme.test": "Sales"}},
    "secrets": {"api_key": "x"},
    "kv": {"seen": "1"}
}"#;

fn ids<T>(items: impl IntoIterator<Item = T>, id: impl Fn(&T) -> String) -> Vec<String> {
    items.into_iter().map(|i| id(&i)).collect()
}

#[test]
fn fixture_loads_every_kind_of_record() {
    let _host = FakeHost::from_json(FIXTURE).unwrap().install();

    let ann = directory::user("u1").unwrap();
    assert_eq!(ann.email, "ann@acme.test");
    assert_eq!(ann.locale.as_deref(), Some("de"));
    assert_eq!(ann.status, UserStatus::Active);
    assert_eq!(ann.org_ids, ["o-sales"]);
    assert_eq!(ann.field("region"), Some(&FieldValue::Text("north".into())));
    assert_eq!(ann.field("age"), Some(&FieldValue::Number(31.0)));
    assert_eq!(directory::user("u3").unwrap().status, UserStatus::Suspended);
    assert_eq!(directory::user("u2").unwrap().manager_id.as_deref(), Some("u1"));

    assert_eq!(
        directory::org("o-north").unwrap().path,
        ["o-acme", "o-sales", "o-north"]
    );
    assert_eq!(directory::course("c1").unwrap().language, "en");
    assert!(directory::in_segment("u2", "s1"));
    assert!(!directory::in_segment("u3", "s1"));

    assert_eq!(config::get::<u32>("due_in_days"), Some(14));
    assert_eq!(config::raw("domains").as_deref(), Some(r#"{"acme.test":"Sales"}"#));
    assert_eq!(config::get::<u32>("domains"), None);
    assert!(config::try_get::<u32>("domains").unwrap_err().contains("domains"));
    assert_eq!(config::secret("api_key").as_deref(), Some("x"));
    assert_eq!(kv::get_string("seen").as_deref(), Some("1"));
}

#[test]
fn empty_fixture_is_an_empty_academy() {
    let _host = FakeHost::from_json("{}").unwrap().install();
    assert!(directory::users(UserQuery::default()).next().is_none());
    assert!(directory::all_orgs().next().is_none());
    assert_eq!(config::raw("anything"), None);
}

#[test]
fn fixture_errors_name_the_record() {
    let err = |json: &str| FakeHost::from_json(json).unwrap_err().to_string();
    assert!(err(r#"{"users": [{"id": "u1", "email": "a@b", "orgs": ["nope"]}]}"#).contains("users[0].orgs"));
    assert!(err(r#"{"users": [{"id": "u1", "email": "a@b", "status": "gone"}]}"#).contains("unknown user status"));
    assert!(err(r#"{"users": [{"id": "u1", "email": "a@b", "profile": {"x": true}}]}"#).contains("`x`"));
    assert!(
        err(r#"{"orgs": [{"id": "a", "name": "A", "parent": "b"}, {"id": "b", "name": "B", "parent": "a"}]}"#)
            .contains("cycle")
    );
    assert!(err(r#"{"enrollments": [{"user": "u9", "course": "c1"}]}"#).contains("enrollments[0].user"));
    assert!(err(r#"{"groups": []}"#).contains("unknown field"));
    assert!(err(r#"{"users": [{"id": "u1", "email": "A@b"}, {"id": "u2", "email": "a@B"}]}"#).contains("twice"));
}

#[test]
fn org_filters_include_the_organizations_below() {
    let _host = FakeHost::from_json(FIXTURE).unwrap().install();
    let in_org = |org: &str| ids(directory::users(UserQuery::default().in_org(org)), |u| u.id.clone());

    assert_eq!(in_org("o-acme"), ["u1", "u2", "u3"]);
    assert_eq!(in_org("o-sales"), ["u1", "u2"]);
    assert_eq!(in_org("o-north"), ["u2"]);
    assert_eq!(in_org("o-globex"), ["u4"]);
    assert!(in_org("o-missing").is_empty());

    let enrolled_in = |org: &str| {
        ids(records::enrollments(EnrollmentQuery::default().in_org(org)), |e| {
            format!("{}:{}", e.user_id, e.course_id)
        })
    };
    assert_eq!(enrolled_in("o-sales"), ["u1:c1", "u1:c2", "u2:c1"]);
    assert_eq!(enrolled_in("o-acme"), ["u1:c1", "u1:c2", "u2:c1", "u3:c1"]);
}

#[test]
fn users_page_by_cursor_in_id_order() {
    let mut host = FakeHost::new();
    for i in (0..25).rev() {
        host = host.user(FakeUser::new(format!("u{i:02}"), format!("user{i}@acme.test")));
    }
    let _host = host.install();

    let first = directory::users_page(&UserQuery::default().page_size(10));
    assert_eq!(first.users.len(), 10);
    assert_eq!(first.users[0].id, "u00");
    assert_eq!(first.next.as_deref(), Some("u09"));
    let second = directory::users_page(&UserQuery::default().page_size(10).after("u09"));
    assert_eq!(second.users[0].id, "u10");
    let third = directory::users_page(&UserQuery::default().page_size(10).after("u19"));
    assert_eq!(third.users.len(), 5);
    assert_eq!(third.next, None);

    // The iterator walks every page.
    let all = ids(directory::users(UserQuery::default().page_size(7)), |u| u.id.clone());
    assert_eq!(all.len(), 25);
    assert!(all.windows(2).all(|w| w[0] < w[1]));

    // A page of exactly the remaining users has no next page.
    let exact = directory::users_page(&UserQuery::default().page_size(25));
    assert_eq!((exact.users.len(), exact.next), (25, None));
    // Limits outside 1–500 are clamped like the host does.
    assert_eq!(directory::users_page(&UserQuery::default().page_size(0)).users.len(), 1);
}

#[test]
fn enrollments_page_by_cursor_in_user_and_course_order() {
    let _host = FakeHost::from_json(FIXTURE).unwrap().install();
    let mut query = EnrollmentQuery::default().page_size(2);
    let mut seen = Vec::new();
    loop {
        let page = records::enrollments_page(&query);
        assert!(page.enrollments.len() <= 2);
        seen.extend(
            page.enrollments
                .iter()
                .map(|e| format!("{}:{}", e.user_id, e.course_id)),
        );
        match page.next {
            Some(next) => query = query.after(next),
            None => break,
        }
    }
    assert_eq!(seen, ["u1:c1", "u1:c2", "u2:c1", "u3:c1", "u4:c1"]);

    let completed: Vec<_> = records::enrollments(EnrollmentQuery::default().course("c1"))
        .filter(|e| e.status == EnrollmentStatus::Completed)
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].progress_percent, 100);
    assert_eq!(records::enrollments(EnrollmentQuery::default().user("u1")).count(), 2);
}

#[test]
fn user_filters_combine() {
    let _host = FakeHost::from_json(FIXTURE).unwrap().install();
    let query = |q: UserQuery| ids(directory::users(q), |u| u.id.clone());
    assert_eq!(query(UserQuery::default().tagged("new")), ["u1"]);
    assert_eq!(query(UserQuery::default().in_segment("s1")), ["u1", "u2"]);
    assert_eq!(query(UserQuery::default().matching("GLOBEX")), ["u4"]);
    assert_eq!(query(UserQuery::default().matching("bo")), ["u2"]);
    assert!(query(UserQuery::default().in_segment("s1").in_org("o-eng")).is_empty());
    assert_eq!(directory::user_by_email("ANN@acme.TEST").unwrap().id, "u1");
}

#[test]
fn lists_follow_the_wit_order() {
    let _host = FakeHost::from_json(FIXTURE).unwrap().install();
    assert_eq!(ids(directory::orgs(None), |o| o.id.clone()), ["o-acme", "o-globex"]);
    // By name ignoring case: "engineering" before "Sales".
    assert_eq!(
        ids(directory::orgs(Some("o-acme")), |o| o.id.clone()),
        ["o-eng", "o-sales"]
    );
    assert_eq!(
        ids(directory::all_orgs(), |o| o.id.clone()),
        ["o-acme", "o-eng", "o-sales", "o-north", "o-globex"]
    );
    assert_eq!(ids(directory::tags(), |t| t.name.clone()), ["alumni", "new", "partner"]);
    assert_eq!(ids(directory::courses(), |c| c.code.clone()), ["SAFE-101", "SAFE-201"]);
    assert_eq!(directory::course_by_code("safe-201").unwrap().id, "c2");
    assert_eq!(ids(directory::find_orgs("s1"), |o| o.id.clone()), ["o-sales"]);
    assert_eq!(ids(directory::find_orgs("ENGINEERING"), |o| o.id.clone()), ["o-eng"]);
}

#[test]
fn org_walk_resumes_where_it_stopped() {
    let _host = FakeHost::from_json(FIXTURE).unwrap().install();
    let all = ids(directory::all_orgs(), |o| o.id.clone());
    for (i, id) in all.iter().enumerate() {
        let rest = ids(directory::OrgWalk::resume_at(id), |o| o.id.clone());
        assert_eq!(rest, all[i..], "resuming at {id}");
    }
    assert!(directory::OrgWalk::resume_at("o-missing").next().is_none());
}

#[test]
fn kv_and_logs_are_captured() {
    let host = FakeHost::new().kv("a/1", "x").kv("b/1", "y").install();
    kv::set("a/2", "z").unwrap();
    kv::delete("b/1");
    assert_eq!(kv::keys("a/", 10), ["a/1", "a/2"]);
    assert_eq!(kv::keys("a/", 1), ["a/1"]);
    assert!(kv::set(&"k".repeat(257), "v").is_err());
    assert!(kv::set("big", vec![0; 64 * 1024 + 1]).is_err());
    log::warn(format_args!("{} left", 2));

    assert_eq!(host.kv_string("a/2").as_deref(), Some("z"));
    assert_eq!(host.logs()[0].level, log::Level::Warn);
    let fake = host.uninstall();
    assert_eq!(fake.log_messages(), ["2 left"]);
    assert!(!fake.kv_entries().contains_key("b/1"));
}

#[test]
fn installs_nest_and_restore() {
    let _outer = FakeHost::new().config("who", "outer").install();
    FakeHost::new().config("who", "inner").with(|| {
        assert_eq!(config::get::<String>("who").as_deref(), Some("inner"));
    });
    assert_eq!(config::get::<String>("who").as_deref(), Some("outer"));
}

#[test]
fn update_changes_the_installed_fake() {
    let host = FakeHost::new().install();
    assert!(directory::user("u1").is_none());
    host.update(|h| h.user(FakeUser::new("u1", "ann@acme.test")));
    assert!(directory::user("u1").is_some());
}

#[test]
#[should_panic(expected = "no fake host installed")]
fn host_calls_without_a_fake_panic_with_advice() {
    log::info("nobody listens");
}
