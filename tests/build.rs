//! Builds the plugin components the integration tests load: the example plugins (`plugins/`) and the test
//! guests (`tests/guests/`), each a cargo workspace of its own, for `wasm32-wasip2` in release mode into
//! `target/wasm/`. The tests find them through `env!("AULA_WASM_DIR")` (the `.wasm` files),
//! `env!("AULA_PLUGINS_DIR")` and `env!("AULA_GUESTS_DIR")` (the crates with their `aula-plugin.toml`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

/// Variables cargo sets for this build script (or for the build around it) that would change what the nested
/// build does: flags and wrappers meant for the host crates, another target or target directory, and the
/// outer build's jobserver.
const INHERITED: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
];
const INHERITED_PREFIXES: &[&str] = &["CARGO_CFG_", "CARGO_FEATURE_", "CARGO_PKG_"];

fn main() {
    let root = Path::new(&env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies in the workspace root")
        .to_path_buf();
    let plugins = root.join("plugins");
    let guests = root.join("tests").join("guests");
    let target_dir = root.join("target").join("wasm");

    watch(&root.join("sdk").join("src"));
    watch(&root.join("sdk").join("wit"));
    watch(&root.join("sdk").join("Cargo.toml"));
    watch_workspace(&plugins);
    watch_workspace(&guests);

    ensure_target();
    for workspace in [&plugins, &guests] {
        build(&workspace.join("Cargo.toml"), &target_dir);
    }

    let wasm_dir = target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=AULA_WASM_DIR={}", wasm_dir.display());
    println!("cargo:rustc-env=AULA_PLUGINS_DIR={}", plugins.display());
    println!("cargo:rustc-env=AULA_GUESTS_DIR={}", guests.display());
}

fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

/// Everything in a plugin workspace except a `target/` left there by a build without `--target-dir`.
fn watch_workspace(dir: &Path) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries.flatten() {
        if entry.file_name() != "target" {
            watch(&entry.path());
        }
    }
}

fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for name in INHERITED {
        command.env_remove(name);
    }
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if INHERITED_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
            command.env_remove(&*name);
        }
    }
    command
}

/// Installs the wasm32-wasip2 standard library with rustup when the toolchain lacks it.
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = sysroot.is_some_and(|root| root.join("lib").join("rustlib").join(TARGET).is_dir());
    if installed {
        return;
    }
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .is_ok_and(|status| status.success());
    if !added {
        panic!(
            "the integration tests need plugin components built for {TARGET}, and this toolchain cannot build \
             them: run `rustup target add {TARGET}` (or install that target's standard library) and build again"
        );
    }
}

fn build(manifest: &Path, target_dir: &Path) {
    // Cargo reads this script's stdout for instructions, so the nested build's output goes to stderr (shown
    // when the build fails).
    let status = cargo()
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build {}: {e}", manifest.display()));
    if !status.success() {
        panic!(
            "building the plugin components of {} failed ({status}); the same command by hand: \
             cargo build --release --target {TARGET} --manifest-path {} --target-dir {}",
            manifest.display(),
            manifest.display(),
            target_dir.display()
        );
    }
}
