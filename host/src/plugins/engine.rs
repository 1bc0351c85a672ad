//! The one wasmtime engine: component model, pooling allocator with copy-on-write memory images, fuel
//! metering, epoch interruption driven by a ticker thread, async calls.

use crate::config::plugins::PluginSettings;
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A running plugin notices its deadline (and yields to other tasks) at the
/// next tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Linear memory kept resident between uses of a pool slot, so most calls fault in no pages.
const KEEP_RESIDENT: usize = 1024 * 1024;

/// The engine and what identifies its compiled code.
pub struct PluginEngine {
    engine: Engine,
    key: String,
    stop: Arc<AtomicBool>,
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PluginEngine {
    /// Build the engine for these settings and start its epoch ticker.
    pub fn new(settings: &PluginSettings) -> anyhow::Result<PluginEngine> {
        let max_memory = settings.limits.max_memory_mib() as usize * 1024 * 1024;
        let slots = settings.max_concurrent_calls;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            // A Rust component holds a few core instances (the program and the component model's shims).
            .total_core_instances(slots * 8)
            .max_core_instances_per_component(16)
            .total_memories(slots * 2)
            .max_memories_per_component(2)
            .total_tables(slots * 4)
            .max_tables_per_component(4)
            .max_memory_size(max_memory)
            .total_stacks(slots)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 * 1024)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .concurrency_support(false)
            .epoch_interruption(true)
            .consume_fuel(true)
            .memory_init_cow(true)
            .max_wasm_stack(1024 * 1024)
            .async_stack_size(2 * 1024 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("creating the plugin engine: {e:#}"))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let key = format!("wasmtime-48-{:016x}", hasher.finish());
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = engine.weak();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("aula-plugin-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .context("starting the epoch ticker")?;
        Ok(PluginEngine { engine, key, stop })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Identifies this engine's compiled code (wasmtime version and settings): artifacts are stored under it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Compile a component (validating it) and return it with its serialized artifact.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<(Component, Vec<u8>)> {
        let artifact = self.engine.precompile_component(bytes)?;
        let component = self.load(&artifact)?;
        Ok((component, artifact))
    }

    /// Load a precompiled artifact.
    ///
    /// Artifacts are only ever read from Aula's own `plugin_artifacts` table, which only [`Self::compile`]
    /// writes; a tenant cannot supply one. wasmtime still checks that the artifact was made by a compatible
    /// engine and refuses it otherwise (the caller then compiles again from the component).
    #[allow(unsafe_code)]
    pub fn load(&self, artifact: &[u8]) -> anyhow::Result<Component> {
        // SAFETY: `artifact` was produced by `Engine::precompile_component` of an engine with this
        // configuration (see above); it never comes from outside the host.
        let component = unsafe { Component::deserialize(&self.engine, artifact)? };
        Ok(component)
    }
}

/// The content hash that identifies a component (hex SHA-256).
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
