//! `config`: the settings and secrets the academy's admin set for this plugin.

use super::HostState;
use crate::plugins::bindings::config;
use crate::plugins::manifest::Capability;

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require(Capability::Config)?;
        let value = self.settings.settings.get(&key).cloned();
        self.charge(key.len() + value.as_ref().map_or(0, String::len))?;
        Ok(value)
    }

    async fn secret(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require(Capability::Config)?;
        let value = self.settings.secrets.get(&key).cloned();
        self.charge(key.len() + value.as_ref().map_or(0, String::len))?;
        Ok(value)
    }
}
