"""The context a DAG-level callback receives, built in the callback's child process.

As in Airflow, a DAG's ``on_success_callback`` / ``on_failure_callback`` gets the template
context of one task instance of the finished run, with ``reason`` added:

* the task instance is, for a failure callback, the failed one that ended last; otherwise
  (and when no instance failed: a deadlock, a timeout) the last one: the instance of the
  task furthest downstream in the DAG's topological order. Removed instances never count;
* ``dag_run`` is a :class:`CallbackDagRun`: the run's row fields (``state``, ``run_id``,
  ``run_type``, ``logical_date``, ``data_interval_start``/``_end``, ``conf``, ``start_date``,
  ``end_date`` ...) plus ``get_task_instances(state=None)`` and
  ``get_task_instance(task_id, map_index=-1)``;
* ``ti`` / ``task_instance`` is a :class:`CallbackTaskInstance` (the row fields, ``task``, and
  ``xcom_pull`` with the task runtime's semantics); ``task`` is the DAG's task of that id;
* every other key (``ds``, ``ts``, ``params``, ``var``, ``conn``, ``macros`` ...) comes from
  :func:`tradewind.sdk.context.build_context`, exactly as a task try gets it.

Building never raises: whatever is missing (no database, no task instance, a task no longer
in the DAG, params that do not validate) is left out and named in :attr:`CallbackContext.notes`,
which the child writes to the callback log::

    built = build_callback_context(
        dag, run=run, task_instances=tis, kind="failure", reason="task_failure", xcom=data
    )
    callback(built.context)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradewind.errors import TradewindError, XComError
from tradewind.sdk.context import Context
from tradewind.sdk.params import NOTSET, ArgNotSet
from tradewind.sdk.xcom_arg import XCOM_RETURN_KEY
from tradewind.sdk.xcom_pull import XComReader
from tradewind.state import TaskState

__all__ = [
    "CallbackContext",
    "CallbackDagRun",
    "CallbackTaskInstance",
    "XComReader",
    "build_callback_context",
    "pick_task_instance",
    "run_from_fields",
]


class CallbackTaskInstance:
    """A task instance of the finished run, as a DAG callback sees it (read-only).

    Attributes are those of the ``task_instance`` row: ``dag_id``, ``run_id``, ``task_id``,
    ``map_index``, ``state``, ``try_number``, ``max_tries``, ``start_date``, ``end_date``,
    ``duration``, ``operator``, ``pool``, ``queue``, ``priority_weight``, ``hostname``,
    ``last_error``; ``task`` is the DAG's task of that id (None when the DAG no longer has it).
    """

    def __init__(self, **fields: Any) -> None:
        self.dag_id: str = fields.pop("dag_id")
        self.run_id: str = fields.pop("run_id")
        self.task_id: str = fields.pop("task_id")
        self.map_index: int = int(fields.pop("map_index", -1))
        state = fields.pop("state", None)
        self.state: TaskState | None = TaskState(state) if state is not None else None
        self.try_number: int = int(fields.pop("try_number", 0) or 0)
        self.max_tries: int = int(fields.pop("max_tries", 0) or 0)
        self.start_date: datetime | None = _aware(fields.pop("start_date", None))
        self.end_date: datetime | None = _aware(fields.pop("end_date", None))
        self.duration: float | None = fields.pop("duration", None)
        self.operator: str | None = fields.pop("operator", None)
        self.pool: str | None = fields.pop("pool", None)
        self.queue: str | None = fields.pop("queue", None)
        self.priority_weight: int | None = fields.pop("priority_weight", None)
        self.hostname: str | None = fields.pop("hostname", None)
        self.last_error: str | None = fields.pop("last_error", None)
        if fields:
            raise TypeError(f"unknown task instance fields: {', '.join(sorted(fields))}")
        self.task: Any = None
        self._xcom: XComReader | None = None
        self._xcom_missing = "no metadata database is reachable from the callback process"
        self._dag_run: CallbackDagRun | None = None
        self._context: Context | None = None

    @property
    def logical_date(self) -> datetime | None:
        """The run's logical date (None for a run without one)."""
        return self._dag_run.logical_date if self._dag_run is not None else None

    @property
    def execution_date(self) -> datetime | None:
        """Airflow 2 name of :attr:`logical_date`."""
        return self.logical_date

    def get_dagrun(self) -> CallbackDagRun | None:
        """The run this instance belongs to."""
        return self._dag_run

    def get_template_context(self) -> Context:
        """The context the DAG callback got (when this is its ``ti``)."""
        if self._context is None:
            raise TradewindError(f"task instance {self.task_id!r} is not the callback's ti")
        return self._context

    def xcom_push(self, key: str, value: Any) -> None:
        """Not allowed: a finished run's XComs belong to the tries that pushed them."""
        raise XComError("a DAG callback may read XComs but not push them", task_id=self.task_id)

    def xcom_pull(
        self,
        task_ids: str | Iterable[str] | None = None,
        dag_id: str | None = None,
        key: str = XCOM_RETURN_KEY,
        include_prior_dates: bool = False,
        *,
        map_indexes: int | Iterable[int] | ArgNotSet | None = NOTSET,
        default: Any = None,
        run_id: str | None = None,
    ) -> Any:
        """Read XCom values of the run, as ``ti.xcom_pull`` does in a task (Airflow 3).

        ``task_ids=None`` reads this instance's own value. One task id with ``map_indexes``
        unset gives the value of an unmapped task, the list of values of a mapped one, or
        None; several task ids or explicit ``map_indexes`` give a list in the order asked,
        with ``default`` for missing values (one id and one int index: one value).
        Raises :class:`~tradewind.errors.TradewindError` when the callback process has no
        database to read from.
        """
        from tradewind.sdk.xcom_pull import pull

        return pull(
            self._reader(),
            dag_id=dag_id or self.dag_id,
            run_id=run_id or self.run_id,
            own_task_id=self.task_id,
            own_map_index=self.map_index,
            task_ids=task_ids,
            key=key,
            map_indexes=map_indexes,
            default=default,
        )

    def _reader(self) -> XComReader:
        if self._xcom is None:
            raise TradewindError(f"cannot read XCom in this DAG callback: {self._xcom_missing}")
        return self._xcom

    def __repr__(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return (
            f"<CallbackTaskInstance {self.dag_id}.{self.task_id}{index} run={self.run_id!r} "
            f"state={self.state} try={self.try_number}>"
        )


class CallbackDagRun:
    """The finished run, as a DAG callback sees it (its ``dag_run``).

    Attributes: ``dag_id``, ``run_id``, ``run_type``, ``state``, ``logical_date``,
    ``data_interval_start``, ``data_interval_end``, ``run_after``, ``conf``, ``queued_at``,
    ``start_date``, ``end_date``, ``clear_number``; datetimes are aware UTC.
    """

    def __init__(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_instances: Iterable[CallbackTaskInstance] = (),
        **fields: Any,
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.run_type: str = str(fields.pop("run_type", None) or "manual")
        self.state: str | None = fields.pop("state", None)
        self.logical_date = _aware(fields.pop("logical_date", None))
        self.data_interval_start = _aware(fields.pop("data_interval_start", None))
        self.data_interval_end = _aware(fields.pop("data_interval_end", None))
        self.run_after = _aware(fields.pop("run_after", None))
        self.conf: dict[str, Any] = dict(fields.pop("conf", None) or {})
        self.queued_at = _aware(fields.pop("queued_at", None))
        self.start_date = _aware(fields.pop("start_date", None))
        self.end_date = _aware(fields.pop("end_date", None))
        self.clear_number: int = int(fields.pop("clear_number", 0) or 0)
        self.id: int | None = fields.pop("id", None)
        if fields:
            raise TypeError(f"unknown DAG run fields: {', '.join(sorted(fields))}")
        self._tis = list(task_instances)
        for ti in self._tis:
            ti._dag_run = self

    @property
    def execution_date(self) -> datetime | None:
        """Airflow 2 name of :attr:`logical_date`."""
        return self.logical_date

    @property
    def external_trigger(self) -> bool:
        """Airflow 2: whether the run was triggered rather than scheduled."""
        return self.run_type == "manual"

    def get_task_instances(
        self, state: str | Collection[str | None] | None = None, **_: Any
    ) -> list[CallbackTaskInstance]:
        """The run's task instances (by task id, then map index), optionally only those in
        ``state`` (one state or several). Keyword arguments such as ``session`` are ignored."""
        if state is None:
            return list(self._tis)
        wanted = {str(state)} if isinstance(state, str) else {str(s) for s in state}
        return [ti for ti in self._tis if ti.state is not None and ti.state.value in wanted]

    def get_task_instance(
        self, task_id: str, session: Any = None, *, map_index: int = -1
    ) -> CallbackTaskInstance | None:
        """The task instance of ``task_id`` (at ``map_index``), or None."""
        for ti in self._tis:
            if ti.task_id == task_id and ti.map_index == map_index:
                return ti
        return None

    def __repr__(self) -> str:
        return f"<CallbackDagRun {self.dag_id} run_id={self.run_id!r} state={self.state}>"


@dataclass
class CallbackContext:
    """What :func:`build_callback_context` made: the context, and what it had to leave out."""

    context: Context
    ti: CallbackTaskInstance | None = None
    notes: list[str] = field(default_factory=list)


def pick_task_instance(
    task_instances: Iterable[CallbackTaskInstance],
    *,
    failure: bool,
    task_order: Sequence[str] = (),
) -> CallbackTaskInstance | None:
    """The instance whose context a DAG callback gets (see the module docstring).

    ``task_order`` is the DAG's task ids in topological order: "last" means the instance of
    the task furthest downstream (highest map index); between failed instances, the one that
    ended last. End dates alone cannot order the others: an instance the scheduler finishes
    itself (an empty task, a skip) is stamped with the scheduler's clock, not the worker's.
    """
    position = {task_id: i for i, task_id in enumerate(task_order)}
    candidates = [ti for ti in task_instances if ti.state is not TaskState.REMOVED]
    failed = [ti for ti in candidates if ti.state is TaskState.FAILED] if failure else []

    def downstream_most(ti: CallbackTaskInstance) -> tuple[int, str, int]:
        return position.get(ti.task_id, -1), ti.task_id, ti.map_index

    def ended_last(ti: CallbackTaskInstance) -> tuple[float, tuple[int, str, int]]:
        when = ti.end_date.timestamp() if ti.end_date is not None else float("-inf")
        return when, downstream_most(ti)

    if failed:
        return max(failed, key=ended_last)
    return max(candidates, key=downstream_most, default=None)


def build_callback_context(
    dag: Any,
    *,
    run: CallbackDagRun,
    kind: str,
    reason: str,
    xcom: XComReader | None = None,
    xcom_missing: str | None = None,
    get_variable: Callable[[str], Any] | None = None,
    get_connection: Callable[[str], Any] | None = None,
) -> CallbackContext:
    """The context for the DAG's ``on_<kind>_callback`` (see the module docstring).

    ``xcom`` serves ``ti.xcom_pull`` (``xcom_missing`` says why there is none);
    ``get_variable``/``get_connection`` back ``var`` and ``conn`` (default: the lookup chain
    of :mod:`tradewind.sdk.secrets`). Never raises.
    """
    notes: list[str] = []
    try:
        order = [t.task_id for t in dag.topological_sort()]
    except Exception:  # not a DAG Tradewind knows: fall back to task ids
        order = []
    ti = pick_task_instance(run.get_task_instances(), failure=kind == "failure", task_order=order)
    for each in run.get_task_instances():
        each._xcom = xcom
        if xcom_missing:
            each._xcom_missing = xcom_missing
    task = None
    if ti is None:
        notes.append("the run has no task instance to take the context from")
    else:
        task = getattr(dag, "task_dict", {}).get(ti.task_id)
        ti.task = task
        if task is None:
            notes.append(f"task {ti.task_id!r} is no longer in the DAG: the context has no task")
    try:
        context = _template_context(dag, task, ti, run, reason, notes, get_variable, get_connection)
    except Exception as exc:  # a broken DAG attribute must not cost the callback its run
        notes.append(f"the template context could not be built ({type(exc).__name__}: {exc})")
        context = Context(dag=dag, dag_run=run, run_id=run.run_id, reason=reason)
        if ti is not None:
            context.update(ti=ti, task_instance=ti, task=task)
    if ti is not None:
        ti._context = context
    return CallbackContext(context=context, ti=ti, notes=notes)


def _template_context(
    dag: Any,
    task: Any,
    ti: CallbackTaskInstance | None,
    run: CallbackDagRun,
    reason: str,
    notes: list[str],
    get_variable: Callable[[str], Any] | None,
    get_connection: Callable[[str], Any] | None,
) -> Context:
    from tradewind.sdk import secrets
    from tradewind.sdk.context import build_context
    from tradewind.sdk.params import merge_params

    try:
        params = merge_params(getattr(dag, "params", None), getattr(task, "params", None), run.conf)
    except Exception as exc:
        notes.append(f"params do not validate, so the context has none ({exc})")
        params = {}
    return build_context(
        dag=dag,
        task=task,
        ti=ti,
        dag_run=run,
        params=params,
        get_variable=get_variable or secrets.get_variable,
        get_connection=get_connection or secrets.get_connection,
        extra={"reason": reason},
    )


def _aware(value: Any) -> datetime | None:
    """A datetime (or ISO text) as aware UTC; naive values are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: The ``dag_run`` columns a :class:`CallbackDagRun` takes.
RUN_FIELDS = (
    "id", "dag_id", "run_id", "run_type", "state", "logical_date", "data_interval_start",
    "data_interval_end", "run_after", "conf", "queued_at", "start_date", "end_date",
    "clear_number",
)  # fmt: skip
#: The ``task_instance`` columns a :class:`CallbackTaskInstance` takes.
TI_FIELDS = (
    "dag_id", "run_id", "task_id", "map_index", "state", "try_number", "max_tries",
    "start_date", "end_date", "duration", "operator", "pool", "queue", "priority_weight",
    "hostname", "last_error",
)  # fmt: skip


def run_from_fields(
    fields: Mapping[str, Any], task_instances: Iterable[Mapping[str, Any]] = ()
) -> CallbackDagRun:
    """A :class:`CallbackDagRun` from plain fields (a row's columns, or JSON); fields it does
    not know are ignored."""
    tis = [
        CallbackTaskInstance(**{k: row[k] for k in TI_FIELDS if k in row}) for row in task_instances
    ]
    kwargs = {k: v for k, v in fields.items() if k in RUN_FIELDS}
    return CallbackDagRun(task_instances=tis, **kwargs)
