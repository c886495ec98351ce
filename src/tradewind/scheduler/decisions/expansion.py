"""Dynamic task mapping at run time: how many instances a mapped task expands into.

A mapped task (``.expand(...)`` / ``.expand_kwargs(...)``), or any task inside a mapped task
group, starts as one placeholder task instance (map index -1). When its upstream tasks have
finished, the lengths of the upstream results it maps over are known (the scheduler records
them per upstream task) and :func:`expansion_length` turns them into the number of instances,
using the same cross-product arithmetic as the SDK (:func:`tradewind.sdk.mapping.map_length`):

* ``expand(a=X, b=Y)``: ``len(X) * len(Y)``;
* ``expand_kwargs(Z)``: ``len(Z)``;
* ``X.map(f)``: ``len(X)``; ``X.zip(Y)``: the shorter (the longer with a ``fillvalue``);
  ``X.concat(Y)``: ``len(X) + len(Y)``;
* literal lists, tuples, sets and dicts: their own length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradewind.scheduler.decisions.views import TaskLike, iter_enclosing_groups
from tradewind.sdk.mapping import map_length
from tradewind.serialization.values import (
    ConcatXComRef,
    MapXComRef,
    ReprValue,
    XComRef,
    ZipXComRef,
)

__all__ = [
    "ExpansionLength",
    "LengthKey",
    "expansion_length",
    "mapping_source",
    "maps_per_index",
]

#: How recorded upstream result lengths are looked up: by task id (its ``return_value``), or by
#: ``(task_id, xcom_key)`` for a single key of a ``multiple_outputs`` result.
LengthKey = str | tuple[str, str]

_RETURN_KEY = "return_value"


@dataclass(frozen=True)
class ExpansionLength:
    """The number of instances, or None with the upstream results still unknown."""

    length: int | None
    #: ``"task_id"`` (or ``"task_id['key']"``) of every upstream result whose length is missing.
    missing: tuple[str, ...] = ()
    #: The ids of the tasks whose result lengths are missing.
    missing_task_ids: tuple[str, ...] = ()


def mapping_source(task: TaskLike) -> Any | None:
    """What ``task`` expands over: its own expand input, else that of the nearest mapped task
    group around it; None for a task that is not expanded at run time."""
    if task.is_mapped and task.expand_input is not None:
        return task.expand_input
    for group in iter_enclosing_groups(task):
        if group.expand_input is not None:
            return group.expand_input
    return None


def maps_per_index(task: TaskLike, upstream: TaskLike) -> bool:
    """Whether each instance of ``task`` depends only on the instance of ``upstream`` with the
    same map index: both sit in the same mapped task group (and ``task`` is not mapped on its
    own). Otherwise every instance of ``upstream`` counts."""
    group, other = task.task_group, upstream.task_group
    if task.is_mapped or group is None or other is None or group.group_id != other.group_id:
        return False
    source = mapping_source(task)
    return source is not None and source is mapping_source(upstream)


def expansion_length(expand_input: Any, lengths: Mapping[LengthKey, int]) -> ExpansionLength:
    """The number of instances ``expand_input`` gives, from recorded upstream lengths.

    Args:
        expand_input: a :class:`~tradewind.serialization.views.SerializedExpandInput` (anything
            with ``kind``, ``value`` and ``literal_length()``).
        lengths: recorded lengths of upstream results, by task id (or ``(task_id, key)``). For
            a mapped upstream, the length of its result is its number of instances.
    """
    literal = expand_input.literal_length()
    if literal is not None:
        return ExpansionLength(int(literal))
    missing: list[str] = []
    missing_ids: list[str] = []
    value = expand_input.value
    if expand_input.kind == "list_of_dicts":
        length = _length(value, lengths, missing, missing_ids)
    else:
        sizes = {
            name: _length(item, lengths, missing, missing_ids) for name, item in dict(value).items()
        }
        length = None if missing else map_length({k: range(n or 0) for k, n in sizes.items()})
    if missing:
        return ExpansionLength(
            None, tuple(dict.fromkeys(missing)), tuple(dict.fromkeys(missing_ids))
        )
    return ExpansionLength(length)


def _length(
    value: Any, lengths: Mapping[LengthKey, int], missing: list[str], missing_ids: list[str]
) -> int | None:
    """The length of one expanded value; appends to ``missing`` (and returns None) when an
    upstream length is not recorded."""
    if isinstance(value, XComRef):
        if (value.task_id, value.key) in lengths:
            return lengths[(value.task_id, value.key)]
        if value.key == _RETURN_KEY and value.task_id in lengths:
            return lengths[value.task_id]
        label = value.task_id if value.key == _RETURN_KEY else f"{value.task_id}[{value.key!r}]"
        missing.append(label)
        missing_ids.append(value.task_id)
        return None
    if isinstance(value, MapXComRef):
        return _length(value.arg, lengths, missing, missing_ids)
    if isinstance(value, ZipXComRef):
        parts = [_length(arg, lengths, missing, missing_ids) for arg in value.args]
        known = [p for p in parts if p is not None]
        if len(known) < len(parts):
            return None
        if not known:
            return 0
        return max(known) if value.has_fillvalue else min(known)
    if isinstance(value, ConcatXComRef):
        parts = [_length(arg, lengths, missing, missing_ids) for arg in value.args]
        return None if None in parts else sum(p or 0 for p in parts)
    if isinstance(value, list | tuple | set | frozenset | dict):
        return len(value)
    if isinstance(value, ReprValue):
        missing.append(f"a literal input that was not stored ({value.text[:40]})")
        return None
    missing.append(f"an input of type {type(value).__name__}")
    return None
