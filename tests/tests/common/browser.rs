//! A real browser for the portal tests: headless Chromium, driven over WebDriver through a ChromeDriver that
//! the test starts on a free port of its own (and ends when the [`Browser`] is dropped).
//!
//! Chromium sends every host name to 127.0.0.1 (`--host-resolver-rules`), so a tenant's address
//! (`acme.localhost:PORT`) and a custom domain (`learn.globex.test:PORT`) both reach the test's host, on the
//! explicit port of that host. Screenshots land in `target/screenshots/<test>-<step>.png`.
//!
//! Chromium and ChromeDriver are found through `$AULA_CHROMIUM` and `$AULA_CHROMEDRIVER`, else as `chromium`
//! and `chromedriver` on the PATH; `.ci/browser` installs them. A missing browser fails the test.

use super::{Backend, TestApp};
use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that names the Chromium binary.
pub const CHROMIUM_ENV: &str = "AULA_CHROMIUM";
/// The variable that names the ChromeDriver binary.
pub const CHROMEDRIVER_ENV: &str = "AULA_CHROMEDRIVER";

/// How long a page, an element or a navigation may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Where screenshots go: `target/screenshots` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("screenshots")
}

/// An executable named by `var`, else the first of `names` on the PATH.
fn locate(var: &str, names: &[&str]) -> Option<PathBuf> {
    let on_path = |name: &str| -> Option<PathBuf> {
        let candidate = Path::new(name);
        if candidate.components().count() > 1 {
            return candidate.is_file().then(|| candidate.to_path_buf());
        }
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        Some(set) => Some(
            on_path(&set).unwrap_or_else(|| panic!("{var}={set} names no executable; unset it or run .ci/browser")),
        ),
        None => names.iter().find_map(|n| on_path(n)),
    }
}

/// Chromium and ChromeDriver, or a test failure that says how to get them.
fn binaries() -> (PathBuf, PathBuf) {
    let chromium = locate(CHROMIUM_ENV, &["chromium", "chromium-browser"]);
    let driver = locate(CHROMEDRIVER_ENV, &["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => (c, d),
        (c, d) => panic!(
            "the browser tests need headless Chromium and ChromeDriver, but {} not found: run `.ci/browser` \
             (it installs Debian's chromium and chromium-driver), or set {CHROMIUM_ENV} and {CHROMEDRIVER_ENV}",
            match (c.is_none(), d.is_none()) {
                (true, true) => "chromium and chromedriver were",
                (true, false) => "chromium was",
                _ => "chromedriver was",
            }
        ),
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port for chromedriver")
        .port()
}

/// Start ChromeDriver on a free port, in a process group of its own, its output in `log_path`; wait until it
/// says it listens. Another port is tried when the one picked was taken in the meantime.
async fn spawn_driver(chromedriver: &Path, log_path: &Path) -> (Child, u16) {
    let log_text = || std::fs::read_to_string(log_path).unwrap_or_default();
    for attempt in 1..=3 {
        let port = free_port();
        let log = std::fs::File::create(log_path).expect("chromedriver's log file");
        let mut command = Command::new(chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log);
        // A process group of its own, so that dropping the browser ends Chromium with its driver.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; run .ci/browser", chromedriver.display()));
        let deadline = Instant::now() + WAIT;
        loop {
            if log_text().contains("started successfully") {
                return (driver, port);
            }
            if let Ok(Some(status)) = driver.try_wait() {
                let log = log_text();
                if attempt < 3 && (log.contains("bind") || log.contains("in use")) {
                    break;
                }
                panic!("chromedriver exited ({status}) before it listened on port {port}:\n{log}");
            }
            if Instant::now() > deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!(
                    "chromedriver did not listen on port {port} within {WAIT:?}:\n{}",
                    log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// One headless Chromium, with a ChromeDriver of its own, looking at one test's host.
pub struct Browser {
    client: Option<fantoccini::Client>,
    driver: Child,
    /// Chromium's profile directory and ChromeDriver's log, removed on drop.
    scratch: PathBuf,
    /// `<scenario>_<backend>`: the prefix of this test's screenshots.
    test: String,
    /// The port of the test's host.
    port: u16,
}

impl Browser {
    /// Start ChromeDriver and a headless Chromium for the scenario `scenario` running on `app`.
    pub async fn start(app: &TestApp, scenario: &str) -> Browser {
        let backend = match app.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        Browser::launch(&format!("{scenario}_{backend}"), app.port()).await
    }

    /// Start ChromeDriver and a headless Chromium; `test` names the screenshots, `port` is the host's.
    pub async fn launch(test: &str, port: u16) -> Browser {
        let (chromium, chromedriver) = binaries();
        let scratch = std::env::temp_dir().join(format!("aula-browser-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(scratch.join("profile")).expect("a scratch directory for the browser");
        let log_path = scratch.join("chromedriver.log");
        let (driver, driver_port) = spawn_driver(&chromedriver, &log_path).await;
        let mut browser = Browser {
            client: None,
            driver,
            scratch,
            test: test.to_owned(),
            port,
        };

        let profile = browser.scratch.join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    // Every name, custom domains included, reaches the test's host on 127.0.0.1.
                    "--host-resolver-rules=MAP * 127.0.0.1",
                    format!("--user-data-dir={}", profile.display()),
                    // Nothing of the browser's own: no updates, sync, first-run pages or upgrades to HTTPS.
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-default-apps",
                    "--disable-extensions",
                    "--disable-sync",
                    "--disable-breakpad",
                    "--disable-crash-reporter",
                    "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
                    "--lang=en-US",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("capabilities are an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start {}: {e}\n{}",
                    chromium.display(),
                    browser.driver_log()
                )
            });
        browser.client = Some(client);
        browser
    }

    fn driver_log(&self) -> String {
        let log = std::fs::read_to_string(self.scratch.join("chromedriver.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("chromedriver's log ends:\n{}", tail.join("\n"))
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &fantoccini::Client {
        self.client.as_ref().expect("the browser is running")
    }

    /// `http://{host}:{port}{path}` on the test's host; `host` is a tenant's slug (`acme` becomes
    /// `acme.localhost`) or a name with a dot (`learn.globex.test`, `localhost` for the platform).
    pub fn url(&self, host: &str, path: &str) -> String {
        let host = if host.contains('.') || host == "localhost" {
            host.to_owned()
        } else {
            format!("{host}.localhost")
        };
        format!("http://{host}:{}{path}", self.port)
    }

    /// Go to `path` on `host` (see [`Browser::url`]) and wait for the page to load.
    pub async fn open(&self, host: &str, path: &str) {
        let url = self.url(host, path);
        self.goto(&url).await;
    }

    /// Go to a URL and wait for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: opening {url}: {e}", self.test));
        self.wait_loaded().await;
    }

    /// The address of the page shown.
    pub async fn current_url(&self) -> String {
        self.client()
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| panic!("{}: the current URL: {e}", self.test))
    }

    /// The path of the page shown (`/learn`).
    pub async fn path(&self) -> String {
        self.client()
            .current_url()
            .await
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|e| panic!("{}: the current URL: {e}", self.test))
    }

    /// Run JavaScript in the page (`arguments[i]` are `args`) and return its result.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{script}", self.test))
    }

    async fn wait_loaded(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let state = self.client().execute("return document.readyState", vec![]).await;
            if matches!(&state, Ok(Value::String(s)) if s == "complete") {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: {} did not finish loading within {WAIT:?} ({state:?})",
                    self.test,
                    self.current_url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until an element matches `selector`; panics (with what the page shows) after `timeout`.
    pub async fn wait_for(&self, selector: &str, timeout: Duration) -> fantoccini::elements::Element {
        match self
            .client()
            .wait()
            .at_most(timeout)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(selector))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "{}: no `{selector}` on {} after {timeout:?} ({e}); the page says:\n{}",
                self.test,
                self.current_url().await,
                self.page_text().await
            ),
        }
    }

    /// The element `selector` matches, waiting for it up to [`WAIT`].
    pub async fn find(&self, selector: &str) -> fantoccini::elements::Element {
        self.wait_for(selector, WAIT).await
    }

    /// Whether anything on the page matches `selector` now.
    pub async fn exists(&self, selector: &str) -> bool {
        self.count(selector).await > 0
    }

    /// How many elements match `selector` now.
    pub async fn count(&self, selector: &str) -> usize {
        let n = self
            .js(
                "return document.querySelectorAll(arguments[0]).length",
                vec![json!(selector)],
            )
            .await;
        n.as_u64().unwrap_or(0) as usize
    }

    /// Type `value` into the form field `selector` (emptied first).
    pub async fn fill(&self, selector: &str, value: &str) {
        let field = self.find(selector).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("{}: clearing `{selector}`: {e}", self.test));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("{}: typing into `{selector}`: {e}", self.test));
    }

    /// Click the element `selector`.
    pub async fn click(&self, selector: &str) {
        self.find(selector)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("{}: clicking `{selector}`: {e}", self.test));
    }

    /// Click the element `selector` (a submit button, a link) and wait until the next page has loaded.
    pub async fn click_and_wait(&self, selector: &str) {
        let element = self.find(selector).await;
        // A mark on this page's window: gone once another page has replaced it.
        self.js("window.__aulaBefore = true; return null", vec![]).await;
        let before = self.current_url().await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("{}: clicking `{selector}` on {before}: {e}", self.test));
        let deadline = Instant::now() + WAIT;
        loop {
            let replaced = self
                .client()
                .execute(
                    "return window.__aulaBefore === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await;
            if matches!(replaced, Ok(Value::Bool(true))) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: clicking `{selector}` on {before} led to no new page within {WAIT:?}; the page says:\n{}",
                    self.test,
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the element `selector` (waiting for it), trimmed.
    pub async fn text(&self, selector: &str) -> String {
        self.find(selector)
            .await
            .text()
            .await
            .map(|t| t.trim().to_owned())
            .unwrap_or_else(|e| panic!("{}: text of `{selector}`: {e}", self.test))
    }

    /// The text of every element `selector` matches now, trimmed.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let v = self
            .js(
                "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText.trim())",
                vec![json!(selector)],
            )
            .await;
        strings(&v)
    }

    /// The attribute `name` of every element `selector` matches now (those without it left out).
    pub async fn attrs(&self, selector: &str, name: &str) -> Vec<String> {
        let v = self
            .js(
                "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.getAttribute(arguments[1])).filter(a => a !== null)",
                vec![json!(selector), json!(name)],
            )
            .await;
        strings(&v)
    }

    /// The attribute `name` of the element `selector` (waiting for it).
    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.find(selector)
            .await
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("{}: attribute {name} of `{selector}`: {e}", self.test))
    }

    /// The computed value of the CSS property `property` of the element `selector` (waiting for it), as
    /// `getComputedStyle` gives it (`rgb(217, 72, 15)`).
    pub async fn style(&self, selector: &str, property: &str) -> String {
        self.find(selector).await;
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); \
                 return e ? window.getComputedStyle(e).getPropertyValue(arguments[1]) : null",
                vec![json!(selector), json!(property)],
            )
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("{}: no `{selector}` for its {property}", self.test))
            .trim()
            .to_owned()
    }

    /// The color a custom property (`--accent`) of the page's root stands for, computed as the browser
    /// computes colors (`rgb(11, 114, 133)`), or "" when the property is not set.
    pub async fn css_var_color(&self, property: &str) -> String {
        let v = self
            .js(
                "if (!getComputedStyle(document.documentElement).getPropertyValue(arguments[0]).trim()) return ''; \
                 const probe = document.createElement('div'); \
                 probe.style.backgroundColor = 'var(' + arguments[0] + ')'; \
                 document.body.appendChild(probe); \
                 const color = getComputedStyle(probe).backgroundColor; \
                 probe.remove(); \
                 return color",
                vec![json!(property)],
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The text of the whole page (the start of it), for assertion messages.
    pub async fn page_text(&self) -> String {
        let text = self
            .client()
            .execute(
                "return document.body ? document.body.innerText : document.documentElement.outerHTML",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        text.chars().take(1500).collect()
    }

    /// Save a screenshot of the window as `target/screenshots/<test>-<step>.png`; returns its path.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        let png = self
            .client()
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: screenshot {step}: {e}", self.test));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{}-{step}.png", self.test));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Delete the cookies of the site shown (sign out without the portal's help).
    pub async fn forget_cookies(&self) {
        self.client()
            .delete_all_cookies()
            .await
            .unwrap_or_else(|e| panic!("{}: deleting cookies: {e}", self.test));
    }

    /// End the browser session, then ChromeDriver.
    pub async fn quit(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: ChromeDriver and the Chromium it started (a test that failed did not quit).
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--"])
                .arg(format!("-{}", self.driver.id()))
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}
