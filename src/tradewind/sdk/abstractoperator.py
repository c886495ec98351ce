"""What every task node has, mapped or not: identity, place in the DAG, and scheduling settings.

:class:`~tradewind.sdk.baseoperator.BaseOperator` (one task) and
:class:`~tradewind.sdk.mapping.MappedOperator` (a task expanded at run time) both build on
:class:`AbstractOperator`, so the scheduler, serialization and the UI read the same attributes
from either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from tradewind.errors import DagProblem, InvalidArgumentError
from tradewind.sdk._dependencies import DependencyMixin
from tradewind.sdk.trigger_rule import TriggerRule, WeightRule

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG
    from tradewind.sdk.taskgroup import TaskGroup
    from tradewind.sdk.xcom_arg import PlainXComArg

DEFAULT_OWNER = "tradewind"
DEFAULT_POOL = "default_pool"
DEFAULT_QUEUE = "default"
DEFAULT_RETRY_DELAY = timedelta(seconds=300)
#: ``[core] max_task_retry_delay``: no retry waits longer than this.
MAX_RETRY_DELAY = timedelta(days=1)

_TASK_ID_RE = re.compile(r"^[\w.-]+$")
_MAX_ID_LENGTH = 250

Callback = Callable[..., Any] | Sequence[Callable[..., Any]]

#: The task arguments every operator accepts, with their defaults. The order is the
#: documentation order; serialization writes only values that differ from these.
TASK_ARG_DEFAULTS: dict[str, Any] = {
    "owner": DEFAULT_OWNER,
    "email": None,
    "email_on_retry": True,
    "email_on_failure": True,
    "retries": 0,
    "retry_delay": DEFAULT_RETRY_DELAY,
    "retry_exponential_backoff": 0.0,
    "max_retry_delay": None,
    "start_date": None,
    "end_date": None,
    "depends_on_past": False,
    "ignore_first_depends_on_past": True,
    "wait_for_past_depends_before_skipping": False,
    "wait_for_downstream": False,
    "priority_weight": 1,
    "weight_rule": WeightRule.DOWNSTREAM,
    "queue": DEFAULT_QUEUE,
    "pool": DEFAULT_POOL,
    "pool_slots": 1,
    "execution_timeout": None,
    "trigger_rule": TriggerRule.ALL_SUCCESS,
    "max_active_tis_per_dag": None,
    "max_active_tis_per_dagrun": None,
    "executor": None,
    "executor_config": None,
    "do_xcom_push": True,
    "multiple_outputs": False,
    "map_index_template": None,
    "run_as_user": None,
    "resources": None,
    "inlets": None,
    "outlets": None,
    "doc": None,
    "doc_md": None,
    "doc_rst": None,
    "doc_json": None,
    "doc_yaml": None,
    "task_display_name": None,
    "on_execute_callback": None,
    "on_success_callback": None,
    "on_failure_callback": None,
    "on_retry_callback": None,
    "on_skipped_callback": None,
    "pre_execute": None,
    "post_execute": None,
}

_HOOK_ARGS = frozenset({"pre_execute", "post_execute"})

CALLBACK_ARGS = (
    "on_execute_callback",
    "on_success_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
)


def _as_timedelta(value: Any, name: str, owner: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise InvalidArgumentError(
        f"{owner}: {name} must be a timedelta or a number of seconds, got {value!r}",
        argument=name,
        owner=owner,
    )


def validate_task_id(task_id: object, owner: str = "task") -> str:
    """Return ``task_id`` if it is a valid id, else raise naming what is wrong."""
    if not isinstance(task_id, str) or not task_id:
        raise InvalidArgumentError(f"{owner}: task_id must be a non-empty string, got {task_id!r}")
    if len(task_id) > _MAX_ID_LENGTH:
        raise InvalidArgumentError(f"{owner}: task_id {task_id!r} is longer than {_MAX_ID_LENGTH}")
    if not _TASK_ID_RE.match(task_id):
        raise InvalidArgumentError(
            f"{owner}: task_id {task_id!r} may contain only letters, digits, '_', '-' and '.'"
        )
    return task_id


class AbstractOperator(DependencyMixin):
    """Shared state of a task node in a DAG; see the module docstring."""

    # Class-level settings an operator author overrides.
    template_fields: ClassVar[Sequence[str]] = ()
    template_ext: ClassVar[Sequence[str]] = ()
    template_fields_renderers: ClassVar[dict[str, str]] = {}
    ui_color: str = "#fff"
    ui_fgcolor: str = "#000"

    task_id: str
    dag: DAG | None
    task_group: TaskGroup | None
    upstream_task_ids: set[str]
    downstream_task_ids: set[str]
    is_setup: bool = False
    is_teardown: bool = False
    on_failure_fail_dagrun: bool = False

    # -- identity ---------------------------------------------------------------------------
    @property
    def is_mapped(self) -> bool:
        """Whether this node expands into several task instances at run time."""
        return False

    @property
    def label(self) -> str:
        """The id without the enclosing groups' prefixes, for displays."""
        group = self.task_group
        if group is not None and group.group_id and group.prefix_group_id:
            prefix = f"{group.group_id}."
            if self.task_id.startswith(prefix):
                return self.task_id[len(prefix) :]
        return self.task_id

    @property
    def dag_id(self) -> str | None:
        return self.dag.dag_id if self.dag is not None else None

    @property
    def roots(self) -> list[AbstractOperator]:
        return [self]

    @property
    def leaves(self) -> list[AbstractOperator]:
        return [self]

    @property
    def upstream_list(self) -> list[AbstractOperator]:
        """The direct upstream tasks (needs the task to belong to a DAG)."""
        return [self._require_dag().get_task(t) for t in sorted(self.upstream_task_ids)]

    @property
    def downstream_list(self) -> list[AbstractOperator]:
        """The direct downstream tasks (needs the task to belong to a DAG)."""
        return [self._require_dag().get_task(t) for t in sorted(self.downstream_task_ids)]

    def get_direct_relative_ids(self, upstream: bool = False) -> set[str]:
        return self.upstream_task_ids if upstream else self.downstream_task_ids

    def get_flat_relative_ids(self, *, upstream: bool = False) -> set[str]:
        """Every task id reachable upstream (or downstream) of this task."""
        dag = self._require_dag()
        seen: set[str] = set()
        stack = list(self.get_direct_relative_ids(upstream))
        while stack:
            tid = stack.pop()
            if tid in seen:
                continue
            seen.add(tid)
            stack.extend(dag.get_task(tid).get_direct_relative_ids(upstream))
        return seen

    def _require_dag(self) -> DAG:
        if self.dag is None:
            raise InvalidArgumentError(f"task {self.task_id!r} is not assigned to a DAG")
        return self.dag

    @property
    def output(self) -> PlainXComArg:
        """A reference to this task's return value, to pass to other tasks."""
        from tradewind.sdk.xcom_arg import PlainXComArg

        return PlainXComArg(self)

    # -- setup / teardown ------------------------------------------------------------------
    def as_setup(self) -> AbstractOperator:
        """Mark this task as a setup task (its teardowns run if it succeeded)."""
        self.is_setup = True
        return self

    def as_teardown(
        self,
        *,
        setups: AbstractOperator | Iterable[AbstractOperator] | None = None,
        on_failure_fail_dagrun: bool | None = None,
    ) -> AbstractOperator:
        """Mark this task as a teardown: it runs when its setups ran, whatever happened between."""
        self.is_teardown = True
        self.trigger_rule = TriggerRule.ALL_DONE_SETUP_SUCCESS
        if on_failure_fail_dagrun is not None:
            self.on_failure_fail_dagrun = on_failure_fail_dagrun
        if setups is not None:
            items = [setups] if isinstance(setups, AbstractOperator) else list(setups)
            for s in items:
                s.as_setup()
                s >> self
        return self

    # -- settings ---------------------------------------------------------------------------
    def _init_task_args(
        self, owner_name: str, values: Mapping[str, Any], dag: DAG | None = None
    ) -> None:
        """Set and normalise the shared task arguments (``values`` has every key of
        :data:`TASK_ARG_DEFAULTS`)."""
        for key, default in TASK_ARG_DEFAULTS.items():
            value = values.get(key, default)
            # An unset hook must not hide a pre_execute/post_execute method of a subclass.
            if key in _HOOK_ARGS and value is None:
                continue
            setattr(self, key, value)
        self.retry_delay = _as_timedelta(self.retry_delay, "retry_delay", owner_name) or timedelta(
            0
        )
        self.max_retry_delay = _as_timedelta(self.max_retry_delay, "max_retry_delay", owner_name)
        self.execution_timeout = _as_timedelta(
            self.execution_timeout, "execution_timeout", owner_name
        )
        backoff = self.retry_exponential_backoff
        # Accepted as a bool too: True means doubling, as older DAG files write it.
        if isinstance(backoff, bool):
            self.retry_exponential_backoff = 2.0 if backoff else 0.0
        elif isinstance(backoff, int | float):
            self.retry_exponential_backoff = float(backoff)
        else:
            raise InvalidArgumentError(
                f"{owner_name}: retry_exponential_backoff must be a number or a bool, got {backoff!r}",
                argument="retry_exponential_backoff",
            )
        if self.wait_for_downstream:
            self.depends_on_past = True
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            try:
                self.retries = int(self.retries)
            except (TypeError, ValueError):
                self.retries = -1
            if self.retries < 0:
                raise InvalidArgumentError(
                    f"{owner_name}: retries must be a non-negative integer, got {values.get('retries')!r}",
                    argument="retries",
                )
        if not isinstance(self.pool_slots, int) or self.pool_slots < 1:
            raise InvalidArgumentError(
                f"{owner_name}: pool_slots must be an integer >= 1, got {self.pool_slots!r}",
                argument="pool_slots",
            )
        if not isinstance(self.priority_weight, int) or isinstance(self.priority_weight, bool):
            raise InvalidArgumentError(
                f"{owner_name}: priority_weight must be an integer, got {self.priority_weight!r}",
                argument="priority_weight",
            )
        if not WeightRule.is_valid(self.weight_rule):
            raise InvalidArgumentError(
                f"{owner_name}: weight_rule must be one of {', '.join(WeightRule)}, got {self.weight_rule!r}",
                argument="weight_rule",
            )
        self.weight_rule = WeightRule(self.weight_rule)
        for date_arg in ("start_date", "end_date"):
            value = getattr(self, date_arg)
            if value is not None:
                from tradewind.sdk.timezone import coerce_datetime, get_default_timezone

                setattr(self, date_arg, coerce_datetime(value, get_default_timezone()))
        self.inlets = _as_list_or_empty(self.inlets)
        self.outlets = _as_list_or_empty(self.outlets)
        if self.executor_config is None:
            self.executor_config = {}
        self._check_trigger_rule(owner_name, dag)

    def _check_trigger_rule(self, owner_name: str, dag: DAG | None) -> None:
        rule = self.trigger_rule
        if TriggerRule.is_valid(rule):
            self.trigger_rule = TriggerRule(rule)
            return
        problem = DagProblem(
            "unknown_trigger_rule",
            f"task {self.task_id!r} has unknown trigger_rule {rule!r}; "
            f"allowed: {', '.join(sorted(TriggerRule.all_triggers()))}",
            task_id=self.task_id,
        )
        if dag is not None:
            dag.add_problem(problem)
        else:
            raise InvalidArgumentError(f"{owner_name}: {problem.message}", argument="trigger_rule")

    # Attribute annotations for type checkers (set in _init_task_args).
    owner: str
    retries: int
    retry_delay: timedelta
    retry_exponential_backoff: float
    max_retry_delay: timedelta | None
    execution_timeout: timedelta | None
    trigger_rule: Any
    depends_on_past: bool
    wait_for_downstream: bool
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    weight_rule: WeightRule
    max_active_tis_per_dag: int | None
    max_active_tis_per_dagrun: int | None
    do_xcom_push: bool
    multiple_outputs: bool
    executor: str | None
    executor_config: dict[str, Any]
    inlets: list[Any]
    outlets: list[Any]
    start_date: datetime | None
    end_date: datetime | None
    doc_md: str | None
    map_index_template: str | None


def _as_list_or_empty(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return list(value)
    return [value]
