"""Run one task try in this process and report how it ended.

:func:`run_task` is the whole life of a try: build the context, unmap a mapped task for its
map index, render templates, run ``pre_execute``, ``on_execute_callback``, ``execute`` (under
``execution_timeout``) and ``post_execute``, push the return value as XCom, turn the outcome
into a state, and run the matching callbacks. It never raises (except ``KeyboardInterrupt``):
whatever happens ends up in the returned :class:`TaskOutcome`. Every executor runs tasks
through this function; only the :class:`~tradewind.runtime.client.TaskClient` transport
differs::

    client = InMemoryTaskClient()
    run = RunInfo(dag_id="etl", run_id="manual__1", run_type="manual")
    outcome = run_task(
        dag.get_task("extract"), dag=dag, run=run,
        ti=TaskInstanceInfo(dag_id="etl", task_id="extract", run_id="manual__1"),
        client=client,
    )
    outcome.state  # TaskState.SUCCESS

Outcome rules: :class:`~tradewind.errors.TaskSkipped` -> ``skipped``;
:class:`~tradewind.errors.TaskFailed` -> ``failed`` (no retry); any other exception (including
:class:`~tradewind.errors.TaskTimeout`, template and param errors) -> ``up_for_retry`` while
``try_number <= max_tries`` (``max_tries`` defaults to the task's ``retries``), else ``failed``.

While the try runs, records of the ``tradewind.task`` logger have every masked secret replaced
by ``***``, and connections/variables looked up through :mod:`tradewind.sdk.secrets` (as hooks
do) are also looked up through the client.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradewind.errors import MappingError, TaskFailed, TaskSkipped, TaskTimeout, XComError
from tradewind.runtime.client import TaskClient, lookup_connection, lookup_variable
from tradewind.sdk.params import NOTSET, ArgNotSet
from tradewind.state import TaskState

if TYPE_CHECKING:
    from tradewind.sdk.abstractoperator import AbstractOperator
    from tradewind.sdk.connection import Connection
    from tradewind.sdk.context import Context
    from tradewind.sdk.dag_definition import DAG
    from tradewind.sdk.mapping import MappedOperator

__all__ = [
    "XCOM_RETURN_KEY",
    "RunInfo",
    "RuntimeTaskInstance",
    "TaskInstanceInfo",
    "TaskOutcome",
    "run_task",
]

XCOM_RETURN_KEY = "return_value"
#: Longest rendered field kept in :attr:`TaskOutcome.rendered_fields`.
MAX_RENDERED_FIELD_LENGTH = 4096

log = logging.getLogger("tradewind.task")


# -- plain records ------------------------------------------------------------------------------


@dataclass
class RunInfo:
    """The DAG run a try belongs to; it is the ``dag_run`` the task context shows.

    ``run_type`` is ``"scheduled"``, ``"manual"``, ``"backfill"`` or ``"asset_triggered"``.
    A run may have no logical date (a manual run triggered without one).
    """

    dag_id: str
    run_id: str
    run_type: str = "manual"
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    conf: dict[str, Any] = field(default_factory=dict)
    start_date: datetime | None = None


@dataclass
class TaskInstanceInfo:
    """Which task instance and try to run. ``max_tries`` None means the task's ``retries``."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1
    max_tries: int | None = None


@dataclass
class TaskOutcome:
    """How a try ended.

    ``state`` is SUCCESS, SKIPPED, FAILED or UP_FOR_RETRY. ``return_value`` is what
    ``execute`` returned (pushed as XCom unless ``do_xcom_push=False`` or it is None).
    ``error``/``traceback`` describe the exception that ended the try (secrets masked);
    a skip keeps its reason in ``error`` too. ``skipped_task_ids`` are the tasks the try asked
    to skip (branching, short-circuit). ``duration`` is in seconds. ``rendered_fields`` holds
    each templated field after rendering, as masked text, for display.
    """

    state: TaskState
    return_value: Any = None
    error: str | None = None
    traceback: str | None = None
    skipped_task_ids: list[str] = field(default_factory=list)
    duration: float = 0.0
    rendered_fields: dict[str, str] = field(default_factory=dict)


# -- the task instance tasks see ------------------------------------------------------------------


class RuntimeTaskInstance:
    """The ``ti`` / ``task_instance`` of the context while a try runs.

    Attributes: ``dag_id``, ``task_id``, ``run_id``, ``map_index``, ``try_number``,
    ``max_tries``, ``task`` (the concrete operator being run), ``start_date``.
    """

    def __init__(
        self,
        info: TaskInstanceInfo,
        *,
        task: Any,
        client: TaskClient,
        max_tries: int,
        start_date: datetime | None = None,
    ) -> None:
        self.dag_id = info.dag_id
        self.task_id = info.task_id
        self.run_id = info.run_id
        self.map_index = info.map_index
        self.try_number = info.try_number
        self.max_tries = max_tries
        self.task = task
        self.start_date = start_date
        self._client = client
        self._skipped: list[str] = []
        self._context: Context | None = None

    @property
    def log(self) -> logging.Logger:
        """The task log (logger ``tradewind.task``)."""
        return log

    @property
    def skipped_task_ids(self) -> list[str]:
        """Task ids this try asked to skip, in the order asked."""
        return list(self._skipped)

    def get_template_context(self) -> Context:
        """The context of this try."""
        if self._context is None:
            from tradewind.errors import TradewindError

            raise TradewindError(f"task {self.task_id!r} has no context yet")
        return self._context

    # -- XCom ------------------------------------------------------------------------------
    def xcom_push(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` for this task instance (JSON-like values only)."""
        if not isinstance(key, str) or not key:
            raise XComError(
                f"XCom key must be a non-empty string, got {key!r}", task_id=self.task_id
            )
        self._client.set_xcom(self.dag_id, self.run_id, self.task_id, key, self.map_index, value)

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
        """Read XCom values pushed in this run (Airflow 3 semantics).

        * ``task_ids=None`` reads this task's own value (at its own map index).
        * One task id, ``map_indexes`` unset: the value of an unmapped task, the list of every
          instance's value for a mapped one, None when nothing was pushed (``default`` is not
          used here, as in Airflow 3).
        * Several task ids and/or explicit ``map_indexes``: a list in the order asked, with
          ``default`` for missing values; one task id with one int index gives one value.

        ``dag_id``/``run_id`` default to the current ones; ``key=None`` means
        ``return_value``. ``include_prior_dates`` is accepted for compatibility but only this
        run is read.
        """
        from tradewind.sdk.xcom_pull import pull

        return pull(
            self._client,
            dag_id=dag_id or self.dag_id,
            run_id=run_id or self.run_id,
            own_task_id=self.task_id,
            own_map_index=self.map_index,
            task_ids=task_ids,
            key=key,
            map_indexes=map_indexes,
            default=default,
        )

    # -- skipping --------------------------------------------------------------------------
    def skip_downstream(self, task_ids: str | Iterable[str]) -> None:
        """Declare tasks to mark skipped when this try ends (used by branch operators)."""
        ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
        for tid in ids:
            if tid not in self._skipped:
                self._skipped.append(tid)

    def __repr__(self) -> str:
        index = f", map_index={self.map_index}" if self.map_index >= 0 else ""
        return (
            f"<RuntimeTaskInstance {self.dag_id}.{self.task_id} run={self.run_id!r}"
            f"{index} try={self.try_number}>"
        )


# -- secrets and logs while a try runs --------------------------------------------------------------


class _RedactingFilter(logging.Filter):
    """Replaces masked secrets in task log records (message and traceback) with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tradewind.sdk.secrets import redact

        try:
            message = record.getMessage()
        except Exception:
            return True  # let logging report the broken record as it normally does
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class _ClientSecretsBackend:
    """Makes :mod:`tradewind.sdk.secrets` (used by hooks and ``Variable.get``) ask the client.

    A client may itself fall back to :mod:`tradewind.sdk.secrets`; the per-thread guard stops
    that from coming back here.
    """

    def __init__(self, client: TaskClient) -> None:
        self._client = client
        self._busy = threading.local()

    def _guarded(self, fn: Callable[[], Any]) -> Any:
        if getattr(self._busy, "active", False):
            return None
        self._busy.active = True
        try:
            return fn()
        finally:
            self._busy.active = False

    def get_connection(self, conn_id: str) -> Connection | None:
        return self._guarded(lambda: lookup_connection(self._client, conn_id))

    def get_variable(self, key: str) -> str | None:
        return self._guarded(lambda: lookup_variable(self._client, key))


# -- preparing the task -------------------------------------------------------------------------------


class _Resolved:
    """A value already taken from XCom: rendering returns it as is instead of templating it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def resolve(self, context: Any) -> Any:
        return self.value


def _is_reference(value: Any) -> bool:
    from tradewind.sdk.xcom_arg import MappedArgument, XComArg

    return isinstance(value, XComArg | MappedArgument)


def _keys_from_references(
    mapped: MappedOperator, kwargs: Mapping[str, Any], index: int
) -> set[str]:
    from tradewind.sdk.mapping import DictOfListsExpandInput, ListOfDictsExpandInput

    ei = mapped.expand_input
    if isinstance(ei, DictOfListsExpandInput):
        return {k for k, v in ei.value.items() if _is_reference(v)}
    if isinstance(ei, ListOfDictsExpandInput):
        if _is_reference(ei.value):
            return set(kwargs)
        item = ei.value[index]
        if _is_reference(item):
            return set(kwargs)
        return {k for k, v in item.items() if _is_reference(v)}
    return set()


def _materialize(task: AbstractOperator, context: Context, map_index: int) -> Any:
    """The operator object this try runs: a MappedOperator unmapped for ``map_index``, else a
    shallow copy (rendering and execute then never change the DAG's own task object)."""
    from tradewind.sdk.mapping import MappedOperator

    if not isinstance(task, MappedOperator):
        return _copy_task(task)
    if map_index < 0:
        raise MappingError(
            f"task {task.task_id!r} is mapped: each try needs a map_index >= 0",
            task_id=task.task_id,
        )
    kwargs = task.expand_input.resolve_for_index(context, map_index)
    op = task.unmap(kwargs)
    # Values read from XCom are data: they must not be rendered as templates.
    protected = _keys_from_references(task, kwargs, map_index)
    if task.mapped_into:
        container = getattr(op, task.mapped_into, None)
        if isinstance(container, dict):
            for k in protected & set(container):
                container[k] = _Resolved(container[k])
    else:
        for k in protected & set(op.template_fields):
            setattr(op, k, _Resolved(getattr(op, k)))
    return op


# Per operator class: whether copy.copy of its instances comes down to a new instance with the
# same __dict__ (no __copy__, __reduce__, __getstate__/__setstate__ or slots of its own).
_plain_copy: dict[type, bool] = {}


def _copies_plainly(cls: type) -> bool:
    plain = _plain_copy.get(cls)
    if plain is None:
        plain = (
            getattr(cls, "__copy__", None) is None
            and getattr(cls, "__reduce_ex__", None) is object.__reduce_ex__
            and getattr(cls, "__reduce__", None) is object.__reduce__
            and getattr(cls, "__getstate__", None) is object.__getstate__
            and getattr(cls, "__setstate__", None) is None
            and not any(vars(k).get("__slots__") for k in cls.__mro__)
        )
        _plain_copy[cls] = plain
    return plain


def _copy_task(task: Any) -> Any:
    """``copy.copy(task)``, without copy's generic machinery for the usual operator class."""
    cls: Any = type(task)
    if not _copies_plainly(cls) or not hasattr(task, "__dict__"):
        return copy.copy(task)
    new = cls.__new__(cls)
    new.__dict__.update(task.__dict__)
    return new


def _unwrap_resolved(task: Any) -> None:
    """Undo any :class:`_Resolved` left behind by an operator that renders its own way."""
    for name in task.template_fields:
        value = getattr(task, name, None)
        if isinstance(value, _Resolved):
            setattr(task, name, value.value)
        elif isinstance(value, dict):
            for k, v in list(value.items()):
                if isinstance(v, _Resolved):
                    value[k] = v.value


def _rendered_fields(task: Any) -> dict[str, str]:
    from tradewind.sdk.secrets import redact

    out: dict[str, str] = {}
    for name in task.template_fields:
        value = getattr(task, name, None)
        text = value if isinstance(value, str) else repr(value)
        if len(text) > MAX_RENDERED_FIELD_LENGTH:
            text = text[:MAX_RENDERED_FIELD_LENGTH] + "... (truncated)"
        out[name] = redact(text)
    return out


# -- running ----------------------------------------------------------------------------------------


def _hooks(task: Any, name: str) -> list[Callable[..., Any]]:
    """``pre_execute``/``post_execute``: the constructor argument and/or an overriding method."""
    found: list[Callable[..., Any]] = []
    given = task.__dict__.get(name)
    if callable(given):
        found.append(given)
    method = getattr(type(task), name, None)
    if callable(method):
        found.append(method.__get__(task, type(task)))
    return found


def _callable_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _run_callbacks(task: Any, attr: str, context: Context) -> None:
    """Call each callback in ``task.<attr>``; an exception is logged and swallowed."""
    callbacks = getattr(task, attr, None)
    if not callbacks:
        return
    for callback in [callbacks] if callable(callbacks) else list(callbacks):
        try:
            callback(context)
        except KeyboardInterrupt:
            raise
        except BaseException:
            log.exception(
                "%s %s of task %r failed; the error is ignored",
                attr,
                _callable_name(callback),
                getattr(task, "task_id", "?"),
            )


def _kill_quietly(task: Any) -> None:
    try:
        task.on_kill()
    except Exception:
        log.exception("on_kill of task %r failed", getattr(task, "task_id", "?"))


def _timeout_error(task: Any) -> TaskTimeout:
    return TaskTimeout(
        f"task {task.task_id!r} exceeded its execution_timeout of {task.execution_timeout}"
    )


def _execute_with_alarm(task: Any, context: Context, seconds: float) -> Any:
    def on_alarm(signum: int, frame: Any) -> None:
        raise _timeout_error(task)

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return task.execute(context)
    except TaskTimeout:
        _kill_quietly(task)
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:
            # Someone else (a test-runner timeout, say) had an alarm pending: put it back.
            left = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)


def _execute_in_thread(task: Any, context: Context, seconds: float) -> Any:
    """Off the main thread no signal can interrupt execute: run it in a helper thread and stop
    waiting at the deadline (the thread is abandoned after ``on_kill``)."""
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["result"] = ctx.run(task.execute, context)
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"tradewind-task-{task.task_id}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        _kill_quietly(task)
        raise _timeout_error(task)
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _execute(task: Any, context: Context) -> Any:
    for hook in _hooks(task, "pre_execute"):
        hook(context)
    _run_callbacks(task, "on_execute_callback", context)
    timeout = task.execution_timeout
    if timeout is None:
        result = task.execute(context)
    else:
        seconds = timeout.total_seconds()
        if seconds <= 0:
            raise _timeout_error(task)
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            result = _execute_with_alarm(task, context, seconds)
        else:
            result = _execute_in_thread(task, context, seconds)
    for hook in _hooks(task, "post_execute"):
        hook(context, result)
    return result


def _push_return_value(task: Any, ti: RuntimeTaskInstance, value: Any) -> None:
    if value is None or not task.do_xcom_push:
        return
    if task.multiple_outputs:
        if not isinstance(value, Mapping):
            raise XComError(
                f"multiple_outputs=True needs the task to return a dict, got {type(value).__name__}",
                task_id=task.task_id,
                key=XCOM_RETURN_KEY,
            )
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise XComError(
                f"multiple_outputs=True needs str keys, got {', '.join(map(repr, bad))}",
                task_id=task.task_id,
                key=XCOM_RETURN_KEY,
            )
        for k, v in value.items():
            ti.xcom_push(k, v)
    ti.xcom_push(XCOM_RETURN_KEY, value)


def _build_context(
    *,
    dag: DAG,
    task: Any,
    run: RunInfo,
    ti: RuntimeTaskInstance,
    client: TaskClient,
    params: Mapping[str, Any],
    now: datetime | None,
    extra_context: Mapping[str, Any] | None,
) -> Context:
    from tradewind.sdk.context import build_context

    extra: dict[str, Any] = {}
    if now is not None:
        extra["now"] = now
    extra.update(extra_context or {})
    context = build_context(
        dag=dag,
        task=task,
        ti=ti,
        dag_run=run,
        params=params,
        get_variable=client.get_variable,
        get_connection=client.get_connection,
        extra=extra,
    )
    ti._context = context
    return context


def _use_task(context: Context, ti: RuntimeTaskInstance, task: Any) -> None:
    ti.task = task
    context["task"] = task
    context["inlets"] = list(getattr(task, "inlets", None) or [])
    context["outlets"] = list(getattr(task, "outlets", None) or [])


_CALLBACK_FOR_STATE = {
    TaskState.SUCCESS: "on_success_callback",
    TaskState.SKIPPED: "on_skipped_callback",
    TaskState.UP_FOR_RETRY: "on_retry_callback",
    TaskState.FAILED: "on_failure_callback",
}


def run_task(
    task: AbstractOperator,
    *,
    dag: DAG,
    run: RunInfo,
    ti: TaskInstanceInfo,
    client: TaskClient,
    now: datetime | None = None,
    extra_context: Mapping[str, Any] | None = None,
) -> TaskOutcome:
    """Run one try of ``task`` and return its :class:`TaskOutcome` (see the module docstring).

    ``now`` (the try's start time) is injected into the context as ``now`` when given, for
    time-dependent operators such as ``LatestOnlyOperator``. ``extra_context`` adds or
    overrides context keys (the engine passes values it knows from the timetable, such as
    ``next_data_interval_end`` and ``prev_data_interval_start_success``).
    """
    from tradewind.sdk import secrets
    from tradewind.sdk.timezone import coerce_datetime, utcnow

    started = time.monotonic()
    max_tries = ti.max_tries if ti.max_tries is not None else int(getattr(task, "retries", 0) or 0)
    start_date = coerce_datetime(now) if now is not None else utcnow()
    runtime_ti = RuntimeTaskInstance(
        ti, task=task, client=client, max_tries=max_tries, start_date=start_date
    )
    redactor = _RedactingFilter()
    backend = _ClientSecretsBackend(client)
    log.addFilter(redactor)
    secrets.register_backend(backend)
    try:
        outcome = _run(task, dag, run, ti, runtime_ti, client, now, extra_context)
    finally:
        secrets.unregister_backend(backend)
        log.removeFilter(redactor)
    outcome.duration = time.monotonic() - started
    return outcome


def _run(
    task: AbstractOperator,
    dag: DAG,
    run: RunInfo,
    ti: TaskInstanceInfo,
    runtime_ti: RuntimeTaskInstance,
    client: TaskClient,
    now: datetime | None,
    extra_context: Mapping[str, Any] | None,
) -> TaskOutcome:
    from tradewind.sdk.context import set_current_context
    from tradewind.sdk.params import merge_params
    from tradewind.sdk.secrets import redact

    index = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
    log.info(
        "Running %s.%s%s, run %s, try %d of %d",
        ti.dag_id,
        ti.task_id,
        index,
        ti.run_id,
        ti.try_number,
        runtime_ti.max_tries + 1,
    )
    context: Context | None = None
    concrete: Any = task
    outcome = TaskOutcome(state=TaskState.SUCCESS)
    failure: BaseException | None = None
    make_context = functools.partial(
        _build_context, dag=dag, task=task, run=run, ti=runtime_ti, client=client, now=now,
        extra_context=extra_context,
    )  # fmt: skip
    try:
        dag_params, task_params = getattr(dag, "params", None), getattr(task, "params", None)
        if dag_params or task_params or run.conf:
            params = merge_params(dag_params, task_params, run.conf)
        else:
            params = {}  # what merging nothing gives, without the work
        context = make_context(params=params)
        with set_current_context(context):
            concrete = _materialize(task, context, ti.map_index)
            _use_task(context, runtime_ti, concrete)
            concrete.render_template_fields(context)
            _unwrap_resolved(concrete)
            outcome.rendered_fields = _rendered_fields(concrete)
            outcome.return_value = _execute(concrete, context)
            # The task's own work is done: a client that can send the pushes from here on
            # together with the outcome saves a round trip per push.
            hold = getattr(client, "hold_xcom_pushes", None)
            if hold is not None:
                hold()
            _push_return_value(concrete, runtime_ti, outcome.return_value)
    except KeyboardInterrupt:
        _kill_quietly(concrete)
        raise
    except TaskSkipped as exc:
        outcome.state = TaskState.SKIPPED
        outcome.error = redact(str(exc)) or None
        log.info("Task skipped%s", f": {exc}" if str(exc) else "")
    except BaseException as exc:
        failure = exc
        retry = not isinstance(exc, TaskFailed) and ti.try_number <= runtime_ti.max_tries
        outcome.state = TaskState.UP_FOR_RETRY if retry else TaskState.FAILED
        outcome.error = redact(f"{type(exc).__name__}: {exc}")
        outcome.traceback = redact(traceback.format_exc())
        log.error("Task failed (%s): %s", outcome.state.value, outcome.error, exc_info=exc)
    else:
        log.info("Task succeeded")
    outcome.skipped_task_ids = runtime_ti.skipped_task_ids

    if context is None:
        # Params did not validate: callbacks still get a context, without params.
        try:
            context = make_context(params={})
        except BaseException:
            log.exception("cannot build a context for the callbacks of task %r", ti.task_id)
            return outcome
    if failure is not None:
        context["exception"] = failure
    with set_current_context(context):
        _run_callbacks(concrete, _CALLBACK_FOR_STATE[outcome.state], context)
    return outcome
