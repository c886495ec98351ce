"""The task context: what templates and task code see while one task try runs.

:func:`build_context` assembles the Airflow-compatible keys (``ds``, ``ti``, ``params``,
``macros``, ``var``, ``conn`` ...); the runtime makes it current with
:func:`set_current_context`, and task code can fetch it with :func:`get_current_context`::

    from tradewind.sdk.context import get_current_context

    @task
    def report():
        ctx = get_current_context()
        print(ctx["ds"], ctx["ti"].try_number)

Variables and connections are fetched through injected getters, and only when a template or
task touches ``var``/``conn``, so building a context never does I/O.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from tradewind.errors import ConnectionNotFound, TradewindError, VariableNotFound
from tradewind.sdk.macros import (
    format_ds,
    format_ds_nodash,
    format_ts,
    format_ts_nodash,
    format_ts_nodash_with_tz,
    macros,
)
from tradewind.sdk.params import NOTSET

__all__ = [
    "ConfigAccessor",
    "ConnectionAccessor",
    "Context",
    "VariableAccessor",
    "build_context",
    "context_to_airflow_vars",
    "get_current_context",
    "run_date_entries",
    "set_current_context",
]


class Context(dict[str, Any]):
    """The template context of one task try: a plain dict of Airflow-compatible keys."""

    __slots__ = ()


_current_context: ContextVar[Context | None] = ContextVar("tradewind_current_context", default=None)


@contextmanager
def set_current_context(context: Context) -> Iterator[Context]:
    """Make ``context`` what :func:`get_current_context` returns inside the ``with`` block.

    Nested blocks restore the outer context on exit. The context is a :mod:`contextvars`
    value: code in the same thread or asyncio task sees it; a thread started by task code
    does not, unless started through ``contextvars.copy_context().run``.
    """
    token = _current_context.set(context)
    try:
        yield context
    finally:
        _current_context.reset(token)


def get_current_context() -> Context:
    """The context of the task try running now.

    Raises :class:`~tradewind.errors.TradewindError` when no task is running here.
    """
    context = _current_context.get()
    if context is None:
        raise TradewindError(
            "get_current_context() was called outside a running task: the context exists only "
            "while a task executes (in execute(), a @task function or a task callback)"
        )
    return context


# -- accessors for var / conn / conf ----------------------------------------------------------


class VariableAccessor:
    """``var.value`` / ``var.json`` in templates: ``var.value.my_key``, ``var.json.cfg.limit``,
    ``var.value.get("key", "fallback")``.

    The getter is called on each access (never cached, never up front). A missing variable
    raises :class:`~tradewind.errors.VariableNotFound` unless a default is given.
    """

    __slots__ = ("_deserialize_json", "_get_variable")

    def __init__(self, get_variable: Callable[[str], Any], *, deserialize_json: bool = False):
        self._get_variable = get_variable
        self._deserialize_json = deserialize_json

    def get(self, key: str, default: Any = NOTSET) -> Any:
        """The variable ``key`` (parsed as JSON for ``var.json``), or ``default`` if missing."""
        try:
            value = self._get_variable(key)
        except KeyError as exc:  # VariableNotFound is a KeyError too
            if default is not NOTSET:
                return default
            if isinstance(exc, VariableNotFound):
                raise
            raise VariableNotFound(key) from exc
        if value is None:
            if default is not NOTSET:
                return default
            raise VariableNotFound(key)
        if self._deserialize_json and isinstance(value, (str, bytes)):
            import json

            try:
                return json.loads(value)
            except ValueError as exc:
                raise TradewindError(f"variable {key!r} does not hold valid JSON: {exc}") from exc
        return value

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            # Keep copy/pickle/introspection probes from turning into variable look-ups.
            raise AttributeError(key)
        return self.get(key)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __repr__(self) -> str:
        return "<var.json>" if self._deserialize_json else "<var.value>"


class _VariableRoot:
    """The ``var`` context key: ``var.value``, ``var.json`` and ``var.get(key, default)``."""

    __slots__ = ("json", "value")

    def __init__(self, get_variable: Callable[[str], Any]) -> None:
        self.value = VariableAccessor(get_variable)
        self.json = VariableAccessor(get_variable, deserialize_json=True)

    def get(self, key: str, default: Any = NOTSET, *, deserialize_json: bool = False) -> Any:
        """The variable ``key`` (parsed when ``deserialize_json``), or ``default`` if missing."""
        accessor = self.json if deserialize_json else self.value
        return accessor.get(key, default)

    def __repr__(self) -> str:
        return "<var>"


class ConnectionAccessor:
    """The ``conn`` context key: ``conn.my_db.host`` or ``conn.get("my_db")``.

    Returns whatever the injected getter returns, looked up on each access.
    """

    __slots__ = ("_get_connection",)

    def __init__(self, get_connection: Callable[[str], Any]) -> None:
        self._get_connection = get_connection

    def get(self, conn_id: str, default: Any = NOTSET) -> Any:
        """The connection ``conn_id``, or ``default`` when it does not exist.

        Without a default a missing connection raises
        :class:`~tradewind.errors.ConnectionNotFound`.
        """
        try:
            value = self._get_connection(conn_id)
        except KeyError as exc:  # ConnectionNotFound is a KeyError too
            if default is not NOTSET:
                return default
            if isinstance(exc, ConnectionNotFound):
                raise
            raise ConnectionNotFound(conn_id) from exc
        if value is None:
            if default is not NOTSET:
                return default
            raise ConnectionNotFound(conn_id)
        return value

    def __getattr__(self, conn_id: str) -> Any:
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)
        return self.get(conn_id)

    def __getitem__(self, conn_id: str) -> Any:
        return self.get(conn_id)

    def __repr__(self) -> str:
        return "<conn>"


class ConfigAccessor:
    """The Airflow-2 ``conf`` context key: ``conf.get("section", "key", fallback=...)``.

    Backed by an optional ``get_config(section, key)`` getter that raises ``KeyError`` for an
    unknown option; without a getter every option counts as unknown.
    """

    __slots__ = ("_get_config",)

    def __init__(self, get_config: Callable[[str, str], Any] | None = None) -> None:
        self._get_config = get_config

    def get(self, section: str, key: str, fallback: Any = NOTSET, **_: Any) -> Any:
        """The option's value, or ``fallback``; raises TradewindError when unknown."""
        try:
            if self._get_config is None:
                raise KeyError(f"{section}.{key}")
            return self._get_config(section, key)
        except KeyError:
            if fallback is not NOTSET:
                return fallback
            raise TradewindError(f"configuration option [{section}] {key} is not available")

    def has_option(self, section: str, key: str) -> bool:
        """True when the option exists."""
        missing = object()
        return self.get(section, key, fallback=missing) is not missing

    def getboolean(self, section: str, key: str, fallback: Any = NOTSET) -> bool:
        """The option read as a boolean (true/false, yes/no, on/off, 1/0)."""
        value = self.get(section, key, fallback)
        if isinstance(value, str):
            return value.strip().lower() in {"true", "yes", "on", "1", "t", "y"}
        return bool(value)

    def getint(self, section: str, key: str, fallback: Any = NOTSET) -> int:
        """The option read as an integer."""
        return int(self.get(section, key, fallback))

    def getfloat(self, section: str, key: str, fallback: Any = NOTSET) -> float:
        """The option read as a float."""
        return float(self.get(section, key, fallback))

    def __repr__(self) -> str:
        return "<conf>"


# -- building the context ---------------------------------------------------------------------


def _to_utc(value: _dt.datetime | None) -> Any:
    """A pendulum DateTime in UTC (naive means UTC), or None."""
    if value is None:
        return None
    import pendulum

    return pendulum.instance(value).in_timezone("UTC")


def _run_type_name(run_type: Any) -> str:
    return str(getattr(run_type, "value", run_type) or "")


def _neighbour_logical_dates(
    run_type: str, logical_date: Any, start: Any, end: Any
) -> tuple[Any, Any]:
    """(previous, next) logical dates for the Airflow-2 ``prev_*``/``next_*`` keys.

    A manual run's neighbours are its own logical date (as in Airflow 2). Otherwise the next
    run starts where this data interval ends, and the previous one an interval earlier; a
    zero-length interval (trigger-style schedule) falls back to the logical date itself.
    """
    if run_type == "manual":
        return logical_date, logical_date
    if start is None or end is None or end <= start:
        return logical_date, logical_date
    return start - (end - start), end


def build_context(
    *,
    dag: Any,
    task: Any,
    ti: Any,
    dag_run: Any,
    params: Mapping[str, Any] | None,
    get_variable: Callable[[str], Any],
    get_connection: Callable[[str], Any],
    extra: Mapping[str, Any] | None = None,
    get_config: Callable[[str, str], Any] | None = None,
) -> Context:
    """Build the context of one task try.

    Always present: ``dag``, ``task``, ``ti``/``task_instance``, ``run_id``, ``dag_run``,
    ``params``, ``macros``, ``var``, ``conn``, ``conf`` (configuration, Airflow-2 style),
    ``inlets``, ``outlets``, ``task_instance_key_str``, ``map_index_template``, and
    ``prev_start_date_success``/``prev_end_date_success`` (None unless given in ``extra``).

    Only when ``dag_run.logical_date`` is set (as in Airflow 3, a manual or asset-triggered
    run may have none): ``logical_date``, ``ds``, ``ds_nodash``, ``ts``, ``ts_nodash``,
    ``ts_nodash_with_tz``, ``data_interval_start``, ``data_interval_end``,
    ``prev_data_interval_start_success``/``_end_success`` (None unless given in ``extra``),
    and the Airflow-2 keys ``execution_date``, ``prev_execution_date``,
    ``next_execution_date``, ``prev_ds``, ``next_ds``, ``yesterday_ds``, ``tomorrow_ds`` and
    their ``_nodash`` forms. ``extra`` may give exact ``prev_execution_date`` /
    ``next_execution_date`` (from the timetable); they then drive ``prev_ds``/``next_ds``.

    Datetimes are pendulum ``DateTime`` objects in UTC. ``extra`` keys are added last and win.
    """
    extra = dict(extra or {})
    run_id = getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None)
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None)
    task_id = getattr(task, "task_id", None) or getattr(ti, "task_id", None)
    context = Context(
        dag=dag,
        task=task,
        ti=ti,
        task_instance=ti,
        run_id=run_id,
        dag_run=dag_run,
        params=params if params is not None else {},
        macros=macros,
        var=_VariableRoot(get_variable),
        conn=ConnectionAccessor(get_connection),
        conf=ConfigAccessor(get_config),
        inlets=list(getattr(task, "inlets", None) or []),
        outlets=list(getattr(task, "outlets", None) or []),
        map_index_template=getattr(task, "map_index_template", None),
        prev_start_date_success=None,
        prev_end_date_success=None,
    )
    logical_date = getattr(dag_run, "logical_date", None)
    if logical_date is None:
        context["task_instance_key_str"] = f"{dag_id}__{task_id}__{run_id}"
    else:
        dates = run_date_entries(
            run_type=_run_type_name(getattr(dag_run, "run_type", None)),
            logical_date=logical_date,
            data_interval_start=getattr(dag_run, "data_interval_start", None),
            data_interval_end=getattr(dag_run, "data_interval_end", None),
            prev_execution_date=_pop_if_set(extra, "prev_execution_date"),
            next_execution_date=_pop_if_set(extra, "next_execution_date"),
        )
        context.update(dates)
        context["task_instance_key_str"] = f"{dag_id}__{task_id}__{dates['ds_nodash']}"
    context.update(extra)
    return context


def _pop_if_set(extra: dict[str, Any], key: str) -> Any:
    return extra.pop(key) if extra.get(key) is not None else None


@functools.lru_cache(maxsize=64)
def _date_entries(
    run_type: str,
    logical_date: _dt.datetime,
    data_interval_start: _dt.datetime | None,
    data_interval_end: _dt.datetime | None,
    prev_execution_date: _dt.datetime | None,
    next_execution_date: _dt.datetime | None,
) -> Mapping[str, Any]:
    logical = _to_utc(logical_date)
    start = _to_utc(data_interval_start)
    end = _to_utc(data_interval_end)
    prev_ld, next_ld = _neighbour_logical_dates(run_type, logical, start, end)
    if prev_execution_date is not None:
        prev_ld = _to_utc(prev_execution_date)
    if next_execution_date is not None:
        next_ld = _to_utc(next_execution_date)
    yesterday = logical.subtract(days=1)
    tomorrow = logical.add(days=1)
    entries = {
        "logical_date": logical,
        "ds": format_ds(logical),
        "ds_nodash": format_ds_nodash(logical),
        "ts": format_ts(logical),
        "ts_nodash": format_ts_nodash(logical),
        "ts_nodash_with_tz": format_ts_nodash_with_tz(logical),
        "data_interval_start": start,
        "data_interval_end": end,
        "prev_data_interval_start_success": None,
        "prev_data_interval_end_success": None,
        # Airflow-2 keys (removed in Airflow 3); existing DAGs still use them.
        "execution_date": logical,
        "prev_execution_date": prev_ld,
        "next_execution_date": next_ld,
        "prev_ds": format_ds(prev_ld),
        "prev_ds_nodash": format_ds_nodash(prev_ld),
        "next_ds": format_ds(next_ld),
        "next_ds_nodash": format_ds_nodash(next_ld),
        "yesterday_ds": format_ds(yesterday),
        "yesterday_ds_nodash": format_ds_nodash(yesterday),
        "tomorrow_ds": format_ds(tomorrow),
        "tomorrow_ds_nodash": format_ds_nodash(tomorrow),
    }
    return MappingProxyType(entries)


def run_date_entries(
    *,
    run_type: str,
    logical_date: _dt.datetime,
    data_interval_start: _dt.datetime | None = None,
    data_interval_end: _dt.datetime | None = None,
    prev_execution_date: _dt.datetime | None = None,
    next_execution_date: _dt.datetime | None = None,
) -> Mapping[str, Any]:
    """The context keys that follow from a run's dates (``ds``, ``logical_date``,
    ``prev_ds`` ...), as :func:`build_context` adds them; read-only.

    The values are immutable, so they are computed once per run and shared by that run's
    tries (a process that forks task processes computes them ahead, for all of them).
    """
    return _date_entries(
        run_type,
        logical_date,
        data_interval_start,
        data_interval_end,
        prev_execution_date,
        next_execution_date,
    )


def _join(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in value) or None
    return str(value)


def context_to_airflow_vars(context: Mapping[str, Any]) -> dict[str, str]:
    """Environment variables describing the running task, for subprocesses (bash tasks).

    Gives ``AIRFLOW_CTX_DAG_ID``, ``_TASK_ID``, ``_LOGICAL_DATE`` (when the run has one),
    ``_TRY_NUMBER``, ``_DAG_RUN_ID``, ``_DAG_OWNER`` and ``_DAG_EMAIL`` (from the task's
    ``owner``/``email``, when set), each also as ``TRADEWIND_CTX_...``. Unknown values are
    left out rather than set to an empty string.
    """
    task = context.get("task")
    ti = context.get("ti")
    dag = context.get("dag")
    logical_date = context.get("logical_date")
    values = {
        "DAG_ID": _join(getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None)),
        "TASK_ID": _join(getattr(task, "task_id", None) or getattr(ti, "task_id", None)),
        "LOGICAL_DATE": logical_date.isoformat() if logical_date is not None else None,
        "TRY_NUMBER": _join(getattr(ti, "try_number", None)),
        "DAG_RUN_ID": _join(context.get("run_id") or getattr(ti, "run_id", None)),
        "DAG_OWNER": _join(getattr(task, "owner", None)),
        "DAG_EMAIL": _join(getattr(task, "email", None)),
    }
    env: dict[str, str] = {}
    for prefix in ("AIRFLOW_CTX_", "TRADEWIND_CTX_"):
        for name, value in values.items():
            if value is not None:
                env[prefix + name] = value
    return env
