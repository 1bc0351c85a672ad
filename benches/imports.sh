#!/usr/bin/env bash
# Bulk import of people: the release build with the demo (SQLite), a generated users.csv of ROWS people
# (each in one of the demo's organizations by external id, with a profile field), then acme's admin runs a
# dry run and the import (the demo's rules active) and the script prints rows per second of each, end to
# end (upload to the job's end), and the server's peak resident memory.
#
#   benches/imports.sh
#   ROWS=20000 benches/imports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${ROWS:-100000}"
port="${PORT:-18085}"
db="/tmp/aula-import-bench.db"
host="acme.localhost:$port"
csv="/tmp/aula-import-bench.csv"

cargo build --release --locked -p aula --bin aula

rm -rf "$db" "$db-wal" "$db-shm" /tmp/aula-import-bench-themes
AULA_DATABASE_URL="sqlite:$db" AULA_LISTEN="127.0.0.1:$port" AULA_THEMES_DIR=/tmp/aula-import-bench-themes \
  AULA_COOKIE_SECURE=false RUST_LOG=error \
  target/release/aula serve --demo >/tmp/aula-import-bench.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

admin="$(curl -fs -D - -o /dev/null -H "Host: $host" -H 'content-type: application/json' \
  -d '{"email":"admin@acme.test","password":"aula-demo-2026"}' "http://127.0.0.1:$port/api/v1/auth/login" |
  tr -d '\r' | sed -n 's/^set-cookie: \(aula_session=[^;]*\).*/\1/ip')"
api() { curl -fs -H "Host: $host" -H "Cookie: $admin" "$@"; }

# Organizations the rows join, by external id.
for i in 1 2 3 4 5; do
  api -H 'content-type: application/json' -d "{\"name\":\"Import bench $i\",\"external_id\":\"BENCH-$i\"}" \
    "http://127.0.0.1:$port/api/v1/orgs" >/dev/null
done
python3 - "$rows" "$csv" <<'PY'
import sys
rows, path = int(sys.argv[1]), sys.argv[2]
depts = ["Sales", "Engineering", "Operations"]
with open(path, "w") as f:
    f.write("user_id,email,first_name,last_name,status,locale,orgs,profile.department\n")
    for i in range(rows):
        f.write(f"B{i:07d},bench{i}@import.acme.test,Person,{i},active,en,BENCH-{i % 5 + 1},{depts[i % 3]}\n")
PY
echo "file: $rows rows, $(du -h "$csv" | cut -f1)"

run() {
  local query="$1" start end job status
  start=$(date +%s.%N)
  job="$(api -H 'content-type: text/csv' --data-binary @"$csv" "http://127.0.0.1:$port/api/v1/imports/users$query" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  while :; do
    status="$(api "http://127.0.0.1:$port/api/v1/jobs/$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["status"])')"
    [ "$status" = done ] || [ "$status" = failed ] && break
    sleep 0.2
  done
  end=$(date +%s.%N)
  api "http://127.0.0.1:$port/api/v1/jobs/$job" | python3 -c "
import json,sys
j=json.load(sys.stdin); r=j.get('result') or {}
secs=$end-$start
print(f'{\"$2\":<10} {j[\"status\"]}: {secs:.1f} s, {$rows/secs:,.0f} rows/s; created {r.get(\"created\")}, changed {r.get(\"changed\")}, unchanged {r.get(\"unchanged\")}, failed {r.get(\"failed\")}', j.get('error') or '')"
}
run "?dry_run=true&max_change_percent=100" "dry run"
run "?max_change_percent=100" "import"
run "?max_change_percent=100" "again"
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MiB"}')"
