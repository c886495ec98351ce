"""``ti.xcom_pull`` semantics (Airflow 3), over any reader of stored XCom values.

The task runtime (a running try) and DAG callbacks read XComs from different places — a
socket to the executor, the metadata database — but must answer ``xcom_pull`` the same way,
so both call :func:`pull` with their reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from tradewind.sdk.params import NOTSET, ArgNotSet
from tradewind.sdk.xcom_arg import XCOM_RETURN_KEY

__all__ = ["XComReader", "pull"]


class XComReader(Protocol):
    """What :func:`pull` reads through. A reader may also offer
    ``get_xcom_values(dag_id, run_id, task_id, key) -> {map_index: value}`` to read every
    instance's value at once (one request instead of one per instance)."""

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        """The value; raises ``KeyError`` when there is none."""
        ...

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        """The map indexes (ascending) with a value under ``key``."""
        ...


def pull(
    reader: XComReader,
    *,
    dag_id: str,
    run_id: str,
    own_task_id: str,
    own_map_index: int,
    task_ids: str | Iterable[str] | None = None,
    key: str | None = XCOM_RETURN_KEY,
    map_indexes: int | Iterable[int] | ArgNotSet | None = NOTSET,
    default: Any = None,
) -> Any:
    """Read XCom values of a run as ``ti.xcom_pull`` does.

    * ``task_ids=None`` reads the asking instance's own value (at its own map index).
    * One task id, ``map_indexes`` unset: the value of an unmapped task, the list of every
      instance's value for a mapped one, None when nothing was pushed (``default`` is not used
      here, as in Airflow 3).
    * Several task ids and/or explicit ``map_indexes``: a list in the order asked, with
      ``default`` for missing values; one task id with one int index gives one value.
    """
    key = key or XCOM_RETURN_KEY
    single_task = task_ids is None or isinstance(task_ids, str)
    if task_ids is None:
        ids = [own_task_id]
        if map_indexes is NOTSET or map_indexes is None:
            map_indexes = own_map_index
    elif isinstance(task_ids, str):
        ids = [task_ids]
    else:
        ids = list(task_ids)
    if isinstance(map_indexes, ArgNotSet) or map_indexes is None:
        if single_task:
            return _all_indexes(reader, dag_id, run_id, ids[0], key, None, scalar=True)
        out: list[Any] = []
        for tid in ids:
            out.extend(_all_indexes(reader, dag_id, run_id, tid, key, default, scalar=False))
        return out
    single_index = isinstance(map_indexes, int)
    indexes = [map_indexes] if isinstance(map_indexes, int) else list(map_indexes)
    values = [_one(reader, dag_id, run_id, tid, key, i, default) for tid in ids for i in indexes]
    return values[0] if single_task and single_index else values


def _one(
    reader: XComReader, dag_id: str, run_id: str, task_id: str, key: str, index: int, default: Any
) -> Any:
    try:
        value = reader.get_xcom(dag_id, run_id, task_id, key, index)
    except KeyError:
        return default
    return default if value is None else value


def _all_indexes(
    reader: XComReader,
    dag_id: str,
    run_id: str,
    task_id: str,
    key: str,
    default: Any,
    *,
    scalar: bool,
) -> Any:
    """Every instance's value of one task: the value itself for an unmapped task when
    ``scalar``, else a list."""
    bulk = getattr(reader, "get_xcom_values", None)
    if bulk is not None:
        # One request for every instance's value (a reduce over thousands of them).
        found: dict[int, Any] = bulk(dag_id, run_id, task_id, key)
        if not found:
            return None if scalar else [default]
        mapped_values = [v for i, v in found.items() if i >= 0]
        if mapped_values:
            return mapped_values
        value = found.get(-1)
        return value if scalar else [value]
    indexes = reader.get_xcom_map_indexes(dag_id, run_id, task_id, key)
    mapped = [i for i in indexes if i >= 0]
    if not indexes:
        return None if scalar else [default]
    if not mapped:
        value = _one(reader, dag_id, run_id, task_id, key, -1, None)
        return value if scalar else [value]
    return [_one(reader, dag_id, run_id, task_id, key, i, None) for i in mapped]
