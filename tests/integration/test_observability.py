"""Progress reports and why each attempt ended, against real daemons.

Progress: `jobrunner.progress()` in Python jobs and `::progress` lines from commands,
stored per attempt, shown by `status`, `list` and `wait --progress`. Attempt history:
the outcome, error, exit status or signal, CPU time and peak RSS of every attempt,
with memory, CPU-time and nice limits applied to the job's own process.

Jobs that must be observed while running hold on a "go" file the test creates, so
every check waits on a condition, never on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PYTHON, Daemon, cli, env_for, wait_for
from tests.integration.conftest import job, submit, write_config, write_module

# Each test here runs on an SQLite file and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_backends

TASKS = '''
import os
import time

import jobrunner

HERE = os.path.dirname(os.path.abspath(__file__))


def _path(name):
    return os.path.join(HERE, name)


def _hold(name):
    """Wait (bounded) until the test creates the file `name`."""
    deadline = time.monotonic() + 60
    while not os.path.exists(_path(name)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody created {name}")
        time.sleep(0.01)


def _mark(name, text=""):
    tmp = _path(name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, _path(name))


def _past_throttle():
    time.sleep(0.3)  # more than PROGRESS_EVERY since this job's last report


def noop():
    return "noop"


def nice_level():
    return os.nice(0)


def halfway(tag):
    """Reports 40% "halfway", holds on `tag`.go, returns what progress() returned."""
    sent = jobrunner.progress(0.4, "halfway")
    _hold(tag + ".go")
    return sent


def throttled(tag):
    """Two reports back to back (the second is dropped), then out-of-range ones."""
    start = time.monotonic()
    first = jobrunner.progress(0.1, "first")
    second = jobrunner.progress(0.5, "second")
    _mark(tag + ".sent", repr(time.monotonic() - start))
    _hold(tag + ".go1")
    _past_throttle()
    low = jobrunner.progress(-3, "negative")
    _hold(tag + ".go2")
    high = jobrunner.progress(7, "too far")  # 1.0 or more is never throttled
    _hold(tag + ".go3")
    return [first, second, low, high]


def fails_then_holds(tag):
    """Attempt 1 reports 70% and raises; attempt 2 holds before reporting 20%."""
    if jobrunner.current_job().attempt == 1:
        jobrunner.progress(0.7, "attempt one")
        raise RuntimeError("first attempt fails")
    _hold(tag + ".go1")
    jobrunner.progress(0.2, "attempt two")
    _hold(tag + ".go2")
    return "second attempt"


def niceness(tag):
    """Reports progress from the child forked for a job with limits, returns os.nice(0)."""
    jobrunner.progress(0.25, "in the limited child")
    _hold(tag + ".go")
    return os.nice(0)


def allocate(mb):
    """Allocate `mb` MB and touch every page, so it is resident."""
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block)


def burn(seconds):
    """Use `seconds` of CPU time."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return True


def spin():
    while True:
        pass
'''

# Command jobs: the same busy loop and allocation in a program of their own.
BURN_CMD = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5:\n    pass\n"
ALLOC_CMD = "b = bytearray(80 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"

WAIT = ("--timeout", "30s")


@pytest.fixture
def obs(workdir: Path) -> Path:
    """The task module `obs_tasks` in the workdir, plus a config with short graces."""
    write_config(workdir, workers="2")
    return write_module(workdir, "obs_tasks", TASKS)


def go(workdir: Path, name: str) -> None:
    (workdir / name).touch()


def wait_progress(
    workdir: Path, db: Path, job_id: int, message: str | None, fraction: float
) -> dict[str, Any]:
    """Poll `status --json` until the running job's last report is (fraction, message)."""
    last: dict[str, Any] = {}

    def reported() -> bool:
        last.update(job(workdir, db, job_id))
        return (
            last["state"] == "running"
            and last["progress_message"] == message
            and last["progress"] == pytest.approx(fraction)
        )

    try:
        wait_for(reported, timeout=20, every=0.05, what=f"progress {fraction} {message!r}")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; last: state={last.get('state')} progress={last.get('progress')} "
            f"message={last.get('progress_message')!r}"
        ) from None
    return last


def finished(workdir: Path, db: Path, job_id: int, code: int = 0) -> dict[str, Any]:
    """`wait` for the job, check its exit code, and return its record."""
    res = cli(workdir, db, "wait", str(job_id), *WAIT)
    assert res.code == code, (res.code, res.out, res.err)
    return job(workdir, db, job_id)


def only_attempt(record: dict[str, Any]) -> dict[str, Any]:
    history = record["attempt_history"]
    assert len(history) == 1, history
    return history[0]


# -- progress ---------------------------------------------------------------------------------


def test_progress_outside_a_job_returns_false(workdir: Path, db: Path) -> None:
    code = "import jobrunner; print(jobrunner.progress(0.5, 'nobody listens'))"
    proc = subprocess.run(
        [PYTHON, "-c", code],
        cwd=workdir,
        env=env_for(workdir, db),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "False\n"


def test_python_progress_is_shown_while_running_and_is_one_on_success(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = submit(workdir, db, "obs_tasks:halfway", "--args", '["hw"]')

    record = wait_progress(workdir, db, job_id, "halfway", 0.4)
    assert record["progress"] == 0.4

    res = cli(workdir, db, "list")
    assert res.code == 0, res.err
    row = next(line for line in res.out.splitlines() if line.split()[:1] == [str(job_id)])
    assert "running" in row
    assert "[####------]  40%  halfway" in row, row

    go(workdir, "hw.go")
    record = finished(workdir, db, job_id)
    assert record["state"] == "succeeded"
    assert record["result"] is True  # progress() returned True inside the job
    assert record["progress"] == 1.0
    res = cli(workdir, db, "list")
    row = next(line for line in res.out.splitlines() if line.split()[:1] == [str(job_id)])
    assert "succeeded" in row and "%" not in row  # no bar once the job ended


def test_progress_is_throttled_and_clamped(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = submit(workdir, db, "obs_tasks:throttled", "--args", '["th"]')

    sent = wait_for(lambda: (workdir / "th.sent").exists(), timeout=20, what="th.sent")
    assert sent
    gap = float((workdir / "th.sent").read_text())
    wait_progress(workdir, db, job_id, "first", 0.1)
    # A job run to completion on the other worker takes the supervisor through several
    # more rounds of reading its workers' pipes: a second report, had it been sent
    # before th.sent was written, would have been stored by then.
    assert finished(workdir, db, submit(workdir, db, "obs_tasks:noop"))["result"] == "noop"
    record = job(workdir, db, job_id)
    if gap < 0.15:  # both calls well within the 0.2 s window (the usual case)
        assert (record["progress"], record["progress_message"]) == (0.1, "first")

    go(workdir, "th.go1")
    wait_progress(workdir, db, job_id, "negative", 0.0)  # -3 clamped to 0
    go(workdir, "th.go2")
    wait_progress(workdir, db, job_id, "too far", 1.0)  # 7 clamped to 1, still running
    go(workdir, "th.go3")
    record = finished(workdir, db, job_id)
    assert record["result"] == [True, True, True, True]  # throttled still returns True
    assert record["progress"] == 1.0


def test_progress_starts_over_with_each_attempt(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = submit(
        workdir,
        db,
        "obs_tasks:fails_then_holds",
        "--args",
        '["fh"]',
        "--retries",
        "1",
        "--backoff",
        "10ms",
    )

    def second_attempt_running() -> dict[str, Any] | None:
        record = job(workdir, db, job_id)
        ok = record["state"] == "running" and record["attempts"] == 2
        return record if ok else None

    record = wait_for(second_attempt_running, timeout=20, every=0.05, what="attempt 2")
    # attempt 1's 70% belongs to attempt 1: the new attempt starts without progress
    assert record["progress"] is None and record["progress_message"] is None
    assert [a["outcome"] for a in record["attempt_history"]] == ["failed"]

    go(workdir, "fh.go1")
    wait_progress(workdir, db, job_id, "attempt two", 0.2)  # lower than 0.7: not a maximum
    go(workdir, "fh.go2")
    record = finished(workdir, db, job_id)
    assert record["result"] == "second attempt"
    assert record["progress"] == 1.0


def test_command_progress_lines_become_progress_not_log(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    script = (
        'hold() { n=0; while [ ! -e "$1" ] && [ $n -lt 3000 ]; do sleep 0.02; n=$((n+1)); done; }\n'
        "echo before\n"
        "echo '::progress 0.4 halfway there'\n"
        "hold cp.go1\n"
        "sleep 0.3\n"  # past the throttle window of the previous report
        "echo '::progress 0.5'\n"
        "hold cp.go2\n"
        "echo '::progress not-a-number'\n"
        "printf 'abc'\n"  # a line that does not start with ::progress, written in pieces
        "sleep 0.3\n"
        "echo '::progress 0.9 in the middle of a line'\n"
        "echo 'text ::progress 0.8 not at the start'\n"
        "echo after\n"
    )
    job_id = submit(workdir, db, "--cmd", "--", "sh", "-c", script)

    wait_progress(workdir, db, job_id, "halfway there", 0.4)
    go(workdir, "cp.go1")
    wait_progress(workdir, db, job_id, None, 0.5)  # no message after the number
    go(workdir, "cp.go2")
    record = finished(workdir, db, job_id)
    assert record["state"] == "succeeded"
    assert record["result"] == {"exit_code": 0}
    assert record["progress"] == 1.0

    res = cli(workdir, db, "logs", str(job_id))
    assert res.code == 0, res.err
    assert res.out.splitlines() == [
        "before",
        "::progress not-a-number",
        "abc::progress 0.9 in the middle of a line",
        "text ::progress 0.8 not at the start",
        "after",
    ]


def test_command_ends_with_its_process_not_with_its_stdout(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    """A background process the command leaves behind still holds stdout (now a pipe
    for `::progress` lines): the job must end when the command exits, as it did when
    stdout was the log file, not when that process closes the pipe."""
    daemons.append(Daemon(workdir, db))
    script = (
        "sh -c 'n=0; while [ ! -e bg.go ] && [ $n -lt 3000 ]; do sleep 0.02; n=$((n+1)); done' &\n"
        "echo '::progress 0.5 forked'\n"
        "echo started\n"
    )
    job_id = submit(workdir, db, "--cmd", "--retries", "0", "--", "sh", "-c", script)
    try:
        record = wait_for(
            lambda: (r := job(workdir, db, job_id))["state"] not in ("queued", "running") and r,
            timeout=20,
            every=0.05,
            what="the job to end while its background process still runs",
        )
    finally:
        go(workdir, "bg.go")
    assert record["state"] == "succeeded", record
    assert record["result"] == {"exit_code": 0}
    res = cli(workdir, db, "logs", str(job_id))
    assert res.out == "started\n"


def test_wait_progress_keeps_stdout_for_the_result(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = submit(workdir, db, "obs_tasks:halfway", "--args", '["wp"]')
    wait_progress(workdir, db, job_id, "halfway", 0.4)
    waiter = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "wait", str(job_id), "--progress", *WAIT],
        cwd=workdir,
        env=env_for(workdir, db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        go(workdir, "wp.go")
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert out == "true\n"  # the result JSON alone: the bar never goes to stdout
    assert "Traceback" not in err


def _drain(fd: int, into: bytearray) -> None:
    """Read a pty master until the other side is closed (EIO) or the fd is closed."""
    while True:
        try:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return
                into += chunk
        except OSError:
            return


def test_wait_progress_draws_a_bar_on_a_terminal(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = submit(workdir, db, "obs_tasks:halfway", "--args", '["wt"]')
    wait_progress(workdir, db, job_id, "halfway", 0.4)
    master, slave = pty.openpty()
    screen = bytearray()
    reader = threading.Thread(target=_drain, args=(master, screen), daemon=True)
    env = env_for(workdir, db)
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    env["TERM"] = "xterm"
    waiter = subprocess.Popen(
        [PYTHON, "-m", "jobrunner", "wait", str(job_id), "--progress", *WAIT],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    reader.start()
    try:
        # the bar is drawn while the job is still at 40%
        wait_for(lambda: b"halfway" in screen, timeout=20, what="the bar on the terminal")
        go(workdir, "wt.go")
        out, _ = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        reader.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(master)
    assert waiter.returncode == 0
    assert out == "true\n"
    text = screen.decode(errors="replace")
    assert f"job {job_id}" in text
    assert "40%" in text
    assert "100%" in text and "succeeded" in text  # the last frame stays on the terminal


# -- why an attempt ended -------------------------------------------------------------------


def test_command_exit_status_and_signal_are_recorded(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    exits = submit(workdir, db, "--cmd", "--retries", "0", "--", "sh", "-c", "exit 3")
    killed = submit(workdir, db, "--cmd", "--retries", "0", "--", "sh", "-c", "kill -TERM $$")

    record = finished(workdir, db, exits, code=1)
    assert record["state"] == "dead"
    attempt = only_attempt(record)
    assert attempt["outcome"] == "failed"
    assert attempt["exit_code"] == 3
    assert attempt["signal"] is None
    assert attempt["error"] == "command exited with status 3"
    assert record["error"] == "command exited with status 3"
    assert attempt["wall_seconds"] is not None and attempt["wall_seconds"] >= 0
    assert attempt["cpu_seconds"] is not None and attempt["max_rss_kb"] is not None

    record = finished(workdir, db, killed, code=1)
    attempt = only_attempt(record)
    assert attempt["outcome"] == "failed"
    assert attempt["signal"] == signal.SIGTERM
    assert attempt["exit_code"] is None
    assert "signal 15" in attempt["error"] and "SIGTERM" in attempt["error"]


def test_worker_killed_from_outside_is_a_crash_by_sigkill(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, workers="1")
    d = Daemon(workdir, db)
    daemons.append(d)
    job_id = submit(workdir, db, "obs_tasks:halfway", "--args", '["wk"]', "--retries", "0")
    wait_progress(workdir, db, job_id, "halfway", 0.4)
    workers = d.worker_pids()
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)  # the daemon's own worker, started by this test

    record = finished(workdir, db, job_id, code=1)
    assert record["state"] == "dead"
    attempt = only_attempt(record)
    assert attempt["outcome"] == "crashed"
    assert attempt["signal"] == 9
    assert "SIGKILL" in attempt["error"]
    assert attempt["exit_code"] is None
    assert attempt["wall_seconds"] is not None and attempt["wall_seconds"] > 0
    # the daemon replaced its worker and goes on running jobs
    assert finished(workdir, db, submit(workdir, db, "obs_tasks:noop"))["result"] == "noop"


def test_memory_limit_ends_a_python_job_out_of_memory(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    config = workdir / "jobrunner.toml"
    config.write_text(
        config.read_text()
        + '\n[tasks.hog]\nfunction = "obs_tasks:allocate"\nmemory_limit = "100MB"\nretries = 0\n'
    )
    daemons.append(Daemon(workdir, db))
    limit = ("--memory-limit", "100MB", "--retries", "0")
    over = submit(workdir, db, "obs_tasks:allocate", "--args", "[300]", *limit)
    under = submit(workdir, db, "obs_tasks:allocate", "--args", "[10]", *limit)
    named = submit(workdir, db, "hog", "--args", "[300]")

    for job_id in (over, named):
        record = finished(workdir, db, job_id, code=1)
        assert record["state"] == "dead"
        attempt = only_attempt(record)
        assert attempt["outcome"] == "oom", attempt
        assert "out of memory" in attempt["error"]
        assert "out of memory" in record["error"]

    record = finished(workdir, db, under)  # the limit leaves room for a job within it
    assert record["result"] == 10 * 1024 * 1024
    assert only_attempt(record)["outcome"] == "succeeded"


def test_cpu_limit_ends_python_and_command_busy_loops(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    limit = ("--cpu-limit", "1s", "--retries", "0")
    py = submit(workdir, db, "obs_tasks:spin", *limit)
    cmd = submit(workdir, db, "--cmd", *limit, "--", PYTHON, "-c", "while True: pass")

    for job_id in (py, cmd):
        record = finished(workdir, db, job_id, code=1)
        assert record["state"] == "dead"
        attempt = only_attempt(record)
        assert attempt["outcome"] == "cpu_limit", attempt
        assert "cpu_limit" in attempt["error"]
        assert attempt["cpu_seconds"] is not None and attempt["cpu_seconds"] >= 0.5


def test_nice_applies_to_the_job_which_still_reports_progress(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = submit(workdir, db, "obs_tasks:niceness", "--args", '["nc"]', "--nice", "10")
    wait_progress(workdir, db, job_id, "in the limited child", 0.25)
    go(workdir, "nc.go")
    record = finished(workdir, db, job_id)
    assert record["result"] == 10
    # only the job's own process was reniced: the reused workers run the next job at
    # the daemon's level (inherited from this test process)
    plain = finished(workdir, db, submit(workdir, db, "obs_tasks:nice_level"))
    assert plain["result"] == os.nice(0)


def test_cpu_time_and_peak_rss_are_measured(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    write_config(workdir, workers="1")  # one worker: the jobs share its process in turn
    daemons.append(Daemon(workdir, db))
    isolated = ("--nice", "1")  # any limit runs a Python job in a child of its own
    jobs = {
        "burn": submit(workdir, db, "obs_tasks:burn", "--args", "[0.5]"),
        "alloc": submit(workdir, db, "obs_tasks:allocate", "--args", "[80]"),
        "small": submit(workdir, db, "obs_tasks:noop"),
        "burn isolated": submit(workdir, db, "obs_tasks:burn", "--args", "[0.5]", *isolated),
        "alloc isolated": submit(workdir, db, "obs_tasks:allocate", "--args", "[80]", *isolated),
        "burn command": submit(workdir, db, "--cmd", "--", PYTHON, "-c", BURN_CMD),
        "alloc command": submit(workdir, db, "--cmd", "--", PYTHON, "-c", ALLOC_CMD),
    }
    usage = {}
    for name, job_id in jobs.items():
        attempt = only_attempt(finished(workdir, db, job_id))
        assert attempt["outcome"] == "succeeded", (name, attempt)
        usage[name] = attempt

    for name in ("burn", "burn isolated", "burn command"):
        cpu = usage[name]["cpu_seconds"]
        assert cpu is not None and cpu >= 0.3, (name, cpu)
        assert usage[name]["wall_seconds"] >= 0.3, (name, usage[name])
    for name in ("alloc", "alloc isolated", "alloc command"):
        rss = usage[name]["max_rss_kb"]
        assert rss is not None and rss >= 60_000, (name, rss)
    # the peak is per job, not the worker's lifetime high-water mark
    if os.access("/proc/self/clear_refs", os.W_OK):
        assert usage["small"]["max_rss_kb"] < usage["alloc"]["max_rss_kb"] - 40_000, usage


def test_attempt_history_fields_are_json_types(
    workdir: Path, db: Path, obs: Path, daemons: list[Daemon]
) -> None:
    daemons.append(Daemon(workdir, db))
    job_id = submit(workdir, db, "obs_tasks:noop")
    record = finished(workdir, db, job_id)
    attempt = only_attempt(record)
    assert {
        "attempt",
        "outcome",
        "error",
        "wall_seconds",
        "cpu_seconds",
        "max_rss_kb",
        "exit_code",
        "signal",
    } <= set(attempt)
    assert attempt["attempt"] == 1 and attempt["outcome"] == "succeeded"
    assert attempt["error"] is None and attempt["signal"] is None
    assert isinstance(attempt["wall_seconds"], float)
    assert isinstance(attempt["cpu_seconds"], float)
    assert isinstance(attempt["max_rss_kb"], int)
    json.dumps(record)  # round-trips


def test_a_jobs_last_progress_report_survives_its_end(
    workdir: Path, db: Path, daemons: list[Daemon]
) -> None:
    """The final report (sent with the result, in the same read of the worker's pipe) is
    recorded before the end, which would otherwise fence it out: `status` shows it."""
    write_config(workdir)
    write_module(
        workdir,
        "finals",
        "from jobrunner import progress\n\n"
        "def work(n):\n"
        "    for i in range(n):\n"
        "        progress(i / n, f'{i} of {n}')\n"
        "    progress(1.0, f'all {n} done')\n"
        "    return n\n",
    )
    ids = [submit(workdir, db, "finals:work", "--args", f"[{n}]") for n in (3, 1000, 5)]
    daemons.append(Daemon(workdir, db))
    for job_id, n in zip(ids, (3, 1000, 5), strict=True):
        assert cli(workdir, db, "wait", str(job_id), "--timeout", "30s").code == 0
        record = job(workdir, db, job_id)
        assert (record["progress"], record["progress_message"]) == (1.0, f"all {n} done")
