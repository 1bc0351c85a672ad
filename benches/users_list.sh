#!/usr/bin/env bash
# Load benchmark: authenticated GET /api/v1/users?limit=50 on a tenant of 10,000 users (two tenants),
# loaded from a second process (wrk) on loopback. Prints requests/s and the latency distribution.
#
#   benches/users_list.sh                                  # SQLite
#   benches/users_list.sh postgres://postgres@127.0.0.1:5432/aula_bench   # PostgreSQL (database is recreated)
set -euo pipefail
cd "$(dirname "$0")/.."
url="${1:-sqlite:/tmp/aula-bench.db}"
duration="${DURATION:-20s}"
connections="${CONNECTIONS:-32}"
threads="${THREADS:-1}"
port="${PORT:-18080}"

command -v wrk >/dev/null || { echo "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p aula --bin aula --example bench_seed

case "$url" in
  sqlite:*) rm -f "${url#sqlite:}" "${url#sqlite:}-wal" "${url#sqlite:}-shm" ;;
  postgres*)
    admin="${url%/*}/postgres"; name="${url##*/}"
    psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" ;;
esac

tokens="$(target/release/examples/bench_seed "$url" 2 10000)"
token="$(echo "$tokens" | awk '$1=="bench0"{print $2}')"
AULA_DATABASE_URL="$url" AULA_LISTEN="127.0.0.1:$port" RUST_LOG=warn target/release/aula serve &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
curl -fs -H "Host: bench0.localhost" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/users?limit=50" | head -c 300; echo
wrk -t"$threads" -c"$connections" -d"$duration" --latency \
  -H "Host: bench0.localhost" -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/v1/users?limit=50"
