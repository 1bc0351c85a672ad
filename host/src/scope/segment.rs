//! Segment definitions: saved filters over organizations, tags, status and profile fields, evaluated live
//! as SQL over the users table aliased `u`.

use crate::db::{Backend, Sql};
use serde::{Deserialize, Serialize};

/// A saved filter. Every list that is set must match (AND); inside `orgs` and `tags_any` one match is enough.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentDef {
    /// Members of any of these organizations or their sub-organizations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    pub orgs: Vec<String>,
    /// Users carrying every one of these tags (tag ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    pub tags_all: Vec<String>,
    /// Users carrying at least one of these tags (tag ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    pub tags_any: Vec<String>,
    /// Users carrying none of these tags (tag ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = crate::fields::pattern::ID)))]
    pub tags_none: Vec<String>,
    /// Users in one of these statuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<String>,
    /// Conditions on custom profile fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldCondition>,
    /// Set when a stored definition could not be read: it then matches nobody, so grants scoped to it fail
    /// closed instead of reaching everyone.
    #[serde(skip)]
    #[schemars(skip)]
    pub unreadable: bool,
}

/// A condition on one profile field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldCondition {
    /// The profile field key.
    pub key: String,
    /// `eq`, `ne`, `in`, `set` or `unset`.
    pub op: FieldOp,
    /// The values compared with (one for `eq`/`ne`, any number for `in`, none for `set`/`unset`).
    #[serde(default)]
    pub values: Vec<String>,
}

/// A comparison on a profile field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldOp {
    /// Equal to the one value.
    Eq,
    /// Not equal to the one value (or unset).
    Ne,
    /// Equal to one of the values.
    In,
    /// Has a value.
    Set,
    /// Has no value.
    Unset,
}

impl SegmentDef {
    /// Read a definition as stored. One that cannot be read (written by a newer version, or damaged)
    /// matches nobody, and the problem is logged.
    pub fn parse_stored(text: &str) -> SegmentDef {
        serde_json::from_str(text).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a stored segment definition cannot be read; it matches nobody");
            SegmentDef {
                unreadable: true,
                ..SegmentDef::default()
            }
        })
    }

    /// Append the condition (without a leading AND). Org and tag ids are compared within the tenant (`$1`).
    pub fn push_condition(&self, sql: &mut Sql, backend: Backend) {
        if self.unreadable {
            sql.push("1 = 0");
            return;
        }
        sql.push("1 = 1");
        if !self.orgs.is_empty() {
            sql.push(
                " AND EXISTS (SELECT 1 FROM memberships gm JOIN orgs go ON go.id = gm.org_id \
                 JOIN orgs gr ON gr.tenant_id = $1 AND go.path LIKE gr.path || '%' \
                 WHERE gm.tenant_id = $1 AND gm.user_id = u.id AND gr.id IN (",
            );
            push_list(sql, &self.orgs);
            sql.push("))");
        }
        for tag in &self.tags_all {
            sql.push(" AND EXISTS (SELECT 1 FROM user_tags gt WHERE gt.tenant_id = $1 AND gt.user_id = u.id AND gt.tag_id = ")
                .push_bind(tag)
                .push(")");
        }
        if !self.tags_any.is_empty() {
            sql.push(" AND EXISTS (SELECT 1 FROM user_tags gt WHERE gt.tenant_id = $1 AND gt.user_id = u.id AND gt.tag_id IN (");
            push_list(sql, &self.tags_any);
            sql.push("))");
        }
        if !self.tags_none.is_empty() {
            sql.push(
                " AND NOT EXISTS (SELECT 1 FROM user_tags gt WHERE gt.tenant_id = $1 AND gt.user_id = u.id AND gt.tag_id IN (",
            );
            push_list(sql, &self.tags_none);
            sql.push("))");
        }
        if !self.statuses.is_empty() {
            sql.push(" AND u.status IN (");
            push_list(sql, &self.statuses);
            sql.push(")");
        }
        for cond in &self.fields {
            let param = sql.bind(cond.key.as_str());
            let expr = backend.json_text("u.profile", &param);
            let value = format!("coalesce({expr}, '')");
            sql.push(" AND ");
            match cond.op {
                FieldOp::Eq | FieldOp::In => {
                    sql.push(&value).push(" IN (");
                    push_list(sql, &cond.values);
                    sql.push(")");
                }
                FieldOp::Ne => {
                    sql.push(&value).push(" NOT IN (");
                    push_list(sql, &cond.values);
                    sql.push(")");
                }
                FieldOp::Set => {
                    sql.push(&value).push(" <> ''");
                }
                FieldOp::Unset => {
                    sql.push(&value).push(" = ''");
                }
            }
        }
    }

    /// Every id this definition refers to, by kind, for validation within the tenant.
    pub fn tag_ids(&self) -> impl Iterator<Item = &String> {
        self.tags_all.iter().chain(&self.tags_any).chain(&self.tags_none)
    }
}

fn push_list(sql: &mut Sql, values: &[String]) {
    if values.is_empty() {
        sql.push("NULL");
        return;
    }
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push_bind(v.as_str());
    }
}
