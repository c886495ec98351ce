"""Read-only views of a serialized DAG: what the scheduler, the API and the UI work with.

:func:`deserialize_dag` turns a document (see :mod:`tradewind.serialization.serialized_dag`)
into :class:`SerializedDAG`, :class:`SerializedTask` and :class:`SerializedTaskGroup` objects.
They import nothing from DAG files and expose the attribute names of the live
:class:`~tradewind.sdk.dag_definition.DAG`, operators and :class:`~tradewind.sdk.taskgroup.TaskGroup`
where those exist (``dag_id``, ``tasks``, ``task_dict``, ``get_task``, ``roots``, ``leaves``,
``topological_sort()``; ``task_id``, ``upstream_task_ids``, ``trigger_rule``, ``retry_delay``,
``pool``, ``priority_weight_total`` …). Differences from the live classes:

* callbacks are known only as flags: ``has_on_failure_callback`` and so on (also
  ``has_pre_execute`` / ``has_post_execute``), never as callables;
* ``operator_class`` is the dotted path text, ``operator_name`` the display name;
* ``schedule`` is the schedule as display text; ``timetable`` is rebuilt on first use (a custom
  timetable must be registered in the reading process, so reading the rest never needs it);
* ``template_values`` holds each template field's raw value, with references to other tasks'
  results as :class:`~tradewind.serialization.values.XComRef` and friends.

The views are not meant to be changed; mutable attributes (lists, dicts) may be shared.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from tradewind.errors import NotFound, SerializationError
from tradewind.sdk.abstractoperator import (
    CALLBACK_ARGS,
    DEFAULT_OWNER,
    DEFAULT_POOL,
    DEFAULT_QUEUE,
    DEFAULT_RETRY_DELAY,
    TASK_ARG_DEFAULTS,
)
from tradewind.sdk.trigger_rule import TriggerRule, WeightRule
from tradewind.serialization._graph import CycleError, topological_order
from tradewind.serialization.values import decode_param, decode_value, iter_references

if TYPE_CHECKING:
    from tradewind.sdk.params import ParamsDict
    from tradewind.timetables.base import Timetable

__all__ = [
    "SERIALIZATION_VERSION",
    "SerializedDAG",
    "SerializedExpandInput",
    "SerializedTask",
    "SerializedTaskGroup",
    "deserialize_dag",
]

#: The document format version this Tradewind writes and reads.
SERIALIZATION_VERSION = 1

#: Task arguments that are callables in the live operator and flags (``has_<name>``) here.
FLAG_ARGS = (*CALLBACK_ARGS, "pre_execute", "post_execute")
#: Task arguments written as a number of seconds.
SECONDS_ARGS = frozenset({"retry_delay", "max_retry_delay", "execution_timeout"})
#: Task arguments written as ISO 8601 UTC text.
DATE_ARGS = frozenset({"start_date", "end_date"})


_ARG_KEYS = frozenset(
    [f"has_{name}" for name in FLAG_ARGS]
    + [name for name in TASK_ARG_DEFAULTS if name not in FLAG_ARGS]
)


def _seconds(value: Any) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _date(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _params(entries: Any) -> ParamsDict:
    from tradewind.sdk.params import ParamsDict

    return ParamsDict({entry["name"]: decode_param(entry) for entry in entries or ()})


class SerializedExpandInput:
    """What a mapped task or task group expands over: ``kind`` and the decoded ``value``.

    ``kind`` is ``"dict_of_lists"`` (``expand(a=[...], b=...)``) or ``"list_of_dicts"``
    (``expand_kwargs(...)``); references to upstream results in ``value`` are
    :class:`~tradewind.serialization.values.XComRef` objects.
    """

    __slots__ = ("_literal_length", "kind", "value")

    def __init__(self, kind: str, value: Any, literal_length: int | None) -> None:
        self.kind = kind
        self.value = value
        self._literal_length = literal_length

    def literal_length(self) -> int | None:
        """The number of instances when every input is a literal (None when any comes from
        upstream and is known only at run time)."""
        return self._literal_length

    def iter_references(self) -> Iterator[tuple[str, str]]:
        """(task_id, key) for every upstream result the expansion reads."""
        yield from iter_references(self.value)

    def __repr__(self) -> str:
        return f"SerializedExpandInput({self.kind!r}, {self.value!r})"


def _expand_input(data: Mapping[str, Any] | None) -> SerializedExpandInput | None:
    if data is None:
        return None
    return SerializedExpandInput(
        data["kind"], decode_value(data["value"]), data.get("literal_length")
    )


class SerializedTask:
    """One task of a :class:`SerializedDAG`; see the module docstring.

    Every task argument of :data:`~tradewind.sdk.abstractoperator.TASK_ARG_DEFAULTS` is an
    attribute, holding the default when the document does not mention it.
    """

    # Defaults as class attributes: a 10,000-task DAG sets only what differs per task.
    owner: str = DEFAULT_OWNER
    email: Any = None
    email_on_retry: bool = True
    email_on_failure: bool = True
    retries: int = 0
    retry_delay: timedelta = DEFAULT_RETRY_DELAY
    retry_exponential_backoff: float = 0.0
    max_retry_delay: timedelta | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    depends_on_past: bool = False
    ignore_first_depends_on_past: bool = True
    wait_for_past_depends_before_skipping: bool = False
    wait_for_downstream: bool = False
    priority_weight: int = 1
    weight_rule: WeightRule = WeightRule.DOWNSTREAM
    queue: str = DEFAULT_QUEUE
    pool: str = DEFAULT_POOL
    pool_slots: int = 1
    execution_timeout: timedelta | None = None
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    max_active_tis_per_dag: int | None = None
    max_active_tis_per_dagrun: int | None = None
    executor: str | None = None
    executor_config: Any = {}
    do_xcom_push: bool = True
    multiple_outputs: bool = False
    map_index_template: str | None = None
    run_as_user: str | None = None
    resources: Any = None
    inlets: Any = ()
    outlets: Any = ()
    doc: str | None = None
    doc_md: str | None = None
    doc_rst: str | None = None
    doc_json: str | None = None
    doc_yaml: str | None = None
    task_display_name: str | None = None
    has_on_execute_callback: bool = False
    has_on_success_callback: bool = False
    has_on_failure_callback: bool = False
    has_on_retry_callback: bool = False
    has_on_skipped_callback: bool = False
    has_pre_execute: bool = False
    has_post_execute: bool = False

    template_fields_renderers: dict[str, Any] = {}
    template_values: dict[str, Any] = {}
    partial_kwargs: dict[str, Any] = {}
    expand_input: SerializedExpandInput | None = None
    mapped_into: str | None = None
    _params_data: Any = None

    def __init__(self, dag: SerializedDAG, data: Mapping[str, Any]) -> None:
        self.dag = dag
        self.task_id: str = data["task_id"]
        self.operator_class: str = data["operator_class"]
        self.operator_name: str = data["operator_name"]
        self.task_group_id: str | None = data.get("task_group_id")
        self.task_group: SerializedTaskGroup | None = None
        self.upstream_task_ids: set[str] = set(data["upstream_task_ids"])
        self.downstream_task_ids: set[str] = set(data["downstream_task_ids"])
        self.is_mapped: bool = data["is_mapped"]
        self.is_empty: bool = data["is_empty"]
        #: The operator may skip other tasks (branching, short-circuit).
        self.inherits_from_skipmixin: bool = data.get("inherits_from_skipmixin", False)
        self.is_setup: bool = data.get("is_setup", False)
        self.is_teardown: bool = data.get("is_teardown", False)
        self.on_failure_fail_dagrun: bool = data.get("on_failure_fail_dagrun", False)
        self.ui_color: str = data["ui_color"]
        self.ui_fgcolor: str = data["ui_fgcolor"]
        self.priority_weight_total: int = data["priority_weight_total"]
        self.template_fields: tuple[str, ...] = tuple(data.get("template_fields", ()))
        self.template_ext: tuple[str, ...] = tuple(data.get("template_ext", ()))
        if "template_fields_renderers" in data:
            self.template_fields_renderers = dict(data["template_fields_renderers"])
        if "template_values" in data:
            self.template_values = {k: decode_value(v) for k, v in data["template_values"].items()}
        if "params" in data:
            self._params_data = data["params"]
        for name, value in data.get("args", {}).items():
            # Only known arguments: a key from a newer writer must not shadow structure.
            if name in _ARG_KEYS:
                setattr(self, name, _decode_arg(name, value))
        if self.start_date is None:
            self.start_date = dag.start_date
        if self.end_date is None:
            self.end_date = dag.end_date
        mapping = data.get("mapping")
        if mapping is not None:
            self.expand_input = _expand_input(mapping["expand_input"])
            self.partial_kwargs = {k: decode_value(v) for k, v in mapping["partial_kwargs"].items()}
            self.mapped_into = mapping.get("mapped_into")

    # -- identity -----------------------------------------------------------------------------
    @property
    def dag_id(self) -> str:
        """The id of the DAG this task belongs to."""
        return self.dag.dag_id

    @property
    def task_type(self) -> str:
        """The operator's display name (Airflow's name for ``operator_name``)."""
        return self.operator_name

    @property
    def label(self) -> str:
        """The id without the enclosing group's prefix, for displays."""
        group = self.task_group
        if group is not None and group.group_id and group.prefix_group_id:
            prefix = f"{group.group_id}."
            if self.task_id.startswith(prefix):
                return self.task_id[len(prefix) :]
        return self.task_id

    @functools.cached_property
    def params(self) -> ParamsDict:
        """The task's own params (the DAG's are on :attr:`SerializedDAG.params`)."""
        return _params(self._params_data)

    # -- relatives -------------------------------------------------------------------------------
    @property
    def upstream_list(self) -> list[SerializedTask]:
        """The direct upstream tasks, sorted by id."""
        return [self.dag.task_dict[t] for t in sorted(self.upstream_task_ids)]

    @property
    def downstream_list(self) -> list[SerializedTask]:
        """The direct downstream tasks, sorted by id."""
        return [self.dag.task_dict[t] for t in sorted(self.downstream_task_ids)]

    def get_direct_relative_ids(self, upstream: bool = False) -> set[str]:
        """The ids of the direct upstream (or downstream) tasks."""
        return self.upstream_task_ids if upstream else self.downstream_task_ids

    def get_flat_relative_ids(self, *, upstream: bool = False) -> set[str]:
        """Every task id reachable upstream (or downstream) of this task."""
        tasks = self.dag.task_dict
        seen: set[str] = set()
        stack = list(self.get_direct_relative_ids(upstream))
        while stack:
            tid = stack.pop()
            if tid not in seen:
                seen.add(tid)
                stack.extend(tasks[tid].get_direct_relative_ids(upstream))
        return seen

    def iter_template_values(self) -> Iterator[tuple[str, Any]]:
        """(field, raw value) for every template field the document holds."""
        yield from self.template_values.items()

    def __repr__(self) -> str:
        return f"<SerializedTask({self.operator_name}): {self.task_id}>"


def _decode_arg(name: str, value: Any) -> Any:
    if name in SECONDS_ARGS:
        return _seconds(value)
    if name in DATE_ARGS:
        return _date(value)
    if name == "trigger_rule":
        return TriggerRule(value) if TriggerRule.is_valid(value) else value
    if name == "weight_rule":
        return WeightRule(value)
    return decode_value(value)


class SerializedTaskGroup:
    """A task group of a :class:`SerializedDAG` (the root group has ``group_id`` None)."""

    def __init__(self, dag: SerializedDAG, data: Mapping[str, Any]) -> None:
        self.dag = dag
        self.group_id: str | None = data["group_id"]
        self.label: str | None = data.get("label")
        self.prefix_group_id: bool = data.get("prefix_group_id", True)
        self.tooltip: str = data.get("tooltip", "")
        self.ui_color: str = data.get("ui_color", "CornflowerBlue")
        self.ui_fgcolor: str = data.get("ui_fgcolor", "#000")
        self.group_display_name: str | None = data.get("group_display_name")
        self.expand_input = _expand_input(data.get("expand_input"))
        self.parent_group: SerializedTaskGroup | None = None
        self.children: dict[str, SerializedTask | SerializedTaskGroup] = {}

    @property
    def is_root(self) -> bool:
        """Whether this is the DAG's root group (which has no id)."""
        return self.group_id is None

    @property
    def is_mapped(self) -> bool:
        """Whether this group (or an enclosing one) is expanded at run time."""
        group: SerializedTaskGroup | None = self
        while group is not None:
            if group.expand_input is not None:
                return True
            group = group.parent_group
        return False

    def iter_tasks(self) -> Iterator[SerializedTask]:
        """Every task inside, depth-first in definition order."""
        for child in self.children.values():
            if isinstance(child, SerializedTaskGroup):
                yield from child.iter_tasks()
            else:
                yield child

    def iter_groups(self) -> Iterator[SerializedTaskGroup]:
        """Every nested group, depth-first."""
        for child in self.children.values():
            if isinstance(child, SerializedTaskGroup):
                yield child
                yield from child.iter_groups()

    def get_task_group_dict(self) -> dict[str | None, SerializedTaskGroup]:
        """Every group in this tree by id (the root under ``None``)."""
        return {self.group_id: self, **{g.group_id: g for g in self.iter_groups()}}

    @property
    def roots(self) -> list[SerializedTask]:
        """Tasks inside with no upstream task inside the group."""
        tasks = list(self.iter_tasks())
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if not (t.upstream_task_ids & ids)]

    @property
    def leaves(self) -> list[SerializedTask]:
        """Tasks inside with no downstream task inside the group."""
        tasks = list(self.iter_tasks())
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if not (t.downstream_task_ids & ids)]

    def __repr__(self) -> str:
        return f"<SerializedTaskGroup: {self.group_id}>"


class SerializedDAG:
    """A DAG read back from its document; see the module docstring."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        data = _check_version(document)
        try:
            self._load(data)
        except SerializationError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            dag_id = data.get("dag_id") if isinstance(data, Mapping) else None
            raise SerializationError(
                f"malformed serialized DAG document: {type(exc).__name__}: {exc}", dag_id=dag_id
            ) from None

    def _load(self, data: Mapping[str, Any]) -> None:
        from tradewind.sdk.timezone import timezone_from_name

        self.dag_id: str = data["dag_id"]
        self.fileloc: str | None = data.get("fileloc")
        self.relative_fileloc: str | None = data.get("relative_fileloc")
        self.description: str | None = data.get("description")
        self.doc_md: str | None = data.get("doc_md")
        schedule = data["schedule"]
        #: The schedule as display text (``"0 0 * * *"``, ``"every 1:00:00"``, ``"None"`` …).
        self.schedule: str | None = schedule.get("display")
        self.timetable_dict: dict[str, Any] = schedule["timetable"]
        self.start_date = _date(data.get("start_date"))
        self.end_date = _date(data.get("end_date"))
        self.timezone: tzinfo = timezone_from_name(data.get("timezone", "UTC"))
        self.catchup: bool = data["catchup"]
        self.tags: list[str] = list(data.get("tags", ()))
        self.max_active_runs: int | None = data.get("max_active_runs")
        self.max_active_tasks: int | None = data.get("max_active_tasks")
        self.max_consecutive_failed_dag_runs: int = data.get("max_consecutive_failed_dag_runs", 0)
        self.dagrun_timeout = _seconds(data.get("dagrun_timeout"))
        self.fail_fast: bool = data.get("fail_fast", False)
        self._params_data = data.get("params", ())
        self.has_on_success_callback: bool = data.get("has_on_success_callback", False)
        self.has_on_failure_callback: bool = data.get("has_on_failure_callback", False)
        self.render_template_as_native_obj: bool = data.get("render_template_as_native_obj", False)
        self.template_searchpath: list[str] = list(data.get("template_searchpath", ()))
        self.is_paused_upon_creation: bool | None = data.get("is_paused_upon_creation")
        self.owner_links: dict[str, Any] = decode_value(data.get("owner_links", {}))
        self.access_control: Any = decode_value(data.get("access_control"))
        self.dag_display_name: str = data.get("dag_display_name") or self.dag_id
        self.edge_info: dict[str, dict[str, dict[str, Any]]] = decode_value(
            data.get("edge_info", {})
        )
        self.task_dict: dict[str, SerializedTask] = {}
        for item in data["tasks"]:
            task = SerializedTask(self, item)
            self.task_dict[task.task_id] = task
        self.task_group = self._load_groups(data["task_groups"])

    def _load_groups(self, entries: list[Mapping[str, Any]]) -> SerializedTaskGroup:
        groups: dict[str | None, SerializedTaskGroup] = {}
        for entry in entries:
            groups[entry["group_id"]] = SerializedTaskGroup(self, entry)
        if None not in groups:
            raise SerializationError("the document has no root task group", dag_id=self.dag_id)
        for entry in entries:
            group = groups[entry["group_id"]]
            for kind, child_id in entry["children"]:
                child: SerializedTask | SerializedTaskGroup
                if kind == "task":
                    task = self.task_dict[child_id]
                    task.task_group = group
                    child = task
                else:
                    child = groups[child_id]
                    child.parent_group = group
                group.children[child_id] = child
        return groups[None]

    # -- tasks ----------------------------------------------------------------------------------
    @property
    def tasks(self) -> list[SerializedTask]:
        """Every task, in definition order."""
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        """Every task id, in definition order."""
        return list(self.task_dict)

    def has_task(self, task_id: str) -> bool:
        """Whether the DAG has a task with this id."""
        return task_id in self.task_dict

    def get_task(self, task_id: str) -> SerializedTask:
        """The task with this id; :class:`~tradewind.errors.NotFound` otherwise."""
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise NotFound("task", f"{self.dag_id}.{task_id}") from None

    @property
    def roots(self) -> list[SerializedTask]:
        """Tasks with no upstream task."""
        return [t for t in self.task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[SerializedTask]:
        """Tasks with no downstream task."""
        return [t for t in self.task_dict.values() if not t.downstream_task_ids]

    def topological_sort(self) -> list[SerializedTask]:
        """Tasks ordered so each comes after its upstream tasks (ties in definition order)."""
        tasks = self.task_dict
        try:
            order = topological_order(
                list(tasks),
                {tid: t.upstream_task_ids for tid, t in tasks.items()},
                {tid: t.downstream_task_ids for tid, t in tasks.items()},
            )
        except CycleError as exc:
            raise SerializationError(str(exc), dag_id=self.dag_id) from None
        return [tasks[tid] for tid in order]

    def get_edge_info(self, upstream_task_id: str, downstream_task_id: str) -> dict[str, Any]:
        """Display information of an edge (``{"label": ...}``), or ``{}``."""
        return self.edge_info.get(upstream_task_id, {}).get(downstream_task_id, {})

    @property
    def task_group_dict(self) -> dict[str | None, SerializedTaskGroup]:
        """Every task group by id (the root under ``None``)."""
        return self.task_group.get_task_group_dict()

    @property
    def owner(self) -> str:
        """The owners of the DAG's tasks, comma-separated."""
        return ", ".join(sorted({t.owner for t in self.task_dict.values()} - {""}))

    # -- schedule and params --------------------------------------------------------------------
    @functools.cached_property
    def timetable(self) -> Timetable:
        """The timetable, rebuilt from the document on first use."""
        from tradewind.timetables import timetable_from_dict

        try:
            return timetable_from_dict(self.timetable_dict)
        except SerializationError as exc:
            raise SerializationError(
                f"cannot rebuild the timetable: {exc}", dag_id=self.dag_id, argument="schedule"
            ) from None

    @functools.cached_property
    def params(self) -> ParamsDict:
        """The DAG's params (defaults, descriptions, schemas) in declaration order."""
        return _params(self._params_data)

    @property
    def params_schema(self) -> dict[str, Any]:
        """A JSON schema of every param (for trigger forms and validating ``conf``)."""
        return self.params.to_schema()

    def __repr__(self) -> str:
        return f"<SerializedDAG: {self.dag_id}>"


def _check_version(document: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(document, Mapping) or "dag" not in document:
        raise SerializationError(
            "not a serialized DAG document: expected an object with '__version' and 'dag'"
        )
    version = document.get("__version")
    if version != SERIALIZATION_VERSION:
        dag = document.get("dag")
        dag_id = dag.get("dag_id") if isinstance(dag, Mapping) else None
        raise SerializationError(
            f"serialized DAG format version {version!r} is not supported; this Tradewind reads "
            f"version {SERIALIZATION_VERSION} (re-parse the DAG file to write it again)",
            dag_id=dag_id if isinstance(dag_id, str) else None,
        )
    data = document["dag"]
    if not isinstance(data, Mapping):
        raise SerializationError("malformed serialized DAG document: 'dag' is not an object")
    return data


def deserialize_dag(document: Mapping[str, Any]) -> SerializedDAG:
    """Read a document written by :func:`~tradewind.serialization.serialize_dag`.

    Raises:
        SerializationError: an unknown format version, or a malformed document.
    """
    return SerializedDAG(document)
