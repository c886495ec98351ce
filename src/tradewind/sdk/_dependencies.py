"""The ``>>`` / ``<<`` wiring shared by operators, mapped operators, groups and XCom references."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tradewind.errors import InvalidArgumentError

if TYPE_CHECKING:
    from tradewind.sdk.abstractoperator import AbstractOperator
    from tradewind.sdk.edges import EdgeModifier


class DependencyMixin:
    """Something that can stand on either side of ``>>``: a task, a group, an XCom reference.

    Subclasses say which tasks edges attach to: ``roots`` (where incoming edges land) and
    ``leaves`` (where outgoing edges start).
    """

    @property
    def roots(self) -> list[AbstractOperator]:
        raise NotImplementedError

    @property
    def leaves(self) -> list[AbstractOperator]:
        raise NotImplementedError

    def set_upstream(
        self,
        other: DependencyMixin | Sequence[DependencyMixin],
        edge_modifier: EdgeModifier | None = None,
    ) -> None:
        """Make ``other`` run before this."""
        relate(_as_list(other), [self], edge_modifier)

    def set_downstream(
        self,
        other: DependencyMixin | Sequence[DependencyMixin],
        edge_modifier: EdgeModifier | None = None,
    ) -> None:
        """Make ``other`` run after this."""
        relate([self], _as_list(other), edge_modifier)

    def __rshift__(self, other: Any) -> Any:
        relate([self], _as_list(other))
        return other

    def __lshift__(self, other: Any) -> Any:
        relate(_as_list(other), [self])
        return other

    def __rrshift__(self, other: Any) -> Any:
        # ``[a, b] >> self``: the list has no ``>>``, so Python asks the right-hand side.
        relate(_as_list(other), [self])
        return self

    def __rlshift__(self, other: Any) -> Any:
        relate([self], _as_list(other))
        return self


def _as_list(other: Any) -> list[Any]:
    if isinstance(other, list | tuple | set | frozenset):
        return list(other)
    return [other]


def relate(
    upstream: Iterable[Any], downstream: Iterable[Any], edge_modifier: EdgeModifier | None = None
) -> None:
    """Add an edge from every leaf of ``upstream`` to every root of ``downstream``.

    An :class:`~tradewind.sdk.edges.EdgeModifier` (a ``Label``) on either side is not a task: it
    collects the tasks on its left and labels the edges it later makes to its right.
    """
    from tradewind.sdk.edges import EdgeModifier

    ups = list(upstream)
    downs = list(downstream)
    if any(isinstance(d, EdgeModifier) for d in downs):
        for d in downs:
            if isinstance(d, EdgeModifier):
                d.add_upstream(ups)
            else:
                relate(ups, [d], edge_modifier)
        return
    label_ups = [u for u in ups if isinstance(u, EdgeModifier)]
    for mod in label_ups:
        mod.connect_downstream(downs)
    ups = [u for u in ups if not isinstance(u, EdgeModifier)]
    for u in ups:
        _check_endpoint(u)
    for d in downs:
        _check_endpoint(d)
    left = [t for u in ups for t in u.leaves]
    right = [t for d in downs for t in d.roots]
    label = edge_modifier.label if edge_modifier is not None else None
    for up_task in left:
        for down_task in right:
            add_edge(up_task, down_task, label)


def _check_endpoint(obj: object) -> None:
    if not isinstance(obj, DependencyMixin):
        raise InvalidArgumentError(
            f"cannot set a dependency on {obj!r} ({type(obj).__name__}): expected a task, a task "
            "group, a task's output, or a list of them"
        )


def add_edge(up: AbstractOperator, down: AbstractOperator, label: str | None = None) -> None:
    """Record ``up >> down`` on both tasks (and the edge label on the DAG)."""
    if up is down:
        raise InvalidArgumentError(f"task {up.task_id!r} cannot depend on itself")
    dag = up.dag or down.dag
    if up.dag is not None and down.dag is not None and up.dag is not down.dag:
        raise InvalidArgumentError(
            f"tasks {up.task_id!r} and {down.task_id!r} belong to different DAGs "
            f"({up.dag.dag_id!r} and {down.dag.dag_id!r}); dependencies must stay inside one DAG"
        )
    if dag is not None:
        for t in (up, down):
            if t.dag is None:
                dag.add_task(t)
    up.downstream_task_ids.add(down.task_id)
    down.upstream_task_ids.add(up.task_id)
    if label is not None and dag is not None:
        dag.set_edge_info(up.task_id, down.task_id, {"label": label})
