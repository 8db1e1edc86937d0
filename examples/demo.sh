#!/usr/bin/env bash
# A real run: a daemon works through CPU-heavy jobs, a command and a job that fails
# into the dead-letter queue. Run from anywhere: bash examples/demo.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jr="${JOBRUNNER:-jobrunner}"
work="$(mktemp -d)"
trap 'kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$here/tasks.py" "$here/jobrunner.toml" "$work/"
cd "$work"

echo "== submitting jobs into $work/jobrunner.db"
primes=()
for limit in 2000000 3000000 4000000 5000000; do
  primes+=("$("$jr" submit tasks:count_primes --args "[$limit]")")
done
digest=$("$jr" submit tasks:digest --args '["jobrunner"]' --kwargs '{"rounds": 300000}')
cmd=$("$jr" submit --cmd -- sh -c 'echo "disk usage of $PWD:"; du -sh .')
named=$("$jr" submit checksum --args '["tasks.py"]')
flaky=$("$jr" submit tasks:flaky_payment --args '[1042]' --retries 2 --backoff 200ms)
"$jr" list

echo "== starting the daemon"
"$jr" daemon 2> daemon.log &
daemon=$!

for id in "${primes[@]}" "$digest" "$cmd" "$named"; do
  printf 'job %s -> ' "$id"; "$jr" wait "$id" --timeout 60s
done
printf 'job %s -> ' "$flaky"; "$jr" wait "$flaky" --timeout 60s || echo "(exit $?: dead, as expected)"

echo "== output of the command job $cmd"
"$jr" logs "$cmd"
echo "== status"
"$jr" status
echo "== the dead-letter queue"
"$jr" dlq list
"$jr" dlq show "$flaky"
echo "== daemon log"
kill -TERM "$daemon"; wait "$daemon" || true
cat daemon.log
