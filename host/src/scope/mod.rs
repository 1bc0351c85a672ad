//! Roles, permissions and the scope resolver: the one place that decides what a caller may see and change.
//!
//! A role is a set of [`Permission`]s granted at a scope: the whole tenant, an organization subtree, or a
//! segment. A caller's [`Reach`] for a permission is the union of the scopes of every grant whose role has it.
//! Handlers ask for a reach and turn it into SQL filters or checks; they never look at grants themselves.

use crate::db::{Backend, Sql};
use crate::error::ApiError;
pub mod segment;

pub use segment::SegmentDef;
use serde::{Deserialize, Serialize};

macro_rules! permissions {
    ($($variant:ident = $name:literal : $doc:literal,)*) => {
        /// A permission a role can hold. The list is documented in docs/PERMISSIONS.md and by
        /// `GET /api/v1/permissions`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Permission { $(#[doc = $doc] $variant,)* }

        impl Permission {
            /// Every permission.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];
            /// The stable name.
            pub fn as_str(self) -> &'static str { match self { $(Permission::$variant => $name,)* } }
            /// What it allows.
            pub fn description(self) -> &'static str { match self { $(Permission::$variant => $doc,)* } }
            /// Parse a stable name.
            pub fn parse(name: &str) -> Option<Permission> {
                match name { $($name => Some(Permission::$variant),)* _ => None }
            }
        }
    };
}

permissions! {
    TenantManage = "tenant.manage": "Change academy-wide settings and profile field definitions (tenant scope only).",
    UsersRead = "users.read": "See users and their profiles within scope.",
    UsersWrite = "users.write": "Create, change, suspend and delete users within scope; tag them.",
    OrgsRead = "orgs.read": "See organizations within scope, with member lists and counts.",
    OrgsWrite = "orgs.write": "Create, rename, move and delete organizations within scope.",
    MembersWrite = "members.write": "Add users in scope to organizations in scope, and remove them.",
    TagsRead = "tags.read": "See the tenant's tags.",
    TagsWrite = "tags.write": "Create, rename and delete tags (tenant scope only).",
    SegmentsRead = "segments.read": "See segments and their members within scope.",
    SegmentsWrite = "segments.write": "Create, change and delete segments (tenant scope only).",
    RolesRead = "roles.read": "See roles and grants within scope.",
    RolesWrite = "roles.write": "Create, change and delete custom roles (tenant scope only).",
    GrantsWrite = "grants.write": "Grant and revoke roles within scope, never beyond the granter's own rights.",
    AuditRead = "audit.read": "Read the tenant's audit log (tenant scope only).",
    TokensManage = "tokens.manage": "List and revoke any user's API tokens (tenant scope only).",
    CoursesRead = "courses.read": "See all courses, including drafts.",
    CoursesWrite = "courses.write": "Create and change courses.",
    EnrollmentsWrite = "enrollments.write": "Enroll and unenroll users within scope; approve requests.",
    ProgressRead = "progress.read": "See progress and completion of users within scope.",
    GradebookWrite = "gradebook.write": "Review assessments and grades of users within scope.",
    CertificatesManage = "certificates.manage": "Issue and revoke certificates of users within scope.",
    ReportsRead = "reports.read": "Run reports over users within scope.",
    RulesManage = "rules.manage": "Create, change, preview and apply enrollment rules; read the automation log (tenant scope only).",
    PluginsManage = "plugins.manage": "Upload, grant, configure, activate and delete plugins; read their logs and faults (tenant scope only).",
}

/// A built-in role.
pub struct BuiltinRole {
    /// Stable key.
    pub key: &'static str,
    /// Display name.
    pub name: &'static str,
    /// What it holds.
    pub permissions: &'static [Permission],
}

use Permission as P;

/// The built-in roles every tenant has.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        key: "tenant_admin",
        name: "Academy admin",
        permissions: Permission::ALL,
    },
    BuiltinRole {
        key: "org_manager",
        name: "Organization manager",
        permissions: &[
            P::UsersRead,
            P::UsersWrite,
            P::OrgsRead,
            P::OrgsWrite,
            P::MembersWrite,
            P::TagsRead,
            P::SegmentsRead,
            P::RolesRead,
            P::EnrollmentsWrite,
            P::ProgressRead,
            P::GradebookWrite,
            P::ReportsRead,
        ],
    },
    BuiltinRole {
        key: "segment_manager",
        name: "Segment manager",
        permissions: &[
            P::UsersRead,
            P::TagsRead,
            P::SegmentsRead,
            P::ProgressRead,
            P::GradebookWrite,
            P::CertificatesManage,
            P::ReportsRead,
        ],
    },
    BuiltinRole {
        key: "segment_reporter",
        name: "Segment reporter",
        permissions: &[P::UsersRead, P::ProgressRead, P::ReportsRead],
    },
    BuiltinRole {
        key: "instructor",
        name: "Instructor",
        permissions: &[P::CoursesRead, P::CoursesWrite, P::ProgressRead, P::GradebookWrite],
    },
    BuiltinRole {
        key: "learner",
        name: "Learner",
        permissions: &[],
    },
];

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ScopeRef {
    /// The whole tenant.
    Tenant,
    /// An organization and everything below it.
    Org {
        /// The organization id.
        #[schemars(regex(pattern = crate::fields::pattern::ID))]
        id: String,
    },
    /// The users a segment matches, evaluated live.
    Segment {
        /// The segment id.
        #[schemars(regex(pattern = crate::fields::pattern::ID))]
        id: String,
    },
}

/// A grant as the resolver sees it.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Permissions of the granted role.
    pub permissions: Vec<Permission>,
    /// Where it applies.
    pub scope: GrantScope,
}

/// A resolved grant scope.
#[derive(Debug, Clone)]
pub enum GrantScope {
    /// The whole tenant.
    Tenant,
    /// An organization subtree, by its materialized path.
    Org {
        /// Organization id.
        id: String,
        /// Materialized path (`/root/…/id/`).
        path: String,
    },
    /// A segment.
    Segment {
        /// Segment id.
        id: String,
        /// Its filter.
        def: SegmentDef,
    },
}

/// What a caller reaches with one permission.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reach {
    /// The whole tenant.
    pub all: bool,
    /// Organization subtrees (materialized paths).
    pub org_paths: Vec<String>,
    /// Org ids of those subtrees (same order).
    pub org_ids: Vec<String>,
    /// Segments (live filters).
    pub segments: Vec<(String, SegmentDef)>,
}

impl Reach {
    /// The whole academy.
    pub fn everything() -> Reach {
        Reach {
            all: true,
            ..Reach::default()
        }
    }

    /// Reaches nothing at all.
    pub fn is_none(&self) -> bool {
        !self.all && self.org_paths.is_empty() && self.segments.is_empty()
    }

    /// Does it cover the organization with this path?
    pub fn covers_org_path(&self, path: &str) -> bool {
        self.all || self.org_paths.iter().any(|p| path.starts_with(p.as_str()))
    }

    /// Does it cover this scope as a whole (for granting)?
    pub fn covers_scope(&self, scope: &GrantScope) -> bool {
        match scope {
            GrantScope::Tenant => self.all,
            GrantScope::Org { path, .. } => self.covers_org_path(path),
            GrantScope::Segment { id, .. } => self.all || self.segments.iter().any(|(s, _)| s == id),
        }
    }

    /// Append ` AND (<users reached>)` for the users table aliased `u`.
    pub fn push_user_filter(&self, sql: &mut Sql, backend: Backend) {
        if self.all {
            return;
        }
        if self.is_none() {
            sql.push(" AND 1 = 0");
            return;
        }
        sql.push(" AND (");
        let mut first = true;
        if !self.org_paths.is_empty() {
            sql.push(
                "EXISTS (SELECT 1 FROM memberships sm JOIN orgs so ON so.id = sm.org_id \
                 WHERE sm.tenant_id = $1 AND sm.user_id = u.id AND (",
            );
            for (i, path) in self.org_paths.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push("so.path LIKE ").push_bind(format!("{path}%"));
            }
            sql.push("))");
            first = false;
        }
        for (_, def) in &self.segments {
            if !first {
                sql.push(" OR ");
            }
            first = false;
            sql.push("(");
            def.push_condition(sql, backend);
            sql.push(")");
        }
        sql.push(")");
    }

    /// Append ` AND (<orgs reached>)` for the orgs table aliased `o`. Segment grants reach no organizations.
    pub fn push_org_filter(&self, sql: &mut Sql) {
        if self.all {
            return;
        }
        if self.org_paths.is_empty() {
            sql.push(" AND 1 = 0");
            return;
        }
        sql.push(" AND (");
        for (i, path) in self.org_paths.iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push("o.path LIKE ").push_bind(format!("{path}%"));
        }
        sql.push(")");
    }
}

/// The grants of one caller, and the questions asked of them.
#[derive(Debug, Clone, Default)]
pub struct Grants(pub Vec<Grant>);

impl Grants {
    /// What this caller reaches with `perm`.
    pub fn reach(&self, perm: Permission) -> Reach {
        let mut reach = Reach::default();
        for grant in self.0.iter().filter(|g| g.permissions.contains(&perm)) {
            match &grant.scope {
                GrantScope::Tenant => reach.all = true,
                GrantScope::Org { id, path } => {
                    reach.org_paths.push(path.clone());
                    reach.org_ids.push(id.clone());
                }
                GrantScope::Segment { id, def } => reach.segments.push((id.clone(), def.clone())),
            }
        }
        reach
    }

    /// The reach for `perm`, or 403 when it reaches nothing.
    pub fn require(&self, perm: Permission) -> Result<Reach, ApiError> {
        let reach = self.reach(perm);
        if reach.is_none() {
            return Err(ApiError::forbidden(format!(
                "this needs the {} permission",
                perm.as_str()
            )));
        }
        Ok(reach)
    }

    /// 403 unless `perm` is held for the whole tenant.
    pub fn require_tenant_wide(&self, perm: Permission) -> Result<(), ApiError> {
        if self.reach(perm).all {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} permission for the whole academy",
                perm.as_str()
            )))
        }
    }

    /// Does the caller hold every permission in `perms` over `scope`? (No privilege escalation by granting.)
    pub fn holds_all_over(&self, perms: &[Permission], scope: &GrantScope) -> Option<Permission> {
        perms.iter().copied().find(|p| !self.reach(*p).covers_scope(scope))
    }

    /// Permission names held anywhere, for `GET /me`.
    pub fn permission_names(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Permission::ALL
            .iter()
            .filter(|p| !self.reach(**p).is_none())
            .map(|p| p.as_str())
            .collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org_grant(perms: &[Permission], path: &str) -> Grant {
        Grant {
            permissions: perms.to_vec(),
            scope: GrantScope::Org {
                id: "x".into(),
                path: path.into(),
            },
        }
    }

    #[test]
    fn org_reach_covers_subtree_only() {
        let g = Grants(vec![org_grant(&[P::UsersRead], "/a/b/")]);
        let r = g.reach(P::UsersRead);
        assert!(r.covers_org_path("/a/b/"));
        assert!(r.covers_org_path("/a/b/c/"));
        assert!(!r.covers_org_path("/a/"));
        assert!(!r.covers_org_path("/a/bb/"));
        assert!(g.reach(P::UsersWrite).is_none());
    }

    #[test]
    fn grants_add_up() {
        let g = Grants(vec![
            org_grant(&[P::UsersRead], "/a/"),
            org_grant(&[P::UsersRead, P::UsersWrite], "/z/"),
        ]);
        assert_eq!(g.reach(P::UsersRead).org_paths.len(), 2);
        assert_eq!(g.reach(P::UsersWrite).org_paths, vec!["/z/".to_owned()]);
    }

    #[test]
    fn cannot_grant_beyond_own_rights() {
        let g = Grants(vec![org_grant(&[P::UsersRead, P::GrantsWrite], "/a/")]);
        let inside = GrantScope::Org {
            id: "c".into(),
            path: "/a/c/".into(),
        };
        assert_eq!(g.holds_all_over(&[P::UsersRead], &inside), None);
        assert_eq!(
            g.holds_all_over(&[P::UsersRead, P::UsersWrite], &inside),
            Some(P::UsersWrite)
        );
        assert_eq!(
            g.holds_all_over(&[P::UsersRead], &GrantScope::Tenant),
            Some(P::UsersRead)
        );
    }

    #[test]
    fn permission_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
        }
    }
}

#[cfg(test)]
mod docs_tests {
    use super::*;

    /// docs/PERMISSIONS.md is the documented permission list; it must name every permission and built-in role.
    #[test]
    fn permissions_are_documented() {
        let doc = include_str!("../../../docs/PERMISSIONS.md");
        for p in Permission::ALL {
            assert!(
                doc.contains(&format!("| `{}` | {} |", p.as_str(), p.description())),
                "{} is not documented",
                p.as_str()
            );
        }
        for r in BUILTIN_ROLES {
            assert!(
                doc.contains(&format!("| `{}` |", r.key)),
                "role {} is not documented",
                r.key
            );
        }
    }
}
