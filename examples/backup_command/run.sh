#!/usr/bin/env bash
# A command job: a backup with tar, under a timeout, retried if it fails; and one that
# overruns its timeout, killed (its whole process group) and recorded as such.
# Run from anywhere: bash examples/backup_command/run.sh
set -euo pipefail
jr="${JOBRUNNER:-jobrunner}"
work="$(mktemp -d)"
trap 'kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
mkdir -p data/photos data/notes backups
for n in $(seq 1 200); do head -c 20000 /dev/urandom > "data/photos/img$n.raw"; done
printf 'remember the milk\n' > data/notes/todo.txt
"$jr" daemon 2> daemon.log &
daemon=$!

archive="backups/data-$(date +%Y%m%d-%H%M%S).tar.gz"
backup=$("$jr" submit --cmd --timeout 5m --retries 2 --queue backups -- \
  tar --create --gzip --verbose --file "$archive" data)
echo "== backup job $backup"
"$jr" wait "$backup" --timeout 120s >/dev/null
"$jr" status "$backup"
echo "== the archive: $(tar --list --gzip --file "$archive" | wc -l) entries, $(du -h "$archive" | cut -f1)"
echo "== its output (first lines)"
"$jr" logs "$backup" | head -5

slow=$("$jr" submit --cmd --timeout 2s -- sh -c 'echo copying...; sleep 600; echo never')
echo "== a job that overruns its 2s timeout: $slow"
"$jr" wait "$slow" --timeout 60s || echo "(exit $?: it ended dead, as it should)"
"$jr" status "$slow" --json | python3 -c 'import json, sys; j = json.load(sys.stdin)
print("state:", j["state"], "| outcome:", j["attempt_history"][-1]["outcome"])'
