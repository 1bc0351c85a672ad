//! The one place that decides where a host call goes: to the component's imports on a wasm target, to the
//! installed [`FakeHost`](crate::testing::FakeHost) in native builds (so plugin logic can be unit-tested
//! with `cargo test`). The public wrappers (`log`, `config`, `kv`, `directory`, `records`) call only this.

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    pub(crate) use crate::__bindings::host::aula::plugin::config::{get as config_get, secret as config_secret};
    pub(crate) use crate::__bindings::host::aula::plugin::directory::{
        find_orgs, find_user_by_email, get_course, get_org, get_user, in_segment, list_courses, list_orgs,
        list_segments, list_tags, list_users,
    };
    pub(crate) use crate::__bindings::host::aula::plugin::kv::{
        delete as kv_delete, get as kv_get, keys as kv_keys, set as kv_set,
    };
    pub(crate) use crate::__bindings::host::aula::plugin::log::write as log_write;
    pub(crate) use crate::__bindings::host::aula::plugin::records::list_enrollments;
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use crate::directory::{UserPage, UserQuery};
    use crate::log::Level;
    use crate::records::{EnrollmentPage, EnrollmentQuery};
    use crate::testing::with_installed as host;
    use crate::{Course, Org, Segment, Tag, User};

    pub(crate) fn log_write(level: Level, message: &str) {
        host(|h| h.log_write(level, message))
    }

    pub(crate) fn config_get(key: &str) -> Option<String> {
        host(|h| h.config_get(key))
    }

    pub(crate) fn config_secret(key: &str) -> Option<String> {
        host(|h| h.config_secret(key))
    }

    pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
        host(|h| h.kv_get(key))
    }

    pub(crate) fn kv_set(key: &str, value: &[u8]) -> Result<(), String> {
        host(|h| h.kv_set(key, value))
    }

    pub(crate) fn kv_delete(key: &str) {
        host(|h| h.kv_delete(key))
    }

    pub(crate) fn kv_keys(prefix: &str, limit: u32) -> Vec<String> {
        host(|h| h.kv_keys(prefix, limit))
    }

    pub(crate) fn get_user(id: &str) -> Option<User> {
        host(|h| h.get_user(id))
    }

    pub(crate) fn find_user_by_email(email: &str) -> Option<User> {
        host(|h| h.find_user_by_email(email))
    }

    pub(crate) fn list_users(query: &UserQuery) -> UserPage {
        host(|h| h.list_users(query))
    }

    pub(crate) fn get_org(id: &str) -> Option<Org> {
        host(|h| h.get_org(id))
    }

    pub(crate) fn list_orgs(parent: Option<&str>) -> Vec<Org> {
        host(|h| h.list_orgs(parent))
    }

    pub(crate) fn find_orgs(key: &str) -> Vec<Org> {
        host(|h| h.find_orgs(key))
    }

    pub(crate) fn list_tags() -> Vec<Tag> {
        host(|h| h.list_tags())
    }

    pub(crate) fn list_segments() -> Vec<Segment> {
        host(|h| h.list_segments())
    }

    pub(crate) fn in_segment(user_id: &str, segment_id: &str) -> bool {
        host(|h| h.in_segment(user_id, segment_id))
    }

    pub(crate) fn get_course(id: &str) -> Option<Course> {
        host(|h| h.get_course(id))
    }

    pub(crate) fn list_courses() -> Vec<Course> {
        host(|h| h.list_courses())
    }

    pub(crate) fn list_enrollments(query: &EnrollmentQuery) -> EnrollmentPage {
        host(|h| h.list_enrollments(query))
    }
}
