"""The one way task-instance and DAG-run states change: a checked compare-and-set.

Every state write in Tradewind goes through :func:`transition_task`, :func:`transition_tasks`
or :func:`transition_run`. Each first checks the request against the transition tables of
:mod:`tradewind.state` (an illegal request raises :class:`~tradewind.errors.InvalidTransition`:
that is a bug in the caller), then runs one ``UPDATE … WHERE id = :id AND state IN
(:expected)``. The row changes only if it still is in an expected state, so when two actors race
(two schedulers, a scheduler and a user clearing a task, a worker starting a try that was
cleared) exactly one wins, and each learns from the return value whether it did.

The update does not refresh objects already loaded in the session, except that a loaded row
that was changed is expired, so reading it again fetches the new values.

When a try ends (a transition from queued/running/restarting/deferred to success, failed,
skipped or up_for_retry) a copy of the row is written to ``task_instance_history``
(:func:`record_try`) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import TI_SHARED_COLUMNS, DagRun, TaskInstance, TaskInstanceHistory
from tradewind.errors import InvalidArgumentError, InvalidTransition
from tradewind.state import RunState, TaskState, can_transition, can_transition_run

__all__ = [
    "TRY_ENDING_STATES",
    "TRY_IN_PROGRESS_STATES",
    "record_try",
    "transition_run",
    "transition_task",
    "transition_tasks",
]

#: States in which a try is under way.
TRY_IN_PROGRESS_STATES: frozenset[TaskState] = frozenset(
    {TaskState.QUEUED, TaskState.RUNNING, TaskState.RESTARTING, TaskState.DEFERRED}
)
#: States that end a try (a history row is written when a try moves into one).
TRY_ENDING_STATES: frozenset[TaskState] = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.SKIPPED, TaskState.UP_FOR_RETRY}
)

_TI_FIELDS = frozenset(TI_SHARED_COLUMNS) - {"state", "dag_id", "run_id", "task_id"}
_RUN_FIELDS = frozenset(c.key for c in DagRun.__table__.columns) - {
    "id",
    "state",
    "dag_id",
    "run_id",
}
# Rows per statement when many ids are given: well under every backend's parameter limit.
_CHUNK = 500


def _states(expected: TaskState | Iterable[TaskState]) -> frozenset[TaskState]:
    if isinstance(expected, str):
        return frozenset({TaskState(expected)})
    states = frozenset(TaskState(s) for s in expected)
    if not states:
        raise InvalidArgumentError("expected states must not be empty", argument="expected")
    return states


def _run_states(expected: RunState | Iterable[RunState]) -> frozenset[RunState]:
    if isinstance(expected, str):
        return frozenset({RunState(expected)})
    states = frozenset(RunState(s) for s in expected)
    if not states:
        raise InvalidArgumentError("expected states must not be empty", argument="expected")
    return states


def _check_fields(fields: Mapping[str, Any], allowed: frozenset[str], owner: str) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidArgumentError(
            f"{owner}: unknown or read-only column(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}",
            argument=unknown[0],
            owner=owner,
        )


def _check_task(ident: object, expected: frozenset[TaskState], new: TaskState) -> None:
    illegal = sorted(s.value for s in expected if not can_transition(s, new))
    if illegal:
        raise InvalidTransition("task instance", ident, "/".join(illegal), new.value)


def _expire(session: Session, model: type[Any], ids: Iterable[Any]) -> None:
    for ident in ids:
        obj = session.identity_map.get(session.identity_key(model, ident))
        if obj is not None:
            session.expire(obj)


def _records_try(expected: frozenset[TaskState], new: TaskState, record: bool | None) -> bool:
    if record is not None:
        return record
    return new in TRY_ENDING_STATES and expected <= TRY_IN_PROGRESS_STATES


def transition_task(
    session: Session,
    ti_id: str,
    expected: TaskState | Collection[TaskState],
    new: TaskState,
    *,
    now: datetime,
    where: Mapping[str, Any] | None = None,
    record_history: bool | None = None,
    **fields: Any,
) -> bool:
    """Move task instance ``ti_id`` to ``new`` if it is in one of the ``expected`` states.

    ``fields`` are other columns to set in the same statement (``start_date=now``,
    ``try_number=2`` …); ``updated_at`` is set to ``now``. ``where`` adds equality conditions
    (``{"try_number": 3}``) so the change applies only to that exact try.
    ``record_history`` writes a ``task_instance_history`` row for the try (None: when the
    change ends a try, see the module docstring).

    Returns whether this call made the change. Raises :class:`InvalidTransition` when some
    expected state may not move to ``new``, and :class:`InvalidArgumentError` for an unknown
    column.
    """
    new = TaskState(new)
    states = _states(expected)
    _check_task(ti_id, states, new)
    _check_fields(fields, _TI_FIELDS, "transition_task")
    conditions = dict(where or {})
    if conditions:
        _check_fields(conditions, _TI_FIELDS | {"dag_id", "run_id", "task_id"}, "where")
    statement = _task_update(states, tuple(sorted(conditions)), tuple(sorted(fields)))
    params = {"p_id": ti_id, "p_state": new, "p_updated_at": now}
    params.update({f"w_{name}": value for name, value in conditions.items()})
    params.update({f"v_{name}": value for name, value in fields.items()})
    result = session.execute(statement, params)
    won = bool(result.rowcount == 1)  # type: ignore[attr-defined]
    if won:
        _expire(session, TaskInstance, [ti_id])
        if _records_try(states, new, record_history):
            record_try(session, ti_id)
    return won


_TASK_UPDATES: dict[tuple[Any, ...], Any] = {}
_BULK_UPDATES: dict[tuple[Any, ...], Any] = {}


def _bulk_task_update(states: frozenset[TaskState], fields: tuple[str, ...]) -> Any:
    """:func:`transition_tasks`' statement for this shape of request, built once."""
    key = (states, fields)
    statement = _BULK_UPDATES.get(key)
    if statement is None:
        table = cast(sa.Table, TaskInstance.__table__)
        values: dict[str, Any] = {name: sa.bindparam(f"v_{name}") for name in fields}
        statement = (
            sa.update(table)
            .where(
                table.c.id.in_(sa.bindparam("p_ids", expanding=True)),
                table.c.state.in_(sorted(states)),
            )
            .values(
                state=sa.bindparam("p_state"), updated_at=sa.bindparam("p_updated_at"), **values
            )
            .returning(table.c.id)
        )
        _BULK_UPDATES[key] = statement
    return statement


def _task_update(
    states: frozenset[TaskState], where: tuple[str, ...], fields: tuple[str, ...]
) -> Any:
    """The compare-and-set statement for this shape of request, built once (building
    SQLAlchemy statements costs more than running them on SQLite)."""
    key = (states, where, fields)
    statement = _TASK_UPDATES.get(key)
    if statement is None:
        table = cast(sa.Table, TaskInstance.__table__)
        conditions = [
            table.c.id == sa.bindparam("p_id"),
            table.c.state.in_(sorted(states)),
            *(table.c[name] == sa.bindparam(f"w_{name}") for name in where),
        ]
        values: dict[str, Any] = {name: sa.bindparam(f"v_{name}") for name in fields}
        statement = (
            sa.update(table)
            .where(*conditions)
            .values(
                state=sa.bindparam("p_state"), updated_at=sa.bindparam("p_updated_at"), **values
            )
        )
        _TASK_UPDATES[key] = statement
    return statement


def transition_tasks(
    session: Session,
    ti_ids: Iterable[str],
    expected: TaskState | Collection[TaskState],
    new: TaskState,
    *,
    now: datetime,
    record_history: bool | None = None,
    **fields: Any,
) -> list[str]:
    """:func:`transition_task` for many task instances; returns the ids that changed.

    The ids that changed come back in the order they were given. One statement per few hundred
    ids, so moving 10,000 mapped instances is a handful of round trips.
    """
    new = TaskState(new)
    states = _states(expected)
    ids = list(dict.fromkeys(ti_ids))
    _check_task(ids[0] if len(ids) == 1 else f"{len(ids)} task instances", states, new)
    _check_fields(fields, _TI_FIELDS, "transition_tasks")
    won: set[str] = set()
    statement = _bulk_task_update(states, tuple(sorted(fields)))
    params: dict[str, Any] = {"p_state": new, "p_updated_at": now}
    params.update({f"v_{name}": value for name, value in fields.items()})
    for start in range(0, len(ids), _CHUNK):
        params["p_ids"] = ids[start : start + _CHUNK]
        won.update(session.execute(statement, params).scalars())
    ordered = [ti_id for ti_id in ids if ti_id in won]
    _expire(session, TaskInstance, ordered)
    if ordered and _records_try(states, new, record_history):
        record_try(session, ordered)
    return ordered


def transition_run(
    session: Session,
    run_pk: int,
    expected: RunState | Collection[RunState],
    new: RunState,
    *,
    now: datetime,
    **fields: Any,
) -> bool:
    """Move DAG run ``run_pk`` (``dag_run.id``) to ``new`` if it is in an ``expected`` state.

    ``fields`` are other columns to set (``start_date``, ``end_date`` …); ``updated_at`` is set
    to ``now``. Returns whether this call made the change; raises :class:`InvalidTransition`
    for an illegal request.
    """
    new = RunState(new)
    states = _run_states(expected)
    illegal = sorted(s.value for s in states if not can_transition_run(s, new))
    if illegal:
        raise InvalidTransition("dag run", run_pk, "/".join(illegal), new.value)
    _check_fields(fields, _RUN_FIELDS, "transition_run")
    statement = (
        sa.update(DagRun)
        .where(DagRun.id == run_pk, DagRun.state.in_(states))
        .values(state=new, updated_at=now, **fields)
        .execution_options(synchronize_session=False)
    )
    won = bool(session.execute(statement).rowcount == 1)  # type: ignore[attr-defined]
    if won:
        _expire(session, DagRun, [run_pk])
    return won


def record_try(session: Session, ti_ids: str | Iterable[str]) -> int:
    """Copy task instances, as they are now, into ``task_instance_history``.

    A row already recorded for the same try (``ti_id``, ``try_number``) is replaced, so
    recording twice is harmless. Returns the number of rows written.
    """
    ids = [ti_ids] if isinstance(ti_ids, str) else list(ti_ids)
    delete, insert = _history_statements()
    written = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        session.execute(delete, {"ids": chunk})
        result = session.execute(insert, {"ids": chunk})
        written += result.rowcount or 0  # type: ignore[attr-defined]
    return written


_HISTORY: list[Any] = []


def _history_statements() -> tuple[Any, Any]:
    """The two statements of :func:`record_try`, built once."""
    if not _HISTORY:
        ti = cast(sa.Table, TaskInstance.__table__)
        history = cast(sa.Table, TaskInstanceHistory.__table__)
        ids: Any = sa.bindparam("ids", expanding=True)
        current = sa.select(ti.c.id, ti.c.try_number).where(ti.c.id.in_(ids))
        delete = sa.delete(history).where(
            sa.tuple_(history.c.ti_id, history.c.try_number).in_(current)
        )
        columns = ["ti_id", *TI_SHARED_COLUMNS]
        source = sa.select(ti.c.id, *(ti.c[name] for name in TI_SHARED_COLUMNS)).where(
            ti.c.id.in_(ids)
        )
        _HISTORY.extend([delete, sa.insert(history).from_select(columns, source)])
    return _HISTORY[0], _HISTORY[1]
