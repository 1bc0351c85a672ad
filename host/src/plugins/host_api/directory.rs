//! `directory`: users, organizations, tags, segments and courses of the academy, read-only, as the call's
//! view may see them.

use super::users::{ORG_SELECT, course_from_row};
use super::{HostState, MAX_LIST, View, page_limit};
use crate::db::Sql;
use crate::plugins::bindings::{directory, types};
use crate::plugins::manifest::Capability;
use crate::scope::segment::SegmentDef;
use sqlx::Row;

impl directory::Host for HostState {
    async fn get_user(&mut self, id: String) -> wasmtime::Result<Option<types::User>> {
        self.require(Capability::Directory)?;
        self.charge(id.len())?;
        let mut sql = self.user_select();
        sql.push(" AND u.id = ").push_bind(id);
        Ok(self.users(sql).await?.pop())
    }

    async fn find_user_by_email(&mut self, email: String) -> wasmtime::Result<Option<types::User>> {
        self.require(Capability::Directory)?;
        self.charge(email.len())?;
        let mut sql = self.user_select();
        sql.push(" AND lower(u.email) = ").push_bind(email.to_lowercase());
        Ok(self.users(sql).await?.pop())
    }

    async fn list_users(&mut self, query: directory::UserQuery) -> wasmtime::Result<directory::UserPage> {
        self.require(Capability::Directory)?;
        self.charge_value(&query)?;
        let limit = page_limit(query.limit);
        let mut sql = self.user_select();
        if let Some(org) = &query.org_id {
            let Some(path) = self.visible_org_path(org).await? else {
                return Ok(directory::UserPage {
                    users: Vec::new(),
                    next: None,
                });
            };
            sql.push(
                " AND EXISTS (SELECT 1 FROM memberships fm JOIN orgs fo ON fo.id = fm.org_id \
                 WHERE fm.tenant_id = $1 AND fm.user_id = u.id AND fo.path LIKE ",
            )
            .push_bind(format!("{path}%"))
            .push(")");
        }
        if let Some(tag) = &query.tag {
            sql.push(
                " AND EXISTS (SELECT 1 FROM user_tags ft JOIN tags t ON t.id = ft.tag_id \
                 WHERE ft.tenant_id = $1 AND ft.user_id = u.id AND lower(t.name) = ",
            )
            .push_bind(tag.to_lowercase())
            .push(")");
        }
        if let Some(segment) = &query.segment_id {
            let Some(def) = self.visible_segment(segment).await? else {
                return Ok(directory::UserPage {
                    users: Vec::new(),
                    next: None,
                });
            };
            sql.push(" AND (");
            def.push_condition(&mut sql, self.db.backend());
            sql.push(")");
        }
        if let Some(search) = query.search.as_deref().filter(|s| !s.is_empty()) {
            let like = format!("%{}%", search.to_lowercase());
            sql.push(" AND (lower(u.email) LIKE ")
                .push_bind(like.clone())
                .push(" OR lower(u.name) LIKE ")
                .push_bind(like)
                .push(")");
        }
        if let Some(cursor) = &query.cursor {
            sql.push(" AND u.id > ").push_bind(cursor.as_str());
        }
        sql.push(" ORDER BY u.id LIMIT ").push_bind(limit + 1);
        let mut users = self.users(sql).await?;
        let next = if users.len() as i64 > limit {
            users.truncate(limit as usize);
            users.last().map(|u| u.id.clone())
        } else {
            None
        };
        Ok(directory::UserPage { users, next })
    }

    async fn get_org(&mut self, id: String) -> wasmtime::Result<Option<types::Org>> {
        self.require(Capability::Directory)?;
        self.charge(id.len())?;
        let mut sql = Sql::tenant(ORG_SELECT);
        sql.push(" AND o.id = ").push_bind(id);
        self.view.push_orgs(&mut sql);
        Ok(self.orgs(sql).await?.pop())
    }

    async fn list_orgs(&mut self, parent: Option<String>) -> wasmtime::Result<Vec<types::Org>> {
        self.require(Capability::Directory)?;
        self.charge(parent.as_ref().map_or(0, String::len))?;
        let mut sql = Sql::tenant(ORG_SELECT);
        match (parent, &self.view) {
            (Some(parent), _) => {
                sql.push(" AND o.parent_id = ").push_bind(parent);
            }
            // A report run for a manager starts at the top of what they reach: the roots of their subtrees.
            (None, View::Reach(reach)) if !reach.all => {
                let roots: Vec<&String> = reach
                    .org_ids
                    .iter()
                    .zip(&reach.org_paths)
                    .filter(|(_, path)| {
                        !reach
                            .org_paths
                            .iter()
                            .any(|p| p != *path && path.starts_with(p.as_str()))
                    })
                    .map(|(id, _)| id)
                    .collect();
                if roots.is_empty() {
                    sql.push(" AND 1 = 0");
                } else {
                    sql.push(" AND o.id IN (");
                    for (i, id) in roots.into_iter().enumerate() {
                        if i > 0 {
                            sql.push(", ");
                        }
                        sql.push_bind(id.clone());
                    }
                    sql.push(")");
                }
            }
            (None, _) => {
                sql.push(" AND o.parent_id IS NULL");
            }
        }
        self.view.push_orgs(&mut sql);
        sql.push(" ORDER BY lower(o.name), o.id LIMIT ").push_bind(MAX_LIST);
        self.orgs(sql).await
    }

    async fn find_orgs(&mut self, key: String) -> wasmtime::Result<Vec<types::Org>> {
        self.require(Capability::Directory)?;
        self.charge(key.len())?;
        let mut sql = Sql::tenant(ORG_SELECT);
        let key = key.to_lowercase();
        sql.push(" AND (lower(o.name) = ")
            .push_bind(key.as_str())
            .push(" OR lower(o.external_id) = ")
            .push_bind(key.as_str())
            .push(")");
        self.view.push_orgs(&mut sql);
        sql.push(" ORDER BY o.path LIMIT ").push_bind(MAX_LIST);
        self.orgs(sql).await
    }

    async fn list_tags(&mut self) -> wasmtime::Result<Vec<types::Tag>> {
        self.require(Capability::Directory)?;
        let mut tx = self.read().await?;
        let rows = tx
            .query("SELECT id, name FROM tags WHERE tenant_id = $1 ORDER BY lower(name) LIMIT 10000")
            .fetch_all(tx.conn())
            .await;
        let tags = match rows {
            Ok(rows) => rows
                .iter()
                .map(|r| {
                    Ok(types::Tag {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>(),
            Err(e) => Err(e),
        };
        let tags = tags.map_err(|e| self.db_error(e))?;
        self.charge_value(&tags)?;
        Ok(tags)
    }

    async fn list_segments(&mut self) -> wasmtime::Result<Vec<types::Segment>> {
        self.require(Capability::Directory)?;
        let mut sql = Sql::tenant("SELECT s.id, s.name FROM segments s WHERE s.tenant_id = $1");
        self.view.push_segments(&mut sql);
        sql.push(" ORDER BY lower(s.name) LIMIT 10000");
        let mut tx = self.read().await?;
        let segments = match tx.fetch_all_sql(&sql).await {
            Ok(rows) => rows
                .iter()
                .map(|r| {
                    Ok(types::Segment {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>(),
            Err(e) => Err(e),
        };
        let segments = segments.map_err(|e| self.db_error(e))?;
        self.charge_value(&segments)?;
        Ok(segments)
    }

    async fn in_segment(&mut self, user_id: String, segment_id: String) -> wasmtime::Result<bool> {
        self.require(Capability::Directory)?;
        self.charge(user_id.len() + segment_id.len())?;
        let Some(def) = self.visible_segment(&segment_id).await? else {
            return Ok(false);
        };
        let mut sql = Sql::tenant("SELECT 1 FROM users u WHERE u.tenant_id = $1 AND u.id = ");
        sql.push_bind(user_id);
        self.view.push_users(&mut sql, self.db.backend());
        sql.push(" AND (");
        def.push_condition(&mut sql, self.db.backend());
        sql.push(")");
        let mut tx = self.read().await?;
        match tx.fetch_optional_sql(&sql).await {
            Ok(row) => Ok(row.is_some()),
            Err(e) => Err(self.db_error(e)),
        }
    }

    async fn get_course(&mut self, id: String) -> wasmtime::Result<Option<types::Course>> {
        self.require(Capability::Directory)?;
        self.charge(id.len())?;
        let mut tx = self.read().await?;
        let row = tx
            .query("SELECT id, code, title, language FROM courses WHERE tenant_id = $1 AND id = $2")
            .bind(id)
            .fetch_optional(tx.conn())
            .await;
        let course = match row {
            Ok(row) => row.as_ref().map(course_from_row).transpose(),
            Err(e) => Err(e),
        };
        let course = course.map_err(|e| self.db_error(e))?;
        self.charge_value(&course)?;
        Ok(course)
    }

    async fn list_courses(&mut self) -> wasmtime::Result<Vec<types::Course>> {
        self.require(Capability::Directory)?;
        let mut tx = self.read().await?;
        let rows = tx
            .query("SELECT id, code, title, language FROM courses WHERE tenant_id = $1 ORDER BY lower(code) LIMIT $2")
            .bind(MAX_LIST)
            .fetch_all(tx.conn())
            .await;
        let courses = match rows {
            Ok(rows) => rows.iter().map(course_from_row).collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e),
        };
        let courses = courses.map_err(|e| self.db_error(e))?;
        self.charge_value(&courses)?;
        Ok(courses)
    }
}

impl HostState {
    async fn visible_segment(&mut self, id: &str) -> wasmtime::Result<Option<SegmentDef>> {
        let mut sql = Sql::tenant("SELECT s.definition FROM segments s WHERE s.tenant_id = $1 AND s.id = ");
        sql.push_bind(id);
        self.view.push_segments(&mut sql);
        let mut tx = self.read().await?;
        match tx.fetch_optional_sql(&sql).await {
            Ok(row) => Ok(row
                .and_then(|r| r.try_get::<String, _>(0).ok())
                .map(|text| SegmentDef::parse_stored(&text))),
            Err(e) => Err(self.db_error(e)),
        }
    }
}
