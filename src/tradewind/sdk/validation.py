"""Graph checks on a DAG: cycle detection (naming the tasks on the cycle) and topological order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from tradewind.errors import DagDefinitionError, DagProblem

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG


def find_cycle(dag: DAG) -> list[str] | None:
    """Task ids on one cycle, in dependency order, or None when the graph is acyclic.

    Iterative depth-first search, so a 10,000-task chain does not hit the recursion limit.
    """
    tasks = dag.task_dict
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(tasks, white)
    for start in tasks:
        if color[start] != white:
            continue
        path: list[str] = [start]
        iters = [iter(sorted(tasks[start].downstream_task_ids))]
        color[start] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                color[path.pop()] = black
                iters.pop()
                continue
            if nxt not in color:
                continue
            if color[nxt] == grey:
                return path[path.index(nxt) :]
            if color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                iters.append(iter(sorted(tasks[nxt].downstream_task_ids)))
    return None


def order_task_ids(
    task_ids: Sequence[str],
    upstream: Mapping[str, Iterable[str]],
    downstream: Mapping[str, Iterable[str]],
) -> tuple[list[str], list[str]]:
    """``(ordered, left_over)``: ids so that each follows its upstream ids, ties keeping the
    order of ``task_ids``; ``left_over`` (in ``task_ids`` order) is non-empty only on a cycle."""
    position = {tid: i for i, tid in enumerate(task_ids)}
    indegree = {tid: sum(1 for u in upstream[tid] if u in position) for tid in task_ids}
    ready = [(position[tid], tid) for tid in task_ids if indegree[tid] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, tid = heapq.heappop(ready)
        order.append(tid)
        for down in downstream[tid]:
            if down in indegree:
                indegree[down] -= 1
                if indegree[down] == 0:
                    heapq.heappush(ready, (position[down], down))
    placed = set(order)
    return order, [tid for tid in task_ids if tid not in placed]


def topological_order(dag: DAG) -> list[str]:
    """Task ids so that every task follows its upstream tasks; ties keep definition order."""
    tasks = dag.task_dict
    order, left_over = order_task_ids(
        list(tasks),
        {tid: t.upstream_task_ids for tid, t in tasks.items()},
        {tid: t.downstream_task_ids for tid, t in tasks.items()},
    )
    if left_over:
        cycle = find_cycle(dag) or []
        raise DagDefinitionError(
            dag.dag_id,
            [DagProblem("cycle", f"cycle between tasks: {' >> '.join([*cycle, *cycle[:1]])}")],
        )
    return order
