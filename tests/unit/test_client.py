"""Client against a real SQLite file, no daemon: submit, submit_many, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner import Client
from jobrunner.errors import UsageError


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
