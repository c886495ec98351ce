"""References to a task's result (``XComArg``), made when a TaskFlow task is called.

Passing a reference into another task (``load(extract())``, or ``op_kwargs={"x": t.output}``)
does two things: it adds the dependency ``extract >> load``, and at run time the reference is
replaced by the value ``extract`` returned (read from XCom). References can be indexed
(``ref["key"]`` for ``multiple_outputs``) and transformed lazily with ``.map(fn)``,
``.zip(other)`` and ``.concat(other)``, which mapping (``.expand``) consumes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tradewind.errors import InvalidArgumentError
from tradewind.sdk._dependencies import DependencyMixin

if TYPE_CHECKING:
    from tradewind.sdk.abstractoperator import AbstractOperator
    from tradewind.sdk.context import Context
    from tradewind.sdk.dag_definition import DAG
    from tradewind.sdk.taskgroup import TaskGroup

XCOM_RETURN_KEY = "return_value"


class XComArg(DependencyMixin):
    """Base of every task-result reference."""

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        """(task, key) for every task whose result this reference reads."""
        raise NotImplementedError

    def resolve(self, context: Context) -> Any:
        """The value at run time (needs ``context['ti']``)."""
        raise NotImplementedError

    @property
    def roots(self) -> list[AbstractOperator]:
        return [op for op, _ in self.iter_references()]

    @property
    def leaves(self) -> list[AbstractOperator]:
        return [op for op, _ in self.iter_references()]

    def map(self, fn: Callable[[Any], Any]) -> MapXComArg:
        """Apply ``fn`` to each item when the value is read (for ``.expand``)."""
        return MapXComArg(self, [fn])

    def zip(self, *others: XComArg, fillvalue: Any = None, **kw: Any) -> ZipXComArg:
        """Pair items position by position with other references (shortest wins unless
        ``fillvalue`` is given)."""
        has_fill = "fillvalue" in kw or fillvalue is not None
        return ZipXComArg([self, *others], fillvalue=fillvalue, has_fillvalue=has_fill)

    def concat(self, *others: XComArg) -> ConcatXComArg:
        """Chain the items of this and other references."""
        return ConcatXComArg([self, *others])

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(
            "a task's output cannot be iterated while the DAG is being defined; pass it to a "
            "task, or map over it with .expand()"
        )

    def __bool__(self) -> bool:  # pragma: no cover - trivial
        return True


class PlainXComArg(XComArg):
    """The value one task pushed under ``key`` (``return_value`` by default)."""

    def __init__(self, operator: AbstractOperator, key: str = XCOM_RETURN_KEY) -> None:
        self.operator = operator
        self.key = key

    def __getitem__(self, key: str) -> PlainXComArg:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"XCom keys are strings, got {key!r}")
        return PlainXComArg(self.operator, key)

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        yield self.operator, self.key

    def resolve(self, context: Context) -> Any:
        ti = context["ti"]
        kwargs: dict[str, Any] = {"task_ids": self.operator.task_id, "key": self.key}
        # Inside a mapped group, a sibling's value is the one with the same map index.
        group = getattr(self.operator, "task_group", None)
        task = context.get("task")
        if (
            group is not None
            and group.is_mapped
            and task is not None
            and _in_group(task, group)
            and getattr(ti, "map_index", -1) >= 0
        ):
            kwargs["map_indexes"] = ti.map_index
        return ti.xcom_pull(**kwargs)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PlainXComArg)
            and other.operator is self.operator
            and other.key == self.key
        )

    def __hash__(self) -> int:
        return hash((id(self.operator), self.key))

    def __str__(self) -> str:
        # The template string older DAG files build by formatting a reference into a string.
        dag_id = self.operator.dag_id or ""
        return (
            f"{{{{ task_instance.xcom_pull(task_ids='{self.operator.task_id}', "
            f"dag_id='{dag_id}', key='{self.key}') }}}}"
        )

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, key={self.key!r})"


def _in_group(task: Any, group: TaskGroup) -> bool:
    g = getattr(task, "task_group", None)
    while g is not None:
        if g is group:
            return True
        g = g.parent_group
    return False


class MapXComArg(XComArg):
    """Another reference with functions applied to each item."""

    def __init__(self, arg: XComArg, callables: Sequence[Callable[[Any], Any]]) -> None:
        self.arg = arg
        self.callables = list(callables)

    def map(self, fn: Callable[[Any], Any]) -> MapXComArg:
        return MapXComArg(self.arg, [*self.callables, fn])

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        yield from self.arg.iter_references()

    def resolve(self, context: Context) -> Any:
        value = self.arg.resolve(context)
        items = value.items() if isinstance(value, dict) else value
        result = []
        for item in items:
            for fn in self.callables:
                item = fn(item)
            result.append(item)
        return result


class ZipXComArg(XComArg):
    """Items of several references paired by position."""

    def __init__(
        self, args: Sequence[XComArg], *, fillvalue: Any = None, has_fillvalue: bool = False
    ):
        self.args = list(args)
        self.fillvalue = fillvalue
        self.has_fillvalue = has_fillvalue

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        for a in self.args:
            yield from a.iter_references()

    def resolve(self, context: Context) -> Any:
        values = [a.resolve(context) for a in self.args]
        if self.has_fillvalue:
            return list(itertools.zip_longest(*values, fillvalue=self.fillvalue))
        return list(zip(*values, strict=False))


class ConcatXComArg(XComArg):
    """Items of several references one after the other."""

    def __init__(self, args: Sequence[XComArg]) -> None:
        self.args = list(args)

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        for a in self.args:
            yield from a.iter_references()

    def resolve(self, context: Context) -> Any:
        out: list[Any] = []
        for a in self.args:
            v = a.resolve(context)
            out.extend(v.items() if isinstance(v, dict) else v)
        return out


class DagParamRef:
    """A ``@dag`` function argument: resolves to the run's value of the param of that name."""

    def __init__(self, dag: DAG, name: str) -> None:
        self.dag = dag
        self.name = name

    def resolve(self, context: Context) -> Any:
        return context["params"][self.name]

    def __str__(self) -> str:
        return f"{{{{ params.{self.name} }}}}"

    def __repr__(self) -> str:
        return f"DagParamRef({self.name!r})"


class MappedArgument:
    """An argument of a mapped ``@task_group`` function: the value for the current map index."""

    def __init__(self, group: TaskGroup, key: str) -> None:
        self.group = group
        self.key = key

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        assert self.group.expand_input is not None
        yield from self.group.expand_input.iter_references()

    def resolve(self, context: Context) -> Any:
        assert self.group.expand_input is not None
        values = self.group.expand_input.resolve_for_index(context, context["ti"].map_index)
        return values[self.key]

    def __repr__(self) -> str:
        return f"MappedArgument({self.group.group_id!r}, {self.key!r})"


def iter_xcom_references(value: Any) -> Iterator[AbstractOperator]:
    """Every task whose result ``value`` (possibly nested in lists and dicts) refers to."""
    if isinstance(value, XComArg | MappedArgument):
        for op, _ in value.iter_references():
            yield op
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from iter_xcom_references(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_xcom_references(v)
