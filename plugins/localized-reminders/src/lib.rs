//! Writes due-date reminders in each learner's language.
//!
//! For `due-soon` and `overdue` notices the plugin rewrites every draft in the recipient's language (from
//! their profile's locale, else the draft's), naming the course by its title and the due date. English,
//! German and French texts are built in; the `texts` setting overrides them or adds languages. Recipients
//! carrying the `opt_out_tag` get no reminder. Every other notice goes out as the host drafted it.
//!
//! Texts may use `{name}` (the learner's name), `{course}` (the course title) and `{due}` (the due date,
//! `YYYY-MM-DD`, or the language's word for "soon" when the notice has none).

use std::collections::BTreeMap;

use aula_sdk::notifications::{Message, Notice, Notifications, Outcome};
use aula_sdk::{config, directory, log};
use serde::Deserialize;

/// The text of one kind of reminder in one language.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Text {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// Texts by language (`de`) and notice kind (`due-soon`, `overdue`), as in the `texts` setting.
pub type Texts = BTreeMap<String, BTreeMap<String, Text>>;

/// The notice kinds this plugin rewrites.
pub const KINDS: [&str; 2] = ["due-soon", "overdue"];

/// The built-in text for `kind` in `language` (`en`, `de` or `fr`), and that language's word for "soon".
fn built_in(language: &str, kind: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match (language, kind) {
        ("en", "due-soon") => (
            "Reminder: {course} is due {due}",
            "Hello {name},\n\nyour course \"{course}\" is due {due}. Please complete it in time.",
            "soon",
        ),
        ("en", "overdue") => (
            "Overdue: {course}",
            "Hello {name},\n\nyour course \"{course}\" was due {due} and is not completed yet. Please complete it \
             as soon as you can.",
            "soon",
        ),
        ("de", "due-soon") => (
            "Erinnerung: {course} ist fällig am {due}",
            "Hallo {name},\n\nIhr Kurs „{course}“ ist fällig am {due}. Bitte schließen Sie ihn rechtzeitig ab.",
            "bald",
        ),
        ("de", "overdue") => (
            "Überfällig: {course}",
            "Hallo {name},\n\nIhr Kurs „{course}“ war fällig am {due} und ist noch nicht abgeschlossen. Bitte \
             schließen Sie ihn so bald wie möglich ab.",
            "bald",
        ),
        ("fr", "due-soon") => (
            "Rappel : {course} est à terminer pour le {due}",
            "Bonjour {name},\n\nvotre cours « {course} » est à terminer pour le {due}. Merci de le terminer à \
             temps.",
            "bientôt",
        ),
        ("fr", "overdue") => (
            "En retard : {course}",
            "Bonjour {name},\n\nvotre cours « {course} » devait être terminé pour le {due} et ne l'est pas encore. \
             Merci de le terminer dès que possible.",
            "bientôt",
        ),
        _ => return None,
    })
}

/// Subject and body templates for `kind` in `language` (the setting's, else the built-in ones, else
/// English), and the word standing in for a missing due date.
fn templates<'a>(texts: &'a Texts, language: &str, kind: &str) -> (&'a str, &'a str, &'static str) {
    let (subject, body, soon) = built_in(language, kind)
        .or_else(|| built_in("en", kind))
        .unwrap_or(("", "", "soon"));
    match texts.get(language).and_then(|by_kind| by_kind.get(kind)) {
        Some(text) => (&text.subject, &text.body, soon),
        None => (subject, body, soon),
    }
}

fn fill(template: &str, name: &str, course: &str, due: &str) -> String {
    template
        .replace("{name}", name)
        .replace("{course}", course)
        .replace("{due}", due)
}

/// The plugin as registered with the host.
pub struct LocalizedReminders;

impl Notifications for LocalizedReminders {
    fn on_notice(notice: Notice, drafts: Vec<Message>) -> Result<Outcome, String> {
        if !KINDS.contains(&notice.kind.as_str()) || drafts.is_empty() {
            return Ok(Outcome::Keep);
        }
        let Some(course) = notice.course_id.as_deref().and_then(directory::course) else {
            log::debug(format_args!(
                "{} notice without a visible course: drafts kept",
                notice.kind
            ));
            return Ok(Outcome::Keep);
        };
        let opt_out: String = config::get("opt_out_tag").unwrap_or_else(|| "no-reminders".into());
        let texts: Texts = config::try_get("texts")?.unwrap_or_default();
        // RFC 3339 → its date.
        let due = notice.due_at.as_deref().map(|d| d.get(..10).unwrap_or(d));

        let mut messages = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let Some(user) = directory::user(&draft.recipient_id) else {
                messages.push(draft); // not visible to us: leave the host's draft alone
                continue;
            };
            if user.has_tag(&opt_out) {
                log::info(format_args!("{} opted out of reminders", user.id));
                continue;
            }
            let locale = user.locale.clone().unwrap_or(draft.locale);
            let language = locale.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
            let (subject, body, soon) = templates(&texts, &language, &notice.kind);
            let due = due.unwrap_or(soon);
            messages.push(Message::text(
                user.id,
                locale,
                fill(subject, &user.name, &course.title, due),
                fill(body, &user.name, &course.title, due),
            ));
        }
        Ok(if messages.is_empty() {
            Outcome::Suppress
        } else {
            Outcome::Replace(messages)
        })
    }
}

aula_sdk::register!(notifications: LocalizedReminders);

#[cfg(test)]
mod tests;
