#!/usr/bin/env bash
# Thumbnails with Pillow: CPU-bound jobs in forked workers, each under a memory limit.
# Needs Pillow where jobrunner is installed (pip install pillow).
# Run from anywhere: bash examples/thumbnails/run.sh [IMAGES]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jr="${JOBRUNNER:-jobrunner}"
count="${1:-24}"
work="$(mktemp -d)"
trap 'kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$here/thumbs.py" "$here/jobrunner.toml" "$work/"
cd "$work"
"$jr" daemon 2> daemon.log &
daemon=$!
made=$("$jr" submit thumbs:make_images --args "[\"photos\", $count]" --timeout 5m)
"$jr" wait "$made" --timeout 300s >/dev/null
echo "== $count images of 1600x1600 made; one thumbnail job each"
for f in photos/*.jpg; do printf '{"task": "thumbnail", "args": ["%s"]}\n' "$f"; done > jobs.jsonl
ids=$("$jr" submit --file jobs.jsonl)
for id in $ids; do "$jr" wait "$id" --timeout 120s >/dev/null; done
echo "== $(ls photos/*.thumb.jpg | wc -l) thumbnails made by 2 workers; the last job's attempt:"
"$jr" status "$(echo "$ids" | tail -1)" | sed -n '/^Attempts/,$p'
"$jr" status | sed -n '1,/^$/p'
