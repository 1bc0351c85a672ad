//! The learning core: enrollments and their history, progress through lessons and quizzes, completion,
//! certificates, programs, and the automation (built-in rules and enrollment plugins) that acts on users.
//!
//! Handlers in `http/` validate requests and check scope; the functions here do the work inside the caller's
//! transaction, so a change and everything it causes commit together.

pub mod automation;
pub mod content;
pub mod courses;
pub mod enroll;
pub mod jobs;
pub mod progress;
pub mod records;
pub mod signup;

use crate::auth::Actor;

/// Who or what caused a change. Written into enrollment history, the automation log and the audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// A person acting through the API or portal (an admin, a manager, a learner for themselves).
    Person {
        /// The user's id.
        id: String,
        /// Their e-mail, kept in case they are deleted.
        label: String,
    },
    /// A built-in rule.
    Rule {
        /// The rule's id.
        id: String,
        /// Its name.
        name: String,
    },
    /// One version of an enrollment plugin.
    Plugin {
        /// The plugin's id.
        id: String,
        /// Its name.
        name: String,
        /// The version that ran.
        version: String,
    },
    /// Enrollment in a program enrolls in its courses.
    Program {
        /// The program's id.
        id: String,
    },
    /// The host itself (recertification, the operator's CLI, the demo).
    System(String),
}

impl Source {
    /// A short stable label: `user:<id>`, `rule:<id>`, `plugin:<id>@<version>`, `program:<id>`, `system:<what>`.
    pub fn label(&self) -> String {
        match self {
            Source::Person { id, .. } => format!("user:{id}"),
            Source::Rule { id, .. } => format!("rule:{id}"),
            Source::Plugin { id, version, .. } => format!("plugin:{id}@{version}"),
            Source::Program { id } => format!("program:{id}"),
            Source::System(what) => format!("system:{what}"),
        }
    }

    /// The person who acted, if a person did.
    pub fn person_id(&self) -> Option<&str> {
        match self {
            Source::Person { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The person behind a caller.
    pub fn person(actor: &Actor) -> Source {
        match &actor.id {
            Some(id) if actor.kind == "user" => Source::Person {
                id: id.clone(),
                label: actor.label.clone(),
            },
            _ => Source::System("operator".into()),
        }
    }

    /// The actor the audit log names for this source.
    pub fn actor(&self, request_id: Option<String>) -> Actor {
        let (kind, id, label) = match self {
            Source::Person { id, label } => ("user", Some(id.clone()), label.clone()),
            Source::Rule { id, name } => ("rule", Some(id.clone()), format!("rule {name}")),
            Source::Plugin { id, name, version } => ("plugin", Some(id.clone()), format!("plugin {name} {version}")),
            Source::Program { id } => ("system", Some(id.clone()), "program".to_owned()),
            Source::System(what) => ("system", None, what.clone()),
        };
        Actor {
            kind,
            id,
            label,
            request_id,
        }
    }
}

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
