"""XCom values of task instances, stored as JSON text through :mod:`tradewind.serialization.xcom`.

Values are keyed by (dag_id, run_id, task_id, map_index, key). Writing a key again replaces
the value; a new try of a task starts by deleting the task instance's values
(:func:`delete_xcoms`), so a retry never reads what its failed predecessor left.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.engine import is_postgres
from tradewind.db.models import XCom
from tradewind.errors import NotFound
from tradewind.serialization import xcom as codec

__all__ = [
    "delete_xcoms",
    "get_xcom",
    "get_xcom_map_indexes",
    "get_xcom_texts",
    "get_xcom_values",
    "list_xcoms",
    "set_xcom",
    "set_xcom_text",
]


def _where(
    dag_id: str,
    run_id: str,
    task_id: str | None = None,
    map_index: int | None = None,
    key: str | None = None,
) -> list[Any]:
    conditions: list[Any] = [XCom.dag_id == dag_id, XCom.run_id == run_id]
    if task_id is not None:
        conditions.append(XCom.task_id == task_id)
    if map_index is not None:
        conditions.append(XCom.map_index == map_index)
    if key is not None:
        conditions.append(XCom.key == key)
    return conditions


def set_xcom(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    key: str,
    map_index: int,
    value: Any,
    *,
    now: datetime,
    max_size: int | None = codec.DEFAULT_MAX_SIZE,
) -> None:
    """Encode and store ``value`` (replacing an earlier one).

    Raises :class:`~tradewind.errors.XComError` naming the task and key when the value cannot
    be encoded or is larger than ``max_size`` bytes (``[core] xcom_max_size_bytes``).
    """
    text = codec.encode(value, task_id=task_id, key=key, max_size=max_size)
    set_xcom_text(session, dag_id, run_id, task_id, key, map_index, text, now=now)


def set_xcom_text(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    key: str,
    map_index: int,
    text: str,
    *,
    now: datetime,
) -> None:
    """Store already-encoded JSON ``text`` (replacing an earlier value); one statement."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(XCom).values(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        key=key,
        value=text,
        created_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=["dag_id", "run_id", "task_id", "map_index", "key"],
        set_={"value": statement.excluded.value, "created_at": statement.excluded.created_at},
    )
    session.execute(statement)


def get_xcom(
    session: Session, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
) -> Any:
    """The decoded value; raises :class:`NotFound` (a ``KeyError``) when there is none."""
    text = session.scalar(
        sa.select(XCom.value).where(*_where(dag_id, run_id, task_id, map_index, key))
    )
    if text is None:
        where = f"{dag_id}/{run_id}/{task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
        raise NotFound("XCom", f"{where} key {key!r}")
    return codec.decode(text)


def get_xcom_map_indexes(
    session: Session, dag_id: str, run_id: str, task_id: str, key: str
) -> list[int]:
    """The map indexes (ascending) for which the task has a value under ``key``."""
    statement = (
        sa.select(XCom.map_index)
        .where(*_where(dag_id, run_id, task_id, None, key))
        .order_by(XCom.map_index)
    )
    return [int(i) for i in session.scalars(statement)]


def get_xcom_texts(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    key: str,
    map_index: int | None = None,
) -> dict[int, str]:
    """The stored JSON text by map index (all of them, or only ``map_index``), undecoded:
    for passing values on to a task process without decoding and encoding them again."""
    statement = (
        sa.select(XCom.map_index, XCom.value)
        .where(*_where(dag_id, run_id, task_id, map_index, key))
        .order_by(XCom.map_index)
    )
    return {int(i): text for i, text in session.execute(statement)}


def get_xcom_values(
    session: Session, dag_id: str, run_id: str, task_id: str, key: str
) -> dict[int, Any]:
    """Every map index's decoded value under ``key`` (ascending), in one query: what a task
    reading all of a mapped upstream's results needs."""
    statement = (
        sa.select(XCom.map_index, XCom.value)
        .where(*_where(dag_id, run_id, task_id, None, key))
        .order_by(XCom.map_index)
    )
    return {int(i): codec.decode(text) for i, text in session.execute(statement)}


def list_xcoms(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    task_id: str | None = None,
    map_index: int | None = None,
    key: str | None = None,
) -> list[XCom]:
    """Stored XCom rows (``value`` still encoded; decode with ``serialization.xcom.decode``)."""
    statement = (
        sa.select(XCom)
        .where(*_where(dag_id, run_id, task_id, map_index, key))
        .order_by(XCom.task_id, XCom.map_index, XCom.key)
    )
    return list(session.scalars(statement))


def delete_xcoms(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    task_id: str | None = None,
    map_index: int | None = None,
    key: str | None = None,
) -> int:
    """Delete matching values (e.g. a task instance's before its next try); returns how many."""
    filters = {"task_id": task_id, "map_index": map_index, "key": key}
    given = tuple(name for name, value in filters.items() if value is not None)
    statement = _DELETES.get(given)
    if statement is None:
        # Built once per shape: a try's start runs this, and building costs more than running.
        table = cast(sa.Table, XCom.__table__)
        conditions = [table.c.dag_id == sa.bindparam("dag_id")]
        conditions.append(table.c.run_id == sa.bindparam("run_id"))
        conditions += [table.c[name] == sa.bindparam(name) for name in given]
        statement = _DELETES[given] = sa.delete(table).where(*conditions)
    params: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id}
    params.update({name: filters[name] for name in given})
    result = session.execute(statement, params)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


_DELETES: dict[tuple[str, ...], Any] = {}
