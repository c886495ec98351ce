"""Operators that call a Python function: ``PythonOperator`` and its branch and short-circuit
forms, and the operators behind ``@task``, ``@task.branch`` and ``@task.short_circuit``.

The function is called as ``python_callable(*op_args, **kwargs)`` where ``kwargs`` is the task
context merged with ``op_kwargs`` (and ``templates_dict``), filtered by the function's
signature (see :func:`determine_kwargs`): a function with ``**kwargs`` receives everything,
any other only the names it declares. So a function can ask for context values by name::

    def report(ds, ti, limit):
        print(ds, ti.try_number, limit)

    PythonOperator(task_id="report", python_callable=report, op_kwargs={"limit": 10})

``async def`` functions are run to completion with :func:`asyncio.run`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from tradewind.errors import InvalidArgumentError
from tradewind.operators.branch import do_branch, request_skip
from tradewind.sdk.baseoperator import BaseOperator
from tradewind.sdk.context import get_current_context

if TYPE_CHECKING:
    from tradewind.sdk.abstractoperator import AbstractOperator
    from tradewind.sdk.context import Context

__all__ = [
    "BranchPythonOperator",
    "DecoratedBranchPythonOperator",
    "DecoratedPythonOperator",
    "DecoratedShortCircuitOperator",
    "PythonOperator",
    "ShortCircuitOperator",
    "call_python",
    "determine_kwargs",
    "determine_task_kwargs",
    "get_current_context",
]

log = logging.getLogger("tradewind.task")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _callable_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def determine_kwargs(
    python_callable: Callable[..., Any],
    op_args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """The keyword arguments to call ``python_callable(*op_args, **result)`` with.

    ``kwargs`` is everything on offer (the context merged with ``op_kwargs``). A callable with
    ``**kwargs`` gets all of it; any other gets only the names it declares. A parameter filled
    positionally by ``op_args`` whose name is also on offer (``def f(ds)`` called with
    ``op_args=["x"]``) is ambiguous and raises :class:`InvalidArgumentError`.
    """
    try:
        params = list(inspect.signature(python_callable).parameters.values())
    except (TypeError, ValueError):
        # Some builtins have no introspectable signature: give them positional args only.
        return {}
    positional = [p for p in params if p.kind in _POSITIONAL]
    for index, param in enumerate(positional[: len(op_args)]):
        if param.name in kwargs:
            raise InvalidArgumentError(
                f"{_callable_name(python_callable)}: positional argument {index} fills parameter "
                f"{param.name!r}, but that name is reserved for a context value or keyword "
                "argument; rename the parameter or pass the value by keyword",
                argument=param.name,
            )
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(kwargs)
    wanted = {p.name for p in params if p.kind in _BY_KEYWORD}
    return {name: value for name, value in kwargs.items() if name in wanted}


def determine_task_kwargs(
    python_callable: Callable[..., Any],
    op_args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """:func:`determine_kwargs` for ``@task`` functions: a parameter named after a context key
    that this run's context lacks (``logical_date`` in a run without one) receives None."""
    from tradewind.sdk.decorators import KNOWN_CONTEXT_KEYS

    result = determine_kwargs(python_callable, op_args, kwargs)
    try:
        params = list(inspect.signature(python_callable).parameters.values())
    except (TypeError, ValueError):
        return result
    filled = [p.name for p in params if p.kind in _POSITIONAL][: len(op_args)]
    for p in params:
        if (
            p.name in KNOWN_CONTEXT_KEYS
            and p.kind in _BY_KEYWORD
            and p.name not in result
            and p.name not in filled
        ):
            result[p.name] = None
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def call_python(
    python_callable: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    """Call ``python_callable``; an awaitable result (``async def``) is run to completion."""
    result = python_callable(*args, **kwargs)
    if inspect.isawaitable(result):
        # asyncio.run copies the current contextvars, so get_current_context() keeps working.
        import asyncio  # only coroutine callables pay for loading asyncio

        return asyncio.run(_await(result))
    return result


def _check_callable(python_callable: Any, kwargs: Mapping[str, Any], cls: type) -> None:
    if not callable(python_callable):
        owner = f"{cls.__name__}(task_id={kwargs.get('task_id')!r})"
        raise InvalidArgumentError(
            f"{owner}: python_callable must be callable, got {type(python_callable).__name__} "
            f"{python_callable!r}",
            argument="python_callable",
            owner=owner,
        )


class PythonOperator(BaseOperator):
    """Call a Python function; its return value becomes the task's XCom ``return_value``.

    Arguments: ``python_callable``; ``op_args`` (positional arguments) and ``op_kwargs``
    (keyword arguments), both templated; ``templates_dict`` (templated, passed to the function
    as ``templates_dict`` when it asks for it, and added to the context);
    ``templates_exts`` (file extensions that make a templated string a template file, e.g.
    ``[".sql"]``); ``show_return_value_in_logs`` (default True).
    """

    template_fields: ClassVar[Sequence[str]] = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "templates_dict": "json",
        "op_args": "py",
        "op_kwargs": "py",
    }
    ui_color = "#ffefeb"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: dict[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        show_return_value_in_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        _check_callable(python_callable, kwargs, type(self))
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args: Any = list(op_args) if isinstance(op_args, list | tuple) else op_args
        if self.op_args is None:
            self.op_args = []
        self.op_kwargs: Any = dict(op_kwargs) if isinstance(op_kwargs, dict) else op_kwargs
        if self.op_kwargs is None:
            self.op_kwargs = {}
        self.templates_dict = templates_dict
        if templates_exts:
            # Per instance, like Airflow: the extensions apply to every templated field.
            self.__dict__["template_ext"] = tuple(templates_exts)
        self.show_return_value_in_logs = show_return_value_in_logs

    def _offered_kwargs(self, context: Context) -> dict[str, Any]:
        op_kwargs = self.op_kwargs
        if not isinstance(op_kwargs, Mapping):
            raise InvalidArgumentError(
                f"task {self.task_id!r}: op_kwargs must be a dict, got {type(op_kwargs).__name__}",
                argument="op_kwargs",
                owner=self.task_id,
            )
        if not isinstance(self.op_args, list | tuple):
            raise InvalidArgumentError(
                f"task {self.task_id!r}: op_args must be a list, got {type(self.op_args).__name__}",
                argument="op_args",
                owner=self.task_id,
            )
        context["templates_dict"] = self.templates_dict
        return {**context, **op_kwargs}

    def determine_kwargs(self, context: Context) -> dict[str, Any]:
        """The keyword arguments the callable receives in this context."""
        return determine_kwargs(self.python_callable, self.op_args, self._offered_kwargs(context))

    def execute(self, context: Context) -> Any:
        """Call the function with its arguments and context values; return its result."""
        self.op_kwargs = self.determine_kwargs(context)
        result = self.execute_callable()
        if self.show_return_value_in_logs:
            log.info("Done. Returned value was: %r", result)
        else:
            log.info("Done. Returned value not shown")
        return result

    def execute_callable(self) -> Any:
        """Call ``python_callable(*op_args, **op_kwargs)`` (kwargs already determined)."""
        return call_python(self.python_callable, self.op_args, self.op_kwargs)


def _short_circuit(
    task: AbstractOperator, context: Context, condition: Any, ignore_downstream_trigger_rules: bool
) -> Any:
    log.info("Condition result is %r", condition)
    if condition:
        log.info("Proceeding with downstream tasks")
        return condition
    if ignore_downstream_trigger_rules:
        candidates = task.get_flat_relative_ids(upstream=False)
    else:
        candidates = set(task.downstream_task_ids)
    dag = task.dag
    # Teardowns still run: they clean up after setups that did run.
    to_skip = [
        tid
        for tid in candidates
        if dag is None or not getattr(dag.get_task(tid), "is_teardown", False)
    ]
    request_skip(context, to_skip)
    return condition


class BranchPythonOperator(PythonOperator):
    """A :class:`PythonOperator` whose function returns the branch to follow.

    The function returns a task id, a task-group id, a list of them, or None; direct
    downstream tasks not chosen are skipped (see :mod:`tradewind.operators.branch`).
    """

    inherits_from_skipmixin = True

    def execute(self, context: Context) -> Any:
        """Call the function and apply its branch decision."""
        return do_branch(self, context, super().execute(context))


class ShortCircuitOperator(PythonOperator):
    """Continue when the function returns a truthy value; otherwise skip downstream tasks.

    With ``ignore_downstream_trigger_rules=True`` (the default) every task downstream is
    skipped; with False only the direct downstream tasks are, so tasks further on apply their
    own trigger rules (an ``all_done`` task still runs). Teardown tasks are never skipped.
    """

    inherits_from_skipmixin = True

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context: Context) -> Any:
        """Evaluate the condition and skip downstream tasks when it is falsy."""
        condition = super().execute(context)
        return _short_circuit(self, context, condition, self.ignore_downstream_trigger_rules)


class DecoratedPythonOperator(PythonOperator):
    """The operator behind ``@task``: calls the decorated function with the call's arguments.

    References to other tasks' results among ``op_args``/``op_kwargs`` are resolved when the
    templated fields are rendered. Parameters named after context keys (``ti``, ``ds``,
    ``params`` ...) receive the context values; such a parameter whose key is absent from
    this run's context (``logical_date`` in a run without one) receives None.
    """

    custom_operator_name = "@task"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs
        )

    def determine_kwargs(self, context: Context) -> dict[str, Any]:
        """Like :meth:`PythonOperator.determine_kwargs`, with None for absent context keys."""
        return determine_task_kwargs(
            self.python_callable, self.op_args, self._offered_kwargs(context)
        )


class DecoratedBranchPythonOperator(DecoratedPythonOperator):
    """The operator behind ``@task.branch``."""

    custom_operator_name = "@task.branch"
    inherits_from_skipmixin = True

    def execute(self, context: Context) -> Any:
        """Call the function and apply its branch decision."""
        return do_branch(self, context, super().execute(context))


class DecoratedShortCircuitOperator(DecoratedPythonOperator):
    """The operator behind ``@task.short_circuit`` (see :class:`ShortCircuitOperator`)."""

    custom_operator_name = "@task.short_circuit"
    inherits_from_skipmixin = True

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context: Context) -> Any:
        """Evaluate the condition and skip downstream tasks when it is falsy."""
        condition = super().execute(context)
        return _short_circuit(self, context, condition, self.ignore_downstream_trigger_rules)
