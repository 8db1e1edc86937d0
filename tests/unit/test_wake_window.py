"""The PostgreSQL submitter's wake-up window (store/pg/signals.py WakeWindow), given
times: at most one NOTIFY per queue per WAKE_WINDOW, and a late commit never silent."""

from __future__ import annotations

from jobrunner.store import WAKE_TRAIL, WAKE_WINDOW
from jobrunner.store.pg.signals import WakeWindow


def test_one_wake_up_per_queue_per_window() -> None:
    w = WakeWindow()
    assert sorted(w.due({"a", "b"}, 100.0)) == ["a", "b"]  # never woken: both
    w.woke(["a"], 100.0)
    assert w.due(["a", "b"], 100.0 + WAKE_WINDOW / 2) == ["b"]  # a: in its window
    assert w.due(["a"], 100.0 + WAKE_WINDOW + 1e-6) == ["a"]  # the window is over


def test_a_silent_submit_that_committed_after_the_trail_is_late() -> None:
    w = WakeWindow()
    w.woke(["a"], 100.0)
    # silent (in a's window); the daemons claim again WAKE_TRAIL after they heard a's
    # wake-up, which was after 100.0: a commit ended by then was seen by that claim
    assert w.late(["a"], 100.0 + WAKE_TRAIL - 1e-6) == []
    assert w.late(["a"], 100.0 + WAKE_TRAIL + 0.001) == ["a"]
    assert WAKE_TRAIL > WAKE_WINDOW  # room for the commit of a submit begun in the window


def test_a_daemon_claims_after_the_latest_trailing_wake_up() -> None:
    """Two trailing wake-ups 6 ms apart: the trail claim comes WAKE_TRAIL after the
    second, when a job submitted silently behind it has committed; the earlier time
    (what the daemon used to keep) can come before that commit, and the job would wait
    for the poll (a CI run: the burst's last job, 20 s with a 60 s poll)."""
    from jobrunner.clock import FakeClock
    from jobrunner.daemon.dispatch import Dispatch
    from jobrunner.store import WAKE_TRAILING

    clock = FakeClock()
    d = Dispatch("me", None, None, None, None, None, clock)  # type: ignore[arg-type]
    d.next_poll = clock.monotonic() + 60.0  # a poll a minute away
    first = clock.monotonic()
    d.woken(WAKE_TRAILING, first)
    d.woken(WAKE_TRAILING, first + 0.006)
    assert d.next_claim() == first + 0.006 + WAKE_TRAIL
    assert d.check_db  # and one at once
