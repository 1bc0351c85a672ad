#!/usr/bin/env bash
# Reports benchmark: one academy of 100,000 learners in 1,111 organizations with 1,000,000 enrollments
# (host/examples/seed_reports.rs), served by the release binary (notifications off). For each backend:
#   - completion-by-org: as JSON, whole (limit=1000, following `next`), as the academy admin and as the org
#     manager of one division, and as CSV (the whole report in one response): one warm-up, then ROUNDS timed
#     runs (min and median);
#   - learner-progress as CSV (one row per enrollment), streamed to a file: time, rows, and the server's peak
#     memory (VmHWM), on a freshly started server so that the peak belongs to the export.
#
#   benches/reports.sh                 # SQLite, and PostgreSQL when one answers on 127.0.0.1:5432
#   benches/reports.sh sqlite          # only SQLite (or: postgres)
#   ROUNDS=10 FRESH=1 KEEP_DB=1 benches/reports.sh
#
# FRESH=1 seeds again even when the database is there; KEEP_DB=1 keeps the databases for the next run
# (/tmp/aula-reports-bench.db and the PostgreSQL database aula_bench_reports), which are removed otherwise;
# NO_BUILD=1 uses the release binaries as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
rounds="${ROUNDS:-7}"
port="${PORT:-18082}"
users="${USERS:-100000}"
per_user="${PER_USER:-10}"
sqlite_db="/tmp/aula-reports-bench.db"
pg_admin="postgres://postgres@127.0.0.1:5432/postgres"
pg_url="postgres://postgres@127.0.0.1:5432/aula_bench_reports"
host="bench.localhost"
base="http://127.0.0.1:$port"
password="bench-reports-2026"
out="/tmp/aula-reports-bench"
summary="$out/summary.txt"
mkdir -p "$out"
: >"$summary"

[ -n "${NO_BUILD:-}" ] || cargo build --release -p aula --bin aula --example seed_reports

server=""
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
cleanup() {
  stop_server
  if [ -z "${KEEP_DB:-}" ]; then
    rm -f "$sqlite_db" "$sqlite_db-wal" "$sqlite_db-shm"
    if command -v psql >/dev/null && psql "$pg_admin" -qc "SELECT 1" >/dev/null 2>&1; then
      psql "$pg_admin" -qc "DROP DATABASE IF EXISTS aula_bench_reports WITH (FORCE)" >/dev/null
    fi
  fi
}
trap cleanup EXIT

start_server() {
  AULA_DATABASE_URL="$1" AULA_LISTEN="127.0.0.1:$port" AULA_COOKIE_SECURE=false RUST_LOG=warn \
    AULA_NOTIFICATIONS_ENABLED=false target/release/aula serve >>"$out/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do curl -fs "$base/readyz" >/dev/null && return 0; sleep 0.2; done
  echo "the server did not start; see $out/server.log" >&2
  exit 1
}

login() {
  curl -fsS -D - -o /dev/null -H "Host: $host" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$password\"}" "$base/api/v1/auth/login" |
    tr -d '\r' | sed -n 's/^set-cookie: \(aula_session=[^;]*\).*/\1/ip'
}

# Peak resident memory of the server so far, in MB.
peak_mb() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$server/status"; }

# Fetch a JSON report whole, following `next` links; prints "seconds first_page_seconds pages rows".
fetch_json() {
  local cookie="$1" url="$2" total=0 first="" pages=0 rows=0 t n next
  while [ -n "$url" ]; do
    t="$(curl -fsS -o "$out/page.json" -w '%{time_total}' -H "Host: $host" -H "Cookie: $cookie" "$base$url")"
    total="$(python3 -c "print($total + $t)")"
    first="${first:-$t}"
    read -r n next < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(len(d["rows"]), d.get("next") or "")' \
      "$out/page.json")
    rows=$((rows + n))
    pages=$((pages + 1))
    url="$next"
  done
  echo "$total $first $pages $rows"
}

# min and median of the numbers on stdin.
stats() { sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f %.3f\n", v[1], m}'; }

time_report() {
  local label="$1" cookie="$2" url="$3" total first pages rows totals=() firsts=()
  fetch_json "$cookie" "$url" >/dev/null # warm-up
  for _ in $(seq 1 "$rounds"); do
    read -r total first pages rows < <(fetch_json "$cookie" "$url")
    totals+=("$total")
    firsts+=("$first")
  done
  read -r min median < <(printf '%s\n' "${totals[@]}" | stats)
  read -r fmin fmedian < <(printf '%s\n' "${firsts[@]}" | stats)
  echo "  $label: $rows rows in $pages requests; whole report ${totals[*]} s (min $min, median $median);" \
    "first request alone min $fmin, median $fmedian s"
  echo "$backend|$label|$rows rows, $pages requests|whole: min $min s, median $median s; first request: median $fmedian s" \
    >>"$summary"
}

# Time one CSV download (the whole report in one response) ROUNDS times after a warm-up.
time_csv() {
  local label="$1" cookie="$2" url="$3" times=() rows
  for i in $(seq 0 "$rounds"); do
    t="$(curl -fsS -o "$out/report.csv" -w '%{time_total}' -H "Host: $host" -H "Cookie: $cookie" "$base$url")"
    [ "$i" -gt 0 ] && times+=("$t")
  done
  rows=$(($(wc -l <"$out/report.csv") - 1))
  read -r min median < <(printf '%s\n' "${times[@]}" | stats)
  echo "  $label: $rows rows in one response; ${times[*]} s (min $min, median $median)"
  echo "$backend|$label|$rows rows, 1 request|min $min s, median $median s" >>"$summary"
}

run() {
  backend="$1"
  local url="$2"
  echo "== $backend"
  case "$url" in
    sqlite:*) [ -n "${FRESH:-}" ] && rm -f "$sqlite_db" "$sqlite_db-wal" "$sqlite_db-shm" ;;
    postgres*)
      [ -n "${FRESH:-}" ] && psql "$pg_admin" -qc "DROP DATABASE IF EXISTS aula_bench_reports WITH (FORCE)"
      psql "$pg_admin" -tAc "SELECT 1 FROM pg_database WHERE datname = 'aula_bench_reports'" | grep -q 1 ||
        psql "$pg_admin" -qc "CREATE DATABASE aula_bench_reports" ;;
  esac
  local t0=$SECONDS
  target/release/examples/seed_reports "$url" "$users" "$per_user"
  case "$url" in
    # What autovacuum would have done by the time anyone runs a report: statistics and the visibility map.
    postgres*) psql "${url}" -qc "VACUUM ANALYZE" ;;
  esac
  echo "  seeding (or checking) took $((SECONDS - t0)) s"

  : >"$out/server.log"
  start_server "$url"
  echo "  load average before measuring: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$backend|load average before measuring|$(cut -d' ' -f1-3 /proc/loadavg)|" >>"$summary"
  local admin manager
  admin="$(login admin@bench.test)" && [ -n "$admin" ] || { echo "signing in failed" >&2; exit 1; }
  manager="$(login manager@bench.test)"
  if ! curl -fs -o "$out/reports.json" -H "Host: $host" -H "Cookie: $admin" "$base/api/v1/reports"; then
    echo "GET /api/v1/reports does not answer: this build has no reports yet" >&2
    exit 1
  fi
  time_report "completion-by-org JSON, admin" "$admin" "/api/v1/reports/completion-by-org?format=json&limit=1000"
  time_report "completion-by-org JSON, manager of one division" "$manager" \
    "/api/v1/reports/completion-by-org?format=json&limit=1000"
  time_csv "completion-by-org CSV, admin" "$admin" "/api/v1/reports/completion-by-org?format=csv"

  echo "  server peak memory after the completion-by-org runs: $(peak_mb) MB"

  # The CSV export on a fresh process, so that its peak memory (VmHWM) is that of start-up, one sign-in and
  # the export; resident memory is also sampled every 0.1 s while the export runs.
  stop_server
  start_server "$url"
  admin="$(login admin@bench.test)"
  local before csv_time ttfb rows size after sampler during
  before="$(peak_mb)"
  while sleep 0.1; do awk '/^VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null || break; done >"$out/rss.txt" &
  sampler=$!
  read -r csv_time ttfb size < <(curl -fsS -o "$out/learner-progress.csv" \
    -w '%{time_total} %{time_starttransfer} %{size_download}\n' -H "Host: $host" -H "Cookie: $admin" \
    "$base/api/v1/reports/learner-progress?format=csv")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  after="$(peak_mb)"
  during="$(sort -n "$out/rss.txt" | tail -1 | awk '{printf "%.1f", $1 / 1024}')"
  rows=$(($(wc -l <"$out/learner-progress.csv") - 1))
  echo "  learner-progress CSV: $rows rows, $((size / 1024 / 1024)) MiB in $csv_time s (first byte after $ttfb s);" \
    "server peak memory (VmHWM) $before MB before, $after MB after; largest resident memory sampled during it $during MB"
  echo "$backend|learner-progress CSV|$rows rows, $((size / 1024 / 1024)) MiB|$csv_time s; peak RSS $before -> $after MB" \
    >>"$summary"
  stop_server
}

if [ "$which" = all ] || [ "$which" = sqlite ]; then
  run SQLite "sqlite:$sqlite_db"
fi
if [ "$which" = all ] || [ "$which" = postgres ]; then
  if command -v psql >/dev/null && psql "$pg_admin" -qc "SELECT 1" >/dev/null 2>&1; then
    run PostgreSQL "$pg_url"
  else
    echo "== PostgreSQL: nothing answers on 127.0.0.1:5432, skipped"
  fi
fi

echo
echo "== summary ($(nproc) cores; $(date -u +%F))"
column -t -s '|' "$summary"
