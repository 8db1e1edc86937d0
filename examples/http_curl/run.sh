#!/usr/bin/env bash
# An application without Python (here: bash and curl) submits a job over the HTTP API,
# follows its events live (Server-Sent Events) and reads its result.
# Run from anywhere: bash examples/http_curl/run.sh [PORT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jr="${JOBRUNNER:-jobrunner}"
port="${1:-8791}"
work="$(mktemp -d)"
trap 'kill "$follow" 2>/dev/null || true; kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
sed "s/127.0.0.1:8791/127.0.0.1:$port/" "$here/jobrunner.toml" > "$work/jobrunner.toml"
cd "$work"
export JOBRUNNER_TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
api="http://127.0.0.1:$port"
auth="Authorization: Bearer $JOBRUNNER_TOKEN"
follow=""
"$jr" daemon 2> daemon.log &   # runs the HTTP server as its child ([http] in the config)
daemon=$!
until curl -sf "$api/healthz" -H "$auth" >/dev/null; do sleep 0.1; done

echo "== without the token: $(curl -s -o /dev/null -w '%{http_code}' -X POST "$api/jobs")"
echo "== POST /jobs"
headers=$(curl -s -D - -o body.json -X POST "$api/jobs" -H "$auth" \
  -H 'Content-Type: application/json' -d '{"task": "checksum", "args": ["/etc/hostname"]}')
echo "$headers" | head -1
location=$(echo "$headers" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
echo "Location: $location"

echo "== GET /events?job=... (live, until the job ends)"
exec 3< <(curl -sN "$api/events?job=${location##*/}" -H "$auth")
follow=$!
while read -r line <&3; do
  case "$line" in
    event:*) echo "  $line" ;;
  esac
  case "$line" in
    "event: job.succeeded" | "event: job.dead" | "event: job.cancelled") break ;;
  esac
done
kill "$follow" 2>/dev/null || true

echo "== GET $location"
curl -s "$api$location" -H "$auth"
echo
echo "== GET $location/logs"
curl -s "$api$location/logs" -H "$auth"
