use aula_sdk::enrollment::{Completion, Decision, UserChange};
use aula_sdk::testing::{FakeCourse, FakeHost, FakeOrg};
use aula_sdk::{ProfileField, UserStatus};
use serde_json::json;

use super::*;

fn academy() -> FakeHost {
    FakeHost::new()
        .org(FakeOrg::new("o-acme", "Acme"))
        .org(FakeOrg::new("o-sales", "Sales").parent("o-acme").external_id("S1"))
        .org(FakeOrg::new("o-eng", "Engineering").parent("o-acme").external_id("ENG"))
        .course(FakeCourse::new("c-onb", "ONB-101", "Welcome to Acme"))
        .course(FakeCourse::new("c-safe1", "SAFE-101", "Safety"))
        .course(FakeCourse::new("c-safe2", "SAFE-201", "Safety II"))
        .config("domains", json!({"acme.test": "Sales", "Partner.test": "nowhere"}))
        .config("profile_orgs", json!({"Engineering": "eng"}))
        .config("tags", ["new-staff"])
        .config("courses", ["onb-101"])
        .config("due_in_days", 7)
        .config("hold_unknown_domains", true)
        .config("blocked_domains", ["spam.test"])
        .config("follow_up", json!({"SAFE-101": "SAFE-201"}))
}

fn signup(email: &str, department: Option<&str>) -> Signup {
    Signup {
        email: email.into(),
        name: "Ann".into(),
        locale: None,
        profile: department
            .map(|d| ProfileField::text("department", d))
            .into_iter()
            .collect(),
        invited_to: None,
    }
}

fn user(id: &str, email: &str, orgs: &[&str], tags: &[&str]) -> User {
    User {
        id: id.into(),
        email: email.into(),
        name: id.into(),
        locale: None,
        status: UserStatus::Active,
        external_id: None,
        manager_id: None,
        org_ids: orgs.iter().map(|o| o.to_string()).collect(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        profile: Vec::new(),
    }
}

#[test]
fn known_domain_is_placed_tagged_and_enrolled() {
    let _host = academy().install();
    let outcome = DomainPlacement::on_signup(signup("ann@ACME.test", Some("Engineering"))).unwrap();
    assert_eq!(outcome.decision, Decision::Approve);
    assert_eq!(
        outcome.actions,
        [
            Action::AddToOrg("o-sales".into()),
            Action::AddToOrg("o-eng".into()),
            Action::AddTag("new-staff".into()),
            Action::enroll("c-onb", Some(7)),
        ]
    );
}

#[test]
fn unknown_domain_is_held_with_its_actions() {
    let _host = academy().install();
    let outcome = DomainPlacement::on_signup(signup("bob@elsewhere.test", None)).unwrap();
    assert!(matches!(outcome.decision, Decision::Hold(ref why) if why.contains("elsewhere.test")));
    assert_eq!(
        outcome.actions,
        [Action::AddTag("new-staff".into()), Action::enroll("c-onb", Some(7))]
    );
}

#[test]
fn blocked_domain_is_refused_without_actions() {
    let _host = academy().install();
    let outcome = DomainPlacement::on_signup(signup("x@SPAM.test", Some("Engineering"))).unwrap();
    assert!(matches!(outcome.decision, Decision::Refuse(_)));
    assert!(outcome.actions.is_empty());
}

#[test]
fn invitation_keeps_its_org_and_is_not_held() {
    let _host = academy().install();
    let mut invited = signup("di@elsewhere.test", None);
    invited.invited_to = Some("o-eng".into());
    let outcome = DomainPlacement::on_signup(invited).unwrap();
    assert_eq!(outcome.decision, Decision::Approve);
    assert!(!outcome.actions.iter().any(|a| matches!(a, Action::AddToOrg(_))));
}

#[test]
fn settings_naming_nothing_are_logged_not_fatal() {
    let host = academy().config("courses", ["ONB-101", "GONE-1"]).install();
    let outcome = DomainPlacement::on_signup(signup("eve@partner.test", None)).unwrap();
    assert_eq!(outcome.decision, Decision::Approve);
    assert_eq!(outcome.actions[0], Action::AddTag("new-staff".into()));
    let logs = host.log_messages();
    assert!(
        logs.iter().any(|l| l.contains("no organization named `nowhere`")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("no course with code `GONE-1`")),
        "{logs:?}"
    );
}

#[test]
fn malformed_setting_falls_back_to_its_default() {
    let host = academy().config("due_in_days", "soon").install();
    let outcome = DomainPlacement::on_signup(signup("ann@acme.test", None)).unwrap();
    assert!(outcome.actions.contains(&Action::enroll("c-onb", Some(14))));
    assert!(host.log_messages().iter().any(|l| l.contains("due_in_days")));
}

#[test]
fn events_get_placement_and_follow_ups_in_order() {
    let _host = academy().install();
    let ann = user("u1", "ann@acme.test", &["o-sales"], &[]);
    let bob = user("u2", "bob@acme.test", &[], &["new-staff"]);
    let events = vec![
        Event::UserCreated(ann.clone()),
        Event::UserChanged(UserChange {
            before: bob.clone(),
            after: bob.clone(),
        }),
        Event::CourseCompleted(Completion {
            user: bob.clone(),
            course_id: "c-safe1".into(),
        }),
        Event::CourseCompleted(Completion {
            user: bob.clone(),
            course_id: "c-safe2".into(),
        }),
        Event::UserCreated(bob),
    ];
    let actions = DomainPlacement::on_events(events).unwrap();
    assert_eq!(actions.len(), 5);
    // Already in Sales: only the tag and the course.
    assert_eq!(
        actions[0],
        [Action::AddTag("new-staff".into()), Action::enroll("c-onb", Some(7))]
    );
    assert!(actions[1].is_empty());
    assert_eq!(actions[2], [Action::enroll("c-safe2", Some(7))]);
    assert!(actions[3].is_empty());
    // Already tagged: the organization and the course.
    assert_eq!(
        actions[4],
        [Action::AddToOrg("o-sales".into()), Action::enroll("c-onb", Some(7))]
    );
}

#[test]
fn decide_runs_without_a_host() {
    let cfg = Config {
        domains: [("acme.test".to_string(), "S1".to_string())].into(),
        due_in_days: 0,
        courses: vec!["ONB-101".into()],
        ..Config::default()
    };
    let sales = Org {
        id: "o-sales".into(),
        parent_id: None,
        name: "Sales".into(),
        path: vec!["o-sales".into()],
        external_id: Some("S1".into()),
        member_limit: None,
    };
    let onboarding = Course {
        id: "c-onb".into(),
        code: "ONB-101".into(),
        title: "Welcome".into(),
        language: "en".into(),
    };
    let outcome = decide(&signup("ann@acme.test", None), &cfg, &[sales], &[onboarding]);
    assert_eq!(outcome.decision, Decision::Approve);
    assert_eq!(
        outcome.actions,
        [Action::AddToOrg("o-sales".into()), Action::enroll("c-onb", None)]
    );
}
