//! Report filters: the parameters a report takes, checked against the academy and the viewer's reach before
//! anything runs, and turned into SQL conditions.
//!
//! A bad value answers 422 `invalid_filter` naming the parameter. An organization or segment the viewer
//! cannot see answers exactly like one that does not exist, so a filter cannot be used to probe for them.

use super::Viewer;
use crate::db::{Backend, Sql, TenantTx};
use crate::error::ApiError;
use crate::scope::segment::SegmentDef;
use crate::scope::{GrantScope, Permission, Reach};
use sqlx::Row;
use std::collections::BTreeMap;

/// A filter a report may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Users in an organization or below it (its id).
    Org,
    /// Users a segment matches (its id).
    Segment,
    /// Users carrying a tag (its id or name).
    Tag,
    /// One course (its id or code).
    Course,
    /// From this day or time on (`YYYY-MM-DD` or RFC 3339).
    From,
    /// Up to and including this day or time.
    To,
    /// Activity per `day` or `week`.
    Interval,
}

impl Filter {
    /// Every filter.
    pub const ALL: [Filter; 7] = [
        Filter::Org,
        Filter::Segment,
        Filter::Tag,
        Filter::Course,
        Filter::From,
        Filter::To,
        Filter::Interval,
    ];

    /// The parameter's name.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Org => "org",
            Filter::Segment => "segment",
            Filter::Tag => "tag",
            Filter::Course => "course",
            Filter::From => "from",
            Filter::To => "to",
            Filter::Interval => "interval",
        }
    }

    /// The filter a parameter names.
    pub fn parse(name: &str) -> Option<Filter> {
        Filter::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Periods of the activity report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Calendar days (UTC).
    Day,
    /// Weeks from Monday (UTC).
    Week,
}

impl Interval {
    /// Its length in milliseconds.
    pub fn ms(self) -> i64 {
        match self {
            Interval::Day => DAY_MS,
            Interval::Week => 7 * DAY_MS,
        }
    }
}

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// An organization filter: its subtree.
#[derive(Debug, Clone)]
pub struct OrgFilter {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Materialized path.
    pub path: String,
}

/// Checked filters, with their canonical values.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Organization subtree.
    pub org: Option<OrgFilter>,
    /// Segment: (id, name, definition).
    pub segment: Option<(String, String, SegmentDef)>,
    /// Tag: (id, name).
    pub tag: Option<(String, String)>,
    /// Course: (id, code).
    pub course: Option<(String, String)>,
    /// From (inclusive), unix milliseconds.
    pub from: Option<i64>,
    /// To (exclusive), unix milliseconds: a day given as `YYYY-MM-DD` counts whole.
    pub to: Option<i64>,
    /// Activity periods.
    pub interval: Option<Interval>,
    /// The parameters as stored with a preset and echoed with a run: ids for org, segment, tag and course,
    /// the day or time as given for from and to.
    pub params: BTreeMap<String, String>,
}

fn refuse(field: &str, name: &str, message: impl Into<String>) -> ApiError {
    ApiError::rule("invalid_filter", Some(&format!("{field}{name}")), message)
}

/// Check `raw` parameters against the filters a report takes (`accepted`). Blank values count as not given.
/// `field` prefixes the parameter names in errors (`params.` for a preset's body).
pub async fn check(
    tx: &mut TenantTx,
    viewer: &Viewer,
    reach: &Reach,
    accepted: &[Filter],
    raw: &BTreeMap<String, String>,
    field: &str,
) -> Result<Filters, ApiError> {
    let mut out = Filters::default();
    for (name, value) in raw {
        let value = value.trim();
        let Some(filter) = Filter::parse(name).filter(|f| accepted.contains(f)) else {
            let takes: Vec<&str> = accepted.iter().map(|f| f.name()).collect();
            return Err(refuse(
                field,
                name,
                if takes.is_empty() {
                    "this report takes no filters".to_owned()
                } else {
                    format!("this report takes only these filters: {}", takes.join(", "))
                },
            ));
        };
        if value.is_empty() {
            continue;
        }
        if value.chars().count() > 200 || value.chars().any(char::is_control) {
            return Err(refuse(field, name, "is not a value this filter takes"));
        }
        match filter {
            Filter::Org => {
                let org = tx
                    .query("SELECT id, name, path FROM orgs WHERE tenant_id = $1 AND id = $2")
                    .bind(value.to_owned())
                    .fetch_optional(tx.conn())
                    .await?
                    .map(|r| -> Result<OrgFilter, sqlx::Error> {
                        Ok(OrgFilter {
                            id: r.try_get(0)?,
                            name: r.try_get(1)?,
                            path: r.try_get(2)?,
                        })
                    })
                    .transpose()?
                    .filter(|o| reach.covers_org_path(&o.path))
                    .ok_or_else(|| refuse(field, name, "no such organization within your scope"))?;
                out.params.insert(name.clone(), org.id.clone());
                out.org = Some(org);
            }
            Filter::Segment => {
                // Filtering by a segment needs to be able to read it, or a grant scoped to it (as the users
                // list does).
                let readable = viewer.grants.reach(Permission::SegmentsRead).all
                    || viewer
                        .grants
                        .0
                        .iter()
                        .any(|g| matches!(&g.scope, GrantScope::Segment { id, .. } if id == value));
                let row = if readable {
                    tx.query("SELECT id, name, definition FROM segments WHERE tenant_id = $1 AND id = $2")
                        .bind(value.to_owned())
                        .fetch_optional(tx.conn())
                        .await?
                } else {
                    None
                };
                let row = row.ok_or_else(|| refuse(field, name, "no such segment within your scope"))?;
                let id: String = row.try_get(0)?;
                let def = SegmentDef::parse_stored(&row.try_get::<String, _>(2)?);
                out.params.insert(name.clone(), id.clone());
                out.segment = Some((id, row.try_get(1)?, def));
            }
            Filter::Tag => {
                let row = tx
                    .query("SELECT id, name FROM tags WHERE tenant_id = $1 AND (id = $2 OR lower(name) = lower($2))")
                    .bind(value.to_owned())
                    .fetch_optional(tx.conn())
                    .await?
                    .ok_or_else(|| refuse(field, name, "no such tag"))?;
                let id: String = row.try_get(0)?;
                out.params.insert(name.clone(), id.clone());
                out.tag = Some((id, row.try_get(1)?));
            }
            Filter::Course => {
                // An id, or a code (codes are unique per academy, case-insensitively).
                let rows = tx
                    .query("SELECT id, code FROM courses WHERE tenant_id = $1 AND (id = $2 OR lower(code) = lower($2))")
                    .bind(value.to_owned())
                    .fetch_all(tx.conn())
                    .await?;
                let row = rows
                    .iter()
                    .find(|r| r.try_get::<String, _>(0).is_ok_and(|id| id == value))
                    .or(rows.first())
                    .ok_or_else(|| refuse(field, name, "no such course"))?;
                let id: String = row.try_get(0)?;
                out.params.insert(name.clone(), id.clone());
                out.course = Some((id, row.try_get(1)?));
            }
            Filter::From => {
                out.from = Some(moment(value, false).ok_or_else(|| refuse(field, name, MOMENT))?);
                out.params.insert(name.clone(), value.to_owned());
            }
            Filter::To => {
                out.to = Some(moment(value, true).ok_or_else(|| refuse(field, name, MOMENT))?);
                out.params.insert(name.clone(), value.to_owned());
            }
            Filter::Interval => {
                out.interval = Some(match value {
                    "day" => Interval::Day,
                    "week" => Interval::Week,
                    _ => return Err(refuse(field, name, "must be day or week")),
                });
                out.params.insert(name.clone(), value.to_owned());
            }
        }
    }
    if let (Some(from), Some(to)) = (out.from, out.to)
        && from >= to
    {
        return Err(refuse(field, "to", "must be later than from"));
    }
    if accepted.contains(&Filter::Interval) {
        super::builtin::activity_window(&out, crate::db::now_ms()).map_err(|m| refuse(field, "from", m))?;
    }
    Ok(out)
}

const MOMENT: &str = "must be a day (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)";

/// A day (`YYYY-MM-DD`, its start; with `end`, the start of the next day, so the day counts whole) or an
/// RFC 3339 time (with `end`, one millisecond after it, so the bound is inclusive) as unix milliseconds.
pub fn moment(value: &str, end: bool) -> Option<i64> {
    const DAY: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(day) = time::Date::parse(value, DAY) {
        let start = day.midnight().assume_utc().unix_timestamp() * 1000;
        return Some(if end { start + DAY_MS } else { start });
    }
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()?;
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    Some(if end { ms + 1 } else { ms })
}

/// `YYYY-MM-DD` of unix milliseconds (UTC).
pub fn day_of(ms: i64) -> String {
    crate::db::rfc3339(ms)[..10].to_owned()
}

impl Filters {
    /// Is there a condition on users beyond `reach`?
    fn narrows_users(&self) -> bool {
        self.org.is_some() || self.segment.is_some() || self.tag.is_some()
    }

    /// Append ` AND …` for the users table aliased `u`: the viewer's reach and the org, segment and tag
    /// filters.
    pub fn push_users(&self, sql: &mut Sql, reach: &Reach, backend: Backend) {
        reach.push_user_filter(sql, backend);
        if let Some(org) = &self.org {
            sql.push(
                " AND EXISTS (SELECT 1 FROM memberships fm JOIN orgs fo ON fo.id = fm.org_id \
                 WHERE fm.tenant_id = $1 AND fm.user_id = u.id AND fo.path LIKE ",
            )
            .push_bind(format!("{}%", org.path))
            .push(")");
        }
        if let Some((_, _, def)) = &self.segment {
            sql.push(" AND (");
            def.push_condition(sql, backend);
            sql.push(")");
        }
        if let Some((tag, _)) = &self.tag {
            sql.push(" AND EXISTS (SELECT 1 FROM user_tags ft WHERE ft.tenant_id = $1 AND ft.user_id = u.id AND ft.tag_id = ")
                .push_bind(tag.as_str())
                .push(")");
        }
    }

    /// Append ` AND <column> IN (<users within reach and filters>)`, or nothing when every user of the academy
    /// counts (the whole academy in reach, no user filter).
    pub fn push_user_ids(&self, sql: &mut Sql, column: &str, reach: &Reach, backend: Backend) {
        if reach.all && !self.narrows_users() {
            return;
        }
        sql.push(&format!(
            " AND {column} IN (SELECT u.id FROM users u WHERE u.tenant_id = $1"
        ));
        self.push_users(sql, reach, backend);
        sql.push(")");
    }

    /// Append ` AND <column> >= from AND <column> < to` for the bounds given.
    pub fn push_period(&self, sql: &mut Sql, column: &str) {
        if let Some(from) = self.from {
            sql.push(&format!(" AND {column} >= ")).push_bind(from);
        }
        if let Some(to) = self.to {
            sql.push(&format!(" AND {column} < ")).push_bind(to);
        }
    }

    /// Append ` AND <column> = course` when a course is given.
    pub fn push_course(&self, sql: &mut Sql, column: &str) {
        if let Some((course, _)) = &self.course {
            sql.push(&format!(" AND {column} = ")).push_bind(course.as_str());
        }
    }

    /// The filters as a plugin receives them: ids for org and segment, the tag's name and the course's code
    /// (as the `directory` interface speaks), from and to as given.
    pub fn plugin_params(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(org) = &self.org {
            out.push(("org".into(), org.id.clone()));
        }
        if let Some((id, _, _)) = &self.segment {
            out.push(("segment".into(), id.clone()));
        }
        if let Some((_, name)) = &self.tag {
            out.push(("tag".into(), name.clone()));
        }
        if let Some((_, code)) = &self.course {
            out.push(("course".into(), code.clone()));
        }
        for key in ["from", "to"] {
            if let Some(v) = self.params.get(key) {
                out.push((key.into(), v.clone()));
            }
        }
        out
    }

    /// The filters in words, for the HTML page and mail: `Organization: Sales EMEA`, …
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(org) = &self.org {
            out.push(("Organization", org.name.clone()));
        }
        if let Some((_, name, _)) = &self.segment {
            out.push(("Segment", name.clone()));
        }
        if let Some((_, name)) = &self.tag {
            out.push(("Tag", name.clone()));
        }
        if let Some((_, code)) = &self.course {
            out.push(("Course", code.clone()));
        }
        if let Some(v) = self.params.get("from") {
            out.push(("From", v.clone()));
        }
        if let Some(v) = self.params.get("to") {
            out.push(("To", v.clone()));
        }
        if let Some(v) = self.params.get("interval") {
            out.push(("Interval", v.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_count_whole_and_times_inclusively() {
        let start = moment("2026-03-01", false).unwrap();
        assert_eq!(day_of(start), "2026-03-01");
        assert_eq!(moment("2026-03-01", true).unwrap(), start + DAY_MS);
        assert_eq!(moment("2026-03-01T00:00:00Z", false).unwrap(), start);
        assert_eq!(moment("2026-03-01T00:00:00Z", true).unwrap(), start + 1);
        assert_eq!(moment("2026-03-01T01:00:00+01:00", false).unwrap(), start);
        assert!(moment("2026-02-30", false).is_none());
        assert!(moment("yesterday", false).is_none());
    }
}
