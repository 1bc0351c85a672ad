#!/usr/bin/env bash
# Portal load benchmark: the catalog page of a signed-in learner (acme, nora.north@acme.test), rendered in the
# academy's theme and branding, loaded from a second process (wrk) on loopback. One run measures the page with
# acme's branding plugin (org-branding) active and with it deactivated, alternating, and prints both.
#
#   benches/portal.sh                 # SQLite
#   DURATION=30s ROUNDS=3 benches/portal.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-15s}"
connections="${CONNECTIONS:-32}"
rounds="${ROUNDS:-2}"
port="${PORT:-18081}"
db="/tmp/aula-portal-bench.db"
host="acme.localhost"

command -v wrk >/dev/null || { echo "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk; }
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir target/wasm
cargo build --release --locked -p aula --bin aula

rm -rf "$db" "$db-wal" "$db-shm" /tmp/aula-portal-bench-themes
AULA_DATABASE_URL="sqlite:$db" AULA_LISTEN="127.0.0.1:$port" AULA_THEMES_DIR=/tmp/aula-portal-bench-themes \
  AULA_COOKIE_SECURE=false RUST_LOG=warn \
  target/release/aula serve --demo --demo-plugins target/wasm/wasm32-wasip2/release >/tmp/aula-portal-bench.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

login() {
  curl -fs -D - -o /dev/null -H "Host: $host" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"aula-demo-2026\"}" "http://127.0.0.1:$port/api/v1/auth/login" |
    tr -d '\r' | sed -n 's/^set-cookie: \(aula_session=[^;]*\).*/\1/ip'
}
learner="$(login nora.north@acme.test)"
admin="$(login admin@acme.test)"
plugin="$(curl -fs -H "Host: $host" -H "Cookie: $admin" "http://127.0.0.1:$port/api/v1/plugins" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get("items",d) if isinstance(d,dict) else d; print(next(p["id"] for p in d if p["name"]=="org-branding"))')"
curl -fs -o /dev/null -w "catalog page: %{http_code}, %{size_download} bytes\n" -H "Host: $host" -H "Cookie: $learner" \
  "http://127.0.0.1:$port/catalog"

run() {
  echo "== $1"
  wrk -t1 -c"$connections" -d"$duration" --latency -H "Host: $host" -H "Cookie: $learner" \
    "http://127.0.0.1:$port/catalog" | grep -E "Requests/sec|99%|Non-2xx|Socket errors" || true
}
for round in $(seq 1 "$rounds"); do
  curl -fs -o /dev/null -X POST -H "Host: $host" -H "Cookie: $admin" -H 'content-type: application/json' -d '{}' \
    "http://127.0.0.1:$port/api/v1/plugins/$plugin/activate"
  run "round $round: branding plugin active"
  curl -fs -o /dev/null -X POST -H "Host: $host" -H "Cookie: $admin" "http://127.0.0.1:$port/api/v1/plugins/$plugin/deactivate"
  run "round $round: branding plugin inactive"
done
