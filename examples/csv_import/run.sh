#!/usr/bin/env bash
# A large CSV imported into SQLite by a job that reports its progress.
# Run from anywhere: bash examples/csv_import/run.sh [ROWS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jr="${JOBRUNNER:-jobrunner}"
rows="${1:-200000}"
work="$(mktemp -d)"
trap 'kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$here/importer.py" "$work/"
cd "$work"
"$jr" daemon --workers 2 2> daemon.log &
daemon=$!

sample=$("$jr" submit importer:make_sample --args "[\"sales.csv\", $rows]")
"$jr" wait "$sample" --timeout 120s >/dev/null
job=$("$jr" submit importer:import_csv --args '["sales.csv", "sales.db"]' --retries 2 --timeout 10m)
echo "== importing $(wc -l < sales.csv) lines as job $job"
show='import json, sys; j = json.load(sys.stdin)
print(j["state"], format(j["progress"] or 0, ".0%"), j["progress_message"] or "")'
while :; do
  line=$("$jr" status "$job" --json | python3 -c "$show")
  echo "  $line"
  case "$line" in succeeded*|dead*|cancelled*) break ;; esac
  sleep 0.2
done
echo "== result"
"$jr" wait "$job"
echo "== its output"
"$jr" logs "$job"
