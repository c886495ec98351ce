"""TaskFlow: ``@task`` and its variants, ``@task_group``, ``@setup`` and ``@teardown``.

``@task`` turns a function into a task factory. Calling it inside a DAG adds a task and returns
a reference to its result; passing that reference to another task adds the dependency and
passes the value through XCom::

    @task
    def extract() -> list[int]:
        return [1, 2, 3]

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    total(extract())

Variants: ``@task.branch``, ``@task.short_circuit``, ``@task.bash`` (the function returns the
command) and ``@task.python`` (same as ``@task``). Their operator classes are looked up by name
in :data:`TASK_DECORATORS` when first used, so the SDK does not import the operator library, and
a plug-in can register more with :func:`register_task_decorator`.

Parameters named after context keys (``ti``, ``ds``, ``params``, ``dag_run``, ...) are filled
from the run's context; give them the default ``None`` (or no default).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from tradewind.errors import InvalidArgumentError
from tradewind.sdk import _context_stack
from tradewind.sdk.xcom_arg import MappedArgument, PlainXComArg, XComArg

#: Decorator name -> "module:Class" of the operator it builds.
TASK_DECORATORS: dict[str, str] = {
    "python": "tradewind.operators.python:DecoratedPythonOperator",
    "branch": "tradewind.operators.python:DecoratedBranchPythonOperator",
    "short_circuit": "tradewind.operators.python:DecoratedShortCircuitOperator",
    "bash": "tradewind.operators.bash:DecoratedBashOperator",
}

#: Names a task function may take to receive values from the run's context.
KNOWN_CONTEXT_KEYS = frozenset(
    {
        "conf",
        "conn",
        "dag",
        "dag_run",
        "data_interval_end",
        "data_interval_start",
        "ds",
        "ds_nodash",
        "exception",
        "execution_date",
        "expanded_ti_count",
        "inlets",
        "inlet_events",
        "logical_date",
        "macros",
        "map_index_template",
        "next_ds",
        "next_ds_nodash",
        "outlets",
        "outlet_events",
        "params",
        "prev_data_interval_start_success",
        "prev_data_interval_end_success",
        "prev_ds",
        "prev_ds_nodash",
        "prev_start_date_success",
        "prev_end_date_success",
        "reason",
        "run_id",
        "task",
        "task_instance",
        "task_instance_key_str",
        "task_reschedule_count",
        "templates_dict",
        "test_mode",
        "ti",
        "tomorrow_ds",
        "tomorrow_ds_nodash",
        "triggering_asset_events",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
        "var",
        "yesterday_ds",
        "yesterday_ds_nodash",
    }
)


def register_task_decorator(name: str, target: str) -> None:
    """Make ``@task.<name>`` build the operator ``target`` ("module:Class")."""
    TASK_DECORATORS[name] = target


@functools.cache
def _operator_class(name: str) -> type:
    try:
        target = TASK_DECORATORS[name]
    except KeyError:
        raise AttributeError(
            f"unknown task decorator @task.{name}; available: {', '.join(sorted(TASK_DECORATORS))}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def infer_multiple_outputs(fn: Callable[..., Any]) -> bool:
    """True when the function's return annotation is a mapping (``dict[str, int]`` …)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    ret = hints.get("return", inspect.signature(fn).return_annotation)
    if ret is inspect.Signature.empty or ret is None:
        return False
    if isinstance(ret, str):
        return ret.split("[", 1)[0].strip() in {
            "dict",
            "Dict",
            "Mapping",
            "typing.Dict",
            "MutableMapping",
        }
    origin = typing.get_origin(ret) or ret
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _unique_task_id(base: str) -> str:
    dag = _context_stack.current_dag()
    if dag is None:
        return base
    group = _context_stack.current_group(dag)
    full = group.child_id(base) if group is not None else base
    if full not in dag.task_dict:
        return base
    n = 1
    while True:
        candidate = f"{base}__{n}"
        full_c = group.child_id(candidate) if group is not None else candidate
        if full_c not in dag.task_dict:
            return candidate
        n += 1


class _TaskDecorator:
    """A function turned into a task factory (what ``@task`` returns)."""

    def __init__(
        self,
        function: Callable[..., Any],
        kind: str = "python",
        task_kwargs: dict[str, Any] | None = None,
        multiple_outputs: bool | None = None,
        role: str | None = None,
    ) -> None:
        if not callable(function):
            raise InvalidArgumentError(f"@task needs a function, got {function!r}")
        sig = inspect.signature(function)
        params = list(sig.parameters.values())
        if params and params[0].name == "self":
            raise InvalidArgumentError(f"@task cannot decorate the method {function.__qualname__}")
        fixed = []
        for p in params:
            if p.name in KNOWN_CONTEXT_KEYS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                if p.default not in (None, inspect.Parameter.empty):
                    raise InvalidArgumentError(
                        f"{function.__qualname__}: parameter {p.name!r} is filled from the task "
                        f"context and must default to None, not {p.default!r}",
                        argument=p.name,
                    )
                p = p.replace(default=None)
            fixed.append(p)
        self.function = function
        self.kind = kind
        self.role = role
        self.task_kwargs = dict(task_kwargs or {})
        self.multiple_outputs = (
            infer_multiple_outputs(function) if multiple_outputs is None else multiple_outputs
        )
        self._signature = sig.replace(parameters=fixed)
        functools.update_wrapper(self, function)

    @property
    def operator_class(self) -> type:
        return _operator_class(self.kind)

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentError(f"{self.function.__qualname__}(): {exc}") from None

    def _task_args(self) -> dict[str, Any]:
        kw = dict(self.task_kwargs)
        kw["task_id"] = _unique_task_id(kw.get("task_id") or self.function.__name__)
        kw.setdefault("multiple_outputs", self.multiple_outputs)
        if self.function.__doc__ and "doc_md" not in kw and "doc" not in kw:
            kw["doc_md"] = inspect.cleandoc(self.function.__doc__)
        return kw

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        self._bind(args, kwargs)
        op = self.operator_class(
            python_callable=self.function,
            op_args=list(args),
            op_kwargs=dict(kwargs),
            **self._task_args(),
        )
        if self.role == "setup":
            op.as_setup()
        elif self.role == "teardown":
            op.as_teardown()
        return PlainXComArg(op)

    def override(self, **kwargs: Any) -> _TaskDecorator:
        """A copy with other task arguments (``task_id``, ``retries``, ``pool`` …)."""
        multiple = kwargs.pop("multiple_outputs", self.multiple_outputs)
        return _TaskDecorator(
            self.function, self.kind, {**self.task_kwargs, **kwargs}, multiple, self.role
        )

    def partial(self, **kwargs: Any) -> _TaskPartial:
        """Fix some function arguments for every mapped instance; call ``.expand`` next."""
        return _TaskPartial(self, kwargs)

    def expand(self, **kwargs: Any) -> XComArg:
        """One task instance per element (cross product over several arguments)."""
        return _TaskPartial(self, {}).expand(**kwargs)

    def expand_kwargs(self, kwargs: Any) -> XComArg:
        """One task instance per dict of function arguments."""
        return _TaskPartial(self, {}).expand_kwargs(kwargs)


class _TaskPartial:
    def __init__(self, decorator: _TaskDecorator, op_kwargs: dict[str, Any]) -> None:
        self.decorator = decorator
        self.op_kwargs = op_kwargs

    def _partial(self) -> Any:
        from tradewind.sdk.mapping import OperatorPartial

        d = self.decorator
        return OperatorPartial(
            d.operator_class,
            {
                "python_callable": d.function,
                "op_args": [],
                "op_kwargs": dict(self.op_kwargs),
                **d._task_args(),
            },
            mapped_into="op_kwargs",
        )

    def _accepted(self) -> set[str]:
        return set(self.decorator._signature.parameters)

    def expand(self, **kwargs: Any) -> XComArg:
        from tradewind.sdk.mapping import DictOfListsExpandInput, MappedOperator

        p = self._partial()
        op = MappedOperator(
            p.operator_class,
            p.kwargs,
            DictOfListsExpandInput(kwargs),
            mapped_into="op_kwargs",
            accepted_keys=self._accepted(),
        )
        return PlainXComArg(op)

    def expand_kwargs(self, kwargs: Any) -> XComArg:
        from tradewind.sdk.mapping import ListOfDictsExpandInput, MappedOperator

        p = self._partial()
        op = MappedOperator(
            p.operator_class,
            p.kwargs,
            ListOfDictsExpandInput(kwargs),
            mapped_into="op_kwargs",
            accepted_keys=self._accepted(),
        )
        return PlainXComArg(op)


def _make_task_decorator(kind: str, role: str | None = None) -> Callable[..., Any]:
    def decorator(
        python_callable: Callable[..., Any] | None = None,
        multiple_outputs: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        if python_callable is not None and callable(python_callable):
            return _TaskDecorator(python_callable, kind, kwargs, multiple_outputs, role)

        def wrap(fn: Callable[..., Any]) -> _TaskDecorator:
            return _TaskDecorator(fn, kind, kwargs, multiple_outputs, role)

        return wrap

    decorator.__name__ = kind
    return decorator


class _TaskDecoratorCollection:
    """``task`` itself: ``@task``, ``@task(...)``, and ``@task.<variant>``."""

    def __call__(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        return _make_task_decorator("python")(python_callable, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in TASK_DECORATORS:
            raise AttributeError(
                f"unknown task decorator @task.{name}; available: {', '.join(sorted(TASK_DECORATORS))}"
            )
        return _make_task_decorator(name)


task = _TaskDecoratorCollection()
setup = _make_task_decorator("python", role="setup")
teardown = _make_task_decorator("python", role="teardown")


class _TaskGroupFactory:
    """A function turned into a task-group factory (what ``@task_group`` returns)."""

    def __init__(self, function: Callable[..., Any], group_kwargs: dict[str, Any]) -> None:
        self.function = function
        self.group_kwargs = group_kwargs
        self._partial_kwargs: dict[str, Any] = {}
        functools.update_wrapper(self, function)

    def _group(self) -> Any:
        from tradewind.sdk.taskgroup import TaskGroup

        kw = dict(self.group_kwargs)
        group_id = kw.pop("group_id", None) or self.function.__name__
        kw.setdefault("add_suffix_on_collision", True)
        if self.function.__doc__ and "tooltip" not in kw:
            kw["tooltip"] = inspect.cleandoc(self.function.__doc__)
        return TaskGroup(group_id, **kw)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._group() as group:
            result = self.function(*args, **kwargs)
        if isinstance(result, XComArg):
            return result
        return group

    def override(self, **kwargs: Any) -> _TaskGroupFactory:
        return _TaskGroupFactory(self.function, {**self.group_kwargs, **kwargs})

    def partial(self, **kwargs: Any) -> _TaskGroupFactory:
        """Fix some arguments for every instance of a mapped group."""
        copy = _TaskGroupFactory(self.function, self.group_kwargs)
        copy._partial_kwargs = kwargs
        return copy

    def expand(self, **kwargs: Any) -> Any:
        """Run the group once per element: every task inside is mapped with the same index."""
        from tradewind.sdk.mapping import DictOfListsExpandInput

        return self._expand(DictOfListsExpandInput(kwargs), list(kwargs))

    def expand_kwargs(self, kwargs: Any) -> Any:
        """Run the group once per dict of arguments."""
        from tradewind.sdk.mapping import ListOfDictsExpandInput

        names = [
            n for n in inspect.signature(self.function).parameters if n not in self._partial_kwargs
        ]
        return self._expand(ListOfDictsExpandInput(kwargs), names)

    def _expand(self, expand_input: Any, names: list[str]) -> Any:
        group = self._group()
        group.expand_input = expand_input
        with group:
            args = {n: MappedArgument(group, n) for n in names}
            result = self.function(**self._partial_kwargs, **args)
        for ref_op, _ in expand_input.iter_references():
            for root in group.roots:
                if ref_op.task_id not in root.upstream_task_ids:
                    ref_op >> root
        if isinstance(result, XComArg):
            return result
        return group


def task_group(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """Turn a function into a task-group factory: each call builds a group of its tasks.

    ``group_id`` defaults to the function name (with ``__1``, ``__2`` … on repeated calls).
    ``.expand(...)`` maps the whole group.
    """
    if python_callable is not None and callable(python_callable):
        return _TaskGroupFactory(python_callable, kwargs)

    def wrap(fn: Callable[..., Any]) -> _TaskGroupFactory:
        return _TaskGroupFactory(fn, kwargs)

    return wrap
