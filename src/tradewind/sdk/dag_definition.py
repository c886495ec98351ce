"""``DAG``: a pipeline — tasks, their dependencies, a schedule and run-level settings.

A DAG can be defined three ways, all equivalent::

    with DAG("daily_load", schedule="@daily", start_date=datetime(2024, 1, 1)):
        extract >> load

    dag = DAG("daily_load", schedule="@daily")
    EmptyOperator(task_id="start", dag=dag)

    @dag(schedule="@daily")
    def daily_load(): ...
    daily_load()

Problems found while building (duplicate task ids, unknown trigger rules, a bad schedule, a
start_date after the end_date, invalid mapping) are collected; :meth:`DAG.validate` (run when a
``with`` block or a ``@dag`` function ends, and by DAG processing) adds cycle detection and raises
one :class:`~tradewind.errors.DagDefinitionError` listing them all.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta, tzinfo
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tradewind.errors import DagDefinitionError, DagProblem, InvalidArgumentError
from tradewind.sdk import _context_stack
from tradewind.sdk.taskgroup import TaskGroup

if TYPE_CHECKING:
    from tradewind.sdk.abstractoperator import AbstractOperator
    from tradewind.sdk.params import ParamsDict

_DAG_ID_RE = re.compile(r"^[\w.-]+$")
# Frames in this folder are the SDK's own, never the user's DAG file.
_SDK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

#: The schedule used when none is given: run only when triggered.
DEFAULT_SCHEDULE = None


class DAG:
    """A directed acyclic graph of tasks with a schedule. See the module docstring.

    Arguments (keyword, but ``dag_id`` may be positional): ``dag_id``, ``description``,
    ``schedule`` (None, a cron string or preset such as ``"@daily"``, ``"@once"``,
    ``"@continuous"``, a ``timedelta``/``relativedelta``, a timetable object, or a list of
    assets), ``start_date``/``end_date`` (naive values are in the default timezone, UTC),
    ``catchup`` (default False), ``default_args``, ``params``, ``tags``, ``max_active_runs``,
    ``max_active_tasks`` (per run), ``dagrun_timeout``, ``template_searchpath``,
    ``user_defined_macros``, ``user_defined_filters``, ``render_template_as_native_obj``,
    ``on_success_callback``, ``on_failure_callback``, ``doc_md``, ``is_paused_upon_creation``,
    ``owner_links``, ``access_control``, ``dag_display_name``, ``jinja_environment_kwargs``,
    ``max_consecutive_failed_dag_runs``, ``fail_fast``. ``max_active_runs`` and
    ``max_active_tasks`` left as None take the configured defaults when the engine runs.
    """

    def __init__(
        self,
        dag_id: str,
        *,
        description: str | None = None,
        schedule: Any = DEFAULT_SCHEDULE,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = False,
        default_args: dict[str, Any] | None = None,
        params: dict[str, Any] | ParamsDict | None = None,
        tags: Collection[str] | None = None,
        max_active_runs: int | None = None,
        max_active_tasks: int | None = None,
        max_consecutive_failed_dag_runs: int = 0,
        dagrun_timeout: timedelta | None = None,
        template_searchpath: str | Iterable[str] | None = None,
        template_undefined: type | None = None,
        user_defined_macros: dict[str, Any] | None = None,
        user_defined_filters: dict[str, Callable[..., Any]] | None = None,
        render_template_as_native_obj: bool = False,
        jinja_environment_kwargs: dict[str, Any] | None = None,
        on_success_callback: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        on_failure_callback: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        doc_md: str | None = None,
        is_paused_upon_creation: bool | None = None,
        owner_links: dict[str, str] | None = None,
        access_control: dict[str, Any] | None = None,
        dag_display_name: str | None = None,
        fail_fast: bool = False,
        auto_register: bool = True,
    ) -> None:
        from tradewind.sdk.params import ParamsDict
        from tradewind.sdk.schedule import validate_schedule
        from tradewind.sdk.timezone import coerce_datetime, get_default_timezone

        self._problems: list[DagProblem] = []
        if not isinstance(dag_id, str) or not _DAG_ID_RE.match(dag_id) or len(dag_id) > 250:
            raise InvalidArgumentError(
                f"dag_id must be a string of letters, digits, '_', '-' and '.' (at most 250), got {dag_id!r}",
                argument="dag_id",
            )
        self.dag_id = dag_id
        self.description = description
        self.default_args = dict(default_args or {})
        self.fileloc = _caller_file()
        self.relative_fileloc: str | None = None

        # start_date may come through default_args, as older DAG files write it.
        start_date = start_date if start_date is not None else self.default_args.get("start_date")
        end_date = end_date if end_date is not None else self.default_args.get("end_date")
        default_tz = get_default_timezone()
        self.start_date = (
            coerce_datetime(start_date, default_tz) if start_date is not None else None
        )
        self.end_date = coerce_datetime(end_date, default_tz) if end_date is not None else None
        # The DAG's timezone (used for cron) is start_date's: the user's aware zone, or the
        # configured default for a naive one.
        self.timezone: tzinfo = (
            self.start_date.tzinfo if self.start_date and self.start_date.tzinfo else default_tz
        )
        if self.start_date and self.end_date and self.start_date > self.end_date:
            self.add_problem(
                DagProblem(
                    "bad_dates",
                    f"start_date {self.start_date.isoformat()} is after end_date {self.end_date.isoformat()}",
                )
            )
        self.schedule = schedule
        problem = validate_schedule(schedule)
        if problem:
            self.add_problem(DagProblem("bad_schedule", problem))
        self.catchup = bool(catchup)
        all_params = dict(self.default_args.get("params") or {})
        all_params.update(params.dump() if isinstance(params, ParamsDict) else (params or {}))
        if isinstance(params, ParamsDict):
            self.params = params.copy()
            for k, v in all_params.items():
                if k not in self.params:
                    self.params[k] = v
        else:
            self.params = ParamsDict(all_params)
        self.tags: list[str] = sorted(set(tags or ()))
        self.max_active_runs = max_active_runs
        self.max_active_tasks = max_active_tasks
        self.max_consecutive_failed_dag_runs = max_consecutive_failed_dag_runs
        if dagrun_timeout is not None and not isinstance(dagrun_timeout, timedelta):
            raise InvalidArgumentError(
                f"DAG {dag_id!r}: dagrun_timeout must be a timedelta, got {dagrun_timeout!r}",
                argument="dagrun_timeout",
            )
        self.dagrun_timeout = dagrun_timeout
        if isinstance(template_searchpath, str):
            template_searchpath = [template_searchpath]
        self.template_searchpath: list[str] = list(template_searchpath or [])
        self.template_undefined = template_undefined
        self.user_defined_macros = dict(user_defined_macros or {})
        self.user_defined_filters = dict(user_defined_filters or {})
        self.render_template_as_native_obj = render_template_as_native_obj
        self.jinja_environment_kwargs = dict(jinja_environment_kwargs or {})
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.doc_md = doc_md
        self.is_paused_upon_creation = is_paused_upon_creation
        self.owner_links = dict(owner_links or {})
        self.access_control = access_control
        self.dag_display_name = dag_display_name or dag_id
        self.fail_fast = fail_fast

        self.task_dict: dict[str, AbstractOperator] = {}
        self.task_group = TaskGroup(None, dag=self, _is_root=True)
        self.edge_info: dict[str, dict[str, dict[str, Any]]] = {}
        self._template_env: Any = None
        if auto_register:
            _context_stack.register_dag(self)

    # -- problems and validation ---------------------------------------------------------------
    def add_problem(self, problem: DagProblem) -> None:
        """Record a definition problem, reported by :meth:`validate` with all the others."""
        self._problems.append(problem)

    def problems(self) -> list[DagProblem]:
        """Every problem found so far, plus cycles."""
        from tradewind.sdk.validation import find_cycle

        found = list(self._problems)
        cycle = find_cycle(self)
        if cycle:
            path = " >> ".join([*cycle, cycle[0]])
            found.append(DagProblem("cycle", f"cycle between tasks: {path}", task_id=cycle[0]))
        return found

    def validate(self) -> None:
        """Raise :class:`DagDefinitionError` listing every problem, if there are any."""
        found = self.problems()
        if found:
            raise DagDefinitionError(self.dag_id, found)

    # -- tasks ---------------------------------------------------------------------------------
    def add_task(self, task: AbstractOperator) -> None:
        """Add ``task`` to this DAG (done by operator constructors)."""
        existing = self.task_dict.get(task.task_id)
        if existing is task:
            return
        if existing is not None:
            self.add_problem(
                DagProblem(
                    "duplicate_task_id",
                    f"task id {task.task_id!r} is used twice",
                    task_id=task.task_id,
                    location=_caller_location(),
                )
            )
            task.dag = self
            return
        task.dag = self
        self.task_dict[task.task_id] = task
        group = task.task_group
        if group is None or group.dag is not self:
            group = self.task_group
        group.add(task)
        if task.start_date is None and self.start_date is not None:
            task.start_date = self.start_date
        if task.end_date is None and self.end_date is not None:
            task.end_date = self.end_date

    def add_tasks(self, tasks: Iterable[AbstractOperator]) -> None:
        for t in tasks:
            self.add_task(t)

    @property
    def tasks(self) -> list[AbstractOperator]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    def get_task(self, task_id: str) -> AbstractOperator:
        """The task with this id; a KeyError-like :class:`~tradewind.errors.NotFound` otherwise."""
        try:
            return self.task_dict[task_id]
        except KeyError:
            from tradewind.errors import NotFound

            raise NotFound("task", f"{self.dag_id}.{task_id}") from None

    @property
    def roots(self) -> list[AbstractOperator]:
        """Tasks with no upstream task."""
        return [t for t in self.task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[AbstractOperator]:
        """Tasks with no downstream task."""
        return [t for t in self.task_dict.values() if not t.downstream_task_ids]

    def topological_sort(self) -> list[AbstractOperator]:
        """Tasks ordered so each comes after its upstream tasks (stable in definition order)."""
        from tradewind.sdk.validation import topological_order

        return [self.task_dict[t] for t in topological_order(self)]

    def set_edge_info(
        self, upstream_task_id: str, downstream_task_id: str, info: dict[str, Any]
    ) -> None:
        """Attach display information (a label) to an edge."""
        self.edge_info.setdefault(upstream_task_id, {})[downstream_task_id] = info

    def get_edge_info(self, upstream_task_id: str, downstream_task_id: str) -> dict[str, Any]:
        return self.edge_info.get(upstream_task_id, {}).get(downstream_task_id, {})

    @property
    def owner(self) -> str:
        """The owners of the DAG's tasks, comma-separated."""
        return ", ".join(sorted({getattr(t, "owner", "") for t in self.task_dict.values()} - {""}))

    @property
    def folder(self) -> str:
        return os.path.dirname(self.fileloc)

    # -- templates -----------------------------------------------------------------------------
    def get_template_env(self) -> Any:
        """The Jinja environment for this DAG's templates (built once)."""
        if self._template_env is None:
            from tradewind.sdk.templating import create_template_env

            searchpath = [*self.template_searchpath, self.folder]
            # Only a lenient ``template_undefined`` (jinja2's plain Undefined or a subclass
            # that is not strict) turns strictness off; StrictUndefined is the default.
            undefined = self.template_undefined
            strict = undefined is None or "Strict" in getattr(undefined, "__name__", "Strict")
            env = create_template_env(
                searchpath=tuple(searchpath),
                native=self.render_template_as_native_obj,
                user_defined_macros=self.user_defined_macros,
                user_defined_filters=self.user_defined_filters,
                undefined_strict=strict,
            )
            if self.jinja_environment_kwargs:
                # Per-DAG environment options (e.g. trim_blocks) need an environment of its own.
                env = env.overlay(**self.jinja_environment_kwargs)
            self._template_env = env
        return self._template_env

    # -- local test run ------------------------------------------------------------------------
    def test(
        self,
        *,
        logical_date: datetime | None = None,
        conf: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run this DAG once in this process, as ``tradewind dags test`` does, and return the
        outcome (a ``DagTestResult``: ``state``, ``task_instances``, ``to_dict()`` …).

        The run goes through the real scheduler code with a throw-away database; task logs go
        to stderr unless ``log_stream`` says otherwise. ``conf`` is validated against the
        params first (:class:`~tradewind.errors.ParamValidationError`). Other keyword
        arguments (``log_stream``, ``on_progress``, ``timeout``) are passed on. Example::

            if __name__ == "__main__":
                assert dag.test(conf={"limit": 5}).succeeded
        """
        import importlib

        # Loaded by name: the authoring SDK must not depend on the engine at import time.
        engine = importlib.import_module("tradewind.scheduler.dag_test")
        kwargs.setdefault("log_stream", sys.stderr)
        return engine.test_dag(self, logical_date=logical_date, conf=conf, **kwargs)

    # -- context manager -----------------------------------------------------------------------
    def __enter__(self) -> DAG:
        _context_stack.push_dag(self)
        _context_stack.register_dag(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _context_stack.pop_dag(self)
        if exc_type is None:
            self.validate()

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    # Pickling/copying a DAG keeps the object graph intact; the env is rebuilt.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_template_env"] = None
        return state


def _caller_file() -> str:
    """The file that defined the DAG: the first frame outside Tradewind's SDK."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SDK_DIR):
            return filename
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"


def _caller_location() -> str | None:
    """file:line of the user code creating a task (skipping operator constructors)."""
    from tradewind.sdk.abstractoperator import AbstractOperator

    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        in_sdk = filename.startswith(_SDK_DIR)
        in_constructor = isinstance(frame.f_locals.get("self"), AbstractOperator)
        if not in_sdk and not in_constructor:
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


def dag(dag_id: str | Callable[..., Any] | None = None, **dag_kwargs: Any) -> Any:
    """Turn a function into a DAG factory: calling it builds the DAG, with its tasks inside.

    The function's arguments become params (their defaults the param defaults), and inside the
    function they are references to those params, usable in task calls and templates::

        @dag(schedule="@daily", start_date=datetime(2024, 1, 1))
        def etl(limit: int = 100):
            load(extract(limit))

        etl()

    ``dag_id`` defaults to the function name.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., DAG]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def factory(*args: Any, **kwargs: Any) -> DAG:
            from tradewind.sdk.params import NOTSET, Param

            bound = sig.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            params = dict(dag_kwargs.get("params") or {})
            for name, value in bound.arguments.items():
                param = sig.parameters[name]
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                    continue
                if name in params and isinstance(params[name], Param):
                    continue
                params[name] = value
            for name, param in sig.parameters.items():
                if name not in params and param.default is inspect.Parameter.empty:
                    params[name] = Param(NOTSET)
            kw = {**dag_kwargs, "params": params}
            kw.setdefault("doc_md", fn.__doc__)
            the_dag = DAG(dag_id=real_id, **kw)
            the_dag.fileloc = inspect.getsourcefile(fn) or the_dag.fileloc
            with the_dag:
                from tradewind.sdk.xcom_arg import DagParamRef

                call_kwargs = {
                    name: DagParamRef(the_dag, name)
                    for name, p in sig.parameters.items()
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                }
                fn(**call_kwargs)
            return the_dag

        real_id = dag_id if isinstance(dag_id, str) else fn.__name__
        factory.dag_id = real_id  # type: ignore[attr-defined]
        return factory

    if callable(dag_id):
        fn, dag_id = dag_id, None
        return decorator(fn)
    return decorator
