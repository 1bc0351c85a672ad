use aula_sdk::testing::{FakeCourse, FakeHost, FakeUser};
use serde_json::json;

use super::*;

fn academy() -> FakeHost {
    FakeHost::new()
        .course(FakeCourse::new("c1", "SAFE-101", "Safety"))
        .user(FakeUser::new("u-de", "ann@acme.test").name("Ann").locale("de-CH"))
        .user(FakeUser::new("u-fr", "fleur@acme.test").name("Fleur").locale("fr"))
        .user(FakeUser::new("u-en", "ed@acme.test").name("Ed"))
        .user(
            FakeUser::new("u-quiet", "q@acme.test")
                .name("Quinn")
                .tag("no-reminders"),
        )
        .user(FakeUser::new("u-it", "it@acme.test").name("Ida").locale("it"))
}

fn notice(kind: &str) -> Notice {
    Notice {
        kind: kind.into(),
        user_id: None,
        course_id: Some("c1".into()),
        due_at: Some("2026-02-01T09:00:00Z".into()),
        data: Vec::new(),
    }
}

fn draft(recipient: &str) -> Message {
    Message::text(recipient, "en", "Reminder", "Your course is due.")
}

fn replaced(outcome: Outcome) -> Vec<Message> {
    match outcome {
        Outcome::Replace(messages) => messages,
        other => panic!("expected replacement, got {other:?}"),
    }
}

#[test]
fn reminders_are_written_in_each_recipients_language() {
    let _host = academy().install();
    let drafts = ["u-de", "u-fr", "u-en", "u-it"].map(draft).to_vec();
    let messages = replaced(LocalizedReminders::on_notice(notice("due-soon"), drafts).unwrap());

    assert_eq!(messages.len(), 4);
    assert_eq!(messages[0].locale, "de-CH");
    assert_eq!(messages[0].subject, "Erinnerung: Safety ist fällig am 2026-02-01");
    assert!(messages[0].body_text.starts_with("Hallo Ann,"));
    assert_eq!(messages[1].subject, "Rappel : Safety est à terminer pour le 2026-02-01");
    assert_eq!(messages[2].locale, "en");
    assert_eq!(messages[2].subject, "Reminder: Safety is due 2026-02-01");
    // No Italian text: English.
    assert_eq!(messages[3].locale, "it");
    assert!(messages[3].body_text.starts_with("Hello Ida,"));
}

#[test]
fn opted_out_recipients_get_nothing() {
    let host = academy().install();
    let messages =
        replaced(LocalizedReminders::on_notice(notice("overdue"), vec![draft("u-quiet"), draft("u-en")]).unwrap());
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject, "Overdue: Safety");
    assert!(host.log_messages()[0].contains("u-quiet"));

    let outcome = LocalizedReminders::on_notice(notice("overdue"), vec![draft("u-quiet")]).unwrap();
    assert_eq!(outcome, Outcome::Suppress);
}

#[test]
fn texts_setting_overrides_and_adds_languages() {
    let texts = json!({
        "de": {"due-soon": {"subject": "Bitte {course} bis {due}", "body": "Hoi {name}"}},
        "it": {"due-soon": {"subject": "Promemoria: {course}", "body": "Ciao {name}"}}
    });
    let _host = academy().config("texts", texts).install();
    let mut without_due = notice("due-soon");
    without_due.due_at = None;
    let messages = replaced(LocalizedReminders::on_notice(without_due, vec![draft("u-de"), draft("u-it")]).unwrap());
    assert_eq!(messages[0].subject, "Bitte Safety bis bald");
    assert_eq!(messages[0].body_text, "Hoi Ann");
    assert_eq!(messages[1].subject, "Promemoria: Safety");
}

#[test]
fn other_notices_and_unknown_courses_keep_the_drafts() {
    let _host = academy().install();
    assert_eq!(
        LocalizedReminders::on_notice(notice("enrolled"), vec![draft("u-de")]).unwrap(),
        Outcome::Keep
    );
    let mut elsewhere = notice("due-soon");
    elsewhere.course_id = Some("c-hidden".into());
    assert_eq!(
        LocalizedReminders::on_notice(elsewhere, vec![draft("u-de")]).unwrap(),
        Outcome::Keep
    );
}

#[test]
fn recipients_we_cannot_see_keep_their_draft() {
    let _host = academy().install();
    let messages = replaced(LocalizedReminders::on_notice(notice("due-soon"), vec![draft("u-gone")]).unwrap());
    assert_eq!(messages, [draft("u-gone")]);
}

#[test]
fn ticks_send_nothing() {
    assert_eq!(LocalizedReminders::on_tick("2026-01-01T00:00:00Z".into()).unwrap(), []);
}
