//! An enrollment plugin that counts sign-ups in its key-value store, to test grants and their revocation
//! (`kv` and `config`).
//!
//! `on_signup` reads the string setting `greeting` (default `hello`) and the key `count` (0 when absent),
//! stores `count + 1` and approves with the action `add-tag("<greeting>-<count + 1>")`: the first sign-up
//! gets `hello-1`, the next `hello-2`. A failing store fails the call with the host's message.

use aula_sdk::enrollment::{Action, Enrollment, Signup, SignupOutcome};
use aula_sdk::{config, kv, log};

/// The plugin as registered with the host.
pub struct KvUser;

impl Enrollment for KvUser {
    fn on_signup(_signup: Signup) -> Result<SignupOutcome, String> {
        let greeting: String = config::get("greeting").unwrap_or_else(|| "hello".into());
        let count: u64 = kv::get_string("count").and_then(|c| c.parse().ok()).unwrap_or(0) + 1;
        kv::set("count", count.to_string())?;
        log::info(format_args!("count is now {count}"));
        Ok(SignupOutcome::approve().with(Action::AddTag(format!("{greeting}-{count}"))))
    }
}

aula_sdk::register!(enrollment: KvUser);

#[cfg(test)]
mod tests {
    use aula_sdk::testing::FakeHost;

    use super::*;

    fn signup() -> Signup {
        Signup {
            email: "ann@acme.test".into(),
            name: "Ann".into(),
            locale: None,
            profile: Vec::new(),
            invited_to: None,
        }
    }

    #[test]
    fn counts_sign_ups() {
        let host = FakeHost::new().config("greeting", "hi").install();
        assert_eq!(
            KvUser::on_signup(signup()).unwrap().actions,
            [Action::AddTag("hi-1".into())]
        );
        assert_eq!(
            KvUser::on_signup(signup()).unwrap().actions,
            [Action::AddTag("hi-2".into())]
        );
        assert_eq!(host.kv_string("count").as_deref(), Some("2"));
    }
}
