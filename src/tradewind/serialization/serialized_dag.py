"""DAG -> versioned JSON document, its hash, and compact JSON text.

The document is the only form of a DAG that crosses process and machine boundaries: DAG
processing writes it (with its hash) as a DAG version, and the scheduler, the API and the UI read
it without importing the DAG file. Only the task runtime imports the file, to run a task.

Shape (``serialize_dag(dag)``)::

    {"__version": 1, "dag": {
        "dag_id", "fileloc", "relative_fileloc", "description", "doc_md",
        "schedule": {"display": "0 0 * * *", "timetable": {"type": ..., ...}},
        "start_date", "end_date" (ISO 8601 UTC), "timezone" (a zone name), "catchup", "tags",
        "max_active_runs", "max_active_tasks", "max_consecutive_failed_dag_runs",
        "dagrun_timeout" (seconds), "fail_fast",
        "params": [{"name", "value" (absent when required), "description", "schema"}, ...],
        "has_on_success_callback", "has_on_failure_callback", "render_template_as_native_obj",
        "template_searchpath", "is_paused_upon_creation", "owner_links", "access_control",
        "dag_display_name",
        "edge_info": {upstream_id: {downstream_id: {"label": ...}}},
        "task_groups": [root group, then every group depth-first], each
            {"group_id", "label", "prefix_group_id", "tooltip", "ui_color", "ui_fgcolor",
             "group_display_name", "children": [["task", id] | ["group", id], ...],
             "expand_input": null | {"kind", "value", "literal_length"}},
        "tasks": [in definition order, each
            {"task_id", "operator_class" ("module.Class"), "operator_name", "task_group_id",
             "upstream_task_ids", "downstream_task_ids" (sorted), "is_mapped", "is_empty",
             "inherits_from_skipmixin" (it may skip other tasks), "is_setup", "is_teardown",
             "on_failure_fail_dagrun", "ui_color", "ui_fgcolor",
             "priority_weight_total", "template_fields", "template_ext",
             "template_fields_renderers"?, "template_values"?, "params"?,
             "args": {every task argument that differs from its default},
             "mapping"?: {"expand_input": {...}, "partial_kwargs": {...}, "mapped_into"}}]}}

Typed values inside (datetimes, tuples, sets, references to other tasks' results …) use the
tagged form of :mod:`tradewind.serialization.values`. Task arguments use plain forms:
timedeltas as seconds, enums as their values, dates as ISO 8601 UTC text, and callbacks as flags
``has_on_<event>_callback`` (``has_pre_execute`` / ``has_post_execute``). A task's
``start_date``/``end_date`` is written only when it differs from the DAG's.

**Required or display-only.** A value the scheduler, the executors or the API act on must
serialize exactly; one that is only shown may fall back to its ``repr``. The scheduler never
renders templates and never runs callables (the task runtime imports the DAG file for that), so:

==================================================  ==========================================
field                                               an unserializable value …
==================================================  ==========================================
DAG and task ``params`` (validated against          raises — the API validates ``conf`` and the
``conf``, shown in the trigger form)                trigger form needs plain JSON
``description``, ``doc_md`` and the other ``doc_*``  raises — text only; an object there is a
                                                    mistake, not a display choice
``tags``, ``template_searchpath``                   raises — text only
task arguments with types (retries, pool,           raises — the scheduler acts on them
trigger_rule, timeouts, ``executor_config`` …)
``schedule`` / timetable, ``timezone``              raises — the scheduler needs them
template field values, ``partial_kwargs``,          falls back to ``repr`` — shown in the UI
a mapped input's items, ``resources``, non-asset    only; the mapped input's *length* is
``inlets``/``outlets``, ``owner_links``, edge       stored separately (``literal_length``)
labels, group tooltips and colours
==================================================  ==========================================

References to other tasks' results are always written structurally (never as ``repr``), as are
assets, because dependencies and asset events are derived from them.

**Hash.** :func:`dag_hash` is the SHA-256 of canonical JSON (sorted keys, no whitespace) of the
document without ``fileloc``: the absolute path differs between machines and checkouts while the
DAG is the same, so it must not create a new DAG version. ``relative_fileloc`` (relative to the
DAG folder) stays in. Sets are written sorted and ``repr`` text has memory addresses removed, so
the hash does not depend on the process or ``PYTHONHASHSEED``; lists keep their order, so a
list built from a set by the DAG file itself can still vary.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from tradewind.errors import (
    DagDefinitionError,
    DagProblem,
    InvalidArgumentError,
    SerializationError,
)
from tradewind.sdk.abstractoperator import TASK_ARG_DEFAULTS
from tradewind.serialization._graph import CycleError, priority_weight_totals, topological_order
from tradewind.serialization.values import (
    ValueEncodingError,
    canonical_json,
    dotted_name,
    encode_param,
    encode_value,
    safe_repr,
)
from tradewind.serialization.views import (
    DATE_ARGS,
    FLAG_ARGS,
    SECONDS_ARGS,
    SERIALIZATION_VERSION,
    SerializedDAG,
    SerializedTask,
)

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG

__all__ = ["VOLATILE_FIELDS", "dag_hash", "from_json", "serialize_dag", "to_json"]

#: DAG fields left out of :func:`dag_hash` (they change with the machine, not the DAG).
VOLATILE_FIELDS = frozenset({"fileloc"})

_TEXT_ARGS = frozenset(
    {
        "owner",
        "queue",
        "pool",
        "executor",
        "run_as_user",
        "task_display_name",
        "map_index_template",
        "doc",
        "doc_md",
        "doc_rst",
        "doc_json",
        "doc_yaml",
    }
)
_DISPLAY_ARGS = frozenset({"resources", "inlets", "outlets"})
_LIST_ARGS = frozenset({"inlets", "outlets"})
# Defaults as operators hold them after normalising (lists and dicts instead of None).
_VALUE_ARG_DEFAULTS = [
    (name, [] if name in _LIST_ARGS else {} if name == "executor_config" else default)
    for name, default in TASK_ARG_DEFAULTS.items()
    if name not in FLAG_ARGS
]


def _iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    from tradewind.sdk.timezone import to_utc

    return to_utc(value).isoformat()


def _field_names(fields: Any) -> list[str]:
    # ``template_fields = ("sql")`` is a plain string: a common slip, read as one field.
    if isinstance(fields, str):
        return [fields]
    return [str(f) for f in fields or ()]


class _DagWriter:
    """Builds the document for one DAG (live or a :class:`SerializedDAG`)."""

    def __init__(self, dag: DAG | SerializedDAG) -> None:
        self.dag = dag
        self.is_view = isinstance(dag, SerializedDAG)
        self.dag_id: str = dag.dag_id
        start = _iso_utc(dag.start_date)
        end = _iso_utc(dag.end_date)
        self.default_dates = {"start_date": start, "end_date": end}
        self.dag_dates = {"start_date": dag.start_date, "end_date": dag.end_date}
        self._encoded_defaults = {
            name: self._arg_json(name, default, None, defaults=True)
            for name, default in TASK_ARG_DEFAULTS.items()
        }

    # -- errors and encoding --------------------------------------------------------------------
    def fail(
        self, message: str, *, task_id: str | None = None, argument: str | None = None
    ) -> NoReturn:
        raise SerializationError(message, dag_id=self.dag_id, task_id=task_id, argument=argument)

    def value(self, value: Any, argument: str, *, strict: bool, task_id: str | None = None) -> Any:
        try:
            return encode_value(value, strict=strict, argument=argument)
        except ValueEncodingError as exc:
            self.fail(
                f"cannot serialize {exc.path}: {exc.reason}", task_id=task_id, argument=exc.path
            )

    def text(
        self, value: Any, argument: str, *, strict: bool = True, task_id: str | None = None
    ) -> str | None:
        if value is None or type(value) is str:
            return value
        if isinstance(value, str):
            return str(value)
        if strict:
            self.fail(
                f"{argument} must be text (a str) or None, not {type(value).__name__} "
                f"{safe_repr(value)}",
                task_id=task_id,
                argument=argument,
            )
        return safe_repr(value)

    def params(self, params: Any, task_id: str | None = None) -> list[dict[str, Any]]:
        from tradewind.sdk.params import Param

        entries = []
        for name, param in (params or {}).items():
            if not isinstance(param, Param):
                param = Param(param)
            try:
                entry = encode_param(param)
            except SerializationError as exc:
                self.fail(
                    f"param {name!r} cannot be serialized: {exc.args[0]}",
                    task_id=task_id,
                    argument=f"params[{name!r}]",
                )
            entries.append({"name": name, **entry})
        return entries

    # -- the DAG ----------------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        dag = self.dag
        order = self._topological_order()
        totals = priority_weight_totals(
            order,
            {tid: t.priority_weight for tid, t in dag.task_dict.items()},
            {
                tid: str(getattr(t.weight_rule, "value", t.weight_rule))
                for tid, t in dag.task_dict.items()
            },
            {tid: t.upstream_task_ids for tid, t in dag.task_dict.items()},
            {tid: t.downstream_task_ids for tid, t in dag.task_dict.items()},
        )
        body: dict[str, Any] = {
            "dag_id": dag.dag_id,
            "fileloc": dag.fileloc,
            "relative_fileloc": dag.relative_fileloc,
            "description": self.text(dag.description, "description"),
            "doc_md": self.text(dag.doc_md, "doc_md"),
            "schedule": self._schedule(),
            "start_date": self.default_dates["start_date"],
            "end_date": self.default_dates["end_date"],
            "timezone": self._timezone(),
            "catchup": bool(dag.catchup),
            "tags": [self.text(t, "tags") for t in dag.tags],
            "max_active_runs": self.value(dag.max_active_runs, "max_active_runs", strict=True),
            "max_active_tasks": self.value(dag.max_active_tasks, "max_active_tasks", strict=True),
            "max_consecutive_failed_dag_runs": self.value(
                dag.max_consecutive_failed_dag_runs, "max_consecutive_failed_dag_runs", strict=True
            ),
            "dagrun_timeout": self._seconds(dag.dagrun_timeout, "dagrun_timeout"),
            "fail_fast": bool(dag.fail_fast),
            "params": self.params(dag.params),
            "has_on_success_callback": self._flag(dag, "on_success_callback"),
            "has_on_failure_callback": self._flag(dag, "on_failure_callback"),
            "render_template_as_native_obj": bool(dag.render_template_as_native_obj),
            "template_searchpath": self._searchpath(),
            "is_paused_upon_creation": dag.is_paused_upon_creation,
            "owner_links": self.value(dag.owner_links, "owner_links", strict=False),
            "access_control": self.value(dag.access_control, "access_control", strict=True),
            "dag_display_name": self.text(dag.dag_display_name, "dag_display_name", strict=False),
            "edge_info": self.value(dag.edge_info, "edge_info", strict=False),
            "task_groups": self._task_groups(),
            "tasks": [self._task(t, totals[tid]) for tid, t in dag.task_dict.items()],
        }
        return {"__version": SERIALIZATION_VERSION, "dag": body}

    def _flag(self, obj: Any, name: str) -> bool:
        if self.is_view or isinstance(obj, SerializedTask):
            return bool(getattr(obj, f"has_{name}"))
        return bool(getattr(obj, name, None))

    def _topological_order(self) -> list[str]:
        tasks = self.dag.task_dict
        try:
            return topological_order(
                list(tasks),
                {tid: t.upstream_task_ids for tid, t in tasks.items()},
                {tid: t.downstream_task_ids for tid, t in tasks.items()},
            )
        except CycleError as exc:
            if self.is_view:
                self.fail(str(exc))
            problem = DagProblem("cycle", f"cannot serialize: {exc}", task_id=exc.task_ids[0])
            raise DagDefinitionError(self.dag_id, [problem]) from None

    def _schedule(self) -> dict[str, Any]:
        if isinstance(self.dag, SerializedDAG):
            return {"display": self.dag.schedule, "timetable": self.dag.timetable_dict}
        from tradewind.sdk.schedule import describe_schedule
        from tradewind.timetables import create_timetable

        dag = self.dag
        try:
            # A DAG built by the Airflow compatibility layer may carry its own timetable.
            timetable = getattr(dag, "timetable", None)
            if timetable is None:
                timetable = create_timetable(dag.schedule, timezone=dag.timezone)
            # Through JSON text once, so tuples are lists exactly as after a trip to the DB.
            data = json.loads(json.dumps(timetable.to_dict(), allow_nan=False))
        except SerializationError as exc:
            self.fail(f"cannot serialize the timetable: {exc.args[0]}", argument="schedule")
        except (InvalidArgumentError, ValueError, TypeError) as exc:
            self.fail(f"cannot serialize the schedule: {exc}", argument="schedule")
        return {"display": describe_schedule(dag.schedule), "timetable": data}

    def _timezone(self) -> str:
        from tradewind.sdk.timezone import tz_name

        try:
            return tz_name(self.dag.timezone)
        except InvalidArgumentError as exc:
            self.fail(str(exc), argument="timezone")

    def _seconds(self, value: Any, argument: str, task_id: str | None = None) -> float | None:
        if value is None:
            return None
        if not isinstance(value, timedelta):
            self.fail(
                f"{argument} must be a timedelta or None, not {type(value).__name__}",
                task_id=task_id,
                argument=argument,
            )
        return value.total_seconds()

    def _searchpath(self) -> list[str]:
        import os

        out = []
        for item in self.dag.template_searchpath:
            path = os.fspath(item) if isinstance(item, os.PathLike) else item
            out.append(self.text(path, "template_searchpath") or "")
        return out

    # -- groups -----------------------------------------------------------------------------------
    def _task_groups(self) -> list[dict[str, Any]]:
        out = []
        stack = [self.dag.task_group]
        while stack:
            group = stack.pop()
            out.append(self._group(group))
            nested = [c for c in group.children.values() if not hasattr(c, "task_id")]
            stack.extend(reversed(nested))
        return out

    def _group(self, group: Any) -> dict[str, Any]:
        children = []
        for key, child in group.children.items():
            children.append(["task" if hasattr(child, "task_id") else "group", key])
        gid = group.group_id
        return {
            "group_id": gid,
            "label": group.label,
            "prefix_group_id": bool(group.prefix_group_id),
            "tooltip": self.text(group.tooltip, "tooltip", strict=False) or "",
            "ui_color": self.text(group.ui_color, "ui_color", strict=False),
            "ui_fgcolor": self.text(group.ui_fgcolor, "ui_fgcolor", strict=False),
            "group_display_name": self.text(
                group.group_display_name, "group_display_name", strict=False
            ),
            "children": children,
            "expand_input": self._expand_input(group.expand_input, None),
        }

    def _expand_input(self, ei: Any, task_id: str | None) -> dict[str, Any] | None:
        if ei is None:
            return None
        try:
            length = ei.literal_length()
        except (TypeError, ValueError):
            length = None
        argument = "expand_kwargs" if ei.kind == "list_of_dicts" else "expand"
        return {
            "kind": ei.kind,
            "value": self.value(ei.value, argument, strict=False, task_id=task_id),
            "literal_length": length,
        }

    # -- tasks ------------------------------------------------------------------------------------
    def _task(self, task: Any, priority_weight_total: int) -> dict[str, Any]:
        tid = task.task_id
        if isinstance(task, SerializedTask):
            operator_class, operator_name = task.operator_class, task.operator_name
            is_empty, skips = task.is_empty, task.inherits_from_skipmixin
        else:
            cls = task.operator_class if task.is_mapped else type(task)
            operator_class = dotted_name(cls) or cls.__name__
            operator_name = getattr(cls, "custom_operator_name", None) or cls.__name__
            is_empty = self._is_empty(task, cls)
            skips = bool(getattr(cls, "inherits_from_skipmixin", False))
        group = task.task_group
        fields = _field_names(task.template_fields)
        out: dict[str, Any] = {
            "task_id": tid,
            "operator_class": operator_class,
            "operator_name": operator_name,
            "task_group_id": group.group_id if group is not None else None,
            "upstream_task_ids": sorted(task.upstream_task_ids),
            "downstream_task_ids": sorted(task.downstream_task_ids),
            "is_mapped": bool(task.is_mapped),
            "is_empty": is_empty,
            "inherits_from_skipmixin": skips,
            "is_setup": bool(task.is_setup),
            "is_teardown": bool(task.is_teardown),
            "on_failure_fail_dagrun": bool(task.on_failure_fail_dagrun),
            "ui_color": self.text(task.ui_color, "ui_color", strict=False, task_id=tid),
            "ui_fgcolor": self.text(task.ui_fgcolor, "ui_fgcolor", strict=False, task_id=tid),
            "priority_weight_total": priority_weight_total,
            "template_fields": fields,
            "template_ext": [str(e) for e in _field_names(task.template_ext)],
        }
        renderers = getattr(task, "template_fields_renderers", None)
        if renderers:
            out["template_fields_renderers"] = self.value(
                dict(renderers), "template_fields_renderers", strict=False, task_id=tid
            )
        values = {
            name: self.value(value, name, strict=False, task_id=tid)
            for name, value in task.iter_template_values()
        }
        if values:
            out["template_values"] = values
        if task.params:
            out["params"] = self.params(task.params, tid)
        out["args"] = self._task_args(task)
        if task.is_mapped:
            out["mapping"] = self._mapping(task, fields)
        return out

    @staticmethod
    def _is_empty(task: Any, cls: type) -> bool:
        """An empty operator the scheduler may mark done without running: nothing would happen
        if it ran (no callbacks around execution, no pre/post hooks, no asset inlets/outlets)."""
        if not getattr(cls, "inherits_from_empty_operator", False):
            return False
        busy = ("on_execute_callback", "on_success_callback", "pre_execute", "post_execute")
        return not any(getattr(task, name, None) for name in busy) and not (
            getattr(task, "inlets", None) or getattr(task, "outlets", None)
        )

    def _mapping(self, task: Any, fields: list[str]) -> dict[str, Any]:
        tid = task.task_id
        if isinstance(task, SerializedTask):
            partial = task.partial_kwargs
        else:
            skip = set(fields) | set(TASK_ARG_DEFAULTS)
            partial = {k: v for k, v in task.partial_kwargs.items() if k not in skip}
        return {
            "expand_input": self._expand_input(task.expand_input, tid),
            "partial_kwargs": {
                k: self.value(v, k, strict=False, task_id=tid) for k, v in partial.items()
            },
            "mapped_into": task.mapped_into,
        }

    def _task_args(self, task: Any) -> dict[str, Any]:
        tid = task.task_id
        out: dict[str, Any] = {}
        encoded_defaults = self._encoded_defaults
        for name in FLAG_ARGS:
            if self._flag(task, name):
                out[f"has_{name}"] = True
        for name, default in _VALUE_ARG_DEFAULTS:
            value = getattr(task, name, default)
            # Most values equal their default: skip the encoding work for them.
            if value is default or (type(value) is type(default) and value == default):
                continue
            if name in DATE_ARGS and value == self.dag_dates[name]:
                continue
            encoded = self._arg_json(name, value, tid)
            if encoded != encoded_defaults[name]:
                out[name] = encoded
        return out

    def _arg_json(
        self, name: str, value: Any, task_id: str | None, *, defaults: bool = False
    ) -> Any:
        if name in SECONDS_ARGS:
            return self._seconds(value, name, task_id)
        if name in DATE_ARGS:
            iso = _iso_utc(value)
            # The task's dates default to the DAG's (and a view fills them back in the same way).
            if not defaults and iso == self.default_dates[name]:
                return None
            return iso
        if name in ("trigger_rule", "weight_rule"):
            return str(getattr(value, "value", value))
        if name in _LIST_ARGS:
            value = list(value or [])
        if name == "executor_config" and value is None:
            value = {}
        if name in _TEXT_ARGS:
            return self.text(value, name, task_id=task_id)
        return self.value(value, name, strict=name not in _DISPLAY_ARGS, task_id=task_id)


def serialize_dag(dag: DAG | SerializedDAG) -> dict[str, Any]:
    """The versioned document for ``dag`` (see the module docstring).

    A :class:`SerializedDAG` is accepted too and gives back the document it was read from.

    Raises:
        SerializationError: a value the document must hold exactly has no JSON form; the error
            names the DAG, the task and the argument (with the path inside it).
        DagDefinitionError: the tasks form a cycle.
    """
    return _DagWriter(dag).document()


def _without_volatile(document: Mapping[str, Any]) -> dict[str, Any]:
    dag = document.get("dag")
    if not isinstance(dag, Mapping):
        return dict(document)
    return {**document, "dag": {k: v for k, v in dag.items() if k not in VOLATILE_FIELDS}}


def dag_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the document's canonical JSON without volatile fields (``fileloc``).

    Equal DAGs give equal hashes in every process, on every machine and under every
    ``PYTHONHASHSEED``; DAG processing writes a new DAG version only when it changes.
    """
    text = canonical_json(_without_volatile(document))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_json(document: Mapping[str, Any]) -> str:
    """Compact JSON text for a document: no whitespace, key order kept (the writer's order is
    fixed, so one DAG always gives the same text), and no NaN/Infinity."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def from_json(text: str | bytes) -> dict[str, Any]:
    """The document in JSON text written by :func:`to_json`.

    Raises:
        SerializationError: the text is not JSON or not a serialized DAG document.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SerializationError(f"serialized DAG is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or "__version" not in document:
        raise SerializationError("not a serialized DAG document: '__version' is missing")
    return document
