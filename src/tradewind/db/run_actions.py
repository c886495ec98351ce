"""What people do to a whole DAG run by hand: mark it success or failed, or queue it again.

Each goes through :mod:`tradewind.db.state_changes` like every other state write:

* **success** — every unfinished task instance becomes ``success`` (one that may not move
  there directly, e.g. ``up_for_retry``, goes back to ``created`` first), then the run;
* **failed** — queued, running and restarting instances become ``failed``, the other
  unfinished ones ``skipped``, then the run (as Airflow does);
* **queued** — the run is queued again; its task instances are left as they are (clear them
  to run them again).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db import dags as db_dags
from tradewind.db.models import DagRun, TaskInstance
from tradewind.db.state_changes import transition_run, transition_tasks
from tradewind.db.task_instances import clear_task_instances, touch_runs
from tradewind.errors import InvalidArgumentError
from tradewind.state import UNFINISHED, RunState, TaskState, can_transition

__all__ = ["MARKABLE_RUN_STATES", "ClearedTask", "clear_runs", "mark_run"]

#: The states a run may be set to by hand.
MARKABLE_RUN_STATES: frozenset[RunState] = frozenset(
    {RunState.SUCCESS, RunState.FAILED, RunState.QUEUED}
)
_FAIL_DIRECTLY = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.RESTARTING})


def _unfinished(session: Session, run: DagRun) -> dict[TaskState, list[str]]:
    rows = session.execute(
        sa.select(TaskInstance.id, TaskInstance.state).where(
            TaskInstance.dag_id == run.dag_id,
            TaskInstance.run_id == run.run_id,
            TaskInstance.state.in_(sorted(UNFINISHED)),
        )
    )
    out: dict[TaskState, list[str]] = {}
    for ti_id, state in rows:
        out.setdefault(TaskState(state), []).append(ti_id)
    return out


def _move(
    session: Session,
    by_state: dict[TaskState, list[str]],
    states: Collection[TaskState],
    new: TaskState,
    *,
    now: datetime,
    **fields: Any,
) -> int:
    moved = 0
    for state in states:
        ids = by_state.get(state)
        if ids:
            moved += len(
                transition_tasks(session, ids, state, new, now=now, record_history=False, **fields)
            )
    return moved


def mark_run(session: Session, run: DagRun, new: RunState, *, now: datetime) -> int:
    """Set ``run`` to ``new`` (success, failed or queued) as the module docstring says;
    returns how many task instances changed. Setting a run to the state it is in changes
    nothing."""
    new = RunState(new)
    if new not in MARKABLE_RUN_STATES:
        raise InvalidArgumentError(
            f"a run can be set to {', '.join(sorted(MARKABLE_RUN_STATES))}, not {new.value}",
            argument="state",
        )
    current = RunState(run.state)
    if current is new:
        return 0
    changed = 0
    by_state = _unfinished(session, run)
    if new is RunState.SUCCESS:
        direct = [s for s in by_state if can_transition(s, TaskState.SUCCESS)]
        changed += _move(session, by_state, direct, TaskState.SUCCESS, now=now, end_date=now)
        detour = [s for s in by_state if s not in direct]
        changed += _move(session, by_state, detour, TaskState.CREATED, now=now)
        ids = [i for s in detour for i in by_state[s]]
        if ids:
            transition_tasks(
                session,
                ids,
                TaskState.CREATED,
                TaskState.SUCCESS,
                now=now,
                record_history=False,
                end_date=now,
            )
    elif new is RunState.FAILED:
        failing = [s for s in by_state if s in _FAIL_DIRECTLY]
        changed += _move(session, by_state, failing, TaskState.FAILED, now=now, end_date=now)
        rest = [s for s in by_state if s not in _FAIL_DIRECTLY]
        changed += _move(session, by_state, rest, TaskState.SKIPPED, now=now, end_date=now)
    fields: dict[str, Any] = {}
    if new in (RunState.SUCCESS, RunState.FAILED):
        fields["end_date"] = now
        if run.start_date is None:
            fields["start_date"] = now
    else:
        fields.update(queued_at=now, end_date=None)
    transition_run(session, run.id, current, new, now=now, **fields)
    touch_runs(session, run.dag_id, [run.run_id], now=now)
    return changed


@dataclass(frozen=True)
class ClearedTask:
    """A task instance a clear matched, with its state before the clear."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: TaskState
    logical_date: datetime | None


def clear_runs(
    session: Session,
    runs: Sequence[DagRun],
    *,
    now: datetime,
    task_ids: Collection[str] | None = None,
    upstream: bool = False,
    downstream: bool = False,
    only_failed: bool = False,
    dry_run: bool = False,
) -> list[ClearedTask]:
    """Clear task instances of some runs of one DAG (see
    :func:`tradewind.db.task_instances.clear_task_instances`), each run against the DAG
    version it is pinned to. ``task_ids`` (default: every task) that a version lacks are
    ignored for it. Returns what matched, with the states before the clear."""
    by_version: dict[int | None, list[DagRun]] = {}
    for run in runs:
        by_version.setdefault(run.dag_version_id, []).append(run)
    out: list[ClearedTask] = []
    for version_id, group in by_version.items():
        from tradewind.serialization import deserialize_dag

        version = (
            db_dags.get_version(session, version_id)
            if version_id is not None
            else db_dags.get_latest_version(session, group[0].dag_id)
        )
        view = deserialize_dag(version.document)
        wanted = view.task_ids if task_ids is None else [t for t in task_ids if view.has_task(t)]
        if not wanted:
            continue
        dates = {r.run_id: r.logical_date for r in group}
        run_ids = sorted(dates)
        options: dict[str, Any] = {
            "now": now,
            "upstream": upstream,
            "downstream": downstream,
            "only_failed": only_failed,
        }
        matched = clear_task_instances(session, view, run_ids, wanted, dry_run=True, **options)
        found = [
            ClearedTask(
                t.dag_id, t.run_id, t.task_id, t.map_index, TaskState(t.state), dates[t.run_id]
            )
            for t in matched
        ]
        out += found
        if dry_run or not found:
            continue
        clear_task_instances(session, view, run_ids, wanted, **options)
        touch_runs(session, view.dag_id, {t.run_id for t in found}, now=now)
    return out
