"""Edge helpers: ``Label`` on edges, and ``chain`` / ``cross_downstream`` / ``chain_linear``.

``check >> Label("valid") >> load`` adds the edge ``check >> load`` with the label "valid"
(shown in the graph; no effect at run time).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from tradewind.errors import InvalidArgumentError
from tradewind.sdk._dependencies import DependencyMixin, relate


class EdgeModifier(DependencyMixin):
    """Stands between two sides of ``>>`` and annotates the edges made across it."""

    def __init__(self, label: str | None = None) -> None:
        self.label = label
        self._upstream: list[Any] = []

    def add_upstream(self, items: Sequence[Any]) -> None:
        self._upstream.extend(items)

    def connect_downstream(self, items: Sequence[Any]) -> None:
        relate(self._upstream, items, self)

    # A label is not a task; it forwards to what is on its left.
    @property
    def roots(self) -> list[Any]:
        return []

    @property
    def leaves(self) -> list[Any]:
        return [t for u in self._upstream for t in u.leaves]

    def __rshift__(self, other: Any) -> Any:
        self.connect_downstream(other if isinstance(other, list | tuple) else [other])
        return other

    def __rrshift__(self, other: Any) -> Any:
        self.add_upstream(other if isinstance(other, list | tuple) else [other])
        return self

    def __lshift__(self, other: Any) -> Any:
        # ``down << Label("x") << up`` reads right to left.
        self.add_upstream(other if isinstance(other, list | tuple) else [other])
        return other

    def __rlshift__(self, other: Any) -> Any:
        self.connect_downstream(other if isinstance(other, list | tuple) else [other])
        return self

    def __repr__(self) -> str:
        return f"Label({self.label!r})"


def Label(label: str) -> EdgeModifier:
    """Label the edges made across it: ``a >> Label("yes") >> b``."""
    return EdgeModifier(label)


def _is_seq(x: Any) -> bool:
    return isinstance(x, list | tuple)


def chain(*tasks: Any) -> None:
    """Wire tasks one after the other; two neighbouring lists must be the same length and are
    wired pairwise (``chain(a, [b, c], [d, e], f)`` gives a>>b>>d>>f and a>>c>>e>>f)."""
    for i, (up, down) in enumerate(itertools.pairwise(tasks)):
        if _is_seq(up) and _is_seq(down):
            if len(up) != len(down):
                raise InvalidArgumentError(
                    f"chain(): neighbouring lists at positions {i} and {i + 1} have different "
                    f"lengths ({len(up)} and {len(down)})"
                )
            for u, d in zip(up, down, strict=True):
                u >> d
        elif _is_seq(up):
            for u in up:
                u >> down
        else:
            up >> down


def cross_downstream(from_tasks: Sequence[Any], to_tasks: Any) -> None:
    """Make every task in ``to_tasks`` depend on every task in ``from_tasks``."""
    targets = list(to_tasks) if _is_seq(to_tasks) else [to_tasks]
    for t in from_tasks:
        t >> targets


def chain_linear(*elements: Any) -> None:
    """Wire each element to every task of the next (lists are fully connected to neighbours)."""
    if len(elements) < 2:
        raise InvalidArgumentError("chain_linear() needs at least two elements")
    for up, down in itertools.pairwise(elements):
        ups = list(up) if _is_seq(up) else [up]
        downs = list(down) if _is_seq(down) else [down]
        for u in ups:
            u >> downs
