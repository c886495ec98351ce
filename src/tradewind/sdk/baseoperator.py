"""``BaseOperator``: one task in a DAG, and the rules for filling its arguments.

Every operator subclasses :class:`BaseOperator` and overrides :meth:`BaseOperator.execute`.
Arguments are keyword-only. Values missing from the call are filled from ``default_args``:
the DAG's first, then each enclosing task group's (inner wins), then the operator's own
``default_args``; an argument passed explicitly always wins. A ``default_args`` key the
operator does not accept is ignored, so one ``default_args`` dict can serve many operator kinds.

Example::

    class Greet(BaseOperator):
        template_fields = ("name",)

        def __init__(self, *, name: str, **kwargs):
            super().__init__(**kwargs)
            self.name = name

        def execute(self, context):
            return f"hello {self.name}"
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tradewind.errors import InvalidArgumentError
from tradewind.sdk import _context_stack
from tradewind.sdk.abstractoperator import (
    TASK_ARG_DEFAULTS,
    AbstractOperator,
    validate_task_id,
)

if TYPE_CHECKING:
    from tradewind.sdk.context import Context
    from tradewind.sdk.dag_definition import DAG
    from tradewind.sdk.mapping import OperatorPartial
    from tradewind.sdk.taskgroup import TaskGroup

#: Arguments BaseOperator takes besides the task settings in TASK_ARG_DEFAULTS.
_STRUCTURAL_ARGS = frozenset({"task_id", "dag", "task_group", "params", "default_args"})
BASE_OPERATOR_ARGS = frozenset(TASK_ARG_DEFAULTS) | _STRUCTURAL_ARGS


@functools.cache
def accepted_arguments(cls: type) -> frozenset[str]:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the class chain."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is BaseOperator:
            names |= BASE_OPERATOR_ARGS
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        init = getattr(init, "__wrapped__", init)
        params = inspect.signature(init).parameters.values()
        names |= {
            p.name
            for p in params
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        }
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return frozenset(names)


def resolve_default_args(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Return ``kwargs`` completed from the DAG's, groups' and operator's ``default_args``."""
    dag = kwargs.get("dag") or _context_stack.current_dag()
    group = kwargs.get("task_group") or _context_stack.current_group(dag)
    merged: dict[str, Any] = {}
    if dag is not None:
        merged.update(dag.default_args)
    if group is not None:
        merged.update(group.merged_default_args())
    own = kwargs.pop("default_args", None)
    if own:
        merged.update(own)
    if not merged:
        return kwargs
    accepted = accepted_arguments(cls)
    result = dict(kwargs)
    for key, value in merged.items():
        if key == "params":
            continue
        if key not in result and key in accepted:
            result[key] = value
    if merged.get("params"):
        result["params"] = {**merged["params"], **(kwargs.get("params") or {})}
    return result


class _OperatorMeta(type):
    """Wraps each operator's ``__init__`` so default_args are applied once, at the outermost call,
    and finishing steps run after the whole constructor chain."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any) -> Any:
        cls = super().__new__(mcls, name, bases, ns, **kw)
        init = ns.get("__init__")
        if init is not None and not getattr(init, "_tw_wrapped", False):
            cls.__init__ = _wrap_init(init)  # type: ignore[misc]
        return cls


def _wrap_init(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
        if args:
            raise InvalidArgumentError(
                f"{type(self).__name__} takes keyword arguments only "
                f"(got {len(args)} positional argument(s))",
                owner=type(self).__name__,
            )
        if self.__dict__.get("_tw_in_init"):
            init(self, **kwargs)
            return
        self.__dict__["_tw_in_init"] = True
        try:
            init(self, **resolve_default_args(type(self), kwargs))
        finally:
            self.__dict__["_tw_in_init"] = False
        self._after_init()

    wrapper._tw_wrapped = True  # type: ignore[attr-defined]
    return wrapper


class BaseOperator(AbstractOperator, metaclass=_OperatorMeta):
    """The base of every operator. See the module docstring for how arguments are filled.

    Task arguments (all keyword-only, all optional but ``task_id``): ``owner``, ``email``,
    ``retries``, ``retry_delay`` (timedelta or seconds), ``retry_exponential_backoff`` (a
    multiplier; ``True`` means 2), ``max_retry_delay``, ``execution_timeout``, ``trigger_rule``,
    ``depends_on_past``, ``wait_for_downstream`` (implies depends_on_past), ``pool``,
    ``pool_slots``, ``queue``, ``priority_weight``, ``weight_rule``, ``max_active_tis_per_dag``,
    ``max_active_tis_per_dagrun``, ``do_xcom_push``, ``multiple_outputs``, ``executor``,
    ``executor_config``, ``inlets``, ``outlets``, ``params``, ``start_date``, ``end_date``,
    ``on_execute_callback``, ``on_success_callback``, ``on_failure_callback``,
    ``on_retry_callback``, ``on_skipped_callback``, ``pre_execute``, ``post_execute``, ``doc``,
    ``doc_md`` and the other ``doc_*`` forms, ``task_display_name``, ``map_index_template``.
    An argument no operator in the class chain accepts is an error naming it.
    """

    def __init__(
        self,
        *,
        task_id: str,
        dag: DAG | None = None,
        task_group: TaskGroup | None = None,
        params: dict[str, Any] | None = None,
        default_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        owner_name = f"{type(self).__name__}(task_id={task_id!r})"
        unknown = sorted(set(kwargs) - set(TASK_ARG_DEFAULTS))
        if unknown:
            raise InvalidArgumentError(
                _unknown_args_message(type(self), owner_name, unknown),
                argument=unknown[0],
                owner=owner_name,
            )
        validate_task_id(task_id, owner_name)
        dag = dag or _context_stack.current_dag()
        if task_group is None:
            task_group = _context_stack.current_group(dag)
        self.dag = None
        self.task_group = task_group
        self.task_id = task_group.child_id(task_id) if task_group is not None else task_id
        self.upstream_task_ids = set()
        self.downstream_task_ids = set()
        self._init_task_args(owner_name, kwargs, dag)
        from tradewind.sdk.params import ParamsDict

        self.params = ParamsDict(params or {})
        if dag is not None:
            dag.add_task(self)
        elif task_group is not None:
            task_group.add(self)

    def _after_init(self) -> None:
        """Wire dependencies for task outputs passed in templated arguments."""
        from tradewind.sdk.xcom_arg import iter_xcom_references

        for field in self.template_fields:
            value = getattr(self, field, None)
            for ref_op in iter_xcom_references(value):
                if ref_op is not self:
                    ref_op >> self

    # -- what runs --------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        """Do the task's work. The return value is pushed as XCom ``return_value``."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute(context)")

    def on_kill(self) -> None:
        """Called when the task is killed (timeout or stop); release external resources here."""

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render every field named in ``template_fields`` in place."""
        from tradewind.sdk.templating import render_template_fields

        render_template_fields(self, context, jinja_env)

    def get_template_env(self) -> Any:
        """The Jinja environment for this task (its DAG's, or a default one)."""
        if self.dag is not None:
            return self.dag.get_template_env()
        from tradewind.sdk.templating import create_template_env

        return create_template_env()

    # -- mapping ----------------------------------------------------------------------------
    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Fix the arguments shared by every mapped instance; call ``.expand(...)`` next."""
        from tradewind.sdk.mapping import OperatorPartial

        return OperatorPartial(cls, kwargs)

    def __repr__(self) -> str:
        return f"<Task({type(self).__name__}): {self.task_id}>"

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseOperator:
        # Copies share the DAG and group (they are structure, not value).
        import copy

        cls = type(self)
        result = cls.__new__(cls)
        memo[id(self)] = result
        shallow = {"dag", "task_group", "_dag"}
        for k, v in self.__dict__.items():
            object.__setattr__(result, k, v if k in shallow else copy.deepcopy(v, memo))
        return result

    def iter_template_values(self) -> Iterator[tuple[str, Any]]:
        """(field, value) for every templated field, before rendering."""
        for field in self.template_fields:
            yield field, getattr(self, field, None)


def _unknown_args_message(cls: type, owner_name: str, unknown: list[str]) -> str:
    accepted = sorted(accepted_arguments(cls))
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"{owner_name}: unknown argument(s) {', '.join(parts)}"
