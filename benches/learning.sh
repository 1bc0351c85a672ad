#!/usr/bin/env bash
# Enrollment automation benchmark: builds the example plugins as components, then applies the built-in rules,
# and the rules plus the domain-placement plugin, to AULA_BENCH_USERS (default 100000) new users each.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir target/wasm
cargo bench --locked -p aula --bench automation
