//! The code `wit-bindgen` generates from `sdk/wit`: one set of import bindings shared by every world, and the
//! export side of each world. Nothing here is meant to be used directly; the modules of this crate wrap it.
//!
//! The imports live in their own world (`host`, below) so that the four plugin worlds share one set of data
//! types (`User` is the same type whichever world a plugin implements) and one set of import functions. A
//! plugin's component imports only the interfaces its code calls: the linker keeps only the import functions
//! that are reached, and the component is built from those.

/// The host interfaces (`log`, `config`, `kv`, `directory`, `records`) and the shared `types`.
pub mod host {
    wit_bindgen::generate!({
        inline: "
            package aula:sdk;

            world host {
                import aula:plugin/log@0.1.0;
                import aula:plugin/config@0.1.0;
                import aula:plugin/kv@0.1.0;
                import aula:plugin/directory@0.1.0;
                import aula:plugin/records@0.1.0;
            }
        ",
        path: "wit",
        // The world's interfaces come from another package (`aula:plugin`); generate them all here.
        generate_all,
        additional_derives: [PartialEq],
    });
}

/// Generates the export side of one plugin world, reusing the shared import bindings above.
///
/// `pub_export_macro` matters for correctness, not only visibility: with it, the component type that names
/// the world's exports is emitted by the export macro (so only into the plugin that registers this world),
/// while this crate itself carries the imports-only part, which is dropped when unused.
macro_rules! world {
    ($module:ident, $world:tt, $bindings_module:tt, [$($import:tt => $path:path),* $(,)?]) => {
        #[doc = concat!("The export side of `", $world, "`.")]
        pub mod $module {
            wit_bindgen::generate!({
                world: $world,
                path: "wit",
                with: {
                    "aula:plugin/types@0.1.0": crate::__bindings::host::aula::plugin::types,
                    $($import: $path,)*
                },
                additional_derives: [PartialEq],
                pub_export_macro: true,
                export_macro_name: "export",
                default_bindings_module: $bindings_module,
            });
        }
    };
}

// Each world lists the host interfaces it imports (an unused mapping is an error).
world!(branding, "aula:plugin/branding@0.1.0", "::aula_sdk::__bindings::branding", [
    "aula:plugin/log@0.1.0" => crate::__bindings::host::aula::plugin::log,
    "aula:plugin/config@0.1.0" => crate::__bindings::host::aula::plugin::config,
    "aula:plugin/kv@0.1.0" => crate::__bindings::host::aula::plugin::kv,
    "aula:plugin/directory@0.1.0" => crate::__bindings::host::aula::plugin::directory,
]);
world!(enrollment, "aula:plugin/enrollment@0.1.0", "::aula_sdk::__bindings::enrollment", [
    "aula:plugin/log@0.1.0" => crate::__bindings::host::aula::plugin::log,
    "aula:plugin/config@0.1.0" => crate::__bindings::host::aula::plugin::config,
    "aula:plugin/kv@0.1.0" => crate::__bindings::host::aula::plugin::kv,
    "aula:plugin/directory@0.1.0" => crate::__bindings::host::aula::plugin::directory,
    "aula:plugin/records@0.1.0" => crate::__bindings::host::aula::plugin::records,
]);
world!(notifications, "aula:plugin/notifications@0.1.0", "::aula_sdk::__bindings::notifications", [
    "aula:plugin/log@0.1.0" => crate::__bindings::host::aula::plugin::log,
    "aula:plugin/config@0.1.0" => crate::__bindings::host::aula::plugin::config,
    "aula:plugin/kv@0.1.0" => crate::__bindings::host::aula::plugin::kv,
    "aula:plugin/directory@0.1.0" => crate::__bindings::host::aula::plugin::directory,
    "aula:plugin/records@0.1.0" => crate::__bindings::host::aula::plugin::records,
]);
world!(reports, "aula:plugin/reports@0.1.0", "::aula_sdk::__bindings::reports", [
    "aula:plugin/log@0.1.0" => crate::__bindings::host::aula::plugin::log,
    "aula:plugin/config@0.1.0" => crate::__bindings::host::aula::plugin::config,
    "aula:plugin/kv@0.1.0" => crate::__bindings::host::aula::plugin::kv,
    "aula:plugin/directory@0.1.0" => crate::__bindings::host::aula::plugin::directory,
    "aula:plugin/records@0.1.0" => crate::__bindings::host::aula::plugin::records,
]);
