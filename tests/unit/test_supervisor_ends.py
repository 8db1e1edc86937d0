"""The supervisor's write path: an end the store refuses fails that one job, never the
daemon or the jobs recorded beside it (a real Supervisor on a real file, not started)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobrunner.clock import SYSTEM
from jobrunner.config import Config
from jobrunner.daemon.events import EventLog
from jobrunner.daemon.supervisor import Options, Supervisor
from jobrunner.lifecycle import Outcome, State
from jobrunner.models import AttemptEnd, ClaimRequest, JobInsert


def test_an_end_the_store_refuses_fails_only_its_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open(tmp_path / "daemon.log", "w") as stream:
        options = Options(1, None, EventLog(stream))
        sup = Supervisor(Config(), str(tmp_path / "jobs.db"), SYSTEM, options)
    try:
        now = SYSTEM.now()
        sup.store.job_insert_many([JobInsert(task="m:f", retries=3)] * 3, now)
        good, bad, other = sup.store.job_claim(ClaimRequest(sup.id, now, 3))
        sup.records.ends = [
            AttemptEnd(good.id, 1, Outcome.SUCCEEDED, State.SUCCEEDED, result_json="1"),
            # not UTF-8: no store can hold it (what a job produced is its own)
            AttemptEnd(bad.id, 1, Outcome.SUCCEEDED, State.SUCCEEDED, result_json='"\udcff"'),
            AttemptEnd(other.id, 1, Outcome.SUCCEEDED, State.SUCCEEDED, result_json="3"),
        ]
        sup.records.progress = {(other.id, 1): (other.id, 1, 0.5, "\udcff", now)}
        with caplog.at_level(logging.WARNING, logger="jobrunner.daemon"):
            sup._flush()  # must not raise
        assert sup.records.ends == [] and sup.records.progress == {}
        results = {j.id: (j.state, j.result) for j in sup.store.job_list()}
        assert results[good.id] == (State.SUCCEEDED, 1)
        assert results[other.id] == (State.SUCCEEDED, 3)
        failed = sup.store.job_get(bad.id)
        assert failed is not None and failed.state is State.DEAD
        assert (failed.error or "").startswith("the attempt's outcome (succeeded) could not be")
        assert [a.outcome for a in sup.store.attempt_list(bad.id)] == [Outcome.FAILED]
    finally:
        sup.store.close()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"job {bad.id} attempt 1: its outcome cannot be recorded" in messages
    assert "progress of 1 job(s) not recorded" in messages
