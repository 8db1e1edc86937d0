"""The state machine and the retry decision (jobrunner/lifecycle.py): pure, no I/O."""

from __future__ import annotations

import random

import pytest

from jobrunner.lifecycle import (
    BACKOFF_CAP,
    ENDED,
    FINAL,
    SUCCEEDED,
    TRANSITIONS,
    WAITING,
    Decision,
    Dependency,
    State,
    after_dependencies,
    after_failure,
    backoff_delay,
    can_move,
)

NOW = 1_800_000_000.0


class FixedRandom(random.Random):
    """A Random whose random() always returns `value`: pins the jitter to one end."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


LOW = FixedRandom(0.0)  # the smallest jitter: half the nominal delay
HIGH = FixedRandom(1.0 - 1e-12)  # the largest jitter: (almost) the nominal delay


# -- the transition table -------------------------------------------------------------------


def test_every_state_has_a_row_and_every_target_is_a_state() -> None:
    assert set(TRANSITIONS) == set(State)
    for targets in TRANSITIONS.values():
        assert targets <= set(State)


def test_state_values_are_the_documented_names() -> None:
    assert {s.value for s in State} == {
        "blocked",
        "scheduled",
        "queued",
        "running",
        "retrying",
        "succeeded",
        "dead",
        "cancelled",
    }


def test_waiting_and_final_partition_the_states_around_blocked_and_running() -> None:
    assert {State.SCHEDULED, State.QUEUED, State.RETRYING} == WAITING
    assert {State.SUCCEEDED, State.DEAD, State.CANCELLED} == FINAL
    assert WAITING | FINAL | {State.BLOCKED, State.RUNNING} == set(State)
    assert not WAITING & FINAL


def test_a_blocked_job_is_never_claimed_it_becomes_ready_or_is_cancelled() -> None:
    assert TRANSITIONS[State.BLOCKED] == {State.QUEUED, State.SCHEDULED, State.CANCELLED}
    # in by submit; back in only from cancelled, when the dead job it ran after is retried
    assert {s for s, targets in TRANSITIONS.items() if State.BLOCKED in targets} == {
        State.CANCELLED
    }


@pytest.mark.parametrize("state", sorted(FINAL))
def test_final_states_have_no_exit_except_dlq_retry(state: State) -> None:
    exits = {
        State.DEAD: {State.QUEUED},  # dlq retry
        State.CANCELLED: {State.BLOCKED},  # dlq retry of the dead job it ran after
        State.SUCCEEDED: set(),
    }[state]
    assert TRANSITIONS[state] == exits
    for target in State:
        assert can_move(state, target) == (target in exits)


@pytest.mark.parametrize("state", sorted(WAITING))
def test_waiting_jobs_can_only_be_claimed_or_cancelled(state: State) -> None:
    assert TRANSITIONS[state] == {State.RUNNING, State.CANCELLED}
    assert not can_move(state, State.SUCCEEDED)
    assert not can_move(state, State.DEAD)


def test_running_ends_in_finish_fail_cancel_or_release() -> None:
    assert TRANSITIONS[State.RUNNING] == {
        State.SUCCEEDED,  # finish
        State.RETRYING,  # fail with attempts left, or rescue
        State.DEAD,  # fail with attempts used up, or rescue
        State.CANCELLED,  # cancel
        State.QUEUED,  # released at shutdown, never started
    }
    assert not can_move(State.RUNNING, State.RUNNING)
    assert not can_move(State.RUNNING, State.SCHEDULED)


def test_every_state_is_reachable_from_a_submit() -> None:
    seen = {State.BLOCKED, State.SCHEDULED, State.QUEUED}  # what submit creates
    frontier = list(seen)
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(State)


def test_only_a_blocked_job_moves_to_scheduled() -> None:
    assert [s for s, targets in TRANSITIONS.items() if State.SCHEDULED in targets] == [
        State.BLOCKED
    ]


# -- after_dependencies -----------------------------------------------------------------------


def dep(job_id: int, state: State | None, need: str = SUCCEEDED) -> Dependency:
    return Dependency(job_id, need, state)


def test_a_dependency_still_waiting_or_running_keeps_the_job_blocked() -> None:
    assert after_dependencies([dep(1, State.SUCCEEDED), dep(2, State.RUNNING)]) is None
    assert after_dependencies([dep(1, State.RETRYING, ENDED)]) is None
    assert after_dependencies([dep(1, State.BLOCKED)]) is None


def test_ready_once_every_dependency_ended_as_it_needed() -> None:
    decision = after_dependencies([dep(1, State.SUCCEEDED), dep(2, State.DEAD, ENDED)])
    assert decision is not None and decision.state is State.QUEUED
    assert decision.reason == "jobs 1, 2 it runs after ended"


@pytest.mark.parametrize("ended", [State.DEAD, State.CANCELLED])
def test_one_that_had_to_succeed_and_did_not_cancels_at_once(ended: State) -> None:
    # at once: the other dependency is still running
    decision = after_dependencies([dep(1, State.RUNNING), dep(2, ended)])
    assert decision is not None and decision.state is State.CANCELLED
    assert decision.reason == f"job 2 it runs after ended {ended}"


def test_a_deleted_dependency_fails_a_need_to_succeed_but_counts_as_ended() -> None:
    decision = after_dependencies([dep(7, None)])
    assert decision is not None and decision.state is State.CANCELLED
    assert decision.reason == "job 7 it runs after was deleted"
    ended = after_dependencies([dep(7, None, ENDED)])
    assert ended is not None and ended.state is State.QUEUED


# -- after_failure ----------------------------------------------------------------------------


def test_failure_with_attempts_left_retries_after_the_backoff() -> None:
    decision = after_failure(attempts=1, max_attempts=4, backoff=10.0, now=NOW, rng=LOW)
    assert decision == Decision(State.RETRYING, NOW + 5.0)
    decision = after_failure(attempts=3, max_attempts=4, backoff=10.0, now=NOW, rng=LOW)
    assert decision == Decision(State.RETRYING, NOW + 20.0)


def test_last_attempt_goes_dead_at_the_boundary() -> None:
    one_left = after_failure(attempts=2, max_attempts=3, backoff=1.0, now=NOW)
    assert one_left.state is State.RETRYING
    assert one_left.run_at is not None and one_left.run_at > NOW
    assert after_failure(attempts=3, max_attempts=3, backoff=1.0, now=NOW) == Decision(
        State.DEAD, None
    )
    # a dlq-retried job may be past an older bound: still dead, never retrying
    assert after_failure(attempts=5, max_attempts=3, backoff=1.0, now=NOW).state is State.DEAD


def test_zero_retries_means_the_first_failure_is_dead() -> None:
    assert after_failure(attempts=1, max_attempts=1, backoff=1.0, now=NOW).state is State.DEAD


def test_not_retryable_goes_dead_with_attempts_left() -> None:
    decision = after_failure(attempts=1, max_attempts=10, backoff=1.0, now=NOW, retryable=False)
    assert decision == Decision(State.DEAD, None)


def test_zero_backoff_retries_immediately() -> None:
    decision = after_failure(attempts=1, max_attempts=2, backoff=0.0, now=NOW, rng=HIGH)
    assert decision == Decision(State.RETRYING, NOW)


# -- backoff ----------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [0.25, 1.0, 3.0])
def test_backoff_doubles_each_attempt(base: float) -> None:
    lows = [backoff_delay(attempt, base, LOW) for attempt in range(1, 8)]
    assert lows == [base * 2 ** (a - 1) / 2 for a in range(1, 8)]
    highs = [backoff_delay(attempt, base, HIGH) for attempt in range(1, 8)]
    for attempt, high in enumerate(highs, 1):
        assert high == pytest.approx(base * 2 ** (attempt - 1))


def test_backoff_is_capped() -> None:
    assert backoff_delay(30, 1.0, HIGH) == pytest.approx(BACKOFF_CAP)
    assert backoff_delay(30, 1.0, LOW) == BACKOFF_CAP / 2
    assert backoff_delay(13, 1.0, HIGH) == pytest.approx(BACKOFF_CAP)  # 4096 > cap
    assert backoff_delay(12, 1.0, HIGH) == pytest.approx(2048.0)  # just under it
    assert backoff_delay(5, 10_000.0, HIGH) == pytest.approx(BACKOFF_CAP)  # a huge base too


def test_backoff_of_a_huge_attempt_number_neither_overflows_nor_exceeds_the_cap() -> None:
    for attempt in (100, 10_000, 10**9):
        delay = backoff_delay(attempt, 1.0, HIGH)
        assert BACKOFF_CAP / 2 <= delay <= BACKOFF_CAP


def test_jitter_stays_in_the_upper_half_of_the_nominal_delay() -> None:
    rng = random.Random(20240611)
    base = 0.5
    for attempt in range(1, 20):
        nominal = min(BACKOFF_CAP, base * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, base, rng) for _ in range(200)]
        assert all(nominal / 2 <= d <= nominal for d in delays), attempt
        # and it really spreads retries out: not one fixed point
        assert max(delays) - min(delays) > nominal / 4


def test_jitter_is_reproducible_with_a_seeded_random() -> None:
    first = [backoff_delay(a, 1.0, random.Random(7)) for a in range(1, 10)]
    again = [backoff_delay(a, 1.0, random.Random(7)) for a in range(1, 10)]
    assert first == again


def test_after_failure_uses_the_backoff_of_that_attempt() -> None:
    rng = random.Random(99)
    for attempts in range(1, 12):
        decision = after_failure(attempts, 100, backoff=2.0, now=NOW, rng=rng)
        nominal = min(BACKOFF_CAP, 2.0 * 2 ** (attempts - 1))
        assert decision.state is State.RETRYING
        assert decision.run_at is not None
        assert NOW + nominal / 2 <= decision.run_at <= NOW + nominal
