#!/bin/sh
# The single file's smoke test, run where no Python exists (test_single_file.py hides every
# interpreter in a private mount namespace first). $1: dist/jobrunner; $2: an empty folder.
set -eu
J=$1
cd "$2"
for python in python3 python python3.11; do
    if command -v "$python" >/dev/null 2>&1 && "$python" -c pass 2>/dev/null; then
        echo "smoke: $python still runs here" >&2
        exit 99
    fi
done
# a Python task of the user's own, importing the standard library only
cat > usertasks.py <<'PY'
import csv, io, json, sqlite3, statistics


def summarize(rows):
    table = list(csv.reader(io.StringIO(rows)))
    db = sqlite3.connect(":memory:")
    db.execute("create table t (v real)")
    db.executemany("insert into t values (?)", [(float(r[1]),) for r in table[1:]])
    total = db.execute("select sum(v) from t").fetchone()[0]
    return json.loads(json.dumps({"total": total, "mean": statistics.mean(float(r[1]) for r in table[1:])}))
PY
cat > jobrunner.toml <<'TOML'
[daemon]
shutdown_grace = "5s"

[[schedules]]
name = "every-second"
every = "1s"
command = ["sh", "-c", "echo tick"]
TOML
id=$("$J" submit usertasks:summarize --args '["name,v\na,1\nb,2\nc,6\n"]')
cmd=$("$J" submit --cmd --timeout 10s -- sh -c 'echo from a command')
"$J" daemon --log-file daemon.log &
daemon=$!
"$J" wait "$id" --timeout 60s
"$J" wait "$cmd" --timeout 60s
"$J" status "$id" --json | grep -q '"total": 9.0'
"$J" logs "$cmd" | grep -q 'from a command'
i=0
until "$J" list --json --state succeeded | grep -q '"schedule": "every-second"'; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "smoke: the schedule never fired" >&2; exit 1; }
    sleep 0.1
done
"$J" daemon stop
wait "$daemon"
grep -q " ready: " daemon.log
echo "smoke: ok"
