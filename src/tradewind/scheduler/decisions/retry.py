"""Retries: whether a failed try is retried, and when the next try may start.

Timing follows Airflow (``retry_delay``, ``retry_exponential_backoff``, ``max_retry_delay``):

* Without backoff (a multiplier of 0, 1 or False) the delay is ``retry_delay`` itself.
* With a multiplier ``m`` (``True`` means 2.0), the base is
  ``ceil(retry_delay_seconds * m ** (try_number - 1))`` seconds, at least 1, and the delay is
  ``base + jitter`` with a deterministic jitter in ``[0, base)`` taken from the SHA-1 of
  ``"dag_id#task_id#logical_date#try_number"``. The same try of the same task instance always
  waits the same time, and different task instances do not retry in lockstep.
* A backed-off delay is capped at :data:`MAX_RETRY_DELAY` (one day, Airflow's
  ``[core] max_task_retry_delay``) and then at the task's ``max_retry_delay`` when it has one.

A try is retried when ``try_number <= max_tries`` (``max_tries`` is the task's ``retries``), so a
task runs at most ``retries + 1`` times; a :class:`~tradewind.errors.TaskFailed` (or sensor
timeout) fails at once, and a try that was cleared while running (``restarting``) is always
retried.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from typing import NamedTuple

from tradewind.errors import InvalidArgumentError
from tradewind.scheduler.decisions._text import plural
from tradewind.state import TaskState

__all__ = [
    "MAX_RETRY_DELAY",
    "FailureOutcome",
    "backoff_multiplier",
    "next_retry_at",
    "outcome_after_failure",
    "retry_delay_for",
]

#: The longest a backed-off retry ever waits (Airflow's ``[core] max_task_retry_delay``).
MAX_RETRY_DELAY = timedelta(days=1)


def backoff_multiplier(backoff: float | bool | None) -> float:
    """The multiplier for ``retry_exponential_backoff``: True -> 2.0, False/None -> 0.0.

    Raises:
        InvalidArgumentError: a negative or non-finite multiplier.
    """
    if backoff is None or backoff is False:
        return 0.0
    if backoff is True:
        return 2.0
    value = float(backoff)
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(
            f"retry_exponential_backoff must be a finite number >= 0 or a bool, got {backoff!r}",
            argument="retry_exponential_backoff",
        )
    return value


def _jitter_seed(dag_id: str, task_id: str, logical_date_iso: str, try_number: int) -> int:
    text = f"{dag_id}#{task_id}#{logical_date_iso}#{try_number}"
    return int(hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest(), 16)


def retry_delay_for(
    *,
    try_number: int,
    retry_delay: timedelta,
    backoff: float | bool | None,
    max_retry_delay: timedelta | None,
    dag_id: str,
    task_id: str,
    logical_date_iso: str,
    max_delay_cap: timedelta = MAX_RETRY_DELAY,
) -> timedelta:
    """How long to wait after try ``try_number`` failed (see the module docstring).

    Args:
        try_number: the try that just failed (1 for the first).
        retry_delay: the task's ``retry_delay``.
        backoff: the task's ``retry_exponential_backoff`` (multiplier or bool).
        max_retry_delay: the task's ``max_retry_delay`` (None: no task-level cap).
        dag_id, task_id, logical_date_iso: identify the task instance for the jitter (use the
            run id in place of the logical date for runs without one).
        max_delay_cap: the global cap (``[core] max_task_retry_delay``).
    """
    multiplier = backoff_multiplier(backoff)
    if multiplier in (0.0, 1.0):
        return retry_delay
    seconds = max(retry_delay.total_seconds(), 0.0)
    cap_seconds = max_delay_cap.total_seconds()
    exponent = max(try_number - 1, 0)
    # Compare in log space first: m ** exponent overflows a float long before it matters.
    if (
        seconds > 0
        and multiplier > 1
        and math.log(seconds) + exponent * math.log(multiplier) > math.log(cap_seconds + 1)
    ):
        delay = max_delay_cap
    else:
        base = max(math.ceil(seconds * multiplier**exponent), 1)
        jitter = _jitter_seed(dag_id, task_id, logical_date_iso, try_number) % base
        delay = min(timedelta(seconds=base + jitter), max_delay_cap)
    if max_retry_delay is not None:
        delay = min(delay, max_retry_delay)
    return delay


def next_retry_at(
    *,
    end_date: datetime,
    try_number: int,
    retry_delay: timedelta,
    backoff: float | bool | None,
    max_retry_delay: timedelta | None,
    dag_id: str,
    task_id: str,
    logical_date_iso: str,
    max_delay_cap: timedelta = MAX_RETRY_DELAY,
) -> datetime:
    """When the next try may start: ``end_date`` of the failed try plus :func:`retry_delay_for`."""
    return end_date + retry_delay_for(
        try_number=try_number,
        retry_delay=retry_delay,
        backoff=backoff,
        max_retry_delay=max_retry_delay,
        dag_id=dag_id,
        task_id=task_id,
        logical_date_iso=logical_date_iso,
        max_delay_cap=max_delay_cap,
    )


class FailureOutcome(NamedTuple):
    """The state a failed try leads to, and why."""

    state: TaskState
    reason: str


def outcome_after_failure(
    try_number: int, max_tries: int, *, fail_fast_error: bool, restarting: bool = False
) -> FailureOutcome:
    """UP_FOR_RETRY or FAILED for a try that just failed.

    Args:
        try_number: the try that failed (1 for the first).
        max_tries: how many retries the task instance may have (the task's ``retries``).
        fail_fast_error: the failure forbids retrying (``TaskFailed``, a sensor timeout).
        restarting: the try was cleared while it ran; it is always retried.
    """
    total = max_tries + 1
    if fail_fast_error:
        return FailureOutcome(
            TaskState.FAILED,
            f"try {try_number} of {total} failed with an error that does not allow retries",
        )
    if restarting:
        return FailureOutcome(
            TaskState.UP_FOR_RETRY, f"try {try_number} was cleared while running; retrying"
        )
    if try_number <= max_tries:
        left = max_tries - try_number + 1
        return FailureOutcome(
            TaskState.UP_FOR_RETRY,
            f"try {try_number} of {total} failed; will retry ({plural(left, 'retry', 'retries')} "
            "left)",
        )
    return FailureOutcome(
        TaskState.FAILED,
        f"try {try_number} of {total} failed; no retries left (retries={max_tries})",
    )
