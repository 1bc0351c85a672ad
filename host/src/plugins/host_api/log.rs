//! `log`: lines into the plugin's log, within the call's log budget.

use super::HostState;
use crate::plugins::bindings::log;
use crate::plugins::manifest::Capability;

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.require(Capability::Log)?;
        let level = match level {
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        self.log.line(level, &message);
        Ok(())
    }
}
