#!/usr/bin/env bash
# Hostile-neighbour benchmark: a quiet academy (acme: a learner's catalog page, rendered with acme's branding
# plugin, and an admin's users list) measured alone, then while another academy (globex) floods the host for
# the same time with spinning and sleeping plugin calls, wrong passwords, oversized uploads, bulk enrollments,
# report runs, a key-value write flood and a disk-filling plugin (benches/hostile.py). Prints, for each: requests per second, p50, p99 and errors of the quiet academy;
# then the faults charged to acme's plugins, what globex's flood was answered, /healthz during it, and the
# server's peak RSS. The fault limit is raised so that globex's plugin keeps spinning instead of being
# disabled after five faults (which would end the flood of plugin calls early).
#
#   benches/hostile.sh                 # SQLite
#   DURATION=60 benches/hostile.sh
#   ATTACKS=login,upload benches/hostile.sh     # some of the attacks only (loop, sleep, login, upload, bulk, report, kv, files)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-30}"
connections="${CONNECTIONS:-8}"
port="${PORT:-18083}"
db="/tmp/aula-hostile-bench.db"
quiet="acme.localhost"
loud="globex.localhost"

command -v wrk >/dev/null || { echo "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk; }
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir target/wasm
cargo build --release --locked --target wasm32-wasip2 --manifest-path tests/guests/Cargo.toml --target-dir target/wasm
cargo build --release --locked -p aula --bin aula

rm -rf "$db" "$db-wal" "$db-shm" /tmp/aula-hostile-bench-themes /tmp/aula-hostile-bench-files
AULA_DATABASE_URL="sqlite:$db" AULA_LISTEN="127.0.0.1:$port" AULA_THEMES_DIR=/tmp/aula-hostile-bench-themes \
  AULA_PLUGINS_FILES_DIR=/tmp/aula-hostile-bench-files AULA_COOKIE_SECURE=false RUST_LOG=error \
  AULA_PLUGINS_FAULT_LIMIT=1000000 \
  target/release/aula serve --demo --demo-plugins target/wasm/wasm32-wasip2/release >/tmp/aula-hostile-bench.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

login() {
  curl -fs -D - -o /dev/null -H "Host: $1" -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"aula-demo-2026\"}" "http://127.0.0.1:$port/api/v1/auth/login" |
    tr -d '\r' | sed -n 's/^set-cookie: \(aula_session=[^;]*\).*/\1/ip'
}
learner="$(login $quiet nora.north@acme.test)"
admin="$(login $quiet admin@acme.test)"
globex="$(login $loud admin@globex.test)"
id_of() {
  python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get("items",d) if isinstance(d,dict) else d; print(next(p["id"] for p in d if p["name"]==sys.argv[1]))' "$1"
}
branding="$(curl -fs -H "Host: $quiet" -H "Cookie: $admin" "http://127.0.0.1:$port/api/v1/plugins" | id_of org-branding)"
# Upload a test guest to globex with the capabilities it asks for, activate it, print its id.
deploy() {
  local id
  id="$(curl -fs -H "Host: $loud" -H "Cookie: $globex" -H "Origin: http://$loud" \
    -F "manifest=<tests/guests/$1/aula-plugin.toml" \
    -F "component=@target/wasm/wasm32-wasip2/release/${1//-/_}.wasm;type=application/wasm" -F grant=requested \
    "http://127.0.0.1:$port/api/v1/plugins" | python3 -c 'import json,sys; print(json.load(sys.stdin)["plugin"]["id"])')"
  curl -fs -o /dev/null -X POST -H "Host: $loud" -H "Cookie: $globex" -H "Origin: http://$loud" \
    -H 'content-type: application/json' -d '{}' "http://127.0.0.1:$port/api/v1/plugins/$id/activate"
  echo "$id"
}
# globex's misbehaving plugin, its key-value writer and its disk filler, deployed and active.
misbehave="$(deploy misbehave)"
KV_PLUGIN="$(deploy kv-user)"
FILES_PLUGIN="$(deploy files)"
export KV_PLUGIN FILES_PLUGIN

measure() {
  echo "== $1"
  wrk -t1 -c"$connections" -d"${duration}s" --latency -H "Host: $quiet" -H "Cookie: $learner" \
    "http://127.0.0.1:$port/catalog" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors" | sed 's/^/  catalog page: /' &
  local page=$!
  wrk -t1 -c2 -d"${duration}s" --latency -H "Host: $quiet" -H "Cookie: $admin" \
    "http://127.0.0.1:$port/api/v1/users?limit=50" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors" | sed 's/^/  users list:   /'
  wait $page
}
peak_rss() { awk '/VmHWM/ {print int($2/1024) " MiB"}' "/proc/$server/status"; }

measure "acme alone"
echo "  server peak RSS so far: $(peak_rss)"
python3 benches/hostile.py "$port" "$loud" "$globex" "$misbehave" "$duration" "${ATTACKS:-loop,sleep,login,upload,bulk,report,kv,files}" \
  >/tmp/aula-hostile-flood.json &
flood=$!
sleep 1
measure "acme while globex floods the host"
wait $flood
echo "== globex's flood was answered (kind status: count)"
python3 -c 'import json; [print(f"  {k}: {v}") for k, v in json.load(open("/tmp/aula-hostile-flood.json")).items()]'
faults="$(curl -fs -H "Host: $quiet" -H "Cookie: $admin" "http://127.0.0.1:$port/api/v1/plugins/$branding/faults?limit=500" |
  python3 -c 'import json,sys,collections; f=json.load(sys.stdin)["items"]; print(sum(x["counted"] for x in f), "counted;", dict(collections.Counter(x["kind"] for x in f)), "recorded")')"
status="$(curl -fs -H "Host: $quiet" -H "Cookie: $admin" "http://127.0.0.1:$port/api/v1/plugins/$branding" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
echo "== faults of acme's branding plugin: $faults; it is $status"
echo "== server peak RSS: $(peak_rss)"
echo "== disk: plugin files $(du -sh /tmp/aula-hostile-bench-files 2>/dev/null | cut -f1 || echo 0), database $(du -sh "$db" | cut -f1)"
