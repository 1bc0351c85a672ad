//! What the demo seeded, read back through the API: ids by e-mail, org name, tag name, … so a test can say
//! `acme.user("nora.north@acme.test")` instead of carrying ids around. And [`Needles`]: strings that must
//! never appear in an answer (another tenant's ids and names, or users outside a manager's scope).

use super::Client;
use serde_json::Value;
use std::collections::BTreeMap;

/// One tenant's data as its admin sees it.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// The tenant's id and name.
    pub tenant_id: String,
    pub tenant_name: String,
    /// Users (full objects), orgs, tags, segments, roles, grants, profile fields, tokens and audit entries.
    pub users: Vec<Value>,
    pub orgs: Vec<Value>,
    pub tags: Vec<Value>,
    pub segments: Vec<Value>,
    pub roles: Vec<Value>,
    pub grants: Vec<Value>,
    pub fields: Vec<Value>,
    pub tokens: Vec<Value>,
    pub audit: Vec<Value>,
}

fn ids(list: &[Value]) -> impl Iterator<Item = String> + '_ {
    list.iter().filter_map(|v| v["id"].as_str().map(str::to_owned))
}

fn find<'a>(list: &'a [Value], key: &str, value: &str, what: &str) -> &'a Value {
    list.iter()
        .find(|v| v[key].as_str() == Some(value))
        .unwrap_or_else(|| panic!("the demo has no {what} with {key} {value:?}"))
}

impl Directory {
    /// Read everything a tenant admin can list. Creates one API token for the admin first, so that tokens
    /// have an id to aim at too.
    pub async fn load(admin: &Client) -> Directory {
        let (_, _) = admin.create_token("directory").await;
        let get = |path: &'static str| async move {
            let (status, body) = admin.get(path).await;
            assert_eq!(status, 200, "GET {path} as admin: {body}");
            body
        };
        let tenant = get("/api/v1/tenant").await;
        let items = |v: Value| v["items"].as_array().cloned().unwrap_or_default();
        let list = |v: Value| v.as_array().cloned().unwrap_or_default();
        Directory {
            tenant_id: tenant["id"].as_str().unwrap_or_default().to_owned(),
            tenant_name: tenant["name"].as_str().unwrap_or_default().to_owned(),
            users: admin.get_all_pages("/api/v1/users?limit=500&expand=orgs,tags").await.0,
            orgs: admin.get_all_pages("/api/v1/orgs?limit=500").await.0,
            tags: list(get("/api/v1/tags").await),
            segments: list(get("/api/v1/segments").await),
            roles: list(get("/api/v1/roles").await),
            grants: list(get("/api/v1/grants").await),
            fields: list(get("/api/v1/profile-fields").await),
            tokens: list(get("/api/v1/tokens?all=true").await),
            audit: items(get("/api/v1/audit?limit=500").await),
        }
    }

    /// A user's id by e-mail.
    pub fn user(&self, email: &str) -> String {
        find(&self.users, "email", email, "user")["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An organization's id by name.
    pub fn org(&self, name: &str) -> String {
        find(&self.orgs, "name", name, "organization")["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An organization by name.
    pub fn org_named(&self, name: &str) -> &Value {
        find(&self.orgs, "name", name, "organization")
    }

    /// A tag's id by name.
    pub fn tag(&self, name: &str) -> String {
        find(&self.tags, "name", name, "tag")["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A segment's id by name.
    pub fn segment(&self, name: &str) -> String {
        find(&self.segments, "name", name, "segment")["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A role's id by key.
    pub fn role(&self, key: &str) -> String {
        find(&self.roles, "key", key, "role")["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A profile field's id by key.
    pub fn field(&self, key: &str) -> String {
        find(&self.fields, "key", key, "profile field")["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The id of a grant of this user (the first one that is not the learner role).
    pub fn grant_of(&self, email: &str) -> String {
        let user = self.user(email);
        self.grants
            .iter()
            .find(|g| g["user_id"].as_str() == Some(&user) && g["role"].as_str() != Some("learner"))
            .and_then(|g| g["id"].as_str())
            .unwrap_or_else(|| panic!("{email} holds no role besides learner"))
            .to_owned()
    }

    /// Users who are members of the named organization or any organization below it.
    pub fn users_below(&self, org_name: &str) -> Vec<&Value> {
        let root = self.org(org_name);
        let below = self.org_ids_below(&root);
        self.users
            .iter()
            .filter(|u| {
                u["orgs"]
                    .as_array()
                    .is_some_and(|os| os.iter().any(|o| below.iter().any(|b| o["id"] == *b.as_str())))
            })
            .collect()
    }

    /// The ids of an organization and every organization below it.
    pub fn org_ids_below(&self, root: &str) -> Vec<String> {
        let mut out = vec![root.to_owned()];
        let mut i = 0;
        while i < out.len() {
            let parent = out[i].clone();
            out.extend(
                self.orgs
                    .iter()
                    .filter(|o| o["parent_id"].as_str() == Some(&parent))
                    .filter_map(|o| o["id"].as_str().map(str::to_owned)),
            );
            i += 1;
        }
        out
    }

    /// Every id of this tenant's data, with its kind (for leak messages).
    pub fn all_ids(&self) -> BTreeMap<String, &'static str> {
        let mut out = BTreeMap::new();
        let mut add = |kind: &'static str, list: &[Value]| {
            for id in ids(list) {
                out.insert(id, kind);
            }
        };
        add("user", &self.users);
        add("org", &self.orgs);
        add("tag", &self.tags);
        add("segment", &self.segments);
        add("role", &self.roles);
        add("grant", &self.grants);
        add("profile field", &self.fields);
        add("token", &self.tokens);
        add("audit entry", &self.audit);
        out.insert(self.tenant_id.clone(), "tenant");
        out
    }

    /// Everything that identifies this tenant's data: every id, e-mail, user name, org name, tag name,
    /// segment name and profile field label, and the tenant's name.
    pub fn needles(&self) -> Needles {
        let mut n = Needles::default();
        for (id, kind) in self.all_ids() {
            n.add(&id, &format!("{kind} id"));
        }
        for u in &self.users {
            n.add_text(&u["email"], "e-mail");
            n.add_text(&u["name"], "user name");
        }
        for o in &self.orgs {
            n.add_text(&o["name"], "org name");
        }
        for t in &self.tags {
            n.add_text(&t["name"], "tag name");
        }
        for s in &self.segments {
            n.add_text(&s["name"], "segment name");
        }
        for f in &self.fields {
            n.add_text(&f["label"], "profile field label");
        }
        n.add(&self.tenant_name, "tenant name");
        n
    }
}

/// Strings that must not appear in an answer. Long ones are searched anywhere in the body; short ones
/// (a name like "SRE" could occur inside random token text) only as a whole JSON string.
#[derive(Debug, Clone, Default)]
pub struct Needles {
    items: Vec<(String, String)>,
}

impl Needles {
    /// Add a needle with a description.
    pub fn add(&mut self, needle: &str, what: &str) {
        if !needle.is_empty() {
            self.items.push((needle.to_owned(), what.to_owned()));
        }
    }

    fn add_text(&mut self, v: &Value, what: &str) {
        if let Some(s) = v.as_str() {
            self.add(s, what);
        }
    }

    /// How many needles there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The first needle found in `text`, with its description.
    pub fn found_in(&self, text: &str) -> Option<(&str, &str)> {
        self.items.iter().find_map(|(needle, what)| {
            let hit = if needle.chars().count() >= 8 {
                text.contains(needle.as_str())
            } else {
                text.contains(&serde_json::to_string(needle).unwrap_or_default())
            };
            hit.then_some((needle.as_str(), what.as_str()))
        })
    }

    /// Panic when any needle occurs in `text`.
    pub fn assert_absent(&self, context: &str, text: &str) {
        if let Some((needle, what)) = self.found_in(text) {
            panic!("{context}: the answer shows {what} {needle:?}:\n{text}");
        }
    }
}
