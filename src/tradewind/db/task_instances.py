"""Task instances: read and count them, expand mapped tasks, clear and mark.

State writes go through :mod:`tradewind.db.state_changes` (clearing and marking use it too);
:func:`set_task_fields` changes only non-state columns.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import TI_SHARED_COLUMNS, DagRun, TaskInstance, TaskMap
from tradewind.db.runs import new_ti_id
from tradewind.db.state_changes import transition_run, transition_task, transition_tasks
from tradewind.errors import InvalidArgumentError, NotFound
from tradewind.state import ACTIVE, FINISHED, RunState, TaskState, can_transition

if TYPE_CHECKING:
    from tradewind.serialization import SerializedDAG

__all__ = [
    "clear_task_instances",
    "count_by_state",
    "count_tis",
    "expand_mapped",
    "get_task_map",
    "get_ti",
    "get_ti_by_key",
    "list_tis",
    "list_tis_in_states",
    "mark_state",
    "record_task_map",
    "scheduled_candidates",
    "selected_tasks",
    "set_task_fields",
    "touch_runs",
]

_SETTABLE = frozenset(TI_SHARED_COLUMNS) - {"state", "dag_id", "run_id", "task_id", "map_index"}
_GROUPABLE = frozenset({"dag_id", "run_id", "task_id", "state", "pool", "queue", "executor"})
_CHUNK = 500


def get_ti(session: Session, ti_id: str) -> TaskInstance:
    """The task instance with row id ``ti_id``; raises :class:`NotFound`."""
    ti = session.get(TaskInstance, ti_id)
    if ti is None:
        raise NotFound("task instance", ti_id)
    return ti


def get_ti_by_key(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> TaskInstance:
    """The task instance for (dag, run, task, map index); raises :class:`NotFound`."""
    ti = session.scalar(
        sa.select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    )
    if ti is None:
        where = f"{dag_id}/{run_id}/{task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
        raise NotFound("task instance", where)
    return ti


def list_tis(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    task_ids: Collection[str] | None = None,
    states: Collection[TaskState] | None = None,
) -> list[TaskInstance]:
    """The run's task instances, by task id then map index."""
    statement = sa.select(TaskInstance).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
    )
    if task_ids is not None:
        statement = statement.where(TaskInstance.task_id.in_(list(task_ids)))
    if states is not None:
        statement = statement.where(TaskInstance.state.in_([TaskState(s) for s in states]))
    statement = statement.order_by(TaskInstance.task_id, TaskInstance.map_index)
    return list(session.scalars(statement))


def list_tis_in_states(
    session: Session,
    states: Collection[TaskState],
    *,
    dag_ids: Collection[str] | None = None,
    limit: int | None = None,
) -> list[TaskInstance]:
    """Task instances in ``states`` across runs, highest ``priority_weight`` first."""
    statement = sa.select(TaskInstance).where(
        TaskInstance.state.in_([TaskState(s) for s in states])
    )
    if dag_ids is not None:
        statement = statement.where(TaskInstance.dag_id.in_(list(dag_ids)))
    statement = statement.order_by(
        TaskInstance.priority_weight.desc(), TaskInstance.dag_id, TaskInstance.map_index
    )
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


_CANDIDATE_COLUMNS = (
    TaskInstance.id,
    TaskInstance.dag_id,
    TaskInstance.run_id,
    TaskInstance.task_id,
    TaskInstance.map_index,
    TaskInstance.try_number,
    TaskInstance.max_tries,
    TaskInstance.priority_weight,
    TaskInstance.pool,
    TaskInstance.pool_slots,
    TaskInstance.queue,
    TaskInstance.dag_version_id,
)


def scheduled_candidates(
    session: Session,
    *,
    limit: int,
    dag_ids: Collection[str] | None = None,
    exclude_pools: Collection[str] = (),
    scheduler_job_id: int | None = None,
) -> list[Any]:
    """Up to ``limit`` scheduled task instances, highest ``priority_weight`` first, as plain
    rows (id, dag_id, run_id, task_id, map_index, try_number, max_tries, priority_weight,
    pool, pool_slots, queue, dag_version_id), leaving out the pools in ``exclude_pools``;
    with ``scheduler_job_id``, only from the runs that scheduler works on."""
    statement = sa.select(*_CANDIDATE_COLUMNS).where(TaskInstance.state == TaskState.SCHEDULED)
    if scheduler_job_id is not None:
        statement = statement.join(
            DagRun,
            sa.and_(DagRun.dag_id == TaskInstance.dag_id, DagRun.run_id == TaskInstance.run_id),
        ).where(DagRun.scheduler_job_id == scheduler_job_id)
    if dag_ids is not None:
        statement = statement.where(TaskInstance.dag_id.in_(list(dag_ids)))
    if exclude_pools:
        statement = statement.where(TaskInstance.pool.not_in(list(exclude_pools)))
    # Priority alone (ties in creation order): the state-priority index then yields the
    # rows in order and the query stops after ``limit`` of them.
    statement = statement.order_by(TaskInstance.priority_weight.desc()).limit(limit)
    return list(session.execute(statement))


def count_tis(
    session: Session,
    group_by: Sequence[str],
    *,
    states: Collection[TaskState] | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    sum_pool_slots: bool = False,
) -> dict[tuple[Any, ...], int]:
    """Counts of task instances grouped by columns (``dag_id``, ``run_id``, ``task_id``,
    ``state``, ``pool``, ``queue``, ``executor``), e.g. active tasks per run::

        count_tis(session, ["dag_id", "run_id"], states=ACTIVE)

    With ``sum_pool_slots`` the values are sums of ``pool_slots`` instead of counts. Groups
    with nothing in them are absent.
    """
    unknown = sorted(set(group_by) - _GROUPABLE)
    if unknown or not group_by:
        raise InvalidArgumentError(
            f"count_tis: cannot group by {', '.join(unknown) or 'nothing'}; "
            f"allowed: {', '.join(sorted(_GROUPABLE))}",
            argument="group_by",
        )
    columns = [getattr(TaskInstance, name) for name in group_by]
    measure = sa.func.sum(TaskInstance.pool_slots) if sum_pool_slots else sa.func.count()
    statement = sa.select(*columns, measure).group_by(*columns)
    if states is not None:
        statement = statement.where(TaskInstance.state.in_([TaskState(s) for s in states]))
    if dag_id is not None:
        statement = statement.where(TaskInstance.dag_id == dag_id)
    if run_id is not None:
        statement = statement.where(TaskInstance.run_id == run_id)
    return {tuple(row[:-1]): int(row[-1] or 0) for row in session.execute(statement)}


def count_by_state(
    session: Session, dag_id: str, run_id: str | None = None
) -> dict[TaskState, int]:
    """``{state: number of task instances}`` of a run (or of every run of the DAG)."""
    counts = count_tis(session, ["state"], dag_id=dag_id, run_id=run_id)
    return {TaskState(key[0]): value for key, value in counts.items()}


def set_task_fields(session: Session, ti_id: str, **fields: Any) -> bool:
    """Set columns other than the state (``pid``, ``rendered_fields`` …); returns whether the
    row exists."""
    unknown = sorted(set(fields) - _SETTABLE)
    if unknown:
        raise InvalidArgumentError(
            f"set_task_fields: unknown or read-only column(s) {', '.join(unknown)} "
            "(states change through tradewind.db.state_changes)",
            argument=unknown[0],
        )
    result = session.execute(
        sa.update(TaskInstance)
        .where(TaskInstance.id == ti_id)
        .values(**fields)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# -- mapping ---------------------------------------------------------------------------------


def expand_mapped(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    length: int,
    *,
    now: datetime,
) -> list[TaskInstance]:
    """Expand a mapped task's placeholder (map index -1) into ``length`` task instances.

    The placeholder becomes index 0 (keeping its row id) and indexes 1 … length-1 are added as
    copies in state ``created``. A length of 0 marks the placeholder ``skipped`` instead, as
    Airflow does. Expanding a task that is expanded already changes nothing. Returns the
    task's instances afterwards, by map index.
    """
    if length < 0:
        raise InvalidArgumentError(f"map length must be >= 0, got {length}", argument="length")
    placeholder = session.scalar(
        sa.select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == -1,
        )
    )
    if placeholder is not None and placeholder.state is TaskState.CREATED:
        if length == 0:
            transition_task(
                session,
                placeholder.id,
                TaskState.CREATED,
                TaskState.SKIPPED,
                now=now,
                end_date=now,
            )
        else:
            _fill_expansion(session, placeholder, length, now=now)
    return list_tis(session, dag_id, run_id, task_ids=[task_id])


def _fill_expansion(
    session: Session, placeholder: TaskInstance, length: int, *, now: datetime
) -> None:
    # Compare-and-set on the placeholder: of two schedulers expanding at once, one does it.
    claimed = session.execute(
        sa.update(TaskInstance)
        .where(
            TaskInstance.id == placeholder.id,
            TaskInstance.map_index == -1,
            TaskInstance.state == TaskState.CREATED,
        )
        .values(map_index=0, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return
    session.expire(placeholder)
    template = {
        name: getattr(placeholder, name)
        for name in TI_SHARED_COLUMNS
        if name not in ("map_index", "updated_at")
    }
    rows = [
        {**template, "id": new_ti_id(), "map_index": index, "updated_at": now}
        for index in range(1, length)
    ]
    for start in range(0, len(rows), _CHUNK * 4):
        session.execute(sa.insert(TaskInstance), rows[start : start + _CHUNK * 4])


def record_task_map(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    length: int,
    keys: list[Any] | None = None,
) -> None:
    """Record the length (and dict keys) of a task's result that downstream tasks map over."""
    row = session.get(TaskMap, (dag_id, run_id, task_id, map_index))
    if row is None:
        session.add(
            TaskMap(
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                map_index=map_index,
                length=length,
                keys=keys,
            )
        )
    else:
        row.length = length
        row.keys = keys
    session.flush()


def get_task_map(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> TaskMap | None:
    """The recorded result length of a task, or None."""
    return session.get(TaskMap, (dag_id, run_id, task_id, map_index))


# -- clearing and marking ----------------------------------------------------------------------


def selected_tasks(
    view: SerializedDAG, task_ids: Iterable[str], *, upstream: bool, downstream: bool
) -> set[str]:
    """``task_ids`` with, optionally, all their upstream and/or downstream tasks (what clear
    and mark act on); raises for an unknown task id."""
    selected = set()
    for task_id in task_ids:
        task = view.get_task(task_id)
        selected.add(task_id)
        if upstream:
            selected |= task.get_flat_relative_ids(upstream=True)
        if downstream:
            selected |= task.get_flat_relative_ids(upstream=False)
    return selected


def clear_task_instances(
    session: Session,
    dag: SerializedDAG | Mapping[str, Any],
    run_ids: Collection[str],
    task_ids: Collection[str] | None = None,
    *,
    now: datetime,
    upstream: bool = False,
    downstream: bool = False,
    only_failed: bool = False,
    dry_run: bool = False,
) -> list[TaskInstance]:
    """Clear task instances of some runs so the scheduler runs them again (Airflow's clear).

    ``task_ids`` (default: every task) are widened with their upstream and/or downstream
    tasks; ``only_failed`` keeps only failed and upstream_failed instances. A running instance
    becomes ``restarting`` (its try is stopped and retried); every other one goes back to
    ``created`` with ``max_tries = try_number + retries`` so it gets its retries again. A
    finished run containing cleared instances goes back to ``queued``, with ``clear_number``
    incremented. With ``dry_run`` nothing changes. Returns the matching instances.
    """
    from tradewind.serialization import SerializedDAG, deserialize_dag

    view = dag if isinstance(dag, SerializedDAG) else deserialize_dag(dag)
    wanted = selected_tasks(
        view,
        task_ids if task_ids is not None else view.task_ids,
        upstream=upstream,
        downstream=downstream,
    )
    statement = sa.select(TaskInstance).where(
        TaskInstance.dag_id == view.dag_id,
        TaskInstance.run_id.in_(list(run_ids)),
        TaskInstance.task_id.in_(sorted(wanted)),
    )
    if only_failed:
        statement = statement.where(
            TaskInstance.state.in_([TaskState.FAILED, TaskState.UPSTREAM_FAILED])
        )
    matched = list(
        session.scalars(
            statement.order_by(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index)
        )
    )
    if dry_run or not matched:
        return matched
    for ti in matched:
        retries = view.task_dict[ti.task_id].retries if ti.task_id in view.task_dict else 0
        if ti.state is TaskState.RUNNING:
            transition_task(session, ti.id, TaskState.RUNNING, TaskState.RESTARTING, now=now)
        elif ti.state is not TaskState.CREATED:
            transition_task(
                session,
                ti.id,
                ti.state,
                TaskState.CREATED,
                now=now,
                max_tries=ti.try_number + int(retries or 0),
                start_date=None,
                end_date=None,
                duration=None,
                queued_at=None,
                scheduled_at=None,
                next_retry_at=None,
                reschedule_at=None,
                hostname=None,
                pid=None,
                last_error=None,
            )
    run_ids_changed = {ti.run_id for ti in matched}
    _requeue_runs(session, view.dag_id, run_ids_changed, now=now)
    touch_runs(session, view.dag_id, run_ids_changed, now=now)
    return matched


def touch_runs(session: Session, dag_id: str, run_ids: Collection[str], *, now: datetime) -> None:
    """Set ``updated_at`` of these runs, so the scheduler working on them reads their task
    instances again. Whoever changes task instances outside the scheduler calls this."""
    if not run_ids:
        return
    session.execute(
        sa.update(DagRun)
        .where(DagRun.dag_id == dag_id, DagRun.run_id.in_(sorted(run_ids)))
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _requeue_runs(session: Session, dag_id: str, run_ids: set[str], *, now: datetime) -> None:
    runs = session.scalars(
        sa.select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id.in_(sorted(run_ids)))
    )
    for run in runs:
        if run.state in (RunState.SUCCESS, RunState.FAILED):
            transition_run(
                session,
                run.id,
                run.state,
                RunState.QUEUED,
                now=now,
                queued_at=now,
                end_date=None,
                clear_number=run.clear_number + 1,
            )


def mark_state(
    session: Session,
    ti_ids: Iterable[str],
    new: TaskState,
    *,
    now: datetime,
) -> list[str]:
    """Set task instances to ``new`` (success, failed, skipped …) from whatever state may move
    there; returns the ids that changed. Finished states get ``end_date = now``."""
    new = TaskState(new)
    ids = list(ti_ids)
    if not ids:
        return []
    sources = [s for s in TaskState if s is not new and can_transition(s, new)]
    if not sources:
        raise InvalidArgumentError(f"no state may be marked {new.value}", argument="new")
    fields: dict[str, Any] = {}
    if new in FINISHED:
        fields["end_date"] = now
    if new in ACTIVE:
        fields["queued_at"] = now
    changed = transition_tasks(session, ids, sources, new, now=now, record_history=False, **fields)
    runs: dict[str, set[str]] = {}
    for start in range(0, len(changed), 500):
        chunk = changed[start : start + 500]
        for dag_id, run_id in session.execute(
            sa.select(TaskInstance.dag_id, TaskInstance.run_id)
            .where(TaskInstance.id.in_(chunk))
            .distinct()
        ):
            runs.setdefault(dag_id, set()).add(run_id)
    for dag_id, run_ids in runs.items():
        touch_runs(session, dag_id, run_ids, now=now)
    return changed
