#!/usr/bin/env bash
# Plugin call benchmarks: builds the example plugins as components, then runs the criterion bench that
# compares one enrollment-rule call (fresh instance) and one bulk call with the same logic run natively.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir target/wasm
cargo bench --locked -p aula --bench plugin_call -- "$@"
