"""Chaos: several daemons on one database, killed with kill -9 at random moments and
restarted, while three kinds of submitter add jobs at the same time.

The multi-daemon version of the crash storm (test_crash_storm.py). Three submitters run
as their own processes: `jobrunner submit` one job per process, `jobrunner submit --file`
in bulk, and the Python API (`Client.submit_many` and `insert(prepare(...))`). Each
prints the ids it got back, so the test knows every acknowledged job. Every job appends
`id attempt run tag pid ppid` to the ledger (the `record` task: O_APPEND + fsync), so the
ledger is what really ran, and under which daemon (a worker's parent).

Meanwhile a kill loop picks a live daemon at a random moment, kill -9s its whole process
group and starts another. At the end every acknowledged job succeeded and ran, and every
duplicate execution is one that a `lost` or `crashed` attempt in its history explains;
a claim recorded as `not_started` never ran under the daemon that held it.

The moments, victims and submissions are random but seeded: a failure prints the seed,
and `CHAOS_SEED=N pytest tests/faults/test_chaos.py` replays the same choices.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

import pytest

from jobrunner.lifecycle import Outcome, State
from jobrunner.store import open_store
from tests.faults.test_crash_storm import ended, kill_daemon, ledger_lines, seed_on_failure
from tests.helpers import PYTHON, Daemon, env_for, wait_for
from tests.integration.conftest import ledger, processes_of_test, write_config

DAEMONS = 3
WORKERS = 2
KILLS = 12
RETRIES = KILLS + 1  # every kill may cut the same job short: none may run out of attempts

# The submitters. Each stops at the `stop` file or its cap, prints one id a line as soon
# as it has it, and exits 1 (with the reason on stderr) at the first submit that fails.
SUBMIT_CLI = """
import json, os, random, subprocess, sys
rng = random.Random(int(sys.argv[1]))
cap, retries = int(sys.argv[2]), sys.argv[3]
for i in range(cap):
    if os.path.exists("stop"):
        break
    args = json.dumps([f"c{i}", rng.randint(1, 8)])
    res = subprocess.run(
        [sys.executable, "-m", "jobrunner", "submit", "jtasks:record", "--args", args,
         "--retries", retries, "--backoff", "10ms"],
        capture_output=True, text=True, timeout=60,
    )
    if res.returncode != 0:
        sys.exit(f"submit {i} exited {res.returncode}: {res.stderr.strip()}")
    print(res.stdout.strip(), flush=True)
"""

SUBMIT_FILES = """
import json, os, random, subprocess, sys, time
rng = random.Random(int(sys.argv[1]))
cap, retries = int(sys.argv[2]), int(sys.argv[3])
done, k = 0, 0
while done < cap and not os.path.exists("stop"):
    n = min(cap - done, rng.randint(20, 200))
    name = f"bulk-{k}.jsonl"
    with open(name, "w") as f:
        for j in range(n):
            line = {"task": "jtasks:record", "args": [f"b{k}-{j}", rng.randint(1, 8)],
                    "retries": retries, "backoff": "10ms"}
            f.write(json.dumps(line) + "\\n")
    res = subprocess.run(
        [sys.executable, "-m", "jobrunner", "submit", "--file", name],
        capture_output=True, text=True, timeout=60,
    )
    ids = res.stdout.split()
    if res.returncode != 0 or len(ids) != n:
        sys.exit(f"{name} exited {res.returncode} with {len(ids)} of {n} ids: {res.stderr.strip()}")
    print("\\n".join(ids), flush=True)
    done, k = done + n, k + 1
    time.sleep(rng.uniform(0.2, 1.0))  # pacing: submissions spread over the kills
"""

SUBMIT_API = """
import os, random, sys, time
import jobrunner
rng = random.Random(int(sys.argv[1]))
cap, retries = int(sys.argv[2]), int(sys.argv[3])
done, k = 0, 0
with jobrunner.Client() as client:
    while done < cap and not os.path.exists("stop"):
        n = min(cap - done, rng.randint(20, 300))
        calls = [[f"p{k}-{j}", rng.randint(1, 8)] for j in range(n)]
        if k % 2:
            jobs = [client.prepare("jtasks:record", c, retries=retries, backoff=0.01) for c in calls]
            ids = client.insert(jobs)
        else:
            ids = client.submit_many("jtasks:record", calls, retries=retries, backoff=0.01)
        assert len(ids) == n, (len(ids), n)
        print("\\n".join(map(str, ids)), flush=True)
        done, k = done + n, k + 1
        time.sleep(rng.uniform(0.4, 1.4))  # pacing: submissions spread over the kills
"""

# name -> (source, cap on its jobs)
SUBMITTERS = {
    "cli": (SUBMIT_CLI, 300),
    "files": (SUBMIT_FILES, 2500),
    "api": (SUBMIT_API, 4000),
}
EXPLAINED = {Outcome.SUCCEEDED, Outcome.LOST, Outcome.CRASHED, Outcome.NOT_STARTED}


def owner_pid(owner: str | None) -> int:
    """The pid in a daemon id `host:pid:uuid`."""
    return int((owner or "::").rsplit(":", 2)[1])


def held_by(db: Path, pid: int) -> dict[str, set[int]]:
    """The jobs the store has running under the daemon with this pid, by daemon id."""
    store = open_store(str(db), create=False)
    try:
        held: dict[str, set[int]] = {}
        for j in store.job_list(State.RUNNING.value, None, 100_000):
            if j.owner is not None and owner_pid(j.owner) == pid:
                held.setdefault(j.owner, set()).add(j.id)
        return held
    finally:
        store.close()


class Submitter:
    def __init__(self, workdir: Path, db: Path, name: str, seed: int) -> None:
        source, cap = SUBMITTERS[name]
        script = workdir / f"submit_{name}.py"
        script.write_text(source)
        self.name = name
        self.out = workdir / f"{name}.ids"
        self.err = workdir / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, script.name, str(seed), str(cap), str(RETRIES)],
                cwd=workdir,
                env=env_for(workdir, db),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def ids(self, timeout: float) -> list[int]:
        """Wait for it to exit; the ids it was given."""
        code = self.proc.wait(timeout)
        assert code == 0, f"submitter {self.name} exited {code}: {self.err.read_text()}"
        return [int(x) for x in self.out.read_text().split()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.mark.slow
def test_chaos_of_daemons_killed_while_three_kinds_of_submitter_add_jobs(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    with seed_on_failure(seed, "chaos", "CHAOS_SEED"):
        write_config(workdir, workers=str(WORKERS), lease='"2s"')
        live: list[Daemon] = []

        def start() -> None:
            d = Daemon(workdir, db, "--workers", str(WORKERS))
            daemons.append(d)
            live.append(d)

        for _ in range(DAEMONS):
            start()
        submitters = [Submitter(workdir, db, name, rng.randrange(1 << 32)) for name in SUBMITTERS]
        began = time.monotonic()
        try:
            # daemon id -> the jobs the store had running under it just after its kill
            held_at_kill: dict[str, set[int]] = {}
            for _ in range(KILLS):
                while len(live) < DAEMONS:
                    start()
                # The moment: after this many more ledger lines, or this long, whichever
                # comes first (so the kills go on when the queues run dry).
                lines = ledger_lines(workdir) + rng.randint(30, 400)
                until = time.monotonic() + rng.uniform(0.3, 2.5)

                def moment(lines: int = lines, until: float = until) -> bool:
                    return ledger_lines(workdir) >= lines or time.monotonic() >= until

                wait_for(moment, timeout=10, every=0.01, what="the moment of the next kill")
                victim = live.pop(rng.randrange(len(live)))
                kill_daemon(victim, workdir)
                held_at_kill.update(held_by(db, victim.pid))
                if rng.random() < 0.75:  # else the next gap runs one daemon short
                    start()

            submitting = sum(s.proc.poll() is None for s in submitters)
            (workdir / "stop").write_text("")
            kills_took = time.monotonic() - began
            acked = {s.name: s.ids(timeout=60) for s in submitters}
        finally:
            for s in submitters:
                s.kill()
        while len(live) < DAEMONS:
            start()

        ids = [i for got in acked.values() for i in got]
        by_submitter = {name: len(got) for name, got in acked.items()}
        assert len(ids) == len(set(ids)), "an id was handed out twice"
        assert all(by_submitter.values()), by_submitter

        store = open_store(str(db), create=False)
        try:
            wait_for(
                lambda: ended(store) >= len(ids),
                timeout=60,
                every=0.1,
                what="every acknowledged job to end",
            )
            drain_took = time.monotonic() - began - kills_took
            jobs = {j.id: j for j in store.job_list(None, None, 10 * len(ids))}
            # 1. every acknowledged job exists and succeeded; no other job appeared
            assert set(jobs) == set(ids), sorted(set(jobs) ^ set(ids))[:20]
            not_ok = {i: j.state for i, j in jobs.items() if j.state != State.SUCCEEDED}
            assert not not_ok, f"jobs that did not succeed: {dict(list(not_ok.items())[:20])}"

            lost: Counter[int] = Counter()  # lost or crashed attempts, by job
            rescued_from: dict[str | None, set[int]] = {}  # daemon id -> jobs rescued from it
            not_started: set[tuple[int, int, int]] = set()  # (job, attempt, daemon pid)
            succeeded: set[tuple[int, int, int]] = set()  # (job, attempt, daemon pid)
            odd: list[tuple[int, int, str]] = []
            for job_id in ids:
                for a in store.attempt_list(job_id):
                    pid = owner_pid(a.owner)
                    if a.outcome not in EXPLAINED:
                        odd.append((job_id, a.attempt, a.outcome.value))
                    if a.outcome in (Outcome.LOST, Outcome.CRASHED):
                        lost[job_id] += 1
                    if a.outcome in (Outcome.LOST, Outcome.NOT_STARTED):
                        rescued_from.setdefault(a.owner, set()).add(job_id)
                    if a.outcome is Outcome.NOT_STARTED:
                        not_started.add((job_id, a.attempt, pid))
                    if a.outcome is Outcome.SUCCEEDED:
                        succeeded.add((job_id, a.attempt, pid))
        finally:
            store.close()
        assert not odd, f"attempts no kill explains (job, attempt, outcome): {odd[:20]}"

        entries = ledger(workdir)
        ran = Counter(e.job_id for e in entries)
        ran_under = {(e.job_id, e.attempt, e.ppid) for e in entries}
        # 2. every acknowledged job ran; and the success recorded is a run that happened,
        # as that attempt and under the daemon that recorded it
        assert set(ran) == set(ids), f"never ran: {sorted(set(ids) - set(ran))[:20]}"
        unseen = sorted(succeeded - ran_under)
        assert not unseen, f"recorded successes with no such run (job, attempt, pid): {unseen[:20]}"
        # 3. a job ran more than once only as often as kills cut its attempts short
        too_often = {i: (ran[i], lost[i]) for i in ids if ran[i] > lost[i] + 1}
        assert not too_often, f"ran more often than lost attempts + 1: {too_often}"
        # 4. a claim recorded as never started never ran under the daemon that held it
        started = sorted(not_started & ran_under)
        assert not started, f"`not_started` claims that ran (job, attempt, pid): {started[:20]}"
        # ... and what each kill cut short was rescued (unless a peer rescued it first)
        for owner, held in held_at_kill.items():
            missed = held - rescued_from.get(owner, set())
            assert not missed, f"daemon {owner} held {sorted(missed)[:20]} at its kill: not rescued"
        assert sum(lost.values()) + len(not_started) > 0, "no kill cut a job short"

        # 5. nothing of the test outlives it
        for d in live:
            assert d.stop() == 0, d.log()
        wait_for(lambda: not processes_of_test(db), timeout=10, what="every process to exit")
        print(
            f"chaos seed {seed}: {KILLS} kills, {len(entries)} runs of {len(ids)} jobs,"
            f" {sum(lost.values())} lost or crashed, {len(not_started)} not started;"
            f" by submitter {by_submitter};"
            f" kills {kills_took:.1f}s, then all ended after {drain_took:.1f}s;"
            f" {submitting} submitters still running at the last kill;"
            f" held at the kills {sorted(len(h) for h in held_at_kill.values())}"
        )
