"""``tradewind tasks why``: every reason a task instance is not running, in a fixed order.

:func:`why_not_running` gathers the reasons other decisions produced (the readiness decision,
the admission result, the run's state, whether the DAG is paused) and lists them in the order
of :class:`~tradewind.scheduler.decisions.blockers.BlockerKind`: trigger rule, mapping, pool,
concurrency, executor, retry wait, reschedule wait, depends_on_past, run state, paused DAG.
"""

from __future__ import annotations

from collections.abc import Iterable

from tradewind.scheduler.decisions.blockers import Blocker, BlockerKind
from tradewind.scheduler.decisions.readiness import TaskAction, TaskDecision, TISnapshot
from tradewind.state import FINISHED, RunState, TaskState

__all__ = ["explain_blockers", "why_not_running"]

_IN_FLIGHT_TEXT = {
    TaskState.QUEUED: "it is queued: the executor has it and will start it shortly",
    TaskState.RUNNING: "it is running",
    TaskState.DEFERRED: "it is deferred: waiting for its trigger to fire",
    TaskState.RESTARTING: "it is restarting: it was cleared while running",
}


def explain_blockers(blockers: Iterable[Blocker]) -> list[str]:
    """The messages of ``blockers`` in display order, without duplicates."""
    ordered = sorted(dict.fromkeys(blockers), key=lambda b: b.kind.order)
    return list(dict.fromkeys(b.message for b in ordered))


def why_not_running(
    *,
    ti: TISnapshot | None,
    decision: TaskDecision | None = None,
    admission: Blocker | str | None = None,
    run_state: RunState | None = None,
    dag_paused: bool = False,
) -> list[str]:
    """The reasons task instance ``ti`` is not running, most fundamental first.

    Args:
        ti: the task instance (None: it does not exist in the run).
        decision: the readiness decision for it (:func:`decide_task`).
        admission: why admission held it, when it is scheduled (a Blocker or its message).
        run_state: the state of its DAG run.
        dag_paused: whether the DAG is paused.

    Returns:
        One sentence per reason; never empty.
    """
    if ti is None:
        return ["the task instance does not exist in this run (the task may be new or removed)"]
    if ti.state in FINISHED:
        return [f"it already finished with state {ti.state}; clear it to run it again"]
    if ti.state in _IN_FLIGHT_TEXT:
        return [_IN_FLIGHT_TEXT[ti.state]]

    blockers: list[Blocker] = []
    if decision is not None:
        blockers.extend(decision.blockers)
    if isinstance(admission, str):
        kind = BlockerKind.POOL if admission.startswith("pool ") else BlockerKind.CONCURRENCY
        blockers.append(Blocker(kind, admission))
    elif admission is not None:
        blockers.append(admission)
    if run_state is not None and run_state is not RunState.RUNNING:
        blockers.append(Blocker(BlockerKind.RUN_STATE, f"the DAG run is {run_state}, not running"))
    if dag_paused:
        blockers.append(
            Blocker(
                BlockerKind.PAUSED, "the DAG is paused: nothing new starts until it is unpaused"
            )
        )
    reasons = explain_blockers(blockers)
    if reasons:
        return reasons
    return [_no_blocker_text(ti, decision)]


def _no_blocker_text(ti: TISnapshot, decision: TaskDecision | None) -> str:
    if decision is None:
        if ti.state is TaskState.SCHEDULED:
            return "it is scheduled and waits to be queued at the next scheduling step"
        return "no reason found: it should be scheduled at the next scheduling step"
    if decision.action is TaskAction.SCHEDULE:
        return f"nothing blocks it: it will be scheduled at the next step ({decision.reason})"
    if decision.action in (TaskAction.NONE, TaskAction.WAIT):
        return decision.reason
    return f"it will not run: {decision.reason}"
