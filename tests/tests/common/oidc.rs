//! A real OpenID provider for the single sign-on tests: panva's `oidc-provider` under Node, started from
//! `tests/oidc/provider.mjs` on a free port (`.ci/run` installs it with `npm ci`), and a person signing in on
//! its own login page over plain HTTP.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running provider; stopped when dropped.
pub struct OpenIdProvider {
    _child: tokio::process::Child,
    /// Its issuer, `http://127.0.0.1:<port>`.
    pub issuer: String,
    accounts: PathBuf,
    http: reqwest::Client,
}

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

impl OpenIdProvider {
    /// Start a provider that knows these clients (`[{client_id, client_secret, redirect_uris}]`) and accounts
    /// (`{login: {claims}}`). Fails the test when Node or the package is missing: the suite installs them.
    pub async fn start(clients: Value, accounts: Value) -> OpenIdProvider {
        let dir = oidc_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the test OpenID provider is not installed: run `npm ci` in {} (.ci/run does)",
            dir.display()
        );
        let accounts_file = std::env::temp_dir().join(format!("aula-oidc-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&accounts_file, accounts.to_string()).expect("write the provider's accounts");
        let mut child = tokio::process::Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("AULA_OIDC_CLIENTS", clients.to_string())
            .env("AULA_OIDC_ACCOUNTS_FILE", &accounts_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start node (the test OpenID provider needs Node.js)");
        let stdout = child.stdout.take().expect("the provider's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read the provider's output") {
                if let Some(issuer) = line.strip_prefix("READY ") {
                    return issuer.trim().to_owned();
                }
            }
            panic!("the test OpenID provider stopped before it was ready");
        })
        .await
        .expect("the test OpenID provider did not start within 30 s");
        // Keep reading its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        OpenIdProvider {
            _child: child,
            issuer,
            accounts: accounts_file,
            http,
        }
    }

    /// Change what the provider says about its accounts (from the next sign-in on).
    pub fn set_accounts(&self, accounts: Value) {
        std::fs::write(&self.accounts, accounts.to_string()).expect("write the provider's accounts");
    }

    /// Sign in as `login` on the provider's own pages, starting at the authorization URL the academy sent
    /// the browser to: the login form, then the consent form. Answers the URL the provider sends the browser
    /// back to (the academy's callback with `code` and `state`).
    pub async fn sign_in(&self, authorize_url: &str, login: &str, callback_prefix: &str) -> String {
        let mut jar = Jar::default();
        let mut url = authorize_url.to_owned();
        let mut posted: Option<Vec<(String, String)>> = None;
        for _ in 0..20 {
            let request = match posted.take() {
                Some(form) => self.http.post(&url).form(&form),
                None => self.http.get(&url),
            };
            let response = request
                .header(reqwest::header::COOKIE, jar.header_for(&url))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            jar.take(&response);
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .expect("a redirect names where to")
                    .to_owned();
                let next = reqwest::Url::parse(&url)
                    .and_then(|base| base.join(&location))
                    .expect("a usable redirect")
                    .to_string();
                if next.starts_with(callback_prefix) {
                    return next;
                }
                url = next;
                continue;
            }
            let page = response.text().await.unwrap_or_default();
            assert!(status.is_success(), "{url} answered {status}: {page}");
            let action = form_action(&page).unwrap_or_else(|| panic!("no form on the provider's page {url}:\n{page}"));
            posted = Some(if page.contains(r#"name="prompt" value="login""#) {
                vec![
                    ("prompt".into(), "login".into()),
                    ("login".into(), login.into()),
                    ("password".into(), "any password".into()),
                ]
            } else {
                vec![("prompt".into(), "consent".into())]
            });
            url = action;
        }
        panic!("the provider did not send the browser back within 20 steps");
    }
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.accounts);
    }
}

/// The `action` of the first form on a page.
fn form_action(page: &str) -> Option<String> {
    let form = &page[page.find("<form")?..];
    let start = form.find("action=\"")? + "action=\"".len();
    let end = form[start..].find('"')?;
    Some(form[start..start + end].replace("&amp;", "&"))
}

/// Cookies by name and path, sent back to paths below their own (the provider scopes its interaction
/// cookies to `/interaction/<id>` and `/auth/<id>`).
#[derive(Default)]
struct Jar(Vec<(String, String, String)>);

impl Jar {
    fn take(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let path = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                .map(|(_, v)| v.to_owned())
                .unwrap_or_else(|| "/".into());
            self.0.retain(|(n, _, p)| !(n == name && *p == path));
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned(), path));
            }
        }
    }

    fn header_for(&self, url: &str) -> String {
        let path = reqwest::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let mut matching: Vec<&(String, String, String)> =
            self.0.iter().filter(|(_, _, p)| path.starts_with(p.as_str())).collect();
        // The most specific path first, as browsers send them.
        matching.sort_by_key(|(_, _, p)| std::cmp::Reverse(p.len()));
        matching
            .iter()
            .map(|(n, v, _)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
