//! What a component imports and exports, checked against the plugin interface and the grants.

use super::manifest::{CapSet, Capability, Kind};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The `aula:plugin` package version this host speaks.
pub const PACKAGE_VERSION: &str = "0.1.0";

/// WASI 0.2 interfaces a component may import; they are linked with nothing ambient (see the module
/// docs of [`super::runtime`]). Sockets and HTTP are not among them.
const WASI_ALLOWED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

/// One import and what the host makes of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Import {
    /// The full import name, e.g. `aula:plugin/kv@0.1.0`.
    pub name: String,
    /// The capability it needs, if it is an `aula:plugin` interface.
    pub capability: Option<Capability>,
}

/// A component's interface as the host sees it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Inspection {
    /// The world its exports implement, if they match one.
    pub world: Option<Kind>,
    /// Every import.
    pub imports: Vec<Import>,
    /// Every export.
    pub exports: Vec<String>,
    /// Imports no capability can ever provide (wrong package version, sockets, unknown packages).
    pub unknown: Vec<String>,
}

impl Inspection {
    /// Read a compiled component's imports and exports.
    pub fn of(engine: &Engine, component: &Component) -> Inspection {
        let ty = component.component_type();
        let mut imports = Vec::new();
        let mut unknown = Vec::new();
        for (name, _) in ty.imports(engine) {
            match classify(name) {
                Ok(capability) => imports.push(Import {
                    name: name.to_owned(),
                    capability,
                }),
                Err(()) => unknown.push(name.to_owned()),
            }
        }
        let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_owned()).collect();
        let world = Kind::ALL.into_iter().find(|kind| {
            exports
                .iter()
                .any(|e| *e == format!("aula:plugin/{}@{PACKAGE_VERSION}", kind.export_interface()))
        });
        Inspection {
            world,
            imports,
            exports,
            unknown,
        }
    }

    /// The capabilities its imports need.
    pub fn needs(&self) -> CapSet {
        CapSet::from_list(self.imports.iter().filter_map(|i| i.capability.as_ref()))
    }

    /// Every reason this component cannot run as a plugin of `kind` that asked for `requested` and was
    /// granted `granted`, each naming the import or export at fault. Empty when it can.
    pub fn problems(&self, kind: Kind, requested: CapSet, granted: CapSet) -> Vec<String> {
        let mut problems = Vec::new();
        match self.world {
            None => problems.push(format!(
                "the component exports none of the aula:plugin@{PACKAGE_VERSION} worlds (it exports: {}); \
                 build it with the Aula SDK for this version",
                if self.exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    self.exports.join(", ")
                }
            )),
            Some(world) if world != kind => problems.push(format!(
                "the manifest says kind {kind}, but the component implements the {world} world"
            )),
            Some(_) => {}
        }
        for name in &self.unknown {
            problems.push(unknown_reason(name));
        }
        for import in &self.imports {
            let Some(cap) = import.capability else { continue };
            if !requested.has(cap) {
                problems.push(format!(
                    "imports {} but the manifest does not request the {cap} capability",
                    import.name
                ));
            } else if !granted.has(cap) {
                problems.push(format!(
                    "imports {}, whose capability {cap} is not granted",
                    import.name
                ));
            }
        }
        problems
    }
}

/// The capability an import needs, if it is a grantable `aula:plugin` interface.
pub fn capability_of(import: &str) -> Option<Capability> {
    classify(import).ok().flatten()
}

/// `Ok(Some(cap))` for a grantable interface, `Ok(None)` for one always linked, `Err` for one never linked.
fn classify(name: &str) -> Result<Option<Capability>, ()> {
    if let Some(rest) = name.strip_prefix("aula:plugin/") {
        let (interface, version) = rest.split_once('@').ok_or(())?;
        if version != PACKAGE_VERSION {
            return Err(());
        }
        if interface == "types" {
            return Ok(None);
        }
        return Capability::for_interface(interface).map(Some).ok_or(());
    }
    let (interface, version) = name.split_once('@').ok_or(())?;
    if version.starts_with("0.2.") && WASI_ALLOWED.contains(&interface) {
        // The filesystem is the `files` capability: linked only when granted.
        if interface.starts_with("wasi:filesystem/") {
            return Ok(Some(Capability::Files));
        }
        return Ok(None);
    }
    Err(())
}

fn unknown_reason(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("aula:plugin/") {
        if let Some((_, version)) = rest.split_once('@')
            && version != PACKAGE_VERSION
        {
            return format!(
                "imports {name}: built against aula:plugin {version}, but this host speaks {PACKAGE_VERSION}"
            );
        }
        return format!("imports {name}, which is not part of the aula:plugin interface");
    }
    if name.starts_with("wasi:sockets/") || name.starts_with("wasi:http/") {
        return format!("imports {name}: plugins have no network access");
    }
    format!("imports {name}, which Aula does not provide to plugins")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_classified() {
        assert_eq!(classify("aula:plugin/kv@0.1.0"), Ok(Some(Capability::Kv)));
        assert_eq!(classify("aula:plugin/types@0.1.0"), Ok(None));
        assert_eq!(classify("wasi:cli/stdout@0.2.6"), Ok(None));
        assert_eq!(classify("aula:plugin/kv@0.2.0"), Err(()));
        assert_eq!(classify("aula:plugin/secrets@0.1.0"), Err(()));
        assert_eq!(classify("wasi:sockets/tcp@0.2.0"), Err(()));
        assert!(unknown_reason("wasi:sockets/tcp@0.2.0").contains("network"));
        assert!(unknown_reason("aula:plugin/kv@0.2.0").contains("0.2.0"));
    }
}
