"""Dynamic task mapping: one task definition, expanded at run time into N task instances.

``Op.partial(task_id="t", retries=2).expand(x=[1, 2, 3])`` makes a :class:`MappedOperator`.
Several expanded arguments form a cross product, the last one varying fastest; a dict input
yields ``(key, value)`` pairs. ``expand_kwargs(list_of_dicts)`` makes one instance per dict.
Inputs can be literals or upstream results (``XComArg``); the length is known when those
upstreams finish. A zero-length input means the task is skipped; an input longer than the
maximum map length (``[core] max_map_length``, 1024 by default) is an error naming the task.

The expansion arithmetic is pure (:func:`map_length`, :func:`kwargs_for_index`) so the
scheduler and runtime share it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tradewind.errors import DagProblem, InvalidArgumentError, MappingError
from tradewind.sdk import _context_stack
from tradewind.sdk.abstractoperator import TASK_ARG_DEFAULTS, AbstractOperator, validate_task_id
from tradewind.sdk.xcom_arg import MappedArgument, XComArg, iter_xcom_references

if TYPE_CHECKING:
    from tradewind.sdk.baseoperator import BaseOperator
    from tradewind.sdk.context import Context

DEFAULT_MAX_MAP_LENGTH = 1024
_max_map_length = DEFAULT_MAX_MAP_LENGTH


def set_max_map_length(value: int) -> None:
    """Set the process-wide maximum map length (the engine calls this from its settings)."""
    global _max_map_length
    _max_map_length = int(value)


def get_max_map_length() -> int:
    return _max_map_length


def _is_reference(value: Any) -> bool:
    return isinstance(value, XComArg | MappedArgument)


def _as_items(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.items())
    return list(value)


def map_length(values: Mapping[str, Sequence[Any]]) -> int:
    """The number of instances a cross product of ``values`` gives."""
    return math.prod(len(v) for v in values.values()) if values else 0


def kwargs_for_index(values: Mapping[str, Sequence[Any]], index: int) -> dict[str, Any]:
    """The arguments of instance ``index`` of the cross product (last key varies fastest)."""
    out: dict[str, Any] = {}
    for key in reversed(list(values)):
        seq = values[key]
        index, pos = divmod(index, len(seq))
        out[key] = seq[pos]
    return {k: out[k] for k in values}


def check_map_length(length: int, task_id: str, max_length: int | None = None) -> None:
    """Raise :class:`MappingError` when ``length`` exceeds the maximum map length."""
    limit = max_length if max_length is not None else _max_map_length
    if length > limit:
        raise MappingError(
            f"task {task_id!r} would expand into {length} instances, more than the maximum map "
            f"length {limit} (setting core.max_map_length)",
            task_id=task_id,
        )


class ExpandInput:
    """What a mapped task is expanded over."""

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        raise NotImplementedError

    def resolve_values(self, context: Context) -> Any:
        raise NotImplementedError

    def get_map_length(self, context: Context) -> int:
        raise NotImplementedError

    def resolve_for_index(self, context: Context, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def literal_length(self) -> int | None:
        """The length when every input is a literal (None if any comes from upstream)."""
        raise NotImplementedError


class DictOfListsExpandInput(ExpandInput):
    """``expand(a=[...], b=[...])``: the cross product of the named inputs."""

    kind = "dict_of_lists"

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        for v in self.value.values():
            if _is_reference(v):
                yield from v.iter_references()

    def resolve_values(self, context: Context) -> dict[str, list[Any]]:
        resolved: dict[str, list[Any]] = {}
        for k, v in self.value.items():
            raw = v.resolve(context) if _is_reference(v) else v
            if raw is None or isinstance(raw, str | bytes) or not hasattr(raw, "__iter__"):
                raise MappingError(
                    f"cannot map over {type(raw).__name__} value {raw!r} for argument {k!r}: "
                    "expected a list or a dict"
                )
            resolved[k] = _as_items(raw)
        return resolved

    def get_map_length(self, context: Context) -> int:
        return map_length(self.resolve_values(context))

    def resolve_for_index(self, context: Context, index: int) -> dict[str, Any]:
        return kwargs_for_index(self.resolve_values(context), index)

    def literal_length(self) -> int | None:
        if any(_is_reference(v) for v in self.value.values()):
            return None
        return map_length({k: _as_items(v) for k, v in self.value.items()})


class ListOfDictsExpandInput(ExpandInput):
    """``expand_kwargs([...])``: one instance per dict of arguments."""

    kind = "list_of_dicts"

    def __init__(self, value: Any) -> None:
        self.value = value

    def iter_references(self) -> Iterator[tuple[AbstractOperator, str]]:
        if _is_reference(self.value):
            yield from self.value.iter_references()
        else:
            for op in iter_xcom_references(self.value):
                yield op, "return_value"

    def resolve_values(self, context: Context) -> list[dict[str, Any]]:
        raw = self.value.resolve(context) if _is_reference(self.value) else self.value
        items = list(raw)
        out = []
        for i, item in enumerate(items):
            if _is_reference(item):
                item = item.resolve(context)
            if not isinstance(item, Mapping):
                raise MappingError(
                    f"expand_kwargs item {i} is {type(item).__name__}, expected a dict"
                )
            out.append(
                {k: (v.resolve(context) if _is_reference(v) else v) for k, v in item.items()}
            )
        return out

    def get_map_length(self, context: Context) -> int:
        return len(self.resolve_values(context))

    def resolve_for_index(self, context: Context, index: int) -> dict[str, Any]:
        return self.resolve_values(context)[index]

    def literal_length(self) -> int | None:
        if _is_reference(self.value) or any(True for _ in iter_xcom_references(self.value)):
            return None
        return len(self.value)


class OperatorPartial:
    """The fixed arguments of a mapped task, waiting for ``.expand`` or ``.expand_kwargs``."""

    def __init__(
        self,
        operator_class: type[BaseOperator],
        kwargs: dict[str, Any],
        *,
        mapped_into: str | None = None,
    ):
        from tradewind.sdk.baseoperator import accepted_arguments, resolve_default_args

        if "task_id" not in kwargs:
            raise InvalidArgumentError(f"{operator_class.__name__}.partial() needs task_id")
        self.operator_class = operator_class
        self.mapped_into = mapped_into
        self.kwargs = resolve_default_args(operator_class, dict(kwargs))
        # Values filled from default_args give way to mapped ones; explicit ones conflict.
        self._defaulted = set(self.kwargs) - set(kwargs)
        unknown = sorted(set(self.kwargs) - accepted_arguments(operator_class))
        if unknown:
            raise InvalidArgumentError(
                f"{operator_class.__name__}.partial(task_id={kwargs['task_id']!r}): unknown "
                f"argument(s) {', '.join(map(repr, unknown))}",
                argument=unknown[0],
            )
        self._used = False

    def expand(self, **mapped_kwargs: Any) -> MappedOperator:
        """Expand over the cross product of the given lists, dicts or upstream results."""
        return self._make(DictOfListsExpandInput(mapped_kwargs))

    def expand_kwargs(self, kwargs: Any) -> MappedOperator:
        """Expand into one instance per dict (a list of dicts, or an upstream result)."""
        return self._make(ListOfDictsExpandInput(kwargs))

    def _make(self, expand_input: ExpandInput) -> MappedOperator:
        if self._used:
            raise InvalidArgumentError("a partial() can be expanded only once")
        self._used = True
        kwargs = dict(self.kwargs)
        if isinstance(expand_input, DictOfListsExpandInput) and not self.mapped_into:
            for key in self._defaulted & set(expand_input.value):
                del kwargs[key]
        return MappedOperator(
            self.operator_class, kwargs, expand_input, mapped_into=self.mapped_into
        )


class MappedOperator(AbstractOperator):
    """A task that becomes one task instance per element of its expand input at run time."""

    def __init__(
        self,
        operator_class: type[BaseOperator],
        partial_kwargs: dict[str, Any],
        expand_input: ExpandInput,
        *,
        mapped_into: str | None = None,
        accepted_keys: set[str] | None = None,
    ) -> None:
        from tradewind.sdk.baseoperator import accepted_arguments
        from tradewind.sdk.params import ParamsDict

        kwargs = dict(partial_kwargs)
        local_id = kwargs.pop("task_id")
        owner_name = f"{operator_class.__name__}(task_id={local_id!r})"
        validate_task_id(local_id, owner_name)
        dag = kwargs.pop("dag", None) or _context_stack.current_dag()
        group = kwargs.pop("task_group", None) or _context_stack.current_group(dag)
        self.operator_class = operator_class
        # Instance copies of the class-level settings of the operator being mapped.
        setattr(self, "template_fields", operator_class.template_fields)  # noqa: B010
        setattr(self, "template_ext", operator_class.template_ext)  # noqa: B010
        self.ui_color = operator_class.ui_color
        self.ui_fgcolor = operator_class.ui_fgcolor
        self.expand_input = expand_input
        self.mapped_into = mapped_into
        self.dag = None
        self.task_group = group
        self.task_id = group.child_id(local_id) if group is not None else local_id
        self.upstream_task_ids = set()
        self.downstream_task_ids = set()
        self.params = ParamsDict(kwargs.pop("params", None) or {})
        self._init_task_args(
            owner_name, {k: v for k, v in kwargs.items() if k in TASK_ARG_DEFAULTS}, dag
        )
        # Task settings live on the node itself; partial_kwargs keeps the operator's own.
        self.partial_kwargs = {k: v for k, v in kwargs.items() if k not in TASK_ARG_DEFAULTS}
        if dag is not None:
            dag.add_task(self)
        elif group is not None:
            group.add(self)

        problems = self._check_expand_input(
            accepted_keys or set(accepted_arguments(operator_class))
        )
        for problem in problems:
            if self.dag is not None:
                self.dag.add_problem(problem)
            else:
                raise MappingError(problem.message, task_id=self.task_id)

        for ref_op, _ in expand_input.iter_references():
            ref_op >> self
        for ref_op in iter_xcom_references(kwargs):
            if ref_op is not self:
                ref_op >> self

    def _check_expand_input(self, accepted: set[str]) -> list[DagProblem]:
        problems: list[DagProblem] = []

        def bad(msg: str) -> None:
            problems.append(
                DagProblem("invalid_mapping", f"task {self.task_id!r}: {msg}", task_id=self.task_id)
            )

        ei = self.expand_input
        if isinstance(ei, DictOfListsExpandInput):
            if not ei.value:
                bad("expand() needs at least one argument")
            partial_keys = set(self.partial_kwargs)
            if self.mapped_into:
                partial_keys = set(self.partial_kwargs.get(self.mapped_into) or {})
            for key, value in ei.value.items():
                if key not in accepted:
                    bad(f"cannot map over unknown argument {key!r}")
                if key in partial_keys:
                    bad(f"argument {key!r} is given to both partial() and expand()")
                if key in ("task_id", "dag", "task_group") or (
                    key in TASK_ARG_DEFAULTS and not self.mapped_into
                ):
                    bad(f"argument {key!r} cannot be mapped")
                if not _is_reference(value) and (
                    isinstance(value, str | bytes)
                    or not isinstance(value, Sequence | Mapping | set)
                ):
                    bad(
                        f"argument {key!r} must be a list, a dict or a task's output to map over, got {type(value).__name__}"
                    )
        elif isinstance(ei, ListOfDictsExpandInput):
            v = ei.value
            if not _is_reference(v) and (
                isinstance(v, str | bytes | Mapping) or not isinstance(v, Sequence)
            ):
                bad(
                    f"expand_kwargs() needs a list of dicts or a task's output, got {type(v).__name__}"
                )
        if not problems:
            n = ei.literal_length()
            if n is not None and n > _max_map_length:
                bad(
                    f"expands into {n} instances, more than the maximum map length {_max_map_length}"
                )
        return problems

    @property
    def is_mapped(self) -> bool:
        return True

    def unmap(self, mapped_kwargs: dict[str, Any]) -> BaseOperator:
        """A concrete operator for one map index, built from the partial and mapped arguments.

        The result shares this node's DAG, group and dependencies but is not added to the DAG.
        """
        kwargs = dict(self.partial_kwargs)
        if self.mapped_into:
            kwargs[self.mapped_into] = {**(kwargs.get(self.mapped_into) or {}), **mapped_kwargs}
        else:
            kwargs.update(mapped_kwargs)
        for key in TASK_ARG_DEFAULTS:
            kwargs[key] = getattr(self, key, None)
        kwargs["params"] = self.params
        with _context_stack.suspended():
            op = self.operator_class(task_id=self.label, **kwargs)
        op.task_id = self.task_id
        op.dag = self.dag
        op.task_group = self.task_group
        op.upstream_task_ids = set(self.upstream_task_ids)
        op.downstream_task_ids = set(self.downstream_task_ids)
        return op

    def iter_template_values(self) -> Iterator[tuple[str, Any]]:
        """(field, value) of the templated fields fixed in ``partial`` (mapped ones excluded)."""
        source = self.partial_kwargs
        for field in self.template_fields:
            if field in source:
                yield field, source[field]

    def __repr__(self) -> str:
        return f"<Mapped({self.operator_class.__name__}): {self.task_id}>"
