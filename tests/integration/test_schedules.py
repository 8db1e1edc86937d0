"""Schedules with real daemons: every = "1s" fires, misfire and overlap policies across a
real stop and start, two daemons on one file, and config reload (file change, SIGHUP).

The daemon reads ./jobrunner.toml from its working directory. Jobs are read back with
`jobrunner list --json`; times there are ISO 8601 to the millisecond.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from jobrunner.store import open_store
from tests.helpers import Daemon, cli, env_for, wait_for
from tests.integration.conftest import ledger

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends

DAEMON = """\
[daemon]
shutdown_grace = "5s"
kill_grace = "1s"
poll_interval = "250ms"
"""


def write_config(workdir: Path, schedules: str, daemon: str = "") -> Path:
    """./jobrunner.toml, written whole at once (a daemon may read it at any moment);
    `daemon`: more [daemon] lines."""
    path = workdir / "jobrunner.toml"
    tmp = workdir / "jobrunner.toml.tmp"
    tmp.write_text(DAEMON + daemon + "\n" + schedules)
    os.replace(tmp, path)
    return path


def every_second(name: str, **values: str) -> str:
    lines = [
        "[[schedules]]",
        f'name = "{name}"',
        'every = "1s"',
        'task = "jtasks:record"',
        f'args = ["{name}"]',
    ]
    lines += [f'{k} = "{v}"' for k, v in values.items()]
    return "\n".join(lines) + "\n\n"


def ts(text: str | None) -> float | None:
    if text is None:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def fired(workdir: Path, db: Path, name: str | None = None) -> list[dict[str, Any]]:
    """The jobs schedules made (or `name` made), by scheduled_for; times as epoch floats.

    The CLI reads a config of its own, so a broken ./jobrunner.toml (for the daemon's
    reload) does not stop it."""
    own = workdir / "cli.toml"
    if not own.exists():
        own.write_text("# the test's CLI config\n")
    env = env_for(workdir, db)
    env["JOBRUNNER_CONFIG"] = str(own)
    res = cli(workdir, db, "list", "--json", "--limit", "100000", env=env)
    assert res.code == 0, res.err
    out = []
    for job in res.json():
        if job["schedule"] is None or (name is not None and job["schedule"] != name):
            continue
        for key in ("scheduled_for", "created_at", "started_at", "finished_at", "run_at"):
            job[key] = ts(job[key])
        out.append(job)
    return sorted(out, key=lambda j: j["scheduled_for"])


def seconds(jobs: list[dict[str, Any]]) -> list[int]:
    return [int(j["scheduled_for"]) for j in jobs]


def wait_fired(
    workdir: Path, db: Path, name: str, count: int, after: float = 0.0, timeout: float = 15
) -> list[dict[str, Any]]:
    """Wait until `name` has made `count` jobs scheduled after `after`."""
    return wait_for(
        lambda: (
            jobs
            if len(jobs := [j for j in fired(workdir, db, name) if j["scheduled_for"] > after])
            >= count
            else None
        ),
        timeout=timeout,
        every=0.2,
        what=f"{count} fires of {name} after {after}",
    )


def assert_no_duplicates(jobs: list[dict[str, Any]]) -> None:
    got = [(j["schedule"], j["scheduled_for"]) for j in jobs]
    assert len(got) == len(set(got)), "a fire got two jobs"


def assert_consecutive(secs: list[int]) -> None:
    missing = sorted(set(range(secs[0], secs[-1] + 1)) - set(secs))
    assert not missing, f"no job for {missing}"


# -- every = "1s" ---------------------------------------------------------------------------------


def test_every_second_fires_once_a_second_on_whole_seconds(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, every_second("tick", overlap="allow"))
    started = time.time()
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    jobs = wait_fired(workdir, db, "tick", 4)
    # the timetable starts when the daemon first sees the schedule: nothing from before
    assert jobs[0]["scheduled_for"] > started
    wait_for(
        lambda: all(j["state"] == "succeeded" for j in fired(workdir, db, "tick")[:4]),
        timeout=15,
        what="the first four ticks done",
    )
    jobs = fired(workdir, db, "tick")
    elapsed = time.time() - jobs[0]["scheduled_for"]
    assert_no_duplicates(jobs)
    secs = seconds(jobs)
    assert all(j["scheduled_for"] == s for j, s in zip(jobs, secs, strict=True))  # whole seconds
    assert_consecutive(secs)
    assert abs(len(jobs) - elapsed) <= 2.5, (len(jobs), elapsed)
    for job in jobs:
        assert job["schedule"] == "tick"
        assert job["run_at"] == job["scheduled_for"]
        assert 0 <= job["created_at"] - job["scheduled_for"] < 1.5  # made on time
    assert {e.tag for e in ledger(workdir)} == {"tick"}

    res = cli(workdir, db, "schedules", "list", "--json")
    assert res.code == 0, res.err
    (row,) = res.json()
    assert row["last_fire"] is not None and ts(row["last_fire"]) >= jobs[-1]["scheduled_for"]
    assert row["last_job"]["state"] in ("queued", "running", "succeeded")
    assert row["last_job"]["manual"] is False


# -- misfire, across a real stop and start --------------------------------------------------------


@pytest.mark.slow
def test_misfire_policies_across_a_stop_and_start(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """One schedule per policy, misfire_grace = 1s; the daemon is stopped for ~4 s."""
    policies = ("skip", "once", "all")
    write_config(
        workdir,
        "".join(every_second(p, misfire=p, misfire_grace="1s", overlap="allow") for p in policies),
    )
    first = Daemon(workdir, db, "--workers", "3")
    daemons.append(first)
    for p in policies:
        wait_fired(workdir, db, p, 2)
    assert first.stop() == 0
    last_before = {p: fired(workdir, db, p)[-1]["scheduled_for"] for p in policies}
    stopped = time.time()
    time.sleep(max(0.0, stopped + 4 - time.time()))  # the downtime under test
    restart = time.time()
    daemons.append(Daemon(workdir, db, "--workers", "3"))
    for p in policies:
        wait_fired(workdir, db, p, 2, after=restart)

    # seconds surely missed: every fire older than the grace when the new daemon first ran
    for p in policies:
        jobs = fired(workdir, db, p)
        assert_no_duplicates(jobs)
        after = [j for j in jobs if j["scheduled_for"] > last_before[p]]
        gap = [s for s in range(int(last_before[p]) + 1, int(restart)) if s < restart - 1]
        assert len(gap) >= 3, gap
        late = [j for j in after if j["created_at"] - j["scheduled_for"] > 1.0]
        secs = seconds(after)
        if p == "skip":
            assert late == [], f"skip made catch-up jobs {seconds(late)}"
            assert not set(gap) & set(secs)
        elif p == "once":
            assert len(late) == 1, f"once made {len(late)} catch-up jobs: {seconds(late)}"
            assert len(set(gap) & set(secs)) <= 1
            catch_up = int(late[0]["scheduled_for"])
            assert catch_up >= gap[-1]  # the latest missed fire
            assert_consecutive([s for s in secs if s >= catch_up])
        else:
            assert set(gap) <= set(secs), f"all missed {sorted(set(gap) - set(secs))}"
            assert len(late) >= len(gap)
            assert_consecutive(seconds(jobs))  # one job per second, across the stop


# -- a day-long catch-up, with a short lease ------------------------------------------------------


def heartbeat_gaps(beats: dict[str, list[float]]) -> dict[str, float]:
    """The longest time between two heartbeats of each daemon."""
    return {
        d: max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
        for d, times in beats.items()
    }


@pytest.mark.slow
def test_a_day_long_catch_up_never_stalls_the_heartbeat(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """Per-second schedules whose last fire is a day old, lease 3 s, two daemons on the
    file. Catching up (misfire "all" with max_catchup 30,000, "once", "skip") is done a
    part at a time: each daemon's heartbeat moves at least every 2/3 lease throughout, no
    daemon is presumed dead, and every policy makes exactly its jobs. (It used to compute
    the day's 86,400 fires of each cron in one go: seconds without a heartbeat.)"""
    lease = 3.0
    elsewhere = {"queue": "elsewhere", "misfire_grace": "2s", "overlap": "allow"}
    schedules = "".join(
        f'[[schedules]]\nname = "{name}"\n{timing}\ntask = "jtasks:record"\n'
        + "".join(f'{k} = "{v}"\n' for k, v in {**elsewhere, "misfire": misfire}.items())
        + extra
        + "\n"
        for name, timing, misfire, extra in [
            ("all", 'cron = "* * * * * *"', "all", "max_catchup = 30000\n"),
            ("once", 'cron = "* * * * * *"\ntimezone = "Europe/Berlin"', "once", ""),
            ("skip", 'every = "1s"', "skip", ""),
        ]
    )
    write_config(workdir, schedules, daemon=f'lease = "{lease:g}s"\n')
    day_ago = time.time() - 86400
    with contextlib.closing(open_store(str(db))) as store:
        for name in ("all", "once", "skip"):
            assert store.schedule_fire(name, None, day_ago, [], day_ago) == []
        # the jobs go to a queue these daemons do not serve: only the scheduler works
        before = time.time()
        daemons.append(Daemon(workdir, db, "--queues", "default"))
        daemons.append(Daemon(workdir, db, "--queues", "default"))
        started = time.time()
        beats: dict[str, list[float]] = {}
        caught_up_at = None
        deadline = time.monotonic() + 120
        while caught_up_at is None or time.time() < caught_up_at + 2 * lease:
            assert time.monotonic() < deadline, f"not caught up: {store.schedule_list()}"
            for d in store.daemon_list():
                times = beats.setdefault(d.id, [d.started_at])
                if d.heartbeat_at != times[-1]:
                    times.append(d.heartbeat_at)
            if caught_up_at is None and all(
                (s.last_fire or 0.0) >= started for s in store.schedule_list()
            ):
                caught_up_at = time.time()
            time.sleep(0.05)
        jobs = {
            name: [j for j in store.job_list(limit=100_000) if j.schedule == name]
            for name in ("all", "once", "skip")
        }
    for d in daemons:
        assert d.proc.poll() is None, d.log()
        assert "presumed dead" not in d.log(), d.log()
    assert len(beats) == 2
    gaps = heartbeat_gaps(beats)
    # a heartbeat is due every lease/3; a third of a second more on a loaded machine is
    # noise, seconds (computing the day in one go) are the bug
    assert all(gap <= lease * 2 / 3 for gap in gaps.values()), gaps

    for name, made in jobs.items():
        fires = sorted(j.scheduled_for or 0.0 for j in made)
        assert len(fires) == len(set(fires)), f"{name}: a fire got two jobs"
        assert fires == [fires[0] + k for k in range(len(fires))], f"{name}: a second missing"
        assert fires[-1] >= started
    # "all": the 30,000 latest fires missed before the first run (its cutoff, 2 s before
    # it, was between before - 2 and started - 2), then every fire since
    surely_missed = [t for t in jobs_fires(jobs["all"]) if t < before - 2]
    assert 30000 - (started - before) - 2 <= len(surely_missed) <= 30000
    # "once": one job for the latest missed fire; "skip": none. A missed fire's job is
    # made more than the 2 s grace after its time
    for name, catch_ups in (("once", 1), ("skip", 0)):
        late = [j for j in jobs[name] if j.created_at - (j.scheduled_for or 0.0) > 2.0]
        assert len(late) == catch_ups, (name, [(j.scheduled_for, j.created_at) for j in late])


def jobs_fires(jobs: list[Any]) -> list[float]:
    return sorted(j.scheduled_for or 0.0 for j in jobs)


# -- overlap --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_overlap_skip_never_has_two_jobs_active(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(
        workdir,
        "[[schedules]]\n"
        'name = "slow"\n'
        'every = "1s"\n'
        'task = "jtasks:slow"\n'
        'args = ["slow", 2.5]\n'
        'overlap = "skip"\n',
    )
    daemons.append(Daemon(workdir, db, "--workers", "3"))
    wait_for(
        lambda: sum(e.event == "end" for e in ledger(workdir)) >= 2,
        timeout=20,
        what="two slow jobs done",
    )
    jobs = fired(workdir, db, "slow")
    assert len(jobs) >= 2
    # never two active: a job is made only after the previous one ended
    for previous, job in zip(jobs, jobs[1:], strict=False):
        assert previous["finished_at"] is not None
        assert job["created_at"] >= previous["finished_at"], (previous, job)
        assert job["scheduled_for"] - previous["scheduled_for"] >= 3  # 2.5 s of work
    # and the jobs' runs never overlapped: start, end, start, end, ...
    events = [(e.event, e.job_id) for e in ledger(workdir)]
    for k, (event, job_id) in enumerate(events):
        assert event == ("start" if k % 2 == 0 else "end"), events
        if event == "end":
            assert events[k - 1] == ("start", job_id)


@pytest.mark.slow
def test_misfire_all_with_overlap_skip_catches_up_one_job_after_another(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """misfire = "all" with the default overlap = "skip", last fire 12 s ago: every missed
    fire gets a job (they were collapsed into one), in order, each made once the previous
    one has ended, so their runs never overlap; then the timetable goes on, on time."""
    write_config(
        workdir,
        "[[schedules]]\n"
        'name = "turn"\n'
        'every = "2s"\n'
        'task = "jtasks:slow"\n'
        'args = ["turn", 0.5]\n'
        'misfire = "all"\n'
        'misfire_grace = "1s"\n',
    )
    last = float(int(time.time()) - 12)
    with contextlib.closing(open_store(str(db))) as store:
        assert store.schedule_fire("turn", None, last, [], last) == []
    started = time.time()
    daemons.append(Daemon(workdir, db, "--workers", "3"))
    # surely missed: due more than the 1 s grace before the daemon could first look
    missed = [
        float(t) for t in range(int(last) + 1, int(started)) if t % 2 == 0 and t < started - 1
    ]
    assert len(missed) >= 4, missed
    on_time = wait_for(
        lambda: (
            [j for j in fired(workdir, db, "turn") if j["created_at"] - j["scheduled_for"] < 1]
            or None
        ),
        timeout=30,
        every=0.2,
        what="a fire made on time after the catch-up",
    )
    jobs = [
        j for j in fired(workdir, db, "turn") if j["scheduled_for"] <= on_time[0]["scheduled_for"]
    ]
    assert_no_duplicates(jobs)
    made = [j["scheduled_for"] for j in jobs]
    assert set(missed) <= set(made), (
        f"missed fires without a job: {sorted(set(missed) - set(made))}"
    )
    # one after another, oldest first: each made once the previous one had ended
    for previous, job in zip(jobs, jobs[1:], strict=False):
        assert previous["finished_at"] is not None, previous
        assert job["created_at"] >= previous["finished_at"], (previous, job)
    events = [(e.event, e.job_id) for e in ledger(workdir)]
    for k, (event, job_id) in enumerate(events):  # the runs never overlapped
        assert event == ("start" if k % 2 == 0 else "end"), events
        if event == "end":
            assert events[k - 1] == ("start", job_id)


# -- two daemons on one file ----------------------------------------------------------------------


@pytest.mark.slow
def test_two_daemons_on_one_file_fire_once_per_tick_and_the_survivor_takes_over(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """One daemon at a time holds the leader lease and fires; killed (-9), the other
    takes the lease over within a heartbeat period (its pid is gone) and fires on."""
    write_config(workdir, every_second("tick", overlap="allow"), daemon='lease = "3s"\n')
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    both = time.time()
    jobs = wait_fired(workdir, db, "tick", 5, after=both + 0.5)
    for d in daemons:
        assert d.proc.poll() is None, d.log()
    leaders = [d for d in daemons if "leading:" in d.log()]
    assert leaders == [daemons[0]], [d.log() for d in daemons]
    jobs = fired(workdir, db, "tick")
    assert_no_duplicates(jobs)
    assert_consecutive(seconds(jobs))
    assert all(j["scheduled_for"] == int(j["scheduled_for"]) for j in jobs)

    daemons[0].kill_group()
    killed = time.time()
    wait_for(lambda: "leading:" in daemons[1].log(), timeout=10, what="the takeover")
    wait_fired(workdir, db, "tick", 2, after=killed + 1)
    jobs = fired(workdir, db, "tick")
    assert_no_duplicates(jobs)
    # every job ran exactly once, by one daemon or the other (the killed one's last
    # jobs rescued and run again count as its own runs: only fires are checked there)
    wait_for(
        lambda: all(j["state"] in ("succeeded", "dead") for j in fired(workdir, db, "tick")[:5]),
        timeout=15,
        what="the ticks done",
    )


@pytest.mark.slow
def test_a_leader_frozen_past_its_lease_never_fires_what_its_successor_fired(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    """SIGSTOP the leader past its lease: the other daemon takes the lease and fires on.
    SIGCONT: the old leader's first look may be at fires its successor made; the
    compare-and-set on the schedule's last fire refuses them, it learns it no longer
    leads, and each second still has one job."""
    write_config(workdir, every_second("tick", overlap="allow"), daemon='lease = "3s"\n')
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    wait_fired(workdir, db, "tick", 3, after=time.time() + 0.5)
    first, second = daemons
    assert "leading:" in first.log() and "leading:" not in second.log()

    os.kill(first.pid, signal.SIGSTOP)  # the supervisor alone: its workers stay
    try:
        stopped = time.time()
        wait_for(lambda: "leading:" in second.log(), timeout=15, what="the takeover")
        wait_fired(workdir, db, "tick", 3, after=stopped + 4)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    resumed = time.time()
    wait_for(lambda: "no longer leading" in first.log(), timeout=15, what="the old leader told")
    wait_fired(workdir, db, "tick", 3, after=resumed + 1)
    jobs = fired(workdir, db, "tick")
    assert_no_duplicates(jobs)
    assert_consecutive([s for s in seconds(jobs) if s > resumed])
    told = first.log().index("no longer leading")
    assert "schedule tick: fired" not in first.log()[told:]  # its successor fires alone
    for d in daemons:
        assert d.proc.poll() is None, d.log()
        assert "Traceback" not in d.log(), d.log()


# -- reload ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_reload_on_change_refuses_a_bad_config_and_rereads_on_sighup(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, every_second("a", overlap="allow"))
    daemon = Daemon(workdir, db, "--workers", "2")
    daemons.append(daemon)
    wait_fired(workdir, db, "a", 1)

    # 1. the file changes: a new schedule starts firing, without a restart
    path = write_config(
        workdir, every_second("a", overlap="allow") + every_second("b", overlap="allow")
    )
    changed = time.time()
    wait_fired(workdir, db, "b", 2, timeout=10)
    assert daemon.proc.poll() is None
    assert "config reloaded" in daemon.log()

    # 2. a broken config is refused with a logged error; the running one keeps firing
    bad = '[[schedules]]\nname = "b"\ncron = "61 * * * *"\ntask = "jtasks:record"\n'
    write_config(workdir, every_second("a", overlap="allow") + bad)
    broken = time.time()
    wait_for(lambda: "reload refused" in daemon.log(), timeout=10, what="reload refused")
    line = next(x for x in daemon.log().splitlines() if "reload refused" in x)
    assert "jobrunner.toml" in line and "ERROR" in line
    for name in ("a", "b"):
        wait_fired(workdir, db, name, 2, after=broken + 1, timeout=10)
    assert daemon.proc.poll() is None

    # 3. SIGHUP: a config written without changing the file's mtime is read on the signal
    mtime = path.stat().st_mtime_ns
    write_config(workdir, every_second("c", overlap="allow"))
    os.utime(path, ns=(mtime, mtime))
    # (the file-change check runs every second: give it two to prove it sees nothing)
    time.sleep(2)
    assert fired(workdir, db, "c") == []
    daemon.signal(signal.SIGHUP)
    hup = time.time()
    wait_fired(workdir, db, "c", 2, timeout=10)
    # a and b left the config: they stop firing
    time.sleep(1.5)
    for name in ("a", "b"):
        assert all(j["scheduled_for"] <= hup + 1.5 for j in fired(workdir, db, name)), name
    assert daemon.proc.poll() is None
    assert changed < broken < hup


@pytest.mark.slow
def test_a_daemon_started_without_a_config_loads_one_written_later(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    """No ./jobrunner.toml at start: SIGHUP says why nothing is reloaded, and the file
    written there later is loaded, its schedules fire (as `schedules list` shows them)."""
    assert not (workdir / "jobrunner.toml").exists()
    daemon = Daemon(workdir, db, "--workers", "1")
    daemons.append(daemon)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "config not reloaded" in daemon.log(), timeout=10, what="SIGHUP line")
    line = next(x for x in daemon.log().splitlines() if "config not reloaded" in x)
    assert f"{workdir / 'jobrunner.toml'} does not exist" in line
    schedule = '[[schedules]]\nname = "late"\nevery = "1s"\ncommand = ["true"]\n'
    write_config(workdir, schedule)
    wait_fired(workdir, db, "late", 1, timeout=10)
    assert "config reloaded from" in daemon.log()
    assert daemon.proc.poll() is None


# -- pause, resume and run NAME with a daemon running ---------------------------------------------


@pytest.mark.slow
def test_pause_resume_and_run_with_a_daemon_running(
    workdir: Path, db: Path, tasks: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, every_second("p", overlap="allow", misfire="all"))
    daemons.append(Daemon(workdir, db, "--workers", "2"))
    wait_fired(workdir, db, "p", 2)

    assert cli(workdir, db, "schedules", "pause", "p").code == 0
    paused = time.time()
    res = cli(workdir, db, "schedules", "list", "--json")
    assert res.json()[0]["paused"] is True
    time.sleep(2)  # long enough for two fires, were it firing
    assert all(j["scheduled_for"] < paused + 1 for j in fired(workdir, db, "p"))

    resumed = time.time()  # before the resume: its timetable starts at the resume's now
    assert cli(workdir, db, "schedules", "resume", "p").code == 0
    wait_fired(workdir, db, "p", 2, after=resumed)
    secs = seconds(fired(workdir, db, "p"))
    assert not [s for s in secs if paused + 1 <= s < resumed], "paused time was caught up"
    assert cli(workdir, db, "schedules", "list", "--json").json()[0]["paused"] is False

    res = cli(workdir, db, "schedules", "run", "p")
    assert res.code == 0, res.err
    job_id = int(res.out)
    assert cli(workdir, db, "wait", str(job_id), "--timeout", "10s").code == 0
    rec = cli(workdir, db, "status", str(job_id), "--json").json()
    assert (rec["schedule"], rec["state"]) == ("p", "succeeded")
    assert ts(rec["scheduled_for"]) != int(ts(rec["scheduled_for"]) or 0)  # off the timetable
