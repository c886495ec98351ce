"""Run state roll-up: is a DAG run finished, and did it succeed?

:func:`run_state_from_tasks` follows Airflow:

* ``dagrun_timeout`` exceeded while task instances are unfinished -> FAILED ("timed out"), and
  every unfinished instance is to be marked skipped (running ones killed first);
* the state is decided only when no task instance is unfinished; then only the *effective
  leaves* count: any leaf failed or upstream_failed -> FAILED, otherwise SUCCESS. So a failed
  task in the middle whose ``all_done`` leaf succeeds leaves the run successful;
* unfinished instances none of which can ever run (all wait on their trigger rule, nothing is
  in flight) -> FAILED ("deadlock"). As in Airflow, a run with an unfinished instance of a task
  that depends on the past is never deadlocked: another run (its previous one finishing, or
  being cleared) can let it go on;
* otherwise the run keeps RUNNING.

Effective leaves are tasks with no downstream task, where a downstream teardown does not count
(and a teardown is not a leaf itself) unless it sets ``on_failure_fail_dagrun``. Removed task
instances are ignored throughout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradewind.scheduler.decisions._text import as_utc, as_utc_or_none, format_when, plural
from tradewind.scheduler.decisions.readiness import TaskAction, TaskDecision, TISnapshot
from tradewind.scheduler.decisions.views import DagLike, TaskLike
from tradewind.state import FAILED_LIKE, FINISHED, RunState, TaskState

__all__ = ["RunDecision", "effective_leaf_ids", "run_state_from_tasks"]


@dataclass(frozen=True)
class RunDecision:
    """The state a run should be in, and why.

    Attributes:
        state: RUNNING, SUCCESS or FAILED.
        reason: one line for logs, the UI and DAG callbacks.
        callback_reason: for a finished run, the ``reason`` DAG callbacks get: ``"success"``,
            ``"task_failure"``, ``"all_tasks_deadlocked"`` or ``"timed_out"``.
        to_skip: ``(task_id, map_index)`` of every unfinished instance to mark skipped (after
            a timeout).
        timeout_at: when the run times out (None without ``dagrun_timeout``), as a timer.
    """

    state: RunState
    reason: str
    callback_reason: str | None = None
    to_skip: tuple[tuple[str, int], ...] = ()
    timeout_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether the run is over (SUCCESS or FAILED)."""
        return self.state in (RunState.SUCCESS, RunState.FAILED)


def _is_ignorable_teardown(task: TaskLike) -> bool:
    return task.is_teardown and not task.on_failure_fail_dagrun


def effective_leaf_ids(dag: DagLike) -> set[str]:
    """The tasks whose states decide a finished run's state (see the module docstring).

    A DAG made only of ignorable teardowns falls back to its plain leaves.
    """
    tasks = dag.task_dict
    leaves = {
        tid
        for tid, task in tasks.items()
        if not _is_ignorable_teardown(task)
        and all(
            down in tasks and _is_ignorable_teardown(tasks[down])
            for down in task.downstream_task_ids
        )
    }
    if not leaves:
        leaves = {tid for tid, task in tasks.items() if not task.downstream_task_ids}
    return leaves


def _names(keys: Iterable[tuple[str, int]], limit: int = 5) -> str:
    labels = [repr(t) if i < 0 else f"{t!r}[{i}]" for t, i in keys]
    more = len(labels) - limit
    text = ", ".join(labels[:limit])
    return f"{text} and {more} more" if more > 0 else text


def run_state_from_tasks(
    tis: Iterable[TISnapshot],
    *,
    dag: DagLike,
    now: datetime,
    run_start: datetime | None,
    dagrun_timeout: timedelta | None,
    decisions: Mapping[tuple[str, int], TaskDecision] | None = None,
) -> RunDecision:
    """Decide the state of a running DAG run from its task instances.

    Args:
        tis: every task instance of the run.
        dag: the run's DAG version (for the effective leaves).
        now: the current time.
        run_start: when the run started (None: not started, so no timeout).
        dagrun_timeout: the DAG's ``dagrun_timeout`` (None: no limit).
        decisions: the readiness decisions made this round for the run's ``created``
            instances, by ``(task_id, map_index)``. Needed to detect a deadlock; without them
            a run with unfinished instances simply stays RUNNING.
    """
    now, run_start = as_utc(now), as_utc_or_none(run_start)
    live = [ti for ti in tis if ti.state is not TaskState.REMOVED]
    unfinished = [ti for ti in live if ti.state not in FINISHED]
    timeout_at = (
        run_start + dagrun_timeout if run_start is not None and dagrun_timeout is not None else None
    )

    if unfinished and timeout_at is not None and now > timeout_at:
        keys = tuple(sorted(ti.key for ti in unfinished))
        return RunDecision(
            RunState.FAILED,
            f"timed out: the run exceeded its dagrun_timeout of {dagrun_timeout} (it started "
            f"{format_when(run_start or now, now)}); "
            f"{plural(len(keys), 'unfinished task instance')} will be marked skipped",
            callback_reason="timed_out",
            to_skip=keys,
            timeout_at=timeout_at,
        )

    if not unfinished:
        leaf_ids = effective_leaf_ids(dag)
        leaves = [ti for ti in live if ti.task_id in leaf_ids]
        failed = sorted(ti.key for ti in leaves if ti.state in FAILED_LIKE)
        if failed:
            return RunDecision(
                RunState.FAILED,
                f"failed: leaf task instance(s) {_names(failed)} failed or are upstream_failed",
                callback_reason="task_failure",
                timeout_at=timeout_at,
            )
        return RunDecision(
            RunState.SUCCESS,
            "success: every leaf task instance succeeded or was skipped "
            f"({plural(len(leaves), 'leaf instance')})",
            callback_reason="success",
            timeout_at=timeout_at,
        )

    stuck = _deadlocked(unfinished, decisions, dag)
    if stuck is not None:
        return RunDecision(
            RunState.FAILED,
            f"deadlock: {plural(len(unfinished), 'task instance')} can never run: {stuck}",
            callback_reason="all_tasks_deadlocked",
            timeout_at=timeout_at,
        )
    return RunDecision(
        RunState.RUNNING,
        f"running: {len(unfinished)} of {plural(len(live), 'task instance')} unfinished",
        timeout_at=timeout_at,
    )


def _deadlocked(
    unfinished: list[TISnapshot],
    decisions: Mapping[tuple[str, int], TaskDecision] | None,
    dag: DagLike,
) -> str | None:
    """The reasons, when no unfinished instance can ever make progress; None otherwise."""
    if decisions is None:
        return None
    tasks = dag.task_dict
    reasons: list[str] = []
    for ti in unfinished:
        # Anything past `created` is in flight or on a timer, which will bring progress.
        if ti.state is not TaskState.CREATED:
            return None
        task = tasks.get(ti.task_id)
        if task is not None and (task.depends_on_past or task.wait_for_downstream):
            return None  # what it waits for happens in another run
        decision = decisions.get(ti.key)
        if decision is None or decision.action is not TaskAction.WAIT or decision.wake_at:
            return None
        reasons.append(f"{ti.label} ({decision.reason})")
    shown = reasons[:3]
    more = len(reasons) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
