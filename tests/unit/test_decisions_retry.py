"""Retry timing (constant, exponential with deterministic jitter, caps) and retry-or-fail."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewind.errors import InvalidArgumentError
from tradewind.scheduler.decisions import (
    MAX_RETRY_DELAY,
    backoff_multiplier,
    next_retry_at,
    outcome_after_failure,
    retry_delay_for,
)
from tradewind.state import TaskState

END = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
IDS = {"dag_id": "etl", "task_id": "load", "logical_date_iso": "2024-01-01T00:00:00+00:00"}


def delay(try_number: int = 1, **kwargs: Any) -> timedelta:
    kwargs.setdefault("retry_delay", timedelta(seconds=10))
    kwargs.setdefault("backoff", 2.0)
    kwargs.setdefault("max_retry_delay", None)
    return retry_delay_for(try_number=try_number, **IDS, **kwargs)


@pytest.mark.parametrize("backoff", [0, 0.0, 1, 1.0, False, None])
def test_without_backoff_the_delay_is_constant(backoff: Any) -> None:
    for try_number in (1, 2, 5):
        assert delay(try_number, backoff=backoff) == timedelta(seconds=10)


def test_constant_delay_is_not_capped() -> None:
    # Airflow caps only backed-off delays.
    assert delay(backoff=0, retry_delay=timedelta(days=2)) == timedelta(days=2)


@pytest.mark.parametrize("try_number", [1, 2, 3, 4, 6])
def test_backoff_doubles_with_jitter_below_twice_the_base(try_number: int) -> None:
    base = 10 * 2 ** (try_number - 1)
    got = delay(try_number).total_seconds()
    assert base <= got < 2 * base
    assert got == int(got)


def test_jitter_is_deterministic_and_spread() -> None:
    # the same try of the same instance always waits the same time
    assert delay(3) == delay(3)
    # different instances do not retry in lockstep
    others = {
        retry_delay_for(
            try_number=3, retry_delay=timedelta(seconds=100), backoff=2.0, max_retry_delay=None,
            dag_id="etl", task_id=f"t{i}", logical_date_iso="2024-01-01T00:00:00+00:00",
        )
        for i in range(20)
    }  # fmt: skip
    assert len(others) > 5


def test_true_means_doubling() -> None:
    assert delay(3, backoff=True) == delay(3, backoff=2.0)
    assert backoff_multiplier(True) == 2.0
    assert backoff_multiplier(False) == 0.0
    assert backoff_multiplier(1.5) == 1.5


def test_negative_backoff_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="retry_exponential_backoff"):
        backoff_multiplier(-2)
    with pytest.raises(InvalidArgumentError):
        backoff_multiplier(float("inf"))


def test_backed_off_delay_is_capped_at_one_day() -> None:
    assert MAX_RETRY_DELAY == timedelta(days=1)
    assert delay(20, retry_delay=timedelta(hours=1)) == MAX_RETRY_DELAY
    # a huge try number does not overflow
    assert delay(100_000, retry_delay=timedelta(hours=1), backoff=10.0) == MAX_RETRY_DELAY


def test_max_retry_delay_caps_below_the_day() -> None:
    cap = timedelta(minutes=5)
    assert delay(10, max_retry_delay=cap) == cap
    assert delay(1, max_retry_delay=cap) < cap


def test_zero_retry_delay_still_waits_a_second() -> None:
    assert delay(1, retry_delay=timedelta(0)) == timedelta(seconds=1)


def test_next_retry_at_adds_the_delay_to_the_end_of_the_failed_try() -> None:
    at = next_retry_at(
        end_date=END, try_number=2, retry_delay=timedelta(seconds=30), backoff=0,
        max_retry_delay=None, **IDS,
    )  # fmt: skip
    assert at == END + timedelta(seconds=30)
    backed = next_retry_at(
        end_date=END, try_number=2, retry_delay=timedelta(seconds=30), backoff=2.0,
        max_retry_delay=None, **IDS,
    )  # fmt: skip
    assert backed == END + delay(2, retry_delay=timedelta(seconds=30))


@given(
    seconds=st.integers(min_value=0, max_value=7200),
    multiplier=st.sampled_from([1.5, 2.0, 3.0, 0.5]),
    try_number=st.integers(min_value=1, max_value=40),
    cap_minutes=st.one_of(st.none(), st.integers(min_value=1, max_value=3000)),
    task_id=st.text(min_size=1, max_size=8),
)
def test_backed_off_delay_lies_within_base_and_twice_base_then_capped(
    seconds: int, multiplier: float, try_number: int, cap_minutes: int | None, task_id: str
) -> None:
    cap = None if cap_minutes is None else timedelta(minutes=cap_minutes)
    got = retry_delay_for(
        try_number=try_number, retry_delay=timedelta(seconds=seconds), backoff=multiplier,
        max_retry_delay=cap, dag_id="d", task_id=task_id, logical_date_iso="x",
    )  # fmt: skip
    limit = min(MAX_RETRY_DELAY, cap) if cap is not None else MAX_RETRY_DELAY
    assert got <= limit
    raw = seconds * multiplier ** (try_number - 1)
    base = max(math.ceil(raw), 1) if raw < 10**9 else None
    if base is not None and timedelta(seconds=base) < limit:
        assert timedelta(seconds=base) <= got
        assert got < timedelta(seconds=2 * base) or got == limit
    else:
        assert got == limit


# -- retry or fail -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("try_number", "max_tries", "fail_fast", "restarting", "state", "reason"),
    [
        (1, 2, False, False, TaskState.UP_FOR_RETRY, "try 1 of 3 failed; will retry (2 retries left)"),
        (2, 2, False, False, TaskState.UP_FOR_RETRY, "try 2 of 3 failed; will retry (1 retry left)"),
        (3, 2, False, False, TaskState.FAILED, "try 3 of 3 failed; no retries left (retries=2)"),
        (1, 0, False, False, TaskState.FAILED, "try 1 of 1 failed; no retries left (retries=0)"),
        (1, 5, True, False, TaskState.FAILED,
         "try 1 of 6 failed with an error that does not allow retries"),
        (4, 2, False, True, TaskState.UP_FOR_RETRY, "try 4 was cleared while running; retrying"),
    ],
)  # fmt: skip
def test_outcome_after_failure(
    try_number: int,
    max_tries: int,
    fail_fast: bool,
    restarting: bool,
    state: TaskState,
    reason: str,
) -> None:
    outcome = outcome_after_failure(
        try_number, max_tries, fail_fast_error=fail_fast, restarting=restarting
    )
    assert outcome.state is state
    assert outcome.reason == reason
    assert tuple(outcome) == (state, reason)


@given(retries=st.integers(min_value=0, max_value=10))
def test_a_task_runs_at_most_retries_plus_one_times(retries: int) -> None:
    tries = 0
    while True:
        tries += 1
        if outcome_after_failure(tries, retries, fail_fast_error=False).state is TaskState.FAILED:
            break
    assert tries == retries + 1
