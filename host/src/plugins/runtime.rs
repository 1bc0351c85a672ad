//! Running plugins: one linker per world and capability set, one `InstancePre` per active plugin version,
//! and every call in a fresh store under the limits of its kind.
//!
//! WASI is linked with nothing ambient: no environment variables, no arguments, no sockets, no files
//! except the plugin's own directory when the `files` capability is granted; stdout and stderr go to the
//! plugin's log. A call that traps, runs out of time or memory, pulls too much data through host calls or
//! answers with too much output fails alone: the fault is recorded against the version, and the store
//! (with its instance) is dropped.

use super::bindings::{branding, enrollment, notifications, reports};
use super::engine::PluginEngine;
use super::files;
use super::host_api::{HostState, PluginSettingsView, Stop, View};
use super::inspect::Inspection;
use super::manifest::{CapSet, Capability, Kind, Manifest};
use super::meter::{Meter, MeteredClock, TurnTaking, Turns};
use super::output::{LogLine, LogSink, encoded_size};
use crate::config::plugins::{Limits, PluginSettings};
use crate::db::TenantDb;
use crate::fair::{Busy, FairShare};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, UpdateDeadline};

type SharedLinker = Arc<Linker<HostState>>;
type BrandingHooks = branding::exports::aula::plugin::branding_hooks::Guest;

/// Hook inputs, one case per hook of every kind.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "hook", content = "input")]
pub enum HookCall {
    /// Branding: overrides for one page.
    Brand(branding::exports::aula::plugin::branding_hooks::PageContext),
    /// Enrollment: decide a sign-up.
    OnSignup(enrollment::exports::aula::plugin::enrollment_hooks::Signup),
    /// Enrollment: actions for user events.
    OnEvents(Vec<enrollment::exports::aula::plugin::enrollment_hooks::Event>),
    /// Notifications: change the drafts of one event.
    OnNotice {
        /// The event.
        notice: notifications::exports::aula::plugin::notification_hooks::Notice,
        /// The host's drafts.
        drafts: Vec<notifications::exports::aula::plugin::notification_hooks::Message>,
    },
    /// Notifications: a schedule tick (RFC 3339).
    OnTick(String),
    /// Reports: the reports offered.
    ListReports,
    /// Reports: one page of rows.
    RunReport {
        /// The report key.
        key: String,
        /// Parameters.
        #[serde(default)]
        params: Vec<(String, String)>,
        /// From the previous page.
        #[serde(default)]
        cursor: Option<String>,
    },
}

impl HookCall {
    /// The hook's WIT name.
    pub fn name(&self) -> &'static str {
        match self {
            HookCall::Brand(_) => "brand",
            HookCall::OnSignup(_) => "on-signup",
            HookCall::OnEvents(_) => "on-events",
            HookCall::OnNotice { .. } => "on-notice",
            HookCall::OnTick(_) => "on-tick",
            HookCall::ListReports => "list-reports",
            HookCall::RunReport { .. } => "run-report",
        }
    }

    /// The kind of plugin that has this hook.
    pub fn kind(&self) -> Kind {
        match self {
            HookCall::Brand(_) => Kind::Branding,
            HookCall::OnSignup(_) | HookCall::OnEvents(_) => Kind::Enrollment,
            HookCall::OnNotice { .. } | HookCall::OnTick(_) => Kind::Notifications,
            HookCall::ListReports | HookCall::RunReport { .. } => Kind::Reports,
        }
    }

    /// Read a hook's input from JSON (as `aula plugin test --input` takes it).
    pub fn from_json(hook: &str, input: serde_json::Value) -> Result<HookCall, String> {
        let value = match hook {
            "list-reports" => serde_json::json!({ "hook": hook }),
            _ => serde_json::json!({ "hook": hook, "input": input }),
        };
        serde_json::from_value(value).map_err(|e| format!("input for {hook}: {e}"))
    }
}

/// Hook outputs, one case per hook.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum HookOutput {
    /// Theme overrides.
    Brand(branding::exports::aula::plugin::branding_hooks::ThemeOverrides),
    /// A sign-up decision.
    OnSignup(enrollment::exports::aula::plugin::enrollment_hooks::SignupOutcome),
    /// Actions per event.
    OnEvents(Vec<Vec<enrollment::exports::aula::plugin::enrollment_hooks::Action>>),
    /// What to do with the drafts.
    OnNotice(notifications::exports::aula::plugin::notification_hooks::Outcome),
    /// Messages to send.
    OnTick(Vec<notifications::exports::aula::plugin::notification_hooks::Message>),
    /// Reports offered.
    ListReports(Vec<reports::exports::aula::plugin::report_hooks::Report>),
    /// One page of rows.
    RunReport(reports::exports::aula::plugin::report_hooks::Rows),
}

/// How a plugin call went wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// It used up its compute budget (fuel: instructions, host calls and sleeps).
    Cpu,
    /// It ran past its wall-time limit.
    Timeout,
    /// It asked for more memory than its limit.
    Memory,
    /// It trapped (a panic, `unreachable`, stack overflow, a bad memory access).
    Trap,
    /// Its output was too large or invalid.
    Output,
    /// It pulled more data through host calls than its limit.
    HostData,
    /// It called an interface that is not granted.
    NotGranted,
    /// Its files went past the academy's quota, or it made a symbolic link.
    Files,
}

impl FaultKind {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            FaultKind::Cpu => "cpu",
            FaultKind::Timeout => "timeout",
            FaultKind::Memory => "memory",
            FaultKind::Trap => "trap",
            FaultKind::Output => "output",
            FaultKind::HostData => "host_data",
            FaultKind::NotGranted => "not_granted",
            FaultKind::Files => "files",
        }
    }
}

/// Why a hook gave no answer. The caller applies the hook's failure policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookError {
    /// The plugin misbehaved; the fault was recorded.
    Fault {
        /// What kind of fault.
        kind: FaultKind,
        /// Details.
        message: String,
        /// Whether it counts toward disabling the plugin: every fault but a timeout. The wall clock runs on
        /// whatever else the host is doing (other academies' calls, the database, the machine), so it only
        /// stops the call; the plugin's fuel, which counts only its own work, decides whether it misbehaved.
        counted: bool,
    },
    /// The host had no slot for the call within the wait bound; nothing ran, nothing is held against the
    /// plugin.
    Busy(Busy),
    /// The plugin answered with an error of its own.
    Plugin(String),
    /// The host could not run it (database, overload, a version that cannot be loaded).
    Unavailable(String),
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookError::Fault { kind, message, .. } => write!(f, "plugin fault ({}): {message}", kind.as_str()),
            HookError::Busy(busy) => write!(f, "the plugin did not run: {busy}"),
            HookError::Plugin(message) => write!(f, "the plugin answered with an error: {message}"),
            HookError::Unavailable(message) => write!(f, "the plugin could not run: {message}"),
        }
    }
}

impl std::error::Error for HookError {}

/// The pre-instantiated component of one plugin version, typed by world.
enum Pre {
    Branding(branding::BrandingPre<HostState>),
    Enrollment(enrollment::EnrollmentPre<HostState>),
    Notifications(notifications::NotificationsPre<HostState>),
    Reports(reports::ReportsPre<HostState>),
}

/// One plugin version, ready to run.
pub struct Loaded {
    /// Tenant.
    pub tenant_id: String,
    /// Plugin.
    pub plugin_id: String,
    /// Plugin name.
    pub name: String,
    /// The version row.
    pub version_id: String,
    /// Its semantic version.
    pub version: String,
    /// Kind.
    pub kind: Kind,
    /// Granted capabilities.
    pub granted: CapSet,
    /// The plugin row's revision this was loaded at (every change bumps it).
    pub revision: i64,
    /// The manifest.
    pub manifest: Manifest,
    pre: Pre,
    settings: Arc<PluginSettingsView>,
    consecutive_faults: AtomicU32,
}

/// What the runtime loads a version from (read by [`super::store`]).
pub struct VersionSource {
    /// Tenant.
    pub tenant_id: String,
    /// Plugin.
    pub plugin_id: String,
    /// Name.
    pub name: String,
    /// Version row.
    pub version_id: String,
    /// Semantic version.
    pub version: String,
    /// Manifest.
    pub manifest: Manifest,
    /// Granted capabilities.
    pub granted: CapSet,
    /// Settings.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Secrets.
    pub secrets: serde_json::Map<String, serde_json::Value>,
    /// Plugin revision.
    pub revision: i64,
    /// Consecutive faults so far.
    pub consecutive_faults: u32,
}

/// Measurements of one call, for `aula plugin test` and benchmarks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CallStats {
    /// Wall time.
    pub elapsed: Duration,
    /// Fuel used (instructions, host calls and sleeps).
    pub fuel: u64,
    /// Time spent queueing for a turn to run.
    pub waited: Duration,
    /// Time spent in host calls.
    pub in_host: Duration,
    /// Largest linear memory the instance reached, in bytes.
    pub peak_memory: usize,
    /// Bytes pulled through host calls.
    pub host_data: usize,
    /// Bytes of output.
    pub output: usize,
    /// The limits that applied.
    pub limits: Limits,
    /// Kept log lines.
    #[serde(skip)]
    pub log: Vec<LogLine>,
    /// Log lines dropped over the budget.
    pub log_dropped: usize,
    /// Faults in a row before this call (as this process saw them).
    #[serde(skip)]
    pub faults_before: u32,
}

/// The plugin runtime of one host process.
pub struct Runtime {
    engine: PluginEngine,
    settings: PluginSettings,
    linkers: Mutex<HashMap<(Kind, CapSet), SharedLinker>>,
    components: Mutex<HashMap<String, Component>>,
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    /// Call slots of every kind but branding.
    calls: FairShare,
    /// Call slots kept for branding, which pages wait for.
    page_calls: FairShare,
    turns: Turns,
    files_root: PathBuf,
}

impl Runtime {
    /// Build the engine and the empty caches.
    pub fn new(settings: PluginSettings) -> anyhow::Result<Runtime> {
        settings.validate().map_err(anyhow::Error::msg)?;
        let engine = PluginEngine::new(&settings)?;
        let total = settings.max_concurrent_calls as usize;
        let per_academy = (settings.max_calls_per_academy as usize).min(total);
        let pages = (total / 4).max(1);
        let wait = Duration::from_millis(settings.call_wait_ms.into());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Runtime {
            engine,
            calls: FairShare::new("plugin calls", total.saturating_sub(pages).max(1), per_academy, wait),
            page_calls: FairShare::new("branding plugin calls", pages, (per_academy / 4).max(1), wait / 10),
            turns: Turns::new(cores),
            files_root: PathBuf::from(&settings.files_dir),
            settings,
            linkers: Mutex::new(HashMap::new()),
            components: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The host's plugin settings.
    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    /// Compile a component (once per content hash per process) and inspect it.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<(Component, Vec<u8>, Inspection)> {
        let (component, artifact) = self.engine.compile(bytes)?;
        let inspection = Inspection::of(self.engine.engine(), &component);
        Ok((component, artifact, inspection))
    }

    /// A component by content hash from the in-process cache.
    pub fn cached_component(&self, hash: &str) -> Option<Component> {
        self.components.lock().ok()?.get(hash).cloned()
    }

    /// Keep a component for other versions with the same hash.
    pub fn keep_component(&self, hash: &str, component: Component) {
        if let Ok(mut components) = self.components.lock() {
            components.insert(hash.to_owned(), component);
        }
    }

    /// The linker for a world with exactly these capabilities.
    fn linker(&self, kind: Kind, granted: CapSet) -> anyhow::Result<Arc<Linker<HostState>>> {
        if let Some(linker) = self.linkers.lock().ok().and_then(|l| l.get(&(kind, granted)).cloned()) {
            return Ok(linker);
        }
        let linker = Arc::new(self.build_linker(kind, granted)?);
        if let Ok(mut linkers) = self.linkers.lock() {
            linkers.insert((kind, granted), linker.clone());
        }
        Ok(linker)
    }

    fn build_linker(&self, kind: Kind, granted: CapSet) -> anyhow::Result<Linker<HostState>> {
        use super::bindings::{config, directory, kv, log, records, types};
        use wasmtime_wasi::WasiView;
        use wasmtime_wasi::cli::{WasiCli, WasiCliView};
        use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
        use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
        use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
        use wasmtime_wasi::random::WasiRandom;
        type H = HasSelf<HostState>;
        let mut l: Linker<HostState> = Linker::new(self.engine.engine());
        wasmtime_wasi_io::add_to_linker_async(&mut l)?;
        clocks::wall_clock::add_to_linker::<HostState, WasiClocks>(&mut l, HostState::clocks)?;
        clocks::monotonic_clock::add_to_linker::<HostState, MeteredClock>(&mut l, HostState::metered_clock)?;
        random::random::add_to_linker::<HostState, WasiRandom>(&mut l, |t| t.ctx().ctx.random())?;
        random::insecure::add_to_linker::<HostState, WasiRandom>(&mut l, |t| t.ctx().ctx.random())?;
        random::insecure_seed::add_to_linker::<HostState, WasiRandom>(&mut l, |t| t.ctx().ctx.random())?;
        cli::exit::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::environment::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::stdin::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::stdout::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::stderr::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::terminal_input::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::terminal_output::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
        if granted.has(Capability::Files) {
            filesystem::types::add_to_linker::<HostState, WasiFilesystem>(&mut l, HostState::filesystem)?;
            filesystem::preopens::add_to_linker::<HostState, WasiFilesystem>(&mut l, HostState::filesystem)?;
        }
        types::add_to_linker::<HostState, H>(&mut l, |s| s)?;
        if granted.has(Capability::Log) {
            log::add_to_linker::<HostState, H>(&mut l, |s| s)?;
        }
        if granted.has(Capability::Config) {
            config::add_to_linker::<HostState, H>(&mut l, |s| s)?;
        }
        if granted.has(Capability::Kv) {
            kv::add_to_linker::<HostState, H>(&mut l, |s| s)?;
        }
        if granted.has(Capability::Directory) {
            directory::add_to_linker::<HostState, H>(&mut l, |s| s)?;
        }
        if granted.has(Capability::Records) && kind != Kind::Branding {
            records::add_to_linker::<HostState, H>(&mut l, |s| s)?;
        }
        Ok(l)
    }

    /// Pre-instantiate a component with the linker of its grants. An import whose capability was revoked
    /// after upload traps when called (and the call is recorded as a fault) instead of being linked.
    pub fn prepare(&self, source: VersionSource, component: &Component) -> anyhow::Result<Loaded> {
        let kind = source.manifest.kind;
        let inspection = Inspection::of(self.engine.engine(), component);
        let revoked = inspection.needs().0 & !source.granted.0 != 0;
        let instance_pre = if revoked {
            let mut linker = self.build_linker(kind, source.granted)?;
            linker.define_unknown_imports_as_traps(component)?;
            linker.instantiate_pre(component)?
        } else {
            self.linker(kind, source.granted)?.instantiate_pre(component)?
        };
        let pre = match kind {
            Kind::Branding => Pre::Branding(branding::BrandingPre::new(instance_pre)?),
            Kind::Enrollment => Pre::Enrollment(enrollment::EnrollmentPre::new(instance_pre)?),
            Kind::Notifications => Pre::Notifications(notifications::NotificationsPre::new(instance_pre)?),
            Kind::Reports => Pre::Reports(reports::ReportsPre::new(instance_pre)?),
        };
        let settings = Arc::new(PluginSettingsView::new(
            &source.manifest,
            &source.settings,
            &source.secrets,
        ));
        Ok(Loaded {
            tenant_id: source.tenant_id,
            plugin_id: source.plugin_id,
            name: source.name,
            version_id: source.version_id,
            version: source.version,
            kind,
            granted: source.granted,
            revision: source.revision,
            manifest: source.manifest,
            pre,
            settings,
            consecutive_faults: AtomicU32::new(source.consecutive_faults),
        })
    }

    /// A loaded version from the cache, if it is at `revision`.
    pub fn cached(&self, plugin_id: &str, revision: i64) -> Option<Arc<Loaded>> {
        let loaded = self.loaded.lock().ok()?.get(plugin_id).cloned()?;
        (loaded.revision == revision).then_some(loaded)
    }

    /// Keep a loaded version; calls already running on the one it replaces finish on it.
    pub fn keep(&self, loaded: Arc<Loaded>) {
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(loaded.plugin_id.clone(), loaded);
        }
    }

    /// Forget a plugin's loaded version (after any change to it).
    pub fn forget(&self, plugin_id: &str) {
        if let Ok(mut map) = self.loaded.lock() {
            map.remove(plugin_id);
        }
    }

    /// How many plugin versions are loaded.
    pub fn loaded_count(&self) -> usize {
        self.loaded.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Run one hook of a loaded plugin. Faults come back as [`HookError::Fault`] with the statistics;
    /// recording them is the caller's part ([`super::store::record_outcome`]).
    pub async fn invoke(
        &self,
        db: &TenantDb,
        loaded: &Loaded,
        view: View,
        call: HookCall,
    ) -> (Result<HookOutput, HookError>, CallStats) {
        let limits = loaded.kind.limits(&self.settings.limits);
        let mut stats = CallStats {
            limits,
            ..CallStats::default()
        };
        if call.kind() != loaded.kind {
            let message = format!("{} is not a hook of a {} plugin", call.name(), loaded.kind);
            return (Err(HookError::Unavailable(message)), stats);
        }
        debug_assert_eq!(
            db.tenant_id(),
            loaded.tenant_id,
            "a plugin runs only for its own tenant"
        );
        let slots = if loaded.kind == Kind::Branding {
            &self.page_calls
        } else {
            &self.calls
        };
        let _slot = match slots.acquire(&loaded.tenant_id).await {
            Ok(slot) => slot,
            Err(busy) => return (Err(HookError::Busy(busy)), stats),
        };
        let log = LogSink::new(limits.log_bytes());
        let wasi = match self.wasi(loaded, &log) {
            Ok(wasi) => wasi,
            Err(e) => return (Err(HookError::Unavailable(format!("{e:#}"))), stats),
        };
        let mut meter = Meter::new(&self.turns, &loaded.tenant_id, &limits);
        if loaded.granted.has(Capability::Files) {
            let quota = match files::academy_dir(&self.files_root, &loaded.tenant_id) {
                Ok(dir) => {
                    let (bytes, entries) = (self.settings.files_quota_bytes(), self.settings.files_max_entries);
                    files::Quota::start(dir, bytes, entries.into()).await
                }
                Err(e) => Err(e),
            };
            match quota {
                Ok(quota) => meter.files = Some(quota),
                Err(e) => return (Err(HookError::Unavailable(format!("plugin files: {e:#}"))), stats),
            }
        }
        let state = HostState::new(
            db.clone(),
            loaded.plugin_id.clone(),
            view,
            loaded.granted,
            loaded.settings.clone(),
            limits,
            log.clone(),
            wasi,
            meter,
        );
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| s.limiter());
        if let Err(e) = store.set_fuel(limits.fuel()) {
            return (Err(HookError::Unavailable(format!("{e:#}"))), stats);
        }
        store.call_hook_async(TurnTaking);
        let started = Instant::now();
        let deadline = started + limits.timeout();
        // Each tick the plugin gives its turn back and queues for the next; past its deadline it traps.
        store.epoch_deadline_callback(move |mut store| {
            if Instant::now() >= deadline {
                Err(wasmtime::Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::YieldCustom(1, store.data_mut().meter.next_turn()))
            }
        });
        store.set_epoch_deadline(1);
        // Host calls (a sleep, a slow query) do not see epochs; the whole call is also bounded here.
        let mut outcome = tokio::time::timeout(limits.timeout(), dispatch(&mut store, &loaded.pre, call)).await;
        // What the call left in the academy's files is measured once more, whatever the call did.
        if let Some(quota) = store.data_mut().meter.files.as_mut() {
            let stop = match quota.check().await {
                Ok(Ok(())) => None,
                Ok(Err(message)) => Some(Stop::Files(message)),
                Err(e) => Some(Stop::Host(format!("measuring the plugin's files: {e:#}"))),
            };
            if let Some(stop) = stop {
                let state = store.data_mut();
                state.stop.get_or_insert(stop);
                outcome = Ok(Err(wasmtime::Error::msg("stopped by the host")));
            }
        }
        stats.elapsed = started.elapsed();
        stats.fuel = limits.fuel().saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data();
        stats.peak_memory = state.peak_memory();
        stats.host_data = state.data_used;
        stats.waited = state.meter.waited();
        stats.in_host = state.meter.in_host();
        let timed_out = || HookError::Fault {
            kind: FaultKind::Timeout,
            message: format!(
                "did not finish within {} ms ({} ms of it waiting for a turn to run, {} ms in host calls); a \
                 timeout stops the call but does not count toward disabling the plugin",
                limits.timeout_ms,
                stats.waited.as_millis(),
                stats.in_host.as_millis()
            ),
            counted: false,
        };
        let result = match outcome {
            Err(_) => Err(timed_out()),
            Ok(Err(error)) if matches!(error.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt)) => {
                Err(timed_out())
            }
            Ok(Err(error)) => Err(classify(&error, state, &limits)),
            Ok(Ok(Err(message))) => Err(HookError::Plugin(message)),
            Ok(Ok(Ok(output))) => {
                stats.output = encoded_size(&output);
                if stats.output > limits.output_bytes() {
                    Err(HookError::Fault {
                        kind: FaultKind::Output,
                        message: format!(
                            "output of {} KiB is over the limit of {} KiB",
                            stats.output.div_ceil(1024),
                            limits.output_kib
                        ),
                        counted: true,
                    })
                } else {
                    Ok(output)
                }
            }
        };
        drop(store);
        let (lines, dropped) = log.take();
        stats.log = lines;
        stats.log_dropped = dropped;
        stats.faults_before = match &result {
            Err(HookError::Fault { counted: true, .. }) => loaded.consecutive_faults.fetch_add(1, Ordering::Relaxed),
            Err(HookError::Fault { counted: false, .. } | HookError::Busy(_)) => {
                loaded.consecutive_faults.load(Ordering::Relaxed)
            }
            _ => loaded.consecutive_faults.swap(0, Ordering::Relaxed),
        };
        (result, stats)
    }

    fn wasi(&self, loaded: &Loaded, log: &LogSink) -> anyhow::Result<wasmtime_wasi::WasiCtx> {
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.stdout(log.stream("stdout"))
            .stderr(log.stream("stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if loaded.granted.has(Capability::Files) {
            let dir = self.files_dir(&loaded.tenant_id, &loaded.plugin_id)?;
            wasi.preopened_dir(&dir, "/", wasmtime_wasi::FsPerms::ReadWrite)?;
        }
        Ok(wasi.build())
    }

    /// The private directory of one tenant's plugin (created on first use).
    pub fn files_dir(&self, tenant_id: &str, plugin_id: &str) -> anyhow::Result<PathBuf> {
        let dir = files::plugin_dir(&self.files_root, tenant_id, plugin_id)?;
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Remove the `files` directory of one plugin, or of all of an academy's plugins.
    pub fn remove_files(&self, tenant_id: &str, plugin_id: Option<&str>) -> anyhow::Result<()> {
        let dir = match plugin_id {
            Some(plugin_id) => files::plugin_dir(&self.files_root, tenant_id, plugin_id)?,
            None => files::academy_dir(&self.files_root, tenant_id)?,
        };
        Ok(files::remove(&dir)?)
    }
}

/// Instantiate in the call's store and call the hook.
async fn dispatch(
    store: &mut Store<HostState>,
    pre: &Pre,
    call: HookCall,
) -> wasmtime::Result<Result<HookOutput, String>> {
    Ok(match (pre, call) {
        (Pre::Branding(pre), HookCall::Brand(context)) => {
            let plugin = pre.instantiate_async(&mut *store).await?;
            let hooks: &BrandingHooks = plugin.aula_plugin_branding_hooks();
            hooks.call_brand(&mut *store, &context).await?.map(HookOutput::Brand)
        }
        (Pre::Enrollment(pre), HookCall::OnSignup(signup)) => {
            let plugin = pre.instantiate_async(&mut *store).await?;
            let hooks = plugin.aula_plugin_enrollment_hooks();
            hooks
                .call_on_signup(&mut *store, &signup)
                .await?
                .map(HookOutput::OnSignup)
        }
        (Pre::Enrollment(pre), HookCall::OnEvents(events)) => {
            let plugin = pre.instantiate_async(&mut *store).await?;
            let hooks = plugin.aula_plugin_enrollment_hooks();
            let count = events.len();
            match hooks.call_on_events(&mut *store, &events).await? {
                Ok(actions) if actions.len() != count => Err(format!(
                    "answered {} action lists for {count} events; the host expects one per event",
                    actions.len()
                )),
                other => other.map(HookOutput::OnEvents),
            }
        }
        (Pre::Notifications(pre), HookCall::OnNotice { notice, drafts }) => {
            let plugin = pre.instantiate_async(&mut *store).await?;
            let hooks = plugin.aula_plugin_notification_hooks();
            hooks
                .call_on_notice(&mut *store, &notice, &drafts)
                .await?
                .map(HookOutput::OnNotice)
        }
        (Pre::Notifications(pre), HookCall::OnTick(now)) => {
            let plugin = pre.instantiate_async(&mut *store).await?;
            let hooks = plugin.aula_plugin_notification_hooks();
            hooks.call_on_tick(&mut *store, &now).await?.map(HookOutput::OnTick)
        }
        (Pre::Reports(pre), HookCall::ListReports) => {
            let plugin = pre.instantiate_async(&mut *store).await?;
            let hooks = plugin.aula_plugin_report_hooks();
            Ok(HookOutput::ListReports(hooks.call_list_reports(&mut *store).await?))
        }
        (Pre::Reports(pre), HookCall::RunReport { key, params, cursor }) => {
            let plugin = pre.instantiate_async(&mut *store).await?;
            let hooks = plugin.aula_plugin_report_hooks();
            hooks
                .call_run_report(&mut *store, &key, &params, cursor.as_deref())
                .await?
                .map(HookOutput::RunReport)
        }
        (_, call) => {
            return Err(wasmtime::Error::msg(format!(
                "{} does not match the world",
                call.name()
            )));
        }
    })
}

/// Name the fault behind a failed call.
fn classify(error: &wasmtime::Error, state: &HostState, limits: &Limits) -> HookError {
    if let Some(stop) = &state.stop {
        return match stop {
            Stop::HostData(_) => HookError::Fault {
                kind: FaultKind::HostData,
                message: stop.to_string(),
                counted: true,
            },
            Stop::NotGranted(_) => HookError::Fault {
                kind: FaultKind::NotGranted,
                message: stop.to_string(),
                counted: true,
            },
            Stop::Files(message) => HookError::Fault {
                kind: FaultKind::Files,
                message: message.clone(),
                counted: true,
            },
            Stop::Host(message) => HookError::Unavailable(message.clone()),
        };
    }
    if state.memory_limit_hit() {
        return HookError::Fault {
            kind: FaultKind::Memory,
            message: format!("tried to grow memory beyond the limit of {} MiB", limits.memory_mib),
            counted: true,
        };
    }
    let text = format!("{error:#}");
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel => HookError::Fault {
                kind: FaultKind::Cpu,
                message: format!(
                    "used up its compute budget of {} million fuel (instructions, host calls and sleeps)",
                    limits.fuel_millions
                ),
                counted: true,
            },
            wasmtime::Trap::StackOverflow => HookError::Fault {
                kind: FaultKind::Trap,
                message: "stack overflow".into(),
                counted: true,
            },
            trap => HookError::Fault {
                kind: FaultKind::Trap,
                message: trap.to_string(),
                counted: true,
            },
        };
    }
    if text.contains("has not been defined") || text.contains("unknown import") {
        return HookError::Fault {
            kind: FaultKind::NotGranted,
            message: format!("called an interface that is not granted: {}", first_line(&text)),
            counted: true,
        };
    }
    if text.contains("concurrent") && text.contains("maximum") {
        return HookError::Unavailable("too many plugin calls at once".into());
    }
    HookError::Fault {
        kind: FaultKind::Trap,
        message: first_line(&text).to_owned(),
        counted: true,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
