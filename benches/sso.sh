#!/usr/bin/env bash
# Single sign-on round trips: the release build with the demo (SQLite), the test OpenID provider
# (tests/oidc, panva's oidc-provider), acme's admin adds it as an identity provider with a mapping
# (organizations by path, tags, the language), then benches/sso.py signs Alice in ROUNDS times and prints the
# latency of the start and of the callback (code exchange, token checks, account and mapping, session),
# beside a password sign-in.
#
#   benches/sso.sh
#   ROUNDS=500 benches/sso.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-200}"
port="${PORT:-18084}"
db="/tmp/aula-sso-bench.db"
host="acme.localhost:$port"

bash .ci/oidc >/dev/null
cargo build --release --locked -p aula --bin aula

rm -rf "$db" "$db-wal" "$db-shm" /tmp/aula-sso-bench-themes
AULA_DATABASE_URL="sqlite:$db" AULA_LISTEN="127.0.0.1:$port" AULA_THEMES_DIR=/tmp/aula-sso-bench-themes \
  AULA_COOKIE_SECURE=false AULA_SSO_ALLOW_PRIVATE_ADDRESSES=true AULA_LOGIN_MAX_FAILURES=1000000 RUST_LOG=error \
  target/release/aula serve --demo >/tmp/aula-sso-bench.log 2>&1 &
server=$!
ready="$(mktemp)"
(cd tests/oidc && AULA_OIDC_CLIENTS="[{\"client_id\":\"acme-portal\",\"client_secret\":\"bench-secret\",\"redirect_uris\":[\"http://$host/sso/callback\"]}]" \
  AULA_OIDC_ACCOUNTS='{"alice":{"email":"alice.sso@acme.test","email_verified":true,"name":"Alice Example","locale":"de-DE","department":"Acme/Sales/Sales EMEA","groups":["REGION_UK"]}}' \
  exec node provider.mjs >"$ready" 2>/dev/null) &
idp=$!
trap 'kill $server $idp 2>/dev/null || true; rm -f "$ready"' EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && grep -q READY "$ready" && break; sleep 0.2; done
issuer="$(sed -n 's/^READY //p' "$ready")"

admin="$(curl -fs -D - -o /dev/null -H "Host: $host" -H 'content-type: application/json' \
  -d '{"email":"admin@acme.test","password":"aula-demo-2026"}' "http://127.0.0.1:$port/api/v1/auth/login" |
  tr -d '\r' | sed -n 's/^set-cookie: \(aula_session=[^;]*\).*/\1/ip')"
provider="$(curl -fs -H "Host: $host" -H "Cookie: $admin" -H 'content-type: application/json' -d "{
    \"name\": \"Acme staff\", \"issuer\": \"$issuer\", \"client_id\": \"acme-portal\", \"client_secret\": \"bench-secret\",
    \"scopes\": [\"org\"],
    \"mapping\": {\"orgs\": {\"claim\": \"department\", \"by\": \"path\"}, \"tags\": {\"claim\": \"groups\"}, \"locale\": true}
  }" "http://127.0.0.1:$port/api/v1/identity-providers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"

python3 benches/sso.py "$port" "$host" "$provider" "$rounds"
