#!/usr/bin/env bash
# A nightly report on a cron schedule with a timezone: its next fires (in Berlin and UTC,
# across the next clock change), then one run now instead of waiting for 02:30.
# Run from anywhere: bash examples/nightly_report/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jr="${JOBRUNNER:-jobrunner}"
work="$(mktemp -d)"
trap 'kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$here/report.py" "$here/jobrunner.toml" "$work/"
cd "$work"
"$jr" daemon 2> daemon.log &
daemon=$!
for n in 1 2 3; do "$jr" submit --cmd -- true >/dev/null; done   # something to report on
"$jr" submit --cmd -- false >/dev/null
echo "== the schedule"
"$jr" schedules list
echo "== run it now"
job=$("$jr" schedules run nightly-report)   # prints the job's id
"$jr" wait "$job" --timeout 60s
cat reports/*.txt
