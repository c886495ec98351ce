"""Task-instance and DAG-run states, the legal transitions between them, and named groups.

This is the one state machine: every state write elsewhere is checked against
:data:`TASK_TRANSITIONS` / :data:`RUN_TRANSITIONS`. There is no ``None`` state; a new task
instance starts in :attr:`TaskState.CREATED` (shown as "none" only in Airflow-compatible views).
"""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """The state of one task instance (one task, one run, one map index)."""

    CREATED = "created"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    UP_FOR_RETRY = "up_for_retry"
    UP_FOR_RESCHEDULE = "up_for_reschedule"
    DEFERRED = "deferred"
    REMOVED = "removed"
    RESTARTING = "restarting"

    @property
    def airflow_name(self) -> str | None:
        """The name Airflow-compatible views show (``None`` for created)."""
        return None if self is TaskState.CREATED else self.value


class RunState(StrEnum):
    """The state of one DAG run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


T = TaskState

#: Finished task states: nothing more will happen without a clear.
FINISHED: frozenset[TaskState] = frozenset(
    {T.SUCCESS, T.FAILED, T.SKIPPED, T.UPSTREAM_FAILED, T.REMOVED}
)
#: Task states that still expect progress.
UNFINISHED: frozenset[TaskState] = frozenset(set(TaskState) - FINISHED)
#: States counted as "it worked" by trigger rules and run roll-up.
SUCCESS_LIKE: frozenset[TaskState] = frozenset({T.SUCCESS, T.SKIPPED})
#: States counted as "it failed" by trigger rules and run roll-up.
FAILED_LIKE: frozenset[TaskState] = frozenset({T.FAILED, T.UPSTREAM_FAILED})
#: States in which a task try holds an executor slot.
ACTIVE: frozenset[TaskState] = frozenset({T.QUEUED, T.RUNNING})

# Clearing (back to CREATED) is allowed from every state, which is how re-runs happen.
_CLEAR = {T.CREATED}

#: Legal task-instance transitions: ``state -> states it may move to``.
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    T.CREATED: frozenset(
        {T.SCHEDULED, T.SKIPPED, T.UPSTREAM_FAILED, T.REMOVED, T.SUCCESS, T.FAILED}
    ),
    T.SCHEDULED: frozenset(
        {T.QUEUED, T.CREATED, T.SKIPPED, T.UPSTREAM_FAILED, T.REMOVED, T.FAILED}
    ),
    T.QUEUED: frozenset(
        {T.RUNNING, T.SCHEDULED, T.FAILED, T.UP_FOR_RETRY, T.SUCCESS, T.SKIPPED, *_CLEAR}
    ),
    T.RUNNING: frozenset(
        {
            T.SUCCESS,
            T.FAILED,
            T.SKIPPED,
            T.UP_FOR_RETRY,
            T.UP_FOR_RESCHEDULE,
            T.DEFERRED,
            T.RESTARTING,
        }
    ),
    T.UP_FOR_RETRY: frozenset({T.SCHEDULED, T.FAILED, T.SKIPPED, *_CLEAR}),
    T.UP_FOR_RESCHEDULE: frozenset({T.SCHEDULED, T.FAILED, T.SKIPPED, *_CLEAR}),
    T.DEFERRED: frozenset({T.SCHEDULED, T.FAILED, T.SKIPPED, T.UP_FOR_RETRY, *_CLEAR}),
    T.RESTARTING: frozenset({T.UP_FOR_RETRY, T.FAILED, *_CLEAR}),
    T.SUCCESS: frozenset({*_CLEAR, T.FAILED}),
    T.FAILED: frozenset({*_CLEAR, T.SUCCESS}),
    T.SKIPPED: frozenset({*_CLEAR, T.SUCCESS, T.FAILED}),
    T.UPSTREAM_FAILED: frozenset({*_CLEAR, T.SUCCESS, T.FAILED}),
    T.REMOVED: frozenset({*_CLEAR}),
}

#: Legal DAG-run transitions.
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset({RunState.RUNNING, RunState.FAILED, RunState.SUCCESS}),
    RunState.RUNNING: frozenset({RunState.SUCCESS, RunState.FAILED, RunState.QUEUED}),
    RunState.SUCCESS: frozenset({RunState.QUEUED, RunState.FAILED}),
    RunState.FAILED: frozenset({RunState.QUEUED, RunState.SUCCESS}),
}


def can_transition(current: TaskState, new: TaskState) -> bool:
    """Whether a task instance may move from ``current`` to ``new``."""
    return new in TASK_TRANSITIONS[current]


def can_transition_run(current: RunState, new: RunState) -> bool:
    """Whether a DAG run may move from ``current`` to ``new``."""
    return new in RUN_TRANSITIONS[current]
