//! Metering one plugin call: what it may compute, when it may run, and what it waited for.
//!
//! - **Fuel** is the call's compute budget ([`Limits::fuel`]): wasmtime counts about one unit per WebAssembly
//!   instruction, and the host adds [`HOST_CALL_FUEL`] for every call into the host and the fuel of the same
//!   share of the time limit for every sleep the plugin asks for ([`Limits::fuel_per_ms`]). Running out traps
//!   with [`wasmtime::Trap::OutOfFuel`]: a fault of the plugin's own making, whatever else the host is doing.
//! - **Turns**: a call executes WebAssembly only while it holds a turn of [`Turns`], a fair share of the
//!   cores (at most the cores less one for the whole host, at most half of that for one academy). It gives
//!   the turn back whenever it enters the host (a database query, a sleep) and at every epoch tick, and
//!   queues for it again, so one academy's spinning calls take turns with each other, not with the
//!   neighbours' calls or the threads that serve requests.
//! - What the call **waited** for (turns) and how long it spent **in the host** are measured and reported,
//!   so that a call stopped by the wall clock shows where its time went. The wall clock only stops calls:
//!   a timeout never counts toward disabling a plugin, since other academies' load moves it.

use super::host_api::{HostState, Stop};
use crate::config::plugins::Limits;
use crate::fair::{FairShare, Permit};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::{CallHook, StoreContextMut};

/// Fuel charged for every call from the plugin into the host (a log line, a query, a WASI call), about what
/// a microsecond of computing costs: a plugin cannot make unbounded work for the host for free.
pub const HOST_CALL_FUEL: u64 = 1_000;

/// The host's turns to execute WebAssembly (see the module docs).
pub struct Turns {
    share: Arc<FairShare>,
}

impl Turns {
    /// Turns for a host with `cores` cores: one core always stays for serving requests (when there are two
    /// or more), and one academy holds at most half of the rest.
    pub fn new(cores: usize) -> Turns {
        let total = cores.saturating_sub(1).max(1);
        let per_academy = (total / 2).max(1);
        // A turn is held for one epoch tick at most; the call's own deadline bounds the wait.
        Turns {
            share: Arc::new(FairShare::new(
                "plugin CPU turns",
                total,
                per_academy,
                Duration::from_secs(600),
            )),
        }
    }
}

/// One call's meter, kept in its store.
pub struct Meter {
    share: Arc<FairShare>,
    tenant: String,
    /// The turn, while the call executes WebAssembly (shared with the future that queues for the next one).
    turn: Arc<Mutex<Option<Permit>>>,
    /// Time spent queueing for turns, in microseconds (shared with that future too).
    waited_us: Arc<std::sync::atomic::AtomicU64>,
    /// When the wait for the next turn began, while it lasts.
    waiting_since: Arc<Mutex<Option<Instant>>>,
    in_host: Duration,
    entered_host: Option<Instant>,
    /// Fuel owed for host calls and sleeps, taken from the store's fuel when the call returns to WebAssembly.
    owed: u64,
    fuel_per_ms: u64,
    /// The academy's files quota, when the plugin has `files`.
    pub(crate) files: Option<super::files::Quota>,
}

impl Meter {
    /// A meter for a call of `tenant` under `limits`, taking turns from `turns`.
    pub fn new(turns: &Turns, tenant: &str, limits: &Limits) -> Meter {
        Meter {
            share: turns.share.clone(),
            tenant: tenant.to_owned(),
            turn: Arc::new(Mutex::new(None)),
            waited_us: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            waiting_since: Arc::new(Mutex::new(None)),
            in_host: Duration::ZERO,
            entered_host: None,
            owed: 0,
            fuel_per_ms: limits.fuel_per_ms(),
            files: None,
        }
    }

    /// Charge a sleep of `duration` the plugin asked for.
    pub fn charge_sleep(&mut self, duration: Duration) {
        let fuel = (duration.as_micros() as u64).saturating_mul(self.fuel_per_ms) / 1000;
        self.owed = self.owed.saturating_add(fuel);
    }

    /// Time spent queueing for turns, including a wait still going on (a call stopped by its deadline while
    /// it queued).
    pub fn waited(&self) -> Duration {
        let done = Duration::from_micros(self.waited_us.load(std::sync::atomic::Ordering::Relaxed));
        let ongoing = self
            .waiting_since
            .lock()
            .ok()
            .and_then(|since| since.map(|s| s.elapsed()))
            .unwrap_or_default();
        done + ongoing
    }

    /// Time spent in host calls (queries, sleeps, WASI).
    pub fn in_host(&self) -> Duration {
        self.in_host
    }

    fn give_back(&mut self) {
        if let Ok(mut turn) = self.turn.lock() {
            turn.take();
        }
    }

    /// The future that queues for the next turn and keeps it in the meter (for an epoch yield).
    pub fn next_turn(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        self.give_back();
        let share = self.share.clone();
        let tenant = self.tenant.clone();
        let slot = self.turn.clone();
        let waited = self.waited_us.clone();
        let since = self.waiting_since.clone();
        Box::pin(async move {
            let started = Instant::now();
            if let Ok(mut since) = since.lock() {
                *since = Some(started);
            }
            // Tokio's semaphores are fair: calls queued before this one (of any academy) run first.
            let permit = share.acquire(&tenant).await;
            if let Ok(mut since) = since.lock() {
                *since = None;
            }
            waited.fetch_add(
                started.elapsed().as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            if let (Ok(permit), Ok(mut turn)) = (permit, slot.lock()) {
                *turn = Some(permit);
            }
        })
    }
}

/// The call hook of every plugin store: gives the turn back on entering the host, queues for it (and pays
/// what is owed in fuel) on the way back into WebAssembly.
pub struct TurnTaking;

#[async_trait::async_trait]
impl wasmtime::CallHookHandler<HostState> for TurnTaking {
    async fn handle_call_event(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        hook: CallHook,
    ) -> wasmtime::Result<()> {
        match hook {
            CallHook::CallingHost | CallHook::ReturningFromWasm => {
                let meter = &mut store.data_mut().meter;
                meter.give_back();
                if matches!(hook, CallHook::CallingHost) {
                    meter.entered_host = Some(Instant::now());
                    meter.owed = meter.owed.saturating_add(HOST_CALL_FUEL);
                }
                Ok(())
            }
            CallHook::CallingWasm | CallHook::ReturningFromHost => {
                if matches!(hook, CallHook::ReturningFromHost) {
                    check_files(&mut store).await?;
                }
                let meter = &mut store.data_mut().meter;
                if let Some(entered) = meter.entered_host.take() {
                    meter.in_host += entered.elapsed();
                }
                let owed = std::mem::take(&mut meter.owed);
                let next = meter.next_turn();
                if owed > 0 {
                    let left = store.get_fuel()?;
                    if owed > left {
                        store.set_fuel(0)?;
                        return Err(wasmtime::Trap::OutOfFuel.into());
                    }
                    store.set_fuel(left - owed)?;
                }
                next.await;
                Ok(())
            }
        }
    }
}

/// Measure the academy's plugin files when a check is due (see [`super::files`]); past the quota the call
/// stops with a `files` fault.
async fn check_files(store: &mut StoreContextMut<'_, HostState>) -> wasmtime::Result<()> {
    let state = store.data_mut();
    let Some(quota) = state.meter.files.as_mut().filter(|q| q.due()) else {
        return Ok(());
    };
    let started = Instant::now();
    let outcome = quota.check().await;
    // The measuring is the host's work, not the plugin's.
    state.meter.in_host += started.elapsed();
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => {
            state.stop = Some(Stop::Files(message));
            Err(wasmtime::Error::msg("stopped: files quota"))
        }
        Err(e) => {
            state.stop = Some(Stop::Host(format!("measuring the plugin's files: {e:#}")));
            Err(wasmtime::Error::msg("stopped: the host failed"))
        }
    }
}

/// `wasi:clocks/monotonic-clock` with every sleep the plugin subscribes to charged to its fuel (see
/// [`Meter::charge_sleep`]); the rest is WASI's own.
pub struct MeteredClock;

impl wasmtime::component::HasData for MeteredClock {
    type Data<'a> = MeteredClockView<'a>;
}

/// The clocks of one call's store, with its meter.
pub struct MeteredClockView<'a> {
    /// WASI's clocks and resource table.
    pub clocks: wasmtime_wasi::clocks::WasiClocksCtxView<'a>,
    /// The call's meter.
    pub meter: &'a mut Meter,
}

use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as Monotonic;

impl Monotonic for MeteredClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Monotonic::now(&mut self.clocks)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Monotonic::resolution(&mut self.clocks)
    }

    fn subscribe_instant(
        &mut self,
        when: u64,
    ) -> wasmtime::Result<wasmtime::component::Resource<wasmtime_wasi::p2::DynPollable>> {
        let now = Monotonic::now(&mut self.clocks)?;
        self.meter.charge_sleep(Duration::from_nanos(when.saturating_sub(now)));
        Monotonic::subscribe_instant(&mut self.clocks, when)
    }

    fn subscribe_duration(
        &mut self,
        duration: u64,
    ) -> wasmtime::Result<wasmtime::component::Resource<wasmtime_wasi::p2::DynPollable>> {
        self.meter.charge_sleep(Duration::from_nanos(duration));
        Monotonic::subscribe_duration(&mut self.clocks, duration)
    }
}
