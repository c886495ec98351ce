"""DAG runs: create one with its task instances, read, list, count.

State changes of runs go through :func:`tradewind.db.state_changes.transition_run`; this module
never writes ``state`` after creation.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import DagRun, TaskInstance
from tradewind.errors import AlreadyExists, InvalidArgumentError, NotFound
from tradewind.state import RunState, TaskState

if TYPE_CHECKING:
    from tradewind.serialization import SerializedDAG, SerializedTask

__all__ = [
    "ACTIVE_RUN_STATES",
    "active_run_counts",
    "count_runs_by_state",
    "create_run",
    "delete_run",
    "get_latest_run",
    "get_previous_run",
    "get_run",
    "get_run_by_id",
    "list_runs",
    "new_ti_id",
    "set_run_fields",
    "task_instance_row",
]

#: Run states that count against ``max_active_runs``.
ACTIVE_RUN_STATES: frozenset[RunState] = frozenset({RunState.QUEUED, RunState.RUNNING})

_RUN_FIELDS = frozenset(c.key for c in DagRun.__table__.columns) - {
    "id",
    "state",
    "dag_id",
    "run_id",
}


def new_ti_id() -> str:
    """A fresh task-instance row id (uuid4 hex)."""
    return uuid.uuid4().hex


def _as_view(dag: SerializedDAG | Mapping[str, Any]) -> SerializedDAG:
    from tradewind.serialization import SerializedDAG, deserialize_dag

    return dag if isinstance(dag, SerializedDAG) else deserialize_dag(dag)


def task_instance_row(
    task: SerializedTask,
    *,
    dag_id: str,
    run_id: str,
    dag_version_id: int | None,
    now: datetime,
    map_index: int = -1,
) -> dict[str, Any]:
    """The column values of a new (``created``) task instance of ``task``."""
    return {
        "id": new_ti_id(),
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task.task_id,
        "map_index": map_index,
        "state": TaskState.CREATED,
        "try_number": 0,
        "max_tries": int(task.retries or 0),
        "pool": task.pool,
        "pool_slots": int(task.pool_slots),
        "queue": task.queue,
        "priority_weight": int(task.priority_weight_total),
        "executor": task.executor,
        "dag_version_id": dag_version_id,
        "operator": task.operator_name,
        "updated_at": now,
    }


def create_run(
    session: Session,
    dag: SerializedDAG | Mapping[str, Any],
    *,
    run_id: str,
    run_type: str,
    run_after: datetime,
    now: datetime,
    dag_version_id: int | None,
    logical_date: datetime | None = None,
    data_interval: tuple[datetime, datetime] | None = None,
    conf: Mapping[str, Any] | None = None,
    state: RunState = RunState.QUEUED,
    backfill_id: int | None = None,
    task_ids: Collection[str] | None = None,
) -> DagRun:
    """Create a run of ``dag`` (a serialized document or its view) with its task instances.

    Every task gets one task instance in state ``created`` at map index -1; a mapped task's
    instance is the placeholder that :func:`tradewind.db.task_instances.expand_mapped` turns
    into the real ones. ``task_ids`` limits the run to those tasks. A run created ``queued``
    gets ``queued_at = now``; one created ``running`` gets ``start_date = now``.

    Raises :class:`AlreadyExists` when the DAG has a run with this ``run_id`` or this
    ``logical_date`` already.
    """
    view = _as_view(dag)
    dag_id = view.dag_id
    state = RunState(state)
    existing = session.scalar(
        sa.select(DagRun.run_id).where(
            DagRun.dag_id == dag_id,
            sa.or_(
                DagRun.run_id == run_id,
                sa.and_(DagRun.logical_date.is_not(None), DagRun.logical_date == logical_date)
                if logical_date is not None
                else sa.false(),
            ),
        )
    )
    if existing is not None:
        if existing == run_id or logical_date is None:
            message = f"DAG {dag_id!r} already has a run {run_id!r}"
        else:
            message = (
                f"DAG {dag_id!r} already has a run ({existing!r}) for logical date "
                f"{logical_date.isoformat()}"
            )
        raise AlreadyExists("DAG run", f"{dag_id}/{run_id}", message)
    run = DagRun(
        dag_id=dag_id,
        run_id=run_id,
        run_type=run_type,
        logical_date=logical_date,
        data_interval_start=data_interval[0] if data_interval else None,
        data_interval_end=data_interval[1] if data_interval else None,
        run_after=run_after,
        state=state,
        conf=dict(conf or {}),
        queued_at=now if state is RunState.QUEUED else None,
        start_date=now if state is RunState.RUNNING else None,
        dag_version_id=dag_version_id,
        backfill_id=backfill_id,
        clear_number=0,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    tasks = view.tasks
    if task_ids is not None:
        unknown = sorted(set(task_ids) - set(view.task_dict))
        if unknown:
            raise InvalidArgumentError(
                f"DAG {dag_id!r} has no task(s) {', '.join(unknown)}", argument="task_ids"
            )
        tasks = [t for t in tasks if t.task_id in task_ids]
    rows = [
        task_instance_row(t, dag_id=dag_id, run_id=run_id, dag_version_id=dag_version_id, now=now)
        for t in tasks
    ]
    if rows:
        session.execute(sa.insert(TaskInstance), rows)
    return run


def get_run(session: Session, dag_id: str, run_id: str) -> DagRun:
    """The run ``run_id`` of ``dag_id``; raises :class:`NotFound`."""
    run = session.scalar(sa.select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if run is None:
        raise NotFound("DAG run", f"{dag_id}/{run_id}")
    return run


def get_run_by_id(session: Session, run_pk: int) -> DagRun:
    """The run with row id ``run_pk``; raises :class:`NotFound`."""
    run = session.get(DagRun, run_pk)
    if run is None:
        raise NotFound("DAG run", str(run_pk))
    return run


def list_runs(
    session: Session,
    *,
    dag_id: str | None = None,
    dag_ids: Collection[str] | None = None,
    states: Collection[RunState] | None = None,
    run_types: Collection[str] | None = None,
    backfill_id: int | None = None,
    logical_date_from: datetime | None = None,
    logical_date_to: datetime | None = None,
    newest_first: bool = True,
    limit: int | None = None,
    offset: int = 0,
) -> list[DagRun]:
    """Runs matching every given filter, by ``run_after`` (newest first by default)."""
    statement = sa.select(DagRun)
    if dag_id is not None:
        statement = statement.where(DagRun.dag_id == dag_id)
    if dag_ids is not None:
        statement = statement.where(DagRun.dag_id.in_(list(dag_ids)))
    if states is not None:
        statement = statement.where(DagRun.state.in_([RunState(s) for s in states]))
    if run_types is not None:
        statement = statement.where(DagRun.run_type.in_(list(run_types)))
    if backfill_id is not None:
        statement = statement.where(DagRun.backfill_id == backfill_id)
    if logical_date_from is not None:
        statement = statement.where(DagRun.logical_date >= logical_date_from)
    if logical_date_to is not None:
        statement = statement.where(DagRun.logical_date <= logical_date_to)
    if newest_first:
        statement = statement.order_by(DagRun.run_after.desc(), DagRun.id.desc())
    else:
        statement = statement.order_by(DagRun.run_after, DagRun.id)
    if offset:
        statement = statement.offset(offset)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def count_runs_by_state(
    session: Session, *, dag_ids: Collection[str] | None = None
) -> dict[str, dict[RunState, int]]:
    """``{dag_id: {state: number of runs}}`` (only states that occur)."""
    statement = sa.select(DagRun.dag_id, DagRun.state, sa.func.count()).group_by(
        DagRun.dag_id, DagRun.state
    )
    if dag_ids is not None:
        statement = statement.where(DagRun.dag_id.in_(list(dag_ids)))
    out: dict[str, dict[RunState, int]] = {}
    for dag_id, state, count in session.execute(statement):
        out.setdefault(dag_id, {})[RunState(state)] = int(count)
    return out


def active_run_counts(
    session: Session,
    *,
    dag_ids: Collection[str] | None = None,
    states: Collection[RunState] = ACTIVE_RUN_STATES,
) -> dict[str, int]:
    """``{dag_id: number of runs in states}`` (queued + running by default; zeros omitted)."""
    statement = (
        sa.select(DagRun.dag_id, sa.func.count())
        .where(DagRun.state.in_([RunState(s) for s in states]))
        .group_by(DagRun.dag_id)
    )
    if dag_ids is not None:
        statement = statement.where(DagRun.dag_id.in_(list(dag_ids)))
    return {dag_id: int(count) for dag_id, count in session.execute(statement)}


def get_latest_run(
    session: Session, dag_id: str, *, run_types: Collection[str] | None = None
) -> DagRun | None:
    """The DAG's run with the latest ``run_after`` (optionally of those types), or None."""
    statement = sa.select(DagRun).where(DagRun.dag_id == dag_id)
    if run_types is not None:
        statement = statement.where(DagRun.run_type.in_(list(run_types)))
    statement = statement.order_by(DagRun.run_after.desc(), DagRun.id.desc()).limit(1)
    return session.scalar(statement)


def get_previous_run(
    session: Session,
    dag_id: str,
    logical_date: datetime,
    *,
    states: Collection[RunState] | None = None,
) -> DagRun | None:
    """The run with the latest logical date before ``logical_date`` (for depends_on_past)."""
    statement = sa.select(DagRun).where(
        DagRun.dag_id == dag_id,
        DagRun.logical_date.is_not(None),
        DagRun.logical_date < logical_date,
    )
    if states is not None:
        statement = statement.where(DagRun.state.in_([RunState(s) for s in states]))
    return session.scalar(statement.order_by(DagRun.logical_date.desc()).limit(1))


def set_run_fields(session: Session, run_pk: int, **fields: Any) -> None:
    """Set columns of a run other than its state (``last_scheduling_decision`` …)."""
    unknown = sorted(set(fields) - _RUN_FIELDS)
    if unknown:
        raise InvalidArgumentError(
            f"set_run_fields: unknown or read-only column(s) {', '.join(unknown)}",
            argument=unknown[0],
        )
    session.execute(
        sa.update(DagRun)
        .where(DagRun.id == run_pk)
        .values(**fields)
        .execution_options(synchronize_session="fetch")
    )


def delete_run(session: Session, dag_id: str, run_id: str) -> None:
    """Delete a run with its task instances, XComs and history; :class:`NotFound` if absent."""
    from tradewind.db.models import TaskInstanceHistory

    run = get_run(session, dag_id, run_id)
    session.execute(
        sa.delete(TaskInstanceHistory).where(
            TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == run_id
        )
    )
    session.delete(run)
    session.flush()
