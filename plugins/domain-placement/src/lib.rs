//! Places new users by e-mail domain and profile field, tags them and enrolls them in onboarding courses.
//!
//! - **On sign-up**: refuses addresses from `blocked_domains`; places the user in the organization mapped
//!   to their e-mail domain (`domains`) and in the one mapped to their profile field (`profile_field`,
//!   `profile_orgs`); adds the `tags`; enrolls them in the `courses`, due in `due_in_days` days. A sign-up
//!   from a domain not in `domains` is held for an admin when `hold_unknown_domains` is set. A sign-up
//!   through an invitation keeps the invitation's organization instead of the domain's and is never held.
//! - **On user-created** (an admin or an import created the user): the same placement, tags and courses,
//!   leaving out organizations and tags the user already has.
//! - **On course-completed**: enrolls in the follow-up course configured for the completed one
//!   (`follow_up`, course code to course code).
//!
//! Organizations are named in the settings by name or external id (matched ignoring case, an external id
//! before a name) and courses by code. The decision itself is [`decide`], a plain function over data, so it
//! can be tested, or benchmarked, without a host.

use std::collections::{BTreeMap, BTreeSet};

use aula_sdk::enrollment::{Action, Enrollment, Event, Signup, SignupOutcome};
use aula_sdk::{Course, FieldValue, Org, User, config, directory, log};
use serde::de::DeserializeOwned;

/// The plugin's settings, with the defaults `aula-plugin.toml` declares.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// E-mail domain → organization name or external id.
    pub domains: BTreeMap<String, String>,
    /// The profile field whose value places the user (e.g. `department`).
    pub profile_field: String,
    /// Value of `profile_field` → organization name or external id.
    pub profile_orgs: BTreeMap<String, String>,
    /// Tags every placed user gets.
    pub tags: Vec<String>,
    /// Codes of the courses every placed user is enrolled in.
    pub courses: Vec<String>,
    /// Days until those enrollments are due; 0 for no due date.
    pub due_in_days: u32,
    /// Hold sign-ups from domains not in `domains` for an admin's approval.
    pub hold_unknown_domains: bool,
    /// Domains whose sign-ups are refused.
    pub blocked_domains: Vec<String>,
    /// Completed course code → code of the course to enroll in next.
    pub follow_up: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domains: BTreeMap::new(),
            profile_field: "department".into(),
            profile_orgs: BTreeMap::new(),
            tags: Vec::new(),
            courses: Vec::new(),
            due_in_days: 14,
            hold_unknown_domains: false,
            blocked_domains: Vec::new(),
            follow_up: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The settings from the host; a setting that is unset or malformed keeps its default (and a malformed
    /// one is logged, so the admin can fix it).
    pub fn load() -> Config {
        fn setting<T: DeserializeOwned>(key: &str, default: T) -> T {
            match config::try_get(key) {
                Ok(value) => value.unwrap_or(default),
                Err(e) => {
                    log::warn(format_args!("{e}; using the default"));
                    default
                }
            }
        }
        let d = Config::default();
        Config {
            domains: lowercase_keys(setting("domains", d.domains)),
            profile_field: setting("profile_field", d.profile_field),
            profile_orgs: setting("profile_orgs", d.profile_orgs),
            tags: setting("tags", d.tags),
            courses: setting("courses", d.courses),
            due_in_days: setting("due_in_days", d.due_in_days),
            hold_unknown_domains: setting("hold_unknown_domains", d.hold_unknown_domains),
            blocked_domains: setting("blocked_domains", d.blocked_domains),
            follow_up: setting("follow_up", d.follow_up),
        }
    }

    /// The organization keys (names or external ids) a user with this e-mail domain and profile may be
    /// placed by: what the host must be asked about before [`decide`] runs.
    pub fn org_keys(&self, domain: Option<&str>, field: Option<&FieldValue>) -> Vec<&str> {
        let by_domain = domain.and_then(|d| self.domains.get(d));
        let by_field = field.and_then(|v| self.profile_orgs.get(&v.to_string()));
        by_domain.into_iter().chain(by_field).map(String::as_str).collect()
    }

    fn due(&self) -> Option<u32> {
        (self.due_in_days > 0).then_some(self.due_in_days)
    }

    fn is_blocked(&self, domain: &str) -> bool {
        self.blocked_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

fn lowercase_keys(map: BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

/// Decides a sign-up from the settings, the organizations the settings may name (`orgs`, e.g. what
/// `directory::find_orgs` returned for [`Config::org_keys`]) and the academy's courses. Pure: it calls no
/// host function, so the same decision runs natively and inside the component.
pub fn decide(signup: &Signup, cfg: &Config, orgs: &[Org], courses: &[Course]) -> SignupOutcome {
    let domain = signup.email_domain().unwrap_or_default();
    if cfg.is_blocked(&domain) {
        return SignupOutcome::refuse(format!("Sign-ups with {domain} addresses are not accepted."));
    }
    let invited = signup.invited_to.is_some();
    let known = cfg.domains.contains_key(&domain);
    let outcome = if !known && !invited && cfg.hold_unknown_domains {
        SignupOutcome::hold(format!("{domain} is not one of the academy's e-mail domains"))
    } else {
        SignupOutcome::approve()
    };
    // An invitation already says where the user belongs.
    let domain = if invited { None } else { Some(domain.as_str()) };
    outcome.with_all(placement(domain, signup.field(&cfg.profile_field), cfg, orgs, courses))
}

/// The actions for one event, given the same data as [`decide`] (for a completion, `courses` must hold the
/// completed course and its follow-up).
pub fn actions_for(event: &Event, cfg: &Config, orgs: &[Org], courses: &[Course]) -> Vec<Action> {
    match event {
        Event::UserCreated(user) => placement_of(user, cfg, orgs, courses),
        Event::CourseCompleted(completion) => {
            let completed = courses.iter().find(|c| c.id == completion.course_id);
            let next_code = completed.and_then(|c| {
                cfg.follow_up
                    .iter()
                    .find(|(code, _)| code.eq_ignore_ascii_case(&c.code))
                    .map(|(_, next)| next)
            });
            next_code
                .and_then(|code| course_by_code(courses, code))
                .filter(|next| next.id != completion.course_id)
                .map(|next| Action::enroll(next.id.clone(), cfg.due()))
                .into_iter()
                .collect()
        }
        Event::UserChanged(_) => Vec::new(),
    }
}

/// Placement of an existing user, without the organizations and tags they already have.
fn placement_of(user: &User, cfg: &Config, orgs: &[Org], courses: &[Course]) -> Vec<Action> {
    let domain = user.email_domain();
    let mut actions = placement(domain.as_deref(), user.field(&cfg.profile_field), cfg, orgs, courses);
    actions.retain(|action| match action {
        Action::AddToOrg(org) => !user.org_ids.contains(org),
        Action::AddTag(tag) => !user.has_tag(tag),
        _ => true,
    });
    actions
}

/// Organizations by domain and by profile field, then tags, then course enrollments; each at most once.
fn placement(
    domain: Option<&str>,
    field: Option<&FieldValue>,
    cfg: &Config,
    orgs: &[Org],
    courses: &[Course],
) -> Vec<Action> {
    let mut placed = BTreeSet::new();
    let org_actions = cfg
        .org_keys(domain, field)
        .into_iter()
        .filter_map(|key| resolve_org(key, orgs))
        .filter(|org| placed.insert(org.id.clone()))
        .map(|org| Action::AddToOrg(org.id.clone()));
    let tag_actions = cfg.tags.iter().map(|tag| Action::AddTag(tag.clone()));
    let course_actions = cfg
        .courses
        .iter()
        .filter_map(|code| course_by_code(courses, code))
        .map(|course| Action::enroll(course.id.clone(), cfg.due()));
    org_actions.chain(tag_actions).chain(course_actions).collect()
}

/// The organization `key` names: by external id first, then by name, ignoring case.
fn resolve_org<'a>(key: &str, orgs: &'a [Org]) -> Option<&'a Org> {
    let by_external_id = orgs
        .iter()
        .find(|o| o.external_id.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(key)));
    by_external_id.or_else(|| orgs.iter().find(|o| o.name.to_lowercase() == key.to_lowercase()))
}

fn course_by_code<'a>(courses: &'a [Course], code: &str) -> Option<&'a Course> {
    courses.iter().find(|c| c.code.eq_ignore_ascii_case(code))
}

/// What the hooks fetch from the host before deciding: the organizations the settings name for the users
/// at hand (one `find-orgs` per distinct key) and the courses (one `list-courses`).
struct Lookups {
    orgs: Vec<Org>,
    courses: Vec<Course>,
}

impl Lookups {
    fn fetch<'a>(cfg: &Config, keys: impl IntoIterator<Item = &'a str>) -> Lookups {
        let keys: BTreeSet<&str> = keys.into_iter().collect();
        let mut orgs = Vec::new();
        for key in keys {
            let found = directory::find_orgs(key);
            if found.is_empty() {
                log::warn(format_args!("no organization named `{key}` (by name or external id)"));
            }
            orgs.extend(found);
        }
        // Courses are only needed when the settings name some.
        let courses = if cfg.courses.is_empty() && cfg.follow_up.is_empty() {
            Vec::new()
        } else {
            directory::courses()
        };
        for code in cfg.courses.iter().chain(cfg.follow_up.values()) {
            if course_by_code(&courses, code).is_none() {
                log::warn(format_args!("no course with code `{code}`"));
            }
        }
        Lookups { orgs, courses }
    }
}

/// The plugin as registered with the host.
pub struct DomainPlacement;

impl Enrollment for DomainPlacement {
    fn on_signup(signup: Signup) -> Result<SignupOutcome, String> {
        let cfg = Config::load();
        let domain = signup.email_domain();
        let keys = cfg.org_keys(domain.as_deref(), signup.field(&cfg.profile_field));
        let lookups = Lookups::fetch(&cfg, keys);
        let outcome = decide(&signup, &cfg, &lookups.orgs, &lookups.courses);
        log::info(format_args!("sign-up {}: {:?}", signup.email, outcome.decision));
        Ok(outcome)
    }

    /// Loads the settings and looks organizations and courses up once for the whole batch.
    fn on_events(events: Vec<Event>) -> Result<Vec<Vec<Action>>, String> {
        let cfg = Config::load();
        let domains: Vec<Option<String>> = events.iter().map(|e| e.user().email_domain()).collect();
        let keys = events
            .iter()
            .zip(&domains)
            .filter(|(e, _)| matches!(e, Event::UserCreated(_)))
            .flat_map(|(e, domain)| cfg.org_keys(domain.as_deref(), e.user().field(&cfg.profile_field)));
        let lookups = Lookups::fetch(&cfg, keys);
        Ok(events
            .iter()
            .map(|event| actions_for(event, &cfg, &lookups.orgs, &lookups.courses))
            .collect())
    }
}

aula_sdk::register!(enrollment: DomainPlacement);

#[cfg(test)]
mod tests;
