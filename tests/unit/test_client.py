"""Client against a real SQLite file, no daemon: submit, submit_many, validation, @task,
list, cancel, retry."""

from __future__ import annotations

import datetime as dt
import importlib
import warnings
from pathlib import Path
from typing import Any

import pytest

from jobrunner import Client, State, decorator
from jobrunner.client import KeyReusedWarning
from jobrunner.errors import JobNotFound, UsageError
from jobrunner.ops.control import Cancellation, CancelOutcome


def test_submit_many_one_job_per_call_sharing_the_options(tmp_path: Path) -> None:
    with Client(str(tmp_path / "j.db")) as client:
        ids = client.submit_many(
            "os.path:join", [["a", "b"], ["c"]], queue="q", retries=5, check=False
        )
        jobs = [client.get(i) for i in ids]
    assert [j.args for j in jobs] == [["a", "b"], ["c"]]
    assert {(j.queue, j.max_attempts) for j in jobs} == {("q", 6)}


def test_submit_many_rejects_bad_args_and_writes_nothing(tmp_path: Path) -> None:
    with Client(str(tmp_path / "j.db")) as client:
        with pytest.raises(UsageError, match="JSON"):
            client.submit_many("os.path:join", [["ok"], [object()]], check=False)
        with pytest.raises(UsageError, match="list of args"):
            client.submit_many("os.path:join", ["not-a-list"], check=False)
        with pytest.raises(UsageError, match="key"):
            client.submit_many("os.path:join", [[1]], key="k", check=False)
        assert client.store.job_list() == []


def test_submit_rejects_nan_and_objects_before_writing(tmp_path: Path) -> None:
    with Client(str(tmp_path / "j.db")) as client:
        for bad in ([float("nan")], [object()]):
            with pytest.raises(UsageError, match="args"):
                client.submit("os.path:join", bad, check=False)
        assert client.store.job_list() == []


# -- options in Python's own types, errors in Python's own terms ------------------------------


def test_durations_and_times_take_python_types(tmp_path: Path) -> None:
    with Client(str(tmp_path / "j.db")) as client:
        delayed = client.submit(
            "os.path:join",
            ["a"],
            delay=dt.timedelta(minutes=5),
            timeout="10m",
            backoff=dt.timedelta(seconds=2),
            cpu_limit="1m",
            memory_limit="512MB",
            check=False,
        ).job()
        local = dt.datetime(2099, 1, 2, 3, 4, 5)
        at_local = client.submit("os.path:join", ["a"], at=local, check=False).job()
        iso = "2099-01-02T03:04:05Z"
        at_iso = client.submit("os.path:join", ["a"], at=iso, check=False).job()
    assert delayed.state is State.SCHEDULED
    assert 290 < delayed.run_at - delayed.created_at < 310
    assert (delayed.timeout, delayed.backoff) == (600.0, 2.0)
    assert delayed.options == {"memory_limit": 512_000_000, "cpu_limit": 60.0}
    assert at_local.run_at == local.astimezone().timestamp()  # naive: local time
    assert at_iso.run_at == dt.datetime(2099, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": [5]}, "delay: expected seconds, a datetime.timedelta"),
        ({"timeout": "ten minutes"}, "timeout: 'ten minutes' is not a duration"),
        ({"at": dt.date(2099, 1, 1)}, "at: expected a Unix time, a datetime.datetime"),
        ({"at": "tomorrow"}, "at: 'tomorrow' is not a time"),
        ({"priority": "3"}, "priority: expected a whole number, got '3'"),
        ({"queue": 7}, "queue: expected a non-empty string"),
        ({"memory_limit": 1.5}, "memory_limit: expected bytes or a size"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_parameter(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with Client(str(tmp_path / "j.db")) as client:
        with pytest.raises(UsageError) as info:
            client.submit("os.path:join", ["a"], check=False, **options)
        assert client.store.job_list() == []
    assert message in str(info.value)
    assert "--" not in str(info.value)


def test_check_failures_say_how_to_skip_the_check_in_python_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jr_client_tasks.py").write_text("def crunch(a):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    with Client(str(tmp_path / "j.db")) as client:
        for task, args in (("jr_no_such_mod:fn", [1]), ("jr_client_tasks:crunchh", [1])):
            with pytest.raises(UsageError) as info:
                client.submit(task, args)
            assert "check=False" in str(info.value) and "--no-check" not in str(info.value)
        with pytest.raises(UsageError, match=r"crunch\(\) takes 1 positional argument"):
            client.submit_many("jr_client_tasks:crunch", [[1], [1, 2]])
        assert client.store.job_list() == []
        assert client.submit("jr_client_tasks:crunchh", [1], check=False).created


# -- @task: per-call options, the call checked against the function --------------------------

DECORATED = """\
from jobrunner import task


@task(queue="images", retries=1)
def thumbnail(path, key=None, delay=0):
    return path
"""


@pytest.fixture
def thumbnail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    name = f"jr_decorated_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(DECORATED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("JOBRUNNER_DB", str(tmp_path / "j.db"))
    monkeypatch.setattr(decorator, "_default_client", None)
    yield importlib.import_module(name).thumbnail
    assert decorator._default_client is not None
    decorator._default_client.close()


def test_options_hold_the_job_options_and_submit_the_function_arguments(thumbnail: Any) -> None:
    handle = thumbnail.options(priority=3, delay="5m", key="order-7").submit("a.png", key="k")
    job = handle.job()
    assert (job.args, job.kwargs) == (["a.png"], {"key": "k"})  # the function's own `key`
    assert (job.key, job.priority, job.queue, job.max_attempts) == ("order-7", 3, "images", 2)
    assert job.state is State.SCHEDULED
    assert thumbnail.submit("b.png").job().priority == 0  # options() left the task as it was


def test_an_option_given_to_submit_is_refused_with_where_it_goes(thumbnail: Any) -> None:
    with pytest.raises(UsageError) as info:
        thumbnail.submit("a.png", priority=3)
    assert "unexpected keyword argument 'priority'" in str(info.value)
    assert "thumbnail.options(priority=...).submit(...)" in str(info.value)
    with pytest.raises(UsageError, match="missing a required argument: 'path'"):
        thumbnail.submit()
    with pytest.raises(UsageError, match=r"unknown option\(s\) \['prio'\]"):
        thumbnail.options(prio=3)
    assert Client().store.job_list() == []


def test_a_key_reused_with_other_arguments_returns_the_first_job_and_warns(
    thumbnail: Any,
) -> None:
    first = thumbnail.options(key="k").submit("a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same call again: no warning
        again = thumbnail.options(key="k").submit("a.png")
    with pytest.warns(KeyReusedWarning, match=f"key 'k' already names job {first.id}"):
        other = thumbnail.options(key="k").submit("b.png")
    assert (first.created, again.created, other.created) == (True, False, False)
    assert first.id == again.id == other.id
    assert other.job().args == ["a.png"]


# -- list, cancel, retry: what the CLI does ----------------------------------------------------


def test_list_cancel_and_retry_as_the_cli_does(tmp_path: Path) -> None:
    with Client(str(tmp_path / "j.db")) as client:
        waiting = client.submit("os.path:join", ["a"], check=False).id
        later = client.submit("os.path:join", ["b"], delay=60, check=False).id
        assert [j.id for j in client.list()] == [later, waiting]
        assert [j.id for j in client.list(state="scheduled")] == [later]
        assert [j.id for j in client.list(State.QUEUED, queue="default", limit=1)] == [waiting]
        with pytest.raises(UsageError, match="state: 'nope' is not one of"):
            client.list(state="nope")
        assert client.cancel(waiting) == Cancellation(CancelOutcome.CANCELLED, State.CANCELLED)
        assert client.cancel(waiting).outcome is CancelOutcome.ALREADY_ENDED
        with pytest.raises(JobNotFound):
            client.cancel(404)
        with pytest.raises(UsageError, match=f"job {later} is scheduled, not in the dead-letter"):
            client.retry(later)
        with pytest.raises(JobNotFound):
            client.retry(404)
        with pytest.raises(UsageError, match="all_dead=True"):
            client.retry()
        with pytest.raises(UsageError, match=r"whole numbers, got \[1, 2\]"):
            client.retry([1, 2])  # type: ignore[arg-type]
        assert client.retry(all_dead=True) == []
        assert client.get(later).state is State.SCHEDULED
