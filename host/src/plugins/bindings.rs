//! Host bindings generated from `sdk/wit`: one set of import traits shared by all four worlds, and each
//! world's export side. The generated types carry serde derives so `aula plugin test` can read and print
//! hook inputs and outputs as JSON.
#![allow(missing_docs, clippy::all)]

/// The shared host interfaces (`types`, `log`, `config`, `kv`, `directory`, `records`).
pub mod imports {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "reports",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

macro_rules! world {
    ($module:ident, $world:literal $(, $extra:literal => $path:path)*) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../sdk/wit",
                world: $world,
                imports: { default: async | trappable },
                exports: { default: async },
                additional_derives: [serde::Serialize, serde::Deserialize],
                with: {
                    "aula:plugin/types": crate::plugins::bindings::imports::aula::plugin::types,
                    "aula:plugin/log": crate::plugins::bindings::imports::aula::plugin::log,
                    "aula:plugin/config": crate::plugins::bindings::imports::aula::plugin::config,
                    "aula:plugin/kv": crate::plugins::bindings::imports::aula::plugin::kv,
                    "aula:plugin/directory": crate::plugins::bindings::imports::aula::plugin::directory,
                    $($extra: $path,)*
                },
            });
        }
    };
}

world!(branding, "branding");
world!(enrollment, "enrollment", "aula:plugin/records" => crate::plugins::bindings::imports::aula::plugin::records);
world!(notifications, "notifications", "aula:plugin/records" => crate::plugins::bindings::imports::aula::plugin::records);

/// The reports world is the one the shared imports were generated from.
pub mod reports {
    pub use super::imports::*;
}

pub use imports::aula::plugin::{config, directory, kv, log, records, types};
