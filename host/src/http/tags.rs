use super::api::Api;
pub fn routes(_api: &mut Api) {}
