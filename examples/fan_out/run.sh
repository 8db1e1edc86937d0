#!/usr/bin/env bash
# Fan-out / fan-in: a job splits a text, counts its parts in parallel jobs and merges
# them in a job that runs after every part (`after=`). Run from anywhere:
#   bash examples/fan_out/run.sh [LINES] [PARTS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jr="${JOBRUNNER:-jobrunner}"
lines="${1:-200000}"
parts="${2:-4}"
work="$(mktemp -d)"
trap 'kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$here/wordcount.py" "$work/"
cd "$work"
"$jr" daemon --workers 3 2> daemon.log &
daemon=$!

text=$("$jr" submit wordcount:make_text --args "[\"text.txt\", $lines]")
"$jr" wait "$text" --timeout 60s >/dev/null
split=$("$jr" submit wordcount:split --args "[\"text.txt\", $parts]")
echo "== split (job $split)"
result=$("$jr" wait "$split" --timeout 60s)
echo "$result"
merge=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["merge"])' "$result")
echo "== the merge waits for the parts"
"$jr" status "$merge" | grep -E '^(state|after) '
echo "== merged (job $merge)"
"$jr" wait "$merge" --timeout 60s
echo "== every job"
"$jr" list --all
